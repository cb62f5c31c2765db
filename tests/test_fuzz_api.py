"""Fuzz the REST API with schemathesis, from the app's own OpenAPI schema, over a real loopback socket.

The app runs under uvicorn in a background thread with its own event loop (schemathesis calls are
synchronous), on a `ManualClock` that never moves and with an in-memory management API, so wakes and
sleeps answer at once and nothing here waits on real time. Whatever is sent, the app must never answer
5xx, and every 4xx must be JSON in the error shape of the README's "REST API".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from pydantic import TypeAdapter, ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.core.ports import UpstreamEndpoint
from crazy_gary.web import create_app

from .conftest import serve_app
from .core.fakes import FakeManagement

OPERATOR, USER, VIEWER = "op-key-fuzz-123456", "user-key-fuzz-123456", "view-key-fuzz-123456"
WRONG = "not-a-configured-key-0000"
SEED = 20_240_917
REQUEST_TIMEOUT = 10.0  # a hang is a failure, not a stalled run
PUBLIC_PATHS = {"/healthz", "/readyz"}
OPERATOR_PREFIXES = ("/api/endpoints/wake", "/api/endpoints/sleep")
USER_PREFIXES = ("/v1/", "/endpoints/")
SNAKE_CASE = r"^[a-z][a-z0-9_]*$"
MODEL_NAMES = ("120b", "20b", "gpt-oss-120b", "gpt-oss-20b")  # keys and HF names
ENDPOINT_PATHS = ("v1/chat/completions", "v1/models", "health", "info")
UPSTREAM_PATHS: list[str] = []  # every raw path the stand-in endpoint was asked for
REPOSITORIES = ("openai/gpt-oss-120b", "openai/gpt-oss-20b")
MAX_INT64 = 2**63 - 1
ApiCase = schemathesis.Case[Any]


# --- the app, served in a thread --------------------------------------------------------------------


async def _upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in inference endpoint: every chat request gets a small OpenAI answer, streamed or not."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    UPSTREAM_PATHS.append(scope["raw_path"].decode("latin-1"))
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        stream = json.loads(body).get("stream") is True
    except (ValueError, AttributeError):
        stream = False
    answer = {
        "id": "chatcmpl-fuzz",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    if stream:
        content = f"data: {json.dumps(answer)}\n\ndata: [DONE]\n\n".encode()
        media = b"text/event-stream"
    else:
        content, media = json.dumps(answer).encode(), b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]})
    await send({"type": "http.response.body", "body": content})


class _LoopbackManagement(FakeManagement):
    """The in-memory management API, with endpoint addresses on the stand-in upstream."""

    def __init__(self, clock: ManualClock, states: dict[str, str], upstream: str) -> None:
        super().__init__(clock, states)
        self.upstream = upstream

    def _view(self, name: str) -> UpstreamEndpoint:
        view = super()._view(name)
        if view.url is None:
            return view
        return dataclasses.replace(view, url=f"{self.upstream}/endpoints/{name}")


@dataclasses.dataclass
class LiveApp:
    url: str


def _settings(data_dir: Path) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
            patch.delenv(name, raising=False)
        settings = Settings(
            CRAZY_GARY_SIMULATE=True,
            CRAZY_GARY_API_KEYS=f"ops:operator:{OPERATOR},user:{USER},viewer:{VIEWER}",
            CRAZY_GARY_DATA_DIR=str(data_dir),
            # Nothing may wait on the manual clock (it never moves): a request the running 20b cannot
            # take gets its 503 at once instead of being held.
            CRAZY_GARY_FALLBACK_WAIT=0,
            CRAZY_GARY_MAX_PENDING=0,
            # Thousands of calls from one key: rate limits are not what is fuzzed here.
            CRAZY_GARY_RATE_LIMIT="1000000/minute",
            CRAZY_GARY_MANAGEMENT_RATE_LIMIT="1000000/minute",
        )
        assert set(settings.endpoints) == {"120b", "20b"}
    return settings


@contextlib.contextmanager
def live_app(data_dir: Path) -> Iterator[LiveApp]:
    """The app on 127.0.0.1:<free port>, 120b asleep and 20b running, in a thread of its own."""
    settings = _settings(data_dir)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with serve_app(_upstream) as upstream:
                clock = ManualClock()
                hf = _LoopbackManagement(
                    clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"}, upstream
                )
                app = create_app(settings, clock=clock, management=hf)
                async with serve_app(app) as url:
                    await clock.settle()
                    box["live"], box["loop"], box["stop"] = LiveApp(url), asyncio.get_running_loop(), stop
                    ready.set()
                    await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            raise
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="fuzz-app", daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start within 30 s"
    if "live" not in box:
        raise RuntimeError("the app did not start") from box.get("error")
    try:
        live: LiveApp = box["live"]
        assert httpx2.get(live.url + "/readyz", timeout=REQUEST_TIMEOUT).status_code == 200
        yield live
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        assert not thread.is_alive(), "the app did not stop within 30 s"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("fuzz-api")) as live:
        yield live


@pytest.fixture(scope="module")
def chat_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """A second app for the chat fuzzing, whose endpoints no fuzzed sleep has touched."""
    with live_app(tmp_path_factory.mktemp("fuzz-chat")) as live:
        yield live


@pytest.fixture(scope="module")
def api_schema(served: LiveApp) -> schemathesis.BaseSchema:
    """The app's own schema from `/openapi.json`: positive and negative data, coverage cases, fixed seed."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    loaded = schemathesis.openapi.from_url(
        served.url + "/openapi.json", config=config, timeout=REQUEST_TIMEOUT
    )

    @loaded.hook
    def before_generate_path_parameters(
        context: schemathesis.HookContext, strategy: SearchStrategy[dict[str, Any]]
    ) -> SearchStrategy[dict[str, Any]]:
        # Random strings almost never name an endpoint: mix in the real keys and names.
        if "{key}" in context.operation.path:  # an endpoint's address: its key and a path under it
            address = st.fixed_dictionaries(
                {"key": st.sampled_from(MODEL_NAMES), "path": st.sampled_from(ENDPOINT_PATHS)}
            )
            return st.one_of(strategy, address)
        known = st.sampled_from(MODEL_NAMES).map(lambda name: {"model_type": name})
        return st.one_of(strategy, known)

    return loaded


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's `from_fixture` renames `node._nodeid`, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# An event stream never ends: it has no place in generated calls.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"^/api/endpoints/events")


# --- what every answer must be ----------------------------------------------------------------------


def check_error_shape(status: int, content_type: str, content: bytes) -> dict[str, Any]:
    """An error answer is `{"success": false, "error": "<sentence>", "code": "<snake_case>"}`."""
    assert content_type.startswith("application/json"), (
        f"{status} answer is {content_type}: {content[:200]!r}"
    )
    body = json.loads(content)
    assert isinstance(body, dict), body
    assert body.get("success") is False, body
    assert isinstance(body.get("error"), str), body
    assert body["error"].strip(), body
    assert isinstance(body.get("code"), str), body
    assert re.match(SNAKE_CASE, body["code"]), body
    assert "Traceback" not in body["error"], body
    return body


def _json(response: schemathesis.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        pytest.fail(f"{response.status_code} answer is not JSON: {response.content[:200]!r}")


def _no_capacity(case: ApiCase, response: schemathesis.Response) -> bool:
    """The gateway's own 503 when every endpoint of the chain sleeps (fuzzed sleeps put them to
    sleep, and nothing may wait here): a designed answer, checked for its shape and Retry-After."""
    return response.status_code == 503 and case.path.startswith(USER_PREFIXES)


def check_answer(case: ApiCase, response: schemathesis.Response) -> None:
    """No 5xx; every 4xx in the error shape (429 with Retry-After); every `/api/` answer JSON with `success`."""
    content_type = (response.headers.get("content-type") or [""])[0]
    described = f"{case.method} {case.formatted_path} query={case.query} -> {response.status_code}"
    if _no_capacity(case, response):
        assert check_error_shape(503, content_type, response.content)["code"] == "no_capacity", described
        assert "retry-after" in response.headers, described
        return
    assert response.status_code < 500, f"{described}: {response.content[:300]!r}"
    if response.status_code >= 400:
        check_error_shape(response.status_code, content_type, response.content)
        if response.status_code == 429:
            assert "retry-after" in response.headers, described
    elif case.path.startswith("/api/"):
        assert "success" in _json(response), described


def _truthy(value: object) -> bool:
    """Whether the app could read a `wait` query value (or one of a repeated parameter's) as true."""
    if isinstance(value, list):
        return any(_truthy(item) for item in value)
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return False


def _bounded(case: ApiCase) -> None:
    """Keep generated calls off `?wait=true`, which waits for the manual clock (it never moves)."""
    if not case.query:
        return
    if _truthy(case.query.get("wait")):
        del case.query["wait"]


def _call(case: ApiCase, key: str | None) -> schemathesis.Response:
    _bounded(case)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return case.call(headers=headers, timeout=REQUEST_TIMEOUT)


def _routed(response: schemathesis.Response) -> bool:
    """Whether the call reached a route: an unknown method (405) or a path with `/` (404) has no role."""
    return response.status_code not in (404, 405) or _json(response)["code"] not in (
        "not_found",
        "method_not_allowed",
    )


def _needed_role(path: str) -> str | None:
    if path in PUBLIC_PATHS:
        return None
    if path.startswith(OPERATOR_PREFIXES):
        return "operator"
    if path.startswith(USER_PREFIXES):
        return "user"
    return "viewer"


FUZZ = settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
AUTH_FUZZ = settings(FUZZ, max_examples=8)


# --- schemathesis: every operation of the schema, four callers -------------------------------------


@FUZZ
@schema.parametrize()
def test_operator_key_never_gets_a_server_error(case: ApiCase) -> None:
    """With the operator key, any generated call is answered below 500, errors in the error shape."""
    response = _call(case, OPERATOR)
    check_answer(case, response)
    if _no_capacity(case, response):
        return
    case.validate_response(
        response, checks=[not_a_server_error, content_type_conformance, response_schema_conformance]
    )


@AUTH_FUZZ
@schema.parametrize()
def test_missing_key_is_refused_with_401(case: ApiCase) -> None:
    """Without a key every protected route answers 401 `missing_key`, whatever else the call holds."""
    response = _call(case, None)
    check_answer(case, response)
    if _needed_role(case.path) is not None and _routed(response):
        assert response.status_code == 401, (case.formatted_path, response.status_code, response.content)
        assert _json(response)["code"] == "missing_key"


@AUTH_FUZZ
@schema.parametrize()
def test_wrong_key_is_refused_with_401(case: ApiCase) -> None:
    """A key nobody configured gets 401 `invalid_key` on every protected route."""
    response = _call(case, WRONG)
    check_answer(case, response)
    if _needed_role(case.path) is not None and _routed(response):
        assert response.status_code == 401, (case.formatted_path, response.status_code, response.content)
        assert _json(response)["code"] == "invalid_key"


@AUTH_FUZZ
@schema.parametrize()
def test_viewer_key_is_refused_above_its_role(case: ApiCase) -> None:
    """The viewer key reads, but gets 403 on the gateway (user) and on wake and sleep (operator)."""
    response = _call(case, VIEWER)
    check_answer(case, response)
    if _needed_role(case.path) in ("user", "operator") and _routed(response):
        assert response.status_code == 403, (case.formatted_path, response.status_code, response.content)
        assert _json(response)["code"] == "forbidden"


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


def test_audit_before_beyond_64_bits_is_a_400(served: LiveApp) -> None:
    """An audit `before` no entry id can reach is bad input (400), not an internal error."""
    response = httpx2.get(
        served.url + "/api/endpoints/audit",
        params={"before": str(MAX_INT64 + 1)},
        headers={"Authorization": f"Bearer {VIEWER}"},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 400, response.text
    check_error_shape(400, response.headers["content-type"], response.content)


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
