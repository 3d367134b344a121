"""The 110 bridge: non-police calls diverted from 110 to 12345 (国办发〔2022〕12号).

The public security bureau's 110 platform holds a partner token (kind ``partner``, role
``partner``: ``hotline:order:push`` and ``hotline:order:read``) and:

- ``POST /api/v1/partner/110/orders`` pushes a diverted call. The order is registered at
  once (201) with channel ``police_110`` and the 110 incident number as its external
  reference; the timeline records the incident number, whether a three-way call
  (三方通话: caller, 110 and 12345) was made and 110's note. Pushing the same incident
  number again returns the order already made (200): idempotent by incident number, and
  by ``Idempotency-Key`` as well.
- ``GET /api/v1/partner/110/orders/{number}`` reads back progress of an order this token
  pushed (by 12345 number or by incident number): status, lead unit, deadline, the reply,
  and a timeline without the requester's data beyond what 110 sent or staff names.
- ``PUT /api/v1/partner/110/webhook`` registers (replaces) the token's callback URL:
  ``status`` events for the orders it pushed, ``transfer`` events when 12345 hands an
  order over to 110 (see ``events``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.casework.definitions import Workflow
from zhengshu.casework.models import Case
from zhengshu.kernel import audit, clock, idempotency
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.errors import NotFound, PermissionDenied, not_found
from zhengshu.modules.hotline import events, repository, service
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.deps import Config
from zhengshu.modules.hotline.enums import Channel, RequestType, Urgency
from zhengshu.modules.hotline.models import Order, Webhook
from zhengshu.modules.hotline.schemas import PHONE_PATTERN, Name, Note, OrderCreate, Text
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.deps import DB, Actor
from zhengshu.org.models import Unit

PREFIX = "/api/v1/partner/110"
PUSH_PATH = f"{PREFIX}/orders"
DEFAULT_CALLER_NAME = "110来电人"
# Timeline entries 110 never sees (an audited look at the requester's full data).
HIDDEN_ACTIONS = frozenset({"reveal"})
# Entries whose note 110 may read: its own note, and the answers given to the requester.
NOTE_ACTIONS = frozenset({"police_110", "reply", "answer_directly"})

router = APIRouter(prefix=PREFIX, tags=["110 联动 police bridge"])


# --- schemas -------------------------------------------------------------------------------


IncidentNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class Push110(BaseModel):
    """A call 110 diverts to 12345 (非警务警情)."""

    model_config = ConfigDict(extra="forbid")

    incident_number: IncidentNumber = Field(description="110 警情编号")
    caller_name: Name | None = None
    caller_phone: str = Field(pattern=PHONE_PATTERN)
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    content: Text
    category: str = "other"
    request_type: RequestType = RequestType.HELP
    urgency: Urgency = Urgency.NORMAL
    three_way_call: bool = Field(default=False, description="是否已进行三方通话")
    note: Note | None = None

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in categories():
            raise ValueError(f"unknown category {value!r}")
        return value


class PushResult(BaseModel):
    order_id: uuid.UUID
    number: str
    status: str
    status_label: str


class PartnerTimelineItem(BaseModel):
    seq: int
    at: datetime
    action: str
    label: str
    from_status: str | None
    to_status: str | None
    unit_name: str | None
    note: str | None


class PartnerOrder(BaseModel):
    order_id: uuid.UUID
    number: str
    incident_number: str | None
    status: str
    status_label: str
    lead_unit_name: str | None
    due_at: datetime | None
    reply_text: str | None
    replied_at: datetime | None
    closed_at: datetime | None
    timeline: list[PartnerTimelineItem]


EventName = Literal["status", "transfer"]


def _status_only() -> list[EventName]:
    return ["status"]


class WebhookSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=500)
    secret: str = Field(min_length=16, max_length=100)
    events: list[EventName] = Field(default_factory=_status_only, min_length=1, max_length=2)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError("URL must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("URL must be http:// or https:// with a host")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: the secret signs each request")
        if parts.fragment:
            raise ValueError("URL must not have a #fragment")
        return value


class WebhookRead(BaseModel):
    url: str
    events: list[str]
    active: bool
    created_at: datetime


# --- helpers -------------------------------------------------------------------------------


def _partner(actor: Principal, permission: str) -> uuid.UUID:
    """The partner token acting; people (even with a token) are not the 110 platform."""
    actor.require(permission)
    if actor.token_id is None or actor.id is not None:
        raise PermissionDenied(
            "仅限对接系统令牌调用", "partner system tokens only", code="partner_only"
        )
    return actor.token_id


def _summary(case: Case, workflow: Workflow) -> dict[str, Any]:
    return PushResult(
        order_id=case.id,
        number=case.number,
        status=case.status,
        status_label=workflow.state(case.status).label,
    ).model_dump(mode="json")


def _timeline_note(body: Push110) -> str:
    parts = [
        f"110 警情编号：{body.incident_number}",
        "已进行三方通话" if body.three_way_call else "未进行三方通话",
    ]
    if body.note:
        parts.append(f"110 备注：{body.note}")
    return "；".join(parts)


def _push(
    db: Session, actor: Principal, cfg: HotlineConfig, token_id: uuid.UUID, body: Push110
) -> tuple[int, dict[str, Any]]:
    workflow = cfg.workflow()
    # Serialize pushes of one incident by this token (a second one waits for the first and
    # then finds its order), so two concurrent pushes never make two orders.
    incident_caller = f"110:{token_id}"
    first = (
        idempotency.claim(
            db,
            caller=incident_caller,
            key=body.incident_number,
            method="POST",
            path=PUSH_PATH,
            request_hash=idempotency.request_hash("POST", PUSH_PATH, body.incident_number),
        )
        is None
    )
    existing = repository.by_external_ref(db, token_id, body.incident_number)
    if existing is not None:
        result = _summary(existing[0], workflow)
        if first:  # the order came another way (or before the purge): settle the claim
            idempotency.finish(
                db, caller=incident_caller, key=body.incident_number, status_code=200, body=result
            )
        return 200, result
    case, order = service.register_order(
        db,
        actor,
        config=cfg,
        data=OrderCreate(
            channel=Channel.POLICE_110,
            requester_name=body.caller_name or DEFAULT_CALLER_NAME,
            requester_phone=body.caller_phone,
            address=body.address,
            content=body.content,
            request_type=body.request_type,
            category=body.category,
            urgency=body.urgency,
            external_ref=body.incident_number,
        ),
        source_token_id=token_id,
    )
    engine.add_note(
        db,
        actor,
        case,
        action="police_110",
        label="110 警情分流",
        note=_timeline_note(body),
        data={
            "incident_number": body.incident_number,
            "three_way_call": body.three_way_call,
            "note": body.note,
        },
    )
    events.after_register(db, case, order)
    result = _summary(case, workflow)
    idempotency.finish(
        db, caller=incident_caller, key=body.incident_number, status_code=201, body=result
    )
    return 201, result


def _own_order(
    db: Session, actor: Principal, token_id: uuid.UUID, number: str
) -> tuple[Case, Order]:
    """An order this token pushed, by 12345 number or by 110 incident number; else 404."""
    try:
        case, order = repository.get_by_number(db, actor, number)
    except NotFound:
        found = repository.by_external_ref(db, token_id, number.strip())
        if found is None:
            raise
        case, order = found
    if order.source_token_id != token_id:
        raise not_found("工单", "order")
    return case, order


def _reply_text(case: Case, order: Order) -> str | None:
    if case.status in ("replied", "closed"):
        return order.reply_text
    if case.status == "answered":
        return order.answer
    return None


def partner_view(db: Session, case: Case, order: Order, workflow: Workflow) -> PartnerOrder:
    lead = db.get(Unit, case.lead_unit_id) if case.lead_unit_id else None
    return PartnerOrder(
        order_id=case.id,
        number=case.number,
        incident_number=order.external_ref,
        status=case.status,
        status_label=workflow.state(case.status).label,
        lead_unit_name=lead.name if lead else None,
        due_at=case.due_at,
        reply_text=_reply_text(case, order),
        replied_at=order.replied_at,
        closed_at=case.closed_at,
        timeline=[
            PartnerTimelineItem(
                seq=event.seq,
                at=event.at,
                action=event.action,
                label=event.label,
                from_status=event.from_status,
                to_status=event.to_status,
                unit_name=unit_name,
                note=event.note if event.action in NOTE_ACTIONS else None,
            )
            for event, unit_name in repository.timeline(db, case.id)
            if event.action not in HIDDEN_ACTIONS
        ],
    )


def _webhook_read(hook: Webhook) -> WebhookRead:
    return WebhookRead(
        url=hook.url, events=list(hook.events), active=hook.active, created_at=hook.created_at
    )


def _hooks(db: Session, token_id: uuid.UUID) -> list[Webhook]:
    return list(
        db.execute(
            select(Webhook).where(Webhook.token_id == token_id).order_by(Webhook.created_at)
        ).scalars()
    )


# --- routes --------------------------------------------------------------------------------


@router.post(
    "/orders",
    response_model=PushResult,
    status_code=201,
    responses={200: {"model": PushResult, "description": "该警情已推送过：返回原工单"}},
)
def push_order(
    body: Push110,
    db: DB,
    actor: Actor,
    cfg: Config,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """推送 110 分流警情: register it as a 12345 order at once (201); the same incident
    number again answers the existing order (200)."""
    token_id = _partner(actor, "hotline:order:push")
    guard = idempotency.guard(
        db,
        actor,
        idempotency_key,
        method="POST",
        path=PUSH_PATH,
        payload=body.model_dump(mode="json"),
    )
    if guard.replay is not None:
        replay = guard.replay
        return JSONResponse(replay.body, status_code=replay.status_code, headers=replay.headers)
    status_code, result = _push(db, actor, cfg, token_id, body)
    guard.save(status_code, result)
    return JSONResponse(result, status_code=status_code)


@router.get("/orders/{number}", response_model=PartnerOrder)
def read_order(
    number: Annotated[str, Path(min_length=1, max_length=64)],
    db: DB,
    actor: Actor,
    cfg: Config,
) -> PartnerOrder:
    """查询办理进度 of an order this token pushed (12345 number or 110 incident number)."""
    token_id = _partner(actor, "hotline:order:read")
    case, order = _own_order(db, actor, token_id, number)
    return partner_view(db, case, order, cfg.workflow())


@router.put("/webhook", response_model=WebhookRead)
def set_webhook(body: WebhookSet, db: DB, actor: Actor) -> WebhookRead:
    """登记（替换）回调地址: ``status`` events of pushed orders, ``transfer`` events of
    orders 12345 hands over to 110. Each POST is signed (``X-Zhengshu-Signature``)."""
    token_id = _partner(actor, "hotline:order:push")
    hooks = _hooks(db, token_id)
    hook = hooks[0] if hooks else Webhook(id=uuid.uuid4(), token_id=token_id)
    for extra in hooks[1:]:
        db.delete(extra)
    hook.url, hook.secret = body.url, body.secret
    hook.events = events.subscribed(body.events)
    hook.active, hook.created_at = True, clock.now()
    if not hooks:
        db.add(hook)
    db.flush()
    audit.record(
        db,
        actor,
        "hotline.webhook.set",
        entity_type="webhook",
        entity_id=hook.id,
        after={"url": hook.url, "events": hook.events},
    )
    return _webhook_read(hook)


@router.get("/webhook", response_model=WebhookRead)
def get_webhook(db: DB, actor: Actor) -> WebhookRead:
    token_id = _partner(actor, "hotline:order:push")
    hooks = [hook for hook in _hooks(db, token_id) if hook.active]
    if not hooks:
        raise not_found("回调地址", "webhook")
    return _webhook_read(hooks[0])


@router.delete("/webhook", status_code=204)
def delete_webhook(db: DB, actor: Actor) -> Response:
    """停用回调地址: pending deliveries are dropped."""
    token_id = _partner(actor, "hotline:order:push")
    hooks = _hooks(db, token_id)
    for hook in hooks:
        hook.active = False
    if hooks:
        audit.record(
            db, actor, "hotline.webhook.delete", entity_type="webhook", entity_id=hooks[0].id
        )
    return Response(status_code=204)
