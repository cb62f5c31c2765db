"""`GET /api/endpoints/policies`: the requests the gateway served, as the store recorded them,
replayed per endpoint under the default policies in a process of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ._served import OPERATOR, USER, Served, is_status, serve_with_simulator

MESSAGES = [{"role": "user", "content": "Why do large models sleep?"}]
DEFAULTS = {"idle:15m", "adaptive", "oracle", "always"}


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_with_simulator(monkeypatch, tmp_path) as it:
        yield it


async def policies(served: Served, query: str = "", key: str = USER) -> httpx2.Response:
    """The route, waited for in real time: the replay runs in another process."""
    request = served.http.get(
        f"{served.url}/api/endpoints/policies{query}", headers={"Authorization": f"Bearer {key}"}
    )
    return await asyncio.wait_for(request, timeout=120)


async def chat_at_intervals(served: Served, gaps: list[float]) -> None:
    client = served.openai()
    for gap in gaps:
        await served.clock.advance(gap)
        await served.run(client.chat.completions.create(model="120b", messages=MESSAGES))  # type: ignore[arg-type]


async def test_the_endpoints_own_requests_are_replayed_under_each_default_policy(served: Served) -> None:
    """Five requests to 120b, an hour or more apart: each endpoint gets the four default policies;
    120b's figures count its five requests (idle:15m makes the later ones meet a cold start, the
    oracle none), 20b's none; `always` saves nothing and costs the most."""
    await chat_at_intervals(served, [0, 3600, 3600, 7200, 5400])
    answer = await policies(served, "?days=1")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert (body["success"], body["days"]) == (True, 1)
    assert set(body["endpoints"]) == {"120b", "20b"}
    big = body["endpoints"]["120b"]
    assert set(big) == DEFAULTS
    assert {figures["requests"] for figures in big.values()} == {5}
    assert big["idle:15m"]["cold_hits"] >= 4 and big["oracle"]["cold_hits"] == 0
    assert big["always"]["saved"] == 0
    assert all(big["oracle"]["cost"] <= f["cost"] <= big["always"]["cost"] for f in big.values())
    assert body["endpoints"]["20b"]["idle:15m"]["requests"] == 0


async def test_the_answer_is_kept_a_while_then_replayed_again(served: Served) -> None:
    """A second read within five minutes is the same answer; later, new requests are in it."""
    await chat_at_intervals(served, [0])
    first = (await policies(served, "?days=2")).json()
    await chat_at_intervals(served, [60])
    assert (await policies(served, "?days=2")).json() == first
    await served.clock.advance(300)
    again = (await policies(served, "?days=2")).json()
    assert again["endpoints"]["120b"]["oracle"]["requests"] == 2


@pytest.mark.parametrize("query", ["?days=0", "?days=91", "?days=week"])
async def test_a_bad_number_of_days_is_400(served: Served, query: str) -> None:
    answer = await policies(served, query, key=OPERATOR)
    assert answer.status_code == 400
    assert answer.json()["success"] is False and "days" in answer.json()["error"]


async def test_a_caller_without_a_key_may_not_read_it(served: Served) -> None:
    assert await is_status(served, "120b", "running")
    refused = await served.http.get(f"{served.url}/api/endpoints/policies")
    assert refused.status_code == 401 and refused.json()["code"] == "missing_key"
