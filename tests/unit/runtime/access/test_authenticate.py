"""`Authenticator.authenticate` against a directory in memory: which credentials name a
principal (200) and which do not (401), and the 401 / 403 answers."""

from __future__ import annotations

import json

import pytest
from starlette.datastructures import Headers

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access import credentials
from infra.runtime.access.http import (SECURITY_SCHEMES, Authenticator, Forbidden, Unauthenticated, authorize,
                                       forbidden, unauthenticated)
from infra.runtime.access.policy import Action, Resource
from infra.runtime.access.principals import Membership, Principal
from infra.runtime.access.tokens import TokenIssuer, TokenVerifier, generate_signing_key, public_key_pem

KEY = generate_signing_key()
ROSSI = Principal("dr.rossi", PrincipalKind.PERSON, "Maria Rossi",
                  (Membership("CTR-BG", OrgKind.CENTRE, Role.PHYSICIAN),))
MES = Principal("fac1-mes", PrincipalKind.SYSTEM, "FAC-1 MES",
                (Membership("FAC-1", OrgKind.FACILITY, Role.FACILITY_SYSTEM),))
API_KEY = credentials.new_api_key()


class Directory:
    def __init__(self) -> None:
        self.principals = {p.principal_id: p for p in (ROSSI, MES)}
        self.keys = {API_KEY.key_id: ("fac1-mes", API_KEY.hash)}

    async def principal(self, principal_id: str) -> Principal | None:
        return self.principals.get(principal_id)

    async def api_key(self, key_id: str) -> tuple[str, str] | None:
        return self.keys.get(key_id)


@pytest.fixture
def directory() -> Directory:
    return Directory()


@pytest.fixture
def auth(directory: Directory) -> Authenticator:
    return Authenticator(directory, TokenVerifier(public_key_pem(KEY)))


def bearer(principal: Principal = ROSSI) -> Headers:
    return Headers({"authorization": f"Bearer {TokenIssuer(KEY).issue(principal).token}"})


class TestAuthenticated:
    async def test_by_a_valid_token(self, auth: Authenticator) -> None:
        assert await auth.authenticate(bearer()) == ROSSI

    async def test_by_a_valid_api_key(self, auth: Authenticator) -> None:
        assert await auth.authenticate(Headers({"x-api-key": API_KEY.key})) == MES

    async def test_the_memberships_come_from_the_directory_not_the_token(self, auth, directory) -> None:
        headers = bearer()
        directory.principals["dr.rossi"] = Principal("dr.rossi", PrincipalKind.PERSON, "Maria Rossi")  # revoked
        assert (await auth.authenticate(headers)).memberships == ()


class TestUnauthenticated:
    async def test_no_credential(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated, match="no credential") as caught:
            await auth.authenticate(Headers({}))
        assert caught.value.missing

    async def test_another_scheme(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated, match="Bearer <token>"):
            await auth.authenticate(Headers({"authorization": "Basic ZHI6cm9zc2k="}))

    async def test_a_forged_token(self, auth: Authenticator) -> None:
        forged = TokenIssuer(generate_signing_key()).issue(ROSSI).token
        with pytest.raises(Unauthenticated, match="not valid"):
            await auth.authenticate(Headers({"authorization": f"Bearer {forged}"}))

    async def test_a_token_of_a_principal_since_disabled(self, auth, directory) -> None:
        headers = bearer()
        del directory.principals["dr.rossi"]  # the directory returns None for disabled ones
        with pytest.raises(Unauthenticated, match="unknown or disabled"):
            await auth.authenticate(headers)

    async def test_a_token_where_no_public_key_is_configured(self, directory) -> None:
        with pytest.raises(Unauthenticated, match="CELLTRAIL_TOKEN_PUBLIC_KEY"):
            await Authenticator(directory, None).authenticate(bearer())

    async def test_an_unknown_or_disabled_api_key(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated, match="unknown, disabled or wrong"):
            await auth.authenticate(Headers({"x-api-key": credentials.new_api_key().key}))

    async def test_an_api_key_with_the_right_id_and_a_wrong_secret(self, auth: Authenticator) -> None:
        wrong = f"ctk_{API_KEY.key_id}_{'A' * 43}"
        with pytest.raises(Unauthenticated, match="unknown, disabled or wrong"):
            await auth.authenticate(Headers({"x-api-key": wrong}))

    async def test_a_malformed_api_key(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated, match="malformed"):
            await auth.authenticate(Headers({"x-api-key": "letmein"}))

    async def test_two_credentials_at_once(self, auth: Authenticator) -> None:
        with pytest.raises(Unauthenticated, match="not both"):
            await auth.authenticate(Headers({**bearer(), "x-api-key": API_KEY.key}))


class TestAnswers:
    def test_401_challenges_with_bearer_and_names_invalid_token_only_when_one_was_given(self) -> None:
        missing = unauthenticated(Unauthenticated("no credential", missing=True))
        bad = unauthenticated(Unauthenticated("the token has expired"))
        assert missing.status_code == bad.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="celltrail"'
        assert bad.headers["www-authenticate"] == 'Bearer realm="celltrail", error="invalid_token"'
        assert json.loads(bad.body) == {"error": "the token has expired", "code": "UNAUTHENTICATED"}

    def test_a_refusal_by_the_policy_is_403_with_its_reason(self) -> None:
        with pytest.raises(Forbidden) as caught:
            authorize(ROSSI, Action.READ_SUBJECT, Resource(centre_id="CTR-MI"))
        response = forbidden(caught.value)
        assert response.status_code == 403 and json.loads(response.body)["code"] == "FORBIDDEN"
        assert "not for a resource of centre CTR-MI" in json.loads(response.body)["error"]

    def test_an_allowed_action_passes(self) -> None:
        assert authorize(ROSSI, Action.READ_SUBJECT, Resource(centre_id="CTR-BG")).allowed

    def test_the_security_schemes_are_openapi_bearer_jwt_and_an_api_key_header(self) -> None:
        assert SECURITY_SCHEMES["bearerAuth"] | {"description": ""} == {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": ""}
        assert SECURITY_SCHEMES["apiKey"]["in"] == "header" and SECURITY_SCHEMES["apiKey"]["name"] == "X-API-Key"
