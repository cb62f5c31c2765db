"""Faults as Hugging Face really shows them: foreign namespaces, malformed answers, Retry-After, vLLM errors."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from ._helpers import NAMESPACE, calls, chat_body, set_endpoint

FOREIGN = "someone-else"
CHAT = "/endpoints/gpt-oss-20b/v1/chat/completions"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v2/endpoint/{FOREIGN}"),
        ("POST", f"/v2/endpoint/{FOREIGN}"),
        ("GET", f"/v2/endpoint/{FOREIGN}/gpt-oss-20b"),
        ("PUT", f"/v2/endpoint/{FOREIGN}/gpt-oss-20b"),
        ("DELETE", f"/v2/endpoint/{FOREIGN}/gpt-oss-20b"),
        ("POST", f"/v2/endpoint/{FOREIGN}/gpt-oss-20b/pause"),
        ("POST", f"/v2/endpoint/{FOREIGN}/gpt-oss-20b/resume"),
        ("POST", f"/v2/endpoint/{FOREIGN}/gpt-oss-20b/scale-to-zero"),
        ("GET", f"/v2/provider/{FOREIGN}"),
    ],
)
async def test_a_foreign_namespace_is_401(client: httpx2.AsyncClient, method: str, path: str) -> None:
    """Every call on a namespace the token may not use answers 401 naming it, and changes or counts nothing."""
    response = await client.request(method, path, json={"compute": {}} if method in ("PUT", "POST") else None)
    assert response.status_code == 401
    message = response.json()["error"]
    assert FOREIGN in message
    assert "billing" in message
    counted = await calls(client)
    assert counted["_list"] == 0
    assert sum(counted["gpt-oss-20b"].values()) == 0
    settings = (await client.get("/_sim/endpoints/gpt-oss-20b")).json()
    assert settings["state"] == "scaledToZero"


async def test_malformed_answers_lack_status(client: httpx2.AsyncClient) -> None:
    """With malformed_rate 1 every endpoint object of a 200 answer lacks status; the operation still happens."""
    await client.put("/_sim/management", json={"malformed_rate": 1})
    one = await client.get(f"/v2/endpoint/{NAMESPACE}/gpt-oss-20b")
    assert one.status_code == 200
    assert "status" not in one.json()
    assert one.json()["name"] == "gpt-oss-20b"
    listing = await client.get(f"/v2/endpoint/{NAMESPACE}")
    assert [("status" in item) for item in listing.json()["items"]] == [False, False, False]
    paused = await client.post(f"/v2/endpoint/{NAMESPACE}/gpt-oss-20b/pause")
    assert (paused.status_code, "status" in paused.json()) == (200, False)
    await client.put("/_sim/management", json={"malformed_rate": 0})
    assert (await client.get(f"/v2/endpoint/{NAMESPACE}/gpt-oss-20b")).json()["status"]["state"] == "paused"


async def test_malformed_rate_mixes_answers(client: httpx2.AsyncClient) -> None:
    """A malformed_rate between 0 and 1 spoils some answers, not all; a list is spoilt whole or not at all."""
    await client.put("/_sim/management", json={"malformed_rate": 0.5})
    shapes: set[tuple[bool, ...]] = set()
    for _ in range(30):
        items = (await client.get(f"/v2/endpoint/{NAMESPACE}")).json()["items"]
        shapes.add(tuple("status" in item for item in items))
    assert shapes == {(True, True, True), (False, False, False)}


async def _faulty_get(client: httpx2.AsyncClient, **faults: Any) -> httpx2.Response:
    response = await client.put("/_sim/management", json={"error_rate": 1, **faults})
    assert response.status_code == 200, response.text
    return await client.get(f"/v2/endpoint/{NAMESPACE}/gpt-oss-20b")


async def test_retry_after_goes_with_injected_429s(client: httpx2.AsyncClient) -> None:
    """An injected 429 carries Retry-After with the configured seconds (whole seconds, rounded up)."""
    response = await _faulty_get(client, error_status=429, retry_after=7)
    assert (response.status_code, response.headers["retry-after"]) == (429, "7")
    assert (await client.get("/_sim/management")).json()["retry_after"] == 7.0
    response = await _faulty_get(client, retry_after=2.5)
    assert response.headers["retry-after"] == "3"


async def test_retry_after_only_with_429(client: httpx2.AsyncClient) -> None:
    """Other injected statuses carry no Retry-After, and neither does a 429 without the setting."""
    response = await _faulty_get(client, error_status=503, retry_after=7)
    assert response.status_code == 503
    assert "retry-after" not in response.headers
    response = await _faulty_get(client, error_status=429, retry_after=None)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


def _assert_vllm_error(response: httpx2.Response, status: int, error_type: str | None = None) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["param"] is None
    assert body["error"]["code"] == status
    if error_type is not None:
        assert body["error"]["type"] == error_type


async def test_endpoint_errors_have_vllms_shape(client: httpx2.AsyncClient) -> None:
    """Refusals of an endpoint's routes (sleeping, paused, unknown, no token) have vLLM's error shape."""
    _assert_vllm_error(await client.post(CHAT, json=chat_body()), 503, "Service Unavailable")
    wrong = await client.get("/endpoints/gpt-oss-20b/health", headers={"Authorization": "Bearer hf_no"})
    _assert_vllm_error(wrong, 401, "Unauthorized")
    _assert_vllm_error(await client.get("/endpoints/nope/health"), 404, "Not Found")
    _assert_vllm_error(await client.get("/endpoints/gpt-oss-20b/v1/nothing"), 404)
    await set_endpoint(client, "gpt-oss-20b", state="paused")
    paused = await client.post(CHAT, json=chat_body())
    _assert_vllm_error(paused, 400)
    assert "Invalid state" in paused.json()["error"]["message"]


async def test_vllm_errors_name_their_type(client: httpx2.AsyncClient) -> None:
    """A bad chat body is a BadRequestError; an injected 500 an InternalServerError; others their phrase."""
    await set_endpoint(client, "gpt-oss-20b", state="running")
    _assert_vllm_error(await client.post(CHAT, content=b"[]"), 400, "BadRequestError")
    await set_endpoint(client, "gpt-oss-20b", error_rate=1, error_status=500)
    _assert_vllm_error(await client.post(CHAT, json=chat_body()), 500, "InternalServerError")
    await set_endpoint(client, "gpt-oss-20b", error_status=502)
    _assert_vllm_error(await client.post(CHAT, json=chat_body()), 502, "Bad Gateway")


async def test_management_and_control_errors_keep_their_shape(client: httpx2.AsyncClient) -> None:
    """The management and control APIs answer errors as {"error": "a sentence"}."""
    for response in (
        await client.get(f"/v2/endpoint/{NAMESPACE}/nope"),
        await client.put("/_sim/endpoints/gpt-oss-20b", json={"pending": -1}),
        await client.get("/_sim/nothing"),
    ):
        assert response.status_code in (400, 404)
        assert isinstance(response.json()["error"], str)
