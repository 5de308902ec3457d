"""In-memory adapters for the services' ports (cosmicpython `tests/unit/test_handlers.py`
style): each keeps plain dicts and keeps what its asyncpg adapter promises (the contract
suites in tests/ports run against both), so handler tests run in milliseconds with no I/O.
`Bus` drives messages through a service's own bootstrap wiring with these fakes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.base import CommandPayload, EventPayload
from contracts.envelope import CommandEnvelope, EventEnvelope
from infra.runtime.consumer import BatchRoute
from infra.runtime.eventstore import ConcurrencyConflictError
from infra.runtime.host import ServiceSpec
from infra.runtime.access.principals import Membership, Principal
from infra.runtime.wiring import Factory
from contracts.custody import CustodyState
from services.enrollment.adapters.identity_crypto import normalise_record_number
from services.enrollment.application.ports import Identity, IdentityAlreadyRecorded
from services.infusion.domain.model import ReleasedProduct
from services.kernel.clinical_dates import clinical_date
from services.projection.domain.subject_view import SubjectView


@dataclass(frozen=True)
class Appended:
    """One event as the handler appended it, with the metadata it passed."""

    stream_id: str
    event: EventPayload
    occurred_at: datetime
    subject_id: str | None
    centre_id: str | None


class FakeStreams:
    """Streams port: dict[stream_id, list[event]]; refuses a stale `expected_version`
    exactly like `infra.runtime.eventstore.EventStore.append`."""

    def __init__(self, streams: dict[str, list[EventPayload]] | None = None) -> None:
        self.streams: dict[str, list[EventPayload]] = {k: list(v) for k, v in (streams or {}).items()}
        self.appended: list[Appended] = []

    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]:
        events = list(self.streams.get(stream_id, []))
        # A real load awaits the database after reading; yielding here lets concurrent handlers
        # interleave between load and append, as they can in production.
        await asyncio.sleep(0)
        return events, len(events)

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None,
                     centre_id: str | None = None) -> None:
        actual = len(self.streams.get(stream_id, []))
        if actual != expected_version:
            raise ConcurrencyConflictError(stream_id, expected_version, actual)
        self.streams.setdefault(stream_id, []).extend(events)
        self.appended.extend(Appended(stream_id, e, occurred_at, subject_id, centre_id) for e in events)

    def events(self, stream_id: str) -> list[EventPayload]:
        return list(self.streams.get(stream_id, []))

    def all_events(self) -> list[EventPayload]:
        return [a.event for a in self.appended]


class FakeIdentities:
    """Identities port: the only place direct identifiers live. Indexes the record number in
    the normalised form `PgIdentities` indexes it under."""

    def __init__(self) -> None:
        self.subject_by_record: dict[tuple[str, str], str] = {}
        self.records: dict[str, Identity] = {}

    async def find(self, centre_id: str, hospital_record_number: str) -> str | None:
        return self.subject_by_record.get((centre_id, normalise_record_number(hospital_record_number)))

    async def add(self, subject_id: str, centre_id: str, hospital_record_number: str,
                  family_name: str, given_name: str, date_of_birth: date) -> None:
        key = (centre_id, normalise_record_number(hospital_record_number))
        if key in self.subject_by_record or subject_id in self.records:
            raise IdentityAlreadyRecorded(f"an identity is already kept for {subject_id} or this record number")
        self.subject_by_record[key] = subject_id
        self.records[subject_id] = Identity(centre_id, hospital_record_number, family_name, given_name, date_of_birth)

    async def get(self, subject_id: str) -> Identity | None:
        return self.records.get(subject_id)

    async def erase(self, subject_id: str) -> bool:
        identity = self.records.pop(subject_id, None)
        if identity is None:
            return False
        del self.subject_by_record[(identity.centre_id, normalise_record_number(identity.hospital_record_number))]
        return True


class FakeEnrolments:
    """Manufacturing's Enrolments port."""

    def __init__(self, enrolled: dict[str, str] | None = None) -> None:
        self.rows: dict[tuple[str, str], tuple[str, date]] = {}
        for subject_id, centre_id in (enrolled or {}).items():
            self.rows[(subject_id, "CARCIK-CD19-P2")] = (centre_id, date(2024, 1, 1))

    async def centre_of(self, subject_id: str) -> str | None:
        return next((c for (s, _), (c, _) in self.rows.items() if s == subject_id), None)

    async def programme_of(self, subject_id: str) -> str | None:
        mine = sorted(((on, p) for (s, p), (_, on) in self.rows.items() if s == subject_id), reverse=True)
        return min((p for on, p in mine if on == mine[0][0]), default=None) if mine else None

    async def enrolled_on(self, subject_id: str) -> date | None:
        return min((on for (s, _), (_, on) in self.rows.items() if s == subject_id), default=None)

    async def add(self, subject_id: str, programme_id: str, centre_id: str, enrolled_on: date) -> None:
        self.rows.setdefault((subject_id, programme_id), (centre_id, enrolled_on))  # ON CONFLICT DO NOTHING

    async def add_many(self, enrolments) -> None:
        for e in enrolments:
            await self.add(*e)


class FakePersons:
    """Manufacturing's Persons port: the people registered in the network."""

    def __init__(self, registered: dict[str, str] | None = None) -> None:
        self.rows: dict[str, str] = dict(registered or {})

    async def centre_of_person(self, subject_id: str) -> str | None:
        return self.rows.get(subject_id)

    async def add_many(self, persons) -> None:
        for p in persons:
            self.rows.setdefault(p.subject_id, p.centre_id)  # ON CONFLICT DO NOTHING


class FakeOrganisations:
    """The access schema's organisations, as a dict of id -> kind."""

    def __init__(self, kinds: dict | None = None) -> None:
        self.kinds = dict(kinds or {})

    async def kind_of(self, org_id: str):
        return self.kinds.get(org_id)


class FakeUnits:
    """infusion's Units port: dict[unit_id, UnitView]."""

    def __init__(self, *units) -> None:
        self.units = {u.unit_id: u for u in units}

    async def get(self, unit_id: str):
        return self.units.get(unit_id)

    async def of_coi(self, coi_id: str):
        return sorted((u for u in self.units.values() if u.coi_id == coi_id), key=lambda u: u.unit_id)

    async def register(self, units) -> None:
        for u in units:
            self.units.setdefault(u.unit_id, u)

    async def move(self, unit_id: str, state, holder: str | None = None, *, prepared_at=None) -> None:
        u = self.units.get(unit_id)
        if u is not None:
            self.units[unit_id] = replace(u, state=state, holder=holder or u.holder,
                                          out_of_specification=u.out_of_specification or state == "out_of_specification",
                                          prepared_at=prepared_at or u.prepared_at)

    async def judged(self, unit_id: str, *, within_specification: bool, expires_at, use_within_minutes) -> None:
        u = self.units.get(unit_id)
        if u is not None:
            self.units[unit_id] = replace(
                u, state=CustodyState.QC_COMPLETE if within_specification else CustodyState.OUT_OF_SPECIFICATION,
                out_of_specification=u.out_of_specification or not within_specification, expires_at=expires_at,
                use_within_minutes=use_within_minutes)

    async def release(self, coi_id: str) -> None:
        for unit_id, u in list(self.units.items()):
            if u.coi_id == coi_id and u.state == "qc_complete":
                self.units[unit_id] = replace(u, state=CustodyState.RELEASED)

    async def certify(self, units) -> None:
        for c in units:
            u = self.units.get(c.unit_id)
            if u is not None and u.state in ("qc_complete", "out_of_specification"):
                self.units[c.unit_id] = replace(
                    u, state=CustodyState.RELEASED, out_of_specification=u.out_of_specification or c.out_of_specification,
                    released_out_of_specification=c.out_of_specification, expires_at=c.expires_at,
                    use_within_minutes=c.use_within_minutes)

    async def quarantine(self, unit_id: str, quarantined: bool) -> None:
        if unit_id in self.units:
            self.units[unit_id] = replace(self.units[unit_id], quarantined=quarantined)


class FakeSubjectCentres:
    """The kernel's SubjectCentres port (infusion's and assessment's view of enrolments)."""

    def __init__(self, enrolled: dict[str, str] | None = None) -> None:
        self.centres: dict[str, str] = dict(enrolled or {})

    async def centre_of(self, subject_id: str) -> str | None:
        return self.centres.get(subject_id)

    async def add_many(self, subjects) -> None:
        for s in subjects:
            self.centres.setdefault(s.subject_id, s.centre_id)  # ON CONFLICT DO NOTHING


class FakeReleasedProducts:
    """Infusion's ReleasedProducts port."""

    def __init__(self, *products: ReleasedProduct) -> None:
        self.products: dict[str, tuple[ReleasedProduct, str]] = {p.coi_id: (p, "LOT-1") for p in products}

    async def get(self, coi_id: str) -> ReleasedProduct | None:
        found = self.products.get(coi_id)
        return found[0] if found else None

    async def add(self, product: ReleasedProduct, lot_number: str) -> None:
        self.products.setdefault(product.coi_id, (product, lot_number))  # ON CONFLICT DO NOTHING

    async def add_many(self, releases) -> None:
        for r in releases:
            await self.add(r.product, r.lot_number)


class FakeInfusions:
    """Assessment's Infusions port; the first infusion is the lowest infusion_number, dated at
    its own offset (clinical_date) as `PgInfusions` does."""

    def __init__(self) -> None:
        self.infusions: dict[str, dict[int, datetime]] = {}

    async def first_infusion_on(self, subject_id: str) -> date | None:
        by_number = self.infusions.get(subject_id)
        if not by_number:
            return None
        return clinical_date(by_number[min(by_number)])

    async def add(self, subject_id: str, infusion_number: int, infused_at: datetime) -> None:
        self.infusions.setdefault(subject_id, {}).setdefault(infusion_number, infused_at)

    async def add_many(self, infusions) -> None:
        for i in infusions:
            await self.add(*i)


class FakeReadModels:
    """Projection's ReadModels port: the subject views (the consumer claims event ids)."""

    def __init__(self) -> None:
        self.views: dict[str, SubjectView] = {}
        self.puts = 0

    async def get(self, subject_id: str) -> SubjectView | None:
        return self.views.get(subject_id)

    async def put(self, view: SubjectView) -> None:
        self.views[view.subject_id] = view
        self.puts += 1

    async def get_many(self, subject_ids) -> dict[str, SubjectView]:
        return {s: self.views[s] for s in subject_ids if s in self.views}

    async def put_many(self, views) -> None:
        for v in views:
            await self.put(v)


class FakeOutcomes:
    """Projection's Outcomes port. Like `StoredOutcomes`, publishes each key once."""

    def __init__(self) -> None:
        self.published: dict[str, EventPayload] = {}
        self.calls = 0

    async def emit(self, outcome: EventPayload, key: str, cause: EventEnvelope) -> None:
        self.calls += 1
        self.published.setdefault(key, outcome)

    async def emit_many(self, items) -> None:
        for outcome, key, cause in items:
            await self.emit(outcome, key, cause)


def envelope(event: EventPayload, *, subject_id: str | None, occurred_at: datetime,
             event_id: uuid.UUID | None = None, stream_id: str = "stream-1") -> EventEnvelope:
    """The envelope a consumer receives for `event`, as `EventStore.append` would build it."""
    return EventEnvelope(
        event_id=event_id or uuid.uuid4(), event_type=event.event_type, schema_version=event.schema_version,
        stream_id=stream_id, stream_version=1, subject_id=subject_id, occurred_at=occurred_at,
        recorded_at=occurred_at, correlation_id=uuid.uuid4(), actor="test",
        payload=event.model_dump(mode="json"))


class Bus:
    """A service as its bootstrap's `spec` wires it, with fakes in place of its adapters (as
    cosmicpython's `bootstrap_test_app`). A message goes in as the consumer pipeline hands it
    over: with its envelope, on a connection (none here)."""

    def __init__(self, spec: Callable[[Mapping[str, Factory]], ServiceSpec], *, acting: object | None = None,
                 **fakes: object) -> None:
        """`acting`: the principal commands are admitted for unless `send` names one."""
        self.spec = spec({name: _given(fake) for name, fake in fakes.items()})
        self.acting = acting

    async def send(self, message: CommandPayload | EventPayload, *, principal: object | None = None) -> None:
        """`principal`: whom the command guard admitted a command for (none: the Bus's
        `acting`, else unguarded)."""
        principal = principal if principal is not None else self.acting
        if isinstance(message, CommandPayload):
            env = CommandEnvelope.wrap(message, actor=getattr(principal, "principal_id", "test"))
            await self.spec.command_handlers[message.command_type](None, env, message, principal=principal)
        else:
            env = envelope(message, subject_id=getattr(message, "subject_id", None),
                           occurred_at=datetime.now(timezone.utc))
            handler = self.spec.event_handlers[message.event_type]
            if isinstance(handler, BatchRoute):  # a handler of runs of events: a run of one
                await handler.handle(None, [env], [message])
            else:
                await handler(None, env, message)


def _given(fake: object) -> Factory:
    return lambda uow: fake


# The CLI's data loader, as the command guard admits it: it imports records made and certified
# elsewhere (services/kernel/acting.py, imports_records), such as a product released and
# infused by its COI alone, without labelled units.
IMPORTER = Principal("celltrail-cli", PrincipalKind.SYSTEM, "CLI",
                     (Membership("NETWORK", OrgKind.NETWORK, Role.DATA_LOADER),))


class FakePolicies:
    """Infusion's Policies port: each subject's second-infusion policy."""

    def __init__(self) -> None:
        self.rows: dict[str, object] = {}

    async def policy_of(self, subject_id: str):
        return self.rows.get(subject_id)

    async def add_many(self, policies) -> None:
        for p in policies:
            self.rows.setdefault(p.subject_id, p)  # ON CONFLICT DO NOTHING


class FakeTreatments:
    """Infusion's Treatments port: each subject's programme version's dosing sections."""

    def __init__(self, *treatments) -> None:
        self.rows: dict[str, object] = {t.subject_id: t for t in treatments}

    async def of(self, subject_id: str):
        return self.rows.get(subject_id)

    async def add_many(self, treatments) -> None:
        for t in treatments:
            self.rows.setdefault(t.subject_id, t)  # ON CONFLICT DO NOTHING


class FakeEscalations:
    """Assessment's Escalations port: each dose-escalation subject's level and DLT window."""

    def __init__(self, *escalations) -> None:
        self.rows: dict[str, object] = {e.subject_id: e for e in escalations}

    async def of(self, subject_id: str):
        return self.rows.get(subject_id)

    async def add_many(self, escalations) -> None:
        for e in escalations:
            self.rows.setdefault(e.subject_id, e)  # ON CONFLICT DO NOTHING


class FakeAges:
    """Assessment's Ages port: each subject's age at enrolment."""

    def __init__(self, ages: dict | None = None) -> None:
        self.rows: dict[str, object] = dict(ages or {})

    async def of(self, subject_id: str):
        return self.rows.get(subject_id)

    async def add_many(self, ages) -> None:
        for a in ages:
            self.rows.setdefault(a.subject_id, a.age)  # ON CONFLICT DO NOTHING


class FakeFetchWrites:
    """What a keyed command handler reads of `infra.runtime.fetchwrites.FetchWrites`: the
    fetch's idempotency keys, and the events added since a mark (here, appended to `streams`)."""

    def __init__(self, streams: FakeStreams, schema: str = "assessment") -> None:
        from infra.runtime.idempotency import CommandKeys

        self.streams, self.keys = streams, CommandKeys(schema)

    def mark(self) -> tuple[int, int, int]:
        return 0, len(self.streams.appended), self.keys.mark()

    def added_since(self, mark: tuple[int, int, int]) -> list[tuple[str, str]]:
        return [(a.stream_id, a.event.event_type) for a in self.streams.appended[mark[1]:]]

    def undo(self, mark: tuple[int, int, int]) -> None:
        self.keys.undo(mark[2])
