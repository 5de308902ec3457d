"""BCR::ABL1 qRT-PCR: the EuroMRD reading of a result (van der Velden et al., Leukemia
2007;21:604), the sensitivity an undetectable result reached by its ABL1 copies (Cross et al.,
Leukemia 2015;29:999, Table 1) and the molecular response of GIMEMA D-ALBA (Foà et al., N Engl
J Med 2020;383:1613: complete molecular response or positive non-quantifiable)."""

from __future__ import annotations

import math

import pytest

from services.clinical.molecular_mrd import (
    InvalidMolecularResultError,
    MolecularResult,
    MolecularStatus,
    best_status,
    log_reduction,
    molecular_response,
    molecular_status,
    undetectable_depth,
)

U, PNQ, POS, NE = (MolecularStatus.UNDETECTABLE, MolecularStatus.POSITIVE_NOT_QUANTIFIABLE,
                   MolecularStatus.POSITIVE, MolecularStatus.NOT_EVALUABLE)


@pytest.mark.parametrize(("result", "status", "response"), [
    # Cross 2015 Table 1: undetectable with >= 10,000 ABL1 copies is at least MR4 (10^-4)
    (MolecularResult(detected=False, quantifiable=False, control_copies=10_000), U, True),
    (MolecularResult(detected=False, quantifiable=False, control_copies=250_000), U, True),
    # fewer copies cannot show negativity at 10^-4: not evaluable, neither response nor failure
    (MolecularResult(detected=False, quantifiable=False, control_copies=9_999), NE, None),
    # EuroMRD: detected below the quantitative range; D-ALBA counts it a molecular response
    (MolecularResult(detected=True, quantifiable=False), PNQ, True),
    (MolecularResult(detected=True, quantifiable=True, ratio_pct=0.05), POS, False),
    (MolecularResult(detected=True, quantifiable=True, ratio_pct=0.001), POS, False),
])
def test_a_result_is_read_by_euromrd_and_d_alba(result, status, response):
    assert molecular_status(result) is status
    assert molecular_response(status) is response


@pytest.mark.parametrize(("copies", "depth"), [(9_999, None), (10_000, "MR4"), (31_999, "MR4"), (32_000, "MR4.5"),
                                               (99_999, "MR4.5"), (100_000, "MR5")])
def test_an_undetectable_result_scores_the_depth_its_abl1_copies_allow(copies, depth):
    assert undetectable_depth(copies) == depth  # Cross 2015, Table 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"detected": False, "quantifiable": True, "ratio_pct": 0.1, "control_copies": 20_000}, "quantifiable"),
    ({"detected": True, "quantifiable": True}, "ratio_pct"),
    ({"detected": True, "quantifiable": False, "ratio_pct": 0.1}, "ratio_pct"),
    ({"detected": False, "quantifiable": False}, "control_copies"),
    ({"detected": True, "quantifiable": True, "ratio_pct": 120.0}, "ratio_pct"),
    ({"detected": "yes", "quantifiable": False}, "detected"),
    ({"detected": False, "quantifiable": False, "control_copies": -1}, "control_copies"),
])
def test_an_inconsistent_result_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(InvalidMolecularResultError, match=field):
        MolecularResult(**kwargs)


def test_the_log_reduction_from_the_baseline():
    assert log_reduction(1.0, 0.01) == pytest.approx(2.0)
    assert log_reduction(0.5, 0.5) == 0.0
    assert log_reduction(0.1, 1.0) == pytest.approx(-1.0)  # a rise
    with pytest.raises(InvalidMolecularResultError, match="ratio_pct"):
        log_reduction(1.0, 0.0)
    assert math.isfinite(log_reduction(100.0, 1e-6))


def test_the_best_status_is_the_deepest_evaluable():
    assert best_status([POS, PNQ, NE]) is PNQ
    assert best_status([POS, U, PNQ]) is U
    assert best_status([NE, NE]) is None and best_status([]) is None
