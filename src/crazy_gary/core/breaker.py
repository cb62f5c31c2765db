"""A circuit breaker per endpoint that knows a cold start is not a failure.

Our own code rather than a library's: the breakers we looked at count every error alike, and here a
503 from an endpoint that is still starting must not count, nor a request that never reached it.
Only real failures of a running endpoint are recorded by the gateway.

    closed ──(N consecutive failures, or failure ratio over the window)──▶ open
    open ──(cooldown passed)──▶ half_open: one trial request at a time
    half_open ──success──▶ closed;  ──failure──▶ open again

Among replicas, a circuit opened by one opens on the others for the rest of its cooldown
(`open_since`, fed by `crazy_gary.core.replicas`); each replica then sends its own half-open trial.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from crazy_gary.clock import Clock
from crazy_gary.core.changes import Changes, Counted

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker(Counted):
    """One endpoint's breaker; time comes from the clock. Each write counts in `changes`, if given."""

    clock: Clock
    failures_to_open: int = 5
    cooldown: float = 30.0
    window: int = 20
    ratio_to_open: float = 0.5
    min_calls_for_ratio: int = 10
    _state: BreakerState = BreakerState.CLOSED
    _consecutive: int = 0
    _opened_at: float = 0.0  # monotonic
    opened_wall: float | None = None  # wall time of the latest opening, here or through another replica
    _trial_in_flight: bool = False
    _outcomes: deque[bool] = field(default_factory=deque)
    # told when this replica's own failures open a closed circuit: not when a failed trial keeps it
    # open (the same outage), nor for an opening learnt from another replica; it must not block
    on_open: Callable[[], None] | None = None
    changes: Changes | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock.monotonic() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return self._state

    def allows(self) -> bool:
        """Whether a request may go to this endpoint now (without claiming the half-open trial)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._trial_in_flight

    def acquire(self) -> bool:
        """Claim the right to send one request; in half-open state only one trial at a time."""
        if not self.allows():
            return False
        if self.state is BreakerState.HALF_OPEN:
            self._state = BreakerState.HALF_OPEN
            self._trial_in_flight = True
        return True

    def release(self) -> None:
        """The claimed request ended without telling anything about the endpoint (e.g. cancelled)."""
        self._trial_in_flight = False

    def record_success(self) -> None:
        self._trial_in_flight = False
        self._consecutive = 0
        self._remember(True)
        if self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._outcomes.clear()

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._consecutive += 1
        self._remember(False)
        if self._state is BreakerState.HALF_OPEN or self._should_open():
            was_closed = self._state is BreakerState.CLOSED
            self._open()
            if was_closed and self.on_open is not None:
                self.on_open()

    def open_since(self, at: float) -> bool:
        """Another replica opened this circuit at wall time `at`: open it here too for what remains of
        the cooldown. Whether that changed anything (an older or lapsed opening does not)."""
        if self.opened_wall is not None and at <= self.opened_wall:
            return False
        elapsed = max(0.0, self.clock.now() - at)
        opens = elapsed < self.cooldown
        if opens:
            self._open()
            self._opened_at -= elapsed
        self.opened_wall = at
        return opens

    def _remember(self, ok: bool) -> None:
        self._outcomes.append(ok)
        while len(self._outcomes) > self.window:
            self._outcomes.popleft()

    def _should_open(self) -> bool:
        if self._consecutive >= self.failures_to_open:
            return True
        if len(self._outcomes) < self.min_calls_for_ratio:
            return False
        failures = sum(1 for ok in self._outcomes if not ok)
        return failures / len(self._outcomes) >= self.ratio_to_open

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self.clock.monotonic()
        self.opened_wall = self.clock.now()
        self._consecutive = 0
        self._outcomes.clear()
