"""early warning: alerts and deliveries

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=True),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("town_unit_id", sa.Uuid(), nullable=True),
        sa.Column("town_path", sa.String(length=1000), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_minutes", sa.Integer(), nullable=True),
        sa.Column("observed", sa.Integer(), nullable=True),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_alerts_case_id_cases"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["town_unit_id"],
            ["units.id"],
            name=op.f("fk_alerts_town_unit_id_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_alerts_dedupe_key")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for column in (
            "case_id",
            "category",
            "key",
            "kind",
            "raised_at",
            "status",
            "town_path",
            "town_unit_id",
        ):
            batch_op.create_index(batch_op.f(f"ix_alerts_{column}"), [column], unique=False)

    op.create_table(
        "alert_recipients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("person_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sms_status", sa.String(length=10), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_recipients_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_alert_recipients_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_recipients")),
        sa.UniqueConstraint(
            "alert_id", "person_id", name=op.f("uq_alert_recipients_alert_id_person_id")
        ),
    )
    with op.batch_alter_table("alert_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_recipients_alert_id"), ["alert_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alert_recipients_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "alert_forwards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("destination", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("forwarded_by", sa.String(length=200), nullable=False),
        sa.Column("forwarded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=True),
        sa.Column("delivery", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_forwards_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_alert_forwards_webhook_id_webhooks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_forwards")),
    )
    with op.batch_alter_table("alert_forwards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_forwards_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_forwards_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_alert_forwards_webhook_id"), ["webhook_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("alert_forwards")
    op.drop_table("alert_recipients")
    op.drop_table("alerts")
