"""Infusion handlers: the infusion itself, and the views of manufacturing's events it rests on
(released products; the units of labelled products, for the bedside gate)."""

from __future__ import annotations

from contracts.commands import PrescribeCellDose, PrescribeLymphodepletion, RecordInfusion, RecordLymphodepletionDose
from contracts.custody import CustodyState, CustodyStep, Disposition
from contracts.events import (
    BedsideCheckRecorded,
    CustodyStepRecorded,
    ExcursionDetected,
    ProductReleased,
    ProductUnitsRegistered,
    QaDispositionRecorded,
    QcResultsRecorded,
    ReleaseCertified,
    ResponseAssessed,
    ResponseAssessmentCorrected,
    SubjectEnrolled,
)
from services.infusion.application.ports import (
    Policies,
    Release,
    ReleasedProducts,
    SubjectPolicy,
    Treatments,
    Units,
)
from services.infusion.domain import dosing
from services.infusion.domain.second_infusion import check_second, decide
from services.kernel.clinical_dates import start_of_day
from services.infusion.domain.bedside import (
    BedsideCheckRequired,
    NoGoAtTheBedside,
    UnitView,
    bedside_stream,
    check_infusion,
    judge,
)
from services.infusion.domain.model import InfusionHistory, ReleasedProduct, infusion_stream
from services.kernel.acting import ActingPrincipal, imports_records
from services.kernel.aggregate import rebuild
from services.kernel.streams import Streams, reads
from services.kernel.subjects import SubjectCentres, learn_subject_centres


@reads(lambda cmd: [infusion_stream(cmd.subject_id), *([bedside_stream(cmd.unit_id)] if cmd.unit_id else [])])
async def record_infusion(cmd: RecordInfusion, streams: Streams, products: ReleasedProducts, units: Units,
                          subject_centres: SubjectCentres, principal: ActingPrincipal | None,
                          policies: Policies, treatments: Treatments) -> None:
    events, version = await streams.load(infusion_stream(cmd.subject_id))
    history = rebuild(InfusionHistory(cmd.subject_id), events)
    if history.infused_cois and await policies.policy_of(cmd.subject_id) is not None:
        check_second(cmd.subject_id, history.second_infusion)  # seed 000: only if day 28 indicated it
    check = dose = None
    labelled = bool(await units.of_coi(cmd.coi_id))
    if cmd.unit_id is None and not labelled and not imports_records(principal):
        # FACT-JACIE D7/D8: no infusion without the two-person check of the bag; a record by
        # COI alone is an import of one made elsewhere (services/kernel/acting.py)
        raise BedsideCheckRequired(f"the product of COI {cmd.coi_id} has no labelled units: an infusion is "
                                   "recorded for a bag (unit_id) after a bedside check said go (bedside_check_id); "
                                   "only an import of records made elsewhere names a COI alone")
    if cmd.unit_id is not None or labelled:
        if cmd.unit_id is None:
            raise BedsideCheckRequired(f"the product of COI {cmd.coi_id} is labelled as units: name the unit "
                                       "infused (unit_id) and the bedside check that said go (bedside_check_id)")
        checks, _ = await streams.load(bedside_stream(cmd.unit_id))
        check = check_infusion(unit_id=cmd.unit_id, coi_id=cmd.coi_id, subject_id=cmd.subject_id,
                               infused_at=cmd.infused_at, check_id=cmd.bedside_check_id,
                               checks=[c for c in checks if isinstance(c, BedsideCheckRecorded)])
        # still a go now: the unit may have been discarded, or another bag infused, since; and
        # the dose given is the prescription's, within its tolerance (domain/dosing.py)
        reasons = judge(await units.get(cmd.unit_id), unit_id=cmd.unit_id, subject_id=cmd.subject_id,
                        subject_centre=await subject_centres.centre_of(cmd.subject_id),
                        infused=cmd.unit_id in history.infused_units, at=cmd.infused_at)
        reasons += dosing.readiness(history, await treatments.of(cmd.subject_id), cmd.unit_id, cmd.infused_at,
                                    cmd.volume_ml)
        dose, reasons = dosing.given_dose(history, cmd, reasons)
        if reasons:
            raise NoGoAtTheBedside("; ".join(f"{r.code}: {r.reason}" for r in reasons))
    new = history.infuse(cmd, await products.get(cmd.coi_id), check, dose)
    await streams.append(infusion_stream(cmd.subject_id), version, new, occurred_at=cmd.infused_at,
                         subject_id=cmd.subject_id)


async def _apply(streams: Streams, subject_id: str, decide, occurred_at) -> None:  # noqa: ANN001
    """`decide(history)`'s events appended to the subject's infusion stream."""
    events, version = await streams.load(infusion_stream(subject_id))
    new = decide(rebuild(InfusionHistory(subject_id), events))
    await streams.append(infusion_stream(subject_id), version, new, occurred_at=occurred_at, subject_id=subject_id)


@reads(lambda cmd: [infusion_stream(cmd.subject_id)])
async def prescribe_lymphodepletion(cmd: PrescribeLymphodepletion, streams: Streams, treatments: Treatments) -> None:
    treatment = await treatments.of(cmd.subject_id)
    await _apply(streams, cmd.subject_id, lambda h: dosing.prescribe_lymphodepletion(h, cmd, treatment),
                 cmd.prescribed_at)


@reads(lambda cmd: [infusion_stream(cmd.subject_id)])
async def record_lymphodepletion_dose(cmd: RecordLymphodepletionDose, streams: Streams,
                                      treatments: Treatments) -> None:
    treatment = await treatments.of(cmd.subject_id)
    await _apply(streams, cmd.subject_id, lambda h: dosing.administer(h, cmd, treatment), cmd.administered_at)


@reads(lambda cmd: [infusion_stream(cmd.subject_id)])
async def prescribe_cell_dose(cmd: PrescribeCellDose, streams: Streams, treatments: Treatments, units: Units,
                              products: ReleasedProducts) -> None:
    treatment = await treatments.of(cmd.subject_id)
    unit = await units.get(cmd.unit_id)
    product = await products.get(unit.coi_id) if unit is not None else None
    await _apply(streams, cmd.subject_id, lambda h: dosing.prescribe_cell_dose(h, cmd, treatment, unit, product),
                 cmd.prescribed_at)


async def on_products_released(events: list[ProductReleased], products: ReleasedProducts, units: Units) -> None:
    """A release record awaiting the qualified person's signature releases no unit yet: its
    units are released by the signature (`on_release_certified`); the product is known at once
    for its COI with its measured content, and the gate judges each unit."""
    await products.add_many([Release(ReleasedProduct(e.coi_id, e.subject_id, e.released_at, e.viable_cells_per_ml,
                                                     e.volume_ml), e.lot_number) for e in events])
    for e in events:
        if not e.awaiting_signature:
            await units.release(e.coi_id)


async def on_release_certified(event: ReleaseCertified, units: Units) -> None:
    await units.certify(event.units)


async def on_units_registered(event: ProductUnitsRegistered, units: Units) -> None:
    await units.register([UnitView(u, event.coi_id, event.subject_id, CustodyState.AWAITING_QC, event.facility_id)
                          for u in event.unit_ids])


async def on_qc_results(event: QcResultsRecorded, units: Units) -> None:
    await units.judged(event.unit_id, within_specification=event.within_specification, expires_at=event.expires_at,
                       use_within_minutes=event.use_within_minutes)


async def on_custody_step(event: CustodyStepRecorded, units: Units) -> None:
    """A product unit's step; QC results recorded as a step (logs from before
    `QcResultsRecorded`) move it too."""
    if event.unit_kind == "product":
        await units.move(event.unit_id, event.to_state, event.org_id if event.step is CustodyStep.RECEIVED else None,
                         prepared_at=event.at if event.step is CustodyStep.PREPARED else None)
        if event.step is CustodyStep.RECEIVED and event.from_state is CustodyState.RETURNED:
            await units.quarantine(event.unit_id, True)  # back at its facility: QA decides (custody.apply_step)


async def on_excursion(event: ExcursionDetected, units: Units) -> None:
    await units.quarantine(event.unit_id, True)


async def on_qa_disposition(event: QaDispositionRecorded, units: Units) -> None:
    await units.quarantine(event.unit_id, False)
    if event.decision is Disposition.DISCARD:
        await units.move(event.unit_id, CustodyState.DISCARDED)


async def on_subjects_enrolled(events: list[SubjectEnrolled], subject_centres: SubjectCentres,
                               policies: Policies, treatments: Treatments) -> None:
    """Each subject's centre (the command guard's), its programme's second-infusion policy and
    its dosing sections."""
    await learn_subject_centres(events, subject_centres)
    await policies.add_many([SubjectPolicy(e.subject_id, e.programme_id, e.programme_version, e.second_infusion)
                             for e in events if e.second_infusion is not None])
    await treatments.add_many([dosing.Treatment(e.subject_id, e.programme_id, e.programme_version, e.dosing,
                                                e.dose_level)
                               for e in events if e.dosing is not None and e.programme_version is not None])


async def on_response_assessed(event: ResponseAssessed, streams: Streams, policies: Policies) -> None:
    await _decide_second_infusion(event, streams, policies)


async def on_response_corrected(event: ResponseAssessmentCorrected, streams: Streams, policies: Policies) -> None:
    """A corrected day-28 assessment decides again; the later decision stands."""
    await _decide_second_infusion(event, streams, policies)


async def _decide_second_infusion(event: ResponseAssessed, streams: Streams, policies: Policies) -> None:
    policy = await policies.policy_of(event.subject_id)
    if policy is None:
        return
    decided = decide(event, policy.programme_id, policy.programme_version, policy.policy)
    if decided is None:
        return
    _, version = await streams.load(infusion_stream(event.subject_id))
    await streams.append(infusion_stream(event.subject_id), version, [decided],
                         occurred_at=start_of_day(event.assessed_on), subject_id=event.subject_id)
