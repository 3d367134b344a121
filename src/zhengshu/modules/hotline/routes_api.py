"""JSON API of 12345 work orders under ``/api/v1/orders``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from zhengshu.kernel.authz import Principal
from zhengshu.modules.hotline import events, intake, repository, service, views
from zhengshu.modules.hotline.deps import Config
from zhengshu.modules.hotline.schemas import (
    ActionRequest,
    IntakeReceiptRead,
    OrderCreate,
    OrderFilters,
    OrderListItem,
    OrderQuery,
    OrderRead,
    Revealed,
    TimelineItem,
)
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.deps import DB, Actor
from zhengshu.org.schemas import Page

router = APIRouter(prefix="/api/v1/orders", tags=["12345 工单 orders"])
receipts = APIRouter(prefix=intake.RECEIPTS_PATH, tags=["12345 工单 orders"])


def _read(db: DB, actor: Principal, cfg: HotlineConfig, order_id: uuid.UUID) -> OrderRead:
    case, order = repository.get_order(db, actor, order_id)
    return views.order_read(db, actor, case, order, cfg.workflow())


@router.post(
    "",
    response_model=OrderRead,
    status_code=201,
    responses={
        202: {"model": IntakeReceiptRead, "description": "受理回执 (Prefer: respond-async)"}
    },
)
def register(
    body: OrderCreate,
    db: DB,
    actor: Actor,
    cfg: Config,
    idempotency_key: Annotated[str | None, Header()] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> OrderRead | JSONResponse:
    """受理: register a request (call-takers; partner systems push theirs here too).
    With ``Idempotency-Key`` a repeat gets the first answer back, never a second order.

    With ``Prefer: respond-async`` (and an ``Idempotency-Key``) the request is accepted
    on the fast lane: 202 with a receipt at once, the order registered by the worker
    right behind; ``Location`` is the receipt to poll for its number."""
    if intake.wants_async(prefer):
        receipt = intake.receipt_read(intake.accept(db, actor, body, raw_key=idempotency_key))
        return JSONResponse(
            receipt.model_dump(mode="json"),
            status_code=202,
            headers={"Location": receipt.url, "Preference-Applied": "respond-async"},
        )
    result, replay = intake.register_keyed(db, actor, cfg, body, key=idempotency_key)
    if replay is not None:
        return JSONResponse(replay.body, status_code=replay.status_code, headers=replay.headers)
    assert result is not None
    return result


@router.get("", response_model=Page[OrderListItem])
def list_orders(
    db: DB,
    actor: Actor,
    cfg: Config,
    query: Annotated[OrderQuery, Query()],
) -> Page[OrderListItem]:
    """Orders the caller may see, newest first, filtered (``hotline:order:read``)."""
    actor.require("hotline:order:read")
    limit, offset = query.limit, query.offset
    filters = OrderFilters.model_validate(query.model_dump(exclude={"limit", "offset"}))
    rows, total = repository.list_orders(db, actor, filters, limit=limit, offset=offset)
    workflow = cfg.workflow()
    return Page[OrderListItem](
        items=[views.list_item(c, o, name, workflow) for c, o, name in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{order_id}", response_model=OrderRead)
def get_order(order_id: uuid.UUID, db: DB, actor: Actor, cfg: Config) -> OrderRead:
    actor.require("hotline:order:read")
    return _read(db, actor, cfg, order_id)


@router.get("/{order_id}/timeline", response_model=list[TimelineItem])
def get_timeline(order_id: uuid.UUID, db: DB, actor: Actor) -> list[TimelineItem]:
    actor.require("hotline:order:read")
    case, _ = repository.get_order(db, actor, order_id)
    return views.timeline_items(db, case)


@router.post("/{order_id}/actions/{action}", response_model=OrderRead)
def take_action(
    order_id: uuid.UUID, action: str, body: ActionRequest, db: DB, actor: Actor, cfg: Config
) -> OrderRead:
    """Take a workflow action: dispatch, sign_for, return_order, reject_return, redispatch,
    pass_down, record_contact, request_extension, approve_extension, refuse_extension,
    suspend, resume, reply, callback, answer_directly, transfer_emergency, merge, urge."""
    event = service.act(db, actor, config=cfg, order_id=order_id, action=action, request=body)
    events.after_action(db, event)
    return _read(db, actor, cfg, order_id)


@router.post("/{order_id}/reveal", response_model=Revealed)
def reveal(order_id: uuid.UUID, db: DB, actor: Actor) -> Revealed:
    """The requester's full phone and ID number (audited)."""
    order = service.reveal(db, actor, order_id=order_id)
    return Revealed(
        requester_phone=order.requester_phone, requester_id_number=order.requester_id_number
    )


@receipts.get("/{receipt_id}", response_model=IntakeReceiptRead)
def get_receipt(receipt_id: uuid.UUID, db: DB, actor: Actor) -> IntakeReceiptRead:
    """A fast-lane receipt: queued, registered (with the order's id and number) or failed
    (with the reason). Only whoever sent the request sees it."""
    return intake.receipt_read(intake.get_receipt(db, actor, receipt_id))
