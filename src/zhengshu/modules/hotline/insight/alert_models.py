"""Tables of early warning (舆情预警): warnings, their recipients and their forwards."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.kernel.db import Base


class Alert(Base):
    """An early warning (预警): a spike of one category in one town (``kind`` spike), or an
    order whose text signals danger to life, public safety or a group incident (``kind``
    extreme). Lifecycle ``raised -> acknowledged -> handled | dismissed`` (handled needs a
    note, dismissed a reason); every change is a compare-and-set on ``version`` with an
    audit row. ``dedupe_key`` is unique: one burst (key and episode) or one order never
    raises twice. ``town_path`` copies the town's materialized path so that a town's
    people see only their town's warnings without a join."""

    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), index=True)  # spike | extreme
    status: Mapped[str] = mapped_column(String(20), index=True)
    level: Mapped[int] = mapped_column(Integer)  # 1 关注, 2 预警, 3 紧急
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)
    # spike: "<category>|<town id or ->"; extreme: the matched kinds and terms
    key: Mapped[str] = mapped_column(String(200), index=True)
    matches: Mapped[list[Any] | None]
    category: Mapped[str | None] = mapped_column(String(60), index=True)
    town_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT"), index=True
    )
    town_path: Mapped[str | None] = mapped_column(String(1000), index=True)
    case_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    window_minutes: Mapped[int | None] = mapped_column(Integer)
    observed: Mapped[int | None] = mapped_column(Integer)
    expected: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    raised_at: Mapped[datetime] = mapped_column(index=True)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    close_note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)


class AlertRecipient(Base):
    """One person a warning was delivered to (the duty supervisors and leaders, city-wide
    and of the warning's town), with when they read and acknowledged it and the SMS
    queued for them (``sms_status``: queued, or none when no SMS was owed or possible)."""

    __tablename__ = "alert_recipients"
    __table_args__ = (UniqueConstraint("alert_id", "person_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    person_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(30))
    delivered_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    sms_status: Mapped[str] = mapped_column(String(10))  # queued | none
    notification_id: Mapped[uuid.UUID | None]


class AlertForward(Base):
    """A warning sent on (转送) to the police (公安) or the cyberspace office (网信): one row
    per receiving endpoint (a partner webhook subscribed to the destination), delivered
    by the worker after commit, signed like every webhook, retried with backoff.
    ``state``: queued -> delivered | failed; ``no_endpoint`` when no endpoint is
    configured (the forward is recorded, and is handed over by other means)."""

    __tablename__ = "alert_forwards"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    destination: Mapped[str] = mapped_column(String(20))  # police | cyberspace
    note: Mapped[str | None] = mapped_column(Text)
    forwarded_by: Mapped[str] = mapped_column(String(200))
    forwarded_at: Mapped[datetime]
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="SET NULL"), index=True
    )
    delivery: Mapped[uuid.UUID]
    state: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
