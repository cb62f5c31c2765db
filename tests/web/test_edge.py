"""The HTTP edge over a real loopback socket: rate limits, CORS, security headers, body and path limits."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from fastapi import Request
from starlette.types import Message, Receive, Scope, Send

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings, load_settings
from crazy_gary.errors import ConfigError
from crazy_gary.web import create_app
from crazy_gary.web.edge import BodyLimitMiddleware, HardenedFastAPI
from crazy_gary.web.errors import install_error_handlers

from ..conftest import serve_app
from ..core.fakes import FakeManagement
from .conftest import OPERATOR, USER, VIEWER, Api

OTHER_OPERATOR = "second-op-key-123456"
ORIGIN = "https://console.example.com"
MIB = 1024 * 1024
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@contextlib.asynccontextmanager
async def edge_app(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> AsyncIterator[Api]:
    """The app of the `api` fixture, with these settings on top."""
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    keys = f"ops:operator:{OPERATOR},ops2:operator:{OTHER_OPERATOR},user:{USER},viewer:{VIEWER}"
    config = Settings(CRAZY_GARY_SIMULATE=True, CRAZY_GARY_API_KEYS=keys, **settings)
    clock = ManualClock()
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    app = create_app(config, clock=clock, management=hf)
    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url) as http:
        await clock.settle()
        yield Api(http, clock, hf, app)


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def assert_error(response: httpx2.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]


# --- rate limits ------------------------------------------------------------------------------------


async def test_fourth_wake_within_the_management_limit_is_429(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `3/minute` a wake gets 429 with Retry-After and X-RateLimit-*, and nothing goes upstream."""
    async with edge_app(monkeypatch, CRAZY_GARY_MANAGEMENT_RATE_LIMIT="3/minute") as api:
        for _ in range(3):
            assert (await api.post("/api/endpoints/wake/120b")).status_code in (200, 202)
        upstream = dict(api.hf.calls)
        refused = await api.post("/api/endpoints/wake/120b")
        await api.clock.settle()
        assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-limit"] == "3"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert time.time() < int(refused.headers["x-ratelimit-reset"]) <= time.time() + 61
        assert dict(api.hf.calls) == upstream


async def test_rate_limit_refusal_is_audited(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 429 is in the audit log with the key's actor, the endpoint and status 429."""
    async with edge_app(monkeypatch, CRAZY_GARY_MANAGEMENT_RATE_LIMIT="1/minute") as api:
        await api.post("/api/endpoints/sleep/20b")
        assert (await api.post("/api/endpoints/sleep/20b")).status_code == 429
        entries = (await api.get("/api/endpoints/audit?operation=sleep")).json()["entries"]
        refused = [e for e in entries if not e["success"]]
        assert [(e["actor"], e["model_type"], e["details"]["status"]) for e in refused] == [
            ("ops", "20b", 429)
        ]
        assert OPERATOR not in str(entries)


async def test_management_limit_is_per_key_and_only_on_wake_and_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another operator key still wakes; reads are not counted against the management limit."""
    async with edge_app(monkeypatch, CRAZY_GARY_MANAGEMENT_RATE_LIMIT="2/minute") as api:
        for _ in range(2):
            await api.post("/api/endpoints/wake")
        assert (await api.post("/api/endpoints/sleep")).status_code == 429
        assert (await api.post("/api/endpoints/wake/20b", key=OTHER_OPERATOR)).status_code == 200
        for _ in range(3):
            assert (await api.get("/api/endpoints/status", key=OPERATOR)).status_code == 200


async def test_refused_keys_do_not_spend_the_management_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wake refused 401 or 403 counts only against the general limit, never an operator's allowance."""
    async with edge_app(monkeypatch, CRAZY_GARY_MANAGEMENT_RATE_LIMIT="1/minute") as api:
        assert (await api.post("/api/endpoints/wake/20b", key=VIEWER)).status_code == 403
        assert (await api.post("/api/endpoints/wake/20b", key=None)).status_code == 401
        assert (await api.post("/api/endpoints/wake/20b")).status_code == 200


async def test_limited_answers_carry_the_rate_limit_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A successful answer tells the general limit; a wake tells the tighter management one."""
    settings = {"CRAZY_GARY_RATE_LIMIT": "50/minute", "CRAZY_GARY_MANAGEMENT_RATE_LIMIT": "5/minute"}
    async with edge_app(monkeypatch, **settings) as api:
        read = await api.get("/api/endpoints/status")
        assert (read.headers["x-ratelimit-limit"], read.headers["x-ratelimit-remaining"]) == ("50", "49")
        assert "retry-after" not in read.headers
        woken = await api.post("/api/endpoints/wake/120b")
        assert woken.status_code == 202
        assert (woken.headers["x-ratelimit-limit"], woken.headers["x-ratelimit-remaining"]) == ("5", "4")


async def test_general_limit_is_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the general limit a key gets 429 on any route; another key is counted apart."""
    async with edge_app(monkeypatch, CRAZY_GARY_RATE_LIMIT="5/minute") as api:
        for _ in range(5):
            assert (await api.get("/api/endpoints/status")).status_code == 200
        assert_error(await api.get("/api/endpoints/costs"), 429, "rate_limited")
        assert_error(await api.get("/nope"), 429, "rate_limited")
        assert (await api.get("/v1/models", key=USER)).status_code == 200
        entries = (await api.get("/api/endpoints/audit", key=OPERATOR)).json()["entries"]
        actors = [e["actor"] for e in entries if e["details"].get("status") == 429]
        assert actors == [f"viewer:{hashlib.sha256(VIEWER.encode()).hexdigest()[:8]}"] * 2


async def test_general_limit_is_per_client_address_without_a_valid_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls without a key, or with made-up ones, share their address's count; other addresses do not."""
    async with edge_app(monkeypatch, CRAZY_GARY_RATE_LIMIT="4/minute") as api:
        for key in (None, "made-up-key-0001", "made-up-key-0002", None):
            assert (await api.get("/api/endpoints/status", key=key)).status_code == 401
        refused = await api.get("/api/endpoints/status", key="made-up-key-0003")
        assert_error(refused, 429, "rate_limited")
        assert (await api.get("/api/endpoints/status", key=VIEWER)).status_code == 200
        transport = httpx2.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx2.AsyncClient(base_url=str(api.http.base_url), transport=transport) as elsewhere:
            assert (await elsewhere.get("/api/endpoints/status")).status_code == 401
        entries = (await api.get("/api/endpoints/audit", key=OPERATOR)).json()["entries"]
        assert [e["actor"] for e in entries if e["details"].get("status") == 429] == [
            "invalid-key:" + (hashlib.sha256(b"made-up-key-0003").hexdigest()[:8])
        ]


async def test_health_routes_and_the_page_are_never_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """/healthz, /readyz and / answer however often they are called, with no X-RateLimit headers."""
    async with edge_app(monkeypatch, CRAZY_GARY_RATE_LIMIT="2/minute") as api:
        for _ in range(10):
            for path in ("/healthz", "/readyz", "/"):
                response = await api.get(path, key=None)
                assert response.status_code == 200
                assert not set(RATE_HEADERS) & set(response.headers)


async def test_a_bench_sized_rate_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """`100000000/second` (the bench's) is accepted and counted."""
    async with edge_app(monkeypatch, CRAZY_GARY_RATE_LIMIT="100000000/second") as api:
        response = await api.get("/api/endpoints/status")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "100000000"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRAZY_GARY_RATE_LIMIT", "0/minute"),
        ("CRAZY_GARY_MANAGEMENT_RATE_LIMIT", "10/0 minutes"),
        ("CRAZY_GARY_CORS_ORIGINS", "*"),
        ("CRAZY_GARY_CORS_ORIGINS", "https://ok.example.com,https://bad.example.com/path"),
    ],
)
def test_edge_settings_are_checked(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """A rate allowing nothing, or a CORS origin that is `*` or has a path, stops start-up naming it."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable.removeprefix("CRAZY_GARY_")):
        load_settings(simulate=True)


# --- CORS and security headers ----------------------------------------------------------------------


async def test_an_allowed_origin_gets_cors_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listed origin gets CORS on a simple request and a preflight, without credentials or `*`."""
    async with edge_app(monkeypatch, CRAZY_GARY_CORS_ORIGINS=f"{ORIGIN},http://127.0.0.1:5173") as api:
        simple = await api.http.get("/api/endpoints/status", headers={**bearer(VIEWER), "Origin": ORIGIN})
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in simple.headers
        assert "retry-after" in simple.headers["access-control-expose-headers"].lower()
        preflight = await api.http.options(
            "/api/endpoints/wake/120b",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert api.hf.calls["resume"] == 0


async def test_another_origin_gets_no_cors_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlisted origin gets no CORS header on a simple request, and its preflight is refused."""
    async with edge_app(monkeypatch, CRAZY_GARY_CORS_ORIGINS=ORIGIN) as api:
        evil = "https://evil.example.net"
        simple = await api.http.get("/api/endpoints/status", headers={**bearer(VIEWER), "Origin": evil})
        assert "access-control-allow-origin" not in simple.headers
        preflight = await api.http.options(
            "/api/endpoints/wake/120b",
            headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers


async def test_no_cors_at_all_without_origins(api: Api) -> None:
    """With no CRAZY_GARY_CORS_ORIGINS no answer carries a CORS header, whatever the origin."""
    simple = await api.http.get("/api/endpoints/status", headers={**bearer(VIEWER), "Origin": ORIGIN})
    preflight = await api.http.options(
        "/api/endpoints/status", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    for response in (simple, preflight):
        assert not [name for name in response.headers if name.startswith("access-control-")]


def _inline_hashes(page: str, tag: str) -> set[str]:
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
    return {"'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for b in bodies}


async def test_the_page_has_its_security_headers(api: Api) -> None:
    """GET / has a strict CSP allowing its own inline script and style by hash, and the other headers."""
    response = await api.get("/", key=None)
    policy = dict(
        part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]
    scripts = _inline_hashes(response.text, "script")
    assert scripts
    assert scripts <= set(policy["script-src"].split())
    assert _inline_hashes(response.text, "style") <= set(policy["style-src"].split())
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


async def test_the_page_markup_needs_no_unsafe_inline(api: Api) -> None:
    """The page's markup has no inline event handlers or style attributes, which its CSP would block."""
    page = (await api.get("/", key=None)).text
    markup = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.DOTALL | re.IGNORECASE)
    assert not re.search(r"\son[a-z]+\s*=", markup, re.IGNORECASE)
    assert not re.search(r"\sstyle\s*=", markup, re.IGNORECASE)


async def test_every_answer_says_nosniff(api: Api) -> None:
    """X-Content-Type-Options: nosniff on answers of every kind, errors included, once."""
    answers = [
        await api.get("/healthz", key=None),
        await api.get("/api/endpoints/status"),
        await api.get("/api/endpoints/status", key=None),
        await api.get("/nope", key=None),
        await api.http.post("/v1/chat/completions", content=b"x" * (11 * MIB), headers=bearer(USER)),
    ]
    for response in answers:
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], response.status_code


async def test_even_an_unexpected_error_says_nosniff() -> None:
    """The 500 answered outside every other middleware carries nosniff too."""
    app = HardenedFastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom(request: Request) -> None:
        raise RuntimeError("boom")

    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url) as http:
        response = await http.get("/boom")
    assert_error(response, 500, "internal_error")
    assert response.headers["x-content-type-options"] == "nosniff"


# --- request limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/endpoints/120b/v1/chat/completions",
    ],
)
async def test_a_body_declared_too_large_is_413_at_once(api: Api, path: str) -> None:
    """A 30 MiB body with its Content-Length gets 413 `body_too_large` on every inference route and
    an endpoint's address; the server stays healthy."""
    response = await api.http.post(path, content=b"x" * (30 * MIB), headers=bearer(USER))
    assert_error(response, 413, "body_too_large")
    assert (await api.get("/healthz", key=None)).status_code == 200
    assert (await api.get("/api/endpoints/status")).status_code == 200


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


async def test_a_chunked_body_too_large_is_413(api: Api) -> None:
    """A 30 MiB chunked body (to an endpoint's address) gets 413 once the count passes the limit;
    the server stays healthy."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in _chunks(30 * MIB):
            yield chunk

    response = await api.http.post("/endpoints/120b/v1/completions", content=body(), headers=bearer(USER))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "body_too_large")
    assert (await api.get("/healthz", key=None)).status_code == 200


async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    """The app reads no chunk past the one that crosses the limit, and the 413 goes out then."""
    chunks = [b"x" * 1000] * 100
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"transfer-encoding", b"chunked")]}
    await BodyLimitMiddleware(reader, max_bytes=4500)(scope, receive, send)
    assert read == 5
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413
    assert b"body_too_large" in sent[1]["body"]


async def test_a_body_within_the_limit_goes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunked body under CRAZY_GARY_MAX_BODY_BYTES is read as usual (here: a 400 for bad JSON)."""
    async with edge_app(monkeypatch, CRAZY_GARY_MAX_BODY_BYTES=256 * 1024) as api:

        async def body() -> AsyncIterator[bytes]:
            for chunk in _chunks(192 * 1024):
                yield chunk

        response = await api.http.post("/v1/chat/completions", content=body(), headers=bearer(USER))
        assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("name", ["-120b", "a" * 129, "120b%20", "120b%0A", "%2E%2E", "x:y"])
async def test_a_malformed_endpoint_name_is_400(api: Api, name: str) -> None:
    """A `{model_type}` that cannot be an endpoint name is 400; a well-formed unknown one stays 404."""
    for method, path in (("GET", "/api/endpoints/status/"), ("POST", "/api/endpoints/wake/")):
        response = await api.http.request(method, path + name, headers=bearer(OPERATOR))
        assert_error(response, 400, "invalid_model_type")
    assert_error(await api.get("/api/endpoints/status/gpt-5"), 404, "endpoint_not_found")
    assert_error(await api.get("/api/endpoints/status/" + name, key=None), 401, "missing_key")
    assert api.hf.calls["resume"] == 0
