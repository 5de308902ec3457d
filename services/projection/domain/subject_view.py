"""A subject's journey folded from every context's events, and the outcome events it
implies. Pure: `fold` takes a view and an event and returns the new view.

Events reach the projection from four topics whose relative order is not guaranteed, so
the fold is order-insensitive: the timeline is kept sorted by clinical time (UTC), the
phase is the furthest milestone reached, products are tracked per chain-of-identity id,
and every choice between competing facts is made by a total order, never by arrival.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import operator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from contracts import events as ev
from contracts.base import EventPayload
from contracts.observations import (
    AdverseEvent,
    BloodCounts,
    Death,
    HospitalAdmission,
    HospitalDischarge,
    HypotensionSupport,
    LastContact,
    LupusAssessment,
    MolecularMrd,
    NeurologicalAssessment,
    Relapse,
    OxygenDevice,
    VitalSigns,
)
from services.clinical.doris import DorisInput, doris_remission
from services.clinical.molecular_mrd import (
    MolecularResult,
    MolecularStatus,
    best_status,
    log_reduction,
    molecular_response,
    molecular_status,
)
from services.clinical.sledai import SledaiDescriptor, sledai_2k
from services.kernel.clinical_dates import clinical_date, days_between
from services.kernel.values import evolve
from services.projection.domain.quality import (
    SponsorNotification,
    UnitQuality,
    certified,
    closing,
    exceptional,
    tested,
)

# Milestones in journey order; the phase is the furthest one reached.
PHASES = ("registered", "enrolled", "collected", "released", "infused", "assessed")

# Day-28 assessment. The CAR-CIK protocol (seed 000) reads its primary endpoint "at day 28
# after the first infusion". The visit window of +/- 7 days is this projection's parameter
# (protocols commonly allow one), not a rule of the seed. Within it the assessment closest
# to day 28 counts; of two equally close, the earlier.
DAY28_TARGET = 28
DAY28_WINDOW = (21, 35)


@dataclass(frozen=True)
class TimelineEntry:
    at: str  # ISO clinical time, UTC for instants, plain date for dated facts
    event_type: str
    summary: str
    event_id: str | None = None  # the record's event id: what a signature names
    # issue 11 item 5: the clinical date at the site and, for an instant, its time at the site:
    # in the centre's named zone when it has one, else as the site's clock read it (the UTC
    # offset recorded with it): what is shown
    on: str | None = None
    local: str | None = None

    @functools.cached_property
    def order(self) -> tuple:
        """Clinical order: by the date at the site; on one date, facts known only by their date
        first, in the order of the path (registered, screened, enrolled, ...), then the timed
        ones by their instant. Computed once per entry: every fold inserts into a timeline
        sorted by it."""
        day = self.on or self.at[:10]
        timed = len(self.at) > 10
        return (day, timed, self.at if timed else "", _PRECEDENCE.get(self.event_type, len(_PRECEDENCE)),
                self.event_type, self.summary, self.event_id or "")


# the order of facts known only by their date, on one date
_PRECEDENCE = {t: i for i, t in enumerate((
    "enrollment.PatientRegistered", "enrollment.CandidateScreened", "enrollment.SubjectEnrolled",
    "enrollment.DoseLevelAssigned"))}


@dataclass(frozen=True)
class Signature:
    """An electronic signature on one of the subject's records (common.RecordSigned). Kept
    apart from the record's entry, whichever arrives first, and shown with it (21 CFR
    11.50(b): printed name, date and time, and meaning wherever the signed record is shown)."""

    record_event_id: str
    printed_name: str
    signed_at: str  # UTC, ISO 8601
    meaning: str
    signer: str
    role: str
    org_id: str

    def manifestation(self) -> dict[str, str]:
        return {"printed_name": self.printed_name, "signed_at": self.signed_at, "meaning": self.meaning,
                "signer": self.signer, "role": self.role, "org_id": self.org_id}


@dataclass(frozen=True)
class Product:
    """One product along its chain of identity. Dates are the site's local clinical dates."""

    coi_id: str
    collected_on: str | None = None
    infused_on: str | None = None
    # UTC, ISO 8601: when its release took effect: a release recorded before units (its
    # units QC complete then are released), or the qualified person's certification of a
    # signed one (`certified_at`); the legs of the path end and start here
    released_at: str | None = None
    facility_id: str | None = None  # the facility that labelled its units
    material_received_at: str | None = None  # UTC: the starting material's receipt at the facility
    manufacturing_started_at: str | None = None  # UTC
    infused_at: str | None = None  # UTC: the first infusion of one of its units (or of it, before units)
    collected_at: str | None = None  # UTC: the collection of its starting material
    release_recorded_at: str | None = None  # UTC: the release record awaiting the QP's signature
    certified_at: str | None = None  # UTC: the QP signed it (manufacturing.ReleaseCertified)
    donor_id: str | None = None  # the donor of a donor-derived product (pseudonymous); None: autologous

    @property
    def awaiting_release_signature(self) -> bool:
        return self.release_recorded_at is not None and self.certified_at is None


_PRODUCT_FIELDS = {f.name for f in dataclasses.fields(Product)}
_TIMELINE_FIELDS = tuple(f.name for f in dataclasses.fields(TimelineEntry))  # not its cached order


# Custody states in the order a unit passes them: of two steps recorded for the same
# instant, the later state is where the unit is (a total order, never arrival).
_CUSTODY_ORDER = ("collected", "awaiting_qc", "qc_complete", "out_of_specification", "released", "in_transit",
                  "received", "stored", "in_manufacturing", "prepared", "returned", "discarded", "infused")


INFUSED_HOLDER = "patient"  # where an infused unit is


@dataclass(frozen=True)
class UnitLocation:
    """Where one unit (bag) is now, and since when: its latest custody step (docs/custody.md)."""

    unit_id: str
    state: str
    holder: str
    since: str  # UTC, ISO 8601

    @property
    def rank(self) -> tuple[str, int]:
        return self.since, _CUSTODY_ORDER.index(self.state) if self.state in _CUSTODY_ORDER else -1


@dataclass(frozen=True)
class SubjectView:
    subject_id: str
    centre_id: str | None = None
    enrolments: tuple[tuple[str, str], ...] = ()  # (enrolled_on, programme_id), sorted
    phase: str = "registered"
    timeline: tuple[TimelineEntry, ...] = ()
    products: tuple[Product, ...] = ()  # sorted by COI id
    day28: dict[str, Any] | None = None
    signatures: tuple[Signature, ...] = ()  # sorted by (signed_at, signer, meaning)
    units: tuple[UnitLocation, ...] = ()  # sorted by unit id
    # each unit's latest quarantine fact, (unit id, at, "excursion", "returned" or
    # "disposition"): it is quarantined while the latest is not a disposition, whichever
    # arrived first (a returned bag received back at its facility awaits QA too)
    quarantine: tuple[tuple[str, str, str], ...] = ()
    # slots booked for the subject: (kind, day, organisation, turnaround days, the booking's
    # event id), sorted; and the cancellations, (kind, day, organisation, event id): a slot
    # stands while it was booked more often than cancelled (a booking may be cancelled and made again)
    bookings: tuple[tuple[str, str, str, int | None, str], ...] = ()
    cancelled: tuple[tuple[str, str, str, str], ...] = ()
    # issue 9 item 4: each unit's QC results, certification and exceptional release (domain/quality.py),
    # sorted by unit id; the sponsor notifications raised, sorted, and those made, (COI, at, reference)
    quality: tuple[UnitQuality, ...] = ()
    sponsor_raised: tuple[SponsorNotification, ...] = ()
    sponsor_notified: tuple[tuple[str, str, str], ...] = ()
    # infusions of units released out of specification: (infused at, COI, infusion number, unit id)
    oos_infusions: tuple[tuple[str, str, int, str], ...] = ()
    # a dose escalation (issue 10 item 3): the level the design assigned, and the subject's DLT
    # evaluation (True: a DLT; False: none in the window; None: not evaluated)
    dose_level: int | None = None
    dlt: bool | None = None
    # issue 11: the latest determination of the subject's CRS episodes (revision, episodes as
    # (onset day, maximum grade, resolution day, duration days, tocilizumab, steroids))
    crs_revision: int = 0
    crs_episodes: tuple[tuple[int, int, int | None, int | None, bool, bool], ...] = ()
    icans_revision: int = 0  # the same for ICANS
    icans_episodes: tuple[tuple[int, int, int | None, int | None, bool, bool], ...] = ()
    # the latest determinations from the blood counts: (onset day, recovery day, duration days)
    neutropenia_revision: int = 0
    neutropenia_episodes: tuple[tuple[int, int | None, int | None], ...] = ()
    b_cell_aplasia_revision: int = 0
    b_cell_aplasia_episodes: tuple[tuple[int, int | None, int | None], ...] = ()
    # hospital admissions and discharges, (UTC time, the clinical date at the site), sorted; the
    # last contact and the death
    admissions: tuple[tuple[str, str], ...] = ()
    discharges: tuple[tuple[str, str], ...] = ()
    last_contact_on: str | None = None
    died_on: str | None = None
    # every response assessment, one per date, as it stands (a correction supersedes the record
    # of its date whichever arrives first): (assessed on, category, MRD status, corrected)
    responses: tuple[tuple[str, str | None, str, bool], ...] = ()
    # each adverse event's worst grade by CTCAE term, and whether any of the term was serious:
    # (term, worst grade, serious), sorted
    adverse_events: tuple[tuple[str, int, bool], ...] = ()
    # lupus assessments (seed 003), one per date at the site, the latest recorded of a date
    # standing: (date, SLEDAI-2K, DORIS remission, drug-free remission, observation id)
    lupus: tuple[tuple[str, int, bool, bool, str], ...] = ()
    relapses: tuple[str, ...] = ()  # relapses or progressions observed: their dates at the site, sorted
    relapse_sites: tuple[tuple[str, str], ...] = ()  # and each with its site: (UTC instant, site), sorted
    # the latest CAR-T expansion: (revision, peak per uL, peak day, last detectable day)
    car_t: tuple[int, float | None, int | None, int | None] | None = None
    # how the programme the subject was first enrolled in defines response (contracts/
    # programmes.ResponseDefinition, carried by SubjectEnrolled): (criteria, responder reading,
    # landmark day, best-response window in days); None: not stated (CR or CRi at day 28)
    response_rule: tuple[str, str, int | None, int | None] | None = None
    # molecular MRD results (BCR::ABL1 qRT-PCR), one per date at the site, the one with the
    # greater observation id standing: (date, status by services/clinical/molecular_mrd.py,
    # ratio to ABL1 in % when quantifiable, observation id)
    molecular: tuple[tuple[str, str, float | None, str], ...] = ()
    # the baseline before the first infusion (assessment.BaselineAssessed; the latest date, of
    # one date a correction over the original): (date, disease by morphology, by flow
    # cytometry, molecular (None: not measured), in remission, corrected)
    baseline: tuple[str, bool, bool | None, bool | None, bool, bool] | None = None
    # the DLTs the programme's definition finds in the adverse events (assessment's latest
    # DoseLimitingToxicitiesDetermined): (revision, ((onset date, CTCAE term, grade), ...)); and
    # the investigator's reason for evaluating no DLT against them
    derived_dlts: tuple[int, tuple[tuple[str, str, int], ...]] | None = None
    dlt_disagreement: str | None = None
    # issue 11 item 5: the centre's named time zone (IANA, from enrollment.PatientRegistered), in
    # which the dates and times at the site are shown; None: at the offset recorded with each.
    # The instants (UTC) behind the dates of the course, so that they are dated again in the zone
    # if it is learnt after them (_in_zone): the last contact, the death (each relapse's is in
    # relapse_sites), and each lupus assessment's and molecular result's (observation id, instant)
    time_zone: str | None = None
    last_contact_at: str | None = None
    died_at: str | None = None
    observed_at: tuple[tuple[str, str], ...] = ()

    @property
    def programme_id(self) -> str | None:
        """The programme of the first enrolment: the one endpoints are reported under."""
        return self.enrolments[0][1] if self.enrolments else None

    @property
    def first_infused(self) -> Product | None:
        infused = [p for p in self.products if p.infused_on]
        return min(infused, key=lambda p: (p.infused_on, p.coi_id)) if infused else None

    @property
    def legs_days(self) -> dict[str, float | None]:
        """The legs of the path of the first product infused, in days (one decimal): collection
        to the starting material's receipt at the facility, manufacturing (its start to the
        release), release to infusion; None where a leg's end is not known."""
        p = self.first_infused
        ends = {"collection_to_receipt": (p and p.collected_at, p and p.material_received_at),
                "manufacturing": (p and p.manufacturing_started_at, p and p.released_at),
                "release_to_infusion": (p and p.released_at, p and p.infused_at)}
        return {leg: round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 86400, 1)
                if a and b else None for leg, (a, b) in ends.items()}

    @property
    def standing_bookings(self) -> list[tuple[str, str, str, int | None]]:
        """The slots booked and not cancelled since (a subject holds at most one slot of a kind
        at an organisation a day): (kind, day, organisation, turnaround days)."""
        standing = {}
        for slot in {b[:3] for b in self.bookings}:
            made = [b for b in self.bookings if b[:3] == slot]
            if len(made) > sum(1 for c in self.cancelled if c[:3] == slot):
                standing[slot] = max(made, key=lambda b: b[4])[:4]
        return sorted(standing.values(), key=str)

    @property
    def forecast_vein_to_vein_days(self) -> int | None:
        """From the first apheresis slot booked to the first manufacturing slot booked plus its
        facility's planned turnaround (start to arrival at the centre): the plan, beside the
        actual `vein_to_vein_days` (issue 9 item 6)."""
        apheresis = min((date.fromisoformat(on) for kind, on, _, _ in self.standing_bookings if kind == "apheresis"),
                        default=None)
        making = min(((date.fromisoformat(on), t) for kind, on, _, t in self.standing_bookings
                      if kind == "manufacturing" and t is not None), default=None)
        if apheresis is None or making is None:
            return None
        return days_between(apheresis, making[0]) + making[1]

    @property
    def quarantined(self) -> set[str]:
        return {unit for unit, _, kind in self.quarantine if kind != "disposition"}

    @property
    def open_sponsor_notifications(self) -> list[SponsorNotification]:
        """Raised and not yet made (EU GMP Part IV 11.5: the sponsor is told of every
        out-of-specification release)."""
        return [t for t in self.sponsor_raised if closing(t, self.sponsor_notified) is None]

    def unit_json(self, u: UnitLocation) -> dict[str, Any]:
        """A unit where it is, with its quality and where its release stands: awaiting the
        release (QC complete, or out of specification with the physician's acceptance) and,
        once its product's release record is made, awaiting the qualified person's signature."""
        q = next((x for x in self.quality if x.unit_id == u.unit_id), UnitQuality(u.unit_id))
        product = next((p for p in self.products if p.coi_id == u.unit_id[:14]), None)
        releasable = u.state == "qc_complete" or (u.state == "out_of_specification"
                                                  and q.exceptional_release == "accepted")
        signature = releasable and product is not None and product.awaiting_release_signature
        released_oos = q.certified_out_of_specification or any(i[3] == u.unit_id for i in self.oos_infusions)
        return {**vars(u), "quarantined": u.unit_id in self.quarantined,
                **{k: v for k, v in q.to_json().items() if k not in ("unit_id", "certified_out_of_specification")},
                "out_of_specification": q.out_of_specification or released_oos,
                "released_out_of_specification": released_oos,
                "awaiting_release": releasable, "awaiting_release_signature": signature,
                "release": _release_status(u.state, q, releasable, signature, released_oos)}

    @property
    def hospital_stay_days(self) -> int | None:
        """The stay the first infusion was given in: its admission's date to its discharge's,
        in calendar days; None when there is none, or it has not ended."""
        p = self.first_infused
        if p is None or p.infused_at is None:
            return None
        admitted = [a for a in self.admissions if a[0] <= p.infused_at]
        if not admitted:
            return None
        start = max(admitted)
        ended = [d for d in self.discharges if d[0] >= p.infused_at and d[0] >= start[0]]
        if not ended:
            return None
        return days_between(date.fromisoformat(start[1]), date.fromisoformat(min(ended)[1]))

    @property
    def response_dates(self) -> tuple[str | None, str | None]:
        """The date of the first complete remission (CR or CRi) and of the first relapse after
        it (a haematological or molecular relapse by the assessments as they stand, or a
        relapse or progression observed)."""
        remission = next((on for on, category, _, _ in self.responses if category in _REMISSIONS), None)
        relapses = [on for on, category, _, _ in self.responses if category in _RELAPSES] + list(self.relapses)
        relapse = min((on for on in relapses if remission is None or on > remission), default=None)
        return remission, relapse

    @property
    def day28_result(self) -> dict[str, Any] | None:
        """The day-28 response read as the programme defines a responder (`reading`;
        `responder` None: the assessment did not measure that reading); None where the
        programme reads no day-28 landmark (seed 001 by MRD, seed 003 by DORIS)."""
        if self.day28 is None:
            return None
        rule = self.response_rule
        if rule is not None and rule[2] is None:
            return None
        reading = rule[1] if rule is not None else DEFAULT_READING
        return {**self.day28, "reading": reading, "responder": day28_responder(self.day28, reading)}

    @property
    def best_response(self) -> dict[str, Any] | None:
        """The best response within the programme's window after the first infusion (its
        whole follow-up where the programme sets none), by its criteria (issue 11 item 3):
        `responder` (None: nothing evaluable within the window), `on` the first date the
        reading was met, `best` the best category or status reached, and for BCR::ABL1 the
        log reduction from the baseline (the latest result on or before the infusion day) to
        the best quantifiable result."""
        rule, first = self.response_rule, self.first_infused
        if rule is None or first is None or first.infused_on is None:
            return None
        criteria, reading, _, within = rule
        day0 = date.fromisoformat(first.infused_on)

        def in_window(on: str) -> bool:
            day = days_between(day0, date.fromisoformat(on))
            return day >= 0 and (within is None or day <= within)

        out: dict[str, Any] = {"criteria": criteria, "reading": reading, "within_days": within,
                               "responder": None, "on": None, "best": None}
        if criteria == "nccn_all":
            assessed = [(on, category, mrd) for on, category, mrd, _ in self.responses if in_window(on)]
            if assessed:
                met = [on for on, category, mrd in assessed
                       if _all_reading_met(reading, category, mrd)]
                best = min(assessed, key=lambda a: (_CATEGORY_RANK.get(a[1], len(_CATEGORY_RANK)),
                                                    a[2] != "negative", a[0]))
                out.update(responder=bool(met), on=met[0] if met else None, best=best[1], mrd_status=best[2])
        elif criteria == "bcr_abl1_qrt_pcr":
            after = [m for m in self.molecular if m[0] > first.infused_on and in_window(m[0])]
            best = best_status(MolecularStatus(m[1]) for m in after)
            baseline = next((m for m in reversed(self.molecular) if m[0] <= first.infused_on), None)
            out["baseline"] = baseline[1] if baseline else None
            if best is not None:
                met = [m[0] for m in after if molecular_response(MolecularStatus(m[1]))]
                out.update(responder=molecular_response(best), on=met[0] if met else None, best=best.value)
                ratios = [m[2] for m in after if m[2] is not None]
                if best is MolecularStatus.POSITIVE and baseline and baseline[2] is not None:
                    out["log_reduction"] = round(log_reduction(baseline[2], min(ratios)), 2)
        elif criteria == "sledai_doris":
            assessed = [x for x in self.lupus if x[0] > first.infused_on and in_window(x[0])]
            if assessed:
                met = [x[0] for x in assessed if x[2]]
                out.update(responder=bool(met), on=met[0] if met else None,
                           best="doris_remission" if met else "no_remission")
        return out

    @property
    def course_days(self) -> dict[str, Any] | None:
        """The course in days from the first infusion (intervals, which de-identification keeps
        where it cuts dates to the year): each infusion, each response assessment with its
        category and MRD status, the death, the last contact; what a swimmer plot draws."""
        first = self.first_infused
        if first is None or first.infused_on is None:
            return None
        day0 = date.fromisoformat(first.infused_on)

        def day(iso: str | None) -> int | None:
            return days_between(day0, date.fromisoformat(iso)) if iso else None

        return {"infusions": sorted(day(p.infused_on) for p in self.products if p.infused_on),
                "responses": [[day(on), category, mrd] for on, category, mrd, _ in self.responses],
                "died": day(self.died_on), "last_contact": day(self.last_contact_on)}

    @property
    def follow_up_days(self) -> int | None:
        """From the first infusion to the death, or else the last contact."""
        p = self.first_infused
        end = self.died_on or self.last_contact_on
        if p is None or p.infused_on is None or end is None:
            return None
        return days_between(date.fromisoformat(p.infused_on), date.fromisoformat(end))

    @property
    def enrolment_to_apheresis_days(self) -> int | None:
        """From the enrolment in the subject's programme to its first collection."""
        enrolled = next((on for on, p in self.enrolments if p == self.programme_id), None)
        collected = sorted(p.collected_on for p in self.products if p.collected_on)
        if enrolled is None or not collected:
            return None
        return days_between(date.fromisoformat(enrolled), date.fromisoformat(collected[0]))

    @property
    def vein_to_vein_days(self) -> int | None:
        """Apheresis to infusion of the first product infused (calendar days at the site)."""
        p = self.first_infused
        if p is None or p.collected_on is None:
            return None
        return days_between(date.fromisoformat(p.collected_on), date.fromisoformat(p.infused_on))

    def signatures_of(self, event_id: str | None) -> list[dict[str, str]]:
        return [s.manifestation() for s in self.signatures if event_id and s.record_event_id == event_id]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id, "centre_id": self.centre_id, "programme_id": self.programme_id,
            "enrolments": [list(e) for e in self.enrolments], "phase": self.phase,
            # vars(): these dataclasses are flat, and asdict's deep copy was a tenth of the
            # projection's time in the profile (docs/benchmark.md). Each entry shows the
            # signatures of its record (21 CFR 11.50(b)).
            "timeline": [{**{f: getattr(t, f) for f in _TIMELINE_FIELDS}, "signatures": self.signatures_of(t.event_id)}
                         for t in self.timeline],
            "products": [{**vars(p), "awaiting_release_signature": p.awaiting_release_signature}
                         for p in self.products],
            # the day-28 response as the programme reads it, and the assessment it is read from
            "day28": self.day28_result, "day28_assessment": self.day28, "vein_to_vein_days": self.vein_to_vein_days, "legs_days": self.legs_days,
            "response_rule": dict(zip(_RULE_FIELDS, self.response_rule)) if self.response_rule else None,
            "best_response": self.best_response,
            "molecular": [dict(zip(("on", "status", "ratio_percent", "observation_id"), m)) for m in self.molecular],
            "baseline": dict(zip(_BASELINE_FIELDS, self.baseline)) if self.baseline else None,
            "derived_dlts": {"revision": self.derived_dlts[0], "toxicities": [
                dict(zip(("onset_on", "ctcae_term", "grade"), t)) for t in self.derived_dlts[1]]}
            if self.derived_dlts else None,
            "dlt_disagreement": self.dlt_disagreement,
            "signatures": [dict(vars(s)) for s in self.signatures],
            "units": [self.unit_json(u) for u in self.units],
            "quarantine": [list(q) for q in self.quarantine],
            "bookings": [list(b) for b in self.standing_bookings],
            "booked": [list(b) for b in self.bookings],
            "cancelled_bookings": [list(c) for c in self.cancelled],
            "forecast_vein_to_vein_days": self.forecast_vein_to_vein_days,
            "unit_quality": [q.to_json() for q in self.quality],
            "sponsor_notifications": [_notification_json(t, self.sponsor_notified) for t in self.sponsor_raised],
            "open_sponsor_notifications": [_notification_json(t, self.sponsor_notified)
                                           for t in self.open_sponsor_notifications],
            "sponsor_notified": [list(n) for n in self.sponsor_notified],
            "out_of_specification_infusions": [list(i) for i in self.oos_infusions],
            "dose_level": self.dose_level, "dlt": self.dlt,
            "crs_revision": self.crs_revision,
            "crs_episodes": [dict(zip(_EPISODE_FIELDS, e)) for e in self.crs_episodes],
            "icans_revision": self.icans_revision,
            "icans_episodes": [dict(zip(_EPISODE_FIELDS, e)) for e in self.icans_episodes],
            "neutropenia_revision": self.neutropenia_revision,
            "neutropenia_episodes": [dict(zip(_COUNT_FIELDS, e)) for e in self.neutropenia_episodes],
            "b_cell_aplasia_revision": self.b_cell_aplasia_revision,
            "b_cell_aplasia_episodes": [dict(zip(_COUNT_FIELDS, e)) for e in self.b_cell_aplasia_episodes],
            "admissions": [list(a) for a in self.admissions], "discharges": [list(d) for d in self.discharges],
            "hospital_stay_days": self.hospital_stay_days, "last_contact_on": self.last_contact_on,
            "died_on": self.died_on, "responses": [list(r) for r in self.responses],
            "adverse_events": [{"ctcae_term": t, "worst_grade": g, "serious": s} for t, g, s in self.adverse_events],
            "lupus": [dict(zip(("on", "sledai_2k", "doris_remission", "drug_free_remission", "observation_id"), x))
                      for x in self.lupus],
            "course_days": self.course_days, "relapses": list(self.relapses),
            "relapse_sites": [list(r) for r in self.relapse_sites],
            "car_t": dict(zip(("revision", "peak_per_ul", "peak_day", "last_detectable_day"), self.car_t))
            if self.car_t else None,
            "time_zone": self.time_zone, "last_contact_at": self.last_contact_at, "died_at": self.died_at,
            "observed_at": [list(x) for x in self.observed_at],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SubjectView":
        return cls(subject_id=d["subject_id"], centre_id=d["centre_id"],
                   enrolments=tuple(tuple(e) for e in d["enrolments"]), phase=d["phase"],
                   timeline=tuple(TimelineEntry(**{k: v for k, v in t.items() if k != "signatures"})
                                  for t in d["timeline"]),
                   products=tuple(Product(**{k: v for k, v in p.items() if k in _PRODUCT_FIELDS})
                                  for p in d["products"]), day28=d.get("day28_assessment", d["day28"]),
                   signatures=tuple(Signature(**x) for x in d.get("signatures", ())),  # none in views before them
                   units=tuple(UnitLocation(u["unit_id"], u["state"], u["holder"], u["since"])
                               for u in d.get("units", ())),
                   quarantine=tuple(tuple(q) for q in d.get("quarantine", ())),
                   bookings=tuple(tuple(b) for b in d.get("booked", ())),
                   cancelled=tuple(tuple(c) for c in d.get("cancelled_bookings", ())),
                   quality=tuple(UnitQuality.from_json(q) for q in d.get("unit_quality", ())),
                   sponsor_raised=tuple(SponsorNotification.from_json(t) for t in d.get("sponsor_notifications", ())),
                   sponsor_notified=tuple(tuple(n) for n in d.get("sponsor_notified", ())),
                   oos_infusions=tuple(tuple(i) for i in d.get("out_of_specification_infusions", ())),
                   dose_level=d.get("dose_level"), dlt=d.get("dlt"), crs_revision=d.get("crs_revision", 0),
                   crs_episodes=tuple(tuple(e[f] for f in _EPISODE_FIELDS) for e in d.get("crs_episodes", ())),
                   icans_revision=d.get("icans_revision", 0),
                   icans_episodes=tuple(tuple(e[f] for f in _EPISODE_FIELDS) for e in d.get("icans_episodes", ())),
                   neutropenia_revision=d.get("neutropenia_revision", 0),
                   neutropenia_episodes=tuple(tuple(e[f] for f in _COUNT_FIELDS)
                                              for e in d.get("neutropenia_episodes", ())),
                   b_cell_aplasia_revision=d.get("b_cell_aplasia_revision", 0),
                   b_cell_aplasia_episodes=tuple(tuple(e[f] for f in _COUNT_FIELDS)
                                                 for e in d.get("b_cell_aplasia_episodes", ())),
                   admissions=tuple(tuple(a) for a in d.get("admissions", ())),
                   discharges=tuple(tuple(x) for x in d.get("discharges", ())),
                   last_contact_on=d.get("last_contact_on"), died_on=d.get("died_on"),
                   responses=tuple(tuple(r) for r in d.get("responses", ())),
                   adverse_events=tuple((a["ctcae_term"], a["worst_grade"], a["serious"])
                                        for a in d.get("adverse_events", ())),
                   lupus=tuple((x["on"], x["sledai_2k"], x["doris_remission"], x["drug_free_remission"],
                                x["observation_id"]) for x in d.get("lupus", ())),
                   relapses=tuple(d.get("relapses", ())),
                   response_rule=tuple(d["response_rule"][f] for f in _RULE_FIELDS) if d.get("response_rule")
                   else None,
                   molecular=tuple((m["on"], m["status"], m["ratio_percent"], m["observation_id"])
                                   for m in d.get("molecular", ())),
                   baseline=tuple(d["baseline"][f] for f in _BASELINE_FIELDS) if d.get("baseline") else None,
                   derived_dlts=(d["derived_dlts"]["revision"], tuple(
                       (t["onset_on"], t["ctcae_term"], t["grade"]) for t in d["derived_dlts"]["toxicities"]))
                   if d.get("derived_dlts") else None,
                   dlt_disagreement=d.get("dlt_disagreement"),
                   relapse_sites=tuple(tuple(r) for r in d.get("relapse_sites", ())),
                   car_t=(d["car_t"]["revision"], d["car_t"]["peak_per_ul"], d["car_t"]["peak_day"],
                          d["car_t"]["last_detectable_day"]) if d.get("car_t") else None,
                   time_zone=d.get("time_zone"), last_contact_at=d.get("last_contact_at"), died_at=d.get("died_at"),
                   observed_at=tuple(tuple(x) for x in d.get("observed_at", ())))


_REMISSIONS = {ev.ResponseCategory.CR.value, ev.ResponseCategory.CRI.value}
_RELAPSES = {ev.ResponseCategory.HAEMATOLOGICAL_RELAPSE.value, ev.ResponseCategory.MOLECULAR_RELAPSE.value}
_COUNT_FIELDS = ("onset_day", "recovery_day", "duration_days")
_RULE_FIELDS = ("criteria", "responder", "landmark_day", "best_within_days")
_BASELINE_FIELDS = ("on", "morphologic_disease", "flow_disease", "molecular_disease", "in_remission", "corrected")
# NCCN ALL categories from the best (ranked for the best response within a window)
_CATEGORY_RANK = {ev.ResponseCategory.CR.value: 0, ev.ResponseCategory.CRI.value: 1,
                  ev.ResponseCategory.NO_RESPONSE.value: 2, ev.ResponseCategory.MOLECULAR_RELAPSE.value: 3,
                  ev.ResponseCategory.HAEMATOLOGICAL_RELAPSE.value: 4}
# a programme whose definition states no response: CR or CRi (NCCN ALL) at day 28, as before
# definitions carried one
DEFAULT_READING = "cr_cri"


def _all_reading_met(reading: str, category: str | None, mrd: str) -> bool:
    """An NCCN ALL assessment meets `reading` (CR or CRi; with MRD < 0.01 % for
    mrd_negative_cr). The marrow readings of seed 000 are read at the landmark only."""
    remission = category in _REMISSIONS
    return remission and (reading != "mrd_negative_cr" or mrd == "negative")


def day28_responder(day28: dict[str, Any], reading: str) -> bool | None:
    """The day-28 assessment read as the programme defines a responder: CR or CRi (NCCN ALL;
    an assessment recorded before categories, by its morphology), CR or CRi with MRD < 0.01 %,
    or one of seed 000's three readings (None: not measured)."""
    if reading in ("morphology", "flow_cytometry", "molecular"):
        return day28[{"morphology": "morphologic_response", "flow_cytometry": "flow_response",
                      "molecular": "molecular_response"}[reading]]
    category = day28["response_category"]
    if category is None:
        return day28["morphologic_response"]
    return _all_reading_met(reading, category, day28["mrd_status"])
_EPISODE_FIELDS = ("onset_day", "max_grade", "resolution_day", "duration_days", "tocilizumab_given", "steroids_given")


def _release_status(state: str, q: UnitQuality, releasable: bool, signature: bool, released_oos: bool) -> str | None:
    """Where a product unit's release stands, in words (None: not a product unit on its way to a release)."""
    if released_oos:
        return "released out of specification"
    if q.certified_at is not None or state == "released":
        return "released"
    if signature:
        return "awaiting release signature"
    if releasable:
        return "awaiting release"
    if state == "out_of_specification":
        return f"exceptional release {q.exceptional_release}" if q.exceptional_release else "out of specification"
    return "awaiting QC" if state == "awaiting_qc" else None


def _notification_json(task: SponsorNotification, notified: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    closed = closing(task, notified)
    return {**task.to_json(), "open": closed is None, "notified_at": closed and closed[0],
            "reference": closed and closed[1]}


def _with_units(view: SubjectView, moved: list[UnitLocation],
                products: tuple[Product, ...] | None = None) -> tuple[UnitLocation, ...]:
    """Each unit where its latest step left it, whichever step arrived first. A release
    recorded before units names the COI, not its bags: a unit quality-control complete when
    its COI was released is released then, whether the release or the QC step is folded
    first. A certified release names its bags (ReleaseCertified moves each)."""
    released = {p.coi_id: p.released_at for p in (view.products if products is None else products)
                if p.released_at and p.certified_at is None}
    units = {u.unit_id: u for u in view.units}
    for m in moved:
        at = released.get(m.unit_id[:14])
        if m.state == "qc_complete" and at is not None and at >= m.since:
            m = UnitLocation(m.unit_id, "released", m.holder, at)
        if m.unit_id not in units or m.rank > units[m.unit_id].rank:
            units[m.unit_id] = m
    return tuple(sorted(units.values(), key=lambda u: u.unit_id))


def _with_quarantine(view: SubjectView, unit_id: str, at: str, kind: str) -> tuple[tuple[str, str, str], ...]:
    """The unit's latest quarantine fact, by time (an excursion from its start, a return from
    its receipt back at the facility, a disposition from its decision; of two at one instant,
    the disposition, which is taken on it)."""
    latest = {unit: (t, k) for unit, t, k in view.quarantine}
    if unit_id not in latest or (at, kind == "disposition") > (latest[unit_id][0], latest[unit_id][1] == "disposition"):
        latest[unit_id] = (at, kind)
    return tuple(sorted((unit, t, k) for unit, (t, k) in latest.items()))


def _custody(event: ev.CustodyStepRecorded) -> str:
    where = f" to {event.destination_org_id}" if event.destination_org_id else ""
    why = f": {event.reason}" if event.reason else ""
    return (f"unit {event.unit_id} {event.step.value.replace('_', ' ')}{where} by {event.org_id} "
            f"({event.role}) at {event.location}{why}")


def _further(current: str, new: str) -> str:
    return new if PHASES.index(new) > PHASES.index(current) else current


def _at(moment: datetime | date) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(timezone.utc).isoformat()
    return moment.isoformat()


def _site(view: SubjectView, moment: datetime) -> datetime:
    """`moment` at the site (issue 11 item 5): in the centre's named zone when it has one (its
    IANA rules, daylight saving time included), else at the UTC offset recorded with it. An
    offset that disagrees with the zone's at that instant is not refused (a file may use a
    fixed one): the event keeps it as recorded, and the view shows the instant in the zone."""
    return moment.astimezone(ZoneInfo(view.time_zone)) if view.time_zone else moment


def _on(view: SubjectView, moment: datetime) -> str:
    """The clinical date of `moment` at the site."""
    return clinical_date(_site(view, moment)).isoformat()


def _in_zone(view: SubjectView, time_zone: str | None) -> SubjectView:
    """The view once the centre's named zone is known: what was dated at the recorded offsets
    before it arrived is dated again in the zone, from its UTC instant, so the view is the same
    whichever arrived first. (A centre's zone is given once, when it is registered.)"""
    if time_zone is None or time_zone == view.time_zone:
        return view
    v = evolve(view, time_zone=time_zone)

    def on(utc: str | None, recorded: str | None) -> str | None:
        return _on(v, datetime.fromisoformat(utc)) if utc else recorded

    def sited(e: TimelineEntry) -> TimelineEntry:
        if len(e.at) <= 10:  # a fact known only by its date
            return e
        moment = datetime.fromisoformat(e.at)
        return evolve(e, on=_on(v, moment), local=_site(v, moment).isoformat())

    instants = dict(v.observed_at)

    def redated(entries: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], ...]:
        # one per date, the greater observation id (the last item) standing (as _with_course); of
        # two on one date at the recorded offsets only that one was kept, so two the zone puts on
        # different dates stay one (an offset an hour off, at midnight, twice in a day)
        by_day: dict[str, tuple[Any, ...]] = {}
        for day, *rest in entries:
            x = (on(instants.get(rest[-1]), day) or day, *rest)
            if x[0] not in by_day or x[-1] > by_day[x[0]][-1]:
                by_day[x[0]] = x
        return tuple(sorted(by_day.values()))

    return evolve(
        v, timeline=tuple(sorted({sited(e) for e in v.timeline}, key=lambda e: e.order)),
        products=tuple(evolve(p, collected_on=on(p.collected_at, p.collected_on),
                              infused_on=on(p.infused_at, p.infused_on)) for p in v.products),
        admissions=tuple(sorted((a, on(a, o)) for a, o in v.admissions)),
        discharges=tuple(sorted((a, on(a, o)) for a, o in v.discharges)),
        last_contact_on=on(v.last_contact_at, v.last_contact_on), died_on=on(v.died_at, v.died_on),
        relapses=tuple(sorted({on(r, None) for r, _ in v.relapse_sites})) if v.relapse_sites else v.relapses,
        lupus=redated(v.lupus), molecular=redated(v.molecular))  # type: ignore[arg-type]


def _with_entry(view: SubjectView, at: datetime | date, event_type: str, summary: str,
                event_id: str | None = None) -> tuple[TimelineEntry, ...]:
    local = _site(view, at).isoformat() if isinstance(at, datetime) else None
    on = _on(view, at) if isinstance(at, datetime) else at.isoformat()
    entry = TimelineEntry(_at(at), event_type, summary, event_id, on, local)
    # inserted where its order puts it in the sorted timeline, unless there already (a fact
    # folded twice); the same as sorting the set of both, for a fold's cost of one insertion
    timeline, key = view.timeline, entry.order
    i = j = bisect.bisect_left(timeline, key, key=_ORDER)
    while j < len(timeline) and timeline[j].order == key:
        if timeline[j] == entry:
            return timeline
        j += 1
    return (*timeline[:i], entry, *timeline[i:])


_ORDER = operator.attrgetter("order")


def _with_product(view: SubjectView, coi_id: str, **changes: str) -> tuple[Product, ...]:
    current = _product(view, coi_id)
    others = [p for p in view.products if p.coi_id != coi_id]
    return tuple(sorted([*others, evolve(current, **changes)], key=lambda p: p.coi_id))


def _product(view: SubjectView, coi_id: str) -> Product:
    return next((p for p in view.products if p.coi_id == coi_id), Product(coi_id))


def _first(current: str | None, at: str) -> str:
    """Of two times of one fact, the first, whichever was folded first."""
    return at if current is None or at < current else current


def _with_quality(view: SubjectView, unit_ids: list[str], change: Any) -> tuple[UnitQuality, ...]:
    """Each named unit's quality record after `change` (a function of the record)."""
    quality = {q.unit_id: q for q in view.quality}
    for unit_id in unit_ids:
        quality[unit_id] = change(quality.get(unit_id, UnitQuality(unit_id)))
    return tuple(sorted(quality.values(), key=lambda q: q.unit_id))


def _units(unit_ids: list[str]) -> str:
    return ", ".join(unit_ids)


def _result(r: ev.JudgedResult) -> str:
    found = f"{r.value:g}" if r.value is not None else ("detected" if r.detected else "not detected")
    return f"{r.attribute} {found} ({r.criterion})"


def _closer_to_day28(candidate: int, current: int | None) -> bool:
    if current is None:
        return True
    return (abs(candidate - DAY28_TARGET), candidate) < (abs(current - DAY28_TARGET), current)


def fold(view: SubjectView, event: EventPayload, occurred_at: datetime, event_id: str | None = None) -> SubjectView:
    """Fold one event (whose id is `event_id`) into the view."""
    t = event.event_type
    if isinstance(event, ev.RecordSigned):
        signature = Signature(str(event.record_event_id), event.printed_name, _at(event.signed_at),
                              event.meaning.value, event.signer, event.role, event.org_id)
        return evolve(view, signatures=tuple(sorted(
            {*view.signatures, signature}, key=lambda x: (x.signed_at, x.signer, x.meaning, x.record_event_id))))
    if isinstance(event, ev.ResponseAssessmentCorrected):
        return _fold_correction(view, event, event_id)
    if isinstance(event, ev.BaselineAssessed):
        return _fold_baseline(view, event, event_id)
    if isinstance(event, ev.PatientRegistered):
        # registered on a date (recorded at the start of that day, UTC): a dated fact
        view = _in_zone(view, event.time_zone)
        return evolve(view, centre_id=event.centre_id,
                      timeline=_with_entry(view, occurred_at.astimezone(timezone.utc).date(), t,
                                           f"registered at {event.centre_id}", event_id))
    if isinstance(event, ev.SubjectEnrolled):
        enrolments = tuple(sorted({*view.enrolments, (event.enrolled_on.isoformat(), event.programme_id)}))
        level = f" at dose level {event.dose_level}" if event.dose_level is not None else ""
        rule = view.response_rule
        if event.response is not None and enrolments[0][1] == event.programme_id:
            r = event.response
            rule = (r.criteria.value, r.responder.value, r.landmark_day, r.best_within_days)
        return evolve(view, centre_id=event.centre_id, enrolments=enrolments, response_rule=rule,
                      phase=_further(view.phase, "enrolled"),
                      dose_level=event.dose_level if event.dose_level is not None else view.dose_level,
                      timeline=_with_entry(view, event.enrolled_on, t,
                                           f"enrolled in {event.programme_id}{level}", event_id))
    if isinstance(event, ev.DoseLevelAssigned):
        return evolve(view, dose_level=event.dose_level, timeline=_with_entry(
            view, event.enrolled_on, t, f"dose level {event.dose_level} assigned by the design, cohort {event.cohort} "
                                        f"of {event.cohort_size} ({event.decision.action}): {event.decision.reason}",
            event_id))
    if isinstance(event, ev.DltEvaluated):
        found = (f"a DLT: {event.dlt.ctcae_term}, grade {event.dlt.grade}, from {event.dlt.onset_on.isoformat()}"
                 if event.dlt is not None else f"no DLT in the {event.dlt_window_days}-day window")
        if event.disagreement_reason:
            found += f" (against the programme's DLT definition: {event.disagreement_reason})"
        return evolve(view, dlt=event.dlt is not None, dlt_disagreement=event.disagreement_reason,
                      timeline=_with_entry(view, event.evaluated_on, t,
                                           f"DLT evaluation at dose level {event.dose_level}: {found}",
                                           event_id))
    if isinstance(event, ev.DoseLimitingToxicitiesDetermined):  # the latest revision, whatever the order
        if view.derived_dlts is not None and view.derived_dlts[0] >= event.revision:
            return view
        toxicities = tuple((x.onset_on.isoformat(), x.ctcae_term, x.grade) for x in event.toxicities)
        found = "; ".join(f"{term} grade {grade} from {on}" for on, term, grade in toxicities) or "none"
        return evolve(view, derived_dlts=(event.revision, toxicities), timeline=_with_entry(
            view, occurred_at, t, f"DLTs by the programme's definition (revision {event.revision}): {found}",
            event_id))
    if isinstance(event, ev.ObservationRecorded):
        view = _with_course(view, event)
        return evolve(view, timeline=_with_entry(view, event.observed_at, t, _observed(event), event_id))
    if isinstance(event, ev.CarTExpansionDetermined):
        if view.car_t is not None and event.revision <= view.car_t[0]:
            return view  # superseded already
        return evolve(view, car_t=(event.revision, event.peak_per_ul, event.peak_day,
                                   event.last_detectable_day))
    if isinstance(event, ev.CountEpisodesDetermined):
        if event.revision <= getattr(view, f"{event.kind}_revision"):
            return view  # superseded already
        return evolve(view, **{f"{event.kind}_revision": event.revision, f"{event.kind}_episodes": tuple(
            (e.onset_day, e.recovery_day, e.duration_days) for e in event.episodes)})
    if isinstance(event, ev.ToxicityGraded):
        drivers = f" ({', '.join(event.drivers)})" if event.drivers else ""
        again = f", revision {event.revision}" if event.revision > 1 else ""
        return evolve(view, timeline=_with_entry(
            view, event.on, t, f"{event.kind.value.upper()} grade {event.grade} on day {event.study_day}{drivers}{again}",
            event_id))
    if isinstance(event, ev.ToxicityEpisodesDetermined):
        kind = event.kind.value
        if event.revision <= getattr(view, f"{kind}_revision"):
            return view  # superseded already
        return evolve(view, **{f"{kind}_revision": event.revision, f"{kind}_episodes": tuple(
            (e.onset_day, e.max_grade, e.resolution_day, e.duration_days, e.tocilizumab_given, e.steroids_given)
            for e in event.episodes)})
    if isinstance(event, ev.EscalationDecided):
        level = f" level {event.decision.next_dose_level}" if event.decision.next_dose_level is not None else ""
        return evolve(view, timeline=_with_entry(
            view, occurred_at, t, f"dose escalation of {event.programme_id} after this evaluation: "
                                  f"{event.decision.action}{level}: {event.decision.reason}", event_id))
    if isinstance(event, ev.CoiIssued):
        return evolve(view, timeline=_with_entry(view, event.issued_at, t,
                                                 f"COI {event.coi_id} issued for the apheresis bag",
                                                 event_id))
    if isinstance(event, ev.ApheresisCollected):
        source = f" from donor {event.donor_id}" if event.donor_id else ""
        return evolve(view, phase=_further(view.phase, "collected"),
                      products=_with_product(view, event.coi_id,
                                             collected_on=_on(view, event.collected_at),
                                             collected_at=_at(event.collected_at),
                                             donor_id=event.donor_id),
                      timeline=_with_entry(view, event.collected_at, t,
                                           f"apheresis{source}, COI {event.coi_id}", event_id))
    if isinstance(event, ev.ProductUnitsRegistered):
        at = _at(event.registered_at)
        view = evolve(view, products=_with_product(view, event.coi_id, facility_id=event.facility_id))
        units = [UnitLocation(u, "awaiting_qc", event.facility_id, at) for u in event.unit_ids]
        return evolve(view, units=_with_units(view, units), timeline=_with_entry(
            view, event.registered_at, t, f"{len(units)} unit(s) of COI {event.coi_id} labelled by "
                                          f"{event.facility_id}: {', '.join(event.unit_ids)}", event_id))
    if isinstance(event, ev.CustodyStepRecorded):
        moved = UnitLocation(event.unit_id, event.to_state.value, event.org_id, _at(event.at))
        leg = {"received": "material_received_at", "manufacturing_started": "manufacturing_started_at"}.get(
            event.step.value) if event.unit_kind.value == "starting_material" else None
        if leg is not None:
            current = next((getattr(p, leg) for p in view.products if p.coi_id == event.coi_id), None)
            if current is None or _at(event.at) < current:  # the first, whichever arrives first
                view = evolve(view, products=_with_product(view, event.coi_id, **{leg: _at(event.at)}))
        if event.step.value == "received" and event.from_state.value == "returned":
            view = evolve(view, quarantine=_with_quarantine(view, event.unit_id, _at(event.at), "returned"))
        return evolve(view, units=_with_units(view, [moved]),
                      timeline=_with_entry(view, event.at, t, _custody(event), event_id))
    if isinstance(event, ev.SlotBooked):
        booking = (event.kind.value, event.on.isoformat(), event.slot_org_id, event.turnaround_days, event_id or "")
        return evolve(view, bookings=tuple(sorted({*view.bookings, booking}, key=str)), timeline=_with_entry(
            view, event.on, t, f"{event.kind.value} slot booked at {event.slot_org_id} on {event.on.isoformat()}",
            event_id))
    if isinstance(event, ev.SlotBookingCancelled):
        cancelled = (event.kind.value, event.on.isoformat(), event.slot_org_id, event_id or "")
        return evolve(view, cancelled=tuple(sorted({*view.cancelled, cancelled})), timeline=_with_entry(
            view, event.on, t, f"{event.kind.value} slot at {event.slot_org_id} on {event.on.isoformat()} cancelled: "
                               f"{event.reason}", event_id))
    if isinstance(event, ev.ExcursionDetected):
        view = evolve(view, quarantine=_with_quarantine(view, event.unit_id, _at(event.started_at),
                                                        "excursion"))
    if isinstance(event, ev.QaDispositionRecorded):
        view = evolve(view, quarantine=_with_quarantine(view, event.unit_id, _at(event.decided_at),
                                                        "disposition"))
    if isinstance(event, ev.ExcursionDetected):
        limit = " to ".join(f"{x:g} C" for x in (event.low_celsius, event.high_celsius) if x is not None)
        return evolve(view, timeline=_with_entry(
            view, event.started_at, t, f"temperature excursion of unit {event.unit_id}: {event.minutes:g} min, peak "
                                       f"{event.peak_celsius:g} C ({event.storage.value}: {limit})"
                                       f"{', ongoing' if event.ongoing else ''}; quarantined", event_id))
    if isinstance(event, ev.QaDispositionRecorded):
        return evolve(view, timeline=_with_entry(
            view, event.decided_at, t, f"quality assurance: unit {event.unit_id} "
                                       f"{'accepted' if event.decision.value == 'accept' else 'discarded'} by "
                                       f"{event.org_id}: {event.justification}", event_id))
    if isinstance(event, ev.BedsideCheckRecorded):
        verdict = "go" if event.go else "no-go (" + ", ".join(r.code for r in event.reasons) + ")"
        oos = " (released out of specification)" if event.out_of_specification else ""
        return evolve(view, timeline=_with_entry(
            view, event.checked_at, t, f"bedside check of unit {event.unit_id}{oos}: {verdict}, by "
                                       f"{' and '.join(event.verified_by)}", event_id))
    if type(event) in _RELEASE_FOLDS:
        return _RELEASE_FOLDS[type(event)](view, event, event_id)
    if isinstance(event, ev.ProductReleased) and event.awaiting_signature:
        return _fold_release_record(view, event, event_id)
    if isinstance(event, ev.ProductReleased):
        product = _product(view, event.coi_id)
        products = view.products if product.certified_at else _with_product(
            view, event.coi_id, released_at=_first(product.released_at, _at(event.released_at)))
        return evolve(view, phase=_further(view.phase, "released"), products=products,
                      units=_with_units(view, [u for u in view.units if u.unit_id.startswith(event.coi_id)],
                                        products),
                      timeline=_with_entry(view, event.released_at, t,
                                           f"product lot {event.lot_number} released, COI {event.coi_id}",
                                           event_id))
    if isinstance(event, ev.ProductInfused):
        first = next((p.infused_at for p in view.products if p.coi_id == event.coi_id and p.infused_at), None)
        at = _at(event.infused_at) if first is None or _at(event.infused_at) < first else first
        # the date of the first infusion, as `infused_at` (whichever arrives first)
        infused_on = (_on(view, event.infused_at) if at == _at(event.infused_at)
                      else _product(view, event.coi_id).infused_on)
        if event.out_of_specification:  # EU GMP Part IV 11.5: the flag travels to the reports
            infusion = (_at(event.infused_at), event.coi_id, event.infusion_number, event.unit_id or "")
            view = evolve(view, oos_infusions=tuple(sorted({*view.oos_infusions, infusion})))
        return evolve(view, phase=_further(view.phase, "infused"),
                      products=_with_product(view, event.coi_id,
                                             infused_on=infused_on,
                                             infused_at=at),
                      # infused: in the patient (not "the centre": known only from another
                      # topic's event, which a rebuild may fold later)
                      units=_with_units(view, [UnitLocation(event.unit_id, "infused", INFUSED_HOLDER,
                                                            _at(event.infused_at))])
                      if event.unit_id else view.units,
                      timeline=_with_entry(view, event.infused_at, t,
                                           f"infusion {event.infusion_number}, COI {event.coi_id}"
                                           + (f", unit {event.unit_id}" if event.unit_id else "")
                                           + (", released out of specification"
                                              if event.out_of_specification else "")
                                           + _given(event),
                                           event_id))
    if type(event) in _DOSING_SUMMARIES:
        when, summary = _DOSING_SUMMARIES[type(event)](event, occurred_at)
        return evolve(view, timeline=_with_entry(view, when, t, summary, event_id))
    if isinstance(event, ev.SecondInfusionDecided):
        verdict = "indicated" if event.indicated else "not indicated"
        return evolve(view, timeline=_with_entry(
            view, event.assessed_on, t, f"second infusion {verdict} at day 28: " + "; ".join(event.reasons),
            event_id))
    if isinstance(event, ev.ResponseAssessed):
        v = evolve(view, phase=_further(view.phase, "assessed"),
                   timeline=_with_entry(view, event.assessed_on, t, _assessed(event), event_id))
        return _with_day28(_with_response(v, event), view.day28, event)
    return view


def _ice_total(o: NeurologicalAssessment) -> int:
    i = o.ice
    return i.orientation + i.naming + i.following_commands + i.writing + i.attention  # type: ignore[union-attr]


def _with_instant(view: SubjectView, event: ev.ObservationRecorded) -> SubjectView:
    """The observation's instant (UTC), from which its date is set again in the centre's zone."""
    return evolve(view, observed_at=tuple(sorted(
        {*view.observed_at, (str(event.observation_id), _at(event.observed_at))})))


def _with_course(view: SubjectView, event: ev.ObservationRecorded) -> SubjectView:
    """Admissions, discharges, the last contact and the death, whatever order they arrive in."""
    o, on = event.observation, _on(view, event.observed_at)
    at = (_at(event.observed_at), on)
    if isinstance(o, HospitalAdmission):
        return evolve(view, admissions=tuple(sorted({*view.admissions, at})))
    if isinstance(o, HospitalDischarge):
        return evolve(view, discharges=tuple(sorted({*view.discharges, at})))
    if isinstance(o, LastContact):
        return evolve(view, last_contact_on=max(filter(None, (view.last_contact_on, on))),
                      last_contact_at=max(filter(None, (view.last_contact_at, at[0]))))
    if isinstance(o, Death):
        return evolve(view, died_on=min(filter(None, (view.died_on, on))),
                      died_at=min(filter(None, (view.died_at, at[0]))))
    if isinstance(o, Relapse):
        return evolve(view, relapses=tuple(sorted({*view.relapses, on})),
                      relapse_sites=tuple(sorted({*view.relapse_sites, (at[0], o.site)})))
    if isinstance(o, LupusAssessment):  # SLEDAI-2K (Gladman 2002) and DORIS 2021, by the rules
        result = doris_remission(DorisInput(
            descriptors=frozenset(SledaiDescriptor(d.value) for d in o.descriptors),
            physician_global_assessment=o.physician_global_assessment,
            prednisone_equivalent_mg_per_day=o.prednisone_equivalent_mg_per_day, on_antimalarial=o.on_antimalarial,
            on_immunosuppressive=o.on_immunosuppressive, on_biologic=o.on_biologic,
            maintenance_stable=o.maintenance_stable))
        entry = (on, sledai_2k(SledaiDescriptor(d.value) for d in o.descriptors), result.remission,
                 result.drug_free_remission, str(event.observation_id))
        view = _with_instant(view, event)
        same_day = [x for x in view.lupus if x[0] == on]
        if same_day and same_day[0][4] > entry[4] and not _corrects(event, same_day[0][4]):
            return view  # order-insensitive: of two on one date, the one with the greater id stands
        return evolve(view, lupus=tuple(sorted({*(x for x in view.lupus if x[0] != on), entry})))
    if isinstance(o, MolecularMrd):  # read by services/clinical/molecular_mrd.py
        status = molecular_status(MolecularResult(o.detected, o.quantifiable, o.ratio_percent, o.control_copies))
        entry = (on, status.value, o.ratio_percent, str(event.observation_id))
        view = _with_instant(view, event)
        same_day = [x for x in view.molecular if x[0] == on]
        if same_day and same_day[0][3] > entry[3] and not _corrects(event, same_day[0][3]):
            return view  # order-insensitive: of two on one date, the one with the greater id stands
        return evolve(view, molecular=tuple(sorted({*(x for x in view.molecular if x[0] != on), entry})))
    if isinstance(o, AdverseEvent):  # the worst grade of a term, whatever order they arrive in
        term = o.ctcae_term.strip().lower()
        before = next((a for a in view.adverse_events if a[0] == term), (term, 0, False))
        merged = (term, max(before[1], o.grade), before[2] or o.serious)
        return evolve(view, adverse_events=tuple(sorted(
            {*(a for a in view.adverse_events if a[0] != term), merged})))
    return view


def _corrects(event: ev.ObservationRecorded, observation_id: str) -> bool:
    """Whether `event` is a correction of that observation (issue 12 item 4): it stands in its
    place, whichever id is greater (a correction follows what it corrects in the subject's
    stream)."""
    return event.corrects is not None and str(event.corrects) == observation_id


def _observed(event: ev.ObservationRecorded) -> str:
    if event.corrects is not None:
        return f"{_observation(event)} (a correction of an earlier record: {event.correction_reason})"
    return _observation(event)


def _observation(event: ev.ObservationRecorded) -> str:
    o = event.observation
    if isinstance(o, BloodCounts):
        counts = [f"{name} {value:g}/uL" for name, value in (
            ("ANC", o.anc_per_ul), ("platelets", o.platelets_per_ul), ("lymphocytes", o.lymphocytes_per_ul),
            ("B cells", o.b_cells_per_ul), ("CAR-T", o.car_t_per_ul)) if value is not None]
        return "blood counts: " + ", ".join(counts)
    if isinstance(o, HospitalAdmission):
        return "admitted to hospital" + (f": {o.reason}" if o.reason else "")
    if isinstance(o, HospitalDischarge):
        return "discharged from hospital"
    if isinstance(o, LastContact):
        return "last contact: alive"
    if isinstance(o, Death):
        return f"died: {o.cause}"
    if isinstance(o, Relapse):
        return f"relapse ({o.site})"
    if isinstance(o, LupusAssessment):
        return (f"lupus assessment: SLEDAI-2K {sledai_2k(SledaiDescriptor(d.value) for d in o.descriptors)}, "
                f"PGA {o.physician_global_assessment:g}, prednisone {o.prednisone_equivalent_mg_per_day:g} mg/day")
    if isinstance(o, MolecularMrd):
        found = (f"{o.ratio_percent:g} %" if o.quantifiable else "positive, not quantifiable" if o.detected
                 else f"not detected ({o.control_copies} ABL1 copies)")
        return f"molecular MRD: {o.target.value} by qRT-PCR ({o.specimen.replace('_', ' ')}): {found}"
    if isinstance(o, AdverseEvent):
        return (f"adverse event: {o.ctcae_term}, CTCAE grade {o.grade}{', serious' if o.serious else ''}, "
                f"{o.attribution.value} to the product")
    if isinstance(o, NeurologicalAssessment):
        tool = (f"ICE {_ice_total(o)}" if o.ice is not None else "CAPD" if o.capd is not None
                else "CAPD not performable")
        return f"neurological assessment: {tool}, {o.consciousness.value}"
    if isinstance(o, VitalSigns):
        bp = f", BP {o.systolic_mmhg}/{o.diastolic_mmhg}" if o.systolic_mmhg and o.diastolic_mmhg else ""
        oxygen = "" if o.oxygen is OxygenDevice.NONE else (
            f", oxygen: {o.oxygen.value}" + (f" {o.oxygen_flow_l_min:g} L/min" if o.oxygen_flow_l_min else ""))
        hypotension = "" if o.hypotension is HypotensionSupport.NONE else f", hypotension: {o.hypotension.value}"
        return f"vital signs: {o.temperature_c:g} C{bp}{hypotension}{oxygen}"
    dose = f" {o.dose_mg:g} mg" if o.dose_mg else ""
    return f"treatment: {o.name or o.agent.value}{dose}, for {o.indication}"


def _given(event: ev.ProductInfused) -> str:
    """The dose an infusion gave, as its cell-dose prescription had it (issue 10 item 4)."""
    if event.volume_ml is None or event.cells_infused is None:
        return ""
    deviation = f" (dose deviation: {event.dose_deviation_reason})" if event.dose_deviation_reason else ""
    return f", {event.volume_ml:g} mL, {event.cells_infused:.3g} cells{deviation}"


def _prescribed_ld(e: ev.LymphodepletionPrescribed, occurred_at: datetime) -> tuple[datetime | date, str]:
    agents = {}
    for d in e.doses:
        agents.setdefault(d.agent, []).append(d.dose_mg)
    doses = ", ".join(f"{a} {mg[0]:g} mg x {len(mg)}" if len(set(mg)) == 1 else f"{a} {'/'.join(f'{m:g}' for m in mg)} mg"
                      for a, mg in agents.items())
    return e.prescribed_at, (f"lymphodepletion prescribed ({e.regimen}): BSA {e.bsa_m2:.2f} m2 ({e.bsa_formula}, "
                             f"{e.height_cm:g} cm, {e.weight_kg:g} kg), infusion planned on "
                             f"{e.planned_infusion_on.isoformat()}: {doses}")


def _administered(e: ev.LymphodepletionAdministered, occurred_at: datetime) -> tuple[datetime | date, str]:
    deviation = (f", prescribed {e.prescribed_mg:g} mg: {e.deviation_reason}" if e.deviation_reason else "")
    return e.administered_at, f"lymphodepletion: {e.agent} {e.dose_mg:g} mg (day {e.study_day}){deviation}"


def _completed(e: ev.LymphodepletionCompleted, occurred_at: datetime) -> tuple[datetime | date, str]:
    window = (f"; infusion from {e.window.earliest.isoformat()} to {e.window.latest.isoformat()}"
              if e.window is not None else "")
    return occurred_at, f"lymphodepletion complete{window}"  # with its last administration


def _prescribed_dose(e: ev.CellDosePrescribed, occurred_at: datetime) -> tuple[datetime | date, str]:
    dose = (f"{e.cells_per_kg:.3g} cells/kg x {e.weight_kg:g} kg" if e.cells_per_kg is not None
            else f"flat {e.flat_cells:.3g} cells")
    return e.prescribed_at, (f"cell dose prescribed from unit {e.unit_id} (level {e.dose_level}): {dose} = "
                             f"{e.target_cells:.3g} cells, {e.volume_ml:g} mL at {e.viable_cells_per_ml:.3g} cells/mL "
                             f"({e.deviation_fraction:+.1%}, tolerance {e.tolerance_fraction:.0%})")


_DOSING_SUMMARIES = {ev.LymphodepletionPrescribed: _prescribed_ld, ev.LymphodepletionAdministered: _administered,
                     ev.LymphodepletionCompleted: _completed, ev.CellDosePrescribed: _prescribed_dose}


def _fold_release_record(view: SubjectView, event: ev.ProductReleased, event_id: str | None) -> SubjectView:
    """A release record of a product made as units: it takes effect only with the qualified
    person's signature (ReleaseCertified), so it moves no unit and no phase; its units show
    as awaiting that signature until then."""
    recorded = _first(_product(view, event.coi_id).release_recorded_at, _at(event.released_at))
    oos = (f"; out of specification: {_units(event.out_of_specification_units)}"
           if event.out_of_specification_units else "")
    return evolve(
        view, products=_with_product(view, event.coi_id, release_recorded_at=recorded),
        timeline=_with_entry(view, event.released_at, event.event_type,
                             f"release record of product lot {event.lot_number}, COI {event.coi_id}{oos}: awaiting "
                             "the qualified person's signature", event_id))


def _fold_qc(view: SubjectView, event: ev.QcResultsRecorded, event_id: str | None) -> SubjectView:
    """QC results move the unit (QC complete, or out of specification) at the time tested."""
    moved = UnitLocation(event.unit_id, "qc_complete" if event.within_specification else "out_of_specification",
                         event.org_id, _at(event.tested_at))
    verdict = ("within specification" if event.within_specification else "out of specification: "
               + "; ".join(_result(r) for r in event.results if not r.passed))
    return evolve(
        view, units=_with_units(view, [moved]),
        quality=_with_quality(view, [event.unit_id], lambda q: tested(q, event)),
        timeline=_with_entry(view, event.tested_at, event.event_type,
                             f"QC results of unit {event.unit_id} by {event.org_id} ({event.role}), specification "
                             f"v{event.specification_version}: {verdict}", event_id))


def _fold_exceptional(view: SubjectView, event: ev.ExceptionalReleaseRequested | ev.OosRiskAssessed
                      | ev.ExceptionalReleaseAccepted, event_id: str | None) -> SubjectView:
    """A step of an exceptional release (EU GMP Part IV 11.5): the treating physician's request,
    the manufacturer's risk assessment, the physician's signed acceptance. The free text
    (justification, deviation, assessment) stays in manufacturing's record, read by audit."""
    units = _units(event.unit_ids)
    if isinstance(event, ev.ExceptionalReleaseRequested):
        step, at = "requested", event.requested_at
        summary = f"exceptional release of unit(s) {units} requested by {event.org_id} ({event.role})"
    elif isinstance(event, ev.OosRiskAssessed):
        step, at = "assessed", event.assessed_at
        summary = (f"risk assessment of out-of-specification unit(s) {units} by {event.facility_id} ({event.role}), "
                   "for the treating physician's acceptance")
    else:
        step, at = "accepted", event.signed_at
        summary = (f"exceptional release of unit(s) {units} accepted by {event.printed_name} ({event.signer}) "
                   f"of {event.org_id}")
    return evolve(view, quality=_with_quality(view, event.unit_ids, lambda q: exceptional(q, step, at)),
                  timeline=_with_entry(view, at, event.event_type, summary, event_id))


def _fold_sponsor_raised(view: SubjectView, event: ev.SponsorNotificationRaised, event_id: str | None) -> SubjectView:
    failed = f" (failed: {', '.join(event.failed)})" if event.failed else ""
    raised = tuple(sorted({*view.sponsor_raised, SponsorNotification.of(event)},
                          key=lambda n: (n.raised_at, n.coi_id, repr(n))))
    return evolve(view, sponsor_raised=raised, timeline=_with_entry(
        view, event.raised_at, event.event_type, f"the sponsor is to be notified by {event.facility_id}: unit(s) "
                                                 f"{_units(event.unit_ids)} released out of specification{failed}",
        event_id))


def _fold_sponsor_notified(view: SubjectView, event: ev.SponsorNotified, event_id: str | None) -> SubjectView:
    notified = (event.coi_id, _at(event.notified_at), event.reference)
    return evolve(view, sponsor_notified=tuple(sorted({*view.sponsor_notified, notified})),
                  timeline=_with_entry(view, event.notified_at, event.event_type,
                                       f"the sponsor was notified by {event.org_id} ({event.role}) of "
                                       f"the out-of-specification release of COI {event.coi_id}: "
                                       f"{event.reference}", event_id))


def _fold_certified(view: SubjectView, event: ev.ReleaseCertified, event_id: str | None) -> SubjectView:
    """The qualified person signed the release record: it takes effect at the signature, for
    the units it names (released there, at the facility); the product's release time (the
    legs of the path) is the signature's."""
    at = _first(_product(view, event.coi_id).certified_at, _at(event.signed_at))
    products = _with_product(view, event.coi_id, certified_at=at, released_at=at, facility_id=event.facility_id)
    moved = [UnitLocation(u.unit_id, "released", event.facility_id, _at(event.signed_at)) for u in event.units]
    by_unit = {u.unit_id: u for u in event.units}
    oos = [u.unit_id for u in event.units if u.out_of_specification]
    return evolve(
        view, phase=_further(view.phase, "released"), products=products, units=_with_units(view, moved, products),
        quality=_with_quality(view, list(by_unit), lambda q: certified(q, by_unit[q.unit_id], event.signed_at)),
        timeline=_with_entry(view, event.signed_at, event.event_type,
                             f"release of COI {event.coi_id} certified by {event.printed_name} ({event.signer}): "
                             f"unit(s) {_units(list(by_unit))} released"
                             + (f", {_units(oos)} out of specification" if oos else ""), event_id))


# issue 9 item 4: QC results, a certified release, the steps of an exceptional release and the
# sponsor's notification, each on the timeline at its clinical time
_RELEASE_FOLDS = {ev.QcResultsRecorded: _fold_qc, ev.ReleaseCertified: _fold_certified,
                  ev.ExceptionalReleaseRequested: _fold_exceptional, ev.OosRiskAssessed: _fold_exceptional,
                  ev.ExceptionalReleaseAccepted: _fold_exceptional, ev.SponsorNotificationRaised: _fold_sponsor_raised,
                  ev.SponsorNotified: _fold_sponsor_notified}


def _assessed(event: ev.ResponseAssessed) -> str:
    category = event.response_category.value if event.response_category else "category not derivable"
    return f"day {event.study_day}: {category}, MRD {event.mrd_status.value}"


def _fold_correction(view: SubjectView, event: ev.ResponseAssessmentCorrected, event_id: str | None) -> SubjectView:
    """A correction (EU GMP Annex 11 §9) shows beside the entry it corrects, with its reason,
    and replaces it in the day-28 endpoint."""
    summary = f"{_assessed(event)} (corrected: {event.reason})"
    v = evolve(view, phase=_further(view.phase, "assessed"),
               timeline=_with_entry(view, event.assessed_on, event.event_type, summary, event_id))
    return _with_day28(_with_response(v, event), view.day28, event)


def _fold_baseline(view: SubjectView, event: ev.BaselineAssessed, event_id: str | None) -> SubjectView:
    """The baseline: the latest date's stands; of one date, a correction over the original (two
    corrections of a date come in their order on the subject's partition, the later standing)."""
    readings = ", ".join(f"{name} {value:g} %" for name, value in (
        ("marrow blasts", event.marrow_blasts_percent), ("flow MRD", event.flow_mrd_percent),
        ("molecular MRD", event.molecular_mrd_percent)) if value is not None)
    corrected = event.correction_reason is not None
    summary = (f"baseline: {readings}, {'in' if event.in_remission else 'not in'} remission"
               + (f" (corrected: {event.correction_reason})" if corrected else ""))
    view = evolve(view, timeline=_with_entry(view, event.assessed_on, event.event_type, summary, event_id))
    on, current = event.assessed_on.isoformat(), view.baseline
    if current is not None and (current[0] > on or (current[0] == on and current[5] and not corrected)):
        return view
    return evolve(view, baseline=(on, event.morphologic_disease, event.flow_disease,
                                  event.molecular_disease, event.in_remission, corrected))


def _with_response(v: SubjectView, event: ev.ResponseAssessed) -> SubjectView:
    """The assessment in the response history: a correction supersedes the record of its date,
    an original does not replace what is there (a correction, or the same date recorded
    first)."""
    corrected = isinstance(event, ev.ResponseAssessmentCorrected)
    on = event.assessed_on.isoformat()
    current = next((r for r in v.responses if r[0] == on), None)
    if current is not None and not corrected:
        return v
    entry = (on, event.response_category.value if event.response_category else None, event.mrd_status.value,
             corrected)
    return evolve(v, responses=tuple(sorted({*(r for r in v.responses if r[0] != on), entry},
                                            key=lambda r: r[0])))


def _with_day28(v: SubjectView, current: dict[str, Any] | None, event: ev.ResponseAssessed) -> SubjectView:
    """The day-28 endpoint after `event`. A correction supersedes the assessment of its date
    (same study day) whichever of the two arrived first; two corrections of one date come
    in their order on the subject's partition, the later one standing."""
    lo, hi = DAY28_WINDOW
    if not lo <= event.study_day <= hi:
        return v
    corrected = isinstance(event, ev.ResponseAssessmentCorrected)
    same_day = current is not None and current["study_day"] == event.study_day
    if same_day and not corrected and current.get("corrected"):
        return v
    if not (same_day and corrected) and not _closer_to_day28(event.study_day, current and current["study_day"]):
        return v
    day28 = {
        "study_day": event.study_day,
        "response_category": event.response_category.value if event.response_category else None,
        "mrd_status": event.mrd_status.value,
        "morphologic_response": event.morphologic_response,
        "flow_response": event.flow_response,
        "molecular_response": event.molecular_response,
        "responder": is_responder(event),
    }
    if corrected:
        day28["corrected"] = event.reason
    return evolve(v, day28=day28)


def is_responder(event: ev.ResponseAssessed) -> bool:
    """Overall response at day 28 = CR or CRi (NCCN ALL); for a v1 event without a
    category, the CAR-CIK protocol's morphology reading (marrow blasts < 5 %, seed 000)."""
    if event.response_category is None:
        return event.morphologic_response
    return event.response_category in (ev.ResponseCategory.CR, ev.ResponseCategory.CRI)


def outcomes(view: SubjectView) -> list[EventPayload]:
    """Outcome events the view now supports. Callers emit each at most once (stable ids)."""
    out: list[EventPayload] = []
    d = view.day28_result
    if view.programme_id and d is not None and d["responder"] is not None:
        out.append(ev.Day28ResponseDetermined(
            subject_id=view.subject_id, programme_id=view.programme_id, study_day=d["study_day"],
            response_category=d["response_category"], mrd_status=d["mrd_status"],
            morphologic_response=d["morphologic_response"], flow_response=d["flow_response"],
            molecular_response=d["molecular_response"], responder=d["responder"]))
    first = view.first_infused
    if view.programme_id and first and view.vein_to_vein_days is not None:
        out.append(ev.VeinToVeinTimeDetermined(subject_id=view.subject_id, programme_id=view.programme_id,
                                               coi_id=first.coi_id, days=view.vein_to_vein_days))
    if not view.programme_id:
        return out
    for kind in (ev.ToxicityKind.CRS, ev.ToxicityKind.ICANS):  # issue 11: each episode once it resolved
        for onset, grade, resolved, duration, tocilizumab, steroids in getattr(view, f"{kind.value}_episodes"):
            if resolved is not None and duration is not None:
                out.append(ev.ToxicityEpisodeClosed(
                    subject_id=view.subject_id, programme_id=view.programme_id, kind=kind, onset_day=onset,
                    max_grade=grade, resolution_day=resolved, duration_days=duration, tocilizumab_given=tocilizumab,
                    steroids_given=steroids))
    infused_on = date.fromisoformat(first.infused_on) if first and first.infused_on else None
    for on, category, mrd, _ in view.responses:
        out.append(ev.ResponseDetermined(
            subject_id=view.subject_id, programme_id=view.programme_id, assessed_on=date.fromisoformat(on),
            study_day=days_between(infused_on, date.fromisoformat(on)) if infused_on else None,
            response_category=category, mrd_status=mrd))
    if view.died_on:
        out.append(ev.DeathRecorded(
            subject_id=view.subject_id, programme_id=view.programme_id, died_on=date.fromisoformat(view.died_on),
            study_day=days_between(infused_on, date.fromisoformat(view.died_on)) if infused_on else None))
    for at, site in view.relapse_sites:  # each relapse or progression observed
        on = _on(view, datetime.fromisoformat(at))
        out.append(ev.RelapseRecorded(
            subject_id=view.subject_id, programme_id=view.programme_id, relapsed_on=date.fromisoformat(on),
            study_day=days_between(infused_on, date.fromisoformat(on)) if infused_on else None, site=site))
    return out


def outcome_key(outcome: EventPayload, view: SubjectView | None = None) -> str:
    """What makes an outcome unique. A day-28 response is keyed by its study day: if an
    assessment closer to day 28 arrives later, a new outcome supersedes the earlier one
    (consumers keep the latest per subject, see Day28ResponseDetermined). One from a
    corrected assessment (`view.day28["corrected"]`) is keyed by its content too, so a
    correction on the same study day is published as the new outcome."""
    if isinstance(outcome, ev.Day28ResponseDetermined):
        key = f"day28:{outcome.subject_id}:{outcome.study_day}"
        if view is not None and view.day28 and view.day28.get("corrected"):
            key += ":corrected:" + hashlib.sha256(outcome.model_dump_json().encode()).hexdigest()[:16]
        return key
    if isinstance(outcome, ev.VeinToVeinTimeDetermined):
        return f"v2v:{outcome.subject_id}:{outcome.coi_id}"
    content = hashlib.sha256(outcome.model_dump_json().encode()).hexdigest()[:16]
    if isinstance(outcome, ev.ToxicityEpisodeClosed):  # a changed episode is a new outcome
        return f"toxicity:{outcome.subject_id}:{outcome.kind.value}:{outcome.onset_day}:{content}"
    if isinstance(outcome, ev.ResponseDetermined):  # a corrected assessment is a new outcome
        return f"response:{outcome.subject_id}:{outcome.assessed_on.isoformat()}:{content}"
    if isinstance(outcome, ev.DeathRecorded):
        return f"death:{outcome.subject_id}"
    if isinstance(outcome, ev.RelapseRecorded):  # one the first infusion changes is a new outcome
        return f"relapse:{outcome.subject_id}:{outcome.relapsed_on.isoformat()}:{outcome.site}:{content}"
    if isinstance(outcome, ev.MtdDetermined):  # about a programme: its escalation stops once
        return f"mtd:{outcome.programme_id}:{content}"
    raise ValueError(f"not an outcome: {outcome.event_type}")
