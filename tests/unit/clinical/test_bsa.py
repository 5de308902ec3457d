"""Body-surface area.

Sources: Mosteller RD, N Engl J Med 1987;317:1098; Du Bois D, Du Bois EF, Arch
Intern Med 1916;17:863-871.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.bsa import (
    BsaFormula,
    InvalidAnthropometryError,
    body_surface_area,
    bsa_dubois,
    bsa_mosteller,
)


class TestBodySurfaceArea:
    @pytest.mark.parametrize(
        "height, weight, expected",
        [
            # Mosteller 1987: sqrt(180 x 80 / 3600) = sqrt(4) = 2 exactly.
            pytest.param(180, 80, 2.0, id="mosteller-180cm-80kg-exactly-2"),
            # sqrt(170 x 70 / 3600) = sqrt(3.30556) = 1.8181 (hand calculation).
            pytest.param(170, 70, 1.8181, id="mosteller-170cm-70kg"),
        ],
    )
    def test_mosteller(self, height, weight, expected):
        assert bsa_mosteller(height, weight) == pytest.approx(expected, abs=1e-4)

    def test_dubois_reference_adult(self):
        # Du Bois 1916: 0.007184 x 70^0.425 x 170^0.725 = 1.8097 (the textbook 1.81 m2 adult).
        assert bsa_dubois(170, 70) == pytest.approx(1.8097, abs=1e-4)

    def test_formula_is_selectable(self):
        assert body_surface_area(170, 70, BsaFormula.DUBOIS) == bsa_dubois(170, 70)
        assert body_surface_area(170, 70) == bsa_mosteller(170, 70)

    @pytest.mark.parametrize(
        "height, weight, field",
        [
            pytest.param(29.9, 70, "height_cm", id="height-29.9"),
            pytest.param(250.1, 70, "height_cm", id="height-250.1"),
            pytest.param(170, 0.99, "weight_kg", id="weight-0.99"),
            pytest.param(170, 300.1, "weight_kg", id="weight-300.1"),
            pytest.param(float("nan"), 70, "height_cm", id="height-nan"),
            pytest.param(170, True, "weight_kg", id="weight-bool"),
        ],
    )
    def test_out_of_range_input_is_refused(self, height, weight, field):
        with pytest.raises(InvalidAnthropometryError, match=field):
            bsa_mosteller(height, weight)

    @pytest.mark.parametrize("height, weight", [(30, 1), (250, 300)], ids=["lower-limits", "upper-limits"])
    def test_range_limits_themselves_are_accepted(self, height, weight):
        assert bsa_mosteller(height, weight) > 0 and bsa_dubois(height, weight) > 0

    @given(
        st.floats(30, 249),
        st.floats(1, 299),
        st.floats(0.01, 1),
        st.sampled_from(list(BsaFormula)),
    )
    def test_bsa_increases_with_height_and_with_weight(self, h, w, delta, formula):
        base = body_surface_area(h, w, formula)
        assert body_surface_area(h + delta, w, formula) > base
        assert body_surface_area(h, w + delta, formula) > base
