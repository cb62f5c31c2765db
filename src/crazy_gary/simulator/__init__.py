"""A faithful stand-in for Hugging Face Inference Endpoints, for development, tests and benchmarks.

It serves the management API v2 under `/v2`, each endpoint's vLLM-style address under
`/endpoints/{name}`, and a control API under `/_sim` that sets states and injects faults.
"""

from ._app import create_simulator_app
from ._config import SimulatorConfig
from ._server import SimulatorServer, run_simulator

__all__ = ["SimulatorConfig", "SimulatorServer", "create_simulator_app", "run_simulator"]
