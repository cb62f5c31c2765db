"""The supervisor on the manual clock: background loops log, count, back off and go on; cancellation wins."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from crazy_gary.clock import ManualClock
from crazy_gary.core.autosleep import AutoSleeper
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.core.status import EndpointStatus
from crazy_gary.core.supervisor import BackgroundFailure, Supervisor, stop
from crazy_gary.logs import REDACTED, configure_logging, flush_logs

from ._specs import SPECS
from .fakes import FakeManagement

SUPERVISOR = "crazy_gary.supervisor"


class FailingList(FakeManagement):
    """The fake management API, whose `list` raises each exception queued in `failures` first."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.failures: list[Exception] = []

    async def list(self, namespace: str) -> list[UpstreamEndpoint]:
        if self.failures:
            raise self.failures.pop(0)
        return await super().list(namespace)


@dataclass
class Poller:
    manager: HuggingFaceEndpointManager
    hf: FailingList
    clock: ManualClock
    failures: list[BackgroundFailure]


@pytest.fixture
async def poller() -> AsyncIterator[Poller]:
    clock = ManualClock()
    hf = FailingList(clock, {"gpt-oss-120b": "running", "gpt-oss-20b": "running"})
    failures: list[BackgroundFailure] = []
    async with HuggingFaceEndpointManager(
        SPECS, hf, clock, poll_interval=10, poll_fast_interval=1, on_background_error=failures.append
    ) as manager:
        await clock.settle()
        yield Poller(manager, hf, clock, failures)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SUPERVISOR and r.levelno >= logging.ERROR]


async def test_a_poller_outlives_an_unexpected_error(
    poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    """A KeyError from `list` is logged once with its traceback and counted; after the backoff the
    namespace is read again and the status follows HF (`paused`: sleeping)."""
    assert poller.manager.status("20b").status is EndpointStatus.RUNNING
    poller.hf.failures.append(KeyError("gpt-oss-20b"))
    poller.hf.records["gpt-oss-20b"].state = "paused"
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        for _ in range(10):  # up to the slow interval: the next reading, which fails
            await poller.clock.advance(1)
            if poller.failures:
                break
        assert poller.manager.status("20b").status is EndpointStatus.RUNNING
        await poller.clock.advance(1)  # the backoff
    assert poller.manager.status("20b").status is EndpointStatus.SLEEPING
    [record] = errors(caplog)
    assert "poller:demo" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert [(f.task, f.streak, f.retry_in) for f in poller.failures] == [("poller:demo", 1, 1.0)]


async def test_a_streak_of_like_failures_is_logged_once_with_a_growing_backoff(
    poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    """Five failures in a row are each counted, logged once, and retried after 1, 2, 4, 8, 16 s."""
    poller.hf.failures.extend(KeyError("again") for _ in range(5))
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        await poller.clock.advance(10 + 1 + 2 + 4 + 8 + 16)
    assert [f.retry_in for f in poller.failures] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert [f.streak for f in poller.failures] == [1, 2, 3, 4, 5]
    assert len(errors(caplog)) == 1
    assert poller.manager.status("20b").status is EndpointStatus.RUNNING  # read again after the last


async def test_the_backoff_stops_at_its_ceiling(caplog: pytest.LogCaptureFixture) -> None:
    """A pass that always fails is tried again every 30 s at most, and logged once."""
    clock = ManualClock()
    failures: list[BackgroundFailure] = []

    async def fails() -> None:
        raise RuntimeError("still broken")

    task = Supervisor(clock, failures.append).loop("broken", fails)
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        await clock.advance(1 + 2 + 4 + 8 + 16 + 30 + 30)
    assert [f.retry_in for f in failures] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert len(errors(caplog)) == 1
    await stop([task])


async def test_a_pass_that_fails_for_hours_is_still_tried_every_ceiling() -> None:
    """Twelve hours of failures (1,400 in a row) do not overflow the backoff: still every 30 s."""
    clock = ManualClock()
    failures: list[BackgroundFailure] = []

    async def fails() -> None:
        raise RuntimeError("still broken")

    task = Supervisor(clock, failures.append).loop("broken", fails)
    for _ in range(12):
        await clock.advance(3600)
    assert not task.done()
    assert len(failures) > 1400
    assert {f.retry_in for f in failures[-100:]} == {30.0}
    await stop([task])


async def test_a_clean_pass_ends_the_streak(caplog: pytest.LogCaptureFixture) -> None:
    """After a pass that returns, the next failure is logged again and retried after the first delay."""
    clock = ManualClock()
    failures: list[BackgroundFailure] = []
    script = [RuntimeError("a"), RuntimeError("a"), None, RuntimeError("a")]

    async def one_pass() -> None:
        step = script.pop(0) if script else None
        if step is not None:
            raise step
        await clock.sleep(5)

    task = Supervisor(clock, failures.append).loop("scripted", one_pass)
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        await clock.advance(1 + 2 + 5 + 1)
    assert [(f.streak, f.retry_in) for f in failures] == [(1, 1.0), (2, 2.0), (1, 1.0)]
    assert len(errors(caplog)) == 2
    await stop([task])


async def test_a_different_failure_is_logged_again_within_a_streak(caplog: pytest.LogCaptureFixture) -> None:
    """A streak logs its first failure and each failure unlike the one before, not each retry."""
    clock = ManualClock()
    script: list[Exception] = [KeyError("x"), KeyError("x"), ValueError("y"), ValueError("y")]

    async def one_pass() -> None:
        if script:
            raise script.pop(0)
        await clock.sleep(60)

    task = Supervisor(clock).loop("changing", one_pass)
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        await clock.advance(1 + 2 + 4 + 8)
    assert [r.exc_info[0] for r in errors(caplog) if r.exc_info] == [KeyError, ValueError]
    await stop([task])


@dataclass
class Due:
    """A stand-in endpoint whose auto-sleep is due at `due` (None once slept)."""

    due: float | None
    in_flight: int = 0
    in_flight_elsewhere: int = 0

    def sleep_due(self) -> float | None:
        return self.due


async def test_auto_sleep_outlives_its_sleep_callback_failing(caplog: pytest.LogCaptureFixture) -> None:
    """A sleep callback that raises is logged and counted; after the backoff the endpoint is put to sleep."""
    clock = ManualClock()
    endpoint = Due(clock.now() + 10)
    failures: list[BackgroundFailure] = []
    calls: list[Due] = []

    def sleep(due: Due) -> None:
        calls.append(due)
        if len(calls) == 1:
            raise RuntimeError("the sleep could not start")
        due.due = None

    reaper = AutoSleeper([endpoint], clock, sleep=sleep)  # type: ignore[list-item]  # the stand-in
    reaper.start(Supervisor(clock, failures.append))
    try:
        with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
            await clock.advance(10)
            assert [(f.task, f.retry_in) for f in failures] == [("auto-sleep", 1.0)]
            await clock.advance(1)
        assert len(calls) == 2 and endpoint.due is None
        assert len(errors(caplog)) == 1
    finally:
        await reaper.close()


async def test_a_task_run_once_is_run_again_until_it_completes(caplog: pytest.LogCaptureFixture) -> None:
    """A one-shot task that fails is logged with its traceback, reported, and run again after the
    backoff until it completes; then it is not run again."""
    clock = ManualClock()
    failures: list[BackgroundFailure] = []
    runs: list[float] = []

    async def once() -> None:
        runs.append(clock.monotonic())
        if len(runs) < 3:
            raise LookupError("no prices")

    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        task = Supervisor(clock, failures.append).once("live-prices", once)
        await clock.advance(60)
    assert task.done() and task.exception() is None
    assert [later - runs[0] for later in runs] == [0.0, 1.0, 3.0]
    assert [(f.task, f.streak, f.retry_in) for f in failures] == [
        ("live-prices", 1, 1.0),
        ("live-prices", 2, 2.0),
    ]
    [record] = errors(caplog)  # like failures in a row: logged once
    assert record.exc_info is not None and record.exc_info[0] is LookupError


async def test_a_failing_hook_does_not_stop_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    """An error hook that raises is logged, and the supervised loop still runs again."""
    clock = ManualClock()
    runs: list[int] = []

    def hook(failure: BackgroundFailure) -> None:
        raise RuntimeError("the counter is broken")

    async def one_pass() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise KeyError("once")
        await clock.sleep(60)

    task = Supervisor(clock, hook).loop("hooked", one_pass)
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        await clock.advance(1)
    assert len(runs) == 2 and not task.done()
    assert any("error hook failed" in r.getMessage() for r in errors(caplog))
    await stop([task])


async def test_close_logs_the_error_a_task_ended_with(caplog: pytest.LogCaptureFixture) -> None:
    """`stop` logs (with its traceback) an exception other than cancellation that a task ended with."""

    async def broken() -> None:
        raise ValueError("lost before")

    async def waits() -> None:
        await asyncio.Event().wait()

    failed = asyncio.create_task(broken(), name="broken")
    waiting = asyncio.create_task(waits(), name="waiting")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger=SUPERVISOR):
        await stop([failed, waiting, None])
    [record] = errors(caplog)
    assert "broken" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert waiting.cancelled()


async def test_cancellation_goes_through_a_supervised_loop() -> None:
    """A supervised loop is cancelled in its pass and in its backoff, and a CancelledError raised by a
    pass ends it rather than being retried."""
    clock = ManualClock()
    failures: list[BackgroundFailure] = []

    async def waits() -> None:
        await clock.sleep(60)

    async def fails() -> None:
        raise KeyError("x")

    async def cancelled() -> None:
        raise asyncio.CancelledError

    supervisor = Supervisor(clock, failures.append)
    in_pass, in_backoff, raising = (
        supervisor.loop("waits", waits),
        supervisor.loop("fails", fails),
        supervisor.loop("cancelled", cancelled),
    )
    await clock.settle()
    assert raising.cancelled()
    for task in (in_pass, in_backoff):
        task.cancel()
    await clock.settle()
    assert in_pass.cancelled() and in_backoff.cancelled()
    assert [f.task for f in failures] == ["fails"]


async def test_stop_lets_its_own_cancellation_through() -> None:
    """A task cancelled while it stops others is cancelled itself: `stop` swallows only theirs."""

    release = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()

    child = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(stop([child]))
    await asyncio.sleep(0)
    stopping.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert child.cancelled()


async def test_a_logged_failure_is_redacted(restore_logging: None) -> None:
    """A failure's line goes through the normal logging chain: traceback kept, secrets redacted."""
    secret = "hf_SupervisorSecret0123456789"
    stream = io.StringIO()
    configure_logging(secrets=[secret], stream=stream, json=True)

    clock = ManualClock()
    leaked: list[int] = []

    async def leaks() -> None:
        leaked.append(1)
        if len(leaked) == 1:
            raise RuntimeError(f"token {secret} refused")

    task = Supervisor(clock).once("leaky", leaks)
    await clock.advance(1)
    await task
    flush_logs()
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["logger"] == SUPERVISOR and line["level"] == "error"
    assert "Traceback" in line["exception"] and f"token {REDACTED} refused" in line["exception"]
    assert secret not in stream.getvalue()
