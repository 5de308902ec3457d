"""Idempotency keys on real PostgreSQL (issue 12 item 4): `<schema>.command_keys` written in
the fetch's transaction with the events (infra/runtime/idempotency.py, HandlerApplier), and
the claim, answer and release of an HTTP request's key (infra/runtime/edge.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.commands import RegisterCentre
from contracts.envelope import CommandEnvelope
from contracts.registry import parse_command
from infra.runtime import idempotency
from infra.runtime.consumer import HandlerApplier, Message, Outcome
from infra.runtime.eventstore import EventStore
from infra.runtime.idempotency import CommandKeys, fingerprint, keyed, lookup
from services.enrollment import bootstrap

pytestmark = pytest.mark.integration
KEY = "load:" + "b" * 64


def message(name: str = "Centre", key: str | None = KEY, centre_id: str = "IT-KEY-01") -> Message:
    env = CommandEnvelope.wrap(RegisterCentre(centre_id=centre_id, name=name, country="IT"), actor="loader.a",
                               idempotency_key=key)
    return Message(None, env.command_id, env.command_type, env, parse_command(env))


@pytest.fixture
def applier() -> HandlerApplier:
    """Enrollment's handlers behind their keys, as a service applies them (without the guard)."""
    return HandlerApplier(EventStore("enrollment"), keyed(bootstrap.spec().command_handlers))


async def apply(pool, applier: HandlerApplier, *messages: Message) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await applier.apply(conn, list(messages), Outcome())


async def events(pool) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT stream_id, event_type, payload FROM enrollment.events ORDER BY position")
    return [(r["event_type"], r["payload"]) for r in rows]


class TestCommandKeys:
    async def test_the_outcome_is_recorded_with_the_events_and_a_resubmission_changes_nothing(self, pool, applier):
        first = message()
        await apply(pool, applier, first)
        before = await events(pool)
        assert [t for t, _ in before] == ["enrollment.CentreRegistered"]
        async with pool.acquire() as conn:
            row = await lookup(conn, "enrollment", KEY)
        assert (row.outcome, row.command_id, row.command_type, row.actor) == (
            "accepted", first.envelope.command_id, "RegisterCentre", "loader.a")
        assert [t for _, t in row.events] == ["enrollment.CentreRegistered"]

        await apply(pool, applier, message())  # a new message, the same key and body: nothing
        await apply(pool, applier, message(), message())  # twice in one fetch: nothing
        assert await events(pool) == before
        async with pool.acquire() as conn:
            assert (await lookup(conn, "enrollment", KEY)).command_id == first.envelope.command_id

    async def test_two_submissions_in_one_fetch_apply_once(self, pool, applier):
        await apply(pool, applier, message(), message())
        assert [t for t, _ in await events(pool)] == ["enrollment.CentreRegistered"]

    async def test_another_body_under_the_key_is_refused_and_not_recorded_under_it(self, pool, applier):
        await apply(pool, applier, message())
        await apply(pool, applier, message(name="Another name"))
        found = await events(pool)
        assert [t for t, _ in found] == ["enrollment.CentreRegistered", "common.CommandRejected"]
        assert '"IDEMPOTENCY_KEY_REUSED"' in found[1][1]
        async with pool.acquire() as conn:
            assert (await lookup(conn, "enrollment", KEY)).outcome == "accepted"

    async def test_a_refusal_is_recorded_and_a_resubmission_gets_it_without_a_second_rejection(self, pool, applier):
        await apply(pool, applier, message(key=None))
        await apply(pool, applier, message())  # the centre is registered already: refused, under the key
        async with pool.acquire() as conn:
            row = await lookup(conn, "enrollment", KEY)
        assert (row.outcome, row.reason_code) == ("refused", "CENTRE_ALREADY_REGISTERED")
        await apply(pool, applier, message())
        assert [t for t, _ in await events(pool)] == ["enrollment.CentreRegistered", "common.CommandRejected"]

    async def test_a_refused_message_in_a_run_keeps_the_keys_of_the_others(self, pool, applier):
        # the second is refused (the same centre), so the run's savepoint is rolled back and
        # the first applied again alone: its key is recorded once
        await apply(pool, applier, message(key="k-1"), message(key="k-2"), message(key="k-3", centre_id="IT-KEY-02"))
        async with pool.acquire() as conn:
            rows = {r["key"]: r["outcome"] for r in await conn.fetch("SELECT key, outcome FROM enrollment.command_keys")}
        assert rows == {"k-1": "accepted", "k-2": "refused", "k-3": "accepted"}

    async def test_a_key_recorded_by_another_writer_meanwhile_fails_the_fetch(self, pool):
        keys = CommandKeys("enrollment")
        keys.decide(idempotency.KeyOutcome(KEY, "RegisterCentre", "0" * 64, "a", "accepted"))
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO enrollment.command_keys (key, command_type, fingerprint, actor, outcome)"
                               " VALUES ($1, 'RegisterCentre', $2, 'a', 'accepted')", KEY, "1" * 64)
            with pytest.raises(Exception, match="duplicate key"):
                await keys.flush(conn)


class TestHttpKeys:
    async def test_claim_answer_replay_and_release(self, pool):
        print_ = fingerprint("POST /patients", "/patients", "nurse.a", b"{}")
        async with pool.acquire() as conn:
            assert await idempotency.claim(conn, "enrollment", KEY, "POST /patients", print_, "nurse.a") is None
            running = await idempotency.claim(conn, "enrollment", KEY, "POST /patients", print_, "nurse.a")
            assert running.outcome == "in_progress"
            await idempotency.answer(conn, "enrollment", KEY, 201, b'{"subject_id": "S-1"}')
            kept = await idempotency.claim(conn, "enrollment", KEY, "POST /patients", print_, "nurse.a")
            assert (kept.outcome, kept.http_status, kept.http_body) == ("accepted", 201, b'{"subject_id": "S-1"}')
            other = await idempotency.claim(conn, "enrollment", KEY, "POST /patients", "f" * 64, "nurse.a")
            assert other.fingerprint != "f" * 64  # another body: the caller refuses it
            await idempotency.answer(conn, "enrollment", "k-409", 409, b"{}", refused=("UNKNOWN_CENTRE", "no"))
            # an answer is never released; an invalid request's claim is
            await idempotency.release(conn, "enrollment", KEY)
            assert (await lookup(conn, "enrollment", KEY)).outcome == "accepted"
            assert await idempotency.claim(conn, "enrollment", "k-2", "POST /patients", print_, "nurse.a") is None
            await idempotency.release(conn, "enrollment", "k-2")
            assert await lookup(conn, "enrollment", "k-2") is None

    async def test_a_stale_claim_is_taken_over(self, pool):
        print_ = fingerprint("x")
        async with pool.acquire() as conn:
            assert await idempotency.claim(conn, "manufacturing", KEY, "POST /cois", print_, "a") is None
            await conn.execute("UPDATE manufacturing.command_keys SET recorded_at = now() - $1::interval",
                               idempotency.STALE_CLAIM + timedelta(seconds=1))
            assert await idempotency.claim(conn, "manufacturing", KEY, "POST /cois", print_, "a") is None
