"""`serve` on PostgreSQL (CRAZY_GARY_DATABASE_URL=postgresql://…), in a database of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from .conftest import VIEWER_KEY, Process, api, start_server

ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = f"crazy_gary_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(ADMIN, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


def test_serve_keeps_its_state_in_postgresql(simulator: Process, database: str) -> None:
    """Migrated at start, the audit log and endpoint times live in PostgreSQL and outlive the process."""
    first = start_server(simulator, CRAZY_GARY_DATABASE_URL=database)
    try:
        assert api(first, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
        wake_time = api(first, "GET", "/api/endpoints/status/20b", key=VIEWER_KEY).json()["wake_time"]
    finally:
        first.stop()
    second = start_server(simulator, CRAZY_GARY_DATABASE_URL=database)
    try:
        assert (
            api(second, "GET", "/api/endpoints/status/20b", key=VIEWER_KEY).json()["wake_time"] == wake_time
        )
        log = api(second, "GET", "/api/endpoints/audit?operation=wake", key=VIEWER_KEY).json()["entries"]
        assert [(e["actor"], e["model_type"], e["success"]) for e in log] == [("ops", "20b", True)]
        assert api(second, "GET", "/readyz").status_code == 200
    finally:
        second.stop()
