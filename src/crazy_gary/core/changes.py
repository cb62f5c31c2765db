"""A count of the changes to what the endpoints' views show, so that a reader can keep what it built
from them until the count moves (the status answer of a big fleet, built once per change)."""

from __future__ import annotations

__all__ = ["Changes", "Counted"]


class Changes:
    """How many changes were made; only ever goes up."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def bump(self) -> None:
        self.count += 1


class Counted:
    """For records whose every attribute set is a change: counted in their `changes`, once it is set.

    Counting every write (rather than each method remembering to tell) keeps the count right as the
    record's methods change; a write costs one dictionary look-up more.
    """

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        changes = self.__dict__.get("changes")
        if changes is not None:
            changes.count += 1
