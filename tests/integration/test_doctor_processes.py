"""`crazy-gary doctor` as a user runs it, against `crazy-gary simulate` running as a separate process."""

from __future__ import annotations

import json

from .conftest import Process, base_env, crazy_gary, sim_set


def doctor_env(simulator: Process, **extra: str) -> dict[str, str]:
    values = {
        "HUGGINGFACE_API_KEY": "hf_simulator",
        "HF_ENDPOINTS_API_URL": f"{simulator.url}/v2",
        "HF_BASE_URL_120B": "demo/gpt-oss-120b",
        "HF_BASE_URL_20B": "demo/gpt-oss-20b",
    }
    return base_env(**{**values, **extra})


def test_doctor_against_the_simulator_process(simulator: Process) -> None:
    """All good: exit 0 with ✓ lines; a failed endpoint: exit 1, ✗ with HF's message; --json agrees."""
    good = crazy_gary("doctor", env=doctor_env(simulator, ENDPOINT_AUTO_SLEEP="600"))
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert lines[0].startswith(f"✓ hugging face: management API {simulator.url}/v2")
    assert "✓ namespace demo: the token may list its endpoints (3 endpoints)" in lines
    assert all(line.startswith("✓ ") for line in lines), good.stdout
    sim_set(simulator, "endpoints/gpt-oss-120b", state="failed")
    broken = crazy_gary("doctor", "--json", env=doctor_env(simulator))
    assert broken.returncode == 1, broken.stderr
    body = json.loads(broken.stdout)
    assert body["ok"] is False
    failed = [check for check in body["checks"] if check["level"] == "error"]
    assert [check["check"] for check in failed] == ["120b endpoint"]
    assert "Endpoint failed to deploy" in failed[0]["detail"]
    assert "Traceback" not in broken.stderr


def test_doctor_with_a_wrong_token_exits_1(simulator: Process) -> None:
    """A token the simulator refuses: exit 1, the ✗ line names the namespace, the token and billing."""
    result = crazy_gary("doctor", env=doctor_env(simulator, HUGGINGFACE_API_KEY="hf_wrong_token_x"))
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("✗ namespace demo"))
    assert "HUGGINGFACE_API_KEY" in line
    assert "billing" in line
    assert "hf_wrong_token_x" not in result.stdout + result.stderr
