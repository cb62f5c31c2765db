"""The peer gateways' pure parts: their configuration, the requests sent to them, the forwarding check,
the process tree, and the goal rows. Nothing here installs or starts a peer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from bench._http import BenchError, _parse_head, build_request
from bench._load import LoadResult, _lua_script
from bench._measure import Sample
from bench._peer_install import MARKER, PORTKEY_VERSION, ensure_litellm, portkey_package_json
from bench._peer_rows import Ours, PeerResult, PeerSpec, add_peer_rows, figure, ratio
from bench._peers import forwarded, litellm_config, measure_peers, portkey_headers, tree_pids, with_headers
from bench._report import Report
from bench.backend import COMPLETION


def test_the_litellm_config_names_one_model_at_the_backend() -> None:
    config = yaml.safe_load(litellm_config(4321, master_key="sk-test"))
    (model,) = config["model_list"]
    assert model["model_name"] == "fast"
    assert model["litellm_params"]["model"] == "openai/fast"
    assert model["litellm_params"]["api_base"] == "http://127.0.0.1:4321/v1"
    assert config["general_settings"]["master_key"] == "sk-test"
    assert "database_url" not in config["general_settings"]


def test_the_portkey_folder_pins_the_gateway_exactly() -> None:
    manifest = json.loads(portkey_package_json())
    assert manifest["dependencies"] == {"@portkey-ai/gateway": PORTKEY_VERSION}
    assert PORTKEY_VERSION[0].isdigit()  # not a range such as ^1.15


def test_headers_are_added_to_the_head_and_the_body_is_kept() -> None:
    body = b'{"model":"fast"}'
    request = with_headers(
        build_request("POST", "127.0.0.1", 80, "/v1/chat/completions", body, "k"), portkey_headers(9)
    )
    head, _, rest = request.partition(b"\r\n\r\n")
    _, headers = _parse_head(head.replace(b"POST /v1/chat/completions", b"HTTP/1.1 200", 1))
    assert headers["x-portkey-provider"] == "openai"
    assert headers["x-portkey-custom-host"] == "http://127.0.0.1:9/v1"
    assert headers["content-length"] == str(len(body))
    assert rest == body


def test_wrk_sends_the_same_extra_headers() -> None:
    script = _lua_script(b"{}", "k", {"x-portkey-provider": "openai"})
    assert 'wrk.headers["x-portkey-provider"] = "openai"' in script
    with pytest.raises(BenchError):
        _lua_script(b"{}", "k", {"x-bad": 'a"b'})


def test_only_the_backends_completion_counts_as_forwarded() -> None:
    backend = json.dumps(COMPLETION).encode()
    assert forwarded(200, backend)
    relabelled = {
        **COMPLETION,
        "model": "fast",
        "choices": [{"message": {"content": "Hello from the bench backend."}}],
    }
    assert forwarded(200, json.dumps(relabelled).encode())  # a gateway may rewrite the rest
    assert not forwarded(502, backend)
    assert not forwarded(200, b'{"object": "chat.completion", "choices": []}')
    assert not forwarded(200, b"AI Gateway says hey!")


def test_the_process_tree_takes_descendants_only() -> None:
    parents = {10: 1, 11: 10, 12: 11, 20: 1, 21: 20}
    assert sorted(tree_pids(10, parents)) == [10, 11, 12]
    assert tree_pids(99, parents) == [99]


def test_figures_are_read_back_from_cells() -> None:
    assert figure("1,821 req/s") == 1821.0
    assert figure("+0.704 ms") == 0.704
    assert figure("0.81 s") == 0.81
    assert figure("-") is None
    assert figure("") is None
    assert ratio(10.0, 0.0) is None
    assert ratio(None, 1.0) is None


@dataclass(frozen=True)
class _Plan:
    requests: int = 500
    connections: int = 32
    load_seconds: float = 15.0


def _result(short: str, per_second: float, p50_ms: float, startup: float) -> PeerResult:
    spec = PeerSpec(f"{short} 1.0", short, "/", "", lambda port: [], {})
    load = LoadResult(tool="wrk", requests=int(per_second * 10), seconds=10.0)
    return PeerResult(spec, [startup], Sample(values=[int(p50_ms * 1e6)]), load, 100_000)


def _goals(report: Report) -> dict[str, bool | None]:
    return {row.measure: row.verdict for row in report.rows if row.target}


def test_goal_rows_compare_this_runs_figures() -> None:
    report = Report()
    ours = Ours(per_second=1500.0, direct_p50_ms=0.05, added_p50_ms=0.7, startup_s=0.8)
    results = [_result("LiteLLM", 40.0, 25.05, 20.0), _result("Portkey", 450.0, 8.05, 0.9)]
    add_peer_rows(report, _Plan(), ours, results)
    goals = _goals(report)
    assert goals["throughput: crazy-gary ÷ peer"] is True  # 37.5 and 3.3 times
    assert goals["added latency p50: crazy-gary ÷ Portkey"] is True  # 0.7 / 8.0
    assert goals["start-up: crazy-gary vs Portkey"] is True
    rows = {row.measure: row for row in report.rows}
    assert rows["latency p50, 500 sequential: Portkey 1.0"].added == "+8.000 ms"
    assert rows["peak memory (VmHWM) after its load: LiteLLM 1.0"].gateway == "102.4 MB"


def test_goal_rows_fail_or_stay_open() -> None:
    report = Report()
    ours = Ours(per_second=1000.0, direct_p50_ms=0.05, added_p50_ms=1.0, startup_s=1.0)
    add_peer_rows(
        report, _Plan(), ours, [_result("LiteLLM", 40.0, 25.0, 20.0), _result("Portkey", 450.0, 8.05, 0.9)]
    )
    assert _goals(report) == {
        "throughput: crazy-gary ÷ peer": False,  # 2.2 times Portkey
        "added latency p50: crazy-gary ÷ Portkey": False,  # 0.125 of it
        "start-up: crazy-gary vs Portkey": False,
    }
    missing = Report()
    add_peer_rows(missing, _Plan(), ours, [_result("LiteLLM", 40.0, 25.0, 20.0)])
    assert set(_goals(missing).values()) == {None}  # no Portkey figure: not judged


@dataclass
class _Context:
    report: Report
    peers: bool = False


def test_no_peers_adds_a_note_and_installs_nothing() -> None:
    report = Report()
    measure_peers(_Context(report))  # type: ignore[arg-type]
    assert report.rows == []
    assert report.notes == ["--no-peers or --direct-only: LiteLLM and Portkey were not measured"]


def test_a_marked_install_is_reused(tmp_path: Path) -> None:
    from bench._peer_install import LITELLM_SPEC

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "litellm").write_text("")
    (tmp_path / MARKER).write_text(LITELLM_SPEC + "\n")
    assert ensure_litellm(tmp_path) == tmp_path / "bin" / "litellm"
    (tmp_path / MARKER).write_text("litellm[proxy]==0.0.1\n")  # another version: not reused, and a
    with pytest.raises(BenchError, match="not under"):  # folder outside .bench/peers is never cleared
        ensure_litellm(tmp_path)


@dataclass
class _RunContext:
    report: Report
    plan: _Plan
    peers: bool = True


def test_a_peer_that_cannot_be_installed_leaves_a_note_and_empty_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise BenchError("no registry")

    monkeypatch.setattr("bench._peers.ensure_litellm", refuse)
    monkeypatch.setattr("bench._peers.ensure_portkey", refuse)
    report = Report()
    measure_peers(_RunContext(report, _Plan()))  # type: ignore[arg-type]
    assert "LiteLLM install: not measured: no registry" in report.notes
    assert "Portkey install: not measured: no registry" in report.notes
    assert {row.gateway for row in report.rows if not row.target} == {"-"}
    assert set(_goals(report).values()) == {None}
