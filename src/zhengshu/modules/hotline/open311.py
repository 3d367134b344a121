"""Open311 GeoReport v2 for the 12345 hotline, under ``/open311/v2/``.

Standard: http://wiki.open311.org/GeoReport_v2 (plus the widely used
``servicerequestupdates`` extension). Every endpoint answers in JSON or XML, chosen by the
extension (``services.json`` / ``services.xml``); errors come in the same format:
``[{"code": 400, "description": "..."}]`` or ``<errors><error><code/><description/>``.

- ``GET discovery``, ``GET services``, ``GET services/{code}``: one service per hotline
  category (``catalogue.categories()``); no extra attributes (``metadata`` false).
- ``POST requests``: form-encoded (``application/x-www-form-urlencoded``; multipart form
  fields are accepted too, file uploads are not). ``api_key`` is a zhengshu token of kind
  ``open311`` (any other token, even a valid one, is a 403). The order is registered at
  once (channel ``open311``, type 求助), so the answer (200, as GeoReport's swagger has
  it) carries the order number as ``service_request_id`` and no ``token``; like every
  channel it queues the 受理 SMS and the token's webhooks (``events.after_register``).
  A callback number is required, a mobile or a landline with its area code: the hotline
  calls every requester back. ``lat``/``long`` and ``media_url`` have no column on the
  order: they are kept on an ``open311_extras`` timeline note and shown from there.
  ``email``, ``device_id``, ``account_id``, ``address_id`` and ``attribute[...]`` are
  accepted and not stored. Location is optional (12345 takes requests without a place).
  ``Idempotency-Key`` (``kernel.idempotency``, per token): a retry gets the first answer
  back, in the format it asks for, and never makes a second order. Submissions are
  rate-limited per client address and per callback phone number
  (``ZHENGSHU_SUBMIT_MAX_PER_IP`` / ``_PER_PHONE`` in ``_WINDOW_MINUTES``): over it, 429
  (a replay of an idempotent retry is not counted).
- ``GET requests``, ``GET requests/{id}``: public, no key. Only public fields: never the
  requester's name, phone or ID number. ``description`` is published only for requests
  that came in through Open311 (the citizen used a public channel), with phone numbers,
  ID numbers, e-mail addresses and the requester's name masked; for orders taken by phone
  and other channels it is null. 举报 (``request_type`` report) orders are confidential
  and never listed. ``status`` is closed in a final workflow state, else open;
  ``status_notes`` is the 12345 status label. The window defaults to the last 90 days
  and may not span more (GeoReport); at most 1 000 requests, newest first.
- ``GET tokens/{token}``: orders are created synchronously, so a token is the order
  number itself; the answer echoes it with its ``service_request_id`` (404 if unknown).
- ``GET servicerequestupdates``: one update per timeline event (``update_id`` is
  ``<number>_<seq>``), described by the event label and its note, masked like the
  description; ``reveal`` notes and the ``open311_extras`` bookkeeping note are skipped.

Bad input is a 400 (unknown service code, bad dates, oversized fields or body), a bad or
missing key a 403, an unknown request a 404, an unknown endpoint or method under
``/open311/v2/`` a 404 / 405, all in the requested format (JSON when it cannot be told).
"""

from __future__ import annotations

import math
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from zhengshu.casework import engine
from zhengshu.casework.definitions import State, Workflow
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import clock, idempotency
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import DomainError
from zhengshu.kernel.ratelimit import Quota, RateLimiter
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import events, repository, service
from zhengshu.modules.hotline.catalogue import Category, categories
from zhengshu.modules.hotline.deps import Config
from zhengshu.modules.hotline.enums import Channel, RequestType
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import OrderCreate
from zhengshu.modules.hotline.service import CASE_TYPE
from zhengshu.org.auth import resolve_bearer
from zhengshu.org.deps import DB, AppSettings, client_ip
from zhengshu.org.models import ApiToken, Unit

router = APIRouter(prefix="/open311/v2", tags=["Open311"])

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# When this API last changed (GeoReport discovery's ``changeset``): bump it on changes.
CHANGESET = "2026-09-01T00:00:00+08:00"
TOKEN_KIND = "open311"
FORMATS = {"json": "application/json", "xml": "text/xml"}
MAX_RESULTS = 1000  # the standard's cap on one answer
DEFAULT_WINDOW = timedelta(days=90)  # the standard's default window of GET requests
MAX_BODY = 128 * 1024  # a 4 000-character description percent-encodes to ~36 KB
MAX_FIELDS = 100
MAX_DESCRIPTION = 4000  # GeoReport: free text of at most 4 000 characters
MAX_ADDRESS = 300
MAX_NAME = 50
MAX_URL = 500
MAX_IDS = 100
IN_CHUNK = 500  # bound parameters per IN (...) list, well under SQLite's limit
EXTRAS_ACTION = "open311_extras"
EXTRAS_LABEL = "Open311 定位与图片"
SKIPPED_EVENTS = frozenset({"reveal", EXTRAS_ACTION})
CONFIDENTIAL_TYPES = (RequestType.REPORT.value,)  # 举报: the reporter is protected

STAGE_LABELS = {
    "dispatch": "派单",
    "sign_for": "签收",
    "review": "退单审核",
    "handle": "办理",
    "callback": "回访",
}
EMERGENCY_AGENCIES = {"110": "公安 110", "119": "消防 119", "120": "急救 120"}

# service groups and keywords of the packaged categories; a city's own codes fall back
# to their name and the group 其他.
GROUPS = {
    "housing": "城市建设与管理",
    "urban": "城市建设与管理",
    "transport": "城市建设与管理",
    "natural_resources": "城市建设与管理",
    "water": "城市建设与管理",
    "power": "城市建设与管理",
    "environment": "城市建设与管理",
    "labour": "民生保障",
    "health": "民生保障",
    "education": "民生保障",
    "civil_affairs": "民生保障",
    "medical_insurance": "民生保障",
    "market": "经济与市场",
    "tax": "经济与市场",
    "commerce": "经济与市场",
    "agriculture": "经济与市场",
    "public_security": "公共安全",
    "government_services": "政务服务",
}
KEYWORDS = {
    "housing": "物业,小区,房屋质量,住房保障,燃气",
    "urban": "市容,占道经营,垃圾,违建,噪音,路灯",
    "transport": "公交,道路,出租车,停车,交通设施",
    "labour": "欠薪,劳动合同,社保,就业",
    "health": "医院,医疗服务,疫苗,卫生",
    "education": "学校,学位,招生,培训机构",
    "market": "消费投诉,食品安全,价格,假冒伪劣",
    "environment": "污染,噪声,废气,污水",
    "public_security": "户籍,治安,出入境",
    "natural_resources": "土地,规划,测绘",
    "water": "供水,停水,排水,水质",
    "civil_affairs": "养老,低保,婚姻登记,殡葬",
    "medical_insurance": "医保,报销,参保",
    "tax": "税费,发票,纳税",
    "commerce": "商场,旅游,外贸",
    "agriculture": "农业,农村,农产品",
    "power": "停电,电费,用电",
    "government_services": "办事指南,政务服务,预约",
}

# Lists nested in an object: the XML name of each item.
XML_ITEMS = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute"}
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MOBILE = r"(?:\+?86[-\s]?)?1[3-9]\d(?:[-\s]?\d{4}){2}"
_LANDLINE = r"\(?0\d{2,3}\)?[-\s]?\d{7,8}"
_ID_NUMBER = r"\d{17}[\dXx]"
_PERSONAL_NUMBER = re.compile(
    # ... and any other run of 7 or more digits (a local number, a QQ number)
    rf"(?<![0-9A-Za-z])(?:{_ID_NUMBER}|{_MOBILE}|{_LANDLINE}|\d{{7,}})(?![0-9A-Za-z])"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A citizen's callback number: a mobile or a landline with its area code. The hotline's
# own pattern (PHONE_PATTERN) also takes 5-6 digit service numbers such as 95598, which
# are callers but not numbers to call a citizen back on.
_CALLBACK_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
_MASK = "***"


# --- errors and formats ------------------------------------------------------------------


class Open311Error(Exception):
    """A refusal in GeoReport's shape: one status and one or more descriptions."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = list(descriptions)


def _bad(zh: str, en: str) -> str:
    return f"{zh} / {en}"


@dataclass(frozen=True)
class Document:
    """An answer: a list of items under ``root`` (``<root><item>…``) or one object."""

    root: str
    body: list[dict[str, Any]] | dict[str, Any]
    item: str | None = None
    status: int = 200


def _format_of(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(
            400, _bad("不支持的格式，请用 .json 或 .xml", "format must be json or xml")
        )
    return fmt


def _render(fmt: str, doc: Document, headers: dict[str, str] | None = None) -> Response:
    if fmt == "json":
        return JSONResponse(doc.body, status_code=doc.status, headers=headers)
    root = ET.Element(doc.root)
    if isinstance(doc.body, list):
        for item in doc.body:
            _xml_value(root, doc.item or "item", item)
    else:
        for key, value in doc.body.items():
            _xml_value(root, key, value)
    payload = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(
        payload,
        status_code=doc.status,
        media_type=f"{FORMATS['xml']}; charset=utf-8",
        headers=headers,
    )


def _xml_value(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    if value is None:
        return
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, dict):
        for key, inner in value.items():
            _xml_value(element, key, inner)
    elif isinstance(value, list):
        for inner in value:
            _xml_value(element, XML_ITEMS.get(tag, "item"), inner)
    else:
        element.text = _XML_ILLEGAL.sub("", str(value))


def _error(fmt: str, exc: Open311Error) -> Response:
    body = [{"code": exc.status, "description": d} for d in exc.descriptions]
    return _render(fmt if fmt in FORMATS else "json", Document("errors", body, "error", exc.status))


def _answer(db: Session, fmt: str, build: Callable[[str], Document]) -> Response:
    """Run ``build`` and render its answer, or the refusal in the same format. A refusal
    rolls the request's transaction back: nothing half-written is committed."""
    try:
        fmt = _format_of(fmt)
        return _render(fmt, build(fmt))
    except DomainError as exc:
        db.rollback()
        return _error(fmt, Open311Error(exc.status_code, _bad(exc.message_zh, exc.message_en)))
    except Open311Error as exc:
        db.rollback()
        return _error(fmt, exc)


# --- small conversions -------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in Beijing time with its offset: 2026-09-30T09:00:00+08:00."""
    return value.astimezone(SHANGHAI).isoformat(timespec="seconds") if value else None


def _parse_date(name: str, raw: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; without an offset it is Beijing time. A ``+`` sent
    unencoded in a query string arrives as a space and is put back."""
    if raw is None or not raw.strip():
        return None
    text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", raw.strip())
    try:
        value = datetime.fromisoformat(text)
        return (value if value.tzinfo else value.replace(tzinfo=SHANGHAI)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise Open311Error(
            400,
            _bad(
                f"{name} 不是有效的 ISO 8601 时间，例如 2026-09-30T09:00:00+08:00",
                f"{name} must be an ISO 8601 date-time such as 2026-09-30T09:00:00+08:00",
            ),
        ) from None


def _window(
    start_raw: str | None,
    end_raw: str | None,
    *,
    default: timedelta | None,
    max_span: timedelta | None = None,
) -> tuple[datetime | None, datetime | None]:
    """The [start, end] range of a query; with ``default``, a missing end is start +
    default (or now) and a missing start is end - default."""
    start, end = _parse_date("start_date", start_raw), _parse_date("end_date", end_raw)
    try:
        if default is not None:
            if end is None:
                end = (start + default) if start is not None else clock.now()
            if start is None:
                start = end - default
    except OverflowError:
        raise Open311Error(
            400, _bad("start_date / end_date 超出范围", "start_date / end_date out of range")
        ) from None
    if start is not None and end is not None:
        if start > end:
            raise Open311Error(
                400, _bad("start_date 不能晚于 end_date", "start_date must not be after end_date")
            )
        if max_span is not None and end - start > max_span:
            raise Open311Error(
                400,
                _bad(
                    f"start_date 至 end_date 不能超过 {max_span.days} 天",
                    f"start_date to end_date may not span more than {max_span.days} days",
                ),
            )
    return start, end


def _clean(raw: str, limit: int = 60) -> str:
    """A query or path value without control characters (PostgreSQL refuses NUL)."""
    return _CONTROL.sub("", raw).strip()[:limit]


def _csv(raw: str | None, *, limit: int, name: str) -> list[str]:
    values = [_clean(v) for v in (raw or "").split(",") if _clean(v)]
    if len(values) > limit:
        raise Open311Error(
            400, _bad(f"{name} 一次最多 {limit} 个", f"at most {limit} values of {name}")
        )
    return values


def _service_codes(raw: str | None) -> list[str]:
    codes = _csv(raw, limit=MAX_IDS, name="service_code")
    unknown = [c for c in codes if c not in categories()]
    if unknown:
        raise Open311Error(
            400,
            _bad(f"未知的 service_code：{', '.join(unknown)}", f"unknown service_code {unknown}"),
        )
    return codes


def _statuses(raw: str | None) -> set[str]:
    values = {v.lower() for v in _csv(raw, limit=2, name="status")}
    if not values <= {"open", "closed"}:
        raise Open311Error(
            400, _bad("status 只能是 open 或 closed", "status must be open or closed")
        )
    return values


def _mask(text: str | None, secrets: Sequence[str | None]) -> str | None:
    """Text fit to publish: the requester's ``secrets`` (name, phone, ID number) and
    anything that looks like a phone number, an ID number or an e-mail address, masked."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret.strip()) >= 2:
            text = text.replace(secret.strip(), _MASK)
    text = _PERSONAL_NUMBER.sub(_MASK, text)
    return _EMAIL.sub(_MASK, text)


def _chunks(values: Sequence[uuid.UUID]) -> Iterable[Sequence[uuid.UUID]]:
    for i in range(0, len(values), IN_CHUNK):
        yield values[i : i + IN_CHUNK]


Fmt = Annotated[str, Path(description="json 或 xml / response format")]


# --- reading orders (public fields only) -------------------------------------------------


@dataclass
class _Row:
    case: Case
    order: Order
    lead_name: str | None
    parent_number: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _public() -> ColumnElement[bool]:
    """What GeoReport may show at all: 12345 orders the city sees, less confidential 举报."""
    clause = and_(
        Case.case_type == CASE_TYPE,
        or_(Case.request_type.is_(None), Case.request_type.not_in(CONFIDENTIAL_TYPES)),
    )
    visible = repository.visible(system_principal("open311"))
    return clause if visible is None else and_(clause, visible)


def _state(workflow: Workflow, case: Case) -> State:
    """The case's workflow state; a status the city's workflow no longer knows reads as
    itself, final once the case was closed."""
    known = workflow.states.get(case.status)
    return known or State(case.status, case.status, final=case.closed_at is not None)


def _final_states(workflow: Workflow) -> list[str]:
    return sorted(name for name, state in workflow.states.items() if state.final)


def _requests(
    db: Session,
    workflow: Workflow,
    *,
    numbers: Sequence[str] = (),
    codes: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: set[str] | None = None,
) -> list[_Row]:
    """Newest first, at most ``MAX_RESULTS``; three or four statements."""
    query = (
        select(Case, Order, Unit.name)
        .join(Order, Order.id == Case.id)
        .outerjoin(Unit, Unit.id == Case.lead_unit_id)
        .where(_public())
    )
    if numbers:
        query = query.where(Case.number.in_(numbers))
    if codes:
        query = query.where(Case.category.in_(codes))
    if start is not None:
        query = query.where(Case.created_at >= start)
    if end is not None:
        query = query.where(Case.created_at <= end)
    if statuses and statuses != {"open", "closed"}:
        final = _final_states(workflow)
        query = query.where(
            Case.status.in_(final) if "closed" in statuses else Case.status.not_in(final)
        )
    rows = [
        _Row(c, o, name)
        for c, o, name in db.execute(
            query.order_by(Case.created_at.desc(), Case.number.desc()).limit(MAX_RESULTS)
        ).all()
    ]
    _attach(db, rows)
    return rows


def _attach(db: Session, rows: list[_Row]) -> None:
    """Parents' numbers of merged orders and the Open311 extras (location, media)."""
    parents = list({r.case.parent_id for r in rows if r.case.parent_id})
    numbers: dict[uuid.UUID, str] = {}
    for chunk in _chunks(parents):
        numbers.update(db.execute(select(Case.id, Case.number).where(Case.id.in_(chunk))).all())
    ids = [r.case.id for r in rows if r.order.channel == Channel.OPEN311.value]
    extras: dict[uuid.UUID, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for case_id, data in db.execute(
            select(CaseEvent.case_id, CaseEvent.data).where(
                CaseEvent.case_id.in_(chunk), CaseEvent.action == EXTRAS_ACTION
            )
        ).all():
            extras[case_id] = dict(data or {})
    for row in rows:
        row.parent_number = numbers.get(row.case.parent_id) if row.case.parent_id else None
        row.extras = extras.get(row.case.id, {})


def _agency(row: _Row, settings: Settings) -> str:
    if row.lead_name:
        return row.lead_name
    if row.order.transferred_to in EMERGENCY_AGENCIES:
        return EMERGENCY_AGENCIES[row.order.transferred_to]
    return f"{settings.city_name}12345政务服务便民热线"


def _notice(case: Case, workflow: Workflow, *, parent: str | None, transferred: str | None) -> str:
    """What happens next, in public words (never a reply text: it may name people)."""
    state = _state(workflow, case)
    if case.status == "merged" and parent:
        return f"已并入工单 {parent}，随主工单一并办理答复。"
    if case.status == "transferred":
        return f"已移交 {EMERGENCY_AGENCIES.get(transferred or '', '应急联动部门')} 处置。"
    if state.final:
        return f"工单{state.label}。"
    if state.paused:
        return f"工单{state.label}，恢复办理后继续计时。"
    stage = STAGE_LABELS.get(case.stage or "", case.stage or "")
    if case.due_at is not None:
        due = case.due_at.astimezone(SHANGHAI)
        return f"当前{stage}环节，时限至 {due:%Y-%m-%d %H:%M}（北京时间）。"
    return f"当前{stage}环节。"


def _request_item(row: _Row, workflow: Workflow, settings: Settings) -> dict[str, Any]:
    case, order = row.case, row.order
    state = _state(workflow, case)
    code = case.category or "other"
    category: Category | None = categories().get(code)
    description = None
    if order.channel == Channel.OPEN311.value:
        secrets = (order.requester_id_number, order.requester_phone, order.requester_name)
        description = (_mask(order.content, secrets) or "")[:MAX_DESCRIPTION]
    updated = case.closed_at if state.final and case.closed_at else case.updated_at
    return {
        "service_request_id": case.number,
        "status": "closed" if state.final else "open",
        "status_notes": state.label,
        "service_name": category.name if category else code,
        "service_code": code,
        "description": description,
        "agency_responsible": _agency(row, settings),
        "service_notice": _notice(
            case, workflow, parent=row.parent_number, transferred=order.transferred_to
        ),
        "requested_datetime": _iso(case.created_at),
        "updated_datetime": _iso(updated),
        "expected_datetime": _iso(case.due_at) if not state.final else None,
        "address": order.address,
        "lat": row.extras.get("lat"),
        "long": row.extras.get("long"),
        "media_url": row.extras.get("media_url"),
    }


# --- the endpoints -----------------------------------------------------------------------


@router.get("/discovery.{fmt}", summary="服务发现 discovery")
def discovery(fmt: Fmt, request: Request, db: DB, settings: AppSettings) -> Response:
    def build(_: str) -> Document:
        url = str(request.base_url).rstrip("/") + router.prefix
        return Document(
            "discovery",
            {
                "changeset": CHANGESET,
                "contact": f"{settings.city_name}12345政务服务便民热线：拨打 12345",
                "key_service": (
                    f"api_key 请向{settings.city_name}政务服务数据管理局申请 / "
                    "apply to the city's government services and data bureau for an api_key"
                ),
                "endpoints": [
                    {
                        "specification": SPECIFICATION,
                        "url": url,
                        "changeset": CHANGESET,
                        "type": "production",
                        "formats": [FORMATS["xml"], FORMATS["json"]],
                    }
                ],
            },
        )

    return _answer(db, fmt, build)


def _service(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": f"{category.name}类诉求，由 12345 热线受理并派至承办单位办理。",
        "metadata": False,
        "type": "realtime",
        "keywords": KEYWORDS.get(category.code, category.name),
        "group": GROUPS.get(category.code, "其他"),
    }


@router.get("/services.{fmt}", summary="服务类别 services")
def list_services(fmt: Fmt, db: DB) -> Response:
    return _answer(
        db,
        fmt,
        lambda _: Document("services", [_service(c) for c in categories().values()], "service"),
    )


@router.get("/services/{service_code}.{fmt}", summary="服务定义 service definition")
def service_definition(service_code: str, fmt: Fmt, db: DB) -> Response:
    def build(_: str) -> Document:
        if service_code not in categories():
            raise Open311Error(
                404, _bad(f"未知的 service_code：{service_code[:60]}", "service_code not found")
            )
        return Document("service_definition", {"service_code": service_code, "attributes": []})

    return _answer(db, fmt, build)


@router.get("/requests.{fmt}", summary="查询诉求 service requests")
def list_requests(
    fmt: Fmt,
    db: DB,
    cfg: Config,
    settings: AppSettings,
    service_request_id: Annotated[
        str | None, Query(description="工单编号，逗号分隔；给出时忽略其他条件")
    ] = None,
    service_code: Annotated[str | None, Query(description="类别编码，逗号分隔")] = None,
    start_date: Annotated[str | None, Query(description="ISO 8601，缺省为 90 天前")] = None,
    end_date: Annotated[str | None, Query(description="ISO 8601，缺省为现在")] = None,
    status: Annotated[str | None, Query(description="open / closed，逗号分隔")] = None,
) -> Response:
    """Public: no key; at most 1 000 requests, newest first; no personal data."""

    def build(_: str) -> Document:
        workflow = cfg.workflow()
        numbers = _csv(service_request_id, limit=MAX_IDS, name="service_request_id")
        if numbers:  # GeoReport: service_request_id overrides every other argument
            rows = _requests(db, workflow, numbers=numbers)
        else:
            codes = _service_codes(service_code)
            statuses = _statuses(status)
            start, end = _window(
                start_date, end_date, default=DEFAULT_WINDOW, max_span=DEFAULT_WINDOW
            )
            rows = _requests(db, workflow, codes=codes, start=start, end=end, statuses=statuses)
        items = [_request_item(r, workflow, settings) for r in rows]
        return Document("service_requests", items, "request")

    return _answer(db, fmt, build)


@router.get("/requests/{service_request_id}.{fmt}", summary="查询单个诉求 one service request")
def get_request(
    service_request_id: str, fmt: Fmt, db: DB, cfg: Config, settings: AppSettings
) -> Response:
    def build(_: str) -> Document:
        workflow = cfg.workflow()
        rows = _requests(db, workflow, numbers=[_clean(service_request_id)])
        if not rows:
            raise Open311Error(404, _bad("工单不存在或不公开", "service_request_id not found"))
        return Document("service_requests", [_request_item(rows[0], workflow, settings)], "request")

    return _answer(db, fmt, build)


@router.get("/tokens/{token}.{fmt}", summary="由 token 查询工单编号 token")
def get_token(token: str, fmt: Fmt, db: DB) -> Response:
    """Orders are registered synchronously: the token is the order number itself."""

    def build(_: str) -> Document:
        number = _clean(token)
        found = db.execute(
            select(Case.number)
            .join(Order, Order.id == Case.id)
            .where(Case.number == number, _public())
        ).scalar_one_or_none()
        if found is None:
            raise Open311Error(404, _bad("token 不存在", "token not found"))
        return Document(
            "service_requests", [{"service_request_id": found, "token": found}], "request"
        )

    return _answer(db, fmt, build)


@router.get("/servicerequestupdates.{fmt}", summary="诉求办理进展 service request updates")
def list_updates(
    fmt: Fmt,
    db: DB,
    cfg: Config,
    start_date: Annotated[str | None, Query(description="ISO 8601")] = None,
    end_date: Annotated[str | None, Query(description="ISO 8601")] = None,
    service_request_id: Annotated[str | None, Query(description="工单编号，逗号分隔")] = None,
) -> Response:
    """The servicerequestupdates extension: one update per timeline event, oldest first;
    the newest 1 000 in the window (default: the last 90 days, or the whole history of
    the requests named by ``service_request_id``)."""

    def build(_: str) -> Document:
        workflow = cfg.workflow()
        numbers = _csv(service_request_id, limit=MAX_IDS, name="service_request_id")
        default = None if numbers and not (start_date or end_date) else DEFAULT_WINDOW
        start, end = _window(start_date, end_date, default=default)
        items = _updates(db, workflow, numbers, start, end)
        return Document("service_request_updates", items, "request_update")

    return _answer(db, fmt, build)


def _updates(
    db: Session,
    workflow: Workflow,
    numbers: Sequence[str],
    start: datetime | None,
    end: datetime | None,
) -> list[dict[str, Any]]:
    query = (
        select(
            CaseEvent,
            Case.number,
            Order.requester_id_number,
            Order.requester_phone,
            Order.requester_name,
        )
        .join(Case, Case.id == CaseEvent.case_id)
        .join(Order, Order.id == Case.id)
        .where(_public(), CaseEvent.action.not_in(SKIPPED_EVENTS))
    )
    if numbers:
        query = query.where(Case.number.in_(numbers))
    if start is not None:
        query = query.where(CaseEvent.at >= start)
    if end is not None:
        query = query.where(CaseEvent.at <= end)
    newest = query.order_by(CaseEvent.at.desc(), Case.number.desc(), CaseEvent.seq.desc())
    rows = list(reversed(db.execute(newest.limit(MAX_RESULTS)).all()))
    # The status after each event: the last status change at or before it.
    changes: dict[uuid.UUID, list[tuple[int, str]]] = {}
    for chunk in _chunks(list({row[0].case_id for row in rows})):
        for case_id, seq, to_status in db.execute(
            select(CaseEvent.case_id, CaseEvent.seq, CaseEvent.to_status)
            .where(CaseEvent.case_id.in_(chunk), CaseEvent.to_status.is_not(None))
            .order_by(CaseEvent.seq)
        ).all():
            changes.setdefault(case_id, []).append((seq, str(to_status)))
    final = set(_final_states(workflow))
    items = []
    for event, number, *secrets in rows:
        status = workflow.initial
        for seq, to_status in changes.get(event.case_id, []):
            if seq > event.seq:
                break
            status = to_status
        note = _mask(event.note, secrets)
        items.append(
            {
                "update_id": f"{number}_{event.seq}",
                "service_request_id": number,
                "status": "closed" if status in final else "open",
                "updated_datetime": _iso(event.at),
                "description": f"{event.label}：{note}" if note else event.label,
                "media_url": None,
            }
        )
    return items


# --- POST requests -----------------------------------------------------------------------


def _limiter(request: Request) -> RateLimiter:
    """The app's in-process limiter of public submissions (made on first use)."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    return limiter


def _quotas(settings: Settings, ip: str | None, phone: str) -> list[Quota]:
    """Per callback phone number, and per client address when there is one."""
    window = timedelta(minutes=settings.submit_window_minutes)
    quotas = [
        Quota(
            "open311.phone",
            phone,
            settings.submit_max_per_phone,
            window,
            "同一联系电话",
            "this phone number",
        )
    ]
    if ip:
        quotas.append(
            Quota(
                "open311.ip", ip, settings.submit_max_per_ip, window, "同一网络地址", "this address"
            )
        )
    return quotas


@dataclass(frozen=True)
class _Submission:
    fields: dict[str, str]
    error: Open311Error | None = None


async def _read_body(request: Request) -> bytes:
    too_large = Open311Error(
        400,
        _bad(
            f"请求内容过大（上限 {MAX_BODY // 1024} KB），诉求内容不超过 {MAX_DESCRIPTION} 字",
            f"request body over {MAX_BODY // 1024} KB; description is limited to "
            f"{MAX_DESCRIPTION} characters",
        ),
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _parse_form(request: Request, body: bytes) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/x-www-form-urlencoded"):
        try:
            return parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
                encoding="utf-8",
                errors="replace",
            )
        except ValueError:
            raise Open311Error(
                400, _bad(f"字段过多（上限 {MAX_FIELDS}）", f"more than {MAX_FIELDS} fields")
            ) from None
    if content_type == "multipart/form-data":

        async def stream() -> AsyncGenerator[bytes, None]:
            yield body

        try:
            form = await MultiPartParser(
                request.headers, stream(), max_files=0, max_fields=MAX_FIELDS
            ).parse()
        except MultiPartException:
            raise Open311Error(
                400,
                _bad(
                    "表单无法解析或含有文件；图片请以 media_url 提供",
                    "malformed form or a file upload; send pictures as media_url",
                ),
            ) from None
        return [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
    raise Open311Error(
        400,
        _bad(
            "请以 application/x-www-form-urlencoded 表单提交",
            "send the request as application/x-www-form-urlencoded",
        ),
    )


async def _submission(request: Request) -> _Submission:
    """The POST's fields: the form body, then the query string (GeoReport's swagger puts
    ``api_key`` there). A name given twice keeps its first value, the body's over the
    query's; control characters are dropped (PostgreSQL refuses NUL)."""
    try:
        body = await _parse_form(request, await _read_body(request))
    except Open311Error as exc:
        return _Submission({}, exc)
    fields: dict[str, str] = {}
    for key, value in [*body, *request.query_params.multi_items()]:
        fields.setdefault(key, _CONTROL.sub("", value).strip())
    return _Submission(fields)


Submission = Annotated[_Submission, Depends(_submission)]


def _open311_principal(db: Session, api_key: str, ip: str | None) -> Principal:
    principal = resolve_bearer(db, api_key or None, ip=ip)
    token = db.get(ApiToken, principal.token_id) if principal and principal.token_id else None
    if (
        principal is None
        or token is None
        or token.kind != TOKEN_KIND
        or not principal.can("hotline:order:push")
    ):
        raise Open311Error(
            403,
            _bad(
                "api_key 缺失、无效、已吊销或不是 Open311 密钥",
                "api_key missing, invalid, revoked or not an Open311 key",
            ),
        )
    return principal


def _phone(raw: str) -> str:
    """A callback number as the hotline stores it: spaces gone; a mobile number also loses
    its +86 and dashes (then ``_CALLBACK_PHONE`` checks it)."""
    value = re.sub(r"\s+", "", raw)
    digits = re.sub(r"[-()]", "", value)
    digits = re.sub(r"^(?:\+86|0086|86)(?=1\d{10}$)", "", digits)
    if re.fullmatch(r"1[3-9]\d{9}", digits):
        return digits
    return value


def _coordinate(name: str, raw: str, bound: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > bound:
        raise Open311Error(
            400, _bad(f"{name} 不是有效的 WGS84 坐标", f"{name} is not a valid WGS84 coordinate")
        )
    return value


def _requester_name(first: str, last: str) -> str:
    """Chinese names run family name first (陈 + 小敏); others "First Last"."""
    if first and last and all("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return last + first
    return " ".join(p for p in (first, last) if p) or "匿名"


def _validate(fields: dict[str, str]) -> tuple[OrderCreate, dict[str, Any]]:
    """Check every field and say everything wrong at once."""
    problems: list[str] = []
    code = fields.get("service_code", "")
    if not code:
        problems.append(_bad("缺少 service_code", "service_code is required"))
    elif code not in categories():
        problems.append(_bad(f"未知的 service_code：{code[:60]}", "unknown service_code"))
    description = fields.get("description", "")
    if not description:
        problems.append(_bad("缺少诉求内容 description", "description is required"))
    elif len(description) > MAX_DESCRIPTION:
        problems.append(
            _bad(
                f"诉求内容不能超过 {MAX_DESCRIPTION} 字",
                f"description is limited to {MAX_DESCRIPTION} characters",
            )
        )
    phone = _phone(fields.get("phone", ""))
    if not phone:
        problems.append(
            _bad(
                "请提供联系电话：12345 热线需要回访诉求人",
                "phone is required: the 12345 hotline calls every requester back",
            )
        )
    elif not _CALLBACK_PHONE.match(phone):
        problems.append(
            _bad(
                "联系电话格式不正确，请填写手机号或带区号的固定电话",
                "phone must be a mainland mobile number or a landline with its area code",
            )
        )
    first, last = fields.get("first_name", ""), fields.get("last_name", "")
    if len(first) > MAX_NAME or len(last) > MAX_NAME:
        problems.append(_bad(f"姓名过长（上限 {MAX_NAME} 字）", "first_name/last_name too long"))
    address = fields.get("address_string", "")
    if len(address) > MAX_ADDRESS:
        problems.append(
            _bad(f"地址不能超过 {MAX_ADDRESS} 字", f"address_string over {MAX_ADDRESS} characters")
        )
    extras: dict[str, Any] = {}
    lat, long = fields.get("lat", ""), fields.get("long", "")
    if bool(lat) != bool(long):
        problems.append(_bad("lat 和 long 须同时提供", "lat and long go together"))
    elif lat:
        try:
            extras["lat"] = _coordinate("lat", lat, 90)
            extras["long"] = _coordinate("long", long, 180)
        except Open311Error as exc:
            problems.extend(exc.descriptions)
    media = fields.get("media_url", "")
    if media:
        parts = urlsplit(media)
        if len(media) > MAX_URL or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(_bad("media_url 须为 http(s) 网址", "media_url must be an http(s) URL"))
        else:
            extras["media_url"] = media
    if problems:
        raise Open311Error(400, *problems)
    try:
        data = OrderCreate(
            channel=Channel.OPEN311,
            requester_name=_requester_name(first, last),
            requester_phone=phone,
            content=description,
            request_type=RequestType.HELP,
            category=code,
            address=address or None,
        )
    except ValidationError as exc:
        names = {
            "requester_phone": "phone",
            "content": "description",
            "address": "address_string",
            "requester_name": "first_name/last_name",
            "category": "service_code",
        }
        raise Open311Error(
            400,
            *(
                _bad(f"{names.get(str(e['loc'][0]), e['loc'][0])} 无效", str(e["msg"]))
                for e in exc.errors()
            ),
        ) from None
    return data, extras


@router.post(
    "/requests.{fmt}",
    summary="提交诉求 create a service request",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["api_key", "service_code", "description", "phone"],
                        "properties": {
                            name: {"type": "string"}
                            for name in (
                                "api_key",
                                "service_code",
                                "description",
                                "lat",
                                "long",
                                "address_string",
                                "first_name",
                                "last_name",
                                "phone",
                                "email",
                                "device_id",
                                "account_id",
                                "media_url",
                            )
                        },
                    }
                }
            },
        }
    },
)
def create_request(
    fmt: Fmt,
    request: Request,
    submission: Submission,
    db: DB,
    cfg: Config,
    settings: AppSettings,
) -> Response:
    """Registers a 12345 order at once (channel open311); answers its number."""

    replayed: list[bool] = []

    def build(_: str) -> Document:
        if submission.error is not None:
            raise submission.error
        fields = submission.fields
        principal = _open311_principal(db, fields.get("api_key", ""), client_ip(request))
        data, extras = _validate(fields)
        # One path for both formats: a retry may ask for the other one and is replayed.
        payload = {k: v for k, v in fields.items() if k != "api_key"}
        guard = idempotency.guard(
            db,
            principal,
            request.headers.get("idempotency-key"),
            method="POST",
            path=f"{router.prefix}/requests",
            payload=payload,
        )
        if guard.replay is not None:
            replayed.append(True)
            return Document("service_requests", list(guard.replay.body["requests"]), "request")
        _limiter(request).take(_quotas(settings, client_ip(request), data.requester_phone))
        point = (float(extras["lat"]), float(extras["long"])) if "lat" in extras else None
        case, order = service.register_order(
            db,
            principal,
            config=cfg,
            data=data,
            source_token_id=principal.token_id,
            point=point,
        )
        if extras:
            engine.add_note(
                db, principal, case, action=EXTRAS_ACTION, label=EXTRAS_LABEL, data=extras
            )
        events.after_register(db, case, order)  # the 受理 SMS and the token's webhooks
        next_step = _notice(case, cfg.workflow(), parent=None, transferred=None)
        notice = f"诉求已受理，工单编号 {case.number}，请保持电话畅通以便回访。{next_step}"
        items = [{"service_request_id": case.number, "service_notice": notice, "account_id": None}]
        guard.save(200, {"requests": items})
        return Document("service_requests", items, "request")

    response = _answer(db, fmt, build)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


# --- anything else under /open311/v2/ ----------------------------------------------------

_KNOWN = [
    (re.compile(r"discovery\.\w+"), "GET"),
    (re.compile(r"services\.\w+"), "GET"),
    (re.compile(r"services/[^/]+\.\w+"), "GET"),
    (re.compile(r"requests\.\w+"), "GET, POST"),
    (re.compile(r"requests/[^/]+\.\w+"), "GET"),
    (re.compile(r"tokens/[^/]+\.\w+"), "GET"),
    (re.compile(r"servicerequestupdates\.\w+"), "GET"),
]


@router.api_route(
    "/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def not_here(rest: str) -> Response:
    """Unknown endpoints and methods answer in GeoReport's error format, not as a page."""
    fmt = "xml" if rest.endswith(".xml") else "json"
    for pattern, allowed in _KNOWN:
        if pattern.fullmatch(rest):
            response = _error(
                fmt, Open311Error(405, _bad("不支持此请求方法", "method not allowed"))
            )
            response.headers["Allow"] = allowed
            return response
    return _error(fmt, Open311Error(404, _bad("没有这个 Open311 接口", "no such Open311 endpoint")))
