"""Audit entries written when an operation is accepted and completed when it ends.

`success` is null while the operation runs; `operation_id` (unique) is the key that completes it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("success", existing_type=sa.Boolean(), nullable=True)
        batch.add_column(sa.Column("operation_id", sa.String(32)))
        batch.create_index("ix_audit_log_operation_id", ["operation_id"], unique=True)


def downgrade() -> None:
    # an operation that never ended (the process died) did not succeed
    audit_log = sa.table("audit_log", sa.column("success", sa.Boolean()))
    op.execute(audit_log.update().where(audit_log.c.success.is_(None)).values(success=False))
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_operation_id")
        batch.drop_column("operation_id")
        batch.alter_column("success", existing_type=sa.Boolean(), nullable=False)
