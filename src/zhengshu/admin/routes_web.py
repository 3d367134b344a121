"""Admin pages: the working-day calendar, the audit log (auditors), partner tokens."""

from __future__ import annotations

import calendar as monthcal
import uuid
from datetime import date, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI, ScheduleError, parse_schedule
from zhengshu.kernel.calendar_store import (
    CalendarOverride,
    CalendarYear,
    import_schedule,
    load_calendar,
    remove_override,
    set_override,
)
from zhengshu.kernel.errors import InvalidInput, PermissionDenied
from zhengshu.kernel.settings import parse_work_periods
from zhengshu.org import repository, service
from zhengshu.org.deps import DB, AppSettings
from zhengshu.org.models import ApiToken
from zhengshu.org.roles import ROLE_LABELS, Role
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

router = APIRouter(include_in_schema=False)


def _city_wide(db: DB, actor: Principal) -> bool:
    root = repository.root_unit(db)
    return root is not None and actor.covers(root.path)


def _require_city_calendar(db: DB, actor: Principal) -> None:
    """The calendar is the whole city's: a town's administrator may read it, not change it."""
    actor.require("kernel:calendar:write")
    if not _city_wide(db, actor):
        raise PermissionDenied(
            "只有市级管理员可以调整全市工作日历",
            "only a city-wide administrator may change the calendar",
        )


# The calendar page shows years a bureau can plan for; beyond them date arithmetic on
# the neighbouring months would leave Python's date range.
FIRST_YEAR, LAST_YEAR = 1990, 2200


def _month(value: str | None, today: date) -> date:
    if not value:
        return today.replace(day=1)
    try:
        year, month = (int(p) for p in value.split("-", 1))
        first = date(year, month, 1)
    except ValueError as exc:
        raise InvalidInput("月份格式应为 YYYY-MM", "month must be YYYY-MM") from exc
    _check_year(first)
    return first


def _check_year(day: date) -> None:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(
            f"日期须在 {FIRST_YEAR}–{LAST_YEAR} 年之间",
            f"dates must lie in {FIRST_YEAR}-{LAST_YEAR}",
        )


@router.get("/admin/calendar")
def calendar_page(
    request: Request,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    month: str | None = None,
    start: date | None = None,
    days: Annotated[int | None, Query(ge=0, le=366)] = None,
    flash: str | None = None,
) -> Response:
    actor.require("kernel:calendar:read")
    cal = load_calendar(db, parse_work_periods(settings.work_periods))
    today = clock.now().astimezone(SHANGHAI).date()
    first = _month(month, today)
    if start is not None:
        _check_year(start)
    result = cal.add_working_days(start, days) if start is not None and days is not None else None
    overrides = (
        db.execute(select(CalendarOverride).order_by(CalendarOverride.day.desc())).scalars().all()
    )
    years = db.execute(select(CalendarYear).order_by(CalendarYear.year)).scalars().all()
    imported = {row.year for row in years}
    package_years = sorted(y for y in cal.known_years() if y not in imported)
    prev_month = (first - timedelta(days=1)).replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return render(
        request,
        "admin/calendar.html",
        {
            "title": "工作日历",
            "weeks": [
                [cal.day_info(d) if d.month == first.month else None for d in week]
                for week in _weeks(first)
            ],
            "first": first,
            "prev": prev_month,
            "next": next_month,
            "today": today,
            "start": start or today,
            "days": days if days is not None else 5,
            "result": result,
            "overrides": overrides,
            "years": years,
            "package_years": (package_years[0], package_years[-1]) if package_years else None,
            "next_year": today.year + 1,
            "next_year_known": cal.is_known_year(today.year + 1),
            "can_write": actor.can("kernel:calendar:write") and _city_wide(db, actor),
            "flash": flash,
        },
    )


def _weeks(first: date) -> list[list[date]]:
    return monthcal.Calendar().monthdatescalendar(first.year, first.month)


@router.post("/admin/calendar/override")
def calendar_override(
    db: DB,
    actor: PageActor,
    day: Annotated[date, Form()],
    kind: Annotated[str, Form(pattern="^(work|off)$")],
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    _require_city_calendar(db, actor)
    set_override(db, actor, day=day, is_workday=kind == "work", name=name)
    return RedirectResponse(
        f"/admin/calendar?month={day:%Y-%m}&flash={quote(f'已设置 {day}')}", status_code=303
    )


@router.post("/admin/calendar/override/delete")
def calendar_override_delete(db: DB, actor: PageActor, day: Annotated[date, Form()]) -> Response:
    _require_city_calendar(db, actor)
    remove_override(db, actor, day=day)
    return RedirectResponse(
        f"/admin/calendar?month={day:%Y-%m}&flash={quote(f'已恢复 {day}')}", status_code=303
    )


@router.post("/admin/calendar/import")
def calendar_import(
    db: DB,
    actor: PageActor,
    year: Annotated[int, Form(ge=2000, le=2100)],
    schedule: Annotated[str, Form(max_length=50_000)],
) -> Response:
    _require_city_calendar(db, actor)
    try:
        entries = parse_schedule(schedule, year=year)
    except ScheduleError as exc:
        raise InvalidInput(
            "节假日安排有误，未导入",
            "the schedule has errors; nothing imported",
            code="bad_schedule",
            details={"errors": [str(exc)]},
        ) from exc
    import_schedule(db, actor, year=year, entries=entries)
    msg = f"已导入 {year} 年安排：{len(entries)} 天"
    return RedirectResponse(f"/admin/calendar?month={year}-01&flash={quote(msg)}", status_code=303)


# --- audit ---------------------------------------------------------------------------


@router.get("/admin/audit")
def audit_page(
    request: Request,
    db: DB,
    actor: PageActor,
    action: Annotated[str | None, Query(max_length=100)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    verify: int = 0,
) -> Response:
    """The audit log, newest first; auditors may verify the whole chain here."""
    actor.require("kernel:audit:read")
    if not _city_wide(db, actor):
        raise PermissionDenied(
            "审计日志不分辖区，只有市级安全审计员可以查看",
            "the audit log is for city-wide auditors",
        )
    query = select(audit.AuditEntry).order_by(audit.AuditEntry.seq.desc()).limit(100)
    if action:
        query = query.where(audit.AuditEntry.action.startswith(action.strip()))
    if entity_id:
        query = query.where(audit.AuditEntry.entity_id == entity_id.strip())
    if before_seq:
        query = query.where(audit.AuditEntry.seq < before_seq)
    rows = db.execute(query).scalars().all()
    report = None
    if verify:
        actor.require("kernel:audit:verify")
        report = audit.verify(db)
    return render(
        request,
        "admin/audit.html",
        {
            "title": "审计日志",
            "rows": rows,
            "action": action or "",
            "entity_id": entity_id or "",
            "report": report,
            "can_verify": actor.can("kernel:audit:verify"),
            "more": rows[-1].seq if len(rows) == 100 else None,
        },
    )


# --- partner tokens ------------------------------------------------------------------


@router.get("/admin/tokens")
def tokens_page(
    request: Request, db: DB, actor: PageActor, issued: str | None = None, flash: str | None = None
) -> Response:
    actor.require("org:token:write")
    units = repository.all_units(db, actor)
    in_scope = {u.id for u in units}
    tokens = [
        t
        for t in db.execute(
            select(ApiToken).where(ApiToken.kind != "login").order_by(ApiToken.created_at.desc())
        ).scalars()
        if t.unit_id in in_scope
    ]
    names = {u.id: u.name for u in units}
    return render(
        request,
        "admin/tokens.html",
        {
            "title": "接口令牌",
            "tokens": tokens,
            "unit_names": names,
            "units": units,
            "issued": issued,
            "flash": flash,
            "role_labels": ROLE_LABELS,
            "roles": list(Role),
            "now": clock.now(),
        },
    )


@router.post("/admin/tokens")
async def token_issue(request: Request, db: DB, actor: PageActor) -> Response:
    form = await request.form()
    try:
        unit_id = uuid.UUID(str(form.get("unit_id", "")))
        roles = [Role(str(r)) for r in form.getlist("roles")] or [Role.PARTNER]
    except ValueError as exc:
        raise InvalidInput("请选择单位和角色", "choose a unit and roles") from exc
    kind = str(form.get("kind", "partner"))
    if kind not in {"partner", "open311"}:
        raise InvalidInput("令牌类型无效", "unknown token kind")
    name = str(form.get("name", "")).strip()[:100]
    if not name:
        raise InvalidInput("请填写对接系统名称", "name required")
    plaintext, _token = service.issue_partner_token(
        db, actor, name=name, kind=kind, unit_id=unit_id, roles=roles
    )
    # The secret is shown once on the next page and never stored in clear.
    return render(
        request,
        "admin/token_issued.html",
        {"title": "令牌已签发", "token": plaintext, "name": name},
    )


@router.post("/admin/tokens/{token_id}/revoke")
def token_revoke(token_id: uuid.UUID, db: DB, actor: PageActor) -> Response:
    service.revoke_token(db, actor, token_id=token_id)
    return RedirectResponse(f"/admin/tokens?flash={quote('已吊销')}", status_code=303)
