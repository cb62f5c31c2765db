"""The Store on SQLAlchemy 2 (async): SQLite in the data dir by default (WAL), PostgreSQL for replicas.

The schema is brought up to date by Alembic when the store opens; on PostgreSQL an advisory lock
makes replicas that start together take turns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Insert,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from crazy_gary.errors import StoreError
from crazy_gary.store.base import (
    AuditEntry,
    AuditQuery,
    PersistedEndpoint,
    RequestRecord,
    Transition,
    UsageRow,
)
from crazy_gary.store.schema import (
    HEAD_REVISION,
    audit_log,
    endpoint_state,
    metadata,
    request_history,
    state_history,
    usage_hourly,
)

__all__ = ["SqlStore", "database_url", "migrations_config"]

_MIGRATION_LOCK = 0x6372617A79  # "crazy": the PostgreSQL advisory lock id replicas take to migrate
_FIELDS = tuple(PersistedEndpoint.__dataclass_fields__)
_OUTCOME = ("success", "error", "details")  # what completing an operation's audit entry writes
# Alembic's own version table, as `alembic stamp` creates it; kept out of `metadata` (not ours).
_version_table = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def database_url(url: str | None, data_dir: Path) -> str:
    """SQLAlchemy's async URL for `CRAZY_GARY_DATABASE_URL`, or the SQLite file in the data dir."""
    if url is None:
        return f"sqlite+aiosqlite:///{data_dir / 'crazy-gary.db'}"
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def migrations_config(connection: Connection | None = None) -> Any:
    """Alembic's configuration for our migrations (imported here: Alembic costs a quarter second
    and several MB at start, and is needed only when the schema is behind)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("crazy_gary.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def _create_at_head(connection: Connection) -> None:
    """A new database: the tables as they are now, stamped with the newest revision.

    This is Alembic's own recipe for a database built from scratch (`create_all`, then
    `alembic stamp head`), done without importing Alembic: a first start skips ~8 MB and a tenth of a
    second. A test checks that these tables equal what the migrations build.
    """
    metadata.create_all(connection)
    _version_table.create(connection)
    connection.execute(insert(_version_table).values(version_num=HEAD_REVISION))


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: Connection) -> None:
    revision = _revision(connection)
    if revision == HEAD_REVISION:
        return
    if revision is None and not any(inspect(connection).has_table(t) for t in metadata.tables):
        _create_at_head(connection)
        return
    from alembic import command

    command.upgrade(migrations_config(connection), "head")


class SqlStore:
    """`crazy_gary.store.Store` on SQLAlchemy Core."""

    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None) -> None:
        self.url = url
        self._connect_args = connect_args or {}
        self._engine: AsyncEngine | None = None

    @property
    def dialect(self) -> str:
        return self.url.split("+", 1)[0].split(":", 1)[0]

    async def open(self) -> None:
        if self.dialect == "sqlite":
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url, pool_pre_ping=True, connect_args=self._connect_args)
        if self.dialect == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        self._engine = engine
        async with self._connect() as connection:
            if self.dialect == "postgresql":
                await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
            await connection.run_sync(_upgrade)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction; database errors become StoreError (without the URL)."""
        if self._engine is None:
            raise StoreError("The store is not open.")
        try:
            async with self._engine.begin() as connection:
                yield connection
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            raise StoreError(f"The {self.dialect} store failed: {type(exc).__name__}.") from exc

    async def ping(self) -> bool:
        try:
            async with self._connect() as connection:
                await connection.execute(text("SELECT 1"))
        except StoreError:
            return False
        return True

    async def load_endpoints(self) -> dict[str, PersistedEndpoint]:
        async with self._connect() as connection:
            rows = (await connection.execute(select(endpoint_state))).mappings().all()
        return {row["key"]: PersistedEndpoint(**{name: row[name] for name in _FIELDS}) for row in rows}

    async def save_endpoints(self, endpoints: dict[str, PersistedEndpoint]) -> None:
        if not endpoints:
            return
        async with self._connect() as connection:
            await connection.execute(delete(endpoint_state).where(endpoint_state.c.key.in_(list(endpoints))))
            await connection.execute(
                insert(endpoint_state),
                [
                    {"key": key, **{name: getattr(state, name) for name in _FIELDS}}
                    for key, state in endpoints.items()
                ],
            )

    async def add_transitions(self, transitions: list[Transition]) -> None:
        if transitions:
            async with self._connect() as connection:
                await connection.execute(
                    insert(state_history), [{"key": t.key, "state": t.state, "at": t.at} for t in transitions]
                )

    async def transitions(self, key: str) -> list[Transition]:
        query = (
            select(state_history)
            .where(state_history.c.key == key)
            .order_by(state_history.c.at, state_history.c.id)
        )
        async with self._connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [Transition(key=row["key"], state=row["state"], at=row["at"]) for row in rows]

    async def add_audit(self, entries: list[AuditEntry]) -> None:
        rows = _merged([_audit_row(entry) for entry in entries])
        if rows:
            async with self._connect() as connection:
                await connection.execute(self._insert_or_complete(), rows)

    async def add_usage(self, rows: list[UsageRow]) -> None:
        if not rows:
            return
        async with self._connect() as connection:
            # in one order on every replica: two upserts of the same rows never wait on each other
            ordered = sorted(_summed(rows), key=lambda row: (row.hour, row.key, row.model_type))
            await connection.execute(self._insert_or_add(), [_usage_values(row) for row in ordered])

    def _insert_or_add(self) -> Insert:
        """An insert that adds to the counts of the row of the same hour, key and endpoint."""
        dialect = self._dialect_module()
        statement = dialect.insert(usage_hourly)
        table = usage_hourly.c
        upsert: Insert = statement.on_conflict_do_update(
            index_elements=[table.hour, table.key, table.model_type],
            set_={name: table[name] + statement.excluded[name] for name in _USAGE_COUNTS},
        )
        return upsert

    def _dialect_module(self) -> Any:
        # The dialect in use is imported here, not at the top: importing both costs the gateway ~3 MB.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql
        from sqlalchemy.dialects import sqlite

        return sqlite

    async def usage(self, since: float, until: float) -> list[UsageRow]:
        first = int(since // HOUR * HOUR)
        query = select(usage_hourly).where(usage_hourly.c.hour >= first, usage_hourly.c.hour < until)
        async with self._connect() as connection:
            rows = (await connection.execute(query.order_by(usage_hourly.c.hour))).mappings().all()
        return [UsageRow(**{name: row[name] for name in _USAGE_FIELDS}) for row in rows]

    async def tokens_used(self, key: str, since: float) -> int:
        table = usage_hourly.c
        query = select(func.coalesce(func.sum(table.prompt_tokens + table.completion_tokens), 0)).where(
            table.key == key, table.hour >= int(since // HOUR * HOUR)
        )
        async with self._connect() as connection:
            return int((await connection.execute(query)).scalar() or 0)

    def _insert_or_complete(self) -> Insert:
        """An insert that completes the entry of the same `operation_id` instead, if there is one (an
        entry without one is always new: NULLs never conflict)."""
        statement = self._dialect_module().insert(audit_log)
        return statement.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=[audit_log.c.operation_id],
            set_={name: statement.excluded[name] for name in _OUTCOME},
        )

    async def audit(self, query: AuditQuery) -> list[AuditEntry]:
        statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(query.limit)
        if query.before is not None:
            statement = statement.where(audit_log.c.id < query.before)
        if query.model_type is not None:
            statement = statement.where(audit_log.c.model_type == query.model_type)
        if query.operation is not None:
            statement = statement.where(audit_log.c.operation == query.operation)
        async with self._connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_audit_entry(row) for row in rows]

    async def prune_audit(self, before: float) -> int:
        async with self._connect() as connection:
            result = await connection.execute(delete(audit_log).where(audit_log.c.timestamp < before))
        return int(result.rowcount or 0)

    async def add_requests(self, records: list[RequestRecord]) -> None:
        if records:
            async with self._connect() as connection:
                await connection.execute(insert(request_history), [_request_values(r) for r in records])

    async def requests(
        self, since: float, until: float, model_types: Collection[str] | None = None
    ) -> list[RequestRecord]:
        table = request_history.c
        query = select(request_history).where(table.at >= since, table.at < until)
        if model_types is not None:
            query = query.where(table.model_type.in_(list(model_types)))
        async with self._connect() as connection:
            rows = (await connection.execute(query.order_by(table.at, table.id))).mappings().all()
        return [RequestRecord(**{name: row[name] for name in _REQUEST_FIELDS}) for row in rows]

    async def prune_requests(self, before: float) -> int:
        async with self._connect() as connection:
            result = await connection.execute(delete(request_history).where(request_history.c.at < before))
        return int(result.rowcount or 0)


HOUR = 3600
_REQUEST_FIELDS = tuple(RequestRecord.__dataclass_fields__)
_USAGE_COUNTS = ("requests", "prompt_tokens", "completion_tokens", "busy_seconds")
_USAGE_FIELDS = tuple(UsageRow.__dataclass_fields__)


def _summed(rows: list[UsageRow]) -> list[UsageRow]:
    """Rows of the same hour, key and endpoint summed into one: one statement may not touch a row twice."""
    summed: dict[tuple[int, str, str], UsageRow] = {}
    for row in rows:
        place = (row.hour, row.key, row.model_type)
        known = summed.get(place)
        if known is None:
            summed[place] = row
            continue
        summed[place] = UsageRow(
            row.hour,
            row.key,
            row.model_type,
            known.requests + row.requests,
            known.prompt_tokens + row.prompt_tokens,
            known.completion_tokens + row.completion_tokens,
            known.busy_seconds + row.busy_seconds,
        )
    return list(summed.values())


def _request_values(record: RequestRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _REQUEST_FIELDS}


def _usage_values(row: UsageRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _USAGE_FIELDS}


def _audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "timestamp": entry.timestamp,
        "actor": entry.actor,
        "operation": entry.operation,
        "model_type": entry.model_type,
        "success": entry.success,
        "error": entry.error,
        "details": entry.details,
        "request_id": entry.request_id,
        "operation_id": entry.operation_id,
    }


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with each operation's completion folded into its first row: one statement may not
    touch a row twice."""
    merged: list[dict[str, Any]] = []
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["operation_id"]
        if key is not None and key in first:
            first[key].update({name: row[name] for name in _OUTCOME})
            continue
        if key is not None:
            first[key] = row
        merged.append(row)
    return merged


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        timestamp=row["timestamp"],
        actor=row["actor"],
        operation=row["operation"],
        model_type=row["model_type"],
        success=None if row["success"] is None else bool(row["success"]),
        error=row["error"],
        details=dict(row["details"] or {}),
        request_id=row["request_id"],
        operation_id=row["operation_id"],
    )
