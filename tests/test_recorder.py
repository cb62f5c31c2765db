"""The Recorder against a real SQLite store, on the manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from crazy_gary.clock import ManualClock
from crazy_gary.core.adaptive import AdaptiveSettings
from crazy_gary.core.events import ManagerEvent
from crazy_gary.core.manager import HuggingFaceEndpointManager
from crazy_gary.core.ports import PersistedEndpoint
from crazy_gary.core.supervisor import BackgroundFailure
from crazy_gary.recorder import Recorder
from crazy_gary.store import SqlStore, database_url
from crazy_gary.store.base import AuditEntry, AuditQuery, RequestRecord

from .core._specs import SPECS
from .core.fakes import FakeManagement


class HeldWrites:
    """The real store, except that writing audit entries waits until the test lets it go on."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.writing = asyncio.Event()
        self.go_on = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            self.writing.set()
            await self.go_on.wait()
        await self._store.add_audit(entries)


async def test_a_write_under_way_at_shutdown_is_finished_not_lost(tmp_path: Path) -> None:
    """Closing while the background task writes an operation's audit entry lets that write finish:
    the entry is in the store afterwards (it was lost when the write was cancelled)."""
    clock = ManualClock()
    store = SqlStore(database_url(None, tmp_path))
    await store.open()
    held = HeldWrites(store)
    manager = HuggingFaceEndpointManager(SPECS, FakeManagement(clock, {}), clock)
    recorder = Recorder(held, manager, clock)  # type: ignore[arg-type]  # the store, with held writes
    try:
        await recorder.start()
        recorder.on_event(ManagerEvent("operation_done", "20b", operation="wake", actor="ops", success=True))
        await asyncio.wait_for(held.writing.wait(), timeout=5)
        closing = asyncio.create_task(recorder.close())
        await clock.settle()  # close() has stopped the background task while its write waits
        held.go_on.set()
        await closing
        entries = await store.audit(AuditQuery())
        assert [(e.actor, e.operation, e.model_type, e.success) for e in entries] == [
            ("ops", "wake", "20b", True)
        ]
    finally:
        await store.close()


class FailsOnce:
    """The real store, except that the first write of audit entries raises an unexpected error."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.failed = asyncio.Event()
        self.written = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries and not self.failed.is_set():
            self.failed.set()
            raise RuntimeError("not a StoreError")
        await self._store.add_audit(entries)
        if entries:
            self.written.set()


async def test_the_writer_outlives_an_unexpected_error(tmp_path: Path) -> None:
    """A write failing with an unexpected error is reported as `recorder`, and the entries it had
    taken are written on the next try, after the backoff."""
    clock = ManualClock()
    store = SqlStore(database_url(None, tmp_path))
    await store.open()
    manager = HuggingFaceEndpointManager(SPECS, FakeManagement(clock, {}), clock)
    failing = FailsOnce(store)
    recorder = Recorder(failing, manager, clock)  # type: ignore[arg-type]  # the store, failing once
    failures: list[BackgroundFailure] = []
    try:
        await recorder.start(failures.append)
        recorder.on_event(ManagerEvent("operation_done", "20b", operation="wake", actor="ops", success=True))
        await asyncio.wait_for(failing.failed.wait(), timeout=5)
        await clock.settle()
        assert [(f.task, f.retry_in) for f in failures] == [("recorder", 1.0)]
        await clock.advance(2)  # the backoff, then the flush interval
        await asyncio.wait_for(failing.written.wait(), timeout=5)
        entries = await store.audit(AuditQuery())
        assert [(e.actor, e.operation) for e in entries] == [("ops", "wake")]
    finally:
        await recorder.close()
        await store.close()


async def test_an_operation_accepted_and_ended_within_one_write_is_one_entry(tmp_path: Path) -> None:
    """A wake accepted and ended before the writer ran is one entry with the outcome and the details
    of its end; `configure`, which is never accepted first, is written when it ends."""
    clock = ManualClock()
    store = SqlStore(database_url(None, tmp_path))
    await store.open()
    manager = HuggingFaceEndpointManager(SPECS, FakeManagement(clock, {}), clock)
    recorder = Recorder(store, manager, clock)
    try:
        await recorder.start()
        recorder.on_event(ManagerEvent("operation", "20b", operation="wake", actor="ops", request_id="r1"))
        done = ManagerEvent(
            "operation_done",
            "20b",
            operation="wake",
            actor="ops",
            success=True,
            request_id="r1",
            details={"sent": ["resume"]},
        )
        recorder.on_event(done)
        configure = {"min_replica": [1, 0]}
        recorder.on_event(
            ManagerEvent(
                "operation_done", "20b", operation="configure", actor="crazy-gary", details=configure
            )
        )
        log = await recorder.audit(AuditQuery())
        assert [(e.operation, e.success, e.details, e.request_id) for e in log] == [
            ("configure", False, configure, None),
            ("wake", True, {"sent": ["resume"]}, "r1"),
        ]
    finally:
        await recorder.close()
        await store.close()


async def test_an_operation_that_never_ends_stays_in_the_log_as_running(tmp_path: Path) -> None:
    """An accepted wake is written with `success` None, and stays so in the store when its process
    stops before the wake ends."""
    clock = ManualClock()
    url = database_url(None, tmp_path)
    store = SqlStore(url)
    await store.open()
    manager = HuggingFaceEndpointManager(SPECS, FakeManagement(clock, {}), clock)
    recorder = Recorder(store, manager, clock)
    await recorder.start()
    recorder.on_event(ManagerEvent("operation", "20b", operation="wake", actor="ops"))
    await recorder.close()  # before the wake ends, as when its process dies
    await store.close()
    again = SqlStore(url)
    await again.open()
    try:
        log = await again.audit(AuditQuery())
        assert [(e.operation, e.actor, e.success) for e in log] == [("wake", "ops", None)]
    finally:
        await again.close()


async def test_adaptive_auto_sleep_learns_at_start_from_the_stored_requests(tmp_path: Path) -> None:
    """Four nights of a batch at 02:00 in the store: a manager started on Thursday afternoon has
    learnt its idle times and plans a wake ahead of Friday's batch before any request arrives."""
    monday = 1_793_577_600.0  # 2026-11-02 00:00 UTC
    store = SqlStore(database_url(None, tmp_path))
    await store.open()
    batches = [
        RequestRecord(monday + day * 86400 + 2 * 3600 + 3 * index, "120b")
        for day in range(4)
        for index in range(100)
    ]
    await store.add_requests([RequestRecord(monday - 3600, "120b"), *batches])
    clock = ManualClock(start=monday + 3 * 86400 + 15 * 3600)
    specs = [replace(s, adaptive=AdaptiveSettings()) if s.key == "120b" else s for s in SPECS]
    manager = HuggingFaceEndpointManager(specs, FakeManagement(clock, {}), clock)
    recorder = Recorder(store, manager, clock)
    try:
        await recorder.start()
        learner = manager.endpoint("120b").adaptive
        assert learner is not None
        planned = learner.returns.next_wake(clock.now(), 300)
        friday_batch = monday + 4 * 86400 + 2 * 3600
        assert planned is not None and planned.window[0] <= friday_batch <= planned.window[1]
        assert learner.idle_time(monday + 3 * 86400 + 2.5 * 3600, 300) is not None
    finally:
        await recorder.close()
        await store.close()


async def test_an_operators_sleep_is_remembered_across_a_restart_for_wakes_ahead(tmp_path: Path) -> None:
    """Asleep when it stopped, put to sleep by `alice` (the audit log says): after a restart the
    endpoint is still one an operator put to sleep; one woken since is not."""
    store = SqlStore(database_url(None, tmp_path))
    await store.open()
    clock = ManualClock()
    now = clock.now()
    await store.save_endpoints(
        {
            "120b": PersistedEndpoint(wake_time=now - 7200, sleep_time=now - 3600),
            "20b": PersistedEndpoint(wake_time=now - 600, sleep_time=now - 3600),
        }
    )
    await store.add_audit(
        [
            AuditEntry(now - 3600, "alice", "sleep", "120b", True),
            AuditEntry(now - 3600, "alice", "sleep", "20b", True),
        ]
    )
    specs = [replace(s, adaptive=AdaptiveSettings()) for s in SPECS]
    manager = HuggingFaceEndpointManager(specs, FakeManagement(clock, {}), clock)
    recorder = Recorder(store, manager, clock)
    try:
        await recorder.start()
        assert manager.endpoint("120b").slept_by == "alice"
        assert manager.endpoint("20b").slept_by is None  # woken after that sleep
    finally:
        await recorder.close()
        await store.close()
