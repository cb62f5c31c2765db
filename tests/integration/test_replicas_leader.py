"""`serve` replicas on one PostgreSQL and one Redis: one leader puts endpoints to sleep and reads HF."""

from __future__ import annotations

import time

from ._replicas import _chat, on_redis, replicas
from .conftest import VIEWER_KEY, Process, api, sim_calls, sim_set, status_of, wait_until
from .test_postgresql import database  # noqa: F401 - the fixture: a PostgreSQL database of the test's own


def _leads(replica: Process) -> bool:
    return "crazy_gary_leader 1.0" in api(replica, "GET", "/metrics", key=VIEWER_KEY).text


def test_one_activity_clock_and_one_auto_sleep(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """A request through one replica shows as the same last activity on the other; one replica leads;
    the idle endpoint is put to sleep once, by the leader, not once per replica."""
    first, second = replicas(simulator, 2, **on_redis(database, prefix, ENDPOINT_AUTO_SLEEP="4"))
    try:
        assert sorted([_leads(first), _leads(second)]) == [False, True]
        sim_set(simulator, "endpoints/gpt-oss-20b", state="running")
        for replica in (first, second):
            wait_until(lambda replica=replica: status_of(replica, "20b")["status"] == "running")
        before = sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"]
        _chat(first)

        def same_activity() -> bool:
            here, there = status_of(first, "20b")["last_activity"], status_of(second, "20b")["last_activity"]
            return here is not None and here == there

        wait_until(same_activity)
        for replica in (first, second):
            wait_until(lambda replica=replica: status_of(replica, "20b")["status"] == "sleeping", timeout=20)
        assert sim_calls(simulator)["gpt-oss-20b"]["scale-to-zero"] - before == 1
        sleeps = api(second, "GET", "/api/endpoints/audit?operation=sleep", key=VIEWER_KEY).json()["entries"]
        assert [(entry["actor"], entry["model_type"]) for entry in sleeps] == [("auto-sleep", "20b")]
    finally:
        first.stop()
        second.stop()


def test_a_dead_leader_hands_auto_sleep_to_another_replica(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """The leader killed (no goodbye): within seconds another replica takes the lease and puts the
    idle endpoint to sleep."""
    replicas_ = replicas(simulator, 3, **on_redis(database, prefix, ENDPOINT_AUTO_SLEEP="3"))
    try:
        leader = next(replica for replica in replicas_ if _leads(replica))
        survivors = [replica for replica in replicas_ if replica is not leader]
        leader.popen.kill()
        leader.popen.wait()
        sim_set(simulator, "endpoints/gpt-oss-20b", state="running")
        wait_until(lambda: any(_leads(replica) for replica in survivors), timeout=15)
        wait_until(lambda: status_of(survivors[0], "20b")["status"] == "sleeping", timeout=20)
        assert sorted(_leads(replica) for replica in survivors) == [False, True]
    finally:
        for replica in replicas_:
            replica.stop()


def test_one_replica_reads_hugging_face_for_all_while_nothing_moves(
    simulator: Process,
    database: str,  # noqa: F811
    prefix: str,
) -> None:
    """Three idle replicas list the namespace about as often as one would; a state changed at HF
    shows on all three; with the leader killed, the survivors still follow HF."""
    replicas_ = replicas(simulator, 3, **on_redis(database, prefix))  # a slow interval of 1 s
    try:
        wait_until(lambda: sum(_leads(replica) for replica in replicas_) == 1)
        # a rate, measured so that a slow machine cannot fail it: the time five more listings take;
        # one reader at the slow interval of 1 s takes about 4 s, three reading for themselves under 2 s
        before, counting = sim_calls(simulator)["_list"], time.monotonic()
        wait_until(lambda: sim_calls(simulator)["_list"] - before >= 5, timeout=20)
        assert time.monotonic() - counting >= 2.5
        sim_set(simulator, "endpoints/gpt-oss-120b", state="paused")
        for replica in replicas_:
            wait_until(lambda replica=replica: status_of(replica, "120b")["hf_state"] == "paused")
        leader = next(replica for replica in replicas_ if _leads(replica))
        leader.popen.kill()
        leader.popen.wait()
        sim_set(simulator, "endpoints/gpt-oss-120b", state="running")
        for replica in replicas_:
            if replica is not leader:
                wait_until(
                    lambda replica=replica: status_of(replica, "120b")["status"] == "running", timeout=20
                )
    finally:
        for replica in replicas_:
            replica.stop()
