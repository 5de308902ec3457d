"""Clinical observations recorded by centres through the assessment service (issue 11 item 1),
before the infusion (a baseline) as after it, each at its clinical time.

The kinds carry what the grading rules read (services/clinical/crs.py and icans.py, ASTCT
consensus, Lee et al. 2019), as the bedside records it: vital signs (temperature, blood
pressure, the support hypotension needed, oxygen support), neurological assessments (ICE or
CAPD, consciousness, seizures, motor findings, raised intracranial pressure), treatments
given (tocilizumab, corticosteroids), blood counts (neutrophils, platelets, lymphocytes, B
cells, CAR-T cells), hospital admission and discharge, adverse events (CTCAE v5 term and grade,
seriousness, attribution), lupus disease activity (SLEDAI-2K, DORIS), molecular MRD (BCR::ABL1
by qRT-PCR), relapse or progression,
last contact and death. The
enumerations' values are the rules' own (a test holds them equal: tests/unit/test_observations.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.base import Contract


class HypotensionSupport(StrEnum):
    """What hypotension needed (Lee 2019, ASTCT CRS table, hypotension row)."""

    NONE = "none"
    NOT_REQUIRING_VASOPRESSORS = "not_requiring_vasopressors"
    ONE_VASOPRESSOR = "one_vasopressor_with_or_without_vasopressin"
    MULTIPLE_VASOPRESSORS = "multiple_vasopressors_excluding_vasopressin"


class OxygenDevice(StrEnum):
    """How oxygen was delivered (Lee 2019, ASTCT CRS table, hypoxia row; a nasal cannula is
    low- or high-flow by its flow)."""

    NONE = "none"
    NASAL_CANNULA = "nasal_cannula"
    BLOW_BY = "blow_by"
    FACEMASK = "facemask"
    NONREBREATHER_MASK = "nonrebreather_mask"
    VENTURI_MASK = "venturi_mask"
    CPAP = "cpap"
    BIPAP = "bipap"
    MECHANICAL_VENTILATION = "intubation_mechanical_ventilation"


class VitalSigns(Contract):
    """One set of vital signs: the temperature, the blood pressure, whether hypotension needed
    fluids or vasopressors, and the oxygen support (its flow for a nasal cannula)."""

    kind: Literal["vital_signs"] = "vital_signs"
    temperature_c: Annotated[float, Field(ge=25.0, le=45.0)]
    systolic_mmhg: Annotated[int, Field(ge=20, le=300)] | None = None
    diastolic_mmhg: Annotated[int, Field(ge=10, le=200)] | None = None
    hypotension: HypotensionSupport = HypotensionSupport.NONE
    oxygen: OxygenDevice = OxygenDevice.NONE
    oxygen_flow_l_min: Annotated[float, Field(gt=0.0, le=80.0)] | None = None

    @model_validator(mode="after")
    def _flow(self) -> "VitalSigns":
        if self.oxygen is OxygenDevice.NASAL_CANNULA and self.oxygen_flow_l_min is None:
            raise ValueError("a nasal cannula gives its oxygen_flow_l_min (low-flow <= 6 L/min, high-flow above)")
        if self.oxygen is OxygenDevice.NONE and self.oxygen_flow_l_min is not None:
            raise ValueError("oxygen_flow_l_min is given only with an oxygen device")
        return self


class Agent(StrEnum):
    TOCILIZUMAB = "tocilizumab"
    CORTICOSTEROID = "corticosteroid"
    OTHER = "other"


class TreatmentGiven(Contract):
    """A treatment given: tocilizumab and corticosteroids are what CRS and ICANS grading and
    their episodes weigh (Lee 2019: after antipyretic or anti-cytokine therapy fever is no
    longer needed to grade CRS)."""

    kind: Literal["treatment"] = "treatment"
    agent: Agent
    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    dose_mg: Annotated[float, Field(gt=0, le=100_000)] | None = None
    indication: Literal["crs", "icans", "other"]


class IceItems(Contract):
    """The ICE score's items (Lee 2019, ICANS: orientation 4, naming 3, following commands 1,
    writing 1, attention 1; 10 = no impairment); `unarousable`: ICE 0 because the patient
    cannot be roused to perform it."""

    orientation: Annotated[int, Field(ge=0, le=4)]
    naming: Annotated[int, Field(ge=0, le=3)]
    following_commands: Annotated[int, Field(ge=0, le=1)]
    writing: Annotated[int, Field(ge=0, le=1)]
    attention: Annotated[int, Field(ge=0, le=1)]
    unarousable: bool = False


class CapdFrequency(StrEnum):
    NEVER = "never"
    RARELY = "rarely"
    SOMETIMES = "sometimes"
    OFTEN = "often"
    ALWAYS = "always"


class CapdItems(Contract):
    """The eight questions of the Cornell Assessment of Pediatric Delirium (Traube 2014), for a
    child under 12 (or older with developmental delay)."""

    eye_contact: CapdFrequency
    purposeful_actions: CapdFrequency
    aware_of_surroundings: CapdFrequency
    communicates_needs: CapdFrequency
    restless: CapdFrequency
    inconsolable: CapdFrequency
    underactive: CapdFrequency
    slow_to_respond: CapdFrequency


class Consciousness(StrEnum):
    ALERT = "alert"
    AWAKENS_SPONTANEOUSLY = "awakens_spontaneously"
    AWAKENS_TO_VOICE = "awakens_to_voice"
    AWAKENS_ONLY_TO_TACTILE = "awakens_only_to_tactile_stimulus"
    UNAROUSABLE = "unarousable_or_vigorous_stimuli_stupor_coma"


class Seizure(StrEnum):
    NONE = "none"
    RESOLVES_RAPIDLY = "clinical_resolving_rapidly_or_eeg_resolving_with_intervention"
    LIFE_THREATENING = "prolonged_over_5_min_or_repetitive_without_baseline"


class MotorFinding(StrEnum):
    NONE = "none"
    DEEP_FOCAL_WEAKNESS = "deep_focal_motor_weakness"


class RaisedIcp(StrEnum):
    NONE = "none"
    FOCAL_OEDEMA = "focal_local_oedema_on_neuroimaging"
    DIFFUSE_OEDEMA = "diffuse_cerebral_oedema_on_neuroimaging"
    DECEREBRATE_OR_DECORTICATE_POSTURING = "decerebrate_or_decorticate_posturing"
    CRANIAL_NERVE_VI_PALSY = "cranial_nerve_vi_palsy"
    PAPILLOEDEMA = "papilloedema"
    CUSHINGS_TRIAD = "cushings_triad"


class NeurologicalAssessment(Contract):
    """A neurological assessment for ICANS (Lee 2019, Tables 8 and 9): the ICE score (12 years
    and older), or the CAPD (under 12, or older with `developmental_delay`), or the CAPD could
    not be performed; the level of consciousness, seizures, motor findings and raised
    intracranial pressure."""

    kind: Literal["neurological"] = "neurological"
    ice: IceItems | None = None
    capd: CapdItems | None = None
    capd_unable_to_perform: bool = False
    consciousness: Consciousness = Consciousness.ALERT
    seizure: Seizure = Seizure.NONE
    motor: MotorFinding = MotorFinding.NONE
    raised_icp: RaisedIcp = RaisedIcp.NONE
    developmental_delay: bool = False

    @model_validator(mode="after")
    def _one_tool(self) -> "NeurologicalAssessment":
        tools = (self.ice is not None) + (self.capd is not None) + self.capd_unable_to_perform
        if tools != 1:
            raise ValueError("a neurological assessment gives one encephalopathy tool: ice, capd or "
                             "capd_unable_to_perform")
        return self


Count = Annotated[float, Field(ge=0, le=1_000_000)]


class BloodCounts(Contract):
    """Blood counts in cells per microlitre (= per mm3): the absolute neutrophil count, the
    platelets, the lymphocytes, the CD19+ B cells and the CAR-T cells, as measured."""

    kind: Literal["blood_counts"] = "blood_counts"
    anc_per_ul: Count | None = None
    platelets_per_ul: Annotated[float, Field(ge=0, le=5_000_000)] | None = None
    lymphocytes_per_ul: Count | None = None
    b_cells_per_ul: Count | None = None
    car_t_per_ul: Count | None = None

    @model_validator(mode="after")
    def _some(self) -> "BloodCounts":
        if all(v is None for v in (self.anc_per_ul, self.platelets_per_ul, self.lymphocytes_per_ul,
                                   self.b_cells_per_ul, self.car_t_per_ul)):
            raise ValueError("blood counts give at least one count")
        return self


class HospitalAdmission(Contract):
    kind: Literal["admission"] = "admission"
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class HospitalDischarge(Contract):
    kind: Literal["discharge"] = "discharge"


class Attribution(StrEnum):
    """How the investigator relates an adverse event to the cell therapy (the usual five-point
    scale of clinical trial safety reporting, ICH E2A)."""

    UNRELATED = "unrelated"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    PROBABLE = "probable"
    DEFINITE = "definite"


class AdverseEvent(Contract):
    """An adverse event by its CTCAE v5.0 term and grade (1 mild to 5 death related to the
    event), whether it is serious (ICH E2A: results in death, is life-threatening, requires or
    prolongs hospitalisation, results in disability, a congenital anomaly, or is otherwise
    medically important) and its attribution to the product; `meddra_code`: the term's MedDRA
    lowest-level code, where the centre codes it."""

    kind: Literal["adverse_event"] = "adverse_event"
    ctcae_term: Annotated[str, Field(min_length=2, max_length=120)]
    meddra_code: Annotated[str, Field(pattern=r"^[0-9]{8}$")] | None = None
    grade: Annotated[int, Field(ge=1, le=5)]
    serious: bool
    attribution: Attribution


class SledaiDescriptor(StrEnum):
    """The 24 SLEDAI-2K descriptors (Gladman et al., J Rheumatol 2002;29:288-291)."""

    SEIZURE = "seizure"
    PSYCHOSIS = "psychosis"
    ORGANIC_BRAIN_SYNDROME = "organic_brain_syndrome"
    VISUAL_DISTURBANCE = "visual_disturbance"
    CRANIAL_NERVE_DISORDER = "cranial_nerve_disorder"
    LUPUS_HEADACHE = "lupus_headache"
    CVA = "cerebrovascular_accident"
    VASCULITIS = "vasculitis"
    ARTHRITIS = "arthritis"
    MYOSITIS = "myositis"
    URINARY_CASTS = "urinary_casts"
    HAEMATURIA = "haematuria"
    PROTEINURIA = "proteinuria"
    PYURIA = "pyuria"
    RASH = "rash"
    ALOPECIA = "alopecia"
    MUCOSAL_ULCERS = "mucosal_ulcers"
    PLEURISY = "pleurisy"
    PERICARDITIS = "pericarditis"
    LOW_COMPLEMENT = "low_complement"
    INCREASED_DNA_BINDING = "increased_dna_binding"
    FEVER = "fever"
    THROMBOCYTOPENIA = "thrombocytopenia"
    LEUKOPENIA = "leukopenia"


class LupusAssessment(Contract):
    """A lupus disease-activity assessment (seed 003): the SLEDAI-2K descriptors present, the
    physician's global assessment (0-3), the glucocorticoid dose as prednisone, and the
    maintenance treatments taken (DORIS 2021: van Vollenhoven et al., Ann Rheum Dis 2021)."""

    kind: Literal["lupus_assessment"] = "lupus_assessment"
    descriptors: Annotated[list[SledaiDescriptor], Field(max_length=24)] = Field(default_factory=list)
    physician_global_assessment: Annotated[float, Field(ge=0.0, le=3.0)]
    prednisone_equivalent_mg_per_day: Annotated[float, Field(ge=0.0, le=2000.0)]
    on_antimalarial: bool = False
    on_immunosuppressive: bool = False
    on_biologic: bool = False
    maintenance_stable: bool = True

    @model_validator(mode="after")
    def _once(self) -> "LupusAssessment":
        if len(set(self.descriptors)) != len(self.descriptors):
            raise ValueError("a SLEDAI-2K descriptor is named once")
        return self


class Relapse(Contract):
    """A relapse or progression documented at the observation's time: haematological (marrow or
    blood blasts), extramedullary, or molecular (MRD reappearing)."""

    kind: Literal["relapse"] = "relapse"
    site: Literal["haematological", "extramedullary", "molecular"]


class MolecularTarget(StrEnum):
    """The BCR::ABL1 transcript measured: p190 (e1a2, most Ph+ ALL) or p210 (e13a2/e14a2)."""

    BCR_ABL1_P190 = "bcr_abl1_p190"
    BCR_ABL1_P210 = "bcr_abl1_p210"


class MolecularMrd(Contract):
    """A molecular MRD result by qRT-PCR (seed 001: BCR::ABL1 in Ph+ ALL): whether the transcript
    was detected, whether within the assay's quantitative range, its ratio to the ABL1 control
    gene in % (when quantifiable) and the ABL1 copies, which give an undetectable result its
    sensitivity (Cross et al., Leukemia 2015;29:999: 10,000 copies for 10^-4). Read by
    services/clinical/molecular_mrd.py."""

    kind: Literal["molecular_mrd"] = "molecular_mrd"
    target: MolecularTarget
    specimen: Literal["bone_marrow", "peripheral_blood"]
    detected: bool
    quantifiable: bool = False
    ratio_percent: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    control_copies: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "MolecularMrd":
        if self.quantifiable and not self.detected:
            raise ValueError("quantifiable: a transcript not detected cannot be quantified")
        if self.quantifiable and self.ratio_percent is None:
            raise ValueError("ratio_percent: a quantifiable result gives its ratio to ABL1")
        if not self.quantifiable and self.ratio_percent is not None:
            raise ValueError("ratio_percent: given for a result that was not quantifiable (quantifiable: false)")
        if not self.detected and self.control_copies is None:
            raise ValueError("control_copies: an undetectable result names its ABL1 copies (its sensitivity)")
        return self


class LastContact(Contract):
    """The subject was last known alive at the observation's time (a follow-up visit or call)."""

    kind: Literal["last_contact"] = "last_contact"


class Death(Contract):
    kind: Literal["death"] = "death"
    cause: Annotated[str, Field(min_length=1, max_length=200)]


Observation = Annotated[VitalSigns | TreatmentGiven | NeurologicalAssessment | BloodCounts | HospitalAdmission
                        | HospitalDischarge | AdverseEvent | LupusAssessment | Relapse | LastContact | Death
                        | MolecularMrd,
                        Field(discriminator="kind")]
