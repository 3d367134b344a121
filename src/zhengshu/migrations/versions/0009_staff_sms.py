"""messages to staff: a notification need not belong to an order

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 03:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("case_id", existing_type=sa.Uuid(), nullable=True)


def downgrade() -> None:
    # Staff messages without an order cannot stay in a table that requires one.
    op.execute("DELETE FROM notifications WHERE case_id IS NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("case_id", existing_type=sa.Uuid(), nullable=False)
