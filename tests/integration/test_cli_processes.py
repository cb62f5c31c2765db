"""The CLI as a user runs it, against `serve` and `simulate` running as separate processes."""

from __future__ import annotations

import json
import re
import subprocess
import threading

import httpx2

from .conftest import (
    BIN,
    OPERATOR_KEY,
    VIEWER_KEY,
    Process,
    api,
    base_env,
    crazy_gary,
    free_port,
    wait_until,
)


def cli_env(server: Process, key: str = OPERATOR_KEY) -> dict[str, str]:
    return base_env(CRAZY_GARY_URL=server.url, CRAZY_GARY_KEY=key)


def test_status_table_and_json(server: Process) -> None:
    """`status` prints a table of both endpoints; `status --json` prints the endpoints object."""
    table = crazy_gary("status", env=cli_env(server, VIEWER_KEY))
    assert table.returncode == 0, table.stderr
    assert "120b" in table.stdout
    assert "sleeping" in table.stdout
    as_json = crazy_gary("status", "--json", env=cli_env(server, VIEWER_KEY))
    endpoints = json.loads(as_json.stdout)
    assert set(endpoints) == {"120b", "20b"}
    assert endpoints["20b"]["status"] == "sleeping"


def test_wake_wait_then_sleep(server: Process) -> None:
    """`wake 20b --wait` returns once it runs; `sleep 20b` puts it to sleep."""
    woken = crazy_gary("wake", "20b", "--wait", env=cli_env(server))
    assert woken.returncode == 0, woken.stderr
    assert "running" in woken.stdout
    slept = crazy_gary("sleep", "20b", "--key", OPERATOR_KEY, "--server", server.url, env=base_env())
    assert slept.returncode == 0, slept.stderr
    assert re.search(r"stopping|sleeping", slept.stdout)


def test_wake_all(server: Process) -> None:
    """`wake --all` starts every endpoint."""
    result = crazy_gary("wake", "--all", env=cli_env(server))
    assert result.returncode == 0, result.stderr
    assert "120b" in result.stdout
    assert "starting" in result.stdout


def test_bad_key_and_low_role_are_one_line(server: Process) -> None:
    """A wrong key or a too-low role is one line on stderr, exit 1, no traceback."""
    wrong = crazy_gary("status", env=cli_env(server, "not-a-key-at-all"))
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error:")
    assert "Traceback" not in wrong.stderr + wrong.stdout
    low = crazy_gary("wake", "120b", env=cli_env(server, VIEWER_KEY))
    assert low.returncode == 1
    assert "operator" in low.stderr


def test_unknown_endpoint(server: Process) -> None:
    """Waking an unknown endpoint is one line naming it, exit 1."""
    result = crazy_gary("wake", "gpt-5", env=cli_env(server))
    assert result.returncode == 1
    assert "gpt-5" in result.stderr


def test_unreachable_server() -> None:
    """No server at the address: one clear line and a non-zero exit."""
    result = crazy_gary("status", "--server", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach crazy-gary" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_settings_stop_serve_with_exit_2() -> None:
    """A bad variable stops `serve` with one line naming it, exit status 2, no traceback."""
    result = crazy_gary("serve", "--port", str(free_port()), env=base_env(ENDPOINT_AUTO_SLEEP="soon"))
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1
    assert "ENDPOINT_AUTO_SLEEP" in lines[0]
    bad_url = crazy_gary("serve", env=base_env(HF_BASE_URL_120B="https://example.com/x"))
    assert bad_url.returncode == 2
    assert "{namespace}/{name}" in bad_url.stderr


def test_serve_simulating_prints_the_token_address(tmp_path: object) -> None:
    """Without a token or keys, `serve` simulates, prints /?token=… and that key works."""
    port = free_port()
    env = base_env(CRAZY_GARY_SIM_COLD_START="1")
    popen = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert popen.stdout is not None
        line = ""
        while "?token=" not in line:
            line = popen.stdout.readline()
            assert line, "serve exited without printing the address"
        match = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        assert match, line
        url, token = match.groups()
        assert url == f"http://127.0.0.1:{port}/"
        wait_until(lambda: httpx2.get(url + "readyz").status_code == 200)
        status = httpx2.get(url + "api/endpoints/status", headers={"Authorization": f"Bearer {token}"})
        assert status.json()["endpoints"]["120b"]["status"] == "sleeping"
        woken = httpx2.post(
            url + "api/endpoints/wake/20b?wait=true", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert woken.json()["status"] == "running"
        assert httpx2.get(url + "api/endpoints/status").status_code == 401
    finally:
        popen.terminate()
        popen.wait(10)


def test_watch_follows_the_server_live(server: Process) -> None:
    """`watch`, piped, against `serve`: its table shows 20b go starting → running → sleeping as it
    happens (from the event stream, no polling), says when the server is gone, and runs until stopped."""
    watch = subprocess.Popen(
        [str(BIN), "watch"],
        env=cli_env(server, VIEWER_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watch.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def states_of_20b() -> list[str]:
        found = [re.match(r"\s*20b\s+(\w+)", line) for line in list(lines)]
        states = [match.group(1) for match in found if match]
        return [state for index, state in enumerate(states) if index == 0 or states[index - 1] != state]

    try:
        wait_until(lambda: states_of_20b() == ["sleeping"])
        assert api(server, "POST", "/api/endpoints/wake/20b").status_code == 202
        wait_until(lambda: states_of_20b()[-1:] == ["running"], timeout=30)
        assert states_of_20b() == ["sleeping", "starting", "running"]
        assert api(server, "POST", "/api/endpoints/sleep/20b").status_code == 202
        wait_until(lambda: states_of_20b()[-1:] == ["sleeping"], timeout=30)
        server.stop()
        assert server.popen.returncode == 0, "serve stopped by itself, not killed, with a watcher connected"
        wait_until(lambda: any("lost the connection" in line for line in list(lines)))
        assert watch.poll() is None, "watch keeps trying to reconnect"
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    assert "Traceback" not in watch.stderr.read()  # type: ignore[union-attr]
