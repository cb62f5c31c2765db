"""The tables, as SQLAlchemy Core sees them; their history is in `migrations/versions`."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

__all__ = [
    "HEAD_REVISION",
    "audit_log",
    "endpoint_state",
    "metadata",
    "request_history",
    "state_history",
    "usage_hourly",
]

HEAD_REVISION = "0004"  # the newest migration; a test checks it against Alembic's own answer
metadata = MetaData()

endpoint_state = Table(
    "endpoint_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("last_activity", Float),
    Column("wake_time", Float),
    Column("sleep_time", Float),
    Column("running_since", Float),
    Column("operation", String(16)),
    Column("operation_actor", String(128)),
    Column("cold_start", Float),
    Column("first_seen", Float),
)

state_history = Table(
    "state_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),
    Column("state", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_state_history_key_at", "key", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("timestamp", Float, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("operation", String(32), nullable=False, index=True),
    Column("model_type", String(64), index=True),
    Column("success", Boolean),  # null while the operation runs
    Column("error", Text),
    Column("details", JSON, nullable=False),
    Column("request_id", String(64)),
    Column("operation_id", String(32)),  # the key that completes an operation's entry when it ends
    Index("ix_audit_log_operation_id", "operation_id", unique=True),
)

usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("hour", BigInteger, primary_key=True, autoincrement=False),  # start of the UTC hour, Unix seconds
    Column("key", String(128), primary_key=True),  # "" for the endpoint's own busy seconds
    Column("model_type", String(64), primary_key=True),
    Column("requests", Integer, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("busy_seconds", Float, nullable=False, default=0.0),
)

# The requests that reached the gateway, per second of arrival, endpoint asked for and kind, for
# replaying the endpoints' own traffic (`crazy-gary replay --from-store`, `/api/endpoints/policies`);
# kept as long as the audit log.
request_history = Table(
    "request_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),  # the second they arrived in, Unix seconds
    Column("model_type", String(64), nullable=False),  # the endpoint they asked for
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("stream", Boolean, nullable=False, default=False),
    Column("requests", Integer, nullable=False, default=1),
)
