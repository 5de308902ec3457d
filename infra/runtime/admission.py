"""Admission at the HTTP edge (issue 12 item 8): a saturated service answers at once that it
is busy, with a hint of when to retry, instead of letting requests queue until they time out.

At most `limit` requests are handled at a time (their coroutines, their database
connections from a pool of fewer); one more waits for a place at most `wait_seconds`, then is
answered 503 `SATURATED` with `Retry-After`. So a burst costs each service a bounded amount of
memory and time, and a client learns to slow down. A request that fails because the database
or the broker is unreachable is answered 503 `UNAVAILABLE` with `Retry-After` too, never a
500 (the consumer's INFRASTRUCTURE_ERRORS: the service retries its own work meanwhile).
The probes (`/health`, `/ready`, `/status`) are never turned away: they say how it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator

from starlette.responses import JSONResponse

RETRY_AFTER_SECONDS = 1


class Saturated(Exception):
    """No place for the request within the wait."""


class Admission:
    """A service's places for requests in flight, and how many were turned away."""

    def __init__(self, limit: int, wait_seconds: float) -> None:
        if limit < 1 or wait_seconds < 0:
            raise ValueError(f"admission needs a limit of at least 1 and a wait of 0 s or more, not {limit}, "
                             f"{wait_seconds}")
        self.limit, self.wait_seconds = limit, wait_seconds
        self._places = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.turned_away = 0

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._places.acquire(), self.wait_seconds)
        except TimeoutError:
            self.turned_away += 1
            raise Saturated(f"{self.limit} requests are being handled; this one waited {self.wait_seconds:g} s "
                            f"for a place") from None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._places.release()

    def status(self) -> dict[str, int | float]:
        return {"limit": self.limit, "in_flight": self.in_flight, "turned_away": self.turned_away,
                "wait_seconds": self.wait_seconds}


def busy(exc: Saturated) -> JSONResponse:
    return JSONResponse({"error": f"busy: {exc}; retry after {RETRY_AFTER_SECONDS} s", "code": "SATURATED"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def unavailable(exc: BaseException, retry_after: float = 2) -> JSONResponse:
    what = type(exc).__name__
    return JSONResponse({"error": f"a service this request needs is unreachable ({what}); retry after "
                                  f"{math.ceil(retry_after)} s", "code": "UNAVAILABLE"},
                        status_code=503, headers={"Retry-After": str(math.ceil(retry_after))})
