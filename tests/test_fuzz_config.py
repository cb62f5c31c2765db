"""Property tests of the settings: address and key parsing, and `load_settings` fed any value.

A bad value must stop start-up with one `ConfigError` line that names its variable (README, "Configuration"):
never another exception, never a traceback, never a key in the message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crazy_gary.config import (
    EXPECTED_ADDRESS,
    ROLES,
    ApiKey,
    Settings,
    load_settings,
    parse_api_keys,
    parse_endpoint_address,
)
from crazy_gary.errors import ConfigError

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)
SETTINGS_IO = settings(max_examples=100, deadline=None, database=None, derandomize=True)

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
names = st.from_regex(rf"\A{NAME}\Z")
padding = st.sampled_from(["", " ", "  ", "\t", "\n", " \r\n"])


def _is_name(text: str) -> bool:
    return re.fullmatch(NAME, text) is not None


# --- parse_endpoint_address ---------------------------------------------------------------------


@st.composite
def long_addresses(draw: st.DrawFn) -> tuple[str, str, str]:
    namespace, name = draw(names), draw(names)
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(st.sampled_from(["endpoints.huggingface.co", "ui.endpoints.huggingface.co"]))
    slash = draw(st.sampled_from(["", "/"]))
    address = f"{draw(padding)}{scheme}://{host}/{namespace}/endpoints/{name}{slash}{draw(padding)}"
    return address, namespace, name


@st.composite
def short_addresses(draw: st.DrawFn) -> tuple[str, str, str]:
    namespace, name = draw(names), draw(names)
    return f"{draw(padding)}{namespace}/{name}{draw(padding)}", namespace, name


@given(long_addresses() | short_addresses())
@FAST
def test_both_address_forms_round_trip(example: tuple[str, str, str]) -> None:
    """Either address form of any valid namespace and name gives back exactly that pair."""
    address, namespace, name = example
    assert parse_endpoint_address(address) == (namespace, name)


@st.composite
def near_addresses(draw: st.DrawFn) -> str:
    """A valid address with one character inserted, removed or replaced."""
    address, _, _ = draw(long_addresses() | short_addresses())
    address = address.strip()
    at = draw(st.integers(min_value=0, max_value=len(address)))
    edit = draw(st.sampled_from(["insert", "delete", "replace"]))
    char = draw(st.characters(codec="utf-8") | st.sampled_from("/:. _-?#%@"))
    if edit == "insert":
        return address[:at] + char + address[at:]
    if edit == "delete":
        return address[:at] + address[at + 1 :]
    return address[:at] + char + address[at + 1 :]


@given(st.text(max_size=120) | near_addresses())
@FAST
def test_any_other_text_is_refused_naming_the_expected_form(text: str) -> None:
    """Any text parses to a valid pair or raises ValueError naming the expected forms; nothing else."""
    try:
        namespace, name = parse_endpoint_address(text)
    except ValueError as exc:
        message = str(exc)
    else:
        assert _is_name(namespace), namespace
        assert _is_name(name), name
        stripped = text.strip()
        host = r"https?://(ui\.)?endpoints\.huggingface\.co"
        long_form = rf"{host}/{re.escape(namespace)}/endpoints/{re.escape(name)}/?"
        assert stripped == f"{namespace}/{name}" or re.fullmatch(long_form, stripped), text
        return
    assert EXPECTED_ADDRESS in message, message


# --- parse_api_keys -----------------------------------------------------------------------------

# Keys hold no separator, no space and no control character at all (so `strip()` leaves them whole).
_key_alphabet = st.characters(
    codec="utf-8", exclude_characters=",:", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")
)
keys = st.text(_key_alphabet, min_size=8, max_size=40).filter(lambda key: key == key.strip())
key_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,15}\Z")
roles = st.sampled_from(ROLES)
separators = st.sampled_from([",", ", ", " , ", ",,", ",\n"])


@st.composite
def key_lists(draw: st.DrawFn) -> tuple[str, tuple[ApiKey, ...]]:
    expected: list[ApiKey] = []
    items: list[str] = []
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        role, key = draw(roles), draw(keys)
        name = draw(st.none() | st.just("") | key_names)
        items.append(f"{role}:{key}" if name is None else f"{name}:{role}:{key}")
        expected.append(ApiKey(role=role, key=key, name=name or None))
    text = ""
    for item in items:
        text += item + draw(separators)
    return draw(padding) + text + draw(padding), tuple(expected)


@given(key_lists())
@FAST
def test_valid_key_lists_round_trip(example: tuple[str, tuple[ApiKey, ...]]) -> None:
    """`role:key` and `name:role:key` items, however separated, come back as written."""
    text, expected = example
    assert parse_api_keys(text) == expected


SECRET = "sk-"  # every key of the invalid lists starts so; the fixed messages never hold it
secret_keys = st.text(_key_alphabet, min_size=5, max_size=30).map(lambda tail: SECRET + tail)
short_secret_keys = st.text(_key_alphabet, max_size=4).map(lambda tail: SECRET + tail)
bad_roles = st.text(_key_alphabet, max_size=12).filter(lambda role: role not in ROLES and SECRET not in role)


@st.composite
def bad_items(draw: st.DrawFn) -> str:
    """One item that is not `role:key` / `name:role:key` with a known role and a long enough key.

    A key written before its role (`key:role`) is left out: it is BUG 7, see below.
    """
    role, key, name = draw(roles), draw(secret_keys), draw(key_names)
    return draw(
        st.sampled_from(
            [
                key,  # no role at all
                f"{name}:{role}:{key}:{draw(secret_keys)}",  # one part too many
                f"{draw(bad_roles)}:{key}",
                f"{name}:{draw(bad_roles)}:{key}",
                f"{role}:{draw(short_secret_keys)}",
                f"{name}:{role}:{draw(short_secret_keys)}",
            ]
        )
    )


@given(good=key_lists(), bad=bad_items(), position=st.integers(min_value=0, max_value=5))
@FAST
def test_invalid_items_are_refused_without_key_material(
    good: tuple[str, tuple[ApiKey, ...]], bad: str, position: int
) -> None:
    """A list with a bad item raises ValueError naming the item, and no key of the input is in it."""
    items = [item for item in good[0].split(",") if item.strip()]
    items.insert(min(position, len(items)), bad)
    text = ",".join(items)
    with pytest.raises(ValueError, match=r"^item \d+ ") as raised:
        parse_api_keys(text)
    assert SECRET not in str(raised.value), str(raised.value)


@pytest.mark.parametrize("text", ["sk-live-0123456789:operator", "ops:sk-live-0123456789:operator"])
def test_a_key_in_the_role_place_is_not_echoed(text: str) -> None:
    """The error for a swapped item says what is wrong without repeating the key."""
    with pytest.raises(ValueError, match=r"^item 1 ") as raised:
        parse_api_keys(text)
    assert "sk-live" not in str(raised.value)


# --- load_settings fed any value ------------------------------------------------------------------

# Every variable Settings reads, from its own definition, so a new one is fuzzed as soon as it exists.
VARIABLES = sorted(
    str(field.validation_alias.choices[0])  # type: ignore[union-attr]
    for field in Settings.model_fields.values()
)
BASE = {  # a valid start: a real token and the default pair, so no variable is needed by another
    "HUGGINGFACE_API_KEY": "hf_fuzz_token_value",
    "HF_BASE_URL_120B": "demo/gpt-oss-120b",
    "HF_BASE_URL_20B": "https://endpoints.huggingface.co/demo/endpoints/gpt-oss-20b",
}
ECHOING = {  # their messages quote the value
    "HF_BASE_URL_120B",
    "HF_BASE_URL_20B",
    "CRAZY_GARY_RATE_LIMIT",
    "CRAZY_GARY_MANAGEMENT_RATE_LIMIT",
    "CRAZY_GARY_CONFIG",
    "CRAZY_GARY_CORS_ORIGINS",
}
PATHS = {"CRAZY_GARY_DATA_DIR", "CRAZY_GARY_CONFIG"}

_near_values = st.sampled_from(
    [
        *("0", "-1", "1", "0.5", "1e3", "1e999", "-0", "nan", "inf", "-inf", "1_000", " 7 ", "0x10", "١٢"),
        *("true", "false", "yes", "off", "TRUE", "2", "none", "null"),
        *("10/minute", "5 per second", "1/fortnight", "/minute", "0/day", "pause", "scale_to_zero"),
        *("demo/x", "a/b/c", "https://endpoints.huggingface.co/demo/endpoints/x", "http://", "https://x"),
        *(
            "sqlite:///x.db",
            "postgresql://u@h/db",
            "redis://localhost",
            "operator:abcdefgh",
            "u:viewer:12345678",
        ),
        *("~", "~/x", "~no-such-user/x", ".", "..", "/", "/nonexistent/x.toml", "*", "a,b,,c"),
    ]
)
env_values = (st.text(max_size=60) | _near_values).filter(lambda value: "\x00" not in value)


def _has_line_break(value: str) -> bool:
    return "".join(value.splitlines()) != value


def _unknown_home(value: str) -> bool:
    try:
        Path(value).expanduser()
    except RuntimeError:
        return True
    return False


def _known_bug(variable: str, value: str) -> str | None:
    """Which regression test below covers this input, if one does."""
    if variable in PATHS and _unknown_home(value):
        return "BUG 5"
    if variable in ECHOING and _has_line_break(value):
        return "BUG 6"
    if variable == "HF_BASE_URL_20B" and value == "":
        return "BUG 8"
    return None


def load_with(data_dir: Path, **values: str) -> Settings:
    """`load_settings()` with only BASE and `values` among crazy-gary's variables, from an empty cwd."""
    with pytest.MonkeyPatch.context() as patch:
        for name in VARIABLES:
            patch.delenv(name, raising=False)
        patch.chdir(data_dir)  # a relative CRAZY_GARY_CONFIG finds nothing of the project's
        patch.setenv("CRAZY_GARY_DATA_DIR", str(data_dir))
        for name, value in {**BASE, **values}.items():
            patch.setenv(name, value)
        return load_settings()


def check_config_error(variable: str, message: str) -> None:
    assert message.startswith(f"{variable}:"), message
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in message, message


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("settings-fuzz")


@pytest.mark.parametrize("variable", VARIABLES)
@given(value=env_values)
@SETTINGS_IO
def test_load_settings_fed_any_value(variable: str, value: str, empty_dir: Path) -> None:
    """Any value of any variable gives Settings or one ConfigError line starting with that variable."""
    try:
        loaded = load_with(empty_dir, **{variable: value})
    except ConfigError as exc:
        check_config_error(variable, exc.message)
        return
    assert isinstance(loaded, Settings)
    assert loaded.endpoints  # cached properties that read further are fine too
    assert isinstance(loaded.api_keys, tuple)
    assert isinstance(loaded.cors_origin_list, tuple)


def test_the_fuzzed_variables_cover_spec_section_2() -> None:
    """Every variable of the README's "Configuration" is among the fuzzed ones."""
    spec = {
        *("HUGGINGFACE_API_KEY", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "ENDPOINT_WAKE_TIMEOUT"),
        *("ENDPOINT_AUTO_SLEEP", "ENDPOINT_SLEEP_MODE", "HF_ENDPOINTS_API_URL", "CRAZY_GARY_SIMULATE"),
        *("CRAZY_GARY_FALLBACK_WAIT", "CRAZY_GARY_MAX_PENDING", "CRAZY_GARY_RETRY_ATTEMPTS"),
        *("CRAZY_GARY_BREAKER_FAILURES", "CRAZY_GARY_BREAKER_COOLDOWN", "CRAZY_GARY_MAX_BODY_BYTES"),
        *("CRAZY_GARY_API_KEYS", "CRAZY_GARY_CORS_ORIGINS", "CRAZY_GARY_RATE_LIMIT"),
        *("CRAZY_GARY_MANAGEMENT_RATE_LIMIT", "CRAZY_GARY_DATABASE_URL", "CRAZY_GARY_REDIS_URL"),
        *("CRAZY_GARY_REDIS_PREFIX", "CRAZY_GARY_DATA_DIR", "CRAZY_GARY_CONFIG"),
    }
    assert spec <= set(VARIABLES), spec - set(VARIABLES)


# --- cases the fuzzing found, fixed since: each stays as a regression test ---


@pytest.mark.parametrize("variable", sorted(PATHS))
def test_a_home_of_an_unknown_user_is_a_config_error(variable: str, empty_dir: Path) -> None:
    """`~nobody-such/x` cannot be expanded: that is a ConfigError naming the variable."""
    value = "~crazy-gary-no-such-user/x"
    assert _known_bug(variable, value) == "BUG 5"
    with pytest.raises(ConfigError) as raised:
        load_with(empty_dir, **{variable: value})
    check_config_error(variable, raised.value.message)


@pytest.mark.parametrize("variable", sorted(ECHOING))
def test_a_value_with_a_line_break_gives_one_line(variable: str, empty_dir: Path) -> None:
    """The message quoting a bad value stays on one line."""
    value = "x\nERROR: injected second line"
    assert _known_bug(variable, value) == "BUG 6"
    with pytest.raises(ConfigError) as raised:
        load_with(empty_dir, **{variable: value})
    check_config_error(variable, raised.value.message)


def test_a_missing_fallback_names_its_variable(empty_dir: Path) -> None:
    """120b alone either runs without a fallback or stops naming HF_BASE_URL_20B, not the TOML file."""
    try:
        loaded: Any = load_with(empty_dir, HF_BASE_URL_20B="")
    except ConfigError as exc:
        check_config_error("HF_BASE_URL_20B", exc.message)
    else:
        assert set(loaded.endpoints) == {"120b"}
