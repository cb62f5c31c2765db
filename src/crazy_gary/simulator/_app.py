"""The simulator as one Starlette app: management API, endpoint addresses and control API."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from crazy_gary.clock import Clock

from ._config import SimulatorConfig
from ._control import ControlAPI
from ._http import handle_http_exception, handle_unexpected
from ._inference import InferenceAPI
from ._management import ManagementAPI
from ._world import World

__all__ = ["create_simulator_app"]


def create_simulator_app(config: SimulatorConfig, clock: Clock) -> Starlette:
    """A fresh simulated Hugging Face; its state lives in the app (`app.state.world`), nowhere else."""
    world = World(config, clock)
    routes = [
        *ManagementAPI(world).routes(),
        *InferenceAPI(world).routes(),
        *ControlAPI(world).routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: handle_http_exception, Exception: handle_unexpected},
    )
    app.state.world = world
    return app
