"""`crazy-gary doctor` against the simulator on a loopback socket, on a ManualClock (nothing sleeps)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import stamina
from typer.testing import CliRunner

from crazy_gary import cli
from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings, load_settings
from crazy_gary.doctor import Check, diagnose, render, report
from crazy_gary.simulator import SimulatorConfig, SimulatorServer

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting of the machine leaks in (the data dir stays the test's own), and no backoff."""
    for name in list(os.environ):
        if (
            name.startswith(("CRAZY_GARY", "HF_", "HUGGINGFACE", "ENDPOINT_"))
            and name != "CRAZY_GARY_DATA_DIR"
        ):
            monkeypatch.delenv(name)
    with stamina.set_testing(True, attempts=2):
        yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimulatorConfig(cold_start=5.0), clock) as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(sim: SimulatorServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "huggingface_api_key": "hf_simulator",
        "endpoints_api_url": sim.management_url,
        "hf_base_url_120b": "demo/gpt-oss-120b",
        "hf_base_url_20b": "demo/gpt-oss-20b",
        "auto_sleep": 600.0,  # 10 min: the simulator's idle timers (15 min) come after it
    }
    values.update(overrides)
    return load_settings(**values)


async def sim_set(sim: SimulatorServer, name: str, **body: Any) -> None:
    async with httpx2.AsyncClient() as http:
        (await http.put(f"{sim.url}/_sim/endpoints/{name}", json=body)).raise_for_status()


async def set_scaling(sim: SimulatorServer, name: str, low: int, high: int, timeout: int | None) -> None:
    """A PUT of the management API itself: huggingface_hub leaves a timeout of None out of its body."""
    scaling = {"minReplica": low, "maxReplica": high, "scaleToZeroTimeout": timeout}
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer hf_simulator"}) as http:
        url = f"{sim.management_url}/endpoint/demo/{name}"
        (await http.put(url, json={"compute": {"scaling": scaling}})).raise_for_status()


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.check: check for check in checks}


async def run(settings: Settings, clock: ManualClock) -> dict[str, Check]:
    return by_name(await diagnose(settings, clock=clock))


async def test_all_good_is_every_check_ok(sim: SimulatorServer, clock: ManualClock) -> None:
    """Namespace, each endpoint's state, replicas, idle timer, health (running 20b) and price, and
    the store: all ✓, and `report` says ok."""
    await sim_set(sim, "gpt-oss-20b", state="running")
    checks = await diagnose(settings_for(sim), clock=clock)
    found = by_name(checks)
    assert [c for c in checks if c.level != "ok"] == []
    assert report(checks)["ok"] is True
    for name in ("hugging face", "namespace demo", "120b endpoint", "120b replicas", "120b idle timer"):
        assert name in found
    assert "120b health" not in found, "a sleeping endpoint is not probed (that would start it)"
    assert found["20b health"].detail == "/health answers 200"
    assert "serve sets it to 25 min" in found["120b idle timer"].detail
    assert "live hardware list" in found["120b price"].detail
    assert found["store"].check == "store"
    assert all(render(c).startswith("✓ ") for c in checks)


async def test_doctor_starts_nothing(sim: SimulatorServer, clock: ManualClock) -> None:
    """A sleeping endpoint stays asleep: doctor neither wakes nor probes it."""
    await diagnose(settings_for(sim), clock=clock)
    async with httpx2.AsyncClient() as http:
        calls = (await http.get(f"{sim.url}/_sim/calls")).json()
    assert calls["gpt-oss-120b"]["starts"] == 0
    assert calls["gpt-oss-120b"]["resume"] == calls["gpt-oss-120b"]["update"] == 0


async def test_wrong_token_names_namespace_token_and_billing(
    sim: SimulatorServer, clock: ManualClock
) -> None:
    """A token HF refuses: ✗ on the namespace naming it, the token and billing; the token is never shown."""
    checks = await diagnose(settings_for(sim, huggingface_api_key="hf_not_the_right_one"), clock=clock)
    line = render(by_name(checks)["namespace demo"])
    assert line.startswith("✗ namespace demo: ")
    assert "401" in line
    assert "HUGGINGFACE_API_KEY" in line
    assert "billing" in line
    assert "'demo'" in line
    assert report(checks)["ok"] is False
    assert "120b endpoint" not in by_name(checks), "endpoints of an unusable namespace are not checked"
    assert "hf_not_the_right_one" not in json.dumps(report(checks))


async def test_foreign_namespace_is_refused_alone(sim: SimulatorServer, clock: ManualClock) -> None:
    """An endpoint in a namespace the token may not use: that namespace ✗ (401), the other ✓."""
    found = await run(settings_for(sim, hf_base_url_20b="acme/gpt-oss-20b"), clock)
    assert found["namespace acme"].level == "error"
    assert "billing" in found["namespace acme"].detail
    assert found["namespace demo"].level == "ok"
    assert found["120b endpoint"].level == "ok"


async def test_unknown_endpoint_name(sim: SimulatorServer, clock: ManualClock) -> None:
    """A name the namespace does not have: ✗ naming it, the namespace and the variable to check."""
    check = (await run(settings_for(sim, hf_base_url_20b="demo/gpt-oss-7b"), clock))["20b endpoint"]
    assert check.level == "error"
    assert "no endpoint gpt-oss-7b in demo" in check.detail
    assert "gpt-oss-120b" in check.detail, "it says what the namespace has"
    assert check.fix == "check HF_BASE_URL_20B"


async def test_unknown_endpoint_of_the_toml_file(
    sim: SimulatorServer, clock: ManualClock, tmp_path: Path
) -> None:
    """An endpoint of CRAZY_GARY_CONFIG that HF does not have: the fix points at its url in the file."""
    config = tmp_path / "crazy-gary.toml"
    config.write_text('[endpoints.big]\nurl = "demo/gpt-oss-900b"\n')
    check = (await run(settings_for(sim, config_file=config), clock))["big endpoint"]
    assert check.level == "error"
    assert check.fix == "check endpoints.big.url in CRAZY_GARY_CONFIG"


async def test_failed_endpoint_is_an_error_with_hf_message(sim: SimulatorServer, clock: ManualClock) -> None:
    """A `failed` endpoint: ✗ with HF's own message and where to read its logs."""
    await sim_set(sim, "gpt-oss-120b", state="failed")
    checks = await diagnose(settings_for(sim), clock=clock)
    check = by_name(checks)["120b endpoint"]
    assert check.level == "error"
    assert "is failed: Endpoint failed to deploy" in check.detail
    assert "endpoints.huggingface.co/demo/endpoints/gpt-oss-120b" in (check.fix or "")
    assert report(checks)["ok"] is False


async def test_pending_endpoint_is_a_warning(sim: SimulatorServer, clock: ManualClock) -> None:
    """A `pending` endpoint: ! with HF's message; nothing blocks serving."""
    await sim_set(sim, "gpt-oss-20b", state="pending", pending=600)
    checks = await diagnose(settings_for(sim), clock=clock)
    check = by_name(checks)["20b endpoint"]
    assert check.level == "warning"
    assert "Endpoint waiting to be scheduled" in check.detail
    assert report(checks)["ok"] is True


async def test_idle_timer_shorter_than_auto_sleep_warns(sim: SimulatorServer, clock: ManualClock) -> None:
    """HF's timer (15 min) under an auto-sleep of 30 min: ! saying HF sleeps it first and what serve sets."""
    check = (await run(settings_for(sim, auto_sleep=1800.0), clock))["120b idle timer"]
    assert check.level == "warning"
    assert check.detail == "HF will scale it to zero after 15 min, before crazy-gary's auto-sleep of 30 min"
    assert check.fix == "serve sets it to 45 min at start (CRAZY_GARY_HF_SCALE_TO_ZERO=auto)"


async def test_short_timer_with_safety_net_off(sim: SimulatorServer, clock: ManualClock) -> None:
    """The same with CRAZY_GARY_HF_SCALE_TO_ZERO=off: nothing will change it, so the fix says what to set."""
    settings = settings_for(sim, auto_sleep=1800.0, hf_scale_to_zero="off")
    check = (await run(settings, clock))["120b idle timer"]
    assert check.level == "warning"
    assert "CRAZY_GARY_HF_SCALE_TO_ZERO=auto" in (check.fix or "")


async def test_no_idle_timer_and_safety_net_off(sim: SimulatorServer, clock: ManualClock) -> None:
    """HF's timer off and the safety net off: ! nothing puts it to sleep if crazy-gary stops."""
    await set_scaling(sim, "gpt-oss-20b", 0, 1, None)
    found = await run(settings_for(sim, hf_scale_to_zero="off"), clock)
    assert found["20b idle timer"].level == "warning"
    assert "nothing puts it to sleep if crazy-gary stops" in found["20b idle timer"].detail
    assert found["120b idle timer"].level == "ok"


async def test_no_idle_timer_is_fine_when_serve_sets_it(sim: SimulatorServer, clock: ManualClock) -> None:
    """HF's timer off under `auto`: ✓, serve sets it at start."""
    await set_scaling(sim, "gpt-oss-20b", 0, 1, None)
    check = (await run(settings_for(sim), clock))["20b idle timer"]
    assert check.level == "ok"
    assert "HF's idle timer is off" in check.detail
    assert "serve sets it to 25 min at start" in check.detail


async def test_min_replica_one_warns_of_idle_billing(sim: SimulatorServer, clock: ManualClock) -> None:
    """minReplica 1: ! HF bills it while idle; auto-sleep still can, and serve sets it to 0."""
    await set_scaling(sim, "gpt-oss-120b", 1, 1, None)
    check = (await run(settings_for(sim), clock))["120b replicas"]
    assert check.level == "warning"
    assert (
        "HF never scales it to zero and bills it while idle; crazy-gary's auto-sleep still can"
        in check.detail
    )
    assert check.fix == "serve sets minReplica to 0 at start (CRAZY_GARY_HF_SCALE_TO_ZERO=auto)"


async def test_running_but_loading_warns(sim: SimulatorServer, clock: ManualClock) -> None:
    """Running on HF but its health route answers 503 (model loading): a warning, not an error."""
    await sim_set(sim, "gpt-oss-20b", state="running", ready_delay=600)
    check = (await run(settings_for(sim), clock))["20b health"]
    assert check.level == "warning"
    assert "does not answer 200: the model may still be loading" in check.detail


async def test_price_of_the_toml_file_wins(sim: SimulatorServer, clock: ManualClock, tmp_path: Path) -> None:
    """price_per_hour in the file is the price, and says so."""
    config = tmp_path / "crazy-gary.toml"
    config.write_text('[endpoints.120b]\nurl = "demo/gpt-oss-120b"\nprice_per_hour = 3.25\n')
    check = (await run(settings_for(sim, config_file=config), clock))["120b price"]
    assert check.detail == "$3.25/h, from price_per_hour in CRAZY_GARY_CONFIG"


async def test_unmanaged_endpoint_health(sim: SimulatorServer, clock: ManualClock, tmp_path: Path) -> None:
    """An `inference_url` endpoint: ✓ when its /health answers 200, ✗ when nothing answers."""
    await sim_set(sim, "gpt-oss-20b", state="running")
    config = tmp_path / "crazy-gary.toml"
    config.write_text(
        f'[endpoints.local]\ninference_url = "{sim.url}/endpoints/gpt-oss-20b"\n'
        f'[endpoints.gone]\ninference_url = "http://127.0.0.1:{closed_port()}"\n'
    )
    found = await run(settings_for(sim, config_file=config), clock)
    assert found["local endpoint"].level == "ok"
    assert found["gone endpoint"].level == "error"
    assert "/health does not answer 200" in found["gone endpoint"].detail


async def test_unreachable_api_names_its_url(sim: SimulatorServer, clock: ManualClock) -> None:
    """No management API at the address: ✗ on the namespace with the URL."""
    url = f"http://127.0.0.1:{closed_port()}/v2"
    check = (await run(settings_for(sim, endpoints_api_url=url), clock))["namespace demo"]
    assert check.level == "error"
    assert url in check.detail
    assert "HF_ENDPOINTS_API_URL" in (check.fix or "")


async def test_redis_answers_or_not(sim: SimulatorServer, clock: ManualClock) -> None:
    """Redis set: ✓ when the machine's Redis answers PING, ✗ at a closed port without showing the password."""
    assert (await run(settings_for(sim, redis_url=REDIS), clock))["redis"].level == "ok"
    url = f"redis://:hunter2-secret@127.0.0.1:{closed_port()}/0"
    check = (await run(settings_for(sim, redis_url=url), clock))["redis"]
    assert check.level == "error"
    assert "does not answer PING" in check.detail
    assert "hunter2" not in json.dumps(check.to_dict())


async def test_store_checks(sim: SimulatorServer, clock: ManualClock, tmp_path: Path) -> None:
    """The SQLite default: ✓ when its folder can be made, ✗ under a file, ✗ for a file that is no database;
    PostgreSQL that does not answer: ✗ without its password."""
    assert (await run(settings_for(sim, data_dir=tmp_path / "new"), clock))["store"].level == "ok"
    (tmp_path / "file").write_text("")
    under_a_file = (await run(settings_for(sim, data_dir=tmp_path / "file" / "data"), clock))["store"]
    assert under_a_file.level == "error"
    (tmp_path / "crazy-gary.db").write_bytes(b"not a database at all" * 100)
    broken = (await run(settings_for(sim, data_dir=tmp_path), clock))["store"]
    assert broken.level == "error"
    assert "cannot be read" in broken.detail
    database = f"postgresql://gary:pg-secret@127.0.0.1:{closed_port()}/gary"
    postgres = (await run(settings_for(sim, database_url=database), clock))["store"]
    assert postgres.level == "error"
    assert postgres.detail.startswith("postgresql at 127.0.0.1:")
    assert "pg-secret" not in json.dumps(postgres.to_dict())


async def test_simulating_starts_the_simulator_and_says_so(clock: ManualClock) -> None:
    """Without a token, doctor runs the embedded simulator in process; its first line says so."""
    checks = await diagnose(load_settings(), clock=clock)
    assert checks[0].check == "hugging face"
    assert checks[0].detail.startswith("simulating: the embedded simulator at http://127.0.0.1:")
    assert by_name(checks)["namespace demo"].level == "ok"
    assert report(checks)["ok"] is True


def test_cli_json_shape() -> None:
    """`doctor --json`: {"ok", "checks": [{"check", "ok", "level", "detail", "fix"}]}, exit 0."""
    result = CliRunner().invoke(cli.app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert body["checks"]
    for check in body["checks"]:
        assert set(check) == {"check", "ok", "level", "detail", "fix"}
        assert check["level"] in ("ok", "warning", "error")
        assert check["ok"] is (check["level"] != "error")


def test_cli_lines_and_exit_status() -> None:
    """`doctor` prints one ✓/!/✗ line per check; the first says it simulates; bad settings exit 2."""
    result = CliRunner().invoke(cli.app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("✓ hugging face: simulating")
    assert all(line[:2] in ("✓ ", "! ", "✗ ") for line in lines)
    bad = CliRunner().invoke(cli.app, ["doctor"], env={"ENDPOINT_AUTO_SLEEP": "soon"})
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("error: ENDPOINT_AUTO_SLEEP")
    assert len(bad.stderr.strip().splitlines()) == 1
