"""`crazy-gary replay --from-store DAYS`: the requests a real SQLite store holds, replayed as a trace
with the endpoints' last measured cold start; its errors as one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crazy_gary.core.ports import PersistedEndpoint
from crazy_gary.store import SqlStore, database_url
from crazy_gary.store.base import RequestRecord

DAY = 86_400.0


async def _fill(data: Path, records: list[RequestRecord], cold_start: float | None) -> None:
    store = SqlStore(database_url(None, data))
    await store.open()
    try:
        await store.add_requests(records)
        if cold_start is not None:
            await store.save_endpoints({"120b": PersistedEndpoint(cold_start=cold_start)})
    finally:
        await store.close()


def _replay(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CRAZY_GARY_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "crazy_gary.cli", "replay", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_last_days_of_the_store_are_replayed_with_the_measured_cold_start(tmp_path: Path) -> None:
    """Requests of the last two days are replayed (older ones are not), and the cold start is the one
    measured last (120 s): the first request of each quiet spell waits that long under idle:5m."""
    (tmp_path / "data").mkdir()
    now = time.time()
    hours_ago = [30, 20, 10, 2]  # each hour apart from the next: idle:5m sleeps in between
    records = [RequestRecord(now - h * 3600, "120b", 10, 20) for h in hours_ago]
    records.append(RequestRecord(now - 5 * DAY, "120b"))  # outside the two days
    asyncio.run(_fill(tmp_path / "data", records, cold_start=120.0))
    done = _replay(tmp_path, "--from-store", "2", "--policy", "idle:5m", "--policy", "oracle", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)["policies"]
    assert figures["idle:5m"]["requests"] == 4
    assert figures["idle:5m"]["cold_hits"] == 4
    assert figures["idle:5m"]["added_wait_max"] == pytest.approx(120, abs=15)
    assert figures["oracle"]["cold_hits"] == 0
    table = _replay(tmp_path, "--from-store", "2", "--policy", "idle:5m")
    assert table.returncode == 0 and table.stdout.splitlines()[0] == "4 requests"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from-store", "7"), "error: --from-store: no store at "),
        (("trace.csv", "--from-store", "7"), "error: give a TRACE file or --from-store DAYS, not both"),
        ((), "error: give a TRACE file or --from-store DAYS, not both"),
        (("--from-store", "0"), "error: --from-store: DAYS must be more than 0"),
    ],
)
def test_what_cannot_be_replayed_is_one_line(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    done = _replay(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(says) and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_store_without_requests_in_the_period_says_so(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    asyncio.run(_fill(tmp_path / "data", [RequestRecord(time.time() - 30 * DAY, "120b")], cold_start=None))
    done = _replay(tmp_path, "--from-store", "7")
    assert done.returncode == 2
    assert done.stderr == "error: --from-store: the store holds no request of the last 7 days\n"
