"""The calendar's local tables: admin overrides and officially imported years.

``calendar_overrides`` holds single days an admin decided locally (a typhoon day off, a
local make-up day) and the days of an official schedule imported for a year the
``chinesecalendar`` package does not know yet. ``calendar_years`` records such imports:
once a year is imported, time limits in that year are no longer provisional.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

from sqlalchemy import Date, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import ScheduleEntry, WorkCalendar
from zhengshu.kernel.db import Base
from zhengshu.kernel.errors import InvalidInput

SOURCE_LOCAL = "local"
SOURCE_OFFICIAL = "official"
PERMISSION = "kernel:calendar:write"


class CalendarOverride(Base):
    """A day whose working status is decided here, not by the statutory package."""

    __tablename__ = "calendar_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool]
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class CalendarYear(Base):
    """A year whose official schedule an admin imported (not provisional any more)."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    days: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime]


def load_calendar(
    session: Session, work_periods: Sequence[tuple[int, int]] = ((510, 720), (840, 1050))
) -> WorkCalendar:
    """The calendar as it stands: statutory package + local overrides + imported years."""
    overrides = {
        row.day: (row.is_workday, row.name)
        for row in session.execute(select(CalendarOverride)).scalars()
    }
    years = session.execute(select(CalendarYear.year)).scalars().all()
    periods = tuple(
        (time(start // 60, start % 60), time(end // 60 % 24, end % 60) if end < 1440 else time.max)
        for start, end in work_periods
    )
    return WorkCalendar(overrides=overrides, official_years=years, work_periods=periods)


def set_override(
    session: Session, actor: Principal, *, day: date, is_workday: bool, name: str
) -> CalendarOverride:
    """Decide one day locally. Permission ``kernel:calendar:write``; audited."""
    actor.require(PERMISSION)
    name = name.strip()
    if not name:
        raise InvalidInput(
            "请填写说明（如：台风停工）", "a note is required (e.g. typhoon day off)"
        )
    row = session.get(CalendarOverride, day)
    before = _snapshot(row) if row else None
    if row is None:
        row = CalendarOverride(day=day)
        session.add(row)
    row.is_workday, row.name, row.source = is_workday, name[:100], SOURCE_LOCAL
    row.updated_by, row.updated_at = actor.name, clock.now()
    session.flush()
    audit.record(
        session,
        actor,
        "kernel.calendar.override",
        entity_type="calendar_day",
        entity_id=day.isoformat(),
        before=before,
        after=_snapshot(row),
    )
    return row


def remove_override(session: Session, actor: Principal, *, day: date) -> None:
    """Give a day back to the statutory schedule. Permission ``kernel:calendar:write``."""
    actor.require(PERMISSION)
    row = session.get(CalendarOverride, day)
    if row is None:
        raise InvalidInput(f"{day} 没有本地调整", f"{day} has no local override")
    before = _snapshot(row)
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor,
        "kernel.calendar.override_removed",
        entity_type="calendar_day",
        entity_id=day.isoformat(),
        before=before,
        after=None,
    )


def import_schedule(
    session: Session, actor: Principal, *, year: int, entries: Sequence[ScheduleEntry]
) -> CalendarYear:
    """Import the State Council's schedule for ``year``: the holidays and make-up working
    days it lists (all other days follow Monday to Friday). Replaces an earlier import of
    the same year; local overrides of single days stay. Audited."""
    actor.require(PERMISSION)
    if not entries:
        raise InvalidInput("安排为空", "the schedule is empty")
    if any(entry.day.year != year for entry in entries):
        raise InvalidInput(f"所有日期必须属于 {year} 年", f"every date must be in {year}")
    session.execute(
        delete(CalendarOverride).where(
            CalendarOverride.source == SOURCE_OFFICIAL,
            CalendarOverride.day >= date(year, 1, 1),
            CalendarOverride.day <= date(year, 12, 31),
        )
    )
    local_days = set(
        session.execute(
            select(CalendarOverride.day).where(
                CalendarOverride.day >= date(year, 1, 1), CalendarOverride.day <= date(year, 12, 31)
            )
        ).scalars()
    )
    now = clock.now()
    for entry in entries:
        if entry.day in local_days:
            continue
        session.add(
            CalendarOverride(
                day=entry.day,
                is_workday=entry.is_workday,
                name=entry.name[:100],
                source=SOURCE_OFFICIAL,
                updated_by=actor.name,
                updated_at=now,
            )
        )
    record = session.get(CalendarYear, year)
    before = {"days": record.days, "imported_by": record.imported_by} if record else None
    if record is None:
        record = CalendarYear(year=year)
        session.add(record)
    record.days, record.imported_by, record.imported_at = len(entries), actor.name, now
    session.flush()
    audit.record(
        session,
        actor,
        "kernel.calendar.import",
        entity_type="calendar_year",
        entity_id=str(year),
        before=before,
        after={
            "days": len(entries),
            "holidays": sum(not e.is_workday for e in entries),
            "workdays": sum(e.is_workday for e in entries),
        },
    )
    return record


def _snapshot(row: CalendarOverride) -> dict[str, object]:
    return {"is_workday": row.is_workday, "name": row.name, "source": row.source}
