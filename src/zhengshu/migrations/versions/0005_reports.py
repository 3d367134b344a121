"""reports: per-order facts and daily rollup

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGS = (
    "dispatched",
    "signed",
    "signed_on_time",
    "replied",
    "closed",
    "closed_on_time",
    "answered_directly",
    "called_back",
    "solved",
    "satisfied",
    "reworked",
    "emergency",
    "responded",
)


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_updated_at", ["updated_at"], unique=False)
    op.create_table(
        "order_facts",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("request_type", sa.String(length=30), nullable=True),
        sa.Column("urgency", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("town_unit_id", sa.Uuid(), nullable=True),
        sa.Column("lead_unit_id", sa.Uuid(), nullable=True),
        *(sa.Column(flag, sa.Boolean(), nullable=False) for flag in FLAGS),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_minutes", sa.Float(), nullable=True),
        sa.Column("case_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_order_facts")),
    )
    with op.batch_alter_table("order_facts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_order_facts_registered_at_lead_unit_id",
            ["registered_at", "lead_unit_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_order_facts_responded",
            [
                "registered_at",
                "lead_unit_id",
                "town_unit_id",
                "category",
                "channel",
                "response_minutes",
            ],
            unique=False,
            postgresql_where=sa.text("responded"),
            sqlite_where=sa.text("responded"),
        )
        batch_op.create_index(batch_op.f("ix_order_facts_day"), ["day"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_order_facts_case_updated_at"), ["case_updated_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_order_facts_lead_unit_id"), ["lead_unit_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_order_facts_town_unit_id"), ["town_unit_id"], unique=False
        )

    op.create_table(
        "order_fact_daily",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("lead_unit_id", sa.Uuid(), nullable=True),
        sa.Column("town_unit_id", sa.Uuid(), nullable=True),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        *(sa.Column(flag, sa.Integer(), nullable=False) for flag in FLAGS),
        sa.Column("response_minutes", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_fact_daily")),
    )
    with op.batch_alter_table("order_fact_daily", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_fact_daily_day"), ["day"], unique=False)

    op.create_table(
        "order_fact_daily_units",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("lead_unit_id", sa.Uuid(), nullable=True),
        sa.Column("town_unit_id", sa.Uuid(), nullable=True),
        sa.Column("orders", sa.Integer(), nullable=False),
        *(sa.Column(flag, sa.Integer(), nullable=False) for flag in FLAGS),
        sa.Column("response_minutes", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_fact_daily_units")),
    )
    with op.batch_alter_table("order_fact_daily_units", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_fact_daily_units_day"), ["day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_fact_daily_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_fact_daily_units_day"))
    op.drop_table("order_fact_daily_units")
    with op.batch_alter_table("order_fact_daily", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_fact_daily_day"))
    op.drop_table("order_fact_daily")
    with op.batch_alter_table("order_facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_facts_town_unit_id"))
        batch_op.drop_index(batch_op.f("ix_order_facts_lead_unit_id"))
        batch_op.drop_index(batch_op.f("ix_order_facts_case_updated_at"))
        batch_op.drop_index(batch_op.f("ix_order_facts_day"))
        batch_op.drop_index("ix_order_facts_responded")
        batch_op.drop_index("ix_order_facts_registered_at_lead_unit_id")
    op.drop_table("order_facts")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_updated_at")
