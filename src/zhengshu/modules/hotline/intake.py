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
    failed ──(a call-taker sends it back: 重新登记) ─────────────────────────► queued
    failed ──(a call-taker registers it by hand, corrected: 人工登记) ────────► registered

A failed receipt is a request someone was told we have: it waits on the queue page
(``/hotline/intake/receipts``) until a person acts, and ``/metrics`` counts it
(``zhengshu_intake_receipts{status="failed"}``) beside the queue's depth and the age of its
oldest receipt. Registered receipts are deleted after ``idempotency.RETENTION`` (7 days:
as long as the keys they stand beside); queued and failed ones are never deleted. An order
registered from a receipt says so on its first timeline entry (the receipt and the wait).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import ValidationError
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.kernel import audit, clock, idempotency
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


def _source_token(actor: Principal) -> uuid.UUID | None:
    """The partner token an order comes from (a person's request has none)."""
    return actor.token_id if actor.id is None else None


def register_keyed(
    session: Session,
    actor: Principal,
    config: HotlineConfig,
    data: OrderCreate,
    *,
    key: str | None,
    received_at: datetime | None = None,
    note: str | None = None,
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
        source_token_id=_source_token(actor),
        received_at=received_at,
        note=note,
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
        session,
        actor,
        config,
        data,
        key=receipt.key,
        received_at=receipt.received_at,
        note=f"经快速受理通道接收，{_waited(receipt)}后由系统登记（回执 {receipt.id}）",
    )
    if replay is not None:  # the key's order, registered on either lane before
        receipt.case_id, receipt.number = uuid.UUID(str(replay.body["id"])), replay.body["number"]
    elif result is not None:
        receipt.case_id, receipt.number = result.id, result.number
    receipt.status = REGISTERED
    receipt.attempts += 1
    receipt.finished_at = clock.now()
    receipt.error = None


def _waited(receipt: IntakeReceipt) -> str:
    """How long the receipt waited for registration, in words."""
    return wait_words((clock.now() - receipt.received_at).total_seconds())


def wait_words(seconds: float) -> str:
    """A wait in words: seconds under two minutes, minutes under two hours, else hours."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} 秒"
    if seconds < 7200:
        return f"{seconds // 60} 分钟"
    return f"{seconds // 3600} 小时"


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


# --- the queue as staff see it: backlog, failed receipts, registration by hand -------------


@dataclass(frozen=True)
class Backlog:
    """The fast lane's queue at a glance (the ``/metrics`` gauges and the queue page)."""

    queued: int
    failed: int
    oldest_queued_at: datetime | None
    registered_last_day: int

    def oldest_queued_seconds(self, now: datetime) -> float:
        if self.oldest_queued_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_queued_at).total_seconds())


def backlog(session: Session) -> Backlog:
    """Receipts waiting, failed (until a person handles them) and registered in the last
    24 hours: one grouped statement over the status index."""
    day_ago = clock.now() - timedelta(days=1)
    rows = session.execute(
        select(
            IntakeReceipt.status,
            func.count(),
            func.min(IntakeReceipt.received_at),
        )
        .where((IntakeReceipt.status != REGISTERED) | (IntakeReceipt.finished_at >= day_ago))
        .group_by(IntakeReceipt.status)
    ).all()
    counts = {status: (int(n), oldest) for status, n, oldest in rows}
    return Backlog(
        queued=counts.get(QUEUED, (0, None))[0],
        failed=counts.get(FAILED, (0, None))[0],
        oldest_queued_at=counts.get(QUEUED, (0, None))[1],
        registered_last_day=counts.get(REGISTERED, (0, None))[0],
    )


def failed_receipts(session: Session, actor: Principal, *, limit: int = 200) -> list[IntakeReceipt]:
    """Receipts the worker could not register, oldest first: each is a request someone
    was told we have, so a call-taker registers it by hand or sends it back to the queue."""
    actor.require("hotline:order:register")
    return list(
        session.execute(
            select(IntakeReceipt)
            .where(IntakeReceipt.status == FAILED)
            .order_by(IntakeReceipt.received_at)
            .limit(limit)
        ).scalars()
    )


def sender_name(receipt: IntakeReceipt) -> str:
    """Who sent the request (the partner system's token or the person), for staff."""
    return str(receipt.actor.get("name") or receipt.caller)


def _take_failed(session: Session, receipt_id: uuid.UUID) -> IntakeReceipt:
    """The failed receipt, locked for this transaction (two call-takers cannot both act
    on it); anything else is a conflict saying why."""
    query = select(IntakeReceipt).where(IntakeReceipt.id == receipt_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    receipt = session.execute(query).scalar_one_or_none()
    if receipt is None:
        raise not_found("受理回执", "intake receipt")
    if receipt.status != FAILED:
        label = STATUS_LABELS.get(receipt.status, receipt.status)
        raise Conflict(
            f"该回执当前为“{label}”，不是登记失败（可能已有人处理）",
            f"the receipt is {receipt.status}, not failed (someone may have handled it)",
            code="receipt_not_failed",
        )
    return receipt


def failed_receipt(session: Session, actor: Principal, receipt_id: uuid.UUID) -> IntakeReceipt:
    """One failed receipt, for a call-taker to register by hand."""
    actor.require("hotline:order:register")
    return _take_failed(session, receipt_id)


def requeue(session: Session, actor: Principal, receipt_id: uuid.UUID) -> IntakeReceipt:
    """Send a failed receipt back to the worker (after what made it fail was put right,
    e.g. a category enabled again or the database back): attempts start again."""
    actor.require("hotline:order:register")
    receipt = _take_failed(session, receipt_id)
    before = {"status": receipt.status, "attempts": receipt.attempts, "error": receipt.error}
    now = clock.now()
    receipt.status, receipt.run_at, receipt.attempts = QUEUED, now, 0
    receipt.error, receipt.finished_at = None, None
    audit.record(
        session,
        actor,
        "hotline.intake.requeue",
        entity_type="intake_receipt",
        entity_id=receipt.id,
        before=before,
        after={"status": QUEUED},
    )
    return receipt


def register_by_hand(
    session: Session,
    actor: Principal,
    config: HotlineConfig,
    receipt: IntakeReceipt,
    data: OrderCreate,
) -> tuple[uuid.UUID, str, bool]:
    """A call-taker registers a failed receipt's request (``receipt`` as ``failed_receipt``
    gave it, locked in this transaction), as they corrected it: the order
    is theirs (受理 by them), its clocks run from the receipt's acceptance, the partner
    that sent it still sees it, and the sender's idempotency key now answers with it (a
    retry on either lane finds this order). Returns (order id, number, whether this call
    registered it: False when the key had made an order on the normal lane meanwhile)."""
    actor.require("hotline:order:register")
    sender = Principal.from_record(receipt.actor)
    guard = idempotency.guard(
        session, sender, receipt.key, method="POST", path=ORDERS_PATH, payload=receipt.body
    )
    created = guard.replay is None
    if guard.replay is not None:
        order_id, number = uuid.UUID(str(guard.replay.body["id"])), str(guard.replay.body["number"])
    else:
        reason = (receipt.error or {}).get("message") or "原因不明"
        case, order = service.register_order(
            session,
            actor,
            config=config,
            data=data,
            source_token_id=_source_token(sender),
            received_at=receipt.received_at,
            note=f"人工登记快速受理通道回执 {receipt.id}（系统登记失败：{reason}）"[:2000],
        )
        events.after_register(session, case, order)
        view = views.order_read(session, sender, case, order, config.workflow())
        guard.save(201, view.model_dump(mode="json"))
        order_id, number = case.id, case.number
    before = {"status": receipt.status, "error": receipt.error}
    receipt.status, receipt.case_id, receipt.number = REGISTERED, order_id, number
    receipt.error, receipt.finished_at = None, clock.now()
    audit.record(
        session,
        actor,
        "hotline.intake.register_by_hand",
        entity_type="intake_receipt",
        entity_id=receipt.id,
        before=before,
        after={"status": REGISTERED, "number": number, "created": created},
    )
    return order_id, number, created


# --- housekeeping -------------------------------------------------------------------------


def purge(session: Session, *, older_than: timedelta = idempotency.RETENTION) -> int:
    """Drop registered receipts finished more than ``older_than`` ago (as long as the
    idempotency keys they stand beside are kept); queued and failed ones stay until they
    are registered. Returns how many."""
    result = session.execute(
        delete(IntakeReceipt).where(
            IntakeReceipt.status == REGISTERED,
            IntakeReceipt.finished_at < clock.now() - older_than,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def purge_finished(session: Session) -> None:
    """Periodic task: registered receipts are kept for ``idempotency.RETENTION``."""
    purge(session)


def metric_families(
    factory: Callable[[], sessionmaker[Session]],
) -> Callable[[], Iterable[Metric]]:
    """The queue's gauges for ``/metrics``, read when scraped (through the app's current
    sessionmaker, ``factory()``): receipts queued and failed,
    and the age of the oldest queued one (the worker's lag). A scrape while the database
    is down gives none of them (``zhengshu_database_up`` says why)."""

    def collect() -> Iterable[Metric]:
        try:
            with factory()() as session:
                state = backlog(session)
        except Exception:
            log.warning("intake backlog unavailable for /metrics", exc_info=True)
            return []
        receipts = GaugeMetricFamily(
            "zhengshu_intake_receipts",
            "Fast-lane intake receipts by status (queued: waiting for the worker; failed: "
            "waiting for a person).",
            labels=["status"],
        )
        receipts.add_metric([QUEUED], state.queued)
        receipts.add_metric([FAILED], state.failed)
        oldest = GaugeMetricFamily(
            "zhengshu_intake_oldest_queued_seconds",
            "Age of the oldest queued fast-lane receipt (0 when none is waiting).",
            value=state.oldest_queued_seconds(clock.now()),
        )
        return [receipts, oldest]

    return collect
