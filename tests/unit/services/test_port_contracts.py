"""The fakes pass the same contract suites as the PostgreSQL adapters they stand in for
(tests/ports; the adapters' runs are in tests/integration/test_port_contracts.py)."""

from __future__ import annotations

import pytest

from tests.ports.assessment import AgesContract, EscalationsContract, InfusionsContract
from tests.ports.enrollment import IdentitiesContract
from tests.ports.infusion import PoliciesContract, ReleasedProductsContract, TreatmentsContract, UnitsContract
from tests.ports.manufacturing import KNOWN_ORGANISATIONS, EnrolmentsContract, OrganisationsContract, PersonsContract
from tests.ports.projection import OutcomesContract, ReadModelsContract
from tests.ports.streams import StreamsContract
from tests.ports.subjects import SubjectCentresContract
from tests.unit.services.fakes import (
    FakeEnrolments,
    FakeOrganisations,
    FakePersons,
    FakeIdentities,
    FakeAges,
    FakeEscalations,
    FakeInfusions,
    FakeOutcomes,
    FakeReadModels,
    FakeReleasedProducts,
    FakeStreams,
    FakeSubjectCentres,
    FakeUnits,
    FakePolicies,
    FakeTreatments,
)


class TestFakeStreams(StreamsContract):
    @pytest.fixture
    def streams(self):
        return FakeStreams()


class TestFakeIdentities(IdentitiesContract):
    @pytest.fixture
    def identities(self):
        return FakeIdentities()


class TestFakeEnrolments(EnrolmentsContract):
    @pytest.fixture
    def enrolments(self):
        return FakeEnrolments()


class TestFakePersons(PersonsContract):
    @pytest.fixture
    def persons(self):
        return FakePersons()


class TestFakeOrganisations(OrganisationsContract):
    @pytest.fixture
    def organisations(self):
        return FakeOrganisations(KNOWN_ORGANISATIONS)


class TestFakePolicies(PoliciesContract):
    @pytest.fixture
    def policies(self):
        return FakePolicies()


class TestFakeTreatments(TreatmentsContract):
    @pytest.fixture
    def treatments(self):
        return FakeTreatments()


class TestFakeUnits(UnitsContract):
    @pytest.fixture
    def units(self):
        return FakeUnits()


class TestFakeSubjectCentres(SubjectCentresContract):
    @pytest.fixture
    def subject_centres(self):
        return FakeSubjectCentres()


class TestFakeReleasedProducts(ReleasedProductsContract):
    @pytest.fixture
    def products(self):
        return FakeReleasedProducts()


class TestFakeAges(AgesContract):
    @pytest.fixture
    def ages(self):
        return FakeAges()


class TestFakeEscalations(EscalationsContract):
    @pytest.fixture
    def escalations(self):
        return FakeEscalations()


class TestFakeInfusions(InfusionsContract):
    @pytest.fixture
    def infusions(self):
        return FakeInfusions()


class TestFakeReadModels(ReadModelsContract):
    @pytest.fixture
    def read_models(self):
        return FakeReadModels()


class TestFakeOutcomes(OutcomesContract):
    @pytest.fixture
    def outcomes(self):
        return FakeOutcomes()

    @pytest.fixture
    def published(self, outcomes):
        async def published():
            return list(outcomes.published.values())

        return published
