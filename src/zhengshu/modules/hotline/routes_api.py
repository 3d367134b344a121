"""JSON API of 12345 work orders under ``/api/v1/orders``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse

from zhengshu.kernel import idempotency
from zhengshu.kernel.authz import Principal
from zhengshu.modules.hotline import events, repository, service, views
from zhengshu.modules.hotline.schemas import (
    ActionRequest,
    OrderCreate,
    OrderFilters,
    OrderListItem,
    OrderQuery,
    OrderRead,
    Revealed,
    TimelineItem,
)
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.deps import DB, Actor, AppSettings
from zhengshu.org.schemas import Page

router = APIRouter(prefix="/api/v1/orders", tags=["12345 工单 orders"])


def config(settings: AppSettings) -> HotlineConfig:
    return HotlineConfig.from_settings(settings)


Config = Annotated[HotlineConfig, Depends(config)]


def _read(db: DB, actor: Principal, cfg: HotlineConfig, order_id: uuid.UUID) -> OrderRead:
    case, order = repository.get_order(db, actor, order_id)
    return views.order_read(db, actor, case, order, cfg.workflow())


@router.post("", response_model=OrderRead, status_code=201)
def register(
    body: OrderCreate,
    db: DB,
    actor: Actor,
    cfg: Config,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> OrderRead | JSONResponse:
    """受理: register a request (call-takers; partner systems push theirs here too).
    With ``Idempotency-Key`` a repeat gets the first answer back, never a second order."""
    guard = idempotency.guard(
        db,
        actor,
        idempotency_key,
        method="POST",
        path=router.prefix,
        payload=body.model_dump(mode="json"),
    )
    if guard.replay is not None:
        replay = guard.replay
        return JSONResponse(replay.body, status_code=replay.status_code, headers=replay.headers)
    case, order = service.register_order(
        db,
        actor,
        config=cfg,
        data=body,
        source_token_id=actor.token_id if actor.id is None else None,
    )
    events.after_register(db, case, order)
    result = views.order_read(db, actor, case, order, cfg.workflow())
    guard.save(201, result.model_dump(mode="json"))
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
