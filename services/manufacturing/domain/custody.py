"""Custody: a state machine per unit, as one table (issue 9, item 2; docs/custody.md).

Each unit (bag) of a chain of identity moves through the states of `CustodyState` by steps.
A step is taken by an organisation, in a role, at a location and time, after scanning the
bag's label. It is refused, with a reason code, when

- the label scanned is not the unit named (`WRONG_IDENTIFIER`);
- the unit does not exist (`UNKNOWN_UNIT`);
- the step does not lead from the unit's state, or not for its kind (`CUSTODY_OUT_OF_SEQUENCE`);
- the organisation does not hold the unit, or (for `received`) is not where it was shipped
  (`NOT_HOLDER`);
- the organisation is not of the kind the step is taken at, or the role may not take it
  (`ROLE_NOT_PERMITTED`);
- a shipment names no destination, or one a unit of its kind may not go to: starting material
  goes to a facility, a product only to its own subject's centre (`INVALID_DESTINATION`);
- a discard or a return gives no reason (`REASON_REQUIRED`);
- it is dated before the unit's last step (`STEP_BEFORE_PREVIOUS`);
- the unit is quarantined (a temperature excursion, domain/condition.py, or its receipt back at
  the facility after a return) and the step is not one a quarantined unit may take: only
  received, stored, tested or discarded (`QUARANTINED`).

Sources: FACT-JACIE International Standards for Hematopoietic Cellular Therapy (8th ed.),
parts C and D: a written chain of custody from collection through transport, processing,
storage and distribution to the recipient, each step traceable to the person performing it;
EU GMP Part IV (ATMPs), 11.5 (release) and 12.3 (transport conditions, traceability);
21 CFR 1271.290 (tracking from donor to recipient); ISBT 128 labelling of each divided unit
(docs/identifiers.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.access import OrgKind, Role
from contracts.custody import CustodyState, CustodyStep, StorageCondition, UnitKind
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import CustodyStepRecorded

S, T, K = CustodyState, CustodyStep, UnitKind
CENTRE, FACILITY = OrgKind.CENTRE, OrgKind.FACILITY


class WrongIdentifier(CommandRefused):
    code = "WRONG_IDENTIFIER"


class UnknownUnit(CommandRefused):
    code = "UNKNOWN_UNIT"


class OutOfSequence(CommandRefused):
    code = "CUSTODY_OUT_OF_SEQUENCE"


class NotHolder(CommandRefused):
    code = "NOT_HOLDER"


class RoleNotPermitted(CommandRefused):
    code = "ROLE_NOT_PERMITTED"


class InvalidDestination(CommandRefused):
    code = "INVALID_DESTINATION"


class ReasonRequired(CommandRefused):
    code = "REASON_REQUIRED"


class StepBeforePrevious(CommandRefused):
    code = "STEP_BEFORE_PREVIOUS"


class Quarantined(CommandRefused):
    code = "QUARANTINED"


class StepHasItsOwnCommand(CommandRefused):
    code = "STEP_HAS_ITS_OWN_COMMAND"


class Expired(CommandRefused):
    code = "EXPIRED"


# Who handles units, by the kind of organisation they act for. The CLI's data loader
# (`celltrail load`) submits records made elsewhere, for the organisation they name.
_HANDLERS = frozenset({Role.NURSE, Role.PHYSICIAN, Role.OPERATOR, Role.COURIER, Role.FACILITY_SYSTEM,
                       Role.DATA_LOADER})
_FACILITY_STAFF = frozenset({Role.OPERATOR, Role.FACILITY_SYSTEM, Role.DATA_LOADER})
_QC = frozenset({Role.QC_ANALYST, Role.QUALIFIED_PERSON, Role.FACILITY_SYSTEM, Role.DATA_LOADER})
_CLINICAL = frozenset({Role.NURSE, Role.PHYSICIAN, Role.DATA_LOADER})
_DISPOSERS = frozenset({Role.PHYSICIAN, Role.NURSE, Role.OPERATOR, Role.QUALIFIED_PERSON, Role.FACILITY_SYSTEM,
                        Role.DATA_LOADER})


@dataclass(frozen=True)
class Transition:
    """`step` leads a unit of one of `kinds` from any of `sources` to `target`; it is taken
    by an organisation of one of `at` in one of `roles`: the unit's holder, or for a receipt
    the organisation it was shipped to (`by_destination`)."""

    step: CustodyStep
    kinds: frozenset[UnitKind]
    sources: frozenset[CustodyState]
    target: CustodyState
    at: frozenset[OrgKind]
    roles: frozenset[Role]
    by_destination: bool = False
    needs_destination: bool = False
    needs_reason: bool = False


def _t(step: CustodyStep, kinds: set[UnitKind], sources: set[CustodyState], target: CustodyState,
       at: set[OrgKind], roles: frozenset[Role], **flags: bool) -> Transition:
    return Transition(step, frozenset(kinds), frozenset(sources), target, frozenset(at), roles, **flags)


BOTH = {K.STARTING_MATERIAL, K.PRODUCT}
_ALIVE = {S.COLLECTED, S.IN_TRANSIT, S.RECEIVED, S.AWAITING_QC, S.QC_COMPLETE, S.OUT_OF_SPECIFICATION, S.RELEASED,
          S.STORED, S.PREPARED}

# The state machine. Steps with commands of their own (collection, labelling, release) are
# in `ENTRY` and `RELEASE` below; docs/custody.md draws all of them (a test keeps it so).
TRANSITIONS: tuple[Transition, ...] = (
    # the starting material, centre -> facility; a released product, facility -> centre
    _t(T.SHIPPED, BOTH, {S.COLLECTED, S.RELEASED, S.STORED}, S.IN_TRANSIT, {CENTRE, FACILITY}, _HANDLERS,
       needs_destination=True),
    # a receipt ends a shipment, or a return: a returned bag arrives back at its facility
    # quarantined until quality assurance decides (apply_step)
    _t(T.RECEIVED, BOTH, {S.IN_TRANSIT, S.RETURNED}, S.RECEIVED, {CENTRE, FACILITY}, _HANDLERS, by_destination=True),
    _t(T.MANUFACTURING_STARTED, {K.STARTING_MATERIAL}, {S.RECEIVED, S.STORED}, S.IN_MANUFACTURING, {FACILITY},
       _FACILITY_STAFF),
    _t(T.STORED, BOTH, {S.RECEIVED, S.COLLECTED, S.RELEASED}, S.STORED, {CENTRE, FACILITY}, _HANDLERS),
    # thawed (cryopreserved) or prepared (fresh) for infusion, at the treating centre
    _t(T.PREPARED, {K.PRODUCT}, {S.RECEIVED, S.STORED}, S.PREPARED, {CENTRE}, _CLINICAL),
    _t(T.DISCARDED, BOTH, _ALIVE - {S.IN_TRANSIT}, S.DISCARDED, {CENTRE, FACILITY}, _DISPOSERS, needs_reason=True),
    _t(T.RETURNED, {K.PRODUCT}, {S.RECEIVED, S.STORED}, S.RETURNED, {CENTRE}, _CLINICAL, needs_destination=True,
       needs_reason=True),
)
BY_STEP: dict[CustodyStep, Transition] = {t.step: t for t in TRANSITIONS}
# What a quarantined unit may still go through: arriving where it was sent, being kept, being
# tested, and being destroyed (EU GMP Part IV 12.3: quarantine until the deviation is assessed).
QUARANTINE_ALLOWS = frozenset({T.RECEIVED, T.STORED, T.QC_RESULTS_RECORDED, T.OUT_OF_SPECIFICATION, T.DISCARDED})

# How units come to exist, and the release (its own command, by the qualified person).
ENTRY: dict[UnitKind, tuple[str, CustodyState]] = {
    K.STARTING_MATERIAL: ("collected (RecordApheresisCollection)", S.COLLECTED),
    K.PRODUCT: ("labelled (RegisterProductUnits)", S.AWAITING_QC),
}
# Quality control (RecordQcResults, domain/release.py): results judged against the programme's
# product specification take an awaiting unit to one of two states, by the facility's QC.
QC = ("qc_results_recorded (RecordQcResults): within specification", frozenset({S.AWAITING_QC}), S.QC_COMPLETE)
QC_FAILED = ("qc_results_recorded (RecordQcResults): out of specification", frozenset({S.AWAITING_QC}),
             S.OUT_OF_SPECIFICATION)
QC_ROLES = _QC
# The release record (RecordProductRelease) takes effect with the QP's approval signature; an
# out-of-specification unit is released only on the exceptional-release path (release.py).
RELEASE = ("released (RecordProductRelease, signed by the QP)", frozenset({S.QC_COMPLETE}), S.RELEASED)
EXCEPTIONAL_RELEASE = ("released out of specification (EU GMP Part IV 11.5: request, risk assessment, "
                       "the physician's signed acceptance, then the QP's signed release)",
                       frozenset({S.OUT_OF_SPECIFICATION}), S.RELEASED)
# Steps with a command of their own: not taken with RecordCustodyStep.
OWN_COMMAND = {T.QC_RESULTS_RECORDED: "RecordQcResults", T.OUT_OF_SPECIFICATION: "RecordQcResults"}
# The end of a bag's path: infusion's record (RecordInfusion, after a go at the bedside),
# which manufacturing learns from infusion's events (manufacturing.UnitInfusionRecorded).
INFUSION = ("infused (infusion's RecordInfusion, after a bedside go)", frozenset({S.PREPARED}), S.INFUSED)
TERMINAL = frozenset({S.IN_MANUFACTURING, S.DISCARDED, S.INFUSED})


@dataclass(frozen=True)
class Acting:
    """Who takes a step: the organisation, its kind, and the role its principal acts in."""

    org_id: str
    org_kind: OrgKind
    role: Role


@dataclass
class Unit:
    """One unit's custody, as its chain of identity's events left it."""

    unit_id: str
    kind: UnitKind
    state: CustodyState
    holder: str  # the organisation responsible for it now
    destination: str | None = None  # where it is being shipped or was returned to
    last_at: datetime | None = None
    history: list[CustodyStep] = field(default_factory=list)
    storage: StorageCondition = StorageCondition.REFRIGERATED  # its temperature range (domain/condition.py)
    quarantined: bool = False  # an excursion awaits quality assurance's disposition
    made_at: datetime | None = None  # labelled: the end of manufacture, where its shelf life starts
    out_of_specification: bool = False  # its QC results failed the specification (release.py)
    failed: list[str] = field(default_factory=list)  # the attributes that failed
    expires_at: datetime | None = None  # the end of its shelf life, by the specification
    use_within_minutes: int | None = None  # from thawing or preparation to infusion


def acting_role(roles: set[Role], transition: Transition) -> Role | None:
    """The role, of those the principal holds for the organisation, the step is taken in."""
    return next((r for r in sorted(roles) if r in transition.roles), None)


def check_step(unit: Unit | None, *, unit_id: str, scanned: str, step: CustodyStep, acting: Acting,
               location: str, at: datetime, coi_id: str, subject_id: str, subject_centre: str,
               destination: str | None, destination_kind: OrgKind | None,
               reason: str | None) -> CustodyStepRecorded:
    """The event of `step` taken on `unit`, or the refusal (module docstring)."""
    transition = transition_of(step)
    check_label(scanned, unit_id)
    if unit is None:
        raise UnknownUnit(f"unit {unit_id} was never collected or labelled under COI {coi_id}")
    if unit.kind not in transition.kinds or unit.state not in transition.sources:
        allowed = ", ".join(sorted(s.value for s in transition.sources)) if unit.kind in transition.kinds else None
        raise OutOfSequence(
            f"unit {unit_id} ({unit.kind}) is {unit.state}: {step} "
            + (f"follows only {allowed}" if allowed else f"is not a step of a {unit.kind} unit"))
    if unit.quarantined and step not in QUARANTINE_ALLOWS:
        raise Quarantined(f"unit {unit_id} is quarantined (a temperature excursion, or its return): it may only be "
                          "received, stored, tested or discarded until quality assurance records a disposition")
    if transition.by_destination:
        if acting.org_id != unit.destination:
            raise NotHolder(f"unit {unit_id} was shipped to {unit.destination}, not to {acting.org_id}")
    elif acting.org_id != unit.holder:
        raise NotHolder(f"unit {unit_id} is held by {unit.holder}, not by {acting.org_id}")
    if acting.org_kind not in transition.at:
        raise RoleNotPermitted(f"{step} is taken at a {' or '.join(sorted(transition.at))}, and {acting.org_id} "
                               f"is a {acting.org_kind}")
    if acting.role not in transition.roles:
        raise RoleNotPermitted(f"a {acting.role} may not record {step}; it is recorded by "
                               f"{', '.join(sorted(r.value for r in transition.roles))}")
    if transition.needs_destination:
        _check_destination(unit, step, destination, destination_kind, subject_centre)
    elif destination is not None:
        raise InvalidDestination(f"{step} has no destination; {destination} was given")
    if transition.needs_reason and not reason:
        raise ReasonRequired(f"a unit is {step} only with the reason why")
    if unit.last_at is not None and at < unit.last_at:
        raise StepBeforePrevious(f"{step} at {at.isoformat()} precedes unit {unit_id}'s last step at "
                                 f"{unit.last_at.isoformat()}")
    return CustodyStepRecorded(unit_id=unit_id, coi_id=coi_id, subject_id=subject_id, unit_kind=unit.kind, step=step,
                               from_state=unit.state, to_state=transition.target, org_id=acting.org_id,
                               role=acting.role.value, location=location, at=at, scanned_id=scanned,
                               destination_org_id=destination, reason=reason)


def transition_of(step: CustodyStep) -> Transition:
    if step in OWN_COMMAND:
        raise StepHasItsOwnCommand(f"{step} is recorded with {OWN_COMMAND[step]}, with the results judged against "
                                   "the product specification, not as a bare custody step")
    return BY_STEP[step]


def check_label(scanned: str, unit_id: str) -> None:
    """The label read off the bag must be the unit named."""
    if scanned != unit_id:
        if scanned[:14] != unit_id[:14]:
            raise ChainOfIdentityMismatch(
                f"the label scanned, {scanned}, is of COI {scanned[:14]}, not of unit {unit_id}'s COI {unit_id[:14]}: "
                "the bag belongs to another chain of identity")
        raise WrongIdentifier(f"the label scanned, {scanned}, is not unit {unit_id}")


def _check_destination(unit: Unit, step: CustodyStep, destination: str | None, kind: OrgKind | None,
                       subject_centre: str) -> None:
    if destination is None:
        raise InvalidDestination(f"a unit is {step} only to a named organisation (destination_org_id)")
    if kind is None:
        raise InvalidDestination(f"{destination} is not an organisation of the network")
    if destination == unit.holder:
        raise InvalidDestination(f"unit {unit.unit_id} is already held by {destination}")
    if step is T.RETURNED or (unit.kind is K.STARTING_MATERIAL and unit.state is S.COLLECTED):
        if kind is not FACILITY:
            raise InvalidDestination(f"{destination} is a {kind}: unit {unit.unit_id} goes to a manufacturing facility")
    elif unit.kind is K.PRODUCT and destination != subject_centre:
        # the one mix-up that kills: a product goes only to its own patient's centre
        raise InvalidDestination(f"unit {unit.unit_id} is for a subject of {subject_centre}; it may not be shipped "
                                 f"to {destination}")


def apply_step(unit: Unit, event: CustodyStepRecorded) -> None:
    unit.state, unit.last_at = event.to_state, event.at
    unit.history.append(event.step)
    if event.step is T.SHIPPED:
        unit.destination = event.destination_org_id
    elif event.step is T.RECEIVED:
        unit.holder, unit.destination = event.org_id, None
        if event.from_state is S.RETURNED:
            # back from a centre: quarantined until quality assurance assesses it (EU GMP Part I,
            # chapter 5, returned products: destroyed unless, beyond doubt, their quality is
            # satisfactory, after a critical assessment by quality control)
            unit.quarantined = True
    elif event.step is T.RETURNED:
        unit.destination = event.destination_org_id


def mermaid() -> str:
    """The state machine as a Mermaid state diagram, generated from the table."""
    lines = ["stateDiagram-v2"]
    for kind, (label, state) in ENTRY.items():
        lines.append(f"    [*] --> {state.value}: {label}")
    for label, sources, target in (QC, QC_FAILED, RELEASE, EXCEPTIONAL_RELEASE, INFUSION):
        lines += [f"    {s.value} --> {target.value}: {label}" for s in sorted(sources)]
    for t in TRANSITIONS:
        kinds = "" if t.kinds == frozenset(BOTH) else f" [{', '.join(sorted(k.value for k in t.kinds))}]"
        for source in sorted(t.sources):
            lines.append(f"    {source.value} --> {t.target.value}: {t.step.value}{kinds}")
    lines += [f"    {s.value} --> [*]" for s in sorted(TERMINAL)]
    return "\n".join(lines)


def table_markdown() -> str:
    """Who takes each step, where, from which states: generated from the table."""
    rows = ["| step | units | from | to | taken by (organisation) | roles | needs |", "|---|---|---|---|---|---|---|"]
    for t in TRANSITIONS:
        needs = [n for n, on in (("destination", t.needs_destination), ("reason", t.needs_reason)) if on]
        rows.append(f"| `{t.step.value}` | {', '.join(sorted(k.value for k in t.kinds))} | "
                    f"{', '.join(sorted(s.value for s in t.sources))} | {t.target.value} | "
                    f"{'the destination' if t.by_destination else 'the holder'} "
                    f"({' or '.join(sorted(t.at))}) | {', '.join(sorted(r.value for r in t.roles))} | "
                    f"{', '.join(needs) or '-'} |")
    qc = ", ".join(sorted(r.value for r in QC_ROLES))
    rows.append(f"| `qc_results_recorded` (RecordQcResults) | product | awaiting_qc | qc_complete or "
                f"out_of_specification, by the specification | the holder (facility) | {qc} | results |")
    return "\n".join(rows)


if __name__ == "__main__":  # `python -m services.manufacturing.domain.custody`: the diagram and table
    print("```mermaid\n" + mermaid() + "\n```\n\n" + table_markdown())
