"""The fast lane of 受理: accept a request durably at once, register it right behind.

Registering an order is a long unit of work (number, case, first timeline entry, audit
row, smart-dispatch proposal, SMS, webhook): about 10-15 ms of CPU per order in this
process. That is plenty for a call-taker, but a partner platform that pushes a burst (the
110 platform after a storm, a backlog from a message board) should not wait on it, nor be
limited by it. With ``Prefer: respond-async`` (RFC 7240) ``POST /api/v1/orders`` does only
what makes the request safe to acknowledge:

1. who is asking and whether they may take requests in (``service.check_intake``), the
   body valid (the same ``OrderCreate`` as the normal lane), an ``Idempotency-Key``;
2. one row in ``intake_receipts`` (``INSERT .. ON CONFLICT DO NOTHING`` on the caller and
   the key), committed;

and answers **202** with the receipt and ``Location: /api/v1/intake-receipts/{id}``. The
worker (``zhengshu worker``, or the one inside ``zhengshu up``) then registers each
receipt, oldest first, exactly as the normal lane would (``register_keyed``: the same
idempotency key, so a key used on both lanes still makes one order), with the order's
clocks running from the moment of acceptance.

States of a receipt::

    queued ──(worker: registered, in the same transaction as the order)──► registered
       │                                                                   (order_id, number)
       ├──(refused: a rule says no, e.g. a location that is no town)─────► failed (error)
       └──(crash or unexpected error: rolled back, retried with backoff; after
           MAX_ATTEMPTS) ─────────────────────────────────────────────────► failed (error)

Exactly once: the receipt is taken with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has
one writer at a time), and its move to ``registered`` commits with the order or not at all;
a worker killed mid-way leaves it queued for the next one. A repeated POST with the same key
gets the same receipt (whatever its state), never a second order; the same key with a
different body is 409 ``idempotency_mismatch``.

The caller's principal is kept with the receipt (``actor``) as it was authorized at
acceptance: the order is registered in their name and their audit trail, even if their
token expires before the worker gets to it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import cast

from pydantic import ValidationError
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.kernel import clock, idempotency
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.db import transaction
from zhengshu.kernel.errors import Conflict, DomainError, InvalidInput, not_found
from zhengshu.modules.hotline import events, service, views
from zhengshu.modules.hotline.models import IntakeReceipt
from zhengshu.modules.hotline.schemas import IntakeReceiptRead, OrderCreate, OrderRead
from zhengshu.modules.hotline.service import HotlineConfig

log = logging.getLogger(__name__)

ORDERS_PATH = "/api/v1/orders"
RECEIPTS_PATH = "/api/v1/intake-receipts"

QUEUED = "queued"
REGISTERED = "registered"
FAILED = "failed"
STATUS_LABELS = {QUEUED: "已接收，待登记", REGISTERED: "已登记", FAILED: "登记失败"}

# Unexpected errors (not a rule's refusal) are retried this many times, with backoff.
MAX_ATTEMPTS = 5


def wants_async(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240: comma-separated preferences, each a token
    with optional ``=value`` and ``;`` parameters, case-insensitive) asks for
    ``respond-async``."""
    if not prefer:
        return False
    for preference in prefer.split(","):
        token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if token == "respond-async":
            return True
    return False


# --- the normal lane's unit of work, shared by both lanes ---------------------------------


def register_keyed(
    session: Session,
    actor: Principal,
    config: HotlineConfig,
    data: OrderCreate,
    *,
    key: str | None,
    received_at: datetime | None = None,
) -> tuple[OrderRead | None, idempotency.Replay | None]:
    """Register ``data`` under the ``Idempotency-Key`` ``key`` (None: unguarded): the new
    order's view, or the stored first answer when the key was already used for it."""
    guard = idempotency.guard(
        session,
        actor,
        key,
        method="POST",
        path=ORDERS_PATH,
        payload=data.model_dump(mode="json"),
    )
    if guard.replay is not None:
        return None, guard.replay
    case, order = service.register_order(
        session,
        actor,
        config=config,
        data=data,
        source_token_id=actor.token_id if actor.id is None else None,
        received_at=received_at,
    )
    events.after_register(session, case, order)
    result = views.order_read(session, actor, case, order, config.workflow())
    guard.save(201, result.model_dump(mode="json"))
    return result, None


# --- acceptance ---------------------------------------------------------------------------


# Built once per dialect (this is the fast lane's one write).
_RECEIPTS = cast(Table, IntakeReceipt.__table__)
_INSERT_RECEIPT = {
    name: dialect_insert(_RECEIPTS)
    .on_conflict_do_nothing(index_elements=["caller", "key"])
    .returning(_RECEIPTS.c.id)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def accept(
    session: Session, actor: Principal, data: OrderCreate, *, raw_key: str | None
) -> IntakeReceipt:
    """Take ``data`` in on the fast lane: checked, stored, to be registered by the worker.
    The key is required here (the client's only handle for a retry); a repeat gets the
    same receipt back."""
    key = idempotency.check_key(raw_key)
    if key is None:
        raise InvalidInput(
            "快速受理（Prefer: respond-async）须带 Idempotency-Key 请求头",
            "the fast lane (Prefer: respond-async) needs an Idempotency-Key header",
            code="idempotency_key_required",
        )
    service.check_intake(session, actor, data)
    caller = idempotency.caller_of(actor)
    body = data.model_dump(mode="json")
    digest = idempotency.request_hash("POST", ORDERS_PATH, body)
    now = clock.now()
    row = {
        "id": uuid.uuid4(),
        "caller": caller,
        "key": key,
        "request_hash": digest,
        "actor": actor.to_record(),
        "body": body,
        "status": QUEUED,
        "received_at": now,
        "run_at": now,
        "attempts": 0,
    }
    # One statement; a concurrent duplicate waits for the first transaction, then finds
    # its row (PostgreSQL), or never overlaps it (SQLite's single writer).
    dialect = session.get_bind().dialect.name
    inserted = session.connection().execute(_INSERT_RECEIPT[dialect], row).scalar_one_or_none()
    if inserted is not None:
        return IntakeReceipt(**row)  # not added to the session: the row is written
    receipt = session.execute(
        select(IntakeReceipt).where(IntakeReceipt.caller == caller, IntakeReceipt.key == key)
    ).scalar_one()
    if receipt.request_hash != digest:
        raise idempotency.mismatch()
    return receipt


def receipt_read(receipt: IntakeReceipt) -> IntakeReceiptRead:
    error = receipt.error or {}
    return IntakeReceiptRead(
        id=receipt.id,
        status=receipt.status,
        status_label=STATUS_LABELS.get(receipt.status, receipt.status),
        received_at=receipt.received_at,
        url=f"{RECEIPTS_PATH}/{receipt.id}",
        order_id=receipt.case_id,
        number=receipt.number,
        error_code=error.get("code"),
        error_message=error.get("message"),
        error_message_en=error.get("message_en"),
    )


def get_receipt(session: Session, actor: Principal, receipt_id: uuid.UUID) -> IntakeReceipt:
    """A receipt, to whoever sent its request (anyone else: 404, as if it did not exist)."""
    receipt = session.get(IntakeReceipt, receipt_id)
    if receipt is None or receipt.caller != idempotency.caller_of(actor):
        raise not_found("受理回执", "intake receipt")
    return receipt


# --- registration by the worker -----------------------------------------------------------


def _take(session: Session) -> IntakeReceipt | None:
    due = (
        select(IntakeReceipt)
        .where(IntakeReceipt.status == QUEUED, IntakeReceipt.run_at <= clock.now())
        .order_by(IntakeReceipt.run_at)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return session.execute(due).scalar_one_or_none()


def register_receipt(session: Session, config: HotlineConfig, receipt: IntakeReceipt) -> None:
    """Register one queued receipt in the caller's transaction (which must hold it)."""
    actor = Principal.from_record(receipt.actor)
    try:
        data = OrderCreate.model_validate(receipt.body)
    except ValidationError as exc:
        errors = exc.errors()
        detail = errors[0]["msg"] if errors else str(exc)
        raise InvalidInput(
            "受理内容已不符合当前规则（如分类已停用）",
            f"the request no longer validates: {detail}",
            code="invalid_on_registration",
        ) from exc
    result, replay = register_keyed(
        session, actor, config, data, key=receipt.key, received_at=receipt.received_at
    )
    if replay is not None:  # the key's order, registered on either lane before
        receipt.case_id, receipt.number = uuid.UUID(str(replay.body["id"])), replay.body["number"]
    elif result is not None:
        receipt.case_id, receipt.number = result.id, result.number
    receipt.status = REGISTERED
    receipt.attempts += 1
    receipt.finished_at = clock.now()
    receipt.error = None


def _settle(
    factory: sessionmaker[Session], receipt_id: uuid.UUID, *, refused: DomainError | None
) -> None:
    """After a rolled-back attempt: a rule's refusal fails the receipt for good; anything
    else is retried with backoff until ``MAX_ATTEMPTS``."""
    with transaction(factory) as session:
        receipt = session.get(IntakeReceipt, receipt_id)
        if receipt is None or receipt.status != QUEUED:
            return
        receipt.attempts += 1
        now = clock.now()
        if refused is not None:
            error = {
                "code": refused.code,
                "message": refused.message_zh,
                "message_en": refused.message_en,
            }
        elif receipt.attempts >= MAX_ATTEMPTS:
            error = {
                "code": "registration_failed",
                "message": "登记多次失败，请联系系统管理员",
                "message_en": "registration failed repeatedly; contact the administrator",
            }
        else:
            receipt.run_at = now + timedelta(seconds=min(300, 5 * 2**receipt.attempts))
            return
        receipt.status, receipt.error, receipt.finished_at = FAILED, error, now


def drain(factory: sessionmaker[Session], config: HotlineConfig, *, limit: int = 200) -> int:
    """Register queued receipts, oldest first, each in its own transaction, until none is
    due or ``limit`` were handled; returns how many were handled."""
    handled = 0
    while handled < limit:
        receipt_id: uuid.UUID | None = None
        try:
            with transaction(factory) as session:
                receipt = _take(session)
                if receipt is None:
                    return handled
                receipt_id = receipt.id
                register_receipt(session, config, receipt)
        except DomainError as exc:
            if receipt_id is None:
                raise
            # Another request with the same key still in flight: try again shortly.
            in_flight = isinstance(exc, Conflict) and exc.code == "idempotency_in_flight"
            _settle(factory, receipt_id, refused=None if in_flight else exc)
        except Exception:
            if receipt_id is None:
                raise
            log.exception("intake receipt %s: registration failed", receipt_id)
            _settle(factory, receipt_id, refused=None)
        handled += 1
    return handled
