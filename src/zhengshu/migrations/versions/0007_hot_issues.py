"""hot issues, weekly problem, hard problems

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hard_problems",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("category_codes", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("target_kind", sa.String(length=20), nullable=False),
        sa.Column("target_value", sa.Float(), nullable=False),
        sa.Column("baseline_month", sa.String(length=7), nullable=True),
        sa.Column("owner_unit_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_unit_id"],
            ["units.id"],
            name=op.f("fk_hard_problems_owner_unit_id_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hard_problems")),
        sa.UniqueConstraint("name", name=op.f("uq_hard_problems_name")),
    )
    with op.batch_alter_table("hard_problems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hard_problems_active"), ["active"], unique=False)

    op.create_table(
        "hot_issues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("place", sa.String(length=100), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("town_unit_id", sa.Uuid(), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_orders", sa.Integer(), nullable=False),
        sa.Column("n_callers", sa.Integer(), nullable=False),
        sa.Column("growth", sa.Float(), nullable=False),
        sa.Column("unresolved_share", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["town_unit_id"],
            ["units.id"],
            name=op.f("fk_hot_issues_town_unit_id_units"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hot_issues")),
    )
    with op.batch_alter_table("hot_issues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hot_issues_score"), ["score"], unique=False)
        batch_op.create_index(batch_op.f("ix_hot_issues_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_hot_issues_town_unit_id"), ["town_unit_id"], unique=False
        )

    op.create_table(
        "hard_problem_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["hard_problems.id"],
            name=op.f("fk_hard_problem_versions_problem_id_hard_problems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hard_problem_versions")),
        sa.UniqueConstraint(
            "problem_id", "version", name=op.f("uq_hard_problem_versions_problem_id_version")
        ),
    )
    with op.batch_alter_table("hard_problem_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hard_problem_versions_problem_id"), ["problem_id"], unique=False
        )

    op.create_table(
        "hot_issue_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("issue_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("moved_by", sa.String(length=200), nullable=True),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["hot_issues.id"],
            name=op.f("fk_hot_issue_orders_issue_id_hot_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["cases.id"],
            name=op.f("fk_hot_issue_orders_order_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hot_issue_orders")),
        sa.UniqueConstraint("order_id", name=op.f("uq_hot_issue_orders_order_id")),
    )
    with op.batch_alter_table("hot_issue_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hot_issue_orders_issue_id"), ["issue_id"], unique=False
        )

    op.create_table(
        "weekly_problems",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("hot_issue_id", sa.Uuid(), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("conclusion", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["hot_issue_id"],
            ["hot_issues.id"],
            name=op.f("fk_weekly_problems_hot_issue_id_hot_issues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_problems")),
        sa.UniqueConstraint("week", name=op.f("uq_weekly_problems_week")),
    )
    with op.batch_alter_table("weekly_problems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_weekly_problems_status"), ["status"], unique=False)

    op.create_table(
        "weekly_problem_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("supervision_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["cases.id"],
            name=op.f("fk_weekly_problem_orders_order_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["weekly_problems.id"],
            name=op.f("fk_weekly_problem_orders_problem_id_weekly_problems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supervision_id"],
            ["supervisions.id"],
            name=op.f("fk_weekly_problem_orders_supervision_id_supervisions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_problem_orders")),
        sa.UniqueConstraint(
            "problem_id", "order_id", name=op.f("uq_weekly_problem_orders_problem_id_order_id")
        ),
    )
    with op.batch_alter_table("weekly_problem_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_weekly_problem_orders_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_weekly_problem_orders_problem_id"), ["problem_id"], unique=False
        )

    op.create_table(
        "weekly_problem_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["weekly_problems.id"],
            name=op.f("fk_weekly_problem_reports_problem_id_weekly_problems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
            name=op.f("fk_weekly_problem_reports_unit_id_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_problem_reports")),
    )
    with op.batch_alter_table("weekly_problem_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_weekly_problem_reports_problem_id"), ["problem_id"], unique=False
        )

    op.create_table(
        "weekly_problem_units",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("problem_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("unit_path", sa.String(length=1000), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["weekly_problems.id"],
            name=op.f("fk_weekly_problem_units_problem_id_weekly_problems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
            name=op.f("fk_weekly_problem_units_unit_id_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_problem_units")),
        sa.UniqueConstraint(
            "problem_id", "unit_id", name=op.f("uq_weekly_problem_units_problem_id_unit_id")
        ),
    )
    with op.batch_alter_table("weekly_problem_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_weekly_problem_units_problem_id"), ["problem_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_weekly_problem_units_unit_path"), ["unit_path"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("weekly_problem_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weekly_problem_units_unit_path"))
        batch_op.drop_index(batch_op.f("ix_weekly_problem_units_problem_id"))

    op.drop_table("weekly_problem_units")
    with op.batch_alter_table("weekly_problem_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weekly_problem_reports_problem_id"))

    op.drop_table("weekly_problem_reports")
    with op.batch_alter_table("weekly_problem_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weekly_problem_orders_problem_id"))
        batch_op.drop_index(batch_op.f("ix_weekly_problem_orders_order_id"))

    op.drop_table("weekly_problem_orders")
    with op.batch_alter_table("weekly_problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weekly_problems_status"))

    op.drop_table("weekly_problems")
    with op.batch_alter_table("hot_issue_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hot_issue_orders_issue_id"))

    op.drop_table("hot_issue_orders")
    with op.batch_alter_table("hard_problem_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hard_problem_versions_problem_id"))

    op.drop_table("hard_problem_versions")
    with op.batch_alter_table("hot_issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hot_issues_town_unit_id"))
        batch_op.drop_index(batch_op.f("ix_hot_issues_status"))
        batch_op.drop_index(batch_op.f("ix_hot_issues_score"))

    op.drop_table("hot_issues")
    with op.batch_alter_table("hard_problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hard_problems_active"))

    op.drop_table("hard_problems")
