"""`serve` replicas on one PostgreSQL and a Redis of the test's own, stopped and started again."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import httpx2
import pytest
import redis

from ._replicas import replicas
from .conftest import VIEWER_KEY, Process, api, free_port, wait_until
from .test_postgresql import database  # noqa: F401 - the fixture: a PostgreSQL database of the test's own


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, Process]]:
    """A Redis server of the test's own (so it can be stopped), on a free port."""
    assert shutil.which("redis-server"), "redis-server is installed (.ci/run relies on it too)"
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: _answers(url))
    holder = Process(server, url)
    yield url, holder
    holder.popen.kill()
    holder.popen.wait()


def _restart(url: str, holder: Process) -> None:
    port = url.rsplit(":", 1)[1].split("/")[0]
    argv = ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    holder.popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    wait_until(lambda: _answers(url))


def test_replicas_keep_answering_when_redis_stops(
    simulator: Process,
    database: str,  # noqa: F811
    own_redis: tuple[str, Process],
) -> None:
    """Redis stopped: every replica still answers, reports itself degraded on /readyz and in its
    metrics, and rate-limits on its own; Redis back: they are ready again and share counters."""
    url, holder = own_redis
    first, second = replicas(
        simulator,
        2,
        CRAZY_GARY_DATABASE_URL=database,
        CRAZY_GARY_REDIS_URL=url,
        CRAZY_GARY_MANAGEMENT_RATE_LIMIT="100/minute",
    )
    try:
        holder.popen.kill()
        holder.popen.wait()
        for replica in (first, second):
            assert api(replica, "GET", "/api/endpoints/status", key=VIEWER_KEY).status_code == 200
            assert api(replica, "POST", "/api/endpoints/wake/20b").status_code in (200, 202)

            def degraded(replica: Process = replica) -> bool:
                body = httpx2.get(replica.url + "/readyz", timeout=5).json()
                return body["status"] == "degraded" and body["redis"] == "unreachable"

            wait_until(degraded)
            metrics = api(replica, "GET", "/metrics", key=VIEWER_KEY).text
            assert "crazy_gary_degraded 1.0" in metrics
        _restart(url, holder)
        for replica in (first, second):
            wait_until(lambda replica=replica: api(replica, "GET", "/readyz").json()["status"] == "ready")
            assert "crazy_gary_degraded 0.0" in api(replica, "GET", "/metrics", key=VIEWER_KEY).text
        remaining = [
            api(replica, "POST", "/api/endpoints/wake/20b").headers["X-RateLimit-Remaining"]
            for replica in (first, second)
        ]
        assert remaining == ["99", "98"]  # one budget again, counted from Redis's fresh window
    finally:
        first.stop()
        second.stop()
