"""Stage clocks: when a stage is due, when it turns yellow, and pausing.

- ``m`` limits run on the wall clock (an emergency does not wait for office hours);
- ``wh`` limits count office hours of working days;
- ``wd`` limits count working days from the next day and fall due at the close of the
  last one (the 12345 rule), including make-up working days (调休).
A deadline computed across a year whose holiday schedule is not yet published is
*provisional*, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from zhengshu.casework.definitions import Limit
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar


@dataclass(frozen=True)
class Deadline:
    due_at: datetime
    warn_at: datetime
    total: timedelta  # the stage's length in the limit's own kind of time
    provisional: bool


def close_of_day(calendar: WorkCalendar, day: datetime) -> datetime:
    """The end of the last work period on ``day`` (local), as an aware datetime."""
    local = day.astimezone(SHANGHAI).date()
    end = max(period[1] for period in calendar.work_periods)
    return datetime.combine(local, end, tzinfo=SHANGHAI).astimezone(UTC)


def deadline(calendar: WorkCalendar, start: datetime, limit: Limit, share: float) -> Deadline:
    """The due and warning instants of a stage that starts at ``start``."""
    if limit.unit == "m":
        total = timedelta(minutes=limit.amount)
        return Deadline(start + total, start + total * share, total, provisional=False)
    if limit.unit == "wh":
        total = timedelta(hours=limit.amount)
        due = calendar.add_working_time(start, total)
        warn = calendar.add_working_time(start, total * share)
        return Deadline(due.value, warn.value, total, due.provisional or warn.provisional)
    day = calendar.add_working_days(start.astimezone(SHANGHAI).date(), limit.amount)
    due_at = close_of_day(
        calendar, datetime.combine(day.value, datetime.min.time(), tzinfo=SHANGHAI)
    )
    span = calendar.working_time_between(start, due_at)
    warn = calendar.add_working_time(start, span.value * share)
    return Deadline(due_at, warn.value, span.value, day.provisional or span.provisional)


def remaining(calendar: WorkCalendar, now: datetime, due_at: datetime, unit: str) -> timedelta:
    """What is left of a stage at ``now`` (for pausing), in the limit's kind of time."""
    if unit == "m":
        return max(timedelta(0), due_at - now)
    return calendar.working_time_between(now, due_at).value


def resume(
    calendar: WorkCalendar,
    now: datetime,
    left: timedelta,
    total: timedelta,
    unit: str,
    share: float,
) -> Deadline:
    """Restart a paused stage with ``left`` to go; yellow when ``share`` of the whole is used."""
    before_warning = max(timedelta(0), left - total * (1 - share))
    if unit == "m":
        return Deadline(now + left, now + before_warning, total, provisional=False)
    due = calendar.add_working_time(now, left)
    warn = calendar.add_working_time(now, before_warning)
    return Deadline(due.value, warn.value, total, due.provisional or warn.provisional)


def extend(calendar: WorkCalendar, due_at: datetime, extra: Limit) -> tuple[datetime, bool]:
    """A due time moved by an approved extension (延期)."""
    if extra.unit == "m":
        return due_at + timedelta(minutes=extra.amount), False
    if extra.unit == "wh":
        result = calendar.add_working_time(due_at, timedelta(hours=extra.amount))
        return result.value, result.provisional
    day = calendar.add_working_days(due_at.astimezone(SHANGHAI).date(), extra.amount)
    moved = close_of_day(
        calendar, datetime.combine(day.value, datetime.min.time(), tzinfo=SHANGHAI)
    )
    return moved, day.provisional


def shift(
    calendar: WorkCalendar, instant: datetime, old_due: datetime, new_due: datetime, unit: str
) -> datetime:
    """Move ``instant`` by the time a deadline moved from ``old_due`` to ``new_due``
    (working time for working-hour and working-day limits)."""
    if unit == "m":
        return instant + (new_due - old_due)
    moved = calendar.working_time_between(old_due, new_due).value
    return calendar.add_working_time(instant, moved).value
