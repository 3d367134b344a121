"""Tables of the reports: per-order facts and their daily rollup.

``order_facts`` holds one row per 12345 order, derived from the order, its case and the
case's timeline (``facts.refresh``); ``order_fact_daily`` sums those rows per
registration day x lead unit x town x category x channel. Both are derived data: they
can be dropped and rebuilt from the timelines at any time, so they carry no foreign keys
(a report replica or a benchmark may load them on their own) and are never audited.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Float, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.casework.models import Case
from zhengshu.kernel.db import Base

# The flags of a fact row, in the order the rollup sums them. A KPI's numerator and
# denominator name these (or ``orders``, the count of rows).
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
# Duration columns (minutes); the rollup keeps their sums.
DURATIONS = ("response_minutes",)
# The dimensions of the daily rollup, and of its narrower twin (reports by unit, town or
# period, the most read, need neither category nor channel).
DIMENSIONS = ("day", "lead_unit_id", "town_unit_id", "category", "channel")
UNIT_DIMENSIONS = ("day", "lead_unit_id", "town_unit_id")


class OrderFact(Base):
    """What the KPIs need to know about one order, read from its timeline.

    - ``registered_at`` / ``day``: registration instant and its Asia/Shanghai date; an
      order belongs to the period it was registered in.
    - ``town_unit_id``: the town (镇街/园区) of the order's location, else of its lead
      unit; ``lead_unit_id``: the lead unit (主办) now.
    - flags (see ``facts.py`` for each rule): dispatched, signed, signed_on_time,
      replied, closed, closed_on_time, answered_directly, called_back, solved, satisfied,
      reworked, emergency, responded (an emergency with a measured response).
    - ``response_minutes``: emergencies only, registration -> the first sign-for (or the
      transfer to 110/119/120).
    - ``case_updated_at``: the case's ``updated_at`` the row was computed from (the
      refresh watermark); ``refreshed_at``: when.
    """

    __tablename__ = "order_facts"
    __table_args__ = (
        Index("ix_order_facts_registered_at_lead_unit_id", "registered_at", "lead_unit_id"),
        # The emergencies of a period with everything their median and p90 are grouped
        # by: a small partial index the duration query reads without touching the table.
        Index(
            "ix_order_facts_responded",
            "registered_at",
            "lead_unit_id",
            "town_unit_id",
            "category",
            "channel",
            "response_minutes",
            postgresql_where=text("responded"),
            sqlite_where=text("responded"),
        ),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    registered_at: Mapped[datetime]
    day: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(60))
    request_type: Mapped[str | None] = mapped_column(String(30))
    urgency: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(30))
    town_unit_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    lead_unit_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False)
    signed: Mapped[bool] = mapped_column(Boolean, default=False)
    signed_on_time: Mapped[bool] = mapped_column(Boolean, default=False)
    replied: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_on_time: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_directly: Mapped[bool] = mapped_column(Boolean, default=False)
    called_back: Mapped[bool] = mapped_column(Boolean, default=False)
    solved: Mapped[bool] = mapped_column(Boolean, default=False)
    satisfied: Mapped[bool] = mapped_column(Boolean, default=False)
    reworked: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    responded: Mapped[bool] = mapped_column(Boolean, default=False)
    dispatched_at: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    response_minutes: Mapped[float | None] = mapped_column(Float)
    case_updated_at: Mapped[datetime] = mapped_column(index=True)
    refreshed_at: Mapped[datetime]


class _DailySums:
    """What both rollups hold: a registration day, its lead unit and town, the number of
    orders and the SUM of every fact flag and of ``response_minutes``."""

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    day: Mapped[date] = mapped_column(Date, index=True)
    lead_unit_id: Mapped[uuid.UUID | None]
    town_unit_id: Mapped[uuid.UUID | None]
    orders: Mapped[int] = mapped_column(Integer)
    dispatched: Mapped[int] = mapped_column(Integer)
    signed: Mapped[int] = mapped_column(Integer)
    signed_on_time: Mapped[int] = mapped_column(Integer)
    replied: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    closed_on_time: Mapped[int] = mapped_column(Integer)
    answered_directly: Mapped[int] = mapped_column(Integer)
    called_back: Mapped[int] = mapped_column(Integer)
    solved: Mapped[int] = mapped_column(Integer)
    satisfied: Mapped[int] = mapped_column(Integer)
    reworked: Mapped[int] = mapped_column(Integer)
    emergency: Mapped[int] = mapped_column(Integer)
    responded: Mapped[int] = mapped_column(Integer)
    response_minutes: Mapped[float] = mapped_column(Float)


class OrderFactDaily(_DailySums, Base):
    """The facts summed per registration day x lead unit x town x category x channel:
    ``orders`` rows, the SUM of every flag and of ``response_minutes``. Recomputed for a
    whole day whenever a fact of an order registered that day changes, so it always equals
    ``GROUP BY`` over the facts. Reports for whole days read this table."""

    __tablename__ = "order_fact_daily"

    category: Mapped[str | None] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(20))


class OrderFactDailyUnit(_DailySums, Base):
    """The same sums per registration day x lead unit x town only. A month of the city
    is a few thousand rows here instead of a few hundred thousand in ``order_fact_daily``,
    so reports by unit, by town, by period or without grouping read this one. Rebuilt with
    ``order_fact_daily`` from the same facts."""

    __tablename__ = "order_fact_daily_units"


# The facts' refresh looks for cases changed since its watermark every minute: without
# this index that is a scan of every case. Declared here, beside its only reader.
Index("ix_cases_updated_at", Case.updated_at)
