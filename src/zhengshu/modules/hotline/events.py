"""Order events for partner systems (webhooks), and the hooks the API calls after a step.

Design: a transactional outbox. After a step commits nothing is sent inline; instead, in
the step's own transaction, one ``hotline.webhook`` job per subscribed webhook is queued
with IDs only (webhook, timeline event, delivery id). The worker builds the body from the
timeline event (immutable), POSTs it as JSON with ``urllib.request`` and signs it:

    X-Zhengshu-Event: status | transfer
    X-Zhengshu-Delivery: <uuid, the same on every retry of one delivery>
    X-Zhengshu-Signature: sha256=<HMAC-SHA256 hex of the raw body, keyed by the secret>

A non-2xx answer (redirects included) or a network error raises, so the job queue retries
with backoff (``MAX_ATTEMPTS``). Deliveries are at least once and may arrive out of order
after a retry: receivers dedupe on ``X-Zhengshu-Delivery`` and order by ``seq``.

Two events:

- ``status``: after every action on an order (and its registration), to the webhooks of
  the token that pushed the order (``Order.source_token_id``) subscribed to ``status``.
- ``transfer``: when an order is handed over to 110 (``transfer_emergency`` with target
  110, 国办发〔2022〕12号 two-way transfer), to every active partner token's webhook
  subscribed to ``transfer``. The 110 platform must act on it, so this body carries the
  request and the requester's contact details (a lawful handover); status events carry
  none.

Hook points: ``after_register`` and ``after_action`` are called by the API layer
(``routes_api`` and ``bridge``) right after ``service.register_order`` / ``service.act``,
in the same transaction. They also queue the requester's SMS (``notify``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from zhengshu import __version__
from zhengshu.casework.definitions import Workflow
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import clock, jobs
from zhengshu.modules.hotline import notify
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.enums import EmergencyService
from zhengshu.modules.hotline.models import Order, Webhook
from zhengshu.org.models import ApiToken, Unit

log = logging.getLogger(__name__)

JOB = "hotline.webhook"
STATUS = "status"
TRANSFER = "transfer"
# Early warnings sent on to the police (公安) or the cyberspace office (网信): a gateway
# subscribes to all of them or to one destination (insight.alerts forwards them).
ALERT_FORWARDED = "alert.forwarded"
EVENTS = (
    STATUS,
    TRANSFER,
    ALERT_FORWARDED,
    f"{ALERT_FORWARDED}.police",
    f"{ALERT_FORWARDED}.cyberspace",
)
MAX_ATTEMPTS = 8  # backoff 10 s, 20 s ... about 21 minutes in all
TIMEOUT_SECONDS = 5  # the job holds its transaction (on SQLite: the write lock) meanwhile
SIGNATURE_HEADER = "X-Zhengshu-Signature"
EVENT_HEADER = "X-Zhengshu-Event"
DELIVERY_HEADER = "X-Zhengshu-Delivery"


# --- hooks called by the API layer ------------------------------------------------------


def after_register(session: Session, case: Case, order: Order) -> None:
    """After ``service.register_order``: the status event and the 受理 SMS."""
    # Registration is never a transfer: only an order pushed by a partner token owes a
    # status event, so an order taken by a person needs no lookup of its timeline.
    if order.source_token_id is not None:
        event = (
            session.execute(
                select(CaseEvent)
                .where(CaseEvent.case_id == case.id, CaseEvent.action == "register")
                .order_by(CaseEvent.seq)
            )
            .scalars()
            .first()
        )
        if event is not None:
            emit_for(session, case, order, event)
    notify.for_action(session, case, order, "register")


def after_action(session: Session, event: CaseEvent) -> None:
    """After ``service.act``: the events and the SMS (reply, callback) the step owes."""
    case = session.get(Case, event.case_id)
    order = session.get(Order, event.case_id)
    if case is None or order is None:
        return
    emit_for(session, case, order, event)
    notify.for_action(session, case, order, event.action)


# --- queueing ------------------------------------------------------------------------------


def emit_for(session: Session, case: Case, order: Order, event: CaseEvent) -> int:
    """Queue the deliveries ``event`` owes; returns how many were queued."""
    queued = 0
    if order.source_token_id is not None:
        for hook in webhooks_of(session, order.source_token_id, STATUS):
            _enqueue(session, hook, STATUS, event)
            queued += 1
    if is_transfer_to_110(event):
        for hook in transfer_webhooks(session):
            _enqueue(session, hook, TRANSFER, event)
            queued += 1
    return queued


def is_transfer_to_110(event: CaseEvent) -> bool:
    return (
        event.action == "transfer_emergency"
        and (event.data or {}).get("target") == EmergencyService.POLICE.value
    )


def _enqueue(session: Session, hook: Webhook, name: str, event: CaseEvent) -> None:
    jobs.enqueue(
        session,
        JOB,
        {
            "webhook_id": str(hook.id),
            "event": name,
            "event_id": str(event.id),
            "delivery": str(uuid.uuid4()),
        },
        max_attempts=MAX_ATTEMPTS,
    )


def _live(session: Session, token_id: uuid.UUID) -> bool:
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    return token.expires_at is None or token.expires_at > clock.now()


def webhooks_of(session: Session, token_id: uuid.UUID, event: str) -> list[Webhook]:
    """The active webhooks of a live token subscribed to ``event``."""
    if not _live(session, token_id):
        return []
    hooks = session.execute(
        select(Webhook)
        .where(Webhook.token_id == token_id, Webhook.active.is_(True))
        .order_by(Webhook.created_at)
    ).scalars()
    return [hook for hook in hooks if event in (hook.events or [])]


def transfer_webhooks(session: Session) -> list[Webhook]:
    """Webhooks of live partner tokens subscribed to ``transfer`` (the 110 platform)."""
    hooks = session.execute(
        select(Webhook)
        .join(ApiToken, ApiToken.id == Webhook.token_id)
        .where(
            Webhook.active.is_(True),
            ApiToken.kind == "partner",
            ApiToken.person_id.is_(None),
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > clock.now()),
        )
        .order_by(Webhook.created_at)
    ).scalars()
    return [hook for hook in hooks if TRANSFER in (hook.events or [])]


# --- bodies --------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """An aware UTC datetime as ``2026-09-30T01:00:00Z`` (as the JSON API writes it)."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def status_of(event: CaseEvent, case: Case) -> str:
    """The order's status right after ``event`` (an action without a target keeps it)."""
    return event.to_status or event.from_status or case.status


def status_body(case: Case, order: Order, event: CaseEvent, workflow: Workflow) -> dict[str, Any]:
    status = status_of(event, case)
    return {
        "event": STATUS,
        "number": case.number,
        "external_ref": order.external_ref,
        "status": status,
        "status_label": workflow.state(status).label,
        "at": iso(event.at),
        "action": event.action,
        "seq": event.seq,
    }


def transfer_body(
    session: Session, case: Case, order: Order, event: CaseEvent, workflow: Workflow
) -> dict[str, Any]:
    category = categories().get(case.category or "")
    location = session.get(Unit, order.location_unit_id) if order.location_unit_id else None
    return {
        **status_body(case, order, event, workflow),
        "event": TRANSFER,
        "target": (event.data or {}).get("target"),
        "note": event.note,
        "order": {
            "title": case.title,
            "content": order.content,
            "request_type": case.request_type,
            "category": case.category,
            "category_name": category.name if category else None,
            "urgency": case.urgency,
            "channel": order.channel,
            "address": order.address,
            "location": location.name if location else None,
            "requester_name": order.requester_name,
            "requester_phone": order.requester_phone,
            "registered_at": iso(case.created_at),
        },
    }


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON with sorted keys."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


# --- delivery (the worker) -----------------------------------------------------------------


class WebhookFailed(Exception):
    """A delivery the receiver did not accept; the job is retried with backoff."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: the body is never re-sent elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post(url: str, raw: bytes, headers: dict[str, str], timeout: float = TIMEOUT_SECONDS) -> int:
    """POST ``raw``; returns the 2xx status, raises ``WebhookFailed`` for anything else.
    Goes direct (no proxy from the environment) and follows no redirect."""
    if not url.lower().startswith(("http://", "https://")):
        raise WebhookFailed(f"refused URL scheme: {url[:40]}")
    request = urllib.request.Request(url, data=raw, method="POST", headers=headers)  # noqa: S310 - http(s) only, checked above
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise WebhookFailed(f"HTTP {exc.code} from {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookFailed(f"cannot reach {url}: {exc}") from exc
    if not 200 <= status < 300:
        raise WebhookFailed(f"HTTP {status} from {url}")
    return status


def delivery_job(workflow: Callable[[], Workflow]) -> jobs.Handler:
    """The ``hotline.webhook`` job handler (``workflow`` gives the status labels)."""

    def deliver(session: Session, payload: dict[str, Any]) -> None:
        hook = session.get(Webhook, uuid.UUID(str(payload["webhook_id"])))
        name = str(payload["event"])
        if hook is None or not hook.active or name not in (hook.events or []):
            log.info("webhook delivery %s dropped: webhook gone", payload.get("delivery"))
            return
        if not _live(session, hook.token_id):
            log.info("webhook delivery %s dropped: token revoked", payload.get("delivery"))
            return
        event = session.get(CaseEvent, uuid.UUID(str(payload["event_id"])))
        case = session.get(Case, event.case_id) if event else None
        order = session.get(Order, event.case_id) if event else None
        if event is None or case is None or order is None:
            return
        flow = workflow()
        body = (
            transfer_body(session, case, order, event, flow)
            if name == TRANSFER
            else status_body(case, order, event, flow)
        )
        raw = encode(body)
        post(
            hook.url,
            raw,
            {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": f"zhengshu-webhook/{__version__}",
                EVENT_HEADER: name,
                DELIVERY_HEADER: str(payload.get("delivery", "")),
                SIGNATURE_HEADER: sign(hook.secret, raw),
            },
        )

    return deliver


def subscribed(events: Iterable[str]) -> list[str]:
    """The known event names among ``events``, de-duplicated, in a stable order."""
    wanted = set(events)
    return [name for name in EVENTS if name in wanted]
