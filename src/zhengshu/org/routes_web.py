"""Pages of the organisation: login, the home page per role, the org tree and people."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.calendar_store import load_calendar
from zhengshu.kernel.db import transaction
from zhengshu.kernel.errors import InvalidInput, NotAuthenticated
from zhengshu.kernel.settings import parse_work_periods
from zhengshu.org import repository, service
from zhengshu.org.auth import (
    authenticate,
    end_web_session,
    resolve_web_session,
    start_web_session,
)
from zhengshu.org.deps import DB, SESSION_COOKIE, AppSettings, MaybeActor, client_ip, count_login
from zhengshu.org.models import Person, Unit
from zhengshu.org.roles import ROLE_LABELS, UNIT_KIND_LABELS, Role, UnitKind
from zhengshu.org.schemas import PersonCreate, PersonUpdate, UnitCreate, UnitUpdate
from zhengshu.web import render

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

NAV = [
    (None, "/", "首页"),
    ("hotline:order:register", "/hotline/intake", "受理"),
    ("hotline:order:read", "/hotline/orders", "工单"),
    ("hotline:report:read", "/hotline/board", "督办看板"),
    ("hotline:dispatch:read", "/hotline/dispatch", "智能派单"),
    ("hotline:report:read", "/hotline/dashboard", "驾驶舱"),
    ("hotline:alert:read", "/hotline/alerts", "预警"),
    ("hotline:hot:read", "/hotline/hot", "热点"),
    ("hotline:report:read", "/hotline/reports/kpi", "指标"),
    ("hotline:report:read", "/hotline/notices", "通报"),
    ("org:unit:read", "/admin/units", "组织机构"),
    ("org:person:read", "/admin/people", "人员"),
    ("kernel:calendar:read", "/admin/calendar", "工作日历"),
    ("org:token:write", "/admin/tokens", "接口令牌"),
    ("kernel:audit:read", "/admin/audit", "审计日志"),
]

HOME_TILES = [
    (
        "hotline:order:register",
        "/hotline/intake",
        "受理登记",
        "接听来电，查重、登记诉求，直接答复或移交 110",
    ),
    (
        "hotline:order:register",
        "/hotline/intake/receipts",
        "异步受理队列",
        "对接系统推送的诉求：排队情况，登记失败的人工登记",
    ),
    ("hotline:order:dispatch", "/hotline/queue/dispatch", "待派单", "派给职能部门或镇街，并单"),
    ("hotline:order:review_return", "/hotline/queue/returns", "退单审核", "改派或不予同意退单"),
    (
        "hotline:extension:decide",
        "/hotline/queue/extensions",
        "延期审批",
        "同意或不同意承办单位的延期申请",
    ),
    ("hotline:order:sign_for", "/hotline/queue/inbox", "待签收", "派给本单位的工单：签收或退单"),
    ("hotline:order:handle", "/hotline/queue/handling", "办理中", "联系诉求人、办理答复、申请延期"),
    ("hotline:order:callback", "/hotline/queue/callback", "待回访", "回访诉求人：是否解决、满意度"),
    ("hotline:report:read", "/hotline/board", "督办看板", "黄灯预警、红灯超时与督办中的工单"),
    (
        "hotline:report:read",
        "/hotline/dashboard",
        "领导驾驶舱",
        "在办与预警实时数、月度指标、趋势、分类构成、镇街排名、热点问题",
    ),
    (
        "hotline:alert:read",
        "/hotline/alerts",
        "舆情预警",
        "话务突增与极端事件预警：签收、处置、转送",
    ),
    ("hotline:hot:read", "/hotline/hot", "热点问题", "同一地点同一问题的工单、每周一题、难题清单"),
    (
        "hotline:order:read",
        "/hotline/orders",
        "工单查询",
        "按编号、电话、分类、单位检索，导出 Excel",
    ),
    ("org:person:write", "/admin/people/new", "新增人员", "为本辖区单位开设账号、分配角色"),
    ("org:unit:write", "/admin/units", "维护组织机构", "镇街、村居、职能部门，支持 CSV 导入导出"),
    ("org:token:write", "/admin/tokens", "对接系统令牌", "为 110 等对接系统签发 API 密钥"),
    ("kernel:calendar:write", "/admin/calendar", "工作日历", "法定节假日、调休与本地调整"),
    ("kernel:audit:read", "/admin/audit", "审计日志", "查看全部操作记录，校验哈希链"),
    (
        "kernel:audit:verify",
        "/admin/audit?verify=1",
        "校验审计链",
        "检查记录是否被篡改、删除或插入",
    ),
    ("org:person:read", "/admin/people", "本辖区人员", "查看人员与角色"),
    ("kernel:calendar:read", "/admin/calendar", "办理时限计算", "按工作日计算截止日期"),
]


def _set_nav(request: Request, actor: Principal) -> None:
    request.state.nav = [
        {"href": href, "label": label}
        for perm, href, label in NAV
        if perm is None or actor.can(perm)
    ]


def page_actor(request: Request, actor: MaybeActor) -> Principal:
    """A logged-in person for a page (else redirect to login); sets the nav."""
    if actor is None:
        raise NotAuthenticated("请先登录", "login required")
    _set_nav(request, actor)
    return actor


def attach_shell(request: Request) -> None:
    """For error pages outside any route: look up the session cookie (read-only) and set
    the identity and nav; any failure leaves the page anonymous rather than failing it."""
    try:
        with transaction(request.app.state.sessionmaker, write=False) as db:
            identity = resolve_web_session(
                db, request.cookies.get(SESSION_COOKIE), ip=client_ip(request)
            )
    except Exception:
        log.exception("could not look up the session for an error page")
        return
    if identity is not None:
        request.state.identity = identity
        _set_nav(request, identity.principal)


PageActor = Annotated[Principal, Depends(page_actor)]


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would let a phishing link borrow our login page.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, actor: MaybeActor, next: str | None = None) -> Response:
    if actor is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "org/login.html", {"title": "登录", "next": _safe_next(next)})


@router.post("/login")
def login(
    request: Request,
    db: DB,
    settings: AppSettings,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    outcome = authenticate(
        db, settings, username=username, password=password, ip=client_ip(request)
    )
    count_login(request, outcome)
    if outcome.person is None:
        assert outcome.error is not None
        return render(
            request,
            "org/login.html",
            {
                "title": "登录",
                "next": _safe_next(next),
                "username": username,
                "flash": outcome.error.message_zh,
                "flash_kind": "error",
            },
            status_code=outcome.error.status_code,
        )
    token, _row = start_web_session(
        db,
        settings,
        person=outcome.person,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, db: DB, actor: MaybeActor) -> Response:
    identity = getattr(request.state, "identity", None)
    if actor is not None and identity is not None:
        end_web_session(db, identity)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(request: Request, db: DB, actor: PageActor, settings: AppSettings) -> Response:
    person = db.get(Person, actor.id) if actor.id else None
    unit = db.get(Unit, actor.unit_id) if actor.unit_id else None
    scope = (
        repository.get_unit(db, actor, person.scope_unit_id)
        if person and person.scope_unit_id
        else unit
    )
    calendar = load_calendar(db, parse_work_periods(settings.work_periods))
    today = clock.now().astimezone(SHANGHAI).date()
    upcoming = [calendar.day_info(today + timedelta(days=i)) for i in range(14)]
    tiles = [t for t in HOME_TILES if actor.can(t[0])]
    return render(
        request,
        "org/home.html",
        {
            "title": "首页",
            "person": person,
            # A partner system's token has no person (and, with a bearer token, no session).
            "actor_name": actor.name,
            "unit": unit,
            "scope": scope,
            "role_labels": [ROLE_LABELS[Role(r)] for r in sorted(actor.roles)],
            "today": calendar.day_info(today),
            "upcoming": upcoming,
            "tiles": tiles,
            "deadline": calendar.add_working_days(today, 5),
        },
    )


# --- org tree ------------------------------------------------------------------------


@router.get("/admin/units")
def units_page(
    request: Request, db: DB, actor: PageActor, q: str | None = None, flash: str | None = None
) -> Response:
    actor.require("org:unit:read")
    units = repository.all_units(db, actor)
    children: dict[uuid.UUID | None, list[Unit]] = {}
    ids = {u.id for u in units}
    roots = [u for u in units if u.parent_id not in ids]
    for unit in units:
        if unit.parent_id in ids:
            children.setdefault(unit.parent_id, []).append(unit)
    matches = None
    if q:
        matches, _ = repository.list_units(db, actor, q=q, limit=200)
    return render(
        request,
        "org/units.html",
        {
            "title": "组织机构",
            "roots": roots,
            "children": children,
            "kind_labels": UNIT_KIND_LABELS,
            "q": q or "",
            "matches": matches,
            "count": len(units),
            "flash": flash,
            "can_write": actor.can("org:unit:write"),
        },
    )


@router.get("/admin/units/export.csv")
def units_export(db: DB, actor: PageActor) -> Response:
    return PlainTextResponse(
        "\ufeff" + service.export_units_csv(db, actor),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="units.csv"'},
    )


@router.post("/admin/units/import")
async def units_import(
    request: Request, db: DB, actor: PageActor, file: Annotated[UploadFile, File()]
) -> Response:
    raw = await file.read(5_000_001)
    if len(raw) > 5_000_000:
        raise InvalidInput("文件超过 5 MB", "file larger than 5 MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "文件须为 UTF-8 编码（可在 Excel 中另存为“CSV UTF-8”）", "the file must be UTF-8 CSV"
        ) from exc
    report = service.import_units(db, actor, rows=service.parse_units_csv(text))
    msg = f"导入完成：新增 {report.created}，更新 {report.updated}，未变 {report.unchanged}"
    return RedirectResponse(f"/admin/units?flash={quote(msg)}", status_code=303)


@router.get("/admin/units/new")
def unit_new_page(
    request: Request, db: DB, actor: PageActor, parent_id: uuid.UUID | None = None
) -> Response:
    actor.require("org:unit:write")
    parent = repository.get_unit(db, actor, parent_id) if parent_id else None
    return render(
        request,
        "org/unit_form.html",
        {
            "title": "新增单位",
            "unit": None,
            "parent": parent,
            # A town's own root names the city as its parent, which the town may not open.
            "parent_visible": parent is not None and actor.covers(parent.path),
            "kinds": list(UnitKind),
            "kind_labels": UNIT_KIND_LABELS,
        },
    )


@router.post("/admin/units/new")
def unit_create(
    request: Request,
    db: DB,
    actor: PageActor,
    parent_id: Annotated[uuid.UUID, Form()],
    kind: Annotated[UnitKind, Form()],
    code: Annotated[str, Form(max_length=40)],
    name: Annotated[str, Form(max_length=100)],
    short_name: Annotated[str, Form(max_length=50)] = "",
) -> Response:
    try:
        data = UnitCreate(
            parent_id=parent_id,
            kind=kind,
            code=code.strip(),
            name=name,
            short_name=short_name or None,
        )
    except ValueError as exc:
        raise InvalidInput(
            "编码只能由字母、数字和“-”组成，名称不能为空",
            "code must be letters, digits or '-'; name required",
        ) from exc
    unit = service.create_unit(db, actor, data=data)
    return RedirectResponse(
        f"/admin/units/{unit.id}?flash={quote('已新增 ' + unit.name)}", status_code=303
    )


@router.get("/admin/units/{unit_id}")
def unit_page(
    request: Request, unit_id: uuid.UUID, db: DB, actor: PageActor, flash: str | None = None
) -> Response:
    actor.require("org:unit:read")
    unit = repository.get_unit(db, actor, unit_id)
    parent = db.get(Unit, unit.parent_id) if unit.parent_id else None
    kids, _ = repository.list_units(db, actor, parent_id=unit.id, limit=500)
    people, people_total = repository.list_people(db, actor, unit_id=unit.id, limit=100)
    return render(
        request,
        "org/unit.html",
        {
            "title": unit.name,
            "unit": unit,
            "parent": parent,
            "kids": kids,
            "people": people,
            "people_total": people_total,
            "kind_labels": UNIT_KIND_LABELS,
            "flash": flash,
            "can_write": actor.can("org:unit:write"),
            "role_labels": ROLE_LABELS,
        },
    )


@router.post("/admin/units/{unit_id}")
def unit_update(
    request: Request,
    unit_id: uuid.UUID,
    db: DB,
    actor: PageActor,
    version: Annotated[int, Form()],
    name: Annotated[str, Form(max_length=100)],
    short_name: Annotated[str, Form(max_length=50)],
    code: Annotated[str, Form(max_length=40)],
    active: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = UnitUpdate(
            version=version,
            name=name,
            short_name=short_name,
            code=code.strip(),
            active=active == "on",
        )
    except ValueError as exc:
        raise InvalidInput(
            "名称、简称不能为空；编码只能由字母、数字和“-”组成",
            "name and short name required; code letters, digits or '-'",
        ) from exc
    service.update_unit(db, actor, unit_id=unit_id, data=data)
    return RedirectResponse(f"/admin/units/{unit_id}?flash={quote('已保存')}", status_code=303)


# --- people --------------------------------------------------------------------------

PAGE_SIZE = 50


@router.get("/admin/people")
def people_page(
    request: Request,
    db: DB,
    actor: PageActor,
    q: Annotated[str | None, Query(max_length=50)] = None,
    role: str | None = None,
    unit_id: uuid.UUID | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    flash: str | None = None,
) -> Response:
    actor.require("org:person:read")
    role = role if role in {r.value for r in Role} else None
    rows, total = repository.list_people(
        db, actor, q=q, role=role, unit_id=unit_id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        "org/people.html",
        {
            "title": "人员",
            "rows": rows,
            "total": total,
            "page": page,
            "q": q or "",
            "role": role,
            "roles": [r for r in Role if r is not Role.PARTNER],
            "role_labels": ROLE_LABELS,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "flash": flash,
            "can_write": actor.can("org:person:write"),
            "unit_id": unit_id,
        },
    )


def _unit_choices(db: DB, actor: Principal) -> list[Unit]:
    return repository.all_units(db, actor)


@router.get("/admin/people/new")
def person_new_page(
    request: Request, db: DB, actor: PageActor, unit_id: uuid.UUID | None = None
) -> Response:
    actor.require("org:person:write")
    return render(
        request,
        "org/person_form.html",
        {
            "title": "新增人员",
            "person": None,
            "units": _unit_choices(db, actor),
            "roles": [r for r in Role if r is not Role.PARTNER],
            "role_labels": ROLE_LABELS,
            "selected_unit": unit_id,
            "selected_roles": [],
        },
    )


def _form_error(exc: ValueError) -> InvalidInput:
    return InvalidInput(
        "请检查：用户名为 3-64 位小写字母/数字（字母开头）；手机号 11 位；密码至少 10 位",
        f"invalid form: {exc}".splitlines()[0][:200],
    )


@router.post("/admin/people/new")
async def person_create(request: Request, db: DB, actor: PageActor) -> Response:
    form = await request.form()
    try:
        data = PersonCreate(
            username=str(form.get("username", "")),
            display_name=str(form.get("display_name", "")),
            phone=str(form.get("phone") or "") or None,
            unit_id=str(form.get("unit_id", "")),
            scope_unit_id=str(form.get("scope_unit_id") or "") or None,
            roles=[str(r) for r in form.getlist("roles")],
            password=str(form.get("password", "")),
        )
    except ValueError as exc:
        raise _form_error(exc) from exc
    person = service.create_person(db, actor, data=data)
    return RedirectResponse(
        f"/admin/people/{person.id}?flash={quote('已新增 ' + person.display_name)}", status_code=303
    )


@router.get("/admin/people/{person_id}")
def person_page(
    request: Request, person_id: uuid.UUID, db: DB, actor: PageActor, flash: str | None = None
) -> Response:
    actor.require("org:person:read")
    person = repository.get_person(db, actor, person_id)
    return render(
        request,
        "org/person_form.html",
        {
            "title": person.display_name,
            "person": person,
            "units": _unit_choices(db, actor),
            "roles": [r for r in Role if r is not Role.PARTNER],
            "role_labels": ROLE_LABELS,
            "selected_unit": person.unit_id,
            "selected_roles": person.roles,
            "flash": flash,
            "can_write": actor.can("org:person:write"),
        },
    )


@router.post("/admin/people/{person_id}")
async def person_update(
    request: Request, person_id: uuid.UUID, db: DB, actor: PageActor
) -> Response:
    form = await request.form()
    try:
        data = PersonUpdate(
            version=int(str(form.get("version", "0"))),
            display_name=str(form.get("display_name", "")),
            phone=str(form.get("phone") or "") or None,
            unit_id=str(form.get("unit_id", "")),
            scope_unit_id=str(form.get("scope_unit_id") or "") or None,
            roles=[str(r) for r in form.getlist("roles")],
            active=form.get("active") == "on",
        )
    except ValueError as exc:
        raise _form_error(exc) from exc
    service.update_person(db, actor, person_id=person_id, data=data)
    new_password = str(form.get("new_password") or "")
    if new_password:
        service.reset_password(db, actor, person_id=person_id, password=new_password)
    return RedirectResponse(f"/admin/people/{person_id}?flash={quote('已保存')}", status_code=303)


__all__ = ["PageActor", "page_actor", "router"]
