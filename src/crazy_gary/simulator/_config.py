"""The simulator's settings, fixed for the lifetime of one app."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["STATES", "SimulatorConfig"]

#: Every `status.state` the real service reports, spelt as it spells them.
STATES = (
    "pending",
    "initializing",
    "updating",
    "updateFailed",
    "running",
    "paused",
    "failed",
    "scaledToZero",
)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated Hugging Face behaves.

    `cold_start` is in seconds of the injected clock; `tokens_per_second` paces the answers
    (``math.inf`` answers at once); `minute` is how many seconds one minute of Hugging Face's own
    idle timer (`scaleToZeroTimeout`) lasts; `seed` makes every random fault decision reproducible.
    """

    token: str = "hf_simulator"
    namespace: str = "demo"
    cold_start: float = 20.0
    tokens_per_second: float = 50.0
    initial_state: str = "scaledToZero"
    seed: int = 0
    minute: float = 60.0

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("SimulatorConfig.token must not be empty")
        if not self.namespace or "/" in self.namespace:
            raise ValueError(f"SimulatorConfig.namespace is not a namespace: {self.namespace!r}")
        if not math.isfinite(self.cold_start) or self.cold_start < 0:
            raise ValueError(f"SimulatorConfig.cold_start must be >= 0 seconds, not {self.cold_start!r}")
        if math.isnan(self.tokens_per_second) or self.tokens_per_second <= 0:
            raise ValueError(f"SimulatorConfig.tokens_per_second must be > 0, not {self.tokens_per_second!r}")
        if not math.isfinite(self.minute) or self.minute <= 0:
            raise ValueError(f"SimulatorConfig.minute must be > 0 seconds, not {self.minute!r}")
        if self.initial_state not in STATES:
            raise ValueError(
                f"SimulatorConfig.initial_state must be one of {', '.join(STATES)}, "
                f"not {self.initial_state!r}"
            )
