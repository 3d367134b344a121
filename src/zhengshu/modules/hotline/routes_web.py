"""Pages of the 12345 hotline console: intake, search, the work queues, the order, the board.

Every page runs as a logged-in person (``PageActor``) and checks its permission; every
form posts with the session's ``csrf_token`` and answers 303 with a flash message. The
order's actions post the version the page showed, so a page left open while someone else
handled the order is refused (409) instead of overwriting their work. Refusals of the
services (``DomainError``) render as the shell's error page; only the intake form, where a
call-taker is mid-call, is shown again with the input kept and the problems listed.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from starlette.datastructures import FormData

from zhengshu.casework.definitions import Workflow
from zhengshu.casework.models import Case, CaseEvent, Supervision
from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import InvalidInput, NotFound
from zhengshu.modules.hotline import events, intake, repository, service, views
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.enums import (
    Channel,
    EmergencyService,
    RequestType,
    Satisfaction,
    Urgency,
)
from zhengshu.modules.hotline.models import IntakeReceipt, Order
from zhengshu.modules.hotline.schemas import (
    ActionRequest,
    OrderCreate,
    OrderFilters,
    OrderListItem,
    TimelineItem,
)
from zhengshu.modules.hotline.service import CASE_TYPE, HotlineConfig
from zhengshu.org import repository as org_repository
from zhengshu.org.deps import DB, AppSettings
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, VILLAGE_LEVEL, UnitKind
from zhengshu.org.routes_web import PageActor
from zhengshu.web import local_time, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
DUPLICATE_DAYS = 30
# Channels a call-taker types in; the others (110, Open311, API) arrive by machine.
INTAKE_CHANNELS = [Channel.PHONE, Channel.WEB, Channel.APP, Channel.MESSAGE_BOARD]
EXTENSIONS = [("1wd", "1 个工作日"), ("2wd", "2 个工作日"), ("3wd", "3 个工作日")]
EXTENSIONS += [("5wd", "5 个工作日"), ("10wd", "10 个工作日"), ("15wd", "15 个工作日")]
LIGHTS = {"none": "正常", "yellow": "黄灯", "red": "红灯"}
# The stage clocks of the workflow (``states[*].stage``), as the due time's caption.
STAGE_LABELS = {
    "dispatch": "派单",
    "sign_for": "签收",
    "review": "退单审核",
    "handle": "办理",
    "callback": "回访",
}
EMERGENCY_LABELS = {
    EmergencyService.POLICE: "110 公安",
    EmergencyService.FIRE: "119 消防",
    EmergencyService.AMBULANCE: "120 急救",
}


def _require_any(actor: Principal, *permissions: str) -> None:
    if not any(actor.can(p) for p in permissions):
        actor.require(permissions[0])


def _flash(target: str, message: str) -> RedirectResponse:
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}flash={quote(message)}", status_code=303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# --- units for the selects -------------------------------------------------------------


def _kind(unit: Unit) -> UnitKind:
    return UnitKind(unit.kind)


def _location_options(units: Iterable[Unit]) -> list[tuple[Unit, int]]:
    """Towns in tree order, each followed by its villages and communities (indented)."""
    units = [u for u in units if u.active]
    below: dict[uuid.UUID | None, list[Unit]] = defaultdict(list)
    for unit in units:
        if _kind(unit) in VILLAGE_LEVEL:
            below[unit.parent_id].append(unit)
    options: list[tuple[Unit, int]] = []
    for town in (u for u in units if _kind(u) in TOWN_LEVEL):
        options.append((town, 0))
        options.extend((village, 1) for village in below[town.id])
    return options


def _dispatch_groups(units: Iterable[Unit]) -> list[tuple[str, list[Unit]]]:
    """Where a dispatcher sends orders: the city's departments and its towns."""
    active = [u for u in units if u.active]
    return [
        ("职能部门", [u for u in active if _kind(u) is UnitKind.DEPARTMENT]),
        ("镇街", [u for u in active if _kind(u) in TOWN_LEVEL]),
    ]


def _tree_key(unit: Unit) -> tuple[int, bool, int, str]:
    """Level by level; within a town its villages and communities before its offices."""
    return (unit.depth, _kind(unit) is UnitKind.OFFICE, unit.sort_order, unit.code)


def _filter_units(units: Sequence[Unit], actor: Principal) -> list[tuple[str, list[Unit]]]:
    """Lead units to filter by: departments and towns city-wide; a town's own subtree."""
    if repository.is_city_wide(actor):
        return _dispatch_groups(units)
    own = sorted((u for u in units if _kind(u) is not UnitKind.CITY), key=_tree_key)
    return [("本辖区", own)]


# --- search and the queues ----------------------------------------------------------------

FILTER_FIELDS = (
    "number",
    "phone",
    "text",
    "category",
    "status",
    "unit_id",
    "town_id",
    "warning_level",
    "created_from",
    "created_to",
)


def _day(value: str, label: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{label}应为日期，如 2026-09-30", f"bad date {value!r}") from exc


def _filters(raw: dict[str, str]) -> OrderFilters:
    """The search form as ``OrderFilters``; dates are Beijing days, the end day included."""
    data: dict[str, Any] = {k: v for k, v in raw.items() if k in FILTER_FIELDS and v}
    if "created_from" in data:
        day = _day(data["created_from"], "起始日期")
        data["created_from"] = datetime.combine(day, time(0), SHANGHAI)
    if "created_to" in data:
        day = _day(data["created_to"], "截止日期")
        data["created_to"] = datetime.combine(day + timedelta(days=1), time(0), SHANGHAI)
    try:
        return OrderFilters.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            "筛选条件有误，请检查后重试",
            "invalid filters",
            details={"errors": [_field_label(e) for e in exc.errors()]},
        ) from exc


def _raw_filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTER_FIELDS}


def _items(rows: Sequence[tuple[Case, Order, str | None]], wf: Workflow) -> list[OrderListItem]:
    return [views.list_item(c, o, name, wf) for c, o, name in rows]


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


@router.get("/hotline/orders")
def orders_page(
    request: Request,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    flash: str | None = None,
) -> Response:
    actor.require("hotline:order:read")
    workflow = HotlineConfig.from_settings(settings).workflow()
    raw = _raw_filters(request)
    filters = _filters(raw)
    rows, total = repository.list_orders(
        db, actor, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    units = org_repository.all_units(db, actor)
    query = urlencode({k: v for k, v in raw.items() if v})
    export = urlencode(filters.model_dump(mode="json", exclude_none=True))
    return render(
        request,
        "hotline/orders.html",
        {
            "title": "工单查询",
            "items": _items(rows, workflow),
            "total": total,
            "page": page,
            "pages": _pages(total),
            "raw": raw,
            "query": query,
            "export_href": "/hotline/orders/export.xlsx" + (f"?{export}" if export else ""),
            "categories": list(categories().values()),
            "states": list(workflow.states.values()),
            "unit_groups": _filter_units(units, actor),
            "towns": [u for u in units if _kind(u) in TOWN_LEVEL],
            "lights": LIGHTS,
            "flash": flash,
        },
    )


@dataclass(frozen=True)
class Queue:
    title: str
    permission: str
    statuses: tuple[str, ...]
    hint: str
    action_hint: str


QUEUES = {
    "dispatch": Queue(
        "待派单",
        "hotline:order:dispatch",
        ("registered",),
        "热线受理后待派发的工单：并单、派给职能部门或镇街，紧急情况移交 110/119/120。",
        "派单",
    ),
    "inbox": Queue(
        "待签收",
        "hotline:order:sign_for",
        ("dispatched",),
        "派给本单位（含下级村居）的工单：核实属于本单位职责后签收，不属于的退单并说明理由。",
        "签收/退单",
    ),
    "handling": Queue(
        "办理中",
        "hotline:order:handle",
        ("handling", "extension_requested", "suspended"),
        "本单位在办的工单：联系诉求人、办理并答复；确需延期的申请延期。",
        "办理",
    ),
    "extensions": Queue(
        "延期审批",
        "hotline:extension:decide",
        ("extension_requested",),
        "承办单位申请延期的工单：同意或不同意延期。",
        "审批",
    ),
    "returns": Queue(
        "退单审核",
        "hotline:order:review_return",
        ("returned",),
        "承办单位退回的工单：改派其他单位，或不予同意退回原单位。",
        "审核",
    ),
    "callback": Queue(
        "待回访",
        "hotline:order:callback",
        ("replied",),
        "承办单位已答复的工单：回访诉求人，记录是否解决和满意度。",
        "回访",
    ),
}


@dataclass(frozen=True)
class Section:
    status: str
    label: str
    items: list[OrderListItem]
    total: int


@router.get("/hotline/queue/{name}")
def queue_page(
    request: Request,
    name: str,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    queue = QUEUES.get(name)
    if queue is None:
        raise NotFound("找不到该待办队列", f"no queue {name!r}")
    actor.require(queue.permission)
    workflow = HotlineConfig.from_settings(settings).workflow()
    sections = []
    for status in queue.statuses:
        rows, total = repository.list_orders(
            db, actor, OrderFilters(status=status), limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        sections.append(
            Section(status, workflow.state(status).label, _items(rows, workflow), total)
        )
    total = sum(s.total for s in sections)
    return render(
        request,
        "hotline/queue.html",
        {
            "title": queue.title,
            "queue": queue,
            "name": name,
            "sections": sections,
            "total": total,
            "page": page,
            "pages": max(_pages(s.total) for s in sections),
        },
    )


# --- the supervisor's board ------------------------------------------------------------


@router.get("/hotline/board")
def board_page(request: Request, db: DB, actor: PageActor, settings: AppSettings) -> Response:
    _require_any(actor, "hotline:order:supervise", "hotline:report:read")
    workflow = HotlineConfig.from_settings(settings).workflow()
    open_states = [s.name for s in workflow.states.values() if not s.final]
    clause = repository.visible(actor)

    def scoped(query: Any) -> Any:
        query = query.join(Order, Order.id == Case.id).where(
            Case.case_type == CASE_TYPE, Case.status.in_(open_states)
        )
        return query if clause is None else query.where(clause)

    counts = {"none": 0, "yellow": 0, "red": 0}
    by_status: dict[str, int] = dict.fromkeys(open_states, 0)
    for status, level, n in db.execute(
        scoped(select(Case.status, Case.warning_level, func.count()).select_from(Case)).group_by(
            Case.status, Case.warning_level
        )
    ).all():
        counts[level] = counts.get(level, 0) + n
        by_status[status] = by_status.get(status, 0) + n
    lit = db.execute(
        scoped(select(Case, Order, Unit.name).outerjoin(Unit, Unit.id == Case.lead_unit_id))
        .where(Case.warning_level.in_(["yellow", "red"]))
        .order_by(Case.due_at.is_(None), Case.due_at, Case.number)
        .limit(200)
    ).all()
    items = _items([(c, o, n) for c, o, n in lit], workflow)
    supervisions = db.execute(
        scoped(
            select(Supervision, Case.id, Case.number, Case.title, Unit.name)
            .select_from(Supervision)
            .join(Case, Case.id == Supervision.case_id)
            .outerjoin(Unit, Unit.id == Supervision.unit_id)
        )
        .where(Supervision.status == "open")
        .order_by(Supervision.due_at, Case.number)
        .limit(200)
    ).all()
    return render(
        request,
        "hotline/board.html",
        {
            "title": "督办看板",
            "counts": counts,
            "open_total": sum(counts.values()),
            "by_status": [(workflow.state(s).label, s, n) for s, n in by_status.items()],
            "red": [i for i in items if i.warning_level == "red"],
            "yellow": [i for i in items if i.warning_level == "yellow"],
            "supervisions": supervisions,
        },
    )


# --- intake ----------------------------------------------------------------------------

ORDER_FIELDS = (
    "requester_name",
    "requester_phone",
    "requester_id_number",
    "address",
    "location_unit_id",
    "channel",
    "request_type",
    "category",
    "urgency",
    "content",
)
INTAKE_FIELDS = (*ORDER_FIELDS, "answer", "transfer_to", "transfer_note")
INTAKE_DEFAULTS = {
    "channel": Channel.PHONE.value,
    "request_type": RequestType.CONSULTATION.value,
    "category": "other",
    "urgency": Urgency.NORMAL.value,
}

FIELD_PROBLEMS = {
    "requester_name": "诉求人姓名：必填，不超过 100 字",
    "requester_phone": "联系电话：请填写 11 位手机号或带区号的固定电话",
    "requester_id_number": "身份证号：应为 18 位（末位可为 X），不知道可不填",
    "address": "地址：不超过 300 字",
    "location_unit_id": "所属镇街/村居：请从列表中选择",
    "content": "诉求内容：必填，不超过 5000 字",
    "category": "诉求分类：请从列表中选择",
    "channel": "受理渠道：请从列表中选择",
    "request_type": "诉求类型：请从列表中选择",
    "urgency": "紧急程度：请从列表中选择",
    "note": "说明：不超过 2000 字",
    "unit_id": "承办单位：请从列表中选择",
    "co_unit_ids": "协办单位：请从列表中选择，最多 10 个",
    "extension": "延期时长：如 3wd（3 个工作日）",
    "satisfaction": "满意度：请选择五级满意度之一",
    "target": "移交对象：请选择 110、119 或 120",
    "parent_number": "主工单编号：不超过 32 位",
    "number": "工单编号：不超过 32 位",
    "phone": "电话：不超过 20 位",
    "text": "关键词：不超过 100 字",
    "town_id": "镇街：请从列表中选择",
    "warning_level": "预警：请从列表中选择",
}


def _field_label(error: Any) -> str:
    loc = error.get("loc", ())
    field = str(loc[0]) if loc else ""
    return FIELD_PROBLEMS.get(field, f"{field}：{error.get('msg', '')}")


def _recent(db: DB, actor: Principal, phone: str) -> list[tuple[Case, Order]]:
    since = clock.now() - timedelta(days=DUPLICATE_DAYS)
    return repository.recent_from_phone(db, actor, phone, since, limit=10)


def _intake_page(
    request: Request,
    db: DB,
    actor: Principal,
    workflow: Workflow,
    *,
    values: dict[str, str],
    checked_phone: str | None,
    errors: list[str] | None = None,
    status_code: int = 200,
    receipt: IntakeReceipt | None = None,
) -> Response:
    recent = _recent(db, actor, checked_phone) if checked_phone else []
    channels = list(INTAKE_CHANNELS)
    if values.get("channel") and values["channel"] not in {c.value for c in channels}:
        with contextlib.suppress(ValueError):  # a partner's channel (e.g. 110)
            channels.append(Channel(values["channel"]))
    return render(
        request,
        "hotline/intake.html",
        {
            "title": "人工登记失败回执" if receipt else "受理登记",
            "v": values,
            "checked_phone": checked_phone,
            "recent": [(c, o, workflow.state(c.status).label) for c, o in recent],
            "days": DUPLICATE_DAYS,
            "locations": _location_options(org_repository.all_units(db, actor)),
            "channels": channels,
            "receipt": receipt,
            "receipt_sender": intake.sender_name(receipt) if receipt else None,
            "request_types": list(RequestType),
            "urgencies": list(Urgency),
            "categories": list(categories().values()),
            "emergency": EMERGENCY_LABELS,
            "errors": errors or [],
            "flash": "受理信息有误，请按提示修改后重新提交" if errors else None,
            "flash_kind": "error",
        },
        status_code=status_code,
    )


@router.get("/hotline/intake")
def intake_page(
    request: Request,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    phone: Annotated[str | None, Query(max_length=20)] = None,
    receipt: uuid.UUID | None = None,
) -> Response:
    """The intake form; with ``receipt``, filled in from a failed fast-lane receipt for a
    call-taker to correct and register by hand."""
    actor.require("hotline:order:register")
    phone = (phone or "").strip() or None
    values = {**dict.fromkeys(INTAKE_FIELDS, ""), **INTAKE_DEFAULTS}
    values["requester_phone"] = phone or ""
    failed = intake.failed_receipt(db, actor, receipt) if receipt is not None else None
    if failed is not None:
        for name in ORDER_FIELDS:
            value = failed.body.get(name)
            if value is not None:
                values[name] = str(value)
        phone = phone or values["requester_phone"] or None  # the duplicate check
    return _intake_page(
        request,
        db,
        actor,
        HotlineConfig.from_settings(settings).workflow(),
        values=values,
        checked_phone=phone,
        receipt=failed,
    )


@router.post("/hotline/intake")
async def intake_submit(
    request: Request, db: DB, actor: PageActor, settings: AppSettings
) -> Response:
    actor.require("hotline:order:register")
    config = HotlineConfig.from_settings(settings)
    form = await request.form()
    values = {k: _text(form, k) for k in INTAKE_FIELDS}
    direct = form.get("direct_answer") == "on"
    values["direct_answer"] = "on" if direct else ""
    errors: list[str] = []
    data: OrderCreate | None = None
    receipt: IntakeReceipt | None = None
    extra: dict[str, Any] = {}
    if receipt_id := _text(form, "receipt_id"):
        try:
            receipt = intake.failed_receipt(db, actor, uuid.UUID(receipt_id))
        except ValueError as exc:
            raise InvalidInput("回执编号格式不正确", "malformed receipt id") from exc
        # What the form does not show (title, external reference) comes from the request.
        extra = {k: v for k, v in receipt.body.items() if k not in ORDER_FIELDS and v is not None}
    try:
        data = OrderCreate.model_validate(
            {**extra, **{k: values[k] for k in ORDER_FIELDS if values[k]}}
        )
    except ValidationError as exc:
        errors.extend(dict.fromkeys(_field_label(e) for e in exc.errors()))
    transfer = values["transfer_to"]
    if transfer and transfer not in {e.value for e in EmergencyService}:
        errors.append(FIELD_PROBLEMS["target"])
    if direct and transfer:
        errors.append("直接答复与移交 110/119/120 只能选一项")
    if direct and not values["answer"]:
        errors.append("直接答复：请填写答复内容")
    if transfer and not values["transfer_note"]:
        errors.append("移交说明：请填写移交情况（如已三方转接 110）")
    for key in ("answer", "transfer_note"):
        if len(values[key]) > 2000:
            errors.append(f"{'答复内容' if key == 'answer' else '移交说明'}：不超过 2000 字")
    if errors or data is None:
        return _intake_page(
            request,
            db,
            actor,
            config.workflow(),
            values=values,
            checked_phone=None,
            errors=errors,
            status_code=422,
            receipt=receipt,
        )
    if receipt is not None:
        order_id, number, created = intake.register_by_hand(db, actor, config, receipt, data)
        if not created:
            return _flash(
                f"/hotline/orders/{order_id}", f"该诉求已由对接系统重新提交并登记为 {number}"
            )
        case = db.get(Case, order_id)
        assert case is not None
        message = f"已人工登记回执，工单编号 {number}"
    else:
        case, order = service.register_order(db, actor, config=config, data=data)
        events.after_register(db, case, order)
        message = f"已受理，工单编号 {case.number}"
    if direct:
        follow_up = service.act(
            db,
            actor,
            config=config,
            order_id=case.id,
            action="answer_directly",
            request=ActionRequest(note=values["answer"]),
        )
        events.after_action(db, follow_up)
        message += "，已直接答复办结"
    elif transfer:
        follow_up = service.act(
            db,
            actor,
            config=config,
            order_id=case.id,
            action="transfer_emergency",
            request=ActionRequest(note=values["transfer_note"], target=EmergencyService(transfer)),
        )
        events.after_action(db, follow_up)
        message += f"，已移交 {transfer}"
    return _flash(f"/hotline/orders/{case.id}", message)


# --- the fast lane's queue (异步受理) --------------------------------------------------


@router.get("/hotline/intake/receipts")
def intake_receipts_page(request: Request, db: DB, actor: PageActor) -> Response:
    """Requests partner systems pushed on the fast lane: how many wait for the worker, how
    long the oldest has waited, and the failed ones, each to register by hand (corrected)
    or to send back to the queue."""
    failed = intake.failed_receipts(db, actor)
    state = intake.backlog(db)
    oldest = state.oldest_queued_seconds(clock.now())
    return render(
        request,
        "hotline/intake_receipts.html",
        {
            "title": "异步受理队列",
            "backlog": state,
            "oldest_seconds": oldest,
            "oldest_wait": intake.wait_words(oldest) if state.queued else "—",
            "failed": [
                (r, intake.sender_name(r), views.mask_phone(str(r.body.get("requester_phone", ""))))
                for r in failed
            ],
            "channel_labels": {c.value: c.label for c in Channel},
        },
    )


@router.post("/hotline/intake/receipts/{receipt_id}/requeue")
def intake_receipt_requeue(receipt_id: uuid.UUID, db: DB, actor: PageActor) -> Response:
    receipt = intake.requeue(db, actor, receipt_id)
    return _flash(
        "/hotline/intake/receipts", f"回执 {str(receipt.id)[:8]} 已重新排队，系统将自动登记"
    )


# --- the order -------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionForm:
    """One form of the order page: which action it posts and what it asks for."""

    action: str  # the action posted to /act/{action}
    kind: str  # the fields: plain | note | dispatch | pass_down | extension | ...
    title: str
    note_label: str
    note_required: bool
    button: str


# Display order of the forms, with the note's label; close and rework are one 回访 form.
FORM_SPECS: dict[str, tuple[str, str]] = {
    "dispatch": ("dispatch", "派单意见（可空）"),
    "redispatch": ("dispatch", "改派理由（可空）"),
    "merge": ("merge", "并单说明（可空）"),
    "sign_for": ("plain", "签收备注（可空）"),
    "return_order": ("note", "退单理由（说明为何不属于本单位职责）"),
    "reject_return": ("note", "不予同意的理由"),
    "pass_down": ("pass_down", "下派说明（可空）"),
    "record_contact": ("note", "联系情况"),
    "request_extension": ("extension", "延期理由"),
    "approve_extension": ("approve_extension", "审批意见（可空）"),
    "refuse_extension": ("note", "不同意的理由"),
    "suspend": ("note", "挂起原因"),
    "resume": ("plain", "备注（可空）"),
    "reply": ("note", "答复内容（将告知诉求人）"),
    "close": ("callback", "回访记录（未解决或不满意时必填）"),
    "rework": ("callback", "回访记录（未解决或不满意时必填）"),
    "answer_directly": ("note", "答复内容"),
    "transfer_emergency": ("transfer", "移交说明"),
    "urge": ("note", "催办意见"),
}


def _action_forms(actions: Sequence[str], workflow: Workflow) -> list[ActionForm]:
    forms: list[ActionForm] = []
    for name, (kind, note_label) in FORM_SPECS.items():
        if name not in actions:
            continue
        if kind == "callback":
            if any(f.kind == "callback" for f in forms):
                continue
            forms.append(ActionForm("callback", kind, "回访", note_label, False, "提交回访"))
            continue
        action = workflow.action(name)
        forms.append(
            ActionForm(name, kind, action.label, note_label, action.note_required, action.label)
        )
    return forms


def _event_detail(event: TimelineItem) -> str:
    """The data of a timeline entry, in words."""
    data: dict[str, Any] = event.data or {}
    parts: list[str] = []
    if data.get("lead_unit"):
        parts.append(f"承办单位：{data['lead_unit']}")
    if data.get("co_units"):
        parts.append("协办单位：" + "、".join(str(u) for u in data["co_units"]))
    if data.get("label") and event.action in ("request_extension", "approve_extension"):
        parts.append(f"延期 {data['label']}")
    if "solved" in data:
        parts.append("已解决" if data["solved"] else "未解决")
    if data.get("satisfaction"):
        try:
            parts.append(Satisfaction(data["satisfaction"]).label)
        except ValueError:
            parts.append(str(data["satisfaction"]))
    if data.get("rework"):
        parts.append(f"第 {data['rework']} 次重办")
    if data.get("target"):
        parts.append(f"移交 {data['target']}")
    if data.get("parent"):
        parts.append(f"并入 {data['parent']}")
    if data.get("child"):
        parts.append(f"并入工单 {data['child']}")
    if data.get("level") and event.action in ("supervise", "escalate"):
        parts.append(f"第 {data['level']} 级督办")
    if data.get("due_at"):
        with contextlib.suppress(ValueError):
            parts.append(f"时限 {local_time(datetime.fromisoformat(str(data['due_at'])))}")
    if data.get("channel"):
        with contextlib.suppress(ValueError):
            parts.append(f"渠道：{Channel(data['channel']).label}")
    return "；".join(parts)


def _order_page(
    request: Request,
    db: DB,
    actor: Principal,
    settings: AppSettings,
    order_id: uuid.UUID,
    *,
    revealed: bool = False,
    flash: str | None = None,
) -> Response:
    workflow = HotlineConfig.from_settings(settings).workflow()
    case, order = repository.get_order(db, actor, order_id)
    read = views.order_read(db, actor, case, order, workflow, revealed=revealed)
    forms = _action_forms(read.actions, workflow)
    kinds = {f.kind for f in forms}
    dispatch_groups: list[tuple[str, list[Unit]]] = []
    if "dispatch" in kinds:
        dispatch_groups = _dispatch_groups(org_repository.all_units(db, actor))
    children: list[Unit] = []
    if "pass_down" in kinds and case.lead_unit_id is not None:
        lead = db.get(Unit, case.lead_unit_id)
        if lead is not None:
            children = [u for u in org_repository.children(db, lead) if u.active]
            children.sort(key=_tree_key)
    smart = views.suggestion_view(db, case)
    suggested = service.default_unit(db, case.category) if case.status == "registered" else None
    suggested_co: set[uuid.UUID] = set()
    if smart is not None and case.status == "registered" and smart["lead_unit"]:
        suggested = db.get(Unit, smart["lead_unit"]["id"])
        suggested_co = {u["id"] for u in smart["co_units"]}
    # The same caller's other recent orders (that this person may see): the dispatcher's
    # cue to merge (并单).
    duplicates: list[tuple[Case, str, bool]] = []
    if case.status == "registered":
        duplicates = [
            (c, workflow.state(c.status).label, _mergeable(c, workflow))
            for c, _ in _recent(db, actor, order.requester_phone)
            if c.id != case.id
        ]
    supervisions = (
        db.execute(
            select(Supervision)
            .where(Supervision.case_id == case.id, Supervision.status == "open")
            .order_by(Supervision.issued_at)
        )
        .scalars()
        .all()
    )
    location = db.get(Unit, order.location_unit_id) if order.location_unit_id else None
    timeline = views.timeline_items(db, case)
    return render(
        request,
        "hotline/order.html",
        {
            "title": f"工单 {read.number}",
            "o": read,
            "paused": workflow.state(case.status).paused,
            "final": workflow.state(case.status).final,
            "channel_label": Channel(read.channel).label,
            "request_type_label": _label(RequestType, read.request_type),
            "urgency_label": _label(Urgency, read.urgency),
            "satisfaction_label": _label(Satisfaction, read.satisfaction),
            "location": location,
            "lead": [u.name for u in read.units if u.role == "lead"],
            "co": [u.name for u in read.units if u.role == "co"],
            "co_ids": {u.id for u in read.units if u.role == "co"},
            "timeline": [(t, _event_detail(t)) for t in timeline],
            "forms": forms,
            "dispatch_groups": dispatch_groups,
            "suggested": suggested,
            "suggested_co": suggested_co,
            "smart": smart,
            "categories": list(categories().values()),
            "stage_label": STAGE_LABELS.get(case.stage or ""),
            "children": children,
            "extensions": EXTENSIONS,
            "satisfactions": list(Satisfaction),
            "emergency": EMERGENCY_LABELS,
            "duplicates": duplicates,
            "can_merge": "merge" in read.actions,
            "supervisions": supervisions,
            "can_reveal": read.masked and actor.can("hotline:requester:reveal"),
            "revealed": revealed,
            "flash": flash,
        },
    )


def _mergeable(case: Case, workflow: Workflow) -> bool:
    return case.parent_id is None and not workflow.state(case.status).final


def _label(enum: Any, value: str | None) -> str:
    if not value:
        return "—"
    try:
        return str(enum(value).label)
    except ValueError:
        return value


@router.get("/hotline/orders/{order_id:uuid}")
def order_page(
    request: Request,
    order_id: uuid.UUID,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
    flash: str | None = None,
) -> Response:
    actor.require("hotline:order:read")
    return _order_page(request, db, actor, settings, order_id, flash=flash)


@router.post("/hotline/orders/{order_id:uuid}/reveal")
def order_reveal(
    request: Request, order_id: uuid.UUID, db: DB, actor: PageActor, settings: AppSettings
) -> Response:
    """Shows the full phone and ID number once, on this response only (audited)."""
    actor.require("hotline:order:read")
    service.reveal(db, actor, order_id=order_id)
    return _order_page(
        request,
        db,
        actor,
        settings,
        order_id,
        revealed=True,
        flash="已显示诉求人完整信息，本次查看已记入审计日志",
    )


def _action_request(form: FormData) -> ActionRequest:
    version = _text(form, "version")
    if not version.isdigit():
        raise InvalidInput("页面缺少工单版本，请刷新后重试", "version required", code="bad_form")
    solved = {"yes": True, "no": False}.get(_text(form, "solved"))
    data: dict[str, Any] = {
        "version": int(version),
        "note": _text(form, "note") or None,
        "unit_id": _text(form, "unit_id") or None,
        "co_unit_ids": [v for v in form.getlist("co_unit_ids") if isinstance(v, str) and v],
        "extension": _text(form, "extension") or None,
        "solved": solved,
        "satisfaction": _text(form, "satisfaction") or None,
        "target": _text(form, "target") or None,
        "parent_number": _text(form, "parent_number") or None,
        "category": _text(form, "category") or None,
    }
    try:
        return ActionRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            "填写有误，请检查后重试",
            "invalid action form",
            details={"errors": list(dict.fromkeys(_field_label(e) for e in exc.errors()))},
        ) from exc


def _done(event: CaseEvent) -> str:
    """The flash message after an action, from the timeline entry it wrote."""
    data: dict[str, Any] = event.data or {}
    messages = {
        "dispatch": f"已派单至 {data.get('lead_unit', '')}",
        "redispatch": f"已改派至 {data.get('lead_unit', '')}",
        "pass_down": f"已下派至 {data.get('lead_unit', '')}",
        "sign_for": "已签收，请在办理时限内答复",
        "return_order": "已退单，等待热线中心审核",
        "reject_return": "已驳回退单，工单退回原承办单位签收",
        "record_contact": "已记录联系诉求人情况",
        "request_extension": "已提交延期申请，等待热线中心审批",
        "approve_extension": f"已同意延期 {data.get('label', '')}",
        "refuse_extension": "已不同意延期，按原时限办理",
        "suspend": "已挂起，办理时限暂停计算",
        "resume": "已恢复办理，时限继续计算",
        "reply": "已答复，等待回访",
        "close": "回访完成，工单已办结",
        "rework": "回访完成：未解决或不满意，工单退回承办单位重办",
        "urge": "已催办",
        "merge": f"已并入工单 {data.get('parent', '')}",
        "answer_directly": "已直接答复，工单办结",
        "transfer_emergency": f"已移交 {data.get('target', '')}",
    }
    return messages.get(event.action, f"已{event.label}")


@router.post("/hotline/orders/{order_id:uuid}/act/{action}")
async def order_act(
    request: Request,
    order_id: uuid.UUID,
    action: str,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
) -> Response:
    actor.require("hotline:order:read")
    body = _action_request(await request.form())
    event = service.act(
        db,
        actor,
        config=HotlineConfig.from_settings(settings),
        order_id=order_id,
        action=action,
        request=body,
    )
    events.after_action(db, event)
    message = _done(event)
    try:
        repository.get_order(db, actor, order_id)
    except NotFound:  # handed on beyond the actor's jurisdiction
        return _flash("/hotline/orders", message)
    return _flash(f"/hotline/orders/{order_id}", message)
