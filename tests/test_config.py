"""Settings: variables, the TOML file, address parsing, and one clear line for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from crazy_gary.config import load_settings, parse_api_keys, parse_endpoint_address
from crazy_gary.errors import ConfigError
from crazy_gary.usage.quotas import QuotaLimit

VARIABLES = (
    "HUGGINGFACE_API_KEY",
    "HF_BASE_URL_120B",
    "HF_BASE_URL_20B",
    "CRAZY_GARY_CONFIG",
    "CRAZY_GARY_SIMULATE",
    "CRAZY_GARY_API_KEYS",
    "ENDPOINT_WAKE_TIMEOUT",
    "ENDPOINT_AUTO_SLEEP",
    "ENDPOINT_SLEEP_MODE",
    "CRAZY_GARY_WEBHOOKS",
    "CRAZY_GARY_WEBHOOK_SECRET",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("https://endpoints.huggingface.co/demo/endpoints/gpt-oss-120b", ("demo", "gpt-oss-120b")),
        ("https://ui.endpoints.huggingface.co/my-org/endpoints/x-1/", ("my-org", "x-1")),
        ("demo/gpt-oss-20b", ("demo", "gpt-oss-20b")),
    ],
)
def test_endpoint_addresses(address: str, expected: tuple[str, str]) -> None:
    """Both address forms give (namespace, name)."""
    assert parse_endpoint_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "gpt-oss-120b",
        "https://example.com/demo/endpoints/x",
        "a/b/c",
        "",
        "demo/",
        "https://endpoints.huggingface.co/demo",
    ],
)
def test_bad_addresses_name_the_expected_form(address: str) -> None:
    """Anything else is refused with the expected form."""
    with pytest.raises(ValueError, match=r"expected https://endpoints\.huggingface\.co/\{namespace\}"):
        parse_endpoint_address(address)


def test_defaults_when_simulating() -> None:
    """Without a token crazy-gary simulates the demo pair 120b → 20b with the README's defaults."""
    settings = load_settings()
    assert settings.simulating
    assert set(settings.endpoints) == {"120b", "20b"}
    assert settings.endpoints["120b"].fallback == "20b"
    assert settings.endpoints["20b"].name == "gpt-oss-20b"
    assert settings.wake_timeout == 300
    assert settings.auto_sleep == 900
    assert settings.sleep_mode == "scale_to_zero"


def test_real_mode_needs_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a token and no endpoint addresses, start-up stops naming HF_BASE_URL_120B."""
    monkeypatch.setenv("HUGGINGFACE_API_KEY", "hf_real_token_value")
    with pytest.raises(ConfigError, match="HF_BASE_URL_120B"):
        load_settings()
    monkeypatch.setenv("HF_BASE_URL_120B", "acme/big")
    monkeypatch.setenv("HF_BASE_URL_20B", "https://endpoints.huggingface.co/acme/endpoints/small")
    settings = load_settings()
    assert not settings.simulating
    assert settings.token == "hf_real_token_value"
    assert settings.endpoints["120b"].namespace == "acme"
    assert settings.endpoints["120b"].url == "acme/big"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENDPOINT_WAKE_TIMEOUT", "soon"),
        ("ENDPOINT_WAKE_TIMEOUT", "-1"),
        ("ENDPOINT_AUTO_SLEEP", "-5"),
        ("ENDPOINT_SLEEP_MODE", "hibernate"),
        ("HF_BASE_URL_120B", "not an address"),
        ("CRAZY_GARY_API_KEYS", "root:abcdefgh1234"),
        ("CRAZY_GARY_SIMULATE", "perhaps"),
        ("CRAZY_GARY_RATE_LIMIT", "lots"),
        ("CRAZY_GARY_HF_SCALE_TO_ZERO", "sometimes"),
        ("CRAZY_GARY_HF_SCALE_TO_ZERO", "0"),
        ("CRAZY_GARY_HF_SCALE_TO_ZERO", "-15"),
        ("CRAZY_GARY_HF_SCALE_TO_ZERO", "1.5"),
        ("CRAZY_GARY_WEBHOOKS", "hooks.slack.com/services/T0/B0/x"),
        ("CRAZY_GARY_WEBHOOKS", "https://ok.example/hook,ftp://example.com/hook"),
        ("CRAZY_GARY_WEBHOOKS", "https://example.com:99999/hook"),
        ("CRAZY_GARY_WEBHOOKS", "https:///no-host"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://collector:4317"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """A bad value stops start-up with one line that begins with the variable's name."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert raised.value.message.startswith(f"{variable}: ")
    assert "\n" not in raised.value.message


def test_traces_are_sent_where_the_opentelemetry_variables_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """No traces without an OTLP endpoint; the traces path is added to OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is taken as it is, and OTEL_SDK_DISABLED turns both off."""
    assert load_settings().otlp_traces_url is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert load_settings().otlp_traces_url == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces.example/otlp")
    assert load_settings().otlp_traces_url == "https://traces.example/otlp"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert load_settings().otlp_traces_url is None


def test_api_key_errors_never_echo_the_key() -> None:
    """Key parsing problems name the item, never the key."""
    with pytest.raises(ValueError, match="item 2") as raised:
        parse_api_keys("ops:operator:supersecretkey1,admin:supersecretkey2")
    assert "supersecretkey" not in str(raised.value)
    keys = parse_api_keys("ops:operator:supersecretkey1, viewer:supersecretkey2")
    assert [(key.name, key.role) for key in keys] == [("ops", "operator"), (None, "viewer")]
    assert "supersecret" not in repr(keys)


def test_webhook_addresses_are_read_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRAZY_GARY_WEBHOOKS is a comma list of http(s) addresses; a bad one is named by its position
    only, and neither the addresses nor the secret appear in the settings' repr."""
    slack = "https://hooks.slack.com/services/T0/B0/slacksecretpath"
    monkeypatch.setenv("CRAZY_GARY_WEBHOOKS", f" {slack} , http://127.0.0.1:9000/hook ,")
    monkeypatch.setenv("CRAZY_GARY_WEBHOOK_SECRET", "signingsecret")
    settings = load_settings()
    assert settings.webhook_urls == (slack, "http://127.0.0.1:9000/hook")
    assert "slacksecretpath" not in repr(settings) and "signingsecret" not in repr(settings)
    monkeypatch.setenv("CRAZY_GARY_WEBHOOKS", f"{slack},mailto:ops@example.com?x=slacksecretpath")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert raised.value.message == "CRAZY_GARY_WEBHOOKS: item 2 is not an http:// or https:// address"
    monkeypatch.delenv("CRAZY_GARY_WEBHOOKS")
    assert load_settings().webhook_urls == ()


def test_toml_file_defines_any_number_of_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TOML file defines endpoints by key; the environment wins over it."""
    config = tmp_path / "crazy-gary.toml"
    config.write_text(
        """
ENDPOINT_AUTO_SLEEP = 600
[endpoints.120b]
url = "https://endpoints.huggingface.co/demo/endpoints/gpt-oss-120b"
fallback = "20b"
price_per_hour = 4.2
[endpoints.20b]
url = "demo/gpt-oss-20b"
auto_sleep = 60
[endpoints.local]
inference_url = "http://127.0.0.1:9001/"
"""
    )
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    settings = load_settings()
    assert settings.auto_sleep == 600
    assert settings.endpoints["120b"].price_per_hour == 4.2
    assert settings.endpoints["20b"].auto_sleep == 60
    local = settings.endpoints["local"]
    assert not local.managed
    assert local.inference_url == "http://127.0.0.1:9001"
    monkeypatch.setenv("ENDPOINT_AUTO_SLEEP", "30")
    monkeypatch.setenv("HF_BASE_URL_120B", "other/big")
    settings = load_settings()
    assert settings.auto_sleep == 30
    assert settings.endpoints["120b"].name == "big"
    assert settings.endpoints["120b"].fallback == "20b"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[endpoints.a]\nurl = "x"', "endpoints.a.url"),
        ('[endpoints.a]\nurl = "demo/a"\nfallback = "b"', "no endpoint has the key 'b'"),
        ('[endpoints.a]\nurl = "demo/a"\ninference_url = "http://x"', "exactly one"),
        ('[endpoints.a]\nurl = "demo/a"\ncolour = "red"', "colour"),
        ("[endpoints.a\n", "cannot read"),
        ("[quotas.alice]\ntokens_per_day = 0", "quotas.alice.tokens_per_day"),
        ('[quotas.alice]\ntokens_per_day = "lots"', "quotas.alice.tokens_per_day"),
        ("[quotas.alice]\ntokens_per_week = 10", "quotas.alice.tokens_per_week"),
        ("[quotas.alice]\n", "give tokens_per_day, tokens_per_month or both"),
        ("quotas = 3", "'quotas' must be a table"),
    ],
)
def test_bad_toml_names_the_file_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    """Problems in the file name CRAZY_GARY_CONFIG and the entry."""
    config = tmp_path / "bad.toml"
    config.write_text(text)
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert raised.value.message.startswith("CRAZY_GARY_CONFIG")
    assert problem in raised.value.message


def test_missing_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A config path that does not exist is one clear line."""
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="CRAZY_GARY_CONFIG"):
        load_settings()


@pytest.mark.parametrize("value", ["inf", "nan", "1e999"])
def test_endless_seconds_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A wake timeout of infinity (or not a number) would never time out: it is refused."""
    monkeypatch.setenv("ENDPOINT_WAKE_TIMEOUT", value)
    with pytest.raises(ConfigError, match=r"^ENDPOINT_WAKE_TIMEOUT: "):
        load_settings()


def test_quotas_are_read_from_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "crazy-gary.toml"
    config.write_text("[quotas.alice]\ntokens_per_day = 2000\n[quotas.bob]\ntokens_per_month = 9\n")
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    monkeypatch.setenv("CRAZY_GARY_QUOTA_RESERVE", "64")
    settings = load_settings()
    assert settings.quotas == {"alice": QuotaLimit(2000, None), "bob": QuotaLimit(None, 9)}
    assert settings.quota_reserve == 64


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('warm = ["weekdays 08:00-18:00"]', "endpoints.120b.warm: 'weekdays 08:00-18:00': days are"),
        ('warm = ["mon-fri 08:00-18:00"]\ntimezone = "Paris"', "'Paris' is not an IANA time zone"),
        ('timezone = "Europe/Paris"', "endpoints.120b.timezone: is the time zone of warm windows"),
        ('warm = "mon-fri 08:00-18:00"', "endpoints.120b: warm: Input should be a valid list"),
    ],
)
def test_warm_windows_are_read_from_the_toml_file_or_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, says: str
) -> None:
    """`warm` and `timezone` of an endpoint's table become its schedule; a wrong one is one line."""
    config = tmp_path / "crazy-gary.toml"
    address = 'url = "demo/gpt-oss-120b"\n'
    config.write_text(
        f'[endpoints.120b]\n{address}warm = ["mon-fri 08:30-18:00"]\ntimezone = "Europe/Paris"\n'
    )
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    schedule = load_settings().endpoints["120b"].warm
    assert schedule is not None and (schedule.windows, schedule.timezone) == (
        ("mon-fri 08:30-18:00",),
        "Europe/Paris",
    )
    monkeypatch.setenv("HF_BASE_URL_120B", "other/big")  # the address from the environment, the rest kept
    assert load_settings().endpoints["120b"].warm is not None
    monkeypatch.delenv("HF_BASE_URL_120B")
    config.write_text(f"[endpoints.120b]\n{address}{table}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert says in raised.value.message and "\n" not in raised.value.message


def test_an_adaptive_auto_sleep_is_read_with_its_bounds_or_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto_sleep = "adaptive"` with `auto_sleep_min`/`auto_sleep_max`; the fixed timer of the
    settings applies until it has learnt; bounds without it, or out of order, are one line."""
    config = tmp_path / "crazy-gary.toml"
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    head = '[endpoints.120b]\nurl = "demo/gpt-oss-120b"\n'
    config.write_text(head + 'auto_sleep = "adaptive"\nauto_sleep_min = 120\nauto_sleep_max = 1800\n')
    spec = load_settings().endpoints["120b"]
    assert spec.adaptive is not None and (spec.adaptive.minimum, spec.adaptive.maximum) == (120, 1800)
    assert spec.auto_sleep is None  # ENDPOINT_AUTO_SLEEP meanwhile
    for table, says in (
        ("auto_sleep = 600\nauto_sleep_max = 1800\n", 'bound auto_sleep = "adaptive" only'),
        (
            'auto_sleep = "adaptive"\nauto_sleep_min = 900\nauto_sleep_max = 60\n',
            "auto_sleep_min is more than",
        ),
        ('auto_sleep = "clever"\n', "endpoints.120b: auto_sleep"),
    ):
        config.write_text(head + table)
        with pytest.raises(ConfigError) as raised:
            load_settings()
        assert says in raised.value.message and "\n" not in raised.value.message


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "4.0", "true", '"8"'])
def test_max_concurrency_must_be_a_whole_number_of_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """`max_concurrency` is read as a whole number, 1 or more; anything else is one line naming it."""
    config = tmp_path / "crazy-gary.toml"
    monkeypatch.setenv("CRAZY_GARY_CONFIG", str(config))
    head = '[endpoints.120b]\nurl = "demo/gpt-oss-120b"\n'
    config.write_text(head + "max_concurrency = 4\n")
    assert load_settings().endpoints["120b"].max_concurrency == 4
    config.write_text(head)
    assert load_settings().endpoints["120b"].max_concurrency is None  # no limit
    config.write_text(head + f"max_concurrency = {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = raised.value.message
    assert message.startswith("CRAZY_GARY_CONFIG: endpoints.120b: max_concurrency: must be a whole number")
    assert "\n" not in message
