"""Background tasks that outlive their errors, and that are never lost.

Every loop the gateway runs in the background (the pollers, auto-sleep, replica sync, the recorder,
Redis's health monitor and event relay) runs under a :class:`Supervisor`: an unexpected exception is
logged with its traceback (once per streak of like failures, not once per retry), reported to the
`on_error` hook (the app counts it in `crazy_gary_background_errors_total{task}`), and the loop is
run again after a backoff on the injected clock; a task meant to run once runs again the same way
until it completes. Cancellation always goes through. :func:`stop`
cancels tasks and logs the error any of them ended with, where `gather(..., return_exceptions=True)`
would drop it.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from crazy_gary.clock import Clock

__all__ = ["BackgroundFailure", "ErrorHook", "Supervisor", "stop"]

logger = logging.getLogger("crazy_gary.supervisor")

FIRST_DELAY = 1.0  # seconds before the first retry; doubled for each failure in a row
MAX_DELAY = 30.0  # seconds between retries at most


@dataclass(frozen=True)
class BackgroundFailure:
    """One unexpected exception of a background task."""

    task: str  # the task's name (`poller:demo`, `auto-sleep`, …): bounded, fit for a metric label
    error: Exception
    streak: int  # failures in a row, this one included
    retry_in: float  # seconds until the task runs again


class ErrorHook(Protocol):
    """Told of every failure of a background task (it must not block)."""

    def __call__(self, failure: BackgroundFailure) -> None: ...


class Supervisor:
    """Starts named background tasks that log, report and survive their unexpected exceptions."""

    def __init__(
        self,
        clock: Clock,
        on_error: ErrorHook | None = None,
        *,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self._clock = clock
        self._on_error = on_error  # None: failures are only logged
        self._first_delay = first_delay
        self._max_delay = max_delay

    def loop(self, name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """A task named `name` that awaits `body()` again and again until it is cancelled.

        `body` is one pass of a loop (a return is a clean pass: it is called again at once) or a loop
        of its own that never returns. After an exception it is called again after a backoff of
        `first_delay` seconds, doubled for each failure in a row up to `max_delay`. A streak of
        failures ends with a clean pass, or once `body` has run `max_delay` seconds without failing
        (the only sign of health a loop that never returns gives).
        """
        return asyncio.create_task(self._loop(name, body), name=name)

    def once(self, name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """A task named `name` that awaits `body()` until it completes without an exception: after
        one it is logged, reported and run again after the same backoff as a loop's (a start-up task
        such as reading live prices must not be lost to one bad answer)."""
        return asyncio.create_task(self._loop(name, body, until_done=True), name=name)

    async def _loop(
        self, name: str, body: Callable[[], Awaitable[None]], *, until_done: bool = False
    ) -> None:
        streak, logged = 0, None
        while True:
            began = self._clock.monotonic()
            error = await _attempt(body)
            if error is None and until_done:
                return
            if error is None or self._clock.monotonic() - began >= self._max_delay:
                streak, logged = 0, None
            if error is None:
                continue
            streak += 1
            delay = min(self._first_delay * 2.0 ** min(streak - 1, 64), self._max_delay)  # no overflow
            failure = BackgroundFailure(name, error, streak, delay)
            if _signature(error) != logged:
                logged = _signature(error)
                logger.error(
                    "background task %s failed (%d in a row); it runs again in %g s",
                    name,
                    streak,
                    delay,
                    exc_info=error,
                )
            self._report(failure)
            await self._clock.sleep(delay)

    def _report(self, failure: BackgroundFailure) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(failure)
        except Exception:  # a failing hook must not take the supervised task down with it
            logger.exception("the error hook failed on a failure of %s", failure.task)


async def _attempt(body: Callable[[], Awaitable[None]]) -> Exception | None:
    """Await `body()`; the exception it raised, if any.

    THE deliberate broad except of the project: whatever a background pass raises is caught here,
    and only here, to be logged, counted and retried. Cancellation, KeyboardInterrupt and SystemExit
    are not `Exception`s and go through.
    """
    try:
        await body()
    except Exception as exc:  # noqa: BLE001 - see above: the supervisor's one broad except
        return exc
    return None


def _signature(error: Exception) -> tuple[type[Exception], str, int | None]:
    """What makes two failures alike: their type and the line that raised them."""
    frames = traceback.extract_tb(error.__traceback__)
    last = frames[-1] if frames else None
    return type(error), last.filename if last else "", last.lineno if last else None


async def stop(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel `tasks` and wait until they end; an exception other than cancellation that one of them
    ended with is logged (a cancellation of the caller itself goes through)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    ended = await asyncio.gather(*running, return_exceptions=True)
    for task, result in zip(running, ended, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            logger.error("background task %s ended with an error", task.get_name(), exc_info=result)
