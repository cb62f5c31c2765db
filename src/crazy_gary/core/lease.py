"""A request's lease on one endpoint: in flight, activity, the breaker's claim and its outcome.

    async with manager.lease(key) as lease:    # in flight, activity, the breaker claimed
        answer = await send(...)
        lease.succeeded()                      # or lease.failed(), or lease.gone_cold()
                                               # left: activity, no longer in flight, claim settled

A concurrency slot taken by routing (`crazy_gary.core.gate`) is given back when the lease ends.
Leaving the block without an outcome (cancelled, say) releases the claim and counts nothing against
the endpoint. An answer whose body is read after the block is left hands its lease over with
`detach()`; `aclose()` ends it then. Either way the lease ends in one place, once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.endpoint import Endpoint
from crazy_gary.core.gate import Slot
from crazy_gary.core.status import EndpointStatus

__all__ = ["Lease"]


class Lease:
    """One request on one endpoint, from before its first byte goes until its last byte came back.

    The breaker is claimed on entering, right after routing chose the endpoint (routing checks that
    it allows a request and does not claim, so there must be no await between the two): in half-open
    state that is the one trial. The first outcome given settles the claim; later ones are ignored.
    """

    __slots__ = (
        "_activity",
        "_claimed",
        "_clock",
        "_detached",
        "_ended",
        "_hurry",
        "_settled",
        "_slot",
        "endpoint",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        clock: Clock,
        on_activity: Callable[[], None],
        hurry: Callable[[Endpoint], None],
        slot: Slot | None = None,
    ) -> None:
        """`on_activity` is told each time activity is recorded (auto-sleep reconsiders);
        `hurry` asks for a fresh reading of the endpoint's state; `slot` is the request's room under
        the endpoint's concurrency limit, given back when the lease ends."""
        self.endpoint = endpoint
        self._slot = slot
        self._clock = clock
        self._activity = on_activity
        self._hurry = hurry
        self._claimed = self._settled = self._detached = self._ended = False

    @property
    def key(self) -> str:
        return self.endpoint.key

    async def __aenter__(self) -> Lease:
        endpoint = self.endpoint
        self._claimed = endpoint.breaker.acquire()
        endpoint.request_began(self._clock.now())
        self._activity()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._detached:
            self._end()

    def detach(self) -> Lease:
        """Keep the lease past its block (an answer still streaming): `aclose()` ends it later."""
        self._detached = True
        return self

    async def aclose(self) -> None:
        """End a detached lease: activity, no longer in flight, the claim released if not settled."""
        self._end()

    # -- outcomes -------------------------------------------------------------------------------
    def succeeded(self) -> None:
        """The endpoint answered: a half-open circuit closes."""
        if self._settle():
            self.endpoint.breaker.record_success()

    def failed(self) -> None:
        """A real failure of a running endpoint: it counts towards opening the circuit."""
        if self._settle():
            self.endpoint.breaker.record_failure()

    def gone_cold(self) -> None:
        """It failed through no fault of its own (a 429, a 503 while it scales to zero): the claim is
        released and nothing counts against it."""
        if self._settle():
            self.endpoint.breaker.release()

    async def still_running(self, within: float) -> bool:
        """Whether the endpoint still runs by a reading of Hugging Face asked from now on (hurried),
        or by the last one when none comes within `within` seconds."""
        endpoint = self.endpoint
        asked, applied = self._clock.now(), endpoint.ticket
        self._hurry(endpoint)
        deadline = self._clock.monotonic() + within
        # a reading applied since (a newer ticket) of a question asked no earlier than now
        while endpoint.ticket == applied or endpoint.observed_at is None or endpoint.observed_at < asked:
            updated = endpoint.updated()
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or not await wait_event(self._clock, updated, remaining):
                break
        return endpoint.status() is EndpointStatus.RUNNING

    # -- internals ------------------------------------------------------------------------------
    def _settle(self) -> bool:
        """Whether this is the first outcome of a lease that holds a claim."""
        first = self._claimed and not self._settled
        self._settled = True
        return first

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        endpoint = self.endpoint
        if self._claimed and not self._settled:
            endpoint.breaker.release()
        endpoint.request_ended(self._clock.now())
        if self._slot is not None:
            self._slot.release()  # to the first request queued, if any
        self._activity()
        endpoint.notify()  # a sleep waiting for the endpoint to drain looks again
