"""Endpoint configurations sent to the management API: checked, defaulted and merged.

A spec is the endpoint JSON without `name` and `status`. Problems raise :class:`SpecError`,
which the management routes answer with 400.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ._catalog import compute_id

__all__ = ["SpecError", "merge_spec", "spec_from_create"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$")
_TYPES = frozenset({"public", "protected", "authenticated", "private"})
_OPTIONAL_TOP_LEVEL = ("privateService", "route", "cacheHttpResponses", "tags")
_DEFAULT_SCALE_TO_ZERO_MINUTES = 60  # what the web UI offers by default
_DEFAULT_METRIC = "hardwareUsage"
# Sections an update replaces as a whole: merging two image variants or two measures makes no sense.
_REPLACED_WHOLE = frozenset({"image", "measure", "env", "secrets", "tags"})


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
        "type": body.get("type", "authenticated"),
        "accountId": None,
        "provider": copy.deepcopy(body.get("provider")),
        "compute": copy.deepcopy(body.get("compute")),
        "model": copy.deepcopy(body.get("model")),
        "healthRoute": "/health",
    }
    for key in _OPTIONAL_TOP_LEVEL:
        if key in body:
            spec[key] = copy.deepcopy(body[key])
    scaling = _scaling_of(spec)
    if scaling is not None:
        # Left out, the timeout is the UI's default; an explicit null means never, and stays null.
        scaling.setdefault("scaleToZeroTimeout", _DEFAULT_SCALE_TO_ZERO_MINUTES)
    return name, _checked(spec, paused=False)


def merge_spec(spec: dict[str, Any], patch: object, *, paused: bool = False) -> dict[str, Any]:
    """`spec` with the partial configuration `patch` merged in, key by key.

    `paused` says whether the endpoint is paused, the one case where an update may set
    `maxReplica` to 0.
    """
    if not isinstance(patch, dict):
        raise SpecError("the body must be a JSON object")
    merged = copy.deepcopy(spec)
    _deep_merge(merged, {k: v for k, v in patch.items() if k not in ("name", "status")})
    _follow_measure(_scaling_of(merged), _scaling_of(patch))
    # No replica at all is how a pause leaves the counts; an update may keep them so, not make them so.
    current = _scaling_of(spec) or {}
    return _checked(merged, paused=paused or current.get("maxReplica") == 0)


def _scaling_of(spec: dict[str, Any]) -> dict[str, Any] | None:
    compute = spec.get("compute")
    scaling = compute.get("scaling") if isinstance(compute, dict) else None
    return scaling if isinstance(scaling, dict) else None


def _follow_measure(scaling: dict[str, Any] | None, patched: dict[str, Any] | None) -> None:
    """A new `measure` sent without its `metric` (as huggingface_hub sends it) names the metric."""
    if scaling is None or patched is None or "metric" in patched:
        return
    measure = patched.get("measure")
    if isinstance(measure, dict) and measure:
        scaling["metric"] = next(iter(measure))


def _deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and key not in _REPLACED_WHOLE:
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _checked(spec: dict[str, Any], *, paused: bool) -> dict[str, Any]:
    if spec.get("type") not in _TYPES:
        raise SpecError(f"type must be one of {', '.join(sorted(_TYPES))}")
    provider = _section(spec, "provider")
    _require_strings(provider, "provider", ("vendor", "region"))
    compute = _section(spec, "compute")
    _require_strings(compute, "compute", ("accelerator", "instanceType", "instanceSize"))
    compute["id"] = compute_id(
        provider["vendor"], provider["region"], compute["instanceType"], compute["instanceSize"]
    )
    _check_scaling(_section(compute, "scaling"), paused=paused)
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


def _check_scaling(scaling: dict[str, Any], *, paused: bool) -> None:
    low, high = _count(scaling.get("minReplica")), _count(scaling.get("maxReplica"))
    if low is None or high is None or low > high:
        raise SpecError("compute.scaling needs whole numbers 0 <= minReplica <= maxReplica")
    if high == 0 and not paused:
        raise SpecError("compute.scaling.maxReplica must be >= 1; only a paused endpoint has no replica")
    timeout = scaling.setdefault("scaleToZeroTimeout", None)
    if timeout is not None and ((minutes := _count(timeout)) is None or minutes < 1):
        raise SpecError("compute.scaling.scaleToZeroTimeout must be a whole number of minutes >= 1, or null")
    measure = scaling.setdefault("measure", {_DEFAULT_METRIC: None})
    if not isinstance(measure, dict):
        raise SpecError("compute.scaling.measure must be an object")
    metric = scaling.setdefault("metric", next(iter(measure), _DEFAULT_METRIC))
    if not isinstance(metric, str):
        raise SpecError("compute.scaling.metric must be a string")


def _check_model(model: dict[str, Any]) -> None:
    _require_strings(model, "model", ("repository", "framework"))
    if model.get("revision") is None:
        model["revision"] = "main"
    model.setdefault("task", "text-generation")
    model.setdefault("image", {"huggingface": {}})
    model.setdefault("env", {})
    for key in ("revision", "task"):
        if not isinstance(model[key], str):
            raise SpecError(f"model.{key} must be a string")
    for key in ("image", "env"):
        if not isinstance(model[key], dict):
            raise SpecError(f"model.{key} must be an object")
    # The real API never sends secret values back.
    model["secrets"] = {}
