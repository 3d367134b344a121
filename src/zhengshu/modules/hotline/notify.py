"""Messages to the requester: at registration, reply and callback (回访).

A message is a ``Notification`` row (status ``queued``) written in the same transaction as
the step it reports, with a ``hotline.notify`` job beside it (a transactional outbox): it
exists only if the step commits, and a crash after the commit still sends it, because the
worker picks the job up. The worker hands it to the installed ``Sender``; the default
``LogSender`` only logs it (the console shows the table) and a city plugs its SMS gateway
in with ``use_sender``.

A failed send keeps the row ``queued`` with the error, and retries with backoff; after
``MAX_ATTEMPTS`` it is ``failed``. Sending is at least once: a crash between the gateway's
acceptance and the commit sends the message again.

Only mobile numbers get an SMS; a landline or short number gets none (no row).
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from zhengshu.casework.models import Case
from zhengshu.kernel import clock, jobs
from zhengshu.modules.hotline.models import Notification, Order
from zhengshu.org import repository as org_repository

log = logging.getLogger(__name__)

JOB = "hotline.notify"
MAX_ATTEMPTS = 5
SMS = "sms"
MOBILE = re.compile(r"^1[3-9]\d{9}$")

QUEUED, SENT, FAILED = "queued", "sent", "failed"

# Template name -> text; {city} is the city's short name (东莞), {number} the order number.
TEMPLATES = {
    "registered": "【{city}12345】您的诉求已受理，工单号{number}，可凭工单号和手机号查询进度。",
    "replied": (
        "【{city}12345】您的工单{number}已办理并答复，可凭工单号和手机号查询答复内容，"
        "我们将回访了解您的意见。"
    ),
    "closed": "【{city}12345】您的工单{number}已回访办结，感谢您对12345热线工作的支持。",
    "reworked": "【{city}12345】您的工单{number}经回访已交承办单位重新办理，请留意后续答复。",
}

# The timeline action that triggers each message.
ACTION_TEMPLATES = {
    "register": "registered",
    "reply": "replied",
    "close": "closed",
    "rework": "reworked",
}


class Sender(Protocol):
    """Delivers one message; raises on failure (the worker records it and retries)."""

    def send(self, notification: Notification) -> None: ...


class LogSender:
    """The default: no gateway, the message is only logged (phone masked) and marked sent."""

    def send(self, notification: Notification) -> None:
        log.info(
            "notification %s to %s (%s): %s",
            notification.id,
            _mask(notification.recipient),
            notification.template,
            notification.body,
        )


_sender: Sender = LogSender()


def use_sender(sender: Sender) -> Sender:
    """Install the sender process-wide; returns the previous one (tests restore it)."""
    global _sender
    previous, _sender = _sender, sender
    return previous


def _mask(phone: str) -> str:
    return phone[:3] + "*" * max(0, len(phone) - 7) + phone[-4:] if len(phone) >= 7 else "***"


def city_short_name(session: Session) -> str:
    """The signature's city: the root unit's name without 市 (东莞市 -> 东莞)."""
    root = org_repository.root_unit(session)
    name = root.name if root else ""
    return name[:-1] if name.endswith("市") and len(name) > 1 else name


def render(template: str, *, city: str, number: str) -> str:
    return TEMPLATES[template].format(city=city, number=number)


def queue(session: Session, case: Case, order: Order, template: str) -> Notification | None:
    """Write the message and its send job in the caller's transaction; None when the
    requester has no mobile number."""
    phone = (order.requester_phone or "").strip()
    if not MOBILE.fullmatch(phone):
        return None
    notification = Notification(
        id=uuid.uuid4(),
        case_id=case.id,
        channel=SMS,
        recipient=phone,
        template=template,
        body=render(template, city=city_short_name(session), number=case.number),
        status=QUEUED,
        created_at=clock.now(),
        sent_at=None,
        error=None,
    )
    session.add(notification)
    jobs.enqueue(session, JOB, {"notification_id": str(notification.id), "attempt": 1})
    return notification


def for_action(session: Session, case: Case, order: Order, action: str) -> Notification | None:
    """The message a timeline action owes the requester, if any."""
    template = ACTION_TEMPLATES.get(action)
    return queue(session, case, order, template) if template else None


def send_job(session: Session, payload: dict[str, Any]) -> None:
    """Job ``hotline.notify``: send one queued message with the installed sender."""
    notification = session.get(Notification, uuid.UUID(str(payload["notification_id"])))
    if notification is None or notification.status != QUEUED:
        return
    attempt = int(payload.get("attempt", 1))
    try:
        _sender.send(notification)
    except Exception as exc:
        log.warning("notification %s failed (attempt %s): %s", notification.id, attempt, exc)
        notification.error = f"{type(exc).__name__}: {exc}"[:2000]
        if attempt >= MAX_ATTEMPTS:
            notification.status = FAILED
            return
        jobs.enqueue(
            session,
            JOB,
            {"notification_id": str(notification.id), "attempt": attempt + 1},
            run_at=clock.now() + backoff(attempt),
        )
        return
    notification.status, notification.sent_at, notification.error = SENT, clock.now(), None


def backoff(attempt: int) -> timedelta:
    """As the job queue's own: 10 s, 20 s, 40 s ... at most an hour."""
    return timedelta(seconds=min(3600, 5 * 2**attempt))
