"""A background task that fails is logged with its traceback and restarted, never left dead."""

from __future__ import annotations

import asyncio
import logging

import pytest

from infra.runtime.host import TaskHealth, supervise


class FailsThenRuns:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    async def __call__(self, stop: asyncio.Event) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"boom {self.calls}")
        await stop.wait()


async def supervised_until(condition, run, health: TaskHealth) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(health, run, stop, backoff=0.01, max_backoff=0.05))
    for _ in range(200):
        if condition():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)


class TestSupervise:
    async def test_a_task_that_raises_is_logged_with_its_traceback_and_restarted(self, caplog):
        health, run = TaskHealth("relay"), FailsThenRuns(failures=2)
        with caplog.at_level(logging.ERROR, logger="infra.host"):
            await supervised_until(lambda: run.calls == 3, run, health)
        assert run.calls == 3 and health.restarts == 2
        assert health.last_error == "RuntimeError: boom 2" and not health.failing
        assert caplog.text.count("task relay failed; restarting") == 2
        assert "Traceback" in caplog.text and "RuntimeError: boom 1" in caplog.text

    async def test_a_task_is_failing_while_it_waits_to_be_restarted(self):
        health = TaskHealth("relay")
        stop = asyncio.Event()
        task = asyncio.create_task(supervise(health, FailsThenRuns(failures=1), stop, backoff=10))
        await asyncio.sleep(0.05)
        assert health.failing and health.restarts == 1
        stop.set()
        await asyncio.wait_for(task, 1)

    async def test_a_task_that_returns_before_stop_is_restarted(self, caplog):
        calls = []

        async def returns_early(stop: asyncio.Event) -> None:
            calls.append(1)
            if len(calls) > 1:
                await stop.wait()

        health = TaskHealth("consumer")
        await supervised_until(lambda: len(calls) == 2, returns_early, health)
        assert health.restarts == 1 and "returned before it was asked to stop" in caplog.text

    async def test_a_task_stopped_normally_is_not_restarted(self):
        health, run = TaskHealth("relay"), FailsThenRuns(failures=0)
        stop = asyncio.Event()
        task = asyncio.create_task(supervise(health, run, stop))
        await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 1)
        assert run.calls == 1 and health.restarts == 0

    async def test_cancellation_is_not_a_failure(self):
        health = TaskHealth("relay")
        task = asyncio.create_task(supervise(health, FailsThenRuns(failures=0), asyncio.Event()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert health.restarts == 0
