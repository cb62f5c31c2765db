"""Endpoint state, state history and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("last_activity", sa.Float),
        sa.Column("wake_time", sa.Float),
        sa.Column("sleep_time", sa.Float),
        sa.Column("running_since", sa.Float),
        sa.Column("operation", sa.String(16)),
        sa.Column("operation_actor", sa.String(128)),
        sa.Column("cold_start", sa.Float),
        sa.Column("first_seen", sa.Float),
    )
    op.create_table(
        "state_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_state_history_key_at", "state_history", ["key", "at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("model_type", sa.String(64)),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("request_id", sa.String(64)),
    )
    op.create_index("ix_audit_log_timestamp", "audit_log", ["timestamp"])
    op.create_index("ix_audit_log_operation", "audit_log", ["operation"])
    op.create_index("ix_audit_log_model_type", "audit_log", ["model_type"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("state_history")
    op.drop_table("endpoint_state")
