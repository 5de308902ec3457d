"""A saturated service answers at once (issue 12 item 8): 503 SATURATED with Retry-After once
its places are taken and the wait is over, 503 UNAVAILABLE with Retry-After when the database
or the broker is unreachable, never a timeout or a 500; the probes are never turned away."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse

from infra.runtime.admission import Admission, Saturated
from infra.runtime.endpoints import PUBLIC, Endpoint
from infra.runtime.host import _route


class Runtime:
    def __init__(self, admission: Admission) -> None:
        self.admission = admission


def app(admission: Admission, work) -> Starlette:
    endpoints = [Endpoint("GET", "/work", PUBLIC, lambda rt: work, "work"),
                 Endpoint("GET", "/health", PUBLIC, lambda rt: work, "probe")]
    running = {"runtime": Runtime(admission), "handlers": {ep.key: ep.make(None) for ep in endpoints}}
    return Starlette(routes=[_route(ep, running) for ep in endpoints])


def client(starlette: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=starlette), base_url="http://127.0.0.1")


class TestAdmission:
    async def test_a_place_is_given_back_and_one_more_waits_then_is_turned_away(self):
        admission = Admission(1, 0.05)
        async with admission.admit():
            assert admission.in_flight == 1
            with pytest.raises(Saturated, match="1 requests are being handled; this one waited 0.05 s"):
                async with admission.admit():
                    pass
        async with admission.admit():
            pass
        assert admission.status() == {"limit": 1, "in_flight": 0, "turned_away": 1, "wait_seconds": 0.05}

    def test_a_limit_below_one_is_refused(self):
        with pytest.raises(ValueError, match="limit of at least 1"):
            Admission(0, 1.0)


class TestAtTheEdge:
    async def test_a_burst_beyond_the_places_is_answered_busy_with_a_retry_hint_at_once(self):
        release = asyncio.Event()

        async def slow(call):
            await release.wait()
            return JSONResponse({"ok": True})

        admission = Admission(4, 0.2)
        async with client(app(admission, slow)) as http:
            burst = [asyncio.create_task(http.get("/work")) for _ in range(20)]
            await asyncio.sleep(0.6)  # the 16 beyond the places have waited their 0.2 s
            busy = [t for t in burst if t.done()]
            assert len(busy) == 16
            for t in busy:
                r = t.result()
                assert (r.status_code, r.headers["retry-after"], r.json()["code"]) == (503, "1", "SATURATED")
            release.set()
            served = await asyncio.wait_for(asyncio.gather(*(t for t in burst if t not in busy)), 2)
            assert [r.status_code for r in served] == [200] * 4
            assert admission.status()["turned_away"] == 16 and admission.in_flight == 0

    async def test_a_probe_is_answered_while_every_place_is_taken(self):
        release = asyncio.Event()

        async def slow_unless_probe(call):
            if call.request.url.path == "/work":
                await release.wait()
            return JSONResponse({"ok": True})

        async with client(app(Admission(1, 0.05), slow_unless_probe)) as http:
            held = asyncio.create_task(http.get("/work"))
            await asyncio.sleep(0.05)
            assert (await asyncio.wait_for(http.get("/health"), 1)).status_code == 200
            release.set()
            assert (await held).status_code == 200

    @pytest.mark.parametrize("error", [ConnectionRefusedError(111, "refused"),
                                       asyncpg.exceptions.CannotConnectNowError("the database system is starting up")])
    async def test_an_unreachable_database_is_503_with_a_retry_hint_not_500(self, error):
        async def failing(call):
            raise error

        async with client(app(Admission(4, 0.2), failing)) as http:
            r = await http.get("/work")
        assert (r.status_code, r.headers["retry-after"], r.json()["code"]) == (503, "2", "UNAVAILABLE")
        assert type(error).__name__ in r.json()["error"]

    async def test_any_other_failure_is_not_dressed_as_an_outage(self):
        async def broken(call):
            raise KeyError("a bug")

        async with client(app(Admission(4, 0.2), broken)) as http:
            with pytest.raises(KeyError):
                await http.get("/work")
