"""Fuzz the gateway with hypothesis: chat bodies, and paths under an endpoint's address; the cases it found."""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ._fuzz_app import (
    MODEL_NAMES,
    REPOSITORIES,
    REQUEST_TIMEOUT,
    UPSTREAM_PATHS,
    USER,
    LiveApp,
    check_error_shape,
    live_app,
)


@pytest.fixture(scope="module")
def chat_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """A second app for the chat fuzzing, whose endpoints no fuzzed sleep has touched."""
    with live_app(tmp_path_factory.mktemp("fuzz-chat")) as live:
        yield live


# --- hypothesis: the chat body (the schema describes none) ------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]) | st.text(max_size=6)},
        optional={"content": st.text(max_size=40) | _json_values},
    ),
    max_size=3,
)
_extras = {
    "stream": st.booleans() | _json_values,
    "max_tokens": st.integers(min_value=-5, max_value=100_000) | _json_values,
    "temperature": st.floats(allow_nan=False, allow_infinity=False),
    "tools": _json_values,
    "reasoning_effort": st.text(max_size=8),
}
# Well formed: a known model and a list of messages, so the request reaches an endpoint.
_chat_requests = st.fixed_dictionaries(
    {"model": st.sampled_from([*MODEL_NAMES, *REPOSITORIES]), "messages": _messages}, optional=_extras
)
# Anything shaped a little like one.
_chat_objects = st.fixed_dictionaries(
    {"model": st.sampled_from(["", "nope", "GPT-OSS-120B", "120B "]) | st.text(max_size=12) | _json_values},
    optional={"messages": _messages | _json_values, **_extras},
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


chat_bodies = st.one_of(
    _chat_requests.map(_encode),
    _chat_requests.map(_encode),  # twice: a third of the bodies reach an endpoint
    _chat_objects.map(_encode),
    _json_values.map(_encode),  # JSON, but not an object
    st.binary(max_size=64),  # anything at all, often not UTF-8
    st.text(max_size=64).map(str.encode),
)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(body=chat_bodies, content_type=st.sampled_from(["application/json", "text/plain", None]))
def test_chat_bodies_never_get_a_server_error(
    chat_served: LiveApp, body: bytes, content_type: str | None
) -> None:
    """Any body to the gateway gets its answer (20b runs), a 400 or a 404, never a 5xx or a trace."""
    headers = {"Authorization": f"Bearer {USER}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = httpx2.post(
        chat_served.url + "/v1/chat/completions", content=body, headers=headers, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code in (200, 400, 404), (body, response.status_code, response.text[:300])
    if response.status_code != 200:
        error = check_error_shape(response.status_code, response.headers["content-type"], response.content)
        assert error["code"] in ("invalid_request", "endpoint_not_found"), error
        return
    assert response.headers["x-crazy-gary-served-by"] in ("120b", "20b")
    if json.loads(body).get("stream") is True:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.text.rstrip().endswith("data: [DONE]")
    else:
        assert response.json()["choices"][0]["message"]["content"] == "ok"


# --- cases the fuzzing found, fixed since: each stays as a regression test ---


def _post_chat(live: LiveApp, body: bytes) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {USER}", "Content-Type": "application/json"}
    return httpx2.post(
        live.url + "/v1/chat/completions", content=body, headers=headers, timeout=REQUEST_TIMEOUT
    )


def test_deeply_nested_chat_body_is_a_400(chat_served: LiveApp) -> None:
    """JSON nested deeper than the parser goes is a 400 `invalid_request`."""
    response = _post_chat(chat_served, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400, response.text
    assert check_error_shape(400, response.headers["content-type"], response.content)["code"] == (
        "invalid_request"
    )


def test_chat_body_with_a_huge_integer_is_a_400(chat_served: LiveApp) -> None:
    """A number Python refuses to parse is a 400 `invalid_request`."""
    response = _post_chat(chat_served, b'{"model": "20b", "messages": [], "n": ' + b"9" * 5000 + b"}")
    assert response.status_code == 400, response.text
    assert check_error_shape(400, response.headers["content-type"], response.content)["code"] == (
        "invalid_request"
    )


def test_chat_model_with_a_lone_surrogate_is_a_4xx(chat_served: LiveApp) -> None:
    """An unknown model is a 404 in the error shape, whatever characters its name holds."""
    response = _post_chat(chat_served, b'{"model": "\\ud800", "messages": []}')
    assert response.status_code in (400, 404), response.text
    check_error_shape(response.status_code, response.headers["content-type"], response.content)


def _raw_get(live: LiveApp, target: str) -> int:
    """GET `target` byte for byte (no client normalises its dots or slashes); the answer's status."""
    host, port = live.url.removeprefix("http://").split(":")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {USER}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT) as connection:
        connection.sendall(request.encode("latin-1"))
        answer = b""
        while b"\r\n" not in answer and (data := connection.recv(4096)):
            answer += data
    return int(answer.split(b" ", 2)[1])


_path_pieces = st.lists(
    st.sampled_from(
        [
            ".",
            "..",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "\\",
            "/",
            "//",
            "a",
            "v1",
            "%00",
            "?x=1",
            ";",
            "%3B",
            "%25",
        ]
    ),
    max_size=8,
).map("".join)


@settings(max_examples=80, deadline=None, database=None, derandomize=True)
@given(rest=_path_pieces)
def test_no_path_under_an_endpoints_address_leaves_it(chat_served: LiveApp, rest: str) -> None:
    """Whatever path follows `/endpoints/20b/`, the answer is the endpoint's or a 400/404, and what
    reaches the endpoint stays under its own address, without a dot segment once decoded."""
    UPSTREAM_PATHS.clear()
    status = _raw_get(chat_served, f"/endpoints/20b/{rest}")
    assert status in (200, 400, 404), (rest, status)
    for path in UPSTREAM_PATHS:
        assert path.startswith("/endpoints/gpt-oss-20b/"), (rest, path)
        segments = urllib.parse.unquote(path.removeprefix("/endpoints/gpt-oss-20b/")).split("/")
        assert not {".", ".."} & set(segments), (rest, path)
