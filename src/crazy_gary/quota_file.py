"""The `[quotas.NAME]` tables of the TOML file: tokens a key may use per UTC day and month."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crazy_gary.endpoint_file import CONFIG_VARIABLE
from crazy_gary.errors import ConfigError
from crazy_gary.usage.quotas import QuotaLimit

__all__ = ["read_quota_file"]


class _QuotaEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens_per_day: int | None = Field(default=None, ge=1)
    tokens_per_month: int | None = Field(default=None, ge=1)


def read_quota_file(path: Path | None) -> dict[str, QuotaLimit]:
    """Each key name's quota; none without a file or a `quotas` table."""
    if path is None:
        return {}
    try:
        with path.expanduser().open("rb") as handle:
            tables = tomllib.load(handle).get("quotas", {})
    except (OSError, RuntimeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{CONFIG_VARIABLE}: cannot read {path}: {exc}") from None
    if not isinstance(tables, dict):
        raise ConfigError(f"{CONFIG_VARIABLE}: 'quotas' must be a table of [quotas.NAME] tables")
    quotas: dict[str, QuotaLimit] = {}
    for name, table in tables.items():
        where = f"{CONFIG_VARIABLE}: quotas.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        try:
            entry = _QuotaEntry.model_validate(table)
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            field = ".".join(str(part) for part in error["loc"])
            raise ConfigError(f"{where}.{field}: {error['msg']}") from None
        if entry.tokens_per_day is None and entry.tokens_per_month is None:
            raise ConfigError(f"{where}: give tokens_per_day, tokens_per_month or both")
        quotas[name] = QuotaLimit(entry.tokens_per_day, entry.tokens_per_month)
    return quotas
