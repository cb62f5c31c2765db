"""Where quota counts live: in this process, or in Redis for every replica at once.

A window (a UTC day or month) of one key holds the tokens `used` and the reservations of requests
under way, each with its amount and the time it lapses (a replica that crashed never settles its
own). A reservation is taken only when used + held + amount stays within every window's limit, in
one step: a lock-free dict in process (one event loop), a Lua script in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from crazy_gary.store.redis import SharedRedis

__all__ = ["Book", "LocalBook", "RedisBook", "Refusal", "Window"]


@dataclass(frozen=True)
class Window:
    """One counting window of a key: `name` (`tokens_per_day`), its id (`2026-12-01`), its limit
    and when it ends (Unix seconds)."""

    name: str
    id: str
    limit: int
    ends_at: float


@dataclass(frozen=True)
class Refusal:
    """The window a reservation did not fit, and what it holds already."""

    window: Window
    taken: int


class Book(Protocol):
    async def reserve(
        self, key: str, reservation: str, amount: int, windows: Sequence[Window], now: float, lapses_at: float
    ) -> Refusal | None:
        """Take `amount` in every window, or none and say which window refused."""
        ...

    async def settle(self, key: str, reservation: str, windows: Sequence[Window], used: int) -> None:
        """Drop the reservation and count `used` tokens (0: released)."""
        ...

    async def used(self, key: str, windows: Sequence[Window], now: float) -> dict[str, int]:
        """Tokens used and held in each window, by window name."""
        ...


@dataclass
class _Count:
    ends_at: float
    used: int = 0
    held: dict[str, tuple[int, float]] = field(default_factory=dict)  # reservation -> (amount, lapses at)

    def taken(self, now: float) -> int:
        for reservation in [r for r, (_, lapses) in self.held.items() if lapses <= now]:
            del self.held[reservation]
        return self.used + sum(amount for amount, _ in self.held.values())


class LocalBook:
    """The counts in this process. `share` divides every limit (each replica's part while Redis,
    which they share, cannot be reached)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], _Count] = {}
        self.share = 1

    def _count(self, key: str, window: Window, now: float | None = None) -> _Count:
        count = self._counts.get((key, window.id))
        if count is None:
            if now is not None:  # a new window: the counts of those that ended go
                for pair in [pair for pair, known in self._counts.items() if known.ends_at <= now]:
                    del self._counts[pair]
            count = self._counts[(key, window.id)] = _Count(ends_at=window.ends_at)
        return count

    async def reserve(
        self, key: str, reservation: str, amount: int, windows: Sequence[Window], now: float, lapses_at: float
    ) -> Refusal | None:
        for window in windows:
            taken = self._count(key, window, now).taken(now)
            if taken + amount > window.limit // self.share:
                return Refusal(window, taken)
        for window in windows:
            self._count(key, window).held[reservation] = (amount, lapses_at)
        return None

    async def settle(self, key: str, reservation: str, windows: Sequence[Window], used: int) -> None:
        for window in windows:
            count = self._count(key, window)
            count.held.pop(reservation, None)
            count.used += used

    async def used(self, key: str, windows: Sequence[Window], now: float) -> dict[str, int]:
        return {window.name: self._count(key, window, now).taken(now) for window in windows}

    def seed(self, key: str, window: Window, used: int) -> None:
        """Start a window at `used` (what the store says was used before a restart)."""
        count = self._count(key, window)
        count.used = max(count.used, used)

    def reset(self, key: str, window: Window, used: int) -> None:
        """Count a window from `used` on (its reservations stay)."""
        self._count(key, window).used = used


# What a window's hash holds, used and reserved, reservations lapsed by `now` left out (and, with
# `drop`, deleted).
_TAKEN_IN = """
local function taken_in(key, now, drop)
  local taken = tonumber(redis.call('HGET', key, 'used') or '0')
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    if string.sub(fields[j], 1, 2) == 'r:' then
      local value = fields[j + 1]
      local sep = string.find(value, ':', 1, true)
      if tonumber(string.sub(value, sep + 1)) <= now then
        if drop then
          redis.call('HDEL', key, fields[j])
        end
      else
        taken = taken + tonumber(string.sub(value, 1, sep - 1))
      end
    end
  end
  return taken
end
"""

# KEYS: one hash per window. ARGV: reservation, amount, seconds until it lapses, then each window's
# limit, then each window's expiry (Unix seconds). A hash holds `used` and `r:<reservation>` =
# "<amount>:<lapses at>". Times are Redis's own (TIME), so replicas whose clocks differ agree.
# Returns {1} when taken, else {0, index of the window that refused, what it holds}.
_RESERVE = (
    _TAKEN_IN
    + """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local reservation, amount = ARGV[1], tonumber(ARGV[2])
local lapses = string.format('%.3f', now + tonumber(ARGV[3]))
local n = #KEYS
for i = 1, n do
  local taken = taken_in(KEYS[i], now, true)
  if taken + amount > tonumber(ARGV[3 + i]) then
    return {0, i, taken}
  end
end
for i = 1, n do
  redis.call('HSET', KEYS[i], 'r:' .. reservation, ARGV[2] .. ':' .. lapses)
  redis.call('EXPIREAT', KEYS[i], ARGV[3 + n + i])
end
return {1}
"""
)

# KEYS: the windows' hashes. ARGV: reservation, tokens used. The reservation goes, the tokens count.
_SETTLE = """
for i = 1, #KEYS do
  redis.call('HDEL', KEYS[i], 'r:' .. ARGV[1])
  if tonumber(ARGV[2]) > 0 then
    redis.call('HINCRBY', KEYS[i], 'used', ARGV[2])
  end
end
return 1
"""

# KEYS: the windows' hashes. What each holds, used and held, lapsed reservations left out.
_TAKEN = (
    _TAKEN_IN
    + """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local result = {}
for i = 1, #KEYS do
  result[i] = taken_in(KEYS[i], now, false)
end
return result
"""
)

# KEYS: a window's hash. ARGV: tokens used (the store's figure), expiry. `used` raised to it.
_FLOOR = """
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
if used < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'used', ARGV[1])
end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
"""

KEEP_AFTER_END = 86_400  # seconds a window's counts stay in Redis after it ends


class RedisBook:
    """The counts in Redis, under `{prefix}quota:<key>:<window id>`; Redis errors propagate (the
    caller falls back to its local book and marks Redis unhealthy)."""

    def __init__(self, redis: SharedRedis) -> None:
        self._redis = redis
        client = redis.client
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._taken = client.register_script(_TAKEN)
        self._floor = client.register_script(_FLOOR)

    def _keys(self, key: str, windows: Sequence[Window]) -> list[str]:
        return [self._redis.key("quota", key, window.id) for window in windows]

    async def reserve(
        self, key: str, reservation: str, amount: int, windows: Sequence[Window], now: float, lapses_at: float
    ) -> Refusal | None:
        args: list[str | int | float] = [reservation, amount, max(1.0, lapses_at - now)]
        args += [window.limit for window in windows]
        args += [int(window.ends_at) + KEEP_AFTER_END for window in windows]
        answer = await self._reserve(keys=self._keys(key, windows), args=args)
        if int(answer[0]) == 1:
            return None
        return Refusal(windows[int(answer[1]) - 1], int(answer[2]))

    async def settle(self, key: str, reservation: str, windows: Sequence[Window], used: int) -> None:
        await self._settle(keys=self._keys(key, windows), args=[reservation, used])

    async def used(self, key: str, windows: Sequence[Window], now: float) -> dict[str, int]:
        answer = await self._taken(keys=self._keys(key, windows))
        return {window.name: int(taken) for window, taken in zip(windows, answer, strict=True)}

    async def seed(self, key: str, window: Window, used: int) -> None:
        """Raise a window's count to `used` (what the store says was used in it) where it holds less:
        a Redis that restarted empty, or tokens a replica counted on its own while Redis was away."""
        await self._floor(
            keys=[self._redis.key("quota", key, window.id)], args=[used, int(window.ends_at) + KEEP_AFTER_END]
        )
