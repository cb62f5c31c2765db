"""The REST API over a real loopback socket, on the manual clock, with an in-memory management API."""

from __future__ import annotations

import pytest

from .conftest import OPERATOR, USER, VIEWER, Api


async def test_status_has_the_seed_fields(api: Api) -> None:
    """GET /api/endpoints/status answers every endpoint with the seed's fields and integer times."""
    response = await api.get("/api/endpoints/status")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert set(body["endpoints"]) == {"120b", "20b"}
    endpoint = body["endpoints"]["20b"]
    assert list(endpoint)[:6] == [
        "status",
        "url",
        "last_activity",
        "wake_time",
        "sleep_time",
        "auto_sleep_in",
    ]
    assert endpoint["status"] == "running"
    assert isinstance(endpoint["auto_sleep_in"], int)
    assert body["endpoints"]["120b"]["status"] == "sleeping"
    assert body["endpoints"]["120b"]["auto_sleep_in"] is None
    assert body["endpoints"]["120b"]["price_per_hour"] == 5.0


async def test_one_status_and_unknown_endpoint(api: Api) -> None:
    """GET /status/{model_type} names the endpoint; an unknown one is 404 in the error shape."""
    body = (await api.get("/api/endpoints/status/120b")).json()
    assert body["model_type"] == "120b"
    assert body["status"] == "sleeping"
    missing = await api.get("/api/endpoints/status/gpt-5")
    assert missing.status_code == 404
    assert missing.json() == {
        "success": False,
        "error": "Unknown endpoint 'gpt-5'.",
        "code": "endpoint_not_found",
    }


async def test_wake_answers_202_then_runs(api: Api) -> None:
    """POST /wake/120b answers 202 starting at once; the endpoint runs after its cold start."""
    response = await api.post("/api/endpoints/wake/120b")
    assert response.status_code == 202
    assert response.json() == {"success": True, "model_type": "120b", "status": "starting"}
    await api.clock.advance(21)
    body = (await api.get("/api/endpoints/status/120b")).json()
    assert body["status"] == "running"
    assert isinstance(body["wake_time"], int)


async def test_wake_of_running_answers_200(api: Api) -> None:
    """Waking a running endpoint answers 200 with its state and changes nothing."""
    response = await api.post("/api/endpoints/wake/20b")
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert api.hf.calls["resume"] == 0


async def test_wake_all_and_sleep_all(api: Api) -> None:
    """POST /wake and /sleep act on every endpoint and report each."""
    response = await api.post("/api/endpoints/wake")
    assert response.status_code == 202
    assert response.json() == {
        "success": True,
        "results": {
            "120b": {"success": True, "status": "starting"},
            "20b": {"success": True, "status": "running"},
        },
    }
    await api.clock.advance(21)
    response = await api.post("/api/endpoints/sleep")
    assert response.status_code == 202
    assert {result["status"] for result in response.json()["results"].values()} <= {"stopping", "sleeping"}
    await api.clock.settle()
    assert api.hf.calls["scale-to-zero"] == 2


async def test_wake_wait_true_answers_when_running(api: Api) -> None:
    """?wait=true holds the answer until the endpoint runs, then 200."""
    import asyncio

    pending = asyncio.create_task(api.post("/api/endpoints/wake/120b?wait=true"))
    await api.clock.advance(5)
    assert not pending.done()
    await api.clock.advance(20)
    response = await pending
    assert response.status_code == 200
    assert response.json() == {"success": True, "status": "running", "model_type": "120b"}


async def test_wake_wait_true_times_out_with_504(api: Api) -> None:
    """?wait=true answers 504 when the wake outlives its timeout."""
    import asyncio

    api.hf.cold_start = 10_000
    pending = asyncio.create_task(api.post("/api/endpoints/wake/120b?wait=true"))
    for _ in range(31):
        await api.clock.advance(10)
    response = await pending
    assert response.status_code == 504
    body = response.json()
    assert body["success"] is False
    assert body["status"] == "error"
    assert body["code"] == "wake_timeout"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/endpoints/status"),
        ("GET", "/api/endpoints/status/120b"),
        ("POST", "/api/endpoints/wake"),
        ("POST", "/api/endpoints/wake/120b"),
        ("POST", "/api/endpoints/sleep"),
        ("POST", "/api/endpoints/sleep/120b"),
    ],
)
async def test_guarded_routes_need_a_valid_key(api: Api, method: str, path: str) -> None:
    """Every guarded route answers 401 without a key and with a wrong one."""
    for key in (None, "wrong-key-123456"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = await api.http.request(method, path, headers=headers)
        assert response.status_code == 401
        assert response.json()["success"] is False
        assert response.json()["code"] in ("missing_key", "invalid_key")
    assert api.hf.calls["resume"] + api.hf.calls["poke"] + api.hf.calls["scale-to-zero"] == 0


async def test_roles_are_ordered(api: Api) -> None:
    """A viewer reads but may not wake; a user may not sleep; an operator may."""
    assert (await api.get("/api/endpoints/status", key=VIEWER)).status_code == 200
    refused = await api.post("/api/endpoints/wake/120b", key=VIEWER)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert (await api.post("/api/endpoints/sleep/20b", key=USER)).status_code == 403
    assert (await api.post("/api/endpoints/sleep/20b", key=OPERATOR)).status_code == 202


async def test_health_routes_and_unknown_route(api: Api) -> None:
    """/healthz and /readyz need no key; an unknown route is 404 in the error shape."""
    assert (await api.get("/healthz", key=None)).json()["success"] is True
    ready = await api.get("/readyz", key=None)
    assert ready.status_code == 200
    missing = await api.get("/nope", key=None)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_bad_query_value_is_400(api: Api) -> None:
    """A malformed query value is a 400 in the error shape, not a framework page."""
    response = await api.post("/api/endpoints/wake/120b?wait=maybe")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["code"] == "invalid_request"


async def test_status_reads_are_not_activity(api: Api) -> None:
    """Reading the status never moves last_activity."""
    for _ in range(5):
        await api.get("/api/endpoints/status")
    assert (await api.get("/api/endpoints/status/20b")).json()["last_activity"] is None


async def test_page_is_served(api: Api) -> None:
    """GET / serves the page without a key."""
    response = await api.get("/", key=None)
    assert response.status_code == 200
    assert "data-endpoint" in response.text
