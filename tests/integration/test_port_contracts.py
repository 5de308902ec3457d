"""Every PostgreSQL adapter against its port's contract suite (tests/ports), on a migrated
database, each test in a transaction rolled back at its end. The fakes pass the same suites
in tests/unit/services/test_port_contracts.py."""

from __future__ import annotations

import uuid

import pytest

from contracts.registry import parse_event
from infra.runtime.eventstore import EventStore, Metadata
from infra.runtime.streams import PgStreams
from infra.runtime.subjects import PgSubjectCentres
from services.assessment.adapters.ages import PgAges
from services.assessment.adapters.escalations import PgEscalations
from services.assessment.adapters.infusions import PgInfusions
from services.enrollment.adapters.identities import PgIdentities
from services.enrollment.adapters.identity_crypto import Keyring
from services.infusion.adapters.products import PgReleasedProducts
from services.infusion.adapters.policies import PgPolicies, PgTreatments
from services.infusion.adapters.units import PgUnits
from services.manufacturing.adapters.enrolments import PgEnrolments
from services.manufacturing.adapters.organisations import PgOrganisations
from services.manufacturing.adapters.persons import PgPersons
from services.projection.adapters.outcomes import StoredOutcomes
from services.projection.adapters.read_models import PgReadModels
from tests.ports.assessment import AgesContract, EscalationsContract, InfusionsContract
from tests.ports.enrollment import IdentitiesContract
from tests.ports.infusion import PoliciesContract, ReleasedProductsContract, TreatmentsContract, UnitsContract
from tests.ports.manufacturing import KNOWN_ORGANISATIONS, EnrolmentsContract, OrganisationsContract, PersonsContract
from tests.ports.projection import OutcomesContract, ReadModelsContract
from tests.ports.streams import StreamsContract
from tests.ports.subjects import SubjectCentresContract

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(pool):
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            yield connection
        finally:
            await transaction.rollback()


class TestPgStreams(StreamsContract):
    @pytest.fixture
    def streams(self, conn):
        return PgStreams(conn, EventStore("enrollment"),
                         Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor="test"))


class TestPgIdentities(IdentitiesContract):
    @pytest.fixture
    def identities(self, conn):
        return PgIdentities(conn, Keyring.parse(Keyring.generate()))


class TestPgEnrolments(EnrolmentsContract):
    @pytest.fixture
    def enrolments(self, conn):
        return PgEnrolments(conn)


class TestPgPersons(PersonsContract):
    @pytest.fixture
    def persons(self, conn):
        return PgPersons(conn)


class TestPgPolicies(PoliciesContract):
    @pytest.fixture
    def policies(self, conn):
        return PgPolicies(conn)


class TestPgTreatments(TreatmentsContract):
    @pytest.fixture
    def treatments(self, conn):
        return PgTreatments(conn)


class TestPgUnits(UnitsContract):
    @pytest.fixture
    def units(self, conn):
        return PgUnits(conn)


class TestPgOrganisations(OrganisationsContract):
    @pytest.fixture
    async def organisations(self, conn):
        await conn.executemany("INSERT INTO access.organisations (org_id, kind, name) VALUES ($1, $2, $1)"
                               " ON CONFLICT DO NOTHING", [(o, k.value) for o, k in KNOWN_ORGANISATIONS.items()])
        return PgOrganisations(conn)


class TestPgReleasedProducts(ReleasedProductsContract):
    @pytest.fixture
    def products(self, conn):
        return PgReleasedProducts(conn)


@pytest.mark.parametrize("schema", ["infusion", "assessment"])
class TestPgSubjectCentres(SubjectCentresContract):
    @pytest.fixture
    def subject_centres(self, conn, schema):
        return PgSubjectCentres(conn, schema)


class TestPgAges(AgesContract):
    @pytest.fixture
    def ages(self, conn):
        return PgAges(conn)


class TestPgEscalations(EscalationsContract):
    @pytest.fixture
    def escalations(self, conn):
        return PgEscalations(conn)


class TestPgInfusions(InfusionsContract):
    @pytest.fixture
    def infusions(self, conn):
        return PgInfusions(conn)


class TestPgReadModels(ReadModelsContract):
    @pytest.fixture
    def read_models(self, conn):
        return PgReadModels(conn)


class TestStoredOutcomes(OutcomesContract):
    @pytest.fixture
    def outcomes(self, conn):
        return StoredOutcomes(conn, EventStore("projection"))

    @pytest.fixture
    def published(self, conn):
        async def published():
            return [parse_event(e) for e in await EventStore("projection").read_range(conn, 0, 2**62, 1000)]

        return published
