"""Calendar API under ``/api/v1/calendar``: day status and due dates for other systems."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from zhengshu.kernel.calendar_store import load_calendar
from zhengshu.kernel.settings import parse_work_periods
from zhengshu.org.deps import DB, Actor, AppSettings

router = APIRouter(prefix="/api/v1/calendar", tags=["工作日历 calendar"])


class DayRead(BaseModel):
    day: date
    is_workday: bool
    name: str | None
    source: str
    provisional: bool


class DueDate(BaseModel):
    start: date
    working_days: int
    due: date
    provisional: bool


@router.get("/days/{day}", response_model=DayRead)
def day_status(day: date, db: DB, actor: Actor, settings: AppSettings) -> DayRead:
    """Whether ``day`` is a working day, and why (statutory, override or weekday rule)."""
    actor.require("kernel:calendar:read")
    info = load_calendar(db, parse_work_periods(settings.work_periods)).day_info(day)
    return DayRead(
        day=info.day,
        is_workday=info.is_workday,
        name=info.name,
        source=info.source,
        provisional=info.provisional,
    )


@router.get("/add-working-days", response_model=DueDate)
def add_working_days(
    db: DB,
    actor: Actor,
    settings: AppSettings,
    start: date,
    days: Annotated[int, Query(ge=0, le=3660)],
) -> DueDate:
    """The date ``days`` working days after ``start``, counted from the next day (the
    12345 rule); ``provisional`` when a year without a published schedule is involved."""
    actor.require("kernel:calendar:read")
    result = load_calendar(db, parse_work_periods(settings.work_periods)).add_working_days(
        start, days
    )
    return DueDate(start=start, working_days=days, due=result.value, provisional=result.provisional)
