"""Usage per key, endpoint and UTC hour: requests, tokens, and each endpoint's busy seconds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("busy_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "key", "model_type"),
    )


def downgrade() -> None:
    op.drop_table("usage_hourly")
