"""Keeps the store in step with the manager: endpoint memories, HF's state history, the audit log,
usage and the request history.

Writes go through one background task so that nothing on a request's path waits for the database:
events queue audit entries and transitions, and endpoint memories are compared and saved every
`flush_interval` seconds (at once after an operation). Reads of the audit log flush first, so an
operation is in the log by the time its answer has gone.

A wake or sleep is written when it is accepted (`success` None), under an operation id of its own,
and written again under that id when it ends: the store completes the entry. A process that dies
meanwhile leaves the entry as it was, with `success` None.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

from crazy_gary.clock import Clock, wait_event
from crazy_gary.core.costs import CostReport, billed_seconds, cost_report
from crazy_gary.core.manager import HuggingFaceEndpointManager, ManagerEvent
from crazy_gary.core.ports import PersistedEndpoint
from crazy_gary.core.supervisor import ErrorHook, Supervisor, stop
from crazy_gary.errors import StoreError
from crazy_gary.store.base import AuditEntry, AuditQuery, RequestRecord, Store, Transition, UsageRow
from crazy_gary.usage.arrivals import ArrivalLog
from crazy_gary.usage.attribution import EndpointCost
from crazy_gary.usage.ledger import UsageLedger

__all__ = ["Recorder", "total"]

logger = logging.getLogger(__name__)
DAY = 86_400.0
MAX_QUEUED = 10_000  # entries kept while the store is down; the oldest go first
LEARNT_DAYS = 14  # days of requests adaptive auto-sleep learns from at start


class Recorder:
    """The manager's memory: restores it at start, records what happens, answers audit and costs."""

    def __init__(
        self,
        store: Store,
        manager: HuggingFaceEndpointManager,
        clock: Clock,
        *,
        retention_days: float = 90.0,
        flush_interval: float = 1.0,
    ) -> None:
        self.store = store
        self._manager = manager
        self._clock = clock
        self._retention = retention_days * DAY
        self._interval = flush_interval
        self._audit: list[AuditEntry] = []
        self._running: dict[tuple[str, str], AuditEntry] = {}  # by endpoint and operation, as accepted
        self._transitions: list[Transition] = []
        self._saved: dict[str, PersistedEndpoint] = {}
        self._history: dict[str, list[tuple[float, str]]] = {}
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[float] | None = None
        self._lock = asyncio.Lock()
        self.usage = UsageLedger(clock)  # fed the engine's requests (`usage.on_request`) by the app
        self.arrivals = ArrivalLog(clock)  # likewise (`arrivals.on_request`)
        self._busy_counted: dict[str, float] = {}

    async def start(self, on_error: ErrorHook | None = None) -> None:
        """Restore the manager from the store (before the manager starts) and begin writing, in a task
        that survives unexpected errors (logged, and told to `on_error`)."""
        self._saved = await self.store.load_endpoints()
        self._manager.restore(self._saved)
        await self._teach_adaptive()
        for key in self._manager.keys:
            self._history[key] = [(t.at, t.state) for t in await self.store.transitions(key)]
        await self._prune(self._clock.now())
        self._manager.subscribe(self.on_event)
        self._task = Supervisor(self._clock, on_error).loop("recorder", self._run)

    async def _teach_adaptive(self) -> None:
        """Adaptive auto-sleep learns, at start, from the requests of the last `LEARNT_DAYS` days
        asked of each adaptive endpoint, as if it had been running: a restart does not forget."""
        learners = [key for key in self._manager.keys if self._manager.endpoint(key).adaptive is not None]
        if not learners:
            return
        now = self._clock.now()
        arrivals: dict[str, list[tuple[float, int]]] = {key: [] for key in learners}
        for record in await self.store.requests(now - LEARNT_DAYS * DAY, now, learners):
            into = arrivals.get(record.model_type)
            if into is not None:
                into.append((record.at, max(1, record.requests)))
        for key, seconds in arrivals.items():
            seconds.sort()  # a second is stored once per kind (streamed or not): both, in order
            self._manager.endpoint(key).learn_from(seconds)
            await self._recall_who_slept(key)

    async def _recall_who_slept(self, key: str) -> None:
        """Who put the endpoint to sleep last, when it was asleep as we stopped (from the audit log):
        one an operator put to sleep is not woken ahead of a predicted return after a restart either."""
        memory = self._saved.get(key)
        if memory is None or memory.sleep_time is None or (memory.wake_time or 0.0) > memory.sleep_time:
            return
        last = await self.store.audit(AuditQuery(limit=1, model_type=key, operation="sleep"))
        if last:
            self._manager.endpoint(key).slept_by = last[0].actor

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop([task])
        writing, self._writing = self._writing, None
        if writing is not None and not writing.done():  # a done one was awaited by the task
            await asyncio.wait([writing])  # a write under way when the task stopped finishes
            if not writing.cancelled() and writing.exception() is not None:
                logger.error("the write under way at shutdown failed", exc_info=writing.exception())
        try:
            await self.flush()
        except StoreError as exc:
            logger.warning("last writes to the store lost: %s", exc.message)

    # -- recording ----------------------------------------------------------------------------
    def on_event(self, event: ManagerEvent) -> None:
        """Turn the manager's events into history and audit entries (never blocks)."""
        now = self._clock.now()
        if event.kind == "state" and event.hf_state is not None:
            self._transitions.append(Transition(event.key, event.hf_state, now))
            self._history.setdefault(event.key, []).append((now, event.hf_state))
            self._entry(
                now,
                "huggingface",
                "state_change",
                event.key,
                True,
                details={"status": event.status, "hf_state": event.hf_state},
            )
        elif event.kind == "operation" and event.operation is not None:
            self._accepted(now, event, event.operation)
        elif event.kind == "operation_done":
            self._ended(now, event)
        elif event.kind == "operation_unchanged":
            self._entry(
                now,
                event.actor or "api",
                event.operation or "?",
                event.key,
                True,
                details={"changed": False, "status": event.status},
                request_id=event.request_id,
            )
        if event.kind != "state":
            self._kick.set()

    def _accepted(self, now: float, event: ManagerEvent, operation: str) -> None:
        """Write the operation's entry at once; an operation of the other kind under way on the
        endpoint was cancelled by this one (it never tells its end)."""
        for (key, kind), running in list(self._running.items()):
            if key == event.key and kind != operation and running.success is None:
                cancelled = f"Cancelled by a {operation} before it finished."
                self._running[key, kind] = dataclasses.replace(running, success=False, error=cancelled)
                self._queue(self._running[key, kind])
        entry = AuditEntry(
            now,
            event.actor or "api",
            operation,
            event.key,
            None,
            request_id=event.request_id,
            operation_id=uuid.uuid4().hex,
        )
        self._running[(event.key, operation)] = entry
        self._queue(entry)

    def _ended(self, now: float, event: ManagerEvent) -> None:
        """Complete the operation's entry with its outcome; one never accepted (configure) is new."""
        details = dict(event.details) if event.details else {}
        actor = event.actor or "api"
        running = self._running.get((event.key, event.operation or "?"))
        if running is None or (running.actor, running.request_id) != (actor, event.request_id):
            self._entry(
                now,
                actor,
                event.operation or "?",
                event.key,
                bool(event.success),
                error=event.error,
                details=details,
                request_id=event.request_id,
            )
            return
        del self._running[(event.key, running.operation)]
        self._queue(
            dataclasses.replace(
                running,
                success=bool(event.success),
                error=event.error,
                details={**running.details, **details},
            )
        )

    def refused(
        self,
        *,
        actor: str,
        operation: str,
        model_type: str | None,
        status: int,
        reason: str,
        request_id: str | None = None,
    ) -> None:
        """A management attempt refused at the door (401, 403, 429)."""
        self._entry(
            self._clock.now(),
            actor,
            operation,
            model_type,
            False,
            error=reason,
            details={"status": status},
            request_id=request_id,
        )
        self._kick.set()

    def _entry(
        self,
        now: float,
        actor: str,
        operation: str,
        model_type: str | None,
        success: bool,
        *,
        error: str | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        self._queue(AuditEntry(now, actor, operation, model_type, success, error, details or {}, request_id))

    def _queue(self, entry: AuditEntry) -> None:
        self._audit.append(entry)
        del self._audit[:-MAX_QUEUED]

    # -- writing ------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what is queued and the endpoint memories that changed."""
        async with self._lock:
            memories = self._manager.memories()
            changed = {key: memory for key, memory in memories.items() if self._saved.get(key) != memory}
            audit, transitions = self._audit, self._transitions
            self._audit, self._transitions = [], []
            self._count_busy_time()
            usage, arrivals = self.usage.take(), self.arrivals.take()
            # each part is put back only when it was not written: a write that failed half-way must
            # not write the other half twice on the next try
            written = 0
            try:
                await self.store.save_endpoints(changed)
                await self.store.add_transitions(transitions)
                written = 1
                await self.store.add_audit(audit)
                written = 2
                await self.store.add_usage(usage)
                written = 3
                await self.store.add_requests(arrivals)
            except Exception:  # a store error, or a bug the supervisor reports: written on the next try
                self._put_back(written, transitions, audit, usage, arrivals)
                raise
            self._saved.update(changed)

    def _put_back(
        self,
        written: int,
        transitions: list[Transition],
        audit: list[AuditEntry],
        usage: list[UsageRow],
        arrivals: list[RequestRecord],
    ) -> None:
        """What a write that failed after its first `written` parts did not store, queued again."""
        if written < 1:
            self._transitions[:0] = transitions
        if written < 2:
            self._audit[:0] = audit
            del self._audit[:-MAX_QUEUED]
        if written < 3:
            self.usage.put_back(usage)
        self.arrivals.put_back(arrivals)

    def _count_busy_time(self) -> None:
        """Each endpoint's busy seconds since the last write, into the usage ledger."""
        now = self._clock.now()
        for key in self._manager.keys:
            total = self._manager.endpoint(key).busy_through(now)
            if total > self._busy_counted.get(key, 0.0):
                self.usage.add_busy(key, total - self._busy_counted.get(key, 0.0))
                self._busy_counted[key] = total

    async def _run(self) -> None:
        last_prune = self._clock.now()
        while True:
            await wait_event(self._clock, self._kick, self._interval)
            self._kick.clear()
            # shielded: a shutdown lets a write under way finish (close() waits for it, then writes the
            # rest) rather than cutting it off and losing the entries it had taken
            self._writing = asyncio.ensure_future(self._write(last_prune))
            last_prune = await asyncio.shield(self._writing)

    async def _write(self, last_prune: float) -> float:
        """Flush, and prune the audit log once a day; a store that fails is tried again later."""
        try:
            await self.flush()
            if self._clock.now() - last_prune >= DAY:
                last_prune = self._clock.now()
                await self._prune(last_prune)
        except StoreError as exc:
            logger.warning("store write failed, will retry: %s", exc.message)
        return last_prune

    async def _prune(self, now: float) -> None:
        """Audit entries and requests past the retention go."""
        await self.store.prune_audit(now - self._retention)
        await self.store.prune_requests(now - self._retention)

    # -- reading ------------------------------------------------------------------------------
    async def audit(self, query: AuditQuery) -> list[AuditEntry]:
        """The audit log, newest first, including what was just recorded."""
        await self.flush()
        return await self.store.audit(query)

    def costs(self) -> dict[str, CostReport]:
        """Each managed endpoint's cost so far, savings and projected month, from the state history."""
        now = self._clock.now()
        return {
            key: cost_report(history, first_seen, now, price)
            for key, history, first_seen, price in self._managed_histories(now)
        }

    def _managed_histories(
        self, unseen: float
    ) -> list[tuple[str, list[tuple[float, str]], float, float | None]]:
        """(key, HF state history, first seen, price per hour) of each managed endpoint; `unseen` is
        the first-seen time of one never seen."""
        found = []
        for key in self._manager.keys:
            endpoint = self._manager.endpoint(key)
            if endpoint.spec.managed:
                history = self._history.get(key, [])
                first_seen = endpoint.first_seen or (history[0][0] if history else unseen)
                found.append((key, history, first_seen, endpoint.price_per_hour))
        return found

    async def requests(self, since: float, until: float) -> list[RequestRecord]:
        """The requests that arrived within [since, until), including those just finished."""
        await self.flush()
        return await self.store.requests(since, until)

    async def usage_rows(self, since: float, until: float) -> list[UsageRow]:
        """The usage of the hours overlapping [since, until), including what was just counted."""
        await self.flush()
        return await self.store.usage(since, until)

    def costs_between(self, since: float, until: float) -> dict[str, EndpointCost]:
        """What each managed endpoint was billed within [since, until], from the state history."""
        end = min(until, self._clock.now())
        costs: dict[str, EndpointCost] = {}
        for key, history, first_seen, price in self._managed_histories(until):
            seconds = billed_seconds(history, max(since, first_seen), end)
            costs[key] = EndpointCost(seconds * (price or 0.0) / 3600, price)
        return costs

    def billing(self) -> dict[str, tuple[float, float]]:
        """Billed seconds and dollars by endpoint (for the metrics)."""
        return {key: (report.billed_seconds, report.cost) for key, report in self.costs().items()}


def total(reports: dict[str, CostReport]) -> dict[str, float]:
    """Each field of the reports summed."""
    fields = ("billed_seconds", "cost", "saved", "projected_month")
    summed = {name: round(sum(getattr(report, name) for report in reports.values()), 6) for name in fields}
    return {"price_per_hour": round(sum(r.price_per_hour or 0.0 for r in reports.values()), 6), **summed}
