"""What the simulated namespace holds at start, and the hardware it offers with prices."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["HARDWARE", "Hardware", "compute_id", "provider_json", "seed_endpoints"]

_VENDOR = "aws"
_REGION = "us-east-1"
_VLLM_IMAGE = {"vLLM": {"url": "vllm/vllm-openai:latest", "healthRoute": "/health", "port": 80}}


@dataclass(frozen=True)
class Seed:
    """An endpoint the namespace holds at start.

    `state` is the state it starts in; None means the simulator's configured initial state.
    """

    repository: str
    instance_type: str
    task: str = "text-generation"
    state: str | None = None


_SEEDS = {
    "gpt-oss-120b": Seed("openai/gpt-oss-120b", "nvidia-h200"),
    "gpt-oss-20b": Seed("openai/gpt-oss-20b", "nvidia-l4"),
    "bge-small-en": Seed(
        "BAAI/bge-small-en-v1.5", "nvidia-t4", task="sentence-embeddings", state="scaledToZero"
    ),
}


def seed_endpoints(initial_state: str) -> dict[str, tuple[dict[str, Any], str]]:
    """The endpoints of the namespace at start, name -> (spec, state); the spec is the endpoint JSON
    without name and status, and `initial_state` the state of those without a state of their own."""
    return {name: (_seed_spec(seed), seed.state or initial_state) for name, seed in _SEEDS.items()}


def _seed_spec(seed: Seed) -> dict[str, Any]:
    return {
        "type": "authenticated",
        "accountId": None,
        "provider": {"vendor": _VENDOR, "region": _REGION},
        "compute": {
            "id": compute_id(_VENDOR, _REGION, seed.instance_type, "x1"),
            "accelerator": "gpu",
            "instanceType": seed.instance_type,
            "instanceSize": "x1",
            "scaling": {
                "minReplica": 0,
                "maxReplica": 1,
                "scaleToZeroTimeout": 15,
                "measure": {"hardwareUsage": None},
                "metric": "hardwareUsage",
            },
        },
        "model": {
            "repository": seed.repository,
            "revision": "main",
            "task": seed.task,
            "framework": "pytorch",
            "image": copy.deepcopy(_VLLM_IMAGE),
            "env": {},
            "secrets": {},
        },
        "healthRoute": "/health",
    }


def compute_id(vendor: str, region: str, instance_type: str, instance_size: str) -> str:
    """The id of a hardware offer, as `compute.id` and the provider list name it."""
    return f"{vendor}-{region}-{instance_type}-{instance_size}"


@dataclass(frozen=True)
class Hardware:
    """One instance type and size on offer, with HF's published price per replica-hour."""

    instance_type: str
    instance_size: str
    architecture: str
    num_accelerators: int
    num_cpus: int
    memory_gb: float
    gpu_memory_gb: int
    price_per_hour: float

    @property
    def id(self) -> str:
        return compute_id(_VENDOR, _REGION, self.instance_type, self.instance_size)


# instanceType -> (architecture, vCPUs per GPU, RAM GB per GPU, GPU memory GB per GPU)
_GPUS = {
    "nvidia-t4": ("Nvidia T4", 4, 16, 16),
    "nvidia-l4": ("Nvidia L4", 8, 30, 24),
    "nvidia-a10g": ("Nvidia A10G", 6, 26, 24),
    "nvidia-l40s": ("Nvidia L40S", 8, 62, 48),
    "nvidia-a100": ("Nvidia A100", 12, 142, 80),
    "nvidia-h100": ("Nvidia H100", 23, 240, 80),
    "nvidia-h200": ("Nvidia H200", 23, 256, 141),
}

# (instanceType, number of GPUs, $ per hour), from the price list in the reference notes
_PRICES = (
    ("nvidia-t4", 1, 0.50),
    ("nvidia-l4", 1, 0.80),
    ("nvidia-l4", 4, 3.80),
    ("nvidia-a10g", 1, 1.00),
    ("nvidia-l40s", 1, 1.80),
    ("nvidia-l40s", 4, 8.30),
    ("nvidia-l40s", 8, 23.50),
    ("nvidia-a100", 1, 2.50),
    ("nvidia-a100", 2, 5.00),
    ("nvidia-a100", 4, 10.00),
    ("nvidia-a100", 8, 20.00),
    ("nvidia-h100", 1, 4.50),
    ("nvidia-h100", 2, 9.00),
    ("nvidia-h100", 4, 18.00),
    ("nvidia-h100", 8, 36.00),
    ("nvidia-h200", 1, 5.00),
    ("nvidia-h200", 2, 10.00),
    ("nvidia-h200", 4, 20.00),
    ("nvidia-h200", 8, 40.00),
)


def _hardware(instance_type: str, count: int, price: float) -> Hardware:
    architecture, cpus, memory, gpu_memory = _GPUS[instance_type]
    return Hardware(
        instance_type=instance_type,
        instance_size=f"x{count}",
        architecture=architecture,
        num_accelerators=count,
        num_cpus=cpus * count,
        memory_gb=float(memory * count),
        gpu_memory_gb=gpu_memory * count,
        price_per_hour=price,
    )


HARDWARE = tuple(_hardware(*row) for row in _PRICES)

_MAX_ACCELERATORS = 8


def provider_json(used: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """The `GET /provider/{ns}` answer; `used` lists (instanceType, accelerators) of billing replicas."""
    in_use: dict[str, int] = {}
    for instance_type, accelerators in used:
        in_use[instance_type] = in_use.get(instance_type, 0) + accelerators
    computes = [_compute_json(hw, in_use.get(hw.instance_type, 0)) for hw in HARDWARE]
    return {"vendors": [{"name": _VENDOR, "regions": [{"name": _REGION, "computes": computes}]}]}


def _compute_json(hw: Hardware, used_accelerators: int) -> dict[str, Any]:
    return {
        "id": hw.id,
        "accelerator": "gpu",
        "instanceType": hw.instance_type,
        "instanceSize": hw.instance_size,
        "architecture": hw.architecture,
        "numAccelerators": hw.num_accelerators,
        "numCpus": hw.num_cpus,
        "memoryGb": hw.memory_gb,
        "gpuMemoryGb": hw.gpu_memory_gb,
        "pricePerHour": hw.price_per_hour,
        "status": "available",
        "quota": {"maxAccelerators": _MAX_ACCELERATORS, "usedAccelerators": used_accelerators},
    }
