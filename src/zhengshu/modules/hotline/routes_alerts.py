"""Early warnings (舆情预警) over HTTP: list, acknowledge, handle, dismiss, send on.

API under ``/api/v1/alerts`` and the console's pages ``/hotline/alerts``; the rules live
in ``insight.alerts`` (``hotline:alert:read`` to read, ``hotline:alert:handle`` to act; a
town's people see their town's warnings only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from zhengshu.kernel.authz import Principal
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.insight import alerts
from zhengshu.modules.hotline.insight.alert_models import Alert, AlertForward, AlertRecipient
from zhengshu.modules.hotline.insight.alerts import (
    FORWARD_STATE_LABELS,
    LEVEL_LABELS,
    AlertKind,
    AlertStatus,
    Destination,
)
from zhengshu.org.deps import DB, Actor
from zhengshu.org.models import Unit
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

api = APIRouter(prefix="/api/v1", tags=["预警 alerts"])
pages = APIRouter(include_in_schema=False)


# --- schemas -----------------------------------------------------------------------------


class AlertRead(BaseModel):
    id: uuid.UUID
    kind: AlertKind
    kind_label: str
    status: AlertStatus
    status_label: str
    level: int
    level_label: str
    title: str
    detail: str
    key: str
    category: str | None
    category_name: str | None
    town_unit_id: uuid.UUID | None
    town_name: str | None
    case_id: uuid.UUID | None
    window_start: datetime | None
    window_end: datetime | None
    window_minutes: int | None
    observed: int | None
    expected: float | None
    p_value: float | None
    matches: list[dict[str, Any]] | None
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_note: str | None
    forwarded_to: list[Destination]
    version: int


class AlertPage(BaseModel):
    items: list[AlertRead]
    total: int


class RecipientRead(BaseModel):
    person_id: uuid.UUID
    person_name: str
    role: str
    delivered_at: datetime
    read_at: datetime | None
    acknowledged_at: datetime | None
    sms_status: str


class ForwardRead(BaseModel):
    id: uuid.UUID
    destination: Destination
    destination_label: str
    note: str | None
    forwarded_by: str
    forwarded_at: datetime
    state: str
    state_label: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


class LinkedOrderRead(BaseModel):
    id: uuid.UUID
    number: str
    title: str
    status: str
    created_at: datetime


class AlertDetail(AlertRead):
    recipients: list[RecipientRead]
    forwards: list[ForwardRead]
    orders: list[LinkedOrderRead]


class AlertAction(BaseModel):
    """Body of an action: ``version`` (the one the caller saw; a stale one gets 409),
    ``note`` (handle, forward), ``reason`` (dismiss), ``destination`` (forward: police |
    cyberspace)."""

    version: int | None = Field(default=None, ge=1, le=2_000_000_000)
    note: str | None = Field(default=None, max_length=2000)
    reason: str | None = Field(default=None, max_length=2000)
    destination: str | None = Field(default=None, max_length=20)


def _read(db: Session, alert: Alert, forwarded: list[AlertForward] | None = None) -> dict[str, Any]:
    info = categories().get(alert.category or "")
    town = db.get(Unit, alert.town_unit_id) if alert.town_unit_id else None
    rows = forwarded if forwarded is not None else alerts.forwards(db, alert.id)
    return {
        "id": alert.id,
        "kind": alert.kind,
        "kind_label": AlertKind(alert.kind).label,
        "status": alert.status,
        "status_label": AlertStatus(alert.status).label,
        "level": alert.level,
        "level_label": LEVEL_LABELS.get(alert.level, ""),
        "title": alert.title,
        "detail": alert.detail,
        "key": alert.key,
        "category": alert.category,
        "category_name": info.name if info else None,
        "town_unit_id": alert.town_unit_id,
        "town_name": town.name if town else None,
        "case_id": alert.case_id,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
        "window_minutes": alert.window_minutes,
        "observed": alert.observed,
        "expected": alert.expected,
        "p_value": alert.p_value,
        "matches": alert.matches,
        "raised_at": alert.raised_at,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "closed_at": alert.closed_at,
        "closed_by": alert.closed_by,
        "close_note": alert.close_note,
        "forwarded_to": list(dict.fromkeys(f.destination for f in rows)),
        "version": alert.version,
    }


def _recipient(row: AlertRecipient) -> RecipientRead:
    return RecipientRead(
        person_id=row.person_id,
        person_name=row.person_name,
        role=row.role,
        delivered_at=row.delivered_at,
        read_at=row.read_at,
        acknowledged_at=row.acknowledged_at,
        sms_status=row.sms_status,
    )


def _forward(row: AlertForward) -> ForwardRead:
    return ForwardRead(
        id=row.id,
        destination=Destination(row.destination),
        destination_label=Destination(row.destination).label,
        note=row.note,
        forwarded_by=row.forwarded_by,
        forwarded_at=row.forwarded_at,
        state=row.state,
        state_label=FORWARD_STATE_LABELS.get(row.state, row.state),
        attempts=row.attempts,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


def _detail(db: Session, actor: Principal, alert_id: uuid.UUID) -> AlertDetail:
    alert = alerts.get_alert(db, actor, alert_id)
    alerts.mark_read(db, actor, alert)
    forwarded = alerts.forwards(db, alert.id)
    return AlertDetail(
        **_read(db, alert, forwarded),
        recipients=[_recipient(r) for r in alerts.recipients(db, alert.id)],
        forwards=[_forward(f) for f in forwarded],
        orders=[LinkedOrderRead(**vars(o)) for o in alerts.linked_orders(db, alert)],
    )


def _act(
    db: Session, actor: Principal, alert_id: uuid.UUID, action: str, body: AlertAction
) -> None:
    if action == "acknowledge":
        alerts.acknowledge(db, actor, alert_id, version=body.version)
    elif action == "handle":
        alerts.handle(db, actor, alert_id, note=body.note, version=body.version)
    elif action == "dismiss":
        alerts.dismiss(db, actor, alert_id, reason=body.reason, version=body.version)
    else:
        alerts.forward(
            db,
            actor,
            alert_id,
            destination=body.destination,
            note=body.note,
            version=body.version,
        )


# --- API ---------------------------------------------------------------------------------


@api.get("/alerts", response_model=AlertPage)
def list_alerts(
    db: DB,
    actor: Actor,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AlertPage:
    """Warnings the caller may see, newest first (``hotline:alert:read``)."""
    rows, total = alerts.list_alerts(
        db, actor, status=status, kind=kind, limit=limit, offset=offset
    )
    return AlertPage(items=[AlertRead(**_read(db, a)) for a in rows], total=total)


@api.get("/alerts/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: uuid.UUID, db: DB, actor: Actor) -> AlertDetail:
    """One warning with its recipients, forwards and the orders behind it."""
    return _detail(db, actor, alert_id)


def _api_action(action: str) -> Any:
    def endpoint(
        alert_id: uuid.UUID, db: DB, actor: Actor, body: AlertAction | None = None
    ) -> AlertDetail:
        _act(db, actor, alert_id, action, body or AlertAction())
        return _detail(db, actor, alert_id)

    endpoint.__name__ = f"alert_{action}"
    endpoint.__doc__ = {
        "acknowledge": "签收 (raised -> acknowledged); ``hotline:alert:handle``.",
        "handle": "处置完毕 (-> handled) with ``note``; ``hotline:alert:handle``.",
        "dismiss": "排除 (-> dismissed) with ``reason``; ``hotline:alert:handle``.",
        "forward": "转送 ``destination`` police | cyberspace, optional ``note``; "
        "a signed webhook delivery after commit.",
    }[action]
    return endpoint


for _action in ("acknowledge", "handle", "dismiss", "forward"):
    api.post(f"/alerts/{{alert_id}}/{_action}", response_model=AlertDetail)(_api_action(_action))


# --- pages -------------------------------------------------------------------------------

_PAGE_FILTERS = {"open": "未结", "all": "全部", **{s.value: s.label for s in AlertStatus}}


@pages.get("/hotline/alerts")
def alerts_page(
    request: Request,
    db: DB,
    actor: PageActor,
    status: str = "open",
    kind: str = "",
    page: int = 1,
    flash: str | None = None,
) -> Response:
    actor.require("hotline:alert:read")
    chosen = status if status in _PAGE_FILTERS else "open"
    kind_value = AlertKind(kind) if kind in {k.value for k in AlertKind} else None
    size = 50
    number = max(1, min(page, 10_000))
    rows, total = alerts.list_alerts(
        db,
        actor,
        status=AlertStatus(chosen) if chosen in {s.value for s in AlertStatus} else None,
        kind=kind_value,
        open_only=chosen == "open",
        limit=size,
        offset=(number - 1) * size,
    )
    return render(
        request,
        "hotline/alerts.html",
        {
            "title": "舆情预警",
            "items": [_read(db, a) for a in rows],
            "total": total,
            "page": number,
            "pages": max(1, (total + size - 1) // size),
            "status": chosen,
            "kind": kind_value.value if kind_value else "",
            "filters": _PAGE_FILTERS,
            "kinds": {k.value: k.label for k in AlertKind},
            "summary": alerts.summary(db, actor, latest=0),
            "flash": flash,
        },
    )


@pages.get("/hotline/alerts/{alert_id:uuid}")
def alert_page(
    request: Request, db: DB, actor: PageActor, alert_id: uuid.UUID, flash: str | None = None
) -> Response:
    detail = _detail(db, actor, alert_id)
    can_act = actor.can("hotline:alert:handle") and detail.status in alerts.OPEN
    done = set(detail.forwarded_to)
    return render(
        request,
        "hotline/alert.html",
        {
            "title": detail.title,
            "a": detail,
            "can_act": can_act,
            "destinations": [d for d in Destination if d not in done],
            "flash": flash,
        },
    )


@pages.post("/hotline/alerts/{alert_id:uuid}/{action}")
async def alert_page_action(
    request: Request, db: DB, actor: PageActor, alert_id: uuid.UUID, action: str
) -> Response:
    form = await request.form()
    if action not in {"acknowledge", "handle", "dismiss", "forward"}:
        alerts.get_alert(db, actor, alert_id)
        return RedirectResponse(f"/hotline/alerts/{alert_id}", status_code=303)

    def text(name: str) -> str | None:
        return str(form.get(name, "") or "")[:2000] or None

    raw_version = str(form.get("version", "") or "")
    body = AlertAction(
        version=int(raw_version) if raw_version.isdigit() and len(raw_version) < 10 else None,
        note=text("note"),
        reason=text("reason"),
        destination=(text("destination") or "")[:20] or None,
    )
    _act(db, actor, alert_id, action, body)
    message = {
        "acknowledge": "已签收",
        "handle": "已标记处置完毕",
        "dismiss": "已排除该预警",
        "forward": "已转送，发送结果见下方转送记录",
    }[action]
    return RedirectResponse(f"/hotline/alerts/{alert_id}?flash={quote(message)}", status_code=303)
