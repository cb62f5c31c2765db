"""Endpoint configurations sent to the management API: checked, defaulted and merged.

A spec is the endpoint JSON without `name` and `status`. Problems raise :class:`SpecError`,
which the management routes answer with 400.
"""

from __future__ import annotations

import copy
import re
from typing import Any

__all__ = ["SpecError", "merge_spec", "spec_from_create"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$")
_TYPES = frozenset({"public", "protected", "authenticated", "private"})
_OPTIONAL_TOP_LEVEL = ("privateService", "route", "cacheHttpResponses", "tags")
_DEFAULT_SCALE_TO_ZERO_MINUTES = 60  # what the web UI offers by default


class SpecError(ValueError):
    """An endpoint configuration the real API would refuse."""


def spec_from_create(body: object) -> tuple[str, dict[str, Any]]:
    """The name and spec of a create request body, as `huggingface_hub.create_inference_endpoint` sends it."""
    if not isinstance(body, dict):
        raise SpecError("the body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            "name must be 2 to 32 lowercase letters, digits or hyphens, not starting or ending with a hyphen"
        )
    spec: dict[str, Any] = {
        "type": body.get("type", "protected"),
        "accountId": None,
        "provider": copy.deepcopy(body.get("provider")),
        "compute": copy.deepcopy(body.get("compute")),
        "model": copy.deepcopy(body.get("model")),
        "healthRoute": "/health",
    }
    for key in _OPTIONAL_TOP_LEVEL:
        if key in body:
            spec[key] = copy.deepcopy(body[key])
    return name, _checked(spec)


def merge_spec(spec: dict[str, Any], patch: object) -> dict[str, Any]:
    """`spec` with the partial configuration `patch` merged in, key by key."""
    if not isinstance(patch, dict):
        raise SpecError("the body must be a JSON object")
    merged = copy.deepcopy(spec)
    _deep_merge(merged, {k: v for k, v in patch.items() if k not in ("name", "status")})
    return _checked(merged)


def _deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _checked(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("type") not in _TYPES:
        raise SpecError(f"type must be one of {', '.join(sorted(_TYPES))}")
    provider = _section(spec, "provider")
    _require_strings(provider, "provider", ("vendor", "region"))
    compute = _section(spec, "compute")
    _require_strings(compute, "compute", ("accelerator", "instanceType", "instanceSize"))
    _check_scaling(compute)
    _check_model(_section(spec, "model"))
    return spec


def _section(spec: dict[str, Any], key: str) -> dict[str, Any]:
    section = spec.get(key)
    if not isinstance(section, dict):
        raise SpecError(f"{key} must be an object")
    return section


def _require_strings(section: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if not isinstance(section.get(key), str) or not section[key]:
            raise SpecError(f"{where}.{key} must be a non-empty string")


def _count(value: object) -> int | None:
    """`value` when it is a whole number >= 0 (JSON booleans are not numbers here), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _check_scaling(compute: dict[str, Any]) -> None:
    scaling = _section(compute, "scaling")
    low, high = _count(scaling.get("minReplica")), _count(scaling.get("maxReplica"))
    if low is None or high is None or low > high or high < 1:
        raise SpecError("compute.scaling needs 0 <= minReplica <= maxReplica and maxReplica >= 1")
    timeout = scaling.get("scaleToZeroTimeout")
    if timeout is None:
        scaling["scaleToZeroTimeout"] = _DEFAULT_SCALE_TO_ZERO_MINUTES
    elif (minutes := _count(timeout)) is None or minutes < 1:
        raise SpecError("compute.scaling.scaleToZeroTimeout must be a whole number of minutes >= 1")


def _check_model(model: dict[str, Any]) -> None:
    _require_strings(model, "model", ("repository", "framework"))
    if model.get("revision") is None:
        model["revision"] = "main"
    model.setdefault("task", "text-generation")
    model.setdefault("image", {"huggingface": {}})
    for key in ("revision", "task"):
        if not isinstance(model[key], str):
            raise SpecError(f"model.{key} must be a string")
    if not isinstance(model["image"], dict):
        raise SpecError("model.image must be an object")
    # The real API never sends secret values back.
    model.pop("secrets", None)
