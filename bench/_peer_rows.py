"""The peer gateways' rows of the table: each peer's figures, and the goals that compare crazy-gary's
figures of the same run with them. For a peer's rows the "through crazy-gary" column holds the figure
through that peer, the one the row names."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bench._load import LoadResult
from bench._measure import Sample
from bench._report import Report, Row, added_ms, mb, ms, per_second

__all__ = ["Ours", "PeerResult", "PeerSpec", "add_peer_rows", "figure", "ratio"]

MS = 1_000_000  # nanoseconds
THROUGHPUT_GOALS = {"LiteLLM": 30.0, "Portkey": 3.0}  # crazy-gary's req/s ≥ this many times the peer's
LATENCY_GOAL = 0.1  # crazy-gary's added p50 ≤ this fraction of Portkey's
X = "\N{MULTIPLICATION SIGN}"


class PlanLike(Protocol):
    @property
    def requests(self) -> int: ...
    @property
    def connections(self) -> int: ...
    @property
    def load_seconds(self) -> float: ...


@dataclass
class PeerSpec:
    """How to start one peer and how to ask it for the bench's chat completion."""

    name: str  # "LiteLLM 1.108.7"
    short: str  # "LiteLLM"
    health: str
    key: str
    argv: Callable[[int], list[str]]  # port → command line
    env: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PeerResult:
    spec: PeerSpec
    startup: list[float] = field(default_factory=list)
    latency: Sample | None = None
    load: LoadResult | None = None
    memory_kib: int | None = None

    @property
    def per_second(self) -> float | None:
        return self.load.per_second if self.load is not None else None

    @property
    def p50_ms(self) -> float | None:
        return self.latency.ms(0.5) if self.latency is not None else None

    @property
    def startup_s(self) -> float | None:
        return statistics.median(self.startup) if self.startup else None


@dataclass(frozen=True)
class Ours:
    """crazy-gary's figures of this run, as its rows show them (milliseconds, seconds)."""

    per_second: float | None
    direct_p50_ms: float | None
    added_p50_ms: float | None
    startup_s: float | None


def figure(text: str) -> float | None:
    """The number at the start of a table cell ('1,821 req/s', '+0.704 ms', '0.81 s'); None for '-'."""
    words = text.split()
    if not words:
        return None
    try:
        return float(words[0].replace(",", ""))
    except ValueError:
        return None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours ÷ theirs, or None when either is missing or theirs is not positive."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def _peer(results: list[PeerResult], short: str) -> PeerResult | None:
    return next((result for result in results if result.spec.short == short), None)


def _throughput(report: Report, plan: PlanLike, ours: Ours, results: list[PeerResult]) -> None:
    for result in results:
        row = report.add(
            Row(f"throughput, {plan.connections} connections, {plan.load_seconds:g} s: {result.spec.name}")
        )
        if result.per_second is not None:
            row.gateway = per_second(result.per_second)
    goal = report.add(
        Row("throughput: crazy-gary ÷ peer", target=f"crazy-gary ≥ 30{X} LiteLLM and ≥ 3{X} Portkey")
    )
    ratios = {}
    for short in THROUGHPUT_GOALS:
        peer = _peer(results, short)
        ratios[short] = ratio(ours.per_second, peer.per_second if peer else None)
    goal.gateway = ", ".join(
        f"{'-' if value is None else f'{value:.1f}{X}'} {short}" for short, value in ratios.items()
    )
    if all(value is not None for value in ratios.values()):
        goal.verdict = all((ratios[short] or 0.0) >= least for short, least in THROUGHPUT_GOALS.items())


def _latency(report: Report, plan: PlanLike, ours: Ours, results: list[PeerResult]) -> None:
    direct = ours.direct_p50_ms
    for result in results:
        row = report.add(Row(f"latency p50, {plan.requests} sequential: {result.spec.name}"))
        if direct is not None:
            row.direct = ms(direct * MS)
        if result.p50_ms is not None:
            row.gateway = ms(result.p50_ms * MS)
            if direct is not None:
                row.added = added_ms((result.p50_ms - direct) * MS)
    goal = report.add(
        Row(
            "added latency p50: crazy-gary ÷ Portkey",
            target=f"crazy-gary's added ≤ {LATENCY_GOAL:g}{X} Portkey's",
        )
    )
    portkey = _peer(results, "Portkey")
    if portkey is None or portkey.p50_ms is None or direct is None or ours.added_p50_ms is None:
        return
    theirs = portkey.p50_ms - direct
    share = ratio(ours.added_p50_ms, theirs)
    if share is not None:
        goal.gateway = f"{share:.3f}{X} (+{ours.added_p50_ms:.3f} vs +{theirs:.3f} ms)"
        goal.verdict = share <= LATENCY_GOAL


def _startup(report: Report, ours: Ours, results: list[PeerResult]) -> None:
    for result in results:
        row = report.add(Row(f"start-up: spawn → {result.spec.health} 200: {result.spec.name}"))
        if result.startup_s is not None:
            row.gateway = f"{result.startup_s:.2f} s"
        if len(result.startup) > 1:
            runs = ", ".join(f"{value:.2f} s" for value in result.startup)
            report.note(f"start-up runs of {result.spec.name}: {runs} (median shown)")
    goal = report.add(Row("start-up: crazy-gary vs Portkey", target="crazy-gary no slower than Portkey"))
    portkey = _peer(results, "Portkey")
    if portkey is not None and portkey.startup_s is not None and ours.startup_s is not None:
        goal.gateway = f"{ours.startup_s:.2f} s vs {portkey.startup_s:.2f} s"
        goal.verdict = ours.startup_s <= portkey.startup_s


def _memory(report: Report, results: list[PeerResult]) -> None:
    for result in results:
        row = report.add(Row(f"peak memory (VmHWM) after its load: {result.spec.name}"))
        if result.memory_kib is not None:
            row.gateway = mb(result.memory_kib)


def add_peer_rows(report: Report, plan: PlanLike, ours: Ours, results: list[PeerResult]) -> None:
    """Throughput, added latency, start-up and memory of each peer, each with its goal row."""
    _throughput(report, plan, ours, results)
    _latency(report, plan, ours, results)
    _startup(report, ours, results)
    _memory(report, results)
