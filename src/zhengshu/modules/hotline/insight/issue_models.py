"""Tables of hot issues (热点问题),
the weekly top problem (每周一题) and the hard-problem list (难题清单)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.kernel.db import Base, new_id


class HotIssue(Base):
    """A cluster of orders about one problem at one place or for one group (热点问题).

    Made and kept up to date by ``issues.rescan`` (hourly, or the 重新计算 button); a
    cluster that continues from one scan to the next keeps its id (matched by the orders
    it shares). The figures are recomputed from the linked orders after every scan or
    manual move. ``status``: ``active`` while the scan still finds it, ``closed`` once
    it no longer does (its orders stay linked). ``town_unit_id`` is the town most of its
    orders are in (for display); jurisdiction is checked through the orders themselves.
    """

    __tablename__ = "hot_issues"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    description: Mapped[str] = mapped_column(String(200))
    place: Mapped[str | None] = mapped_column(String(100))
    keywords: Mapped[list[Any]]
    town_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL"), index=True
    )
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    n_orders: Mapped[int] = mapped_column(Integer, default=0)
    n_callers: Mapped[int] = mapped_column(Integer, default=0)
    growth: Mapped[float] = mapped_column(Float, default=0.0)
    unresolved_share: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    status: Mapped[str] = mapped_column(String(10), index=True)  # active | closed
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it


class HotIssueOrder(Base):
    """Where an order stands among hot issues: one row per order at most.

    ``issue_id`` null with ``pinned`` means a person took the order out of its cluster:
    the scan never puts it back. ``pinned`` rows (moved by hand) are never changed by a
    scan; the others follow the latest scan.
    """

    __tablename__ = "hot_issue_orders"
    __table_args__ = (UniqueConstraint("order_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    issue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("hot_issues.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    moved_by: Mapped[str | None] = mapped_column(String(200))
    moved_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(String(500))
    linked_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it


class WeeklyProblem(Base):
    """每周一题: the one problem a supervisor picks for an ISO week (``2026-W49``).

    Picking it opens formal supervision (督办) on each linked open order, so the
    responsible units see it on their board; they post progress reports until the
    supervisor closes it with a conclusion. One per week (unique ``week``)."""

    __tablename__ = "weekly_problems"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    week: Mapped[str] = mapped_column(String(8), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(80))  # the candidate's key
    hot_issue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("hot_issues.id", ondelete="SET NULL")
    )
    deadline: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10), index=True)  # open | closed
    conclusion: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it


class WeeklyProblemOrder(Base):
    """An order behind a weekly problem, with the supervision opened on it (if it was
    still open when the problem was picked)."""

    __tablename__ = "weekly_problem_orders"
    __table_args__ = (UniqueConstraint("problem_id", "order_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    problem_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("weekly_problems.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    supervision_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("supervisions.id", ondelete="SET NULL")
    )


class WeeklyProblemUnit(Base):
    """A unit responsible for a weekly problem: the lead (牵头) or another one.
    ``unit_path`` copies the unit's path so jurisdiction filters need no join."""

    __tablename__ = "weekly_problem_units"
    __table_args__ = (UniqueConstraint("problem_id", "unit_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    problem_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("weekly_problems.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    unit_path: Mapped[str] = mapped_column(String(1000), index=True)
    role: Mapped[str] = mapped_column(String(10))  # lead | co


class WeeklyProblemReport(Base):
    """A progress report (进展报告) on a weekly problem by a responsible unit."""

    __tablename__ = "weekly_problem_reports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    problem_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("weekly_problems.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class HardProblem(Base):
    """A tracked hard problem (难题清单), e.g. 小区电动车停放充电 or 占道经营.

    An order matches when its category is one of ``category_codes`` (any category when
    empty) and its title or text holds one of ``keywords`` (any text when empty); a
    keyword ``a+b`` needs both words. The target is ``resolution_rate`` (solved share of
    called-back orders in a month at least ``target_value``) or ``volume_drop`` (a
    month's volume at most ``1 - target_value`` of ``baseline_month``'s). Every change
    raises ``version`` and keeps the previous state in ``hard_problem_versions``."""

    __tablename__ = "hard_problems"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    category_codes: Mapped[list[Any]]
    keywords: Mapped[list[Any]]
    target_kind: Mapped[str] = mapped_column(String(20))  # resolution_rate | volume_drop
    target_value: Mapped[float] = mapped_column(Float)
    baseline_month: Mapped[str | None] = mapped_column(String(7))  # 2026-01
    owner_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT")
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it


class HardProblemVersion(Base):
    """One saved state of a hard problem: the history of its edits."""

    __tablename__ = "hard_problem_versions"
    __table_args__ = (UniqueConstraint("problem_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    problem_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("hard_problems.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime]
