"""Whose a command on a command topic is about, for the policy (infra/runtime/access/commands.py):
the subject's centre as the service knows it, and the centre the command names if another."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import RecordApheresisCollection, RecordInfusion, RegisterCentre
from contracts.envelope import CommandEnvelope
from contracts.errors import Forbidden
from infra.runtime.access.commands import CommandGuard, resources_of
from infra.runtime.access.policy import NETWORK_RESOURCE, Resource
from infra.runtime.access.principals import Membership, Principal
from infra.runtime.access.tokens import TokenIssuer, TokenVerifier, generate_signing_key, public_key_pem

NOW = datetime(2025, 3, 3, 9, tzinfo=timezone.utc)
KNOWN = {"S-00000000000A": "CTR-A", "S-00000000000B": "CTR-B"}


async def centre_of(conn, subject_id: str) -> str | None:
    return KNOWN.get(subject_id)


def infusion(subject: str) -> RecordInfusion:
    return RecordInfusion(subject_id=subject, coi_id="W0001250000011", infused_at=NOW)


def collection(subject: str, centre: str) -> RecordApheresisCollection:
    return RecordApheresisCollection(coi_id="W0001250000011", subject_id=subject, centre_id=centre, collected_at=NOW)


@pytest.mark.parametrize(("command", "lookup", "expected"), [
    # a command naming only a subject: the subject's centre
    (infusion("S-00000000000A"), centre_of, [Resource(centre_id="CTR-A")]),
    # a subject the service does not know, and no centre named: the network's
    (infusion("S-00000000000C"), centre_of, [NETWORK_RESOURCE]),
    # a service that keeps no view: only what the command names
    (infusion("S-00000000000A"), None, [NETWORK_RESOURCE]),
    # the subject's centre and the one named agree: one
    (collection("S-00000000000A", "CTR-A"), centre_of, [Resource(centre_id="CTR-A")]),
    # they differ: both, so the caller must be allowed at both
    (collection("S-00000000000B", "CTR-A"), centre_of, [Resource(centre_id="CTR-B"), Resource(centre_id="CTR-A")]),
    # a subject not yet known here: the centre named
    (collection("S-00000000000C", "CTR-A"), centre_of, [Resource(centre_id="CTR-A")]),
    (RegisterCentre(centre_id="CTR-N", name="N", country="IT"), centre_of, [Resource(centre_id="CTR-N")]),
])
async def test_resources(command, lookup, expected) -> None:
    assert await resources_of(None, command, lookup) == expected


class TestTheGuardAsksForEveryResource:
    NURSE = Principal("nurse.a", PrincipalKind.PERSON, "Anna Nurse", (Membership("CTR-A", OrgKind.CENTRE, Role.NURSE),))

    KEY = generate_signing_key()

    def guard(self) -> CommandGuard:
        guard = CommandGuard(TokenVerifier(public_key_pem(self.KEY)), subject_centre=centre_of)
        guard._principals["nurse.a"] = (time.monotonic(), self.NURSE)  # as if just read from the access schema
        return guard

    def envelope(self, command) -> CommandEnvelope:
        return CommandEnvelope.wrap(command, actor="nurse.a", credential=TokenIssuer(self.KEY).issue(self.NURSE).token)

    async def test_a_nurse_records_the_infusion_of_her_centres_subject(self) -> None:
        cmd = infusion("S-00000000000A")
        assert await self.guard().admit(None, self.envelope(cmd), cmd) == self.NURSE

    async def test_not_of_another_centres_subject(self) -> None:
        cmd = infusion("S-00000000000B")
        with pytest.raises(Forbidden, match="not for a resource of centre CTR-B"):
            await self.guard().admit(None, self.envelope(cmd), cmd)

    async def test_not_even_by_naming_her_own_centre_on_it(self) -> None:
        cmd = collection("S-00000000000B", "CTR-A")
        with pytest.raises(Forbidden, match="not for a resource of centre CTR-B"):
            await self.guard().admit(None, self.envelope(cmd), cmd)
