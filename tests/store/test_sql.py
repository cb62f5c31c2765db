"""The SQL store against SQLite and the real PostgreSQL of this machine."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from crazy_gary.store import AuditEntry, AuditQuery, PersistedEndpoint, SqlStore, Transition, database_url
from crazy_gary.store.base import RequestRecord, UsageRow

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        sql = SqlStore(database_url(None, tmp_path))
        await sql.open()
        yield sql
        await sql.close()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES)
    async with admin.begin() as connection:
        await connection.execute(text(f"CREATE SCHEMA {schema}"))
    sql = SqlStore(POSTGRES, connect_args={"server_settings": {"search_path": schema}})
    try:
        await sql.open()
        yield sql
    finally:
        await sql.close()
        async with admin.begin() as connection:
            await connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


def test_database_url() -> None:
    """Plain URLs get our async drivers; no URL is the SQLite file in the data dir."""
    assert database_url(None, Path("/data")) == "sqlite+aiosqlite:////data/crazy-gary.db"
    assert database_url("sqlite:///x.db", Path("/")) == "sqlite+aiosqlite:///x.db"
    assert database_url("postgresql://u@h/db", Path("/")) == "postgresql+asyncpg://u@h/db"


async def test_endpoint_state_round_trip(store: SqlStore) -> None:
    """Saved endpoint times come back as saved, and a second save replaces the first."""
    first = PersistedEndpoint(
        last_activity=1.5, wake_time=1.0, running_since=1.2, operation="sleep", first_seen=0.5
    )
    await store.save_endpoints({"120b": first, "20b": PersistedEndpoint()})
    assert await store.load_endpoints() == {"120b": first, "20b": PersistedEndpoint()}
    second = PersistedEndpoint(last_activity=9.0, sleep_time=8.0)
    await store.save_endpoints({"120b": second})
    assert (await store.load_endpoints())["120b"] == second


async def test_transitions_in_order(store: SqlStore) -> None:
    """State history comes back oldest first, per endpoint."""
    await store.add_transitions(
        [Transition("120b", "initializing", 10.0), Transition("20b", "running", 11.0)]
    )
    await store.add_transitions([Transition("120b", "running", 30.0)])
    assert [t.state for t in await store.transitions("120b")] == ["initializing", "running"]


async def test_audit_newest_first_with_filters_and_pages(store: SqlStore) -> None:
    """The audit log is newest first; filters and `before` paging work; pruning drops old entries."""
    entries = [
        AuditEntry(
            timestamp=100 + index,
            actor="ops",
            operation=op,
            model_type=key,
            success=True,
            details={"n": index},
        )
        for index, (op, key) in enumerate(
            [("wake", "120b"), ("sleep", "120b"), ("wake", "20b"), ("wake", "120b")]
        )
    ]
    await store.add_audit(entries)
    newest = await store.audit(AuditQuery(limit=2))
    assert [entry.details["n"] for entry in newest] == [3, 2]
    older = await store.audit(AuditQuery(limit=10, before=newest[-1].id))
    assert [entry.details["n"] for entry in older] == [1, 0]
    wakes = await store.audit(AuditQuery(operation="wake", model_type="120b"))
    assert [entry.details["n"] for entry in wakes] == [3, 0]
    assert await store.prune_audit(102) == 2
    assert len(await store.audit(AuditQuery())) == 2


def _accepted(operation_id: str, n: int) -> AuditEntry:
    return AuditEntry(100 + n, "ops", "wake", "120b", None, details={"n": n}, operation_id=operation_id)


def _ended(entry: AuditEntry, **outcome: Any) -> AuditEntry:
    return dataclasses.replace(entry, timestamp=entry.timestamp + 60, **outcome)


async def test_an_operations_entry_is_completed_in_place(store: SqlStore) -> None:
    """An entry written with `success` None is completed by the entry of the same operation id: same
    id, time and actor, the outcome and details of the end; entries written since stay newer."""
    accepted = _accepted("op-1", 0)
    await store.add_audit([accepted])
    (running,) = await store.audit(AuditQuery())
    assert (running.success, running.operation_id) == (None, "op-1")
    await store.add_audit([AuditEntry(101, "huggingface", "state_change", "120b", True)])
    await store.add_audit([_ended(accepted, success=False, error="boom", details={"sent": ["resume"]})])
    ended, state = await store.audit(AuditQuery(operation="wake")), await store.audit(AuditQuery(limit=1))
    assert [(e.id, e.timestamp, e.actor, e.success, e.error, e.details) for e in ended] == [
        (running.id, 100, "ops", False, "boom", {"sent": ["resume"]})
    ]
    assert state[0].operation == "state_change"
    await store.add_audit([_ended(accepted, success=False, error="boom", details={"sent": ["resume"]})])
    assert len(await store.audit(AuditQuery())) == 2  # written twice: still one entry


async def test_an_entry_and_its_completion_in_one_batch(store: SqlStore) -> None:
    """Accepted and ended in the same batch (or the start lost): one entry, with the outcome, in the
    order of the batch; entries without an operation id are always new."""
    first, second = _accepted("op-a", 0), _accepted("op-b", 1)
    plain = AuditEntry(102, "anonymous", "wake", "120b", False, error="no key")
    await store.add_audit([first, plain, second, _ended(first, success=True), plain])
    await store.add_audit([_ended(_accepted("op-c", 3), success=True)])
    log = await store.audit(AuditQuery())
    assert [(e.operation_id, e.actor, e.success) for e in log] == [
        ("op-c", "ops", True),
        (None, "anonymous", False),
        ("op-b", "ops", None),
        (None, "anonymous", False),
        ("op-a", "ops", True),
    ]


async def test_a_database_of_the_first_revision_is_upgraded_with_its_entries(tmp_path: Path) -> None:
    """A store made by revision 0001 keeps its audit entries when upgraded, and then takes running
    operations' entries (success null)."""
    from alembic import command

    from crazy_gary.store.sql import migrations_config

    url = database_url(None, tmp_path)
    old = create_engine(url.replace("+aiosqlite", ""))
    with old.begin() as connection:
        command.upgrade(migrations_config(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO audit_log (timestamp, actor, operation, model_type, success, details)"
                " VALUES (5, 'ops', 'wake', '120b', 1, '{}')"
            )
        )
    old.dispose()
    store = SqlStore(url)
    await store.open()
    try:
        await store.add_audit([_accepted("op-1", 0)])
        log = await store.audit(AuditQuery())
        assert [(e.timestamp, e.success) for e in log] == [(100, None), (5, True)]
    finally:
        await store.close()


async def test_reopen_keeps_data_and_migrations_are_idempotent(tmp_path: Path) -> None:
    """Opening the same database again migrates nothing and finds what was saved."""
    url = database_url(None, tmp_path)
    store = SqlStore(url)
    await store.open()
    await store.save_endpoints({"120b": PersistedEndpoint(wake_time=5.0)})
    await store.close()
    again = SqlStore(url)
    await again.open()
    assert (await again.load_endpoints())["120b"].wake_time == 5.0
    assert await again.ping()
    await again.close()


def test_head_revision_is_alembics() -> None:
    """The revision the store checks before migrating is the newest one Alembic knows."""
    from alembic.script import ScriptDirectory

    from crazy_gary.store.schema import HEAD_REVISION
    from crazy_gary.store.sql import migrations_config

    assert ScriptDirectory.from_config(migrations_config()).get_current_head() == HEAD_REVISION


def _schema(connection: Connection) -> list[tuple[object, ...]]:
    """Every table's columns, primary key and indexes, and the Alembic revision, as plain data."""
    seen = inspect(connection)
    found: list[tuple[object, ...]] = [
        ("revision", connection.execute(text("SELECT version_num FROM alembic_version")).scalar())
    ]
    for table in sorted(seen.get_table_names()):
        columns = [(c["name"], str(c["type"]), c["nullable"]) for c in seen.get_columns(table)]
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in seen.get_indexes(table)
        )
        found.append((table, columns, seen.get_pk_constraint(table)["constrained_columns"], indexes))
    return found


async def test_a_new_database_gets_the_schema_the_migrations_build(tmp_path: Path) -> None:
    """A first start creates the tables directly and stamps the newest revision; the result is the
    same schema as Alembic's migrations build, so later migrations apply to both alike."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from crazy_gary.store.schema import metadata
    from crazy_gary.store.sql import migrations_config

    direct = SqlStore(database_url(None, tmp_path / "direct"))
    await direct.open()
    await direct.close()

    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    with migrated.begin() as connection:
        command.upgrade(migrations_config(connection), "head")
    built = create_engine(f"sqlite:///{tmp_path / 'direct' / 'crazy-gary.db'}")
    with migrated.connect() as by_alembic, built.connect() as by_store:
        assert _schema(by_store) == _schema(by_alembic)
        assert compare_metadata(MigrationContext.configure(by_alembic), metadata) == []
    with built.begin() as connection:  # Alembic finds nothing to do on the stamped database
        command.upgrade(migrations_config(connection), "head")
    migrated.dispose()
    built.dispose()


async def test_usage_rows_add_up_across_writes_and_replicas(store: SqlStore) -> None:
    """Rows of the same hour, key and endpoint add up, within one write and across writes (as two
    replicas write them); reads take the hours overlapping the period; a key's tokens since a time."""
    hour = 1_795_874_400
    await store.add_usage(
        [
            UsageRow(hour, "alice", "120b", 1, 10, 20),
            UsageRow(hour, "alice", "120b", 1, 5, 5),
            UsageRow(hour, "", "120b", busy_seconds=2.5),
        ]
    )
    await store.add_usage(
        [UsageRow(hour, "alice", "120b", 2, 1, 1), UsageRow(hour + 3600, "alice", "20b", 1, 7, 0)]
    )
    rows = await store.usage(hour + 1800, hour + 3600)
    assert sorted(rows, key=lambda r: r.key) == [
        UsageRow(hour, "", "120b", 0, 0, 0, 2.5),
        UsageRow(hour, "alice", "120b", 4, 16, 26, 0.0),
    ]
    assert len(await store.usage(hour, hour + 7200)) == 3
    assert await store.tokens_used("alice", hour + 10) == 49
    assert await store.tokens_used("alice", hour + 3600) == 7
    assert await store.tokens_used("bob", hour) == 0


async def test_requests_are_kept_in_order_of_arrival_and_pruned(store: SqlStore) -> None:
    """Requests written by two replicas come back oldest first within the period; pruning drops
    those that arrived before the cut."""
    first = [RequestRecord(100.5, "120b", 10, 20, True), RequestRecord(300.0, "20b")]
    second = [RequestRecord(200.0, "120b", 5, 0, False), RequestRecord(400.0, "120b")]
    await store.add_requests(first)
    await store.add_requests(second)
    await store.add_requests([])
    assert await store.requests(100.0, 400.0) == [first[0], second[0], first[1]]
    assert await store.requests(0.0, 100.0) == []
    assert await store.prune_requests(250.0) == 2
    assert [record.at for record in await store.requests(0.0, 1e12)] == [300.0, 400.0]
