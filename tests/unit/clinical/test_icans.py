"""ASTCT ICANS grading - Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638: ICE score (Table 7), adult grading (Table 8), paediatric
grading with CAPD for children < 12 years (Table 9); CAPD scoring from
Traube C et al., Crit Care Med 2014;42:656-663."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.icans import (
    CapdAnswers,
    CapdFrequency,
    CapdScore,
    Consciousness,
    IcansDomain,
    IcansObservation,
    IceScore,
    InvalidIcansObservationError,
    MotorFinding,
    RaisedIcp,
    Seizure,
    WrongEncephalopathyToolError,
    capd_domain_grade,
    grade_icans,
    ice_domain_grade,
)

C = Consciousness
F = CapdFrequency


def ice_with_total(total):
    """Build an ICE score with the given total by filling items in order."""
    caps = [4, 3, 1, 1, 1]
    items = []
    for cap in caps:
        take = min(cap, total)
        items.append(take)
        total -= take
    assert total == 0
    return IceScore(*items)


FULL_ICE = IceScore(4, 3, 1, 1, 1)


def adult(ice=FULL_ICE, **kw):
    return IcansObservation(age_years=45, ice=ice, **kw)


def child(capd_total=0, **kw):
    return IcansObservation(age_years=7, capd=CapdScore(capd_total), **kw)


class TestIceScore:
    def test_full_marks_total_ten(self):
        # Table 7: orientation 4 + naming 3 + commands 1 + writing 1 + attention 1.
        assert FULL_ICE.total == 10

    def test_items_add_up(self):
        assert IceScore(orientation=2, naming=1, following_commands=0, writing=1, attention=0).total == 4

    @pytest.mark.parametrize(
        "items, field",
        [
            pytest.param((5, 3, 1, 1, 1), "orientation", id="T7-orientation-max-4"),
            pytest.param((4, 4, 1, 1, 1), "naming", id="T7-naming-max-3"),
            pytest.param((4, 3, 2, 1, 1), "following_commands", id="T7-commands-max-1"),
            pytest.param((4, 3, 1, 2, 1), "writing", id="T7-writing-max-1"),
            pytest.param((4, 3, 1, 1, 2), "attention", id="T7-attention-max-1"),
            pytest.param((-1, 3, 1, 1, 1), "orientation", id="negative-item"),
            pytest.param((4, 3.0, 1, 1, 1), "naming", id="non-integer-item"),
        ],
    )
    def test_out_of_range_item_raises_error_naming_it(self, items, field):
        with pytest.raises(InvalidIcansObservationError, match=field):
            IceScore(*items)

    def test_unarousable_flag_with_points_is_rejected(self):
        with pytest.raises(InvalidIcansObservationError, match="unarousable"):
            IceScore(1, 0, 0, 0, 0, unarousable=True)


class TestAdultIceDomain:
    # Table 8, ICE row: 7-9 -> 1, 3-6 -> 2, 0-2 -> 3; 10 = no impairment.
    @pytest.mark.parametrize(
        "total, grade",
        [
            pytest.param(10, 0, id="T8-ICE-10-no-ICANS"),
            pytest.param(9, 1, id="T8-ICE-9-grade-1"),
            pytest.param(7, 1, id="T8-ICE-7-grade-1-lower-edge"),
            pytest.param(6, 2, id="T8-ICE-6-grade-2-upper-edge"),
            pytest.param(3, 2, id="T8-ICE-3-grade-2-lower-edge"),
            pytest.param(2, 3, id="T8-ICE-2-grade-3-upper-edge"),
            pytest.param(0, 3, id="T8-footnote-ICE-0-awake-global-aphasia-grade-3"),
        ],
    )
    def test_ice_total_sets_grade(self, total, grade):
        result = grade_icans(adult(ice_with_total(total)))
        assert result.grade == grade
        if grade:
            assert result.drivers == (IcansDomain.ICE,)

    def test_ice_of_zero_because_unarousable_is_grade_4(self):
        # Table 8 footnote: ICE 0 may be grade 4 if unarousable.
        result = grade_icans(
            adult(IceScore.not_performable_unarousable(), consciousness=C.UNAROUSABLE)
        )
        assert result.grade == 4
        assert set(result.drivers) == {IcansDomain.ICE, IcansDomain.CONSCIOUSNESS}

    def test_unarousable_ice_contradicting_consciousness_is_rejected(self):
        with pytest.raises(InvalidIcansObservationError, match="consciousness"):
            adult(IceScore.not_performable_unarousable(), consciousness=C.ALERT)


class TestBandTablesCoverEveryTotal:
    def test_every_ice_total_gets_the_grade_of_its_table_8_band(self):
        # Table 8, ICE row: 10 -> none; 7-9 -> 1; 3-6 -> 2; 0-2 -> 3.
        expected = [3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 0]
        assert [ice_domain_grade(ice_with_total(t)) for t in range(11)] == expected

    def test_every_capd_total_gets_the_grade_of_its_table_9_band(self):
        # Table 9, CAPD row: 0 -> none; 1-8 -> 1 (or 2 by consciousness); >= 9 -> 3.
        assert [capd_domain_grade(CapdScore(t)) for t in range(33)] == [0] + [1] * 8 + [3] * 24


class TestOtherDomains:
    @pytest.mark.parametrize(
        "kwargs, grade, domain",
        [
            pytest.param({"consciousness": C.AWAKENS_SPONTANEOUSLY}, 1, IcansDomain.CONSCIOUSNESS, id="T8-awakens-spontaneously-1"),
            pytest.param({"consciousness": C.AWAKENS_TO_VOICE}, 2, IcansDomain.CONSCIOUSNESS, id="T8-awakens-to-voice-2"),
            pytest.param({"consciousness": C.AWAKENS_ONLY_TO_TACTILE}, 3, IcansDomain.CONSCIOUSNESS, id="T8-tactile-only-3"),
            pytest.param({"consciousness": C.UNAROUSABLE}, 4, IcansDomain.CONSCIOUSNESS, id="T8-unarousable-stupor-coma-4"),
            pytest.param({"seizure": Seizure.RESOLVES_RAPIDLY}, 3, IcansDomain.SEIZURE, id="T8-seizure-resolving-rapidly-3"),
            pytest.param({"seizure": Seizure.LIFE_THREATENING}, 4, IcansDomain.SEIZURE, id="T8-seizure-over-5min-or-repetitive-4"),
            pytest.param({"motor": MotorFinding.DEEP_FOCAL_WEAKNESS}, 4, IcansDomain.MOTOR, id="T8-hemiparesis-paraparesis-4"),
            pytest.param({"raised_icp": RaisedIcp.FOCAL_OEDEMA}, 3, IcansDomain.RAISED_ICP, id="T8-focal-oedema-3"),
            pytest.param({"raised_icp": RaisedIcp.DIFFUSE_OEDEMA}, 4, IcansDomain.RAISED_ICP, id="T8-diffuse-oedema-4"),
            pytest.param({"raised_icp": RaisedIcp.DECEREBRATE_OR_DECORTICATE_POSTURING}, 4, IcansDomain.RAISED_ICP, id="T8-posturing-4"),
            pytest.param({"raised_icp": RaisedIcp.CRANIAL_NERVE_VI_PALSY}, 4, IcansDomain.RAISED_ICP, id="T8-CN-VI-palsy-4"),
            pytest.param({"raised_icp": RaisedIcp.PAPILLOEDEMA}, 4, IcansDomain.RAISED_ICP, id="T8-papilloedema-4"),
            pytest.param({"raised_icp": RaisedIcp.CUSHINGS_TRIAD}, 4, IcansDomain.RAISED_ICP, id="T8-cushings-triad-4"),
        ],
    )
    def test_domain_finding_with_normal_ice_sets_grade(self, kwargs, grade, domain):
        result = grade_icans(adult(**kwargs))
        assert (result.grade, result.drivers) == (grade, (domain,))

    def test_papers_example_ice_3_with_generalised_seizure_is_grade_3(self):
        # Table 8 footnote example.
        result = grade_icans(adult(ice_with_total(3), seizure=Seizure.RESOLVES_RAPIDLY))
        assert result.grade == 3
        assert result.drivers == (IcansDomain.SEIZURE,)

    def test_most_severe_domain_decides(self):
        result = grade_icans(adult(ice_with_total(8), raised_icp=RaisedIcp.PAPILLOEDEMA))
        assert result.grade == 4

    def test_death_due_to_icans_is_grade_5(self):
        assert grade_icans(adult(died_of_icans=True)).grade == 5


class TestChildrenUseCapd:
    # Table 9 (children < 12): CAPD 1-8 under grades 1 and 2, >= 9 grade 3,
    # unable to perform CAPD grade 4.
    @pytest.mark.parametrize(
        "total, grade",
        [
            pytest.param(0, 0, id="CAPD-0-no-impairment"),
            pytest.param(1, 1, id="T9-CAPD-1-grade-1"),
            pytest.param(8, 1, id="T9-CAPD-8-grade-1-upper-edge"),
            pytest.param(9, 3, id="T9-CAPD-9-grade-3"),
            pytest.param(32, 3, id="T9-CAPD-32-max-grade-3"),
        ],
    )
    def test_capd_total_sets_grade(self, total, grade):
        assert grade_icans(child(total)).grade == grade

    def test_capd_below_nine_awakening_to_voice_is_grade_2(self):
        # Table 9: grade 2 = CAPD 1-8 with "awakens to voice".
        result = grade_icans(child(5, consciousness=C.AWAKENS_TO_VOICE))
        assert (result.grade, result.drivers) == (2, (IcansDomain.CONSCIOUSNESS,))

    def test_unable_to_perform_capd_is_grade_4(self):
        obs = IcansObservation(age_years=4, capd=CapdScore.not_performable())
        assert grade_icans(obs).grade == 4

    def test_capd_answers_are_scored_with_items_one_to_four_reversed(self):
        # Traube 2014: items 1-4 never=4..always=0; items 5-8 never=0..always=4.
        calm = CapdAnswers(F.ALWAYS, F.ALWAYS, F.ALWAYS, F.ALWAYS, F.NEVER, F.NEVER, F.NEVER, F.NEVER)
        worst = CapdAnswers(F.NEVER, F.NEVER, F.NEVER, F.NEVER, F.ALWAYS, F.ALWAYS, F.ALWAYS, F.ALWAYS)
        mixed = CapdAnswers(F.OFTEN, F.SOMETIMES, F.RARELY, F.ALWAYS, F.RARELY, F.SOMETIMES, F.OFTEN, F.NEVER)
        assert (calm.total, worst.total, mixed.total) == (0, 32, 1 + 2 + 3 + 0 + 1 + 2 + 3 + 0)
        assert CapdScore.from_answers(mixed).total == 12

    @pytest.mark.parametrize("total", [-1, 33])
    def test_capd_total_outside_0_to_32_is_rejected(self, total):
        with pytest.raises(InvalidIcansObservationError, match="total"):
            CapdScore(total)


class TestToolMustMatchAge:
    def test_ice_for_a_child_under_12_is_rejected(self):
        with pytest.raises(WrongEncephalopathyToolError, match="ice"):
            IcansObservation(age_years=11.9, ice=FULL_ICE)

    def test_capd_for_a_12_year_old_is_rejected(self):
        with pytest.raises(WrongEncephalopathyToolError, match="capd"):
            IcansObservation(age_years=12, capd=CapdScore(3))

    def test_ice_at_exactly_12_years_is_accepted(self):
        assert grade_icans(IcansObservation(age_years=12, ice=FULL_ICE)).grade == 0

    def test_capd_over_12_with_developmental_delay_is_accepted(self):
        obs = IcansObservation(age_years=15, capd=CapdScore(10), developmental_delay=True)
        assert grade_icans(obs).grade == 3

    def test_missing_tool_is_rejected(self):
        with pytest.raises(WrongEncephalopathyToolError, match="capd"):
            IcansObservation(age_years=5)

    def test_both_tools_are_rejected(self):
        with pytest.raises(WrongEncephalopathyToolError, match="both"):
            IcansObservation(age_years=30, ice=FULL_ICE, capd=CapdScore(0), developmental_delay=True)

    @pytest.mark.parametrize("age", [-1, 131, float("nan")])
    def test_implausible_age_is_rejected(self, age):
        with pytest.raises(InvalidIcansObservationError, match="age_years"):
            IcansObservation(age_years=age, ice=FULL_ICE)


# --- monotonicity -----------------------------------------------------------
# Severity orders written from Table 8 (not read from the module).
_CONSC = [C.ALERT, C.AWAKENS_SPONTANEOUSLY, C.AWAKENS_TO_VOICE, C.AWAKENS_ONLY_TO_TACTILE, C.UNAROUSABLE]
_SEIZ = [Seizure.NONE, Seizure.RESOLVES_RAPIDLY, Seizure.LIFE_THREATENING]
_MOTOR = [MotorFinding.NONE, MotorFinding.DEEP_FOCAL_WEAKNESS]
_ICP = [RaisedIcp.NONE, RaisedIcp.FOCAL_OEDEMA, RaisedIcp.DIFFUSE_OEDEMA]


def _le(draw, n):
    a = draw(st.integers(0, n - 1))
    return a, draw(st.integers(a, n - 1))


@st.composite
def _ordered_adult_pair(draw):
    items_caps = [4, 3, 1, 1, 1]
    better = [draw(st.integers(0, c)) for c in items_caps]
    worse = [draw(st.integers(0, b)) for b in better]  # each item <= the better one
    c1, c2 = _le(draw, len(_CONSC))
    s1, s2 = _le(draw, len(_SEIZ))
    m1, m2 = _le(draw, len(_MOTOR))
    i1, i2 = _le(draw, len(_ICP))
    # The "unarousable" ICE can only accompany an unarousable patient.
    unarousable2 = _CONSC[c2] is C.UNAROUSABLE and draw(st.booleans())
    ice2 = IceScore.not_performable_unarousable() if unarousable2 else IceScore(*worse)
    a = adult(IceScore(*better), consciousness=_CONSC[c1], seizure=_SEIZ[s1], motor=_MOTOR[m1], raised_icp=_ICP[i1])
    b = adult(ice2, consciousness=_CONSC[c2], seizure=_SEIZ[s2], motor=_MOTOR[m2], raised_icp=_ICP[i2])
    return a, b


@st.composite
def _ordered_child_pair(draw):
    t1 = draw(st.integers(0, 32))
    unable = draw(st.booleans())
    capd2 = CapdScore.not_performable() if unable else CapdScore(draw(st.integers(t1, 32)))
    c1, c2 = _le(draw, len(_CONSC))
    a = IcansObservation(age_years=6, capd=CapdScore(t1), consciousness=_CONSC[c1])
    b = IcansObservation(age_years=6, capd=capd2, consciousness=_CONSC[c2])
    return a, b


class TestIcansMonotonicity:
    @given(_ordered_adult_pair())
    def test_adult_grade_never_drops_when_any_domain_worsens(self, pair):
        a, b = pair
        assert grade_icans(b).grade >= grade_icans(a).grade

    @given(_ordered_child_pair())
    def test_child_grade_never_drops_when_capd_or_consciousness_worsens(self, pair):
        a, b = pair
        assert grade_icans(b).grade >= grade_icans(a).grade
