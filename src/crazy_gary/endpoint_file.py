"""The endpoints: addresses on Hugging Face, and the `[endpoints.KEY]` tables of the TOML file.

They become :class:`crazy_gary.core.specs.EndpointSpec`, the core's own type.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crazy_gary.core.adaptive import AdaptiveSettings
from crazy_gary.core.schedules import ScheduleError, WarmSchedule, parse_schedule
from crazy_gary.core.specs import EndpointSpec
from crazy_gary.errors import ConfigError

__all__ = [
    "CONFIG_VARIABLE",
    "EXPECTED_ADDRESS",
    "check_fallbacks",
    "parse_endpoint_address",
    "read_endpoint_file",
    "spec_from_entry",
]

CONFIG_VARIABLE = "CRAZY_GARY_CONFIG"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_SHORT_FORM = re.compile(rf"^(?P<ns>{_NAME})/(?P<name>{_NAME})$")
_LONG_FORM = re.compile(
    rf"^https?://(?:ui\.)?endpoints\.huggingface\.co/(?P<ns>{_NAME})/endpoints/(?P<name>{_NAME})/?$"
)
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EXPECTED_ADDRESS = "https://endpoints.huggingface.co/{namespace}/endpoints/{name} or {namespace}/{name}"


def parse_endpoint_address(value: str) -> tuple[str, str]:
    """Split an endpoint address into (namespace, name); ValueError names the expected forms."""
    text = value.strip()
    match = _LONG_FORM.match(text) or _SHORT_FORM.match(text)
    if match is None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(f"'{shown}' is not an endpoint address; expected {EXPECTED_ADDRESS}")
    return match["ns"], match["name"]


class _EndpointEntry(BaseModel):
    """One `[endpoints.KEY]` table of the TOML file."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    inference_url: str | None = None
    fallback: str | None = None
    price_per_hour: float | None = Field(default=None, ge=0)
    auto_sleep: float | Literal["adaptive"] | None = Field(default=None)
    auto_sleep_min: float | None = Field(default=None, gt=0)
    auto_sleep_max: float | None = Field(default=None, gt=0)
    wake_timeout: float | None = Field(default=None, gt=0)
    warm: list[str] | None = None
    timezone: str | None = None
    max_concurrency: int | None = None

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _whole_requests(cls, value: object) -> object:
        # before pydantic's own coercion, which would take `true` or `2.0` for a number of requests
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"must be a whole number of requests, 1 or more (not {value!r})")
        return value

    @field_validator("inference_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// address")
        return value.rstrip("/") if value else value


def read_endpoint_file(path: Path | None) -> dict[str, _EndpointEntry]:
    """The `[endpoints.KEY]` tables of the TOML file at `path`, checked; none without a file."""
    if path is None:
        return {}
    try:
        with path.expanduser().open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_VARIABLE}: no file at {path}") from None
    except (OSError, RuntimeError, tomllib.TOMLDecodeError) as exc:  # RuntimeError: `~user` unknown
        raise ConfigError(f"{CONFIG_VARIABLE}: cannot read {path}: {exc}") from None
    tables = document.get("endpoints", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{CONFIG_VARIABLE}: 'endpoints' must be a table of [endpoints.KEY] tables")
    entries: dict[str, _EndpointEntry] = {}
    for key, table in tables.items():
        where = f"{CONFIG_VARIABLE}: endpoints.{key}"
        if not _KEY.match(key):
            raise ConfigError(f"{where}: a key is letters, digits, '.', '_' or '-' (at most 64)")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        try:
            entries[key] = _EndpointEntry.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_problem(exc)}") from None
    return entries


def spec_from_entry(key: str, entry: _EndpointEntry) -> EndpointSpec:
    """The endpoint one table describes: managed (`url`) or unmanaged (`inference_url`)."""
    where = f"{CONFIG_VARIABLE}: endpoints.{key}"
    if (entry.url is None) == (entry.inference_url is None):
        raise ConfigError(f"{where}: give exactly one of url and inference_url")
    spec = EndpointSpec(
        key=key,
        url=entry.url or entry.inference_url or "",
        inference_url=entry.inference_url,
        fallback=entry.fallback,
        price_per_hour=entry.price_per_hour,
        auto_sleep=None if entry.auto_sleep == "adaptive" else entry.auto_sleep,
        wake_timeout=entry.wake_timeout,
        warm=_schedule(where, entry),
        adaptive=_adaptive(where, entry),
        max_concurrency=entry.max_concurrency,
    )
    if entry.url is None:
        return spec
    try:
        namespace, name = parse_endpoint_address(entry.url)
    except ValueError as exc:
        raise ConfigError(f"{where}.url: {exc}") from None
    return replace(spec, namespace=namespace, name=name)


def _adaptive(where: str, entry: _EndpointEntry) -> AdaptiveSettings | None:
    """`auto_sleep = "adaptive"` with its bounds; ConfigError for bounds without it or out of order."""
    bounds = (entry.auto_sleep_min, entry.auto_sleep_max)
    if entry.auto_sleep != "adaptive":
        if bounds != (None, None):
            raise ConfigError(
                f'{where}: auto_sleep_min and auto_sleep_max bound auto_sleep = "adaptive" only'
            )
        if isinstance(entry.auto_sleep, float) and entry.auto_sleep < 0:
            raise ConfigError(f'{where}.auto_sleep: must be 0 or more seconds, or "adaptive"')
        return None
    settings = AdaptiveSettings(
        minimum=entry.auto_sleep_min or AdaptiveSettings.minimum,
        maximum=entry.auto_sleep_max or AdaptiveSettings.maximum,
    )
    if settings.minimum > settings.maximum:
        raise ConfigError(f"{where}: auto_sleep_min is more than auto_sleep_max")
    return settings


def _schedule(where: str, entry: _EndpointEntry) -> WarmSchedule | None:
    """The entry's warm windows in its time zone; ConfigError naming the problem."""
    if entry.warm is None:
        if entry.timezone is not None:
            raise ConfigError(f"{where}.timezone: is the time zone of warm windows, and there are none")
        return None
    if entry.inference_url is not None:
        raise ConfigError(f"{where}.warm: an inference_url endpoint is not woken or put to sleep")
    try:
        return parse_schedule(entry.warm, entry.timezone or "UTC")
    except ScheduleError as exc:
        raise ConfigError(f"{where}.warm: {exc}") from None


def check_fallbacks(specs: dict[str, EndpointSpec]) -> None:
    """Every fallback names another configured endpoint; ConfigError otherwise."""
    for spec in specs.values():
        if spec.fallback is None:
            continue
        if spec.fallback == spec.key:
            raise ConfigError(f"{CONFIG_VARIABLE}: endpoints.{spec.key}.fallback: cannot fall back to itself")
        if spec.fallback not in specs:
            raise ConfigError(
                f"{CONFIG_VARIABLE}: endpoints.{spec.key}.fallback: no endpoint has the key '{spec.fallback}'"
            )


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
