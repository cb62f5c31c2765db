"""Settings: the only module that reads the environment.

`load_settings()` reads the variables of the README's "Configuration" section and the optional TOML
file named by `CRAZY_GARY_CONFIG`, and turns any bad value into one :class:`ConfigError` sentence that
names the variable. Endpoint addresses are parsed here, once, into the core's
:class:`~crazy_gary.core.specs.EndpointSpec` (a plain dataclass: the only thing of the core imported).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import urllib.parse
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from crazy_gary.core.specs import EndpointSpec
from crazy_gary.endpoint_file import (
    CONFIG_VARIABLE,
    EXPECTED_ADDRESS,
    check_fallbacks,
    parse_endpoint_address,
    read_endpoint_file,
    spec_from_entry,
)
from crazy_gary.errors import ConfigError
from crazy_gary.quota_file import read_quota_file
from crazy_gary.usage.quotas import QuotaLimit

if TYPE_CHECKING:
    from crazy_gary.simulator import SimulatorConfig

__all__ = [
    "EXPECTED_ADDRESS",
    "ApiKey",
    "Role",
    "Settings",
    "load_settings",
    "load_simulator_config",
    "parse_api_keys",
    "parse_endpoint_address",
    "parse_webhook_urls",
]

Role = Literal["viewer", "user", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "user", "operator")
SIMULATOR_TOKEN = "hf_simulator"
SIMULATOR_NAMESPACE = "demo"

# A subset of what `limits.parse` reads, with at least one call per at least one period.
_RATE = re.compile(
    r"^\s*0*[1-9]\d*\s*(/|\s+per\s+)\s*(0*[1-9]\d*\s*)?(second|minute|hour|day)s?\s*$", re.IGNORECASE
)
_ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?/?$")


@dataclass(frozen=True)
class ApiKey:
    """One API key of `CRAZY_GARY_API_KEYS`; `name` is None when it was given as `role:key`."""

    role: Role
    key: str
    name: str | None = None

    def __repr__(self) -> str:  # never show the key itself
        return f"ApiKey(role={self.role!r}, name={self.name!r})"


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """Parse `role:key` / `name:role:key` items separated by commas; ValueError never echoes a key."""
    keys: list[ApiKey] = []
    for position, item in enumerate((part.strip() for part in value.split(",")), start=1):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) == 2:
            name, role, key = None, parts[0], parts[1]
        elif len(parts) == 3:
            name, role, key = parts[0] or None, parts[1], parts[2]
        else:
            raise ValueError(f"item {position} is not role:key or name:role:key")
        if role not in ROLES:
            shown = (
                f"role '{role}'" if re.fullmatch(r"[a-z]{1,12}", role) else "an unknown role"
            )  # never key text
            raise ValueError(f"item {position} has {shown}; roles are viewer, user, operator")
        if len(key) < 8:
            raise ValueError(f"item {position} has a key shorter than 8 characters")
        keys.append(ApiKey(role=role, key=key, name=name))
    return tuple(keys)


def parse_webhook_urls(value: str) -> tuple[str, ...]:
    """The http:// or https:// addresses of a comma list; a ValueError names the bad item by its
    position only (a Slack webhook's address is itself a secret)."""
    urls: list[str] = []
    for position, item in enumerate((part.strip() for part in value.split(",")), start=1):
        if not item:
            continue
        try:
            parts = urllib.parse.urlsplit(item)
            parts.port  # noqa: B018  # raises ValueError when out of range or not a number
        except ValueError:
            raise ValueError(f"item {position} is not an http:// or https:// address") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in item):
            raise ValueError(f"item {position} is not an http:// or https:// address")
        urls.append(item)
    return tuple(urls)


def _alias(name: str, default: Any, **constraints: Any) -> Any:
    return Field(default=default, validation_alias=AliasChoices(name, name.lower()), **constraints)


class Settings(BaseSettings):
    """Every setting of the README's "Configuration", from the environment, then the TOML file, then
    the defaults."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    huggingface_api_key: SecretStr | None = _alias("HUGGINGFACE_API_KEY", None)
    hf_base_url_120b: str | None = _alias("HF_BASE_URL_120B", None)
    hf_base_url_20b: str | None = _alias("HF_BASE_URL_20B", None)
    wake_timeout: float = _alias("ENDPOINT_WAKE_TIMEOUT", 300.0, gt=0, allow_inf_nan=False)
    auto_sleep: float = _alias("ENDPOINT_AUTO_SLEEP", 900.0, ge=0, allow_inf_nan=False)
    sleep_mode: Literal["scale_to_zero", "pause"] = _alias("ENDPOINT_SLEEP_MODE", "scale_to_zero")
    endpoints_api_url: str = _alias("HF_ENDPOINTS_API_URL", "https://api.endpoints.huggingface.cloud/v2")
    simulate: bool | None = _alias("CRAZY_GARY_SIMULATE", None)
    fallback_wait: float = _alias("CRAZY_GARY_FALLBACK_WAIT", 5.0, ge=0, allow_inf_nan=False)
    max_pending: int = _alias("CRAZY_GARY_MAX_PENDING", 256, ge=0)
    retry_attempts: int = _alias("CRAZY_GARY_RETRY_ATTEMPTS", 3, ge=1, le=20)
    breaker_failures: int = _alias("CRAZY_GARY_BREAKER_FAILURES", 5, ge=1)
    breaker_cooldown: float = _alias("CRAZY_GARY_BREAKER_COOLDOWN", 30.0, ge=0, allow_inf_nan=False)
    max_body_bytes: int = _alias("CRAZY_GARY_MAX_BODY_BYTES", 10 * 1024 * 1024, ge=1)
    max_header_bytes: int = _alias("CRAZY_GARY_MAX_HEADER_BYTES", 64 * 1024, ge=1024)
    header_timeout: float = _alias("CRAZY_GARY_HEADER_TIMEOUT", 10.0, gt=0, allow_inf_nan=False)
    max_connections: int = _alias("CRAZY_GARY_MAX_CONNECTIONS", 4096, ge=1)
    api_keys_text: SecretStr | None = _alias("CRAZY_GARY_API_KEYS", None)
    cors_origins: str = _alias("CRAZY_GARY_CORS_ORIGINS", "")
    rate_limit: str = _alias("CRAZY_GARY_RATE_LIMIT", "120/minute")
    management_rate_limit: str = _alias("CRAZY_GARY_MANAGEMENT_RATE_LIMIT", "10/minute")
    database_url: str | None = _alias("CRAZY_GARY_DATABASE_URL", None)
    audit_retention_days: float = _alias("CRAZY_GARY_AUDIT_RETENTION_DAYS", 90.0, gt=0, allow_inf_nan=False)
    redis_url: str | None = _alias("CRAZY_GARY_REDIS_URL", None)
    redis_prefix: str = _alias("CRAZY_GARY_REDIS_PREFIX", "crazy-gary:")
    data_dir: Path = _alias("CRAZY_GARY_DATA_DIR", Path("~/.local/share/crazy-gary"))
    config_file: Path | None = _alias(CONFIG_VARIABLE, None)
    poll_interval: float = _alias("CRAZY_GARY_POLL_INTERVAL", 10.0, gt=0, allow_inf_nan=False)
    poll_fast_interval: float = _alias("CRAZY_GARY_POLL_FAST_INTERVAL", 1.0, gt=0, allow_inf_nan=False)
    hf_scale_to_zero: str = _alias("CRAZY_GARY_HF_SCALE_TO_ZERO", "auto")
    quota_reserve: int = _alias("CRAZY_GARY_QUOTA_RESERVE", 1024, ge=0)
    webhooks_text: SecretStr | None = _alias("CRAZY_GARY_WEBHOOKS", None)  # addresses may hold tokens
    webhook_secret: SecretStr | None = _alias("CRAZY_GARY_WEBHOOK_SECRET", None)
    # OpenTelemetry's own variables: traces are sent only when an endpoint is set (README, "Traces")
    otlp_endpoint: str | None = _alias("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    otlp_traces_endpoint: str | None = _alias("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    otel_sdk_disabled: bool = _alias("OTEL_SDK_DISABLED", False)

    @field_validator("hf_scale_to_zero")
    @classmethod
    def _idle_timer(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("auto", "off") or (value.isdigit() and int(value) >= 1):
            return value
        raise ValueError(f"'{value[:40]}' is not auto, off or a whole number of minutes (1 or more)")

    @field_validator("endpoints_api_url")
    @classmethod
    def _management_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// address")
        return value.rstrip("/")

    @field_validator("rate_limit", "management_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not _RATE.match(value):
            raise ValueError(f"'{value[:40]}' is not a rate such as 120/minute")
        return value.strip()

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (part.strip() for part in value.split(",")):
            if origin and not _ORIGIN.match(origin):
                raise ValueError(f"'{origin[:60]}' is not an origin such as https://app.example.com (no '*')")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", value):
            raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST/DB")
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        try:
            return value.expanduser()
        except RuntimeError:
            raise ValueError("names a home directory that does not exist") from None

    @field_validator("otlp_endpoint", "otlp_traces_endpoint")
    @classmethod
    def _otlp(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value.strip()):
            raise ValueError(
                "must be an http:// or https:// address (OTLP/HTTP, such as http://127.0.0.1:4318)"
            )
        return value.strip() if value is not None else None

    @field_validator("hf_base_url_120b", "hf_base_url_20b")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_endpoint_address(value)
        return value

    @field_validator("webhooks_text")
    @classmethod
    def _webhooks(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_webhook_urls(value.get_secret_value())
        return value

    @field_validator("api_keys_text")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_VARIABLE)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path).expanduser()))
        return tuple(sources)

    @property
    def simulating(self) -> bool:
        """Run against the embedded simulator: asked for, or no Hugging Face token given."""
        return self.simulate if self.simulate is not None else self.huggingface_api_key is None

    @property
    def token(self) -> str:
        """The token for the management API and the endpoints."""
        if self.huggingface_api_key is not None and not self.simulating:
            return self.huggingface_api_key.get_secret_value()
        return SIMULATOR_TOKEN

    @property
    def otlp_traces_url(self) -> str | None:
        """Where spans are sent (OTLP/HTTP), by the OpenTelemetry variables' rules; None: no traces."""
        if self.otel_sdk_disabled:
            return None
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @cached_property
    def api_keys(self) -> tuple[ApiKey, ...]:
        if self.api_keys_text is None:
            return ()
        return parse_api_keys(self.api_keys_text.get_secret_value())

    @cached_property
    def webhook_urls(self) -> tuple[str, ...]:
        """The addresses of `CRAZY_GARY_WEBHOOKS`; empty: no webhooks."""
        if self.webhooks_text is None:
            return ()
        return parse_webhook_urls(self.webhooks_text.get_secret_value())

    @cached_property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip())

    @cached_property
    def quotas(self) -> dict[str, QuotaLimit]:
        """Each key name's token quota, from the TOML file's `[quotas.NAME]` tables."""
        return read_quota_file(self.config_file)

    @cached_property
    def endpoints(self) -> dict[str, EndpointSpec]:
        """The configured endpoints by key: the TOML file's, then the two `HF_BASE_URL_*` ones."""
        entries = read_endpoint_file(self.config_file)
        specs: dict[str, EndpointSpec] = {}
        pair = {"120b": self.hf_base_url_120b, "20b": self.hf_base_url_20b}
        if self.simulating:
            for key in pair:
                if pair[key] is None and key not in entries:
                    pair[key] = (
                        f"https://endpoints.huggingface.co/{SIMULATOR_NAMESPACE}/endpoints/gpt-oss-{key}"
                    )
        for key, entry in entries.items():
            specs[key] = spec_from_entry(key, entry)
        for key, address in pair.items():
            if address is None:
                continue
            namespace, name = parse_endpoint_address(address)
            base = specs.get(key)
            if base is None:
                default = "20b" if key == "120b" and (pair["20b"] or "20b" in entries) else None
                base = EndpointSpec(key=key, url=address, fallback=default)
            # the address from the environment, everything else of the file's table kept
            specs[key] = dataclasses.replace(
                base, url=address, namespace=namespace, name=name, inference_url=None
            )
        check_fallbacks(specs)
        return specs


def _variable_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{variable}: {message}"


def load_settings(*, simulate: bool | None = None, **overrides: Any) -> Settings:
    """Read the settings and check them whole; every problem becomes one ConfigError sentence."""
    if simulate is not None:
        overrides["simulate"] = simulate
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_variable_problem(exc)) from None
    except (OSError, RuntimeError, tomllib.TOMLDecodeError) as exc:  # RuntimeError: `~user` unknown
        raise ConfigError(f"{CONFIG_VARIABLE}: cannot read the file: {exc}") from None
    if not settings.simulating and settings.huggingface_api_key is None:
        raise ConfigError("HUGGINGFACE_API_KEY: required unless simulating (CRAZY_GARY_SIMULATE=true)")
    if not settings.endpoints:
        raise ConfigError(
            f"HF_BASE_URL_120B: no endpoints configured; set it and HF_BASE_URL_20B or {CONFIG_VARIABLE}"
        )
    settings.quotas  # noqa: B018  # read now: a bad [quotas] table stops start-up here
    return settings


def load_simulator_config(**overrides: Any) -> SimulatorConfig:
    """The simulator's settings (`CRAZY_GARY_SIM_*`), as a `crazy_gary.simulator.SimulatorConfig`.

    The simulator is imported here, not at the top: it loads Starlette, and nothing but the commands
    that run it (`simulate`, a simulating `serve` or `doctor`) should pay for that.
    """
    from crazy_gary.simulator import SimulatorConfig

    try:
        values = _SimulatorSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_variable_problem(exc)) from None
    return SimulatorConfig(
        token=values.token,
        cold_start=values.cold_start,
        tokens_per_second=values.tokens_per_second,
        initial_state=values.initial_state,
        minute=values.minute,
    )


class _SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    token: str = _alias("CRAZY_GARY_SIM_TOKEN", SIMULATOR_TOKEN, min_length=1)
    cold_start: float = _alias("CRAZY_GARY_SIM_COLD_START", 20.0, ge=0, allow_inf_nan=False)
    tokens_per_second: float = _alias("CRAZY_GARY_SIM_TOKENS_PER_SECOND", 50.0, gt=0, allow_inf_nan=False)
    initial_state: Literal["scaledToZero", "paused", "running", "failed", "initializing", "pending"] = _alias(
        "CRAZY_GARY_SIM_INITIAL_STATE", "scaledToZero"
    )
    minute: float = _alias("CRAZY_GARY_SIM_MINUTE", 60.0, gt=0, allow_inf_nan=False)
