"""`serve` and `simulate`: settings passed through, and a port in use or a bad config as one line."""

from __future__ import annotations

from typing import Any

import pytest

from crazy_gary.errors import ConfigError

from ._fake import (
    run,
)


def test_serve_loads_settings_and_runs_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` passes --simulate through to the settings and host/port to the server."""
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        "crazy_gary.config.load_settings", lambda *, simulate: calls.append(("load", simulate)) or "S"
    )
    monkeypatch.setattr(
        "crazy_gary.web.server.run_server", lambda s, *, host, port: calls.append(("run", (s, host, port)))
    )
    assert run("serve", "--port", "9000").exit_code == 0
    assert run("serve", "--simulate", "--host", "0.0.0.0").exit_code == 0
    assert run("serve", "--no-simulate").exit_code == 0
    assert calls == [
        ("load", None),
        ("run", ("S", "127.0.0.1", 9000)),
        ("load", True),
        ("run", ("S", "0.0.0.0", 8000)),
        ("load", False),
        ("run", ("S", "127.0.0.1", 8000)),
    ]


def test_serve_config_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConfigError stops `serve` with its sentence on stderr and exit 2."""

    def refuse(*, simulate: bool | None) -> None:
        raise ConfigError("HUGGINGFACE_API_KEY: required unless simulating")

    monkeypatch.setattr("crazy_gary.config.load_settings", refuse)
    result = run("serve")
    assert result.exit_code == 2
    assert result.stderr == "error: HUGGINGFACE_API_KEY: required unless simulating\n"


def test_simulate_loads_its_config_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`simulate --token T --port P` hands T to the config and the config, host and port to the simulator."""
    calls: list[Any] = []
    monkeypatch.setattr("crazy_gary.config.load_simulator_config", lambda *, token: f"config:{token}")
    monkeypatch.setattr(
        "crazy_gary.simulator.run_simulator", lambda c, *, host, port: calls.append((c, host, port))
    )
    assert run("simulate", "--token", "hf_x", "--port", "8011").exit_code == 0
    assert run("simulate").exit_code == 0
    assert calls == [("config:hf_x", "127.0.0.1", 8011), ("config:None", "127.0.0.1", 8010)]


def test_simulate_port_in_use_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that cannot be bound ends `simulate` with one line and exit 1, not a traceback."""

    def taken(config: object, *, host: str, port: int) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr("crazy_gary.config.load_simulator_config", lambda *, token: "config")
    monkeypatch.setattr("crazy_gary.simulator.run_simulator", taken)
    result = run("simulate", "--port", "8010")
    assert result.exit_code == 1
    assert result.stderr == "error: cannot listen on 127.0.0.1:8010: Address already in use\n"


def test_serve_loads_the_server_with_the_collector_off_and_turns_it_back_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Start-up runs without the cyclic collector; whatever way `serve` ends, it is on again."""
    import gc

    seen: list[bool] = []
    monkeypatch.setattr("crazy_gary.config.load_settings", lambda *, simulate: seen.append(gc.isenabled()))
    monkeypatch.setattr(
        "crazy_gary.web.server.run_server", lambda s, *, host, port: seen.append(gc.isenabled())
    )
    assert run("serve").exit_code == 0
    assert seen == [False, False] and gc.isenabled()

    def refuse(*, simulate: bool | None) -> None:
        raise ConfigError("HUGGINGFACE_API_KEY: required unless simulating")

    monkeypatch.setattr("crazy_gary.config.load_settings", refuse)
    assert run("serve").exit_code == 2
    assert gc.isenabled()
