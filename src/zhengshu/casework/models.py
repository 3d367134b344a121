"""Tables of the case engine: cases, their units, their timeline, supervision, numbers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.kernel.db import Base, new_id


class Case(Base):
    """One case of any type (a 12345 work order is a case of type ``hotline``).

    ``status`` moves only through the workflow's actions, by compare-and-set on
    ``version``. The stage clock: ``stage`` runs from ``stage_started_at`` to ``due_at``
    (yellow at ``warn_at``); in a paused state ``paused_remaining_seconds`` holds what was
    left. ``due_provisional`` is set when a limit was counted on a guessed (Monday to
    Friday) calendar because the year's official schedule was not yet known.
    """

    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_type: Mapped[str] = mapped_column(String(20), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(30), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    title: Mapped[str] = mapped_column(String(200))
    request_type: Mapped[str | None] = mapped_column(String(30))
    category: Mapped[str | None] = mapped_column(String(60), index=True)
    urgency: Mapped[str] = mapped_column(String(20), default="normal")
    lead_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT"), index=True
    )
    stage: Mapped[str | None] = mapped_column(String(30))
    stage_started_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    warn_at: Mapped[datetime | None] = mapped_column(index=True)
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    stage_total_seconds: Mapped[int | None] = mapped_column(Integer)
    paused_remaining_seconds: Mapped[int | None] = mapped_column(Integer)
    warning_level: Mapped[str] = mapped_column(String(10), default="none", index=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cases.id", ondelete="RESTRICT"), index=True
    )
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it


class CaseUnit(Base):
    """A unit on a case: the lead unit (主办) or a co-handling unit (协办). ``unit_path``
    copies the unit's materialized path so jurisdiction filters need no join."""

    __tablename__ = "case_units"
    __table_args__ = (UniqueConstraint("case_id", "unit_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    unit_path: Mapped[str] = mapped_column(String(1000), index=True)
    role: Mapped[str] = mapped_column(String(10))  # lead | co
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    assigned_at: Mapped[datetime]


class CaseEvent(Base):
    """One entry of a case's timeline: every transition and every note, in order. KPIs are
    computed from these rows, so they can be recomputed when a definition changes."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    label: Mapped[str] = mapped_column(String(60))
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str | None] = mapped_column(String(30))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]


class Supervision(Base):
    """A reminder (催办) or formal supervision (督办) with its own deadline; escalated a
    level when that deadline passes unanswered."""

    __tablename__ = "supervisions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # urge | supervise
    level: Mapped[int] = mapped_column(Integer, default=1)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(String(300))
    issued_by: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    closed_at: Mapped[datetime | None]


class CaseCounter(Base):
    """Daily business-number counters (``GD20261128000123``): one row per prefix and day."""

    __tablename__ = "case_counters"

    prefix: Mapped[str] = mapped_column(String(10), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
