"""The Redis and store checks of `crazy-gary doctor`: does each answer, can the file be written.

Their clients are imported when a check runs: Redis only when it is configured.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from crazy_gary.config import Settings
from crazy_gary.doctor._check import Check, error, ok, warn

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["redis_check", "store_check"]

_CONNECT_TIMEOUT = 5.0  # seconds Redis or PostgreSQL may take to answer before it counts as unreachable


async def redis_check(url: str) -> Check:
    """Whether Redis at `url` answers PING."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    name = "redis"
    try:
        client = Redis.from_url(url, socket_timeout=_CONNECT_TIMEOUT, socket_connect_timeout=_CONNECT_TIMEOUT)
    except ValueError:
        return error(name, "CRAZY_GARY_REDIS_URL is not a Redis URL", "use redis://HOST:PORT/DB")
    settings = client.connection_pool.connection_kwargs
    where = settings.get("path") or f"{settings.get('host', '?')}:{settings.get('port', '?')}"
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        detail = f"Redis at {where} does not answer PING ({type(exc).__name__})"
        return error(name, detail, "start Redis, or fix CRAZY_GARY_REDIS_URL (or unset it for one replica)")
    finally:
        await client.aclose()
    return ok(name, f"Redis at {where} answers PING")


async def store_check(settings: Settings) -> Check:
    """Whether the store answers: a SQLite file that can be read and written, or the database server."""
    from sqlalchemy.engine import make_url

    from crazy_gary.store import database_url

    url = make_url(database_url(settings.database_url, settings.data_dir))
    if url.get_backend_name() == "sqlite":
        return _sqlite_check(url.database)
    return await _server_store_check(url)


def _sqlite_check(database: str | None) -> Check:
    name = "store"
    if not database or database == ":memory:":
        return warn(name, "SQLite in memory: nothing survives a restart", "set CRAZY_GARY_DATABASE_URL")
    path = Path(database)
    fix = "set CRAZY_GARY_DATA_DIR to a writable folder, or CRAZY_GARY_DATABASE_URL"
    if path.exists():
        if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK)):
            return error(name, f"SQLite at {path}: the file or its folder is not writable", fix)
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            return error(
                name, f"SQLite at {path} cannot be read: {exc}", "move it away; serve makes a new one"
            )
        return ok(name, f"SQLite at {path}: readable, and the file and its folder are writable")
    folder = next((parent for parent in path.parents if parent.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        return error(name, f"SQLite at {path}: {folder or path.parent} is not a writable folder", fix)
    return ok(name, f"SQLite at {path}: not there yet; serve creates it ({folder} is writable)")


async def _server_store_check(url: URL) -> Check:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.ext.asyncio import create_async_engine

    name = "store"
    port = f":{url.port}" if url.port else ""
    where = f"{url.get_backend_name()} at {url.host or 'localhost'}{port}/{url.database or ''}"
    connect_args = {"timeout": _CONNECT_TIMEOUT} if url.get_driver_name() == "asyncpg" else {}
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        cause = getattr(exc, "orig", None) or exc
        said = str(cause).splitlines()[0][:200] if str(cause) else ""
        detail = f"{where} cannot be reached: {type(cause).__name__}{': ' + said if said else ''}"
        return error(name, detail, "start the database, or fix CRAZY_GARY_DATABASE_URL")
    finally:
        await engine.dispose()
    return ok(name, f"{where} answers")
