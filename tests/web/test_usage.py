"""Who used what: tokens counted per key and endpoint for every API, each key's share of the cost,
and quotas that hold under concurrency; the app and the simulator on one manual clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from crazy_gary.clock import ManualClock

from ._served import ALICE, BOB, OPERATOR, Served, is_status, serve_with_simulator

QUOTA = "[quotas.alice]\ntokens_per_day = 2000\n"
MESSAGES = [{"role": "user", "content": "Why do large models sleep?"}]


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_with_simulator(monkeypatch, tmp_path, QUOTA) as it:
        yield it


async def usage(served: Served, key: str = OPERATOR, **params: float) -> dict[str, Any]:
    answer = await served.http.get(
        f"{served.url}/api/usage", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def row(body: dict[str, Any], key: str | None, endpoint: str) -> dict[str, Any]:
    (found,) = [r for r in body["rows"] if r["key"] == key and r["model_type"] == endpoint]
    return found


async def test_three_answers_and_a_stream_are_counted_exactly(served: Served) -> None:
    """A chat, a completion and a Responses answer, and a chat stream that did not ask for its usage
    (crazy-gary asks, counts, and takes the extra event out), counted as the answers say."""
    client = served.openai(BOB)
    chat = await served.run(client.chat.completions.create(model="120b", messages=MESSAGES))  # type: ignore[arg-type]
    completion = await served.run(client.completions.create(model="120b", prompt="Once upon a time"))
    response = await served.run(client.responses.create(model="120b", input="Why sleep?"))

    async def stream() -> list[Any]:
        chunks = await client.chat.completions.create(model="120b", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        return [chunk async for chunk in chunks]

    chunks = await served.run(stream())
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)  # the usage event went
    assert chat.usage and completion.usage and response.usage
    prompt = chat.usage.prompt_tokens * 2 + completion.usage.prompt_tokens + response.usage.input_tokens
    written = chat.usage.completion_tokens * 2 + completion.usage.completion_tokens
    written += response.usage.output_tokens
    counted = row(await usage(served), "bob", "120b")
    assert (counted["requests"], counted["prompt_tokens"], counted["completion_tokens"]) == (
        4,
        prompt,
        written,
    )
    metrics = (
        await served.http.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
    ).text
    assert f'crazy_gary_tokens_total{{endpoint="120b",key="bob",kind="prompt"}} {float(prompt)}' in metrics
    assert (
        f'crazy_gary_tokens_total{{endpoint="120b",key="bob",kind="completion"}} {float(written)}' in metrics
    )


async def test_embeddings_are_counted_against_their_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An embeddings answer's prompt tokens go to the key that asked, on the embedding endpoint."""
    bge = '[endpoints.bge]\nurl = "demo/bge-small-en"\n'
    async with serve_with_simulator(monkeypatch, tmp_path, bge) as served:
        client = served.openai(ALICE)
        first = await served.run(client.embeddings.create(model="bge", input=["cheap GPUs", "naps"]))
        second = await served.run(client.embeddings.create(model="bge", input="sleeping models"))
        counted = row(await usage(served), "alice", "bge")
        assert first.usage.prompt_tokens > 0
        expected = first.usage.prompt_tokens + second.usage.prompt_tokens
        assert (counted["requests"], counted["prompt_tokens"], counted["completion_tokens"]) == (
            2,
            expected,
            0,
        )
        assert not [r for r in (await usage(served))["rows"] if r["key"] == "bob"]


async def test_a_stream_that_asks_for_its_usage_keeps_it(served: Served) -> None:
    client = served.openai(BOB)

    async def stream() -> list[Any]:
        chunks = await client.chat.completions.create(
            model="20b",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        return [chunk async for chunk in chunks]

    chunks = await served.run(stream())
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    counted = row(await usage(served), "bob", "20b")
    assert counted["completion_tokens"] == chunks[-1].usage.completion_tokens


async def test_attribution_adds_up_to_the_endpoints_cost(served: Served) -> None:
    """Each endpoint's rows (keys by tokens, idle under null) add up to its billed cost, which is
    what `/api/endpoints/costs` says it cost; a user sees only their own rows."""
    await served.sim_set("endpoints/gpt-oss-120b", latency_ms=3000)  # each request: 3 busy seconds
    for key in (ALICE, BOB, BOB):
        await served.run(served.openai(key).chat.completions.create(model="120b", messages=MESSAGES))  # type: ignore[arg-type]
    await served.clock.advance(600)  # ten billed minutes, mostly idle
    body = await usage(served)
    costs = (
        await served.http.get(
            f"{served.url}/api/endpoints/costs", headers={"Authorization": f"Bearer {OPERATOR}"}
        )
    ).json()
    for endpoint in ("120b", "20b"):
        rows = [r for r in body["rows"] if r["model_type"] == endpoint]
        assert sum(r["cost"] for r in rows) == pytest.approx(costs["endpoints"][endpoint]["cost"], abs=1e-5)
    alice, bob, idle = row(body, "alice", "120b"), row(body, "bob", "120b"), row(body, None, "120b")
    assert bob["cost"] > alice["cost"] > 0 and idle["cost"] > bob["cost"]
    tokens = {r["key"]: r["prompt_tokens"] + r["completion_tokens"] for r in (alice, bob)}
    assert bob["cost"] / alice["cost"] == pytest.approx(tokens["bob"] / tokens["alice"], rel=1e-3)
    assert alice["cost"] + bob["cost"] <= 9 * 5.0 / 3600 + 1e-5  # the busy 9 s of a $5/h endpoint
    own = await usage(served, BOB)
    assert {r["key"] for r in own["rows"]} == {"bob"} and own["quotas"] == {}
    assert set((await usage(served, ALICE))["quotas"]) == {"alice"}


async def test_a_daily_quota_holds_under_sixty_concurrent_requests(served: Served) -> None:
    """60 requests of alice, 20 at a time, against 2,000 tokens a day: what gets through uses at most
    2,000 tokens, the rest is refused with 429 and Retry-After and reaches no endpoint; bob is not
    limited; the refusals are audited."""
    before = (await served.sim_calls("gpt-oss-20b"))["inference"]
    gate = asyncio.Semaphore(20)

    async def ask(key: str) -> tuple[int, int, dict[str, str]]:
        async with gate:
            answer = await served.http.post(
                f"{served.url}/v1/chat/completions",
                json={"model": "20b", "messages": MESSAGES, "max_tokens": 40},
                headers={"Authorization": f"Bearer {key}"},
            )
        body = answer.json()
        used = body["usage"]["total_tokens"] if answer.status_code == 200 else 0
        return answer.status_code, used, dict(answer.headers)

    with served.app.state.events.subscribe() as watcher:
        answers = await served.run(asyncio.gather(*(ask(ALICE) for _ in range(60))))
    told = [event.data for event in watcher.queue if event.name == "quota_exceeded"]
    served_ok = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    assert sum(used for _, used, _ in served_ok) <= 2000
    assert len(served_ok) >= 20 and refused  # the quota let many through, then refused
    assert {status for status, _, _ in refused} == {429}
    assert len(told) == len(refused) and told[0]["key"] == "alice" and told[0]["window"] == "tokens_per_day"
    assert all(int(headers["retry-after"]) >= 1 for _, _, headers in refused)
    assert (await served.sim_calls("gpt-oss-20b"))["inference"] - before == len(served_ok)
    bob = await served.run(asyncio.gather(*(ask(BOB) for _ in range(30))))
    assert {status for status, _, _ in bob} == {200}
    quota = (await usage(served))["quotas"]["alice"]["tokens_per_day"]
    assert quota["limit"] == 2000 and quota["used"] == sum(used for _, used, _ in served_ok)
    audit = await served.http.get(
        f"{served.url}/api/endpoints/audit",
        params={"operation": "chat"},
        headers={"Authorization": f"Bearer {OPERATOR}"},
    )
    refusals = [
        e for e in audit.json()["entries"] if e["actor"] == "alice" and e["details"].get("status") == 429
    ]
    assert len(refusals) == len(refused)


async def test_a_refused_stream_gets_429_before_any_byte(served: Served) -> None:
    """A stream of a key past its quota is refused with 429 at once, as the official client sees it."""
    client = served.openai(ALICE)
    with pytest.raises(openai.RateLimitError) as refused:
        await served.run(
            client.chat.completions.create(model="20b", messages=MESSAGES, stream=True, max_tokens=5000)  # type: ignore[arg-type]
        )
    assert refused.value.response.json()["code"] == "quota_exceeded"


async def test_usage_and_quota_survive_a_restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Counted usage is in the store: a new process on it shows the same rows and quota use."""
    clock = ManualClock()
    async with serve_with_simulator(monkeypatch, tmp_path, QUOTA, clock=clock) as served:
        answer = await served.run(
            served.openai(ALICE).chat.completions.create(model="20b", messages=MESSAGES)
        )  # type: ignore[arg-type]
        assert answer.usage is not None
        await served.app.state.quotas.drain()
        first = await usage(served)
    async with serve_with_simulator(monkeypatch, tmp_path, QUOTA, clock=clock) as served:
        again = await usage(served)
    assert row(again, "alice", "20b") == row(first, "alice", "20b")
    assert again["quotas"]["alice"]["tokens_per_day"]["used"] == answer.usage.total_tokens
    assert json.dumps(row(again, "alice", "20b"))


async def alice_used(served: Served) -> int:
    await served.app.state.quotas.drain()
    used: int = (await usage(served))["quotas"]["alice"]["tokens_per_day"]["used"]
    return used


async def test_a_caller_who_leaves_a_held_stream_gives_its_reservation_back(served: Served) -> None:
    """Held while the chain wakes, the caller reads a heartbeat and leaves: nothing stays reserved."""
    for name in ("gpt-oss-120b", "gpt-oss-20b"):
        await served.sim_set(f"endpoints/{name}", state="scaledToZero")
    await served.until(lambda: is_status(served, "20b", "sleeping"))
    body = {"model": "120b", "messages": MESSAGES, "max_tokens": 1000, "stream": True}

    async def leave_after_a_heartbeat() -> str:
        async with served.http.stream(
            "POST",
            f"{served.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {ALICE}"},
        ) as answer:
            async for line in answer.aiter_lines():
                return line
        return ""

    assert await served.run(leave_after_a_heartbeat()) == ": waiting for 120b"
    await served.until(lambda: _held_none(served))
    assert await alice_used(served) == 0


async def _held_none(served: Served) -> bool:
    return (await served.http.get(f"{served.url}/api/endpoints/status/120b", headers=served.auth)).json()[
        "pending"
    ] == 0


async def test_a_request_nothing_can_serve_gives_its_reservation_back(served: Served) -> None:
    for name in ("gpt-oss-120b", "gpt-oss-20b"):
        await served.sim_set(f"endpoints/{name}", state="failed")
    await served.until(lambda: is_status(served, "20b", "error"))
    answer = await served.run(
        served.http.post(
            f"{served.url}/v1/chat/completions",
            json={"model": "120b", "messages": MESSAGES, "max_tokens": 500},
            headers={"Authorization": f"Bearer {ALICE}"},
        )
    )
    assert answer.status_code == 503
    assert await alice_used(served) == 0
