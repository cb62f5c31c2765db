"""The audit log and the costs over the REST API, on the manual clock with a real SQLite store."""

from __future__ import annotations

import pytest

from .conftest import OPERATOR, USER, VIEWER, Api


async def entries(api: Api, query: str = "") -> list[dict[str, object]]:
    response = await api.get(f"/api/endpoints/audit{query}")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    result: list[dict[str, object]] = body["entries"]
    return result


async def test_wake_and_sleep_are_audited_with_actor_and_outcome(api: Api) -> None:
    """A wake and a sleep through the API are in the log, newest first, with actor, endpoint and outcome."""
    await api.post("/api/endpoints/wake/120b")
    await api.clock.advance(25)
    await api.post("/api/endpoints/sleep/120b")
    await api.clock.settle()
    operations = [e for e in await entries(api) if e["operation"] in ("wake", "sleep")]
    assert [(e["operation"], e["actor"], e["model_type"], e["success"]) for e in operations] == [
        ("sleep", "ops", "120b", True),
        ("wake", "ops", "120b", True),
    ]
    assert isinstance(operations[0]["timestamp"], int)
    assert operations[0]["id"] > operations[1]["id"]  # type: ignore[operator]


async def test_a_wake_is_in_the_log_from_its_202_and_completed_when_it_ends(api: Api) -> None:
    """Right after the 202 the wake is in the log with `success` null; once the endpoint runs, the
    same entry (same id, same time) carries the outcome and what was sent."""
    assert (await api.post("/api/endpoints/wake/120b")).status_code == 202
    (accepted,) = await entries(api, "?operation=wake")
    assert (accepted["actor"], accepted["model_type"], accepted["success"]) == ("ops", "120b", None)
    await api.clock.advance(25)
    (ended,) = await entries(api, "?operation=wake")
    assert (ended["id"], ended["timestamp"], ended["success"]) == (
        accepted["id"],
        accepted["timestamp"],
        True,
    )
    assert "sent" in ended["details"]  # type: ignore[operator]
    assert ended["details"]["request_id"] == accepted["details"]["request_id"]  # type: ignore[index]


async def test_a_wake_or_sleep_that_changed_nothing_is_audited(api: Api) -> None:
    """A sleep of a sleeping endpoint and a wake of a running one answer 200 and are in the log as
    successes that changed nothing, with the state the endpoint was in."""
    assert (await api.post("/api/endpoints/sleep/120b")).status_code == 200
    assert (await api.post("/api/endpoints/wake/20b")).status_code == 200
    log = [e for e in await entries(api) if e["operation"] in ("wake", "sleep")]
    assert [(e["operation"], e["model_type"], e["actor"], e["success"]) for e in log] == [
        ("wake", "20b", "ops", True),
        ("sleep", "120b", "ops", True),
    ]
    assert [{k: e["details"][k] for k in ("changed", "status")} for e in log] == [  # type: ignore[index]
        {"changed": False, "status": "running"},
        {"changed": False, "status": "sleeping"},
    ]


async def test_a_wake_cancelled_by_a_sleep_is_completed_as_cancelled(api: Api) -> None:
    """A sleep asked while a wake runs cancels the wake: the wake's entry ends as a failure saying so,
    and the sleep's own entry carries the sleep's outcome."""
    await api.post("/api/endpoints/wake/120b")
    await api.clock.advance(1)
    await api.post("/api/endpoints/sleep/120b")
    await api.clock.advance(60)
    log = [e for e in await entries(api) if e["operation"] in ("wake", "sleep")]
    assert [(e["operation"], e["success"], e["error"]) for e in log] == [
        ("sleep", True, None),
        ("wake", False, "Cancelled by a sleep before it finished."),
    ]


async def test_refused_attempts_are_audited_without_the_key(api: Api) -> None:
    """401 and 403 refusals are in the log; the actor is a name or a short hash, never the key."""
    await api.post("/api/endpoints/wake/120b", key=None)
    await api.post("/api/endpoints/wake/120b", key="wrong-key-123456")
    await api.post("/api/endpoints/sleep/20b", key=USER)
    refused = [e for e in await entries(api, "?limit=3") if not e["success"]]
    assert [(e["operation"], e["details"]["status"]) for e in refused] == [  # type: ignore[index]
        ("sleep", 403),
        ("wake", 401),
        ("wake", 401),
    ]
    assert refused[0]["actor"].startswith("user:")  # type: ignore[union-attr]  # role and short hash
    assert refused[1]["actor"].startswith("invalid-key:")  # type: ignore[union-attr]
    assert refused[2]["actor"] == "anonymous"
    text = (await api.get("/api/endpoints/audit")).text
    for key in (OPERATOR, USER, VIEWER, "wrong-key-123456"):
        assert key not in text


async def test_a_refused_inference_call_is_audited_as_its_api(api: Api) -> None:
    """A call to any inference API without a key is audited under that API's name."""
    paths = {
        "/v1/chat/completions": "chat",
        "/v1/completions": "completions",
        "/v1/responses": "responses",
        "/v1/embeddings": "embeddings",
        "/endpoints/120b/v1/chat/completions": "endpoint",
    }
    for path in paths:
        assert (await api.post(path, key=None)).status_code == 401
    refused = [e for e in await entries(api, f"?limit={len(paths)}") if not e["success"]]
    assert [e["operation"] for e in reversed(refused)] == list(paths.values())


async def test_state_changes_are_audited(api: Api) -> None:
    """Every state change seen upstream is in the log, with HF's state; `running` at HF while the
    model loads is a change of its own, before the endpoint runs."""
    await api.post("/api/endpoints/wake/120b")
    await api.clock.advance(25)
    changes = await entries(api, "?operation=state_change&model_type=120b")
    seen = [(e["details"]["status"], e["details"]["hf_state"]) for e in changes]  # type: ignore[index]
    assert seen[:3] == [("running", "running"), ("starting", "running"), ("starting", "initializing")]
    assert all(e["actor"] == "huggingface" for e in changes)


async def test_audit_pages_with_before(api: Api) -> None:
    """`before` pages through the log by entry id."""
    for _ in range(3):
        await api.post("/api/endpoints/wake/120b", key=None)
    first = await entries(api, "?limit=2")
    rest = await entries(api, f"?limit=100&before={first[-1]['id']}")
    assert len(first) == 2
    assert all(e["id"] < first[-1]["id"] for e in rest)  # type: ignore[operator]


@pytest.mark.parametrize(
    "query", ["?limit=0", "?limit=abc", "?before=-1", "?model_type=../x", "?operation=DROP TABLE"]
)
async def test_bad_audit_filters_are_400(api: Api, query: str) -> None:
    """Malformed filters answer 400 in the error shape."""
    response = await api.get(f"/api/endpoints/audit{query}")
    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_costs_grow_at_the_price_while_running_and_savings_while_asleep(api: Api) -> None:
    """An H200 x1 bills $5/h of initializing and running; sleeping grows `saved` instead."""
    await api.post("/api/endpoints/wake/120b")
    for _ in range(6):
        await api.clock.advance(100)
    costs = (await api.get("/api/endpoints/costs")).json()
    big = costs["endpoints"]["120b"]
    assert big["price_per_hour"] == 5.0
    assert big["billed_seconds"] == pytest.approx(600, abs=2)  # 20 s initializing, then running
    assert big["cost"] == pytest.approx(600 * 5 / 3600, abs=0.01)
    saved_before = big["saved"]
    await api.post("/api/endpoints/sleep/120b")
    for _ in range(36):
        await api.clock.advance(100)
    later = (await api.get("/api/endpoints/costs")).json()["endpoints"]["120b"]
    assert later["cost"] == pytest.approx(big["cost"], abs=0.01)
    assert later["saved"] - saved_before == pytest.approx(5.0, abs=0.03)
    total = (await api.get("/api/endpoints/costs")).json()["total"]
    assert total["cost"] == pytest.approx(
        later["cost"] + (await api.get("/api/endpoints/costs")).json()["endpoints"]["20b"]["cost"]
    )


async def test_metrics_carry_billed_seconds_and_dollars(api: Api) -> None:
    """/metrics shows each endpoint's billed seconds and dollars, from the same accounting."""
    from prometheus_client.parser import text_string_to_metric_families

    await api.post("/api/endpoints/wake/120b")
    for _ in range(6):
        await api.clock.advance(100)
    text = (await api.get("/metrics")).text
    samples = {
        (sample.name, sample.labels.get("endpoint")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("crazy_gary_billed_seconds_total", "120b")] == pytest.approx(600, abs=2)
    assert samples[("crazy_gary_cost_dollars_total", "120b")] == pytest.approx(600 * 5 / 3600, abs=0.01)
