"""fast-lane intake receipts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_receipts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("caller", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.JSON(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_intake_receipts_case_id_cases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_receipts")),
        sa.UniqueConstraint("caller", "key", name=op.f("uq_intake_receipts_caller_key")),
    )
    with op.batch_alter_table("intake_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_receipts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_intake_receipts_status_run_at", ["status", "run_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("intake_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_receipts_status_run_at")
        batch_op.drop_index(batch_op.f("ix_intake_receipts_case_id"))
    op.drop_table("intake_receipts")
