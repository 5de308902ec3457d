"""Immune effector cell-associated neurotoxicity syndrome (ICANS) grading.

Source: Lee DW, Santomasso BD, Locke FL, et al. "ASTCT Consensus Grading for
Cytokine Release Syndrome and Neurologic Toxicity Associated with Immune
Effector Cells." Biol Blood Marrow Transplant 2019;25(4):625-638:
  * Table 7  - ICE (Immune effector Cell-associated Encephalopathy) score;
  * Table 8  - ASTCT ICANS Consensus Grading for Adults (and its footnotes);
  * Table 9  - ICANS grading for children < 12 years, which replaces the ICE
    row by the CAPD (Cornell Assessment of Pediatric Delirium) row.
CAPD items and scoring: Traube C, Silver G, Kearney J, et al. "Cornell
Assessment of Pediatric Delirium: a valid, rapid, observational tool for
screening delirium in the PICU." Crit Care Med 2014;42(3):656-663
(reproduced in Lee 2019 for the ICANS paediatric table).

What is encoded for the CAPD row (children), as published in Lee 2019:
    CAPD 1-8  -> listed under BOTH grade 1 and grade 2 (grades 1 and 2 are
                 told apart by the level of consciousness row: awakens
                 spontaneously vs awakens to voice), so CAPD 1-8 alone
                 yields grade 1;
    CAPD >= 9 -> grade 3;
    unable to perform CAPD -> grade 4;
    CAPD 0    -> no impairment on this domain (grade 0).
(This differs from the "1-8 -> 1, >=9 -> 2, >=9 -> 3" reading: the
published table has no grade-2 CAPD threshold of its own.)
Lee 2019 also allows CAPD instead of ICE for patients >= 12 years with
baseline developmental delay; ``developmental_delay=True`` enables that.

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, band, check_fields

__all__ = [
    "InvalidIcansObservationError",
    "WrongEncephalopathyToolError",
    "IceScore",
    "CapdFrequency",
    "CapdAnswers",
    "CapdScore",
    "Consciousness",
    "Seizure",
    "MotorFinding",
    "RaisedIcp",
    "IcansDomain",
    "IcansObservation",
    "IcansGrade",
    "CAPD_MIN_AGE_FOR_ICE_YEARS",
    "ice_domain_grade",
    "capd_domain_grade",
    "grade_icans",
]


class InvalidIcansObservationError(ClinicalInputError):
    """An ICANS observation has a missing, malformed or out-of-range field."""


class WrongEncephalopathyToolError(InvalidIcansObservationError):
    """ICE was supplied where CAPD applies by age, or vice versa."""


# Lee 2019, ICANS section / Table 9: ICE is for adults and children >= 12
# years; CAPD for children < 12 years.
CAPD_MIN_AGE_FOR_ICE_YEARS = 12.0


# --------------------------------------------------------------------------
# ICE score (Lee 2019, Table 7)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class IceScore:
    """ICE score items, Lee 2019 Table 7 (total 10 = no impairment).

    orientation: year, month, city, hospital - 1 point each (0..4)
    naming: names 3 objects (e.g. clock, pen, button) - 1 each (0..3)
    following_commands: follows simple commands (0..1)
    writing: writes a standard sentence (0..1)
    attention: counts backwards from 100 by 10 (0..1)
    unarousable: ICE is 0 because the patient is unarousable and unable to
        perform ICE (Table 8, grade-4 ICE cell); all items must then be 0.
    """

    orientation: Annotated[int, Field(ge=0, le=4)]
    naming: Annotated[int, Field(ge=0, le=3)]
    following_commands: Annotated[int, Field(ge=0, le=1)]
    writing: Annotated[int, Field(ge=0, le=1)]
    attention: Annotated[int, Field(ge=0, le=1)]
    unarousable: bool = False

    def __post_init__(self) -> None:
        check_fields(self, InvalidIcansObservationError)
        if self.unarousable and self.total != 0:
            raise InvalidIcansObservationError(
                f"unarousable=True but ICE item total={self.total}; an "
                "unarousable patient cannot score ICE points"
            )

    @property
    def total(self) -> int:
        return (
            self.orientation
            + self.naming
            + self.following_commands
            + self.writing
            + self.attention
        )

    @classmethod
    def not_performable_unarousable(cls) -> "IceScore":
        return cls(0, 0, 0, 0, 0, unarousable=True)


# Lee 2019, Table 8, ICE row: (lowest ICE total of the band, grade).
ICE_ROW: tuple[tuple[int, int], ...] = ((10, 0), (7, 1), (3, 2), (0, 3))


def ice_domain_grade(ice: IceScore) -> int:
    """ICE row of Lee 2019 Table 8: 10 -> 0, 7-9 -> 1, 3-6 -> 2, 0-2 -> 3,
    0 because unarousable -> 4.

    Table 8 footnote: "A patient with an ICE score of 0 may be classified as
    grade 3 ICANS if awake with global aphasia, but a patient with an ICE
    score of 0 may be classified as grade 4 ICANS if unarousable."
    """
    if ice.unarousable:
        return 4
    return band(ice.total, ICE_ROW)


# --------------------------------------------------------------------------
# CAPD (Traube 2014; Lee 2019 paediatric table)
# --------------------------------------------------------------------------
class CapdFrequency(Enum):
    NEVER = "never"
    RARELY = "rarely"
    SOMETIMES = "sometimes"
    OFTEN = "often"
    ALWAYS = "always"


# Traube 2014 (CAPD scoring): items 1-4 are reverse scored
# (never 4, rarely 3, sometimes 2, often 1, always 0); items 5-8 are scored
# never 0, rarely 1, sometimes 2, often 3, always 4.  Total 0-32; >= 9
# indicates delirium.
_CAPD_REVERSED = {
    CapdFrequency.NEVER: 4,
    CapdFrequency.RARELY: 3,
    CapdFrequency.SOMETIMES: 2,
    CapdFrequency.OFTEN: 1,
    CapdFrequency.ALWAYS: 0,
}
_CAPD_DIRECT = {f: 4 - p for f, p in _CAPD_REVERSED.items()}
CAPD_MAX = 32


@dataclass(frozen=True)
class CapdAnswers:
    """The eight CAPD questions (Traube 2014), answered by the bedside nurse."""

    eye_contact: CapdFrequency  # 1. makes eye contact with caregiver
    purposeful_actions: CapdFrequency  # 2. actions are purposeful
    aware_of_surroundings: CapdFrequency  # 3. aware of surroundings
    communicates_needs: CapdFrequency  # 4. communicates needs and wants
    restless: CapdFrequency  # 5. is restless
    inconsolable: CapdFrequency  # 6. is inconsolable
    underactive: CapdFrequency  # 7. underactive, very little movement awake
    slow_to_respond: CapdFrequency  # 8. takes a long time to respond

    def __post_init__(self) -> None:
        check_fields(self, InvalidIcansObservationError)

    @property
    def total(self) -> int:
        reversed_items = (
            self.eye_contact,
            self.purposeful_actions,
            self.aware_of_surroundings,
            self.communicates_needs,
        )
        direct_items = (
            self.restless,
            self.inconsolable,
            self.underactive,
            self.slow_to_respond,
        )
        return sum(_CAPD_REVERSED[a] for a in reversed_items) + sum(
            _CAPD_DIRECT[a] for a in direct_items
        )


@dataclass(frozen=True)
class CapdScore:
    """A CAPD total (0..32), or 'unable to perform CAPD' (total must be None)."""

    total: Annotated[int, Field(ge=0, le=CAPD_MAX)] | None
    unable_to_perform: bool = False

    def __post_init__(self) -> None:
        check_fields(self, InvalidIcansObservationError)
        if self.unable_to_perform:
            if self.total is not None:
                raise InvalidIcansObservationError(
                    f"total={self.total} given but unable_to_perform=True"
                )
        else:
            if self.total is None:
                raise InvalidIcansObservationError(
                    "total is required unless unable_to_perform=True"
                )

    @classmethod
    def from_answers(cls, answers: CapdAnswers) -> "CapdScore":
        return cls(answers.total)

    @classmethod
    def not_performable(cls) -> "CapdScore":
        return cls(None, unable_to_perform=True)


# Lee 2019, Table 9, CAPD row: (lowest CAPD total of the band, grade); 1-8 is
# printed under grades 1 and 2, told apart only by the consciousness row.
CAPD_ROW: tuple[tuple[int, int], ...] = ((9, 3), (1, 1), (0, 0))


def capd_domain_grade(capd: CapdScore) -> int:
    """CAPD row of the Lee 2019 paediatric ICANS table (Table 9):
    1-8 -> grade 1 (the same 1-8 band is printed under grade 2, which is
    separated from grade 1 only by the consciousness row), >= 9 -> grade 3,
    unable to perform CAPD -> grade 4; 0 -> no impairment.
    """
    if capd.unable_to_perform:
        return 4
    assert capd.total is not None  # enforced in __post_init__
    return band(capd.total, CAPD_ROW)


# --------------------------------------------------------------------------
# Other domains (Lee 2019, Table 8; the same rows apply to children, Table 9)
# --------------------------------------------------------------------------
class Consciousness(Enum):
    """Depressed level of consciousness row.  Table 8 footnote: should be
    attributable to no other cause (e.g. no sedating medication)."""

    ALERT = "alert"  # not depressed: grade 0
    AWAKENS_SPONTANEOUSLY = "awakens_spontaneously"  # grade 1
    AWAKENS_TO_VOICE = "awakens_to_voice"  # grade 2
    AWAKENS_ONLY_TO_TACTILE = "awakens_only_to_tactile_stimulus"  # grade 3
    # Grade 4: "unarousable or requires vigorous or repetitive tactile stimuli
    # to arouse. Stupor or coma."
    UNAROUSABLE = "unarousable_or_vigorous_stimuli_stupor_coma"


class Seizure(Enum):
    NONE = "none"
    # Grade 3: "Any clinical seizure focal or generalized that resolves
    # rapidly or nonconvulsive seizures on EEG that resolve with intervention"
    RESOLVES_RAPIDLY = "clinical_resolving_rapidly_or_eeg_resolving_with_intervention"
    # Grade 4: "Life-threatening prolonged seizure (>5 min); or Repetitive
    # clinical or electrical seizures without return to baseline in between"
    LIFE_THREATENING = "prolonged_over_5_min_or_repetitive_without_baseline"


class MotorFinding(Enum):
    """Table 8 footnote: tremors and myoclonus do not influence ICANS grading."""

    NONE = "none"
    # Grade 4: "Deep focal motor weakness such as hemiparesis or paraparesis"
    DEEP_FOCAL_WEAKNESS = "deep_focal_motor_weakness"


class RaisedIcp(Enum):
    """Elevated ICP / cerebral oedema row.  Table 8 footnote: intracranial
    haemorrhage with or without associated oedema is excluded from ICANS
    grading (record it as NONE here and grade it under CTCAE)."""

    NONE = "none"
    # Grade 3: "Focal/local edema on neuroimaging"
    FOCAL_OEDEMA = "focal_local_oedema_on_neuroimaging"
    # Grade 4: "Diffuse cerebral edema on neuroimaging; decerebrate or
    # decorticate posturing; or cranial nerve VI palsy; or papilledema; or
    # Cushing's triad"
    DIFFUSE_OEDEMA = "diffuse_cerebral_oedema_on_neuroimaging"
    DECEREBRATE_OR_DECORTICATE_POSTURING = "decerebrate_or_decorticate_posturing"
    CRANIAL_NERVE_VI_PALSY = "cranial_nerve_vi_palsy"
    PAPILLOEDEMA = "papilloedema"
    CUSHINGS_TRIAD = "cushings_triad"


class IcansDomain(str, Enum):
    ICE = "ice"
    CAPD = "capd"
    CONSCIOUSNESS = "consciousness"
    SEIZURE = "seizure"
    MOTOR = "motor"
    RAISED_ICP = "raised_icp"
    DEATH = "death"


# Lee 2019, Table 8 (and Table 9): the grade each finding sets in its row.
_CONSCIOUSNESS_GRADE = {
    Consciousness.ALERT: 0,
    Consciousness.AWAKENS_SPONTANEOUSLY: 1,
    Consciousness.AWAKENS_TO_VOICE: 2,
    Consciousness.AWAKENS_ONLY_TO_TACTILE: 3,
    Consciousness.UNAROUSABLE: 4,
}
_SEIZURE_GRADE = {Seizure.NONE: 0, Seizure.RESOLVES_RAPIDLY: 3, Seizure.LIFE_THREATENING: 4}
_MOTOR_GRADE = {MotorFinding.NONE: 0, MotorFinding.DEEP_FOCAL_WEAKNESS: 4}
_RAISED_ICP_GRADE = {
    RaisedIcp.NONE: 0,
    RaisedIcp.FOCAL_OEDEMA: 3,
    RaisedIcp.DIFFUSE_OEDEMA: 4,
    RaisedIcp.DECEREBRATE_OR_DECORTICATE_POSTURING: 4,
    RaisedIcp.CRANIAL_NERVE_VI_PALSY: 4,
    RaisedIcp.PAPILLOEDEMA: 4,
    RaisedIcp.CUSHINGS_TRIAD: 4,
}


@dataclass(frozen=True)
class IcansObservation:
    """One ICANS assessment.

    Exactly one encephalopathy tool must be supplied, chosen by age
    (Lee 2019): ``ice`` for age >= 12 years, ``capd`` for age < 12 years
    (or for age >= 12 with ``developmental_delay=True``).
    ``died_of_icans``: death due to ICANS (Lee 2019, ICANS text: grade 5).
    """

    age_years: Annotated[float, Field(ge=0, le=130)]
    ice: IceScore | None = None
    capd: CapdScore | None = None
    consciousness: Consciousness = Consciousness.ALERT
    seizure: Seizure = Seizure.NONE
    motor: MotorFinding = MotorFinding.NONE
    raised_icp: RaisedIcp = RaisedIcp.NONE
    developmental_delay: bool = False
    died_of_icans: bool = False

    def __post_init__(self) -> None:
        check_fields(self, InvalidIcansObservationError)
        age = self.age_years
        child = age < CAPD_MIN_AGE_FOR_ICE_YEARS
        if self.ice is not None and self.capd is not None:
            raise WrongEncephalopathyToolError(
                "both ice and capd supplied; exactly one encephalopathy tool applies"
            )
        if child:
            if self.ice is not None:
                raise WrongEncephalopathyToolError(
                    f"ice supplied for age_years={age} (< 12): use capd (Lee 2019, Table 9)"
                )
            if self.capd is None:
                raise WrongEncephalopathyToolError(
                    f"capd is required for age_years={age} (< 12) (Lee 2019, Table 9)"
                )
        else:
            if self.capd is not None and not self.developmental_delay:
                raise WrongEncephalopathyToolError(
                    f"capd supplied for age_years={age} (>= 12): use ice (Lee 2019, "
                    "Table 8) unless developmental_delay=True"
                )
            if self.ice is None and self.capd is None:
                raise WrongEncephalopathyToolError(
                    f"ice is required for age_years={age} (>= 12) (Lee 2019, Table 8)"
                )

        # An ICE of 0 "because unarousable" (Table 8) describes the same
        # finding as the grade-4 consciousness cell; both must agree.
        if self.ice is not None and self.ice.unarousable and (
            self.consciousness is not Consciousness.UNAROUSABLE
        ):
            raise InvalidIcansObservationError(
                f"ice.unarousable=True contradicts consciousness={self.consciousness.name}"
            )


@dataclass(frozen=True)
class IcansGrade:
    grade: int
    drivers: tuple[IcansDomain, ...]


def grade_icans(obs: IcansObservation) -> IcansGrade:
    """ASTCT ICANS grade: Lee 2019 Table 8 (ICE) or Table 9 (CAPD).

    Table 8 footnote: "ICANS grade is determined by the most severe event
    (ICE score, level of consciousness, seizure, motor findings, raised
    ICP/cerebral edema) not attributable to any other cause".
    """
    if obs.died_of_icans:
        return IcansGrade(5, (IcansDomain.DEATH,))
    domains: list[tuple[IcansDomain, int]] = []
    if obs.ice is not None:
        domains.append((IcansDomain.ICE, ice_domain_grade(obs.ice)))
    if obs.capd is not None:
        domains.append((IcansDomain.CAPD, capd_domain_grade(obs.capd)))
    domains += [
        (IcansDomain.CONSCIOUSNESS, _CONSCIOUSNESS_GRADE[obs.consciousness]),
        (IcansDomain.SEIZURE, _SEIZURE_GRADE[obs.seizure]),
        (IcansDomain.MOTOR, _MOTOR_GRADE[obs.motor]),
        (IcansDomain.RAISED_ICP, _RAISED_ICP_GRADE[obs.raised_icp]),
    ]
    worst = max(g for _, g in domains)
    if worst == 0:
        return IcansGrade(0, ())
    return IcansGrade(worst, tuple(d for d, g in domains if g == worst))
