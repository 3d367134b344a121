"""Hot issues (热点问题),
the weekly top problem (每周一题) and the hard-problem list (难题清单) over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.datastructures import FormData

from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import InvalidInput, not_found
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.insight import hard, issues, weekly
from zhengshu.modules.hotline.insight.issue_models import (
    HardProblem,
    HotIssue,
    HotIssueOrder,
    WeeklyProblem,
)
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org import repository as org_repository
from zhengshu.org.deps import DB, Actor, AppSettings
from zhengshu.org.models import Unit
from zhengshu.org.roles import UnitKind
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

api = APIRouter(prefix="/api/v1", tags=["热点 hot issues"])
pages = APIRouter(include_in_schema=False)

WeekParam = Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$")]


# --- schemas -------------------------------------------------------------------------------


class HotIssueRead(BaseModel):
    id: uuid.UUID
    description: str
    place: str | None
    keywords: list[str]
    town_unit_id: uuid.UUID | None
    start_at: datetime | None
    end_at: datetime | None
    n_orders: int
    n_callers: int
    growth: float
    unresolved_share: float | None
    score: float
    status: str
    manual: bool
    updated_at: datetime


class HotIssueOrderRead(BaseModel):
    order_id: uuid.UUID
    number: str
    title: str
    status: str
    created_at: datetime
    town: str | None
    pinned: bool
    note: str | None


class HotIssueDetail(HotIssueRead):
    orders: list[HotIssueOrderRead]


class HotIssuePage(BaseModel):
    total: int
    items: list[HotIssueRead]


class MoveRequest(BaseModel):
    to_issue_id: uuid.UUID | None = None
    new_issue: bool = False
    note: str | None = Field(default=None, max_length=500)


class ScanRead(BaseModel):
    clustered: int
    issues: int
    created: int
    continued: int
    closed: int


class CandidateRead(BaseModel):
    key: str
    kind: str
    title: str
    reason: str
    score: float
    order_ids: list[uuid.UUID]
    hot_issue_id: uuid.UUID | None
    lead_unit_id: uuid.UUID | None


class PickRequest(BaseModel):
    week: str = Field(pattern=r"^\d{4}-W\d{2}$")
    candidate_key: str = Field(max_length=80)
    lead_unit_id: uuid.UUID
    co_unit_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)
    deadline: datetime | None = None
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)


class WeeklyProblemRead(BaseModel):
    id: uuid.UUID
    week: str
    title: str
    description: str
    source: str
    hot_issue_id: uuid.UUID | None
    deadline: datetime
    status: str
    conclusion: str | None
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    version: int


class WeeklyUnitRead(BaseModel):
    unit_id: uuid.UUID
    name: str
    role: str


class WeeklyOrderRead(BaseModel):
    order_id: uuid.UUID
    number: str
    title: str
    status: str
    supervision_id: uuid.UUID | None


class WeeklyReportRead(BaseModel):
    id: uuid.UUID
    unit_id: uuid.UUID | None
    unit: str | None
    author: str
    text: str
    created_at: datetime


class WeeklyProblemDetail(WeeklyProblemRead):
    units: list[WeeklyUnitRead]
    orders: list[WeeklyOrderRead]
    reports: list[WeeklyReportRead]


class ReportRequest(BaseModel):
    text: str = Field(min_length=1, max_length=5000)


class CloseRequest(BaseModel):
    conclusion: str = Field(min_length=1, max_length=5000)
    version: int | None = None


class HardProblemWrite(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    category_codes: list[str] = Field(default_factory=list, max_length=50)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    target_kind: str = Field(default="resolution_rate", pattern="^(resolution_rate|volume_drop)$")
    target_value: float = Field(default=0.9, gt=0, le=1)
    baseline_month: str | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    owner_unit_id: uuid.UUID | None = None
    active: bool = True
    note: str | None = Field(default=None, max_length=500)
    version: int | None = None


class MonthRead(BaseModel):
    month: str
    volume: int
    called_back: int
    solved: int
    resolution_rate: float | None


class HardProblemRead(BaseModel):
    id: uuid.UUID
    name: str
    category_codes: list[str]
    keywords: list[str]
    target_kind: str
    target_value: float
    baseline_month: str | None
    owner_unit_id: uuid.UUID | None
    active: bool
    note: str | None
    version: int
    updated_by: str
    updated_at: datetime


class HardProblemDetail(HardProblemRead):
    months: list[MonthRead]
    judged_month: str
    target_met: bool | None
    judged_value: float | None


# --- conversions ---------------------------------------------------------------------------


def _issue_read(row: HotIssue) -> HotIssueRead:
    return HotIssueRead(
        id=row.id,
        description=row.description,
        place=row.place,
        keywords=[str(k) for k in row.keywords],
        town_unit_id=row.town_unit_id,
        start_at=row.start_at,
        end_at=row.end_at,
        n_orders=row.n_orders,
        n_callers=row.n_callers,
        growth=row.growth,
        unresolved_share=row.unresolved_share,
        score=row.score,
        status=row.status,
        manual=row.manual,
        updated_at=row.updated_at,
    )


def _issue_detail(db: DB, actor: Principal, row: HotIssue) -> HotIssueDetail:
    orders = [
        HotIssueOrderRead(
            order_id=item.case.id,
            number=item.case.number,
            title=item.case.title,
            status=item.case.status,
            created_at=item.case.created_at,
            town=item.town,
            pinned=item.link.pinned,
            note=item.link.note,
        )
        for item in issues.issue_orders(db, actor, row)
    ]
    return HotIssueDetail(**_issue_read(row).model_dump(), orders=orders)


def _candidate_read(c: weekly.Candidate) -> CandidateRead:
    return CandidateRead(
        key=c.key,
        kind=c.kind,
        title=c.title,
        reason=c.reason,
        score=c.score,
        order_ids=c.order_ids,
        hot_issue_id=c.hot_issue_id,
        lead_unit_id=c.lead_unit_id,
    )


def _problem_read(row: WeeklyProblem) -> WeeklyProblemRead:
    return WeeklyProblemRead(
        id=row.id,
        week=row.week,
        title=row.title,
        description=row.description,
        source=row.source,
        hot_issue_id=row.hot_issue_id,
        deadline=row.deadline,
        status=row.status,
        conclusion=row.conclusion,
        created_by=row.created_by,
        created_at=row.created_at,
        closed_at=row.closed_at,
        version=row.version,
    )


def _problem_detail(db: DB, actor: Principal, problem_id: uuid.UUID) -> WeeklyProblemDetail:
    d = weekly.detail(db, actor, problem_id)
    return WeeklyProblemDetail(
        **_problem_read(d.problem).model_dump(),
        units=[WeeklyUnitRead(unit_id=u.unit_id, name=name, role=u.role) for u, name in d.units],
        orders=[
            WeeklyOrderRead(
                order_id=c.id,
                number=c.number,
                title=c.title,
                status=c.status,
                supervision_id=s.id if s else None,
            )
            for c, s in d.orders
        ],
        reports=[
            WeeklyReportRead(
                id=r.id,
                unit_id=r.unit_id,
                unit=name,
                author=r.author,
                text=r.text,
                created_at=r.created_at,
            )
            for r, name in d.reports
        ],
    )


def _hard_read(row: HardProblem) -> HardProblemRead:
    return HardProblemRead(
        id=row.id,
        name=row.name,
        category_codes=[str(c) for c in row.category_codes],
        keywords=[str(k) for k in row.keywords],
        target_kind=row.target_kind,
        target_value=row.target_value,
        baseline_month=row.baseline_month,
        owner_unit_id=row.owner_unit_id,
        active=row.active,
        note=row.note,
        version=row.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def _hard_detail(db: DB, actor: Principal, row: HardProblem) -> HardProblemDetail:
    t = hard.trend(db, actor, row)
    return HardProblemDetail(
        **_hard_read(row).model_dump(),
        months=[
            MonthRead(
                month=m.month,
                volume=m.volume,
                called_back=m.called_back,
                solved=m.solved,
                resolution_rate=m.resolution_rate,
            )
            for m in t.months
        ],
        judged_month=t.judged_month,
        target_met=t.target_met,
        judged_value=t.judged_value,
    )


def _hard_input(body: HardProblemWrite) -> hard.HardInput:
    return hard.HardInput(
        name=body.name,
        category_codes=tuple(body.category_codes),
        keywords=tuple(body.keywords),
        target_kind=body.target_kind,
        target_value=body.target_value,
        baseline_month=body.baseline_month,
        owner_unit_id=body.owner_unit_id,
        active=body.active,
        note=body.note,
    )


def _pick(db: DB, actor: Principal, settings: AppSettings, data: weekly.PickInput) -> WeeklyProblem:
    config = HotlineConfig.from_settings(settings)
    return weekly.pick(db, actor, data, workflow=config.workflow(), calendar=config.calendar(db))


def _this_week() -> str:
    return weekly.week_of(clock.now())


# --- API: hot issues -----------------------------------------------------------------------


@api.get("/hot-issues", response_model=HotIssuePage)
def list_hot_issues(
    db: DB,
    actor: Actor,
    status: Annotated[str | None, Query(pattern="^(active|closed)$")] = "active",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HotIssuePage:
    """Hot issues, hottest first (``hotline:hot:read``; a town sees those located in it)."""
    rows, total = issues.list_issues(db, actor, status=status, limit=limit, offset=offset)
    return HotIssuePage(total=total, items=[_issue_read(r) for r in rows])


@api.post("/hot-issues/rescan", response_model=ScanRead)
def rescan_hot_issues(db: DB, actor: Actor) -> ScanRead:
    """Recompute the hot issues now (``hotline:hot:manage``); hand moves are kept."""
    actor.require("hotline:hot:manage")
    r = issues.rescan(db, clock.now(), actor=actor)
    return ScanRead(
        clustered=r.clustered,
        issues=r.issues,
        created=r.created,
        continued=r.continued,
        closed=r.closed,
    )


@api.get("/hot-issues/{issue_id}", response_model=HotIssueDetail)
def read_hot_issue(issue_id: uuid.UUID, db: DB, actor: Actor) -> HotIssueDetail:
    """One hot issue with the orders behind it."""
    return _issue_detail(db, actor, issues.get_issue(db, actor, issue_id))


def _move(
    db: DB, actor: Principal, issue_id: uuid.UUID, order_id: uuid.UUID, body: MoveRequest
) -> HotIssue:
    actor.require("hotline:hot:manage")
    issue = issues.get_issue(db, actor, issue_id)
    inside = db.scalars(
        select(HotIssueOrder.id).where(
            HotIssueOrder.issue_id == issue.id, HotIssueOrder.order_id == order_id
        )
    ).first()
    if inside is None:
        raise not_found("该热点问题中的工单", "order in this hot issue")
    issues.move_order(db, actor, order_id, body.to_issue_id, body.note, new_issue=body.new_issue)
    return issue


@api.post("/hot-issues/{issue_id}/orders/{order_id}/move", response_model=HotIssueDetail)
def move_hot_issue_order(
    issue_id: uuid.UUID, order_id: uuid.UUID, body: MoveRequest, db: DB, actor: Actor
) -> HotIssueDetail:
    """Move an order out of this issue by hand (``hotline:hot:manage``): into another
    issue, a new one (``new_issue``) or none; pinned against rescans; audited. Returns
    this issue as it is after the move."""
    return _issue_detail(db, actor, _move(db, actor, issue_id, order_id, body))


# --- API: weekly problem -------------------------------------------------------------------


@api.get("/weekly-problems/candidates", response_model=list[CandidateRead])
def weekly_candidates(db: DB, actor: Actor, week: WeekParam = None) -> list[CandidateRead]:
    """The week's candidate problems with their reasons (``hotline:weekly:manage``)."""
    actor.require("hotline:weekly:manage")
    return [_candidate_read(c) for c in weekly.candidates(db, week or _this_week())]


@api.get("/weekly-problems", response_model=list[WeeklyProblemRead])
def list_weekly_problems(db: DB, actor: Actor) -> list[WeeklyProblemRead]:
    """Weekly problems, newest week first (a unit sees those it is responsible for)."""
    return [_problem_read(p) for p in weekly.list_problems(db, actor)]


@api.post("/weekly-problems", response_model=WeeklyProblemDetail, status_code=201)
def pick_weekly_problem(
    body: PickRequest, db: DB, actor: Actor, settings: AppSettings
) -> WeeklyProblemDetail:
    """Pick the week's problem from its candidates; 409 if the week has one already."""
    problem = _pick(
        db,
        actor,
        settings,
        weekly.PickInput(
            week=body.week,
            candidate_key=body.candidate_key,
            lead_unit_id=body.lead_unit_id,
            co_unit_ids=tuple(body.co_unit_ids),
            deadline=body.deadline or weekly.default_deadline(body.week),
            title=body.title,
            description=body.description,
        ),
    )
    return _problem_detail(db, actor, problem.id)


@api.get("/weekly-problems/{problem_id}", response_model=WeeklyProblemDetail)
def read_weekly_problem(problem_id: uuid.UUID, db: DB, actor: Actor) -> WeeklyProblemDetail:
    return _problem_detail(db, actor, problem_id)


@api.post("/weekly-problems/{problem_id}/reports", response_model=WeeklyReportRead, status_code=201)
def report_weekly_problem(
    problem_id: uuid.UUID, body: ReportRequest, db: DB, actor: Actor
) -> WeeklyReportRead:
    """A progress report by a responsible unit (``hotline:weekly:report``) or the
    supervisor."""
    r = weekly.report(db, actor, problem_id, body.text)
    unit = db.get(Unit, r.unit_id) if r.unit_id else None
    return WeeklyReportRead(
        id=r.id,
        unit_id=r.unit_id,
        unit=unit.name if unit else None,
        author=r.author,
        text=r.text,
        created_at=r.created_at,
    )


@api.post("/weekly-problems/{problem_id}/close", response_model=WeeklyProblemRead)
def close_weekly_problem(
    problem_id: uuid.UUID, body: CloseRequest, db: DB, actor: Actor
) -> WeeklyProblemRead:
    """Close with a conclusion (``hotline:weekly:manage``); 409 if closed already."""
    return _problem_read(
        weekly.close(db, actor, problem_id, body.conclusion, expected_version=body.version)
    )


# --- API: hard problems --------------------------------------------------------------------


@api.get("/hard-problems", response_model=list[HardProblemRead])
def list_hard_problems(db: DB, actor: Actor) -> list[HardProblemRead]:
    return [_hard_read(p) for p in hard.list_problems(db, actor)]


@api.post("/hard-problems", response_model=HardProblemRead, status_code=201)
def create_hard_problem(body: HardProblemWrite, db: DB, actor: Actor) -> HardProblemRead:
    """Add a hard problem (``hotline:hard:manage``); audited, versioned."""
    return _hard_read(hard.create(db, actor, _hard_input(body)))


@api.get("/hard-problems/{problem_id}", response_model=HardProblemDetail)
def read_hard_problem(problem_id: uuid.UUID, db: DB, actor: Actor) -> HardProblemDetail:
    """A hard problem with its monthly volume and resolution trend."""
    return _hard_detail(db, actor, hard.get(db, actor, problem_id))


@api.put("/hard-problems/{problem_id}", response_model=HardProblemRead)
def update_hard_problem(
    problem_id: uuid.UUID, body: HardProblemWrite, db: DB, actor: Actor
) -> HardProblemRead:
    """Edit (``hotline:hard:manage``); ``version`` guards against lost updates."""
    return _hard_read(
        hard.update_problem(db, actor, problem_id, _hard_input(body), expected_version=body.version)
    )


# --- pages ---------------------------------------------------------------------------------


def _back(path: str, flash: str) -> Response:
    return RedirectResponse(f"{path}?flash={quote(flash)}", status_code=303)


def _text(form: FormData, name: str, limit: int = 5000) -> str:
    return str(form.get(name, "") or "").strip()[:limit]


def _uuid(form: FormData, name: str) -> uuid.UUID | None:
    raw = _text(form, name, 100)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidInput("选择无效", f"bad {name}", code="bad_form") from exc


def _unit_choices(db: DB, actor: Principal) -> list[Unit]:
    return [
        u
        for u in org_repository.all_units(db, actor)
        if u.active and UnitKind(u.kind) is not UnitKind.CITY and u.depth <= 1
    ]


@pages.get("/hotline/hot")
def hot_page(
    request: Request,
    db: DB,
    actor: PageActor,
    status: str = "active",
    flash: str | None = None,
) -> Response:
    status = status if status in {"active", "closed"} else "active"
    rows, total = issues.list_issues(db, actor, status=status, limit=100)
    names = dict(
        db.execute(
            select(Unit.id, Unit.name).where(
                Unit.id.in_([r.town_unit_id for r in rows if r.town_unit_id])
            )
        ).all()
    )
    return render(
        request,
        "hotline/hot.html",
        {
            "title": "热点问题",
            "issues": rows,
            "total": total,
            "status": status,
            "towns": names,
            "can_manage": actor.can("hotline:hot:manage"),
            "flash": flash,
        },
    )


@pages.post("/hotline/hot/rescan")
def hot_rescan(db: DB, actor: PageActor) -> Response:
    actor.require("hotline:hot:manage")
    r = issues.rescan(db, clock.now(), actor=actor)
    return _back(
        "/hotline/hot",
        f"已重新计算：{r.clustered} 件工单，{r.issues} 个热点"
        f"（新增 {r.created}，延续 {r.continued}，结束 {r.closed}）",
    )


def _status_labels(settings: AppSettings) -> dict[str, str]:
    """What users read for each order status (已办结, 办理中 ...)."""
    workflow = HotlineConfig.from_settings(settings).workflow()
    return {name: state.label for name, state in workflow.states.items()}


@pages.get("/hotline/hot/{issue_id:uuid}")
def hot_issue_page(
    request: Request,
    issue_id: uuid.UUID,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    flash: str | None = None,
) -> Response:
    issue = issues.get_issue(db, actor, issue_id)
    others, _ = issues.list_issues(db, actor, limit=100)
    town = db.get(Unit, issue.town_unit_id) if issue.town_unit_id else None
    return render(
        request,
        "hotline/hot_issue.html",
        {
            "title": "热点问题详情",
            "issue": issue,
            "town": town.name if town else None,
            "orders": issues.issue_orders(db, actor, issue),
            "others": [o for o in others if o.id != issue.id],
            "can_manage": actor.can("hotline:hot:manage"),
            "status_labels": _status_labels(settings),
            "flash": flash,
        },
    )


@pages.post("/hotline/hot/{issue_id:uuid}/move")
async def hot_issue_move(
    request: Request, issue_id: uuid.UUID, db: DB, actor: PageActor
) -> Response:
    form = await request.form()
    order_id = _uuid(form, "order_id")
    if order_id is None:
        raise InvalidInput("请选择工单", "order_id is required", code="bad_form")
    to = _text(form, "to", 100)
    body = MoveRequest(
        to_issue_id=None if to in {"", "new", "none"} else _uuid(form, "to"),
        new_issue=to == "new",
        note=_text(form, "note", 500) or None,
    )
    _move(db, actor, issue_id, order_id, body)
    return _back(f"/hotline/hot/{issue_id}", "已移动该工单，重新计算时不会被移回")


@pages.get("/hotline/weekly")
def weekly_page(
    request: Request, db: DB, actor: PageActor, week: str | None = None, flash: str | None = None
) -> Response:
    week = week or _this_week()
    weekly.parse_week(week)
    problems = weekly.list_problems(db, actor)
    can_manage = actor.can("hotline:weekly:manage")
    current = weekly.problem_for_week(db, week)
    cands = weekly.candidates(db, week) if can_manage and current is None else []
    return render(
        request,
        "hotline/weekly.html",
        {
            "title": "每周一题",
            "week": week,
            "current": current,
            "candidates": cands,
            "problems": problems,
            "units": _unit_choices(db, actor) if can_manage else [],
            "deadline": weekly.default_deadline(week).astimezone(SHANGHAI).strftime("%Y-%m-%d"),
            "can_manage": can_manage,
            "flash": flash,
        },
    )


@pages.post("/hotline/weekly/pick")
async def weekly_pick(
    request: Request, db: DB, actor: PageActor, settings: AppSettings
) -> Response:
    form = await request.form()
    week = _text(form, "week", 8)
    lead = _uuid(form, "lead_unit_id")
    if lead is None:
        raise InvalidInput("请选择牵头单位", "lead_unit_id is required", code="bad_form")
    raw_deadline = _text(form, "deadline", 10)
    try:
        deadline = (
            datetime.strptime(raw_deadline, "%Y-%m-%d").replace(hour=18, tzinfo=SHANGHAI)
            if raw_deadline
            else weekly.default_deadline(week)
        )
    except ValueError as exc:
        raise InvalidInput("完成期限格式应为 2026-10-15", "bad deadline", code="bad_form") from exc
    co = tuple(u for u in (_safe_uuid(str(v)) for v in form.getlist("co_unit_ids")) if u)
    problem = _pick(
        db,
        actor,
        settings,
        weekly.PickInput(
            week=week,
            candidate_key=_text(form, "candidate_key", 80),
            lead_unit_id=lead,
            co_unit_ids=co,
            deadline=deadline,
            title=_text(form, "title", 200) or None,
            description=_text(form, "description") or None,
        ),
    )
    return _back(f"/hotline/weekly/{problem.id}", "已选定本周一题，相关工单已督办")


def _safe_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@pages.get("/hotline/weekly/{problem_id:uuid}")
def weekly_problem_page(
    request: Request,
    problem_id: uuid.UUID,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    flash: str | None = None,
) -> Response:
    d = weekly.detail(db, actor, problem_id)
    return render(
        request,
        "hotline/weekly_problem.html",
        {
            "title": "每周一题",
            "d": d,
            "can_manage": actor.can("hotline:weekly:manage"),
            "can_report": d.problem.status == "open"
            and (actor.can("hotline:weekly:manage") or actor.can("hotline:weekly:report")),
            "status_labels": _status_labels(settings),
            "flash": flash,
        },
    )


@pages.post("/hotline/weekly/{problem_id:uuid}/report")
async def weekly_report(
    request: Request, problem_id: uuid.UUID, db: DB, actor: PageActor
) -> Response:
    form = await request.form()
    weekly.report(db, actor, problem_id, _text(form, "text"))
    return _back(f"/hotline/weekly/{problem_id}", "已报送进展")


@pages.post("/hotline/weekly/{problem_id:uuid}/close")
async def weekly_close(
    request: Request, problem_id: uuid.UUID, db: DB, actor: PageActor
) -> Response:
    form = await request.form()
    raw = _text(form, "version", 10)
    weekly.close(
        db,
        actor,
        problem_id,
        _text(form, "conclusion"),
        expected_version=int(raw) if raw.isdigit() else None,
    )
    return _back(f"/hotline/weekly/{problem_id}", "已结束本题")


def _hard_form(form: FormData) -> hard.HardInput:
    raw_target = _text(form, "target_value", 10)
    try:
        target = float(raw_target) if raw_target else 0.0
    except ValueError as exc:
        raise InvalidInput(
            "目标值须为数字", "target_value must be a number", code="bad_form"
        ) from exc
    return hard.HardInput(
        name=_text(form, "name", 200),
        category_codes=tuple(str(v) for v in form.getlist("category_codes")),
        keywords=tuple(
            k
            for k in _text(form, "keywords").replace("，", ",").replace("\n", ",").split(",")
            if k.strip()
        ),
        target_kind=_text(form, "target_kind", 20),
        target_value=target / 100 if target > 1 else target,
        baseline_month=_text(form, "baseline_month", 7) or None,
        owner_unit_id=_uuid(form, "owner_unit_id"),
        active=_text(form, "active", 5) != "0",
        note=_text(form, "note", 500) or None,
    )


def _hard_context(db: DB, actor: Principal) -> dict[str, Any]:
    return {
        "categories": list(categories().values()),
        "units": _unit_choices(db, actor),
        "target_kinds": hard.TARGET_KINDS,
        "can_manage": actor.can("hotline:hard:manage"),
    }


@pages.get("/hotline/hard-problems")
def hard_page(request: Request, db: DB, actor: PageActor, flash: str | None = None) -> Response:
    rows = hard.list_problems(db, actor)
    return render(
        request,
        "hotline/hard_problems.html",
        {
            "title": "难题清单",
            "problems": rows,
            "trends": hard.summaries(db, actor, rows),
            "examples": [e["name"] for e in hard.EXAMPLES],
            "flash": flash,
            **_hard_context(db, actor),
        },
    )


@pages.post("/hotline/hard-problems")
async def hard_create(request: Request, db: DB, actor: PageActor) -> Response:
    form = await request.form()
    row = hard.create(db, actor, _hard_form(form))
    return _back(f"/hotline/hard-problems/{row.id}", "已加入难题清单")


@pages.post("/hotline/hard-problems/examples")
def hard_examples(db: DB, actor: PageActor) -> Response:
    added = hard.load_examples(db, actor)
    return _back("/hotline/hard-problems", f"已载入 {added} 个示例难题")


@pages.get("/hotline/hard-problems/{problem_id:uuid}")
def hard_problem_page(
    request: Request, problem_id: uuid.UUID, db: DB, actor: PageActor, flash: str | None = None
) -> Response:
    row = hard.get(db, actor, problem_id)
    owner = db.get(Unit, row.owner_unit_id) if row.owner_unit_id else None
    return render(
        request,
        "hotline/hard_problem.html",
        {
            "title": "难题清单",
            "p": row,
            "owner": owner.name if owner else None,
            "trend": hard.trend(db, actor, row),
            "history": hard.history(db, row.id),
            "category_names": {c.code: c.name for c in categories().values()},
            "flash": flash,
            **_hard_context(db, actor),
        },
    )


@pages.post("/hotline/hard-problems/{problem_id:uuid}")
async def hard_update(
    request: Request, problem_id: uuid.UUID, db: DB, actor: PageActor
) -> Response:
    form = await request.form()
    raw = _text(form, "version", 10)
    hard.update_problem(
        db,
        actor,
        problem_id,
        _hard_form(form),
        expected_version=int(raw) if raw.isdigit() else None,
    )
    return _back(f"/hotline/hard-problems/{problem_id}", "已保存")
