"""Early warnings (话务舆情预警) as objects with a lifecycle.

A warning is raised by the spike scan (``alert_scan.scan_spikes``) or by the extreme-event
scan at intake (``alert_scan.on_intake``); both go through ``raise_alert``, which is
idempotent on the warning's ``dedupe_key`` (the same burst or the same order never raises
twice) and delivers it to the duty supervisors and leaders (a row per person, and an SMS
to each mobile for an extreme event or a spike of level 2 or above: ``texted``).

Lifecycle::

    raised --acknowledge--> acknowledged --handle (note)--> handled
       |                         '--------dismiss (reason)--> dismissed
       '--handle / dismiss directly

Every change is a compare-and-set (``UPDATE ... WHERE status = :from AND version = :v``):
the loser of a race, or a page older than the warning, gets 409 "预警已被他人处理". Each
writes an audit row in the same transaction. Reading needs ``hotline:alert:read``, acting
``hotline:alert:handle``; a town's people see only their town's warnings.

Sending on (转送) to the police (公安) or the cyberspace office (网信) is an outbox delivery:
an ``AlertForward`` row per endpoint and a job released after commit; the worker posts a
signed ``alert.forwarded`` body (the webhook machinery of ``events``, injected by
``zhengshu.tasks``) and retries with backoff.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhengshu.casework.models import Case
from zhengshu.kernel import audit, clock, jobs
from zhengshu.kernel.authz import Principal, PrincipalKind
from zhengshu.kernel.errors import Conflict, InvalidInput, not_found
from zhengshu.modules.hotline.insight.alert_models import Alert, AlertForward, AlertRecipient
from zhengshu.modules.hotline.models import Notification, Order, Webhook
from zhengshu.org.models import ApiToken, Person, PersonRole, Unit

log = logging.getLogger(__name__)


class AlertKind(StrEnum):
    SPIKE = "spike"
    EXTREME = "extreme"

    @property
    def label(self) -> str:
        return {"spike": "话务突增", "extreme": "极端事件"}[self.value]


class AlertStatus(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    HANDLED = "handled"
    DISMISSED = "dismissed"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def open(self) -> bool:
        return self in OPEN


STATUS_LABELS = {
    AlertStatus.RAISED: "待签收",
    AlertStatus.ACKNOWLEDGED: "已签收",
    AlertStatus.HANDLED: "已处置",
    AlertStatus.DISMISSED: "已排除",
}
OPEN = frozenset({AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED})
LEVEL_LABELS = {1: "关注", 2: "预警", 3: "紧急"}

# Who a warning goes to: the duty supervisors (督办) and leaders whose jurisdiction covers
# the warning's town (city-wide ones get every warning).
RECIPIENT_ROLES = ("supervisor", "leader")


class Destination(StrEnum):
    POLICE = "police"
    CYBERSPACE = "cyberspace"

    @property
    def label(self) -> str:
        return {"police": "公安", "cyberspace": "网信"}[self.value]


FORWARD_EVENT = "alert.forwarded"
FORWARD_JOB = "hotline.alert_forward"
FORWARD_MAX_ATTEMPTS = 8
# The SMS to staff travels as the requester's messages do (``notify``'s table and job);
# the name is spelt out because ``insight`` sits below ``notify`` in the layers.
NOTIFY_JOB = "hotline.notify"
SMS_MIN_LEVEL = 2  # spikes at this level or above are texted to the recipients
MOBILE_PREFIX = ("13", "14", "15", "16", "17", "18", "19")

QUEUED, DELIVERED, FAILED, NO_ENDPOINT = "queued", "delivered", "failed", "no_endpoint"
FORWARD_STATE_LABELS = {
    QUEUED: "待发送",
    DELIVERED: "已送达",
    FAILED: "发送失败",
    NO_ENDPOINT: "未配置接收端（已登记，需线下移交）",
}

NOTE_MAX = 2000


# --- raising -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAlert:
    """What a scan found; ``raise_alert`` turns it into a warning."""

    kind: AlertKind
    level: int
    title: str
    detail: str
    key: str
    dedupe_key: str
    category: str | None = None
    town: Unit | None = None
    case_id: uuid.UUID | None = None
    matches: list[dict[str, Any]] | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    window_minutes: int | None = None
    observed: int | None = None
    expected: float | None = None
    p_value: float | None = None


def one_line(text: str, limit: int = 200) -> str:
    """A title: one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def raise_alert(
    session: Session, actor: Principal, new: NewAlert, *, city: str = ""
) -> Alert | None:
    """Raise a warning and deliver it; None when its ``dedupe_key`` was raised before
    (checked first, and enforced by the unique key against a concurrent scan)."""
    if session.scalar(select(Alert.id).where(Alert.dedupe_key == new.dedupe_key)) is not None:
        return None
    alert = Alert(
        id=uuid.uuid4(),
        kind=new.kind.value,
        status=AlertStatus.RAISED.value,
        level=max(1, min(3, new.level)),
        title=one_line(new.title),
        detail=new.detail[: NOTE_MAX * 4],
        key=new.key[:200],
        matches=new.matches,
        category=new.category,
        town_unit_id=new.town.id if new.town else None,
        town_path=new.town.path if new.town else None,
        case_id=new.case_id,
        window_start=new.window_start,
        window_end=new.window_end,
        window_minutes=new.window_minutes,
        observed=new.observed,
        expected=new.expected,
        p_value=new.p_value,
        raised_at=clock.now(),
        version=1,
        dedupe_key=new.dedupe_key[:200],
    )
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        # A concurrent scan raised the same burst / order first.
        return None
    audit.record(
        session,
        actor,
        "hotline.alert.raise",
        entity_type="alert",
        entity_id=alert.id,
        after=_snapshot(alert),
    )
    deliver(session, alert, city=city)
    return alert


def _snapshot(alert: Alert) -> dict[str, Any]:
    return {
        "kind": alert.kind,
        "status": alert.status,
        "level": alert.level,
        "title": alert.title,
        "key": alert.key,
        "case_id": alert.case_id,
        "version": alert.version,
    }


def recipients_for(session: Session, town_path: str | None) -> list[tuple[Person, str]]:
    """Active people holding a recipient role whose jurisdiction covers ``town_path``
    (city-wide people cover every town; a warning with no town goes city-wide only)."""
    scope = Unit.__table__.alias("scope")
    rows = session.execute(
        select(Person, PersonRole.role, scope.c.path, scope.c.depth)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .join(scope, scope.c.id == func.coalesce(Person.scope_unit_id, Person.unit_id))
        .where(Person.active.is_(True), PersonRole.role.in_(RECIPIENT_ROLES))
        .order_by(Person.username, PersonRole.role)
    ).all()
    chosen: dict[uuid.UUID, tuple[Person, str]] = {}
    for person, role, path, depth in rows:
        if depth == 0 or (town_path is not None and town_path.startswith(path)):
            chosen.setdefault(person.id, (person, role))
    return list(chosen.values())


def texted(alert: Alert) -> bool:
    """Whether a warning is worth an SMS to each recipient: one about an order (an extreme
    event at intake), or a spike of level ``SMS_MIN_LEVEL`` or above (a level-1 spike is
    on the page and in the list, not on anyone's phone at night)."""
    return alert.case_id is not None or alert.level >= SMS_MIN_LEVEL


def deliver(session: Session, alert: Alert, *, city: str = "") -> list[AlertRecipient]:
    """A delivery row per recipient; an SMS to each mobile when the warning is
    ``texted``."""
    now = clock.now()
    out = []
    sms = texted(alert)
    for person, role in recipients_for(session, alert.town_path):
        notification_id = None
        phone = (person.phone or "").strip()
        if sms and _is_mobile(phone):
            notification_id = uuid.uuid4()
            session.add(
                Notification(
                    id=notification_id,
                    case_id=alert.case_id,
                    channel="sms",
                    recipient=phone,
                    template="alert_raised",
                    body=sms_text(alert, city),
                    status="queued",
                    created_at=now,
                    sent_at=None,
                    error=None,
                )
            )
            jobs.enqueue(
                session, NOTIFY_JOB, {"notification_id": str(notification_id), "attempt": 1}
            )
        row = AlertRecipient(
            id=uuid.uuid4(),
            alert_id=alert.id,
            person_id=person.id,
            person_name=person.display_name,
            role=role,
            delivered_at=now,
            read_at=None,
            acknowledged_at=None,
            sms_status=QUEUED if notification_id else "none",
            notification_id=notification_id,
        )
        session.add(row)
        out.append(row)
    return out


def _is_mobile(phone: str) -> bool:
    return len(phone) == 11 and phone.isdigit() and phone.startswith(MOBILE_PREFIX)


def sms_text(alert: Alert, city: str = "") -> str:
    level = LEVEL_LABELS.get(alert.level, "")
    return f"【{city}12345】舆情预警（{level}）：{alert.title}。请及时登录系统签收处置。"


# --- reading -------------------------------------------------------------------------------


def is_city_wide(actor: Principal) -> bool:
    if actor.kind is PrincipalKind.SYSTEM:
        return True
    return actor.scope_path is not None and actor.scope_path.count("/") == 2


def visible(actor: Principal) -> ColumnElement[bool] | None:
    """What ``actor`` may see: everything city-wide; else the warnings of towns inside
    its jurisdiction (a warning with no town is the city's)."""
    if is_city_wide(actor):
        return None
    if actor.scope_path is None:
        return false()
    return Alert.town_path.startswith(actor.scope_path)


def _readable(actor: Principal) -> Any:
    actor.require("hotline:alert:read")
    query = select(Alert)
    clause = visible(actor)
    return query if clause is None else query.where(clause)


def list_alerts(
    session: Session,
    actor: Principal,
    *,
    status: AlertStatus | None = None,
    kind: AlertKind | None = None,
    open_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Alert], int]:
    """Warnings the actor may see, newest first, and how many match in all."""
    query = _readable(actor)
    if status is not None:
        query = query.where(Alert.status == status.value)
    elif open_only:
        query = query.where(Alert.status.in_([s.value for s in OPEN]))
    if kind is not None:
        query = query.where(Alert.kind == kind.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Alert.raised_at.desc(), Alert.id).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def get_alert(session: Session, actor: Principal, alert_id: uuid.UUID) -> Alert:
    alert: Alert | None = session.scalar(_readable(actor).where(Alert.id == alert_id))
    if alert is None:
        raise not_found("预警", "alert")
    return alert


def recipients(session: Session, alert_id: uuid.UUID) -> list[AlertRecipient]:
    return list(
        session.scalars(
            select(AlertRecipient)
            .where(AlertRecipient.alert_id == alert_id)
            .order_by(AlertRecipient.role.desc(), AlertRecipient.person_name)
        )
    )


def forwards(session: Session, alert_id: uuid.UUID) -> list[AlertForward]:
    return list(
        session.scalars(
            select(AlertForward)
            .where(AlertForward.alert_id == alert_id)
            .order_by(AlertForward.forwarded_at, AlertForward.id)
        )
    )


def mark_read(session: Session, actor: Principal, alert: Alert) -> None:
    """The actor opened the warning: their delivery row records the first read (a receipt,
    not a change of the warning: no audit row)."""
    if actor.kind is PrincipalKind.SYSTEM or actor.id is None:
        return
    session.execute(
        update(AlertRecipient)
        .where(
            AlertRecipient.alert_id == alert.id,
            AlertRecipient.person_id == actor.id,
            AlertRecipient.read_at.is_(None),
        )
        .values(read_at=clock.now())
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class LinkedOrder:
    id: uuid.UUID
    number: str
    title: str
    status: str
    created_at: datetime


def linked_orders(session: Session, alert: Alert, limit: int = 500) -> list[LinkedOrder]:
    """The orders behind a warning: the order that triggered an extreme warning; for a
    spike, the orders of its category in its town within its window."""
    query = select(Case.id, Case.number, Case.title, Case.status, Case.created_at).join(
        Order, Order.id == Case.id
    )
    if alert.kind == AlertKind.EXTREME:
        if alert.case_id is None:
            return []
        query = query.where(Case.id == alert.case_id)
    else:
        if alert.window_start is None or alert.window_end is None:
            return []
        query = query.where(
            Case.case_type == "hotline",
            Case.category == alert.category,
            Case.created_at >= alert.window_start,
            Case.created_at <= alert.window_end,
        )
        if alert.town_path is not None:
            place = Unit.__table__.alias("place")
            query = query.join(place, place.c.id == Order.location_unit_id).where(
                place.c.path.startswith(alert.town_path)
            )
        else:
            query = query.where(Order.location_unit_id.is_(None))
    rows = session.execute(query.order_by(Case.created_at, Case.number).limit(limit)).all()
    return [LinkedOrder(*row) for row in rows]


# --- the lifecycle -------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    text = (value or "").strip()
    return text[:NOTE_MAX] if text else None


def _stale() -> Conflict:
    return Conflict(
        "预警已被他人处理，请刷新后重试",
        "the alert was changed by someone else",
        code="stale_version",
    )


def _check(alert: Alert, allowed: Sequence[AlertStatus], verb_zh: str, version: int | None) -> None:
    if version is not None and version != alert.version:
        raise _stale()
    if AlertStatus(alert.status) not in allowed:
        raise Conflict(
            f"预警当前为“{AlertStatus(alert.status).label}”，不能{verb_zh}",
            f"cannot {verb_zh} an alert in status {alert.status}",
            code="wrong_state",
        )


def _swap(
    session: Session,
    actor: Principal,
    alert: Alert,
    action: str,
    to: AlertStatus,
    values: dict[str, Any],
) -> Alert:
    """The compare-and-set: only the writer that still sees the status and version it
    read moves the warning; anyone else gets 409."""
    before = _snapshot(alert)
    result = session.execute(
        update(Alert)
        .where(
            Alert.id == alert.id,
            Alert.status == alert.status,
            Alert.version == alert.version,
        )
        .values(status=to.value, version=Alert.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise _stale()
    session.refresh(alert)
    audit.record(
        session,
        actor,
        f"hotline.alert.{action}",
        entity_type="alert",
        entity_id=alert.id,
        before=before,
        after={**_snapshot(alert), **{k: v for k, v in values.items() if k.endswith("note")}},
    )
    return alert


def _for_action(session: Session, actor: Principal, alert_id: uuid.UUID) -> Alert:
    alert = get_alert(session, actor, alert_id)
    actor.require("hotline:alert:handle")
    return alert


def acknowledge(
    session: Session,
    actor: Principal,
    alert_id: uuid.UUID,
    *,
    version: int | None = None,
) -> Alert:
    """签收: raised -> acknowledged (``hotline:alert:handle``); the actor's delivery row
    records it too."""
    alert = _for_action(session, actor, alert_id)
    _check(alert, [AlertStatus.RAISED], "签收", version)
    now = clock.now()
    _swap(
        session,
        actor,
        alert,
        "acknowledge",
        AlertStatus.ACKNOWLEDGED,
        {"acknowledged_at": now, "acknowledged_by": actor.name},
    )
    if actor.id is not None:
        session.execute(
            update(AlertRecipient)
            .where(AlertRecipient.alert_id == alert.id, AlertRecipient.person_id == actor.id)
            .values(acknowledged_at=now, read_at=func.coalesce(AlertRecipient.read_at, now))
            .execution_options(synchronize_session=False)
        )
    return alert


def handle(
    session: Session,
    actor: Principal,
    alert_id: uuid.UUID,
    *,
    note: str | None,
    version: int | None = None,
) -> Alert:
    """处置完毕: raised | acknowledged -> handled, with a note of what was done."""
    alert = _for_action(session, actor, alert_id)
    _check(alert, [AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED], "标记处置", version)
    text = _clean(note)
    if text is None:
        raise InvalidInput(
            "请填写处置情况说明", "a note of what was done is required", code="note_required"
        )
    return _close(session, actor, alert, "handle", AlertStatus.HANDLED, text)


def dismiss(
    session: Session,
    actor: Principal,
    alert_id: uuid.UUID,
    *,
    reason: str | None,
    version: int | None = None,
) -> Alert:
    """排除（误报）: raised | acknowledged -> dismissed, with the reason."""
    alert = _for_action(session, actor, alert_id)
    _check(alert, [AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED], "排除", version)
    text = _clean(reason)
    if text is None:
        raise InvalidInput(
            "请填写排除理由", "a reason is required to dismiss", code="reason_required"
        )
    return _close(session, actor, alert, "dismiss", AlertStatus.DISMISSED, text)


def _close(
    session: Session, actor: Principal, alert: Alert, action: str, to: AlertStatus, note: str
) -> Alert:
    now = clock.now()
    values: dict[str, Any] = {"closed_at": now, "closed_by": actor.name, "close_note": note}
    if alert.acknowledged_at is None:
        values |= {"acknowledged_at": now, "acknowledged_by": actor.name}
    return _swap(session, actor, alert, action, to, values)


# --- sending on (转送) -------------------------------------------------------------------------


def destination_webhooks(session: Session, destination: Destination) -> list[Webhook]:
    """Active webhooks of live partner tokens subscribed to ``alert.forwarded`` or to
    ``alert.forwarded.<destination>`` (the police's or the cyberspace office's gateway)."""
    wanted = {FORWARD_EVENT, f"{FORWARD_EVENT}.{destination.value}"}
    hooks = session.scalars(
        select(Webhook)
        .join(ApiToken, ApiToken.id == Webhook.token_id)
        .where(
            Webhook.active.is_(True),
            ApiToken.kind == "partner",
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > clock.now()),
        )
        .order_by(Webhook.created_at)
    )
    return [hook for hook in hooks if wanted & set(hook.events or [])]


def forward(
    session: Session,
    actor: Principal,
    alert_id: uuid.UUID,
    *,
    destination: str | None,
    note: str | None = None,
    version: int | None = None,
) -> list[AlertForward]:
    """转送 an open warning to the police or the cyberspace office
    (``hotline:alert:handle``): one delivery per endpoint, sent by the worker after
    commit; recorded (``no_endpoint``) even when none is configured. Once per
    destination; the warning's version moves on (a stale page gets 409)."""
    alert = _for_action(session, actor, alert_id)
    try:
        target = Destination(destination or "")
    except ValueError as exc:
        raise InvalidInput(
            "请选择转送对象：公安或网信",
            "destination must be police or cyberspace",
            code="bad_destination",
        ) from exc
    _check(alert, [AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED], "转送", version)
    done = session.scalar(
        select(func.count())
        .select_from(AlertForward)
        .where(AlertForward.alert_id == alert.id, AlertForward.destination == target.value)
    )
    if done:
        raise Conflict(
            f"该预警已转送{target.label}",
            f"already forwarded to {target.value}",
            code="already_forwarded",
        )
    now = clock.now()
    text = _clean(note)
    hooks = destination_webhooks(session, target)
    rows: list[AlertForward] = []
    targets: list[Webhook | None] = list(hooks) or [None]
    for hook in targets:
        row = AlertForward(
            id=uuid.uuid4(),
            alert_id=alert.id,
            destination=target.value,
            note=text,
            forwarded_by=actor.name,
            forwarded_at=now,
            webhook_id=hook.id if hook else None,
            delivery=uuid.uuid4(),
            state=QUEUED if hook else NO_ENDPOINT,
            attempts=0,
            last_error=None,
            delivered_at=None,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    for row in rows:
        if row.webhook_id is not None:
            jobs.enqueue(session, FORWARD_JOB, {"forward_id": str(row.id), "attempt": 1})
    # The forward is a change of the warning: its version moves, so a page opened before
    # it cannot act on what it did not see.
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.version == alert.version, Alert.status == alert.status)
        .values(version=Alert.version + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise _stale()
    session.refresh(alert)
    audit.record(
        session,
        actor,
        "hotline.alert.forward",
        entity_type="alert",
        entity_id=alert.id,
        after={
            "destination": target.value,
            "note": text,
            "endpoints": [str(r.webhook_id) for r in rows if r.webhook_id],
            "version": alert.version,
        },
    )
    return rows


def forward_body(alert: Alert, row: AlertForward) -> dict[str, Any]:
    """What the police's / cyberspace office's system receives."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "event": FORWARD_EVENT,
        "destination": row.destination,
        "destination_label": Destination(row.destination).label,
        "forwarded_by": row.forwarded_by,
        "forwarded_at": iso(row.forwarded_at),
        "note": row.note,
        "alert": {
            "id": str(alert.id),
            "kind": alert.kind,
            "kind_label": AlertKind(alert.kind).label,
            "level": alert.level,
            "level_label": LEVEL_LABELS.get(alert.level),
            "title": alert.title,
            "detail": alert.detail,
            "category": alert.category,
            "raised_at": iso(alert.raised_at),
            "window_start": iso(alert.window_start),
            "window_end": iso(alert.window_end),
            "observed": alert.observed,
            "expected": alert.expected,
            "matches": alert.matches,
        },
    }


# (url, secret, body, delivery id) -> None; raises when the receiver did not accept it.
Post = Callable[[str, str, dict[str, Any], str], None]


def forward_job(post: Post) -> jobs.Handler:
    """The ``hotline.alert_forward`` job: deliver one forward to its webhook with ``post``
    (``zhengshu.tasks`` passes the signed webhook POST of ``events``). A failure keeps
    the row queued with its error and retries with backoff; after
    ``FORWARD_MAX_ATTEMPTS`` it is ``failed``."""

    def run(session: Session, payload: dict[str, Any]) -> None:
        row = session.get(AlertForward, uuid.UUID(str(payload["forward_id"])))
        if row is None or row.state != QUEUED:
            return
        alert = session.get(Alert, row.alert_id)
        hook = session.get(Webhook, row.webhook_id) if row.webhook_id else None
        attempt = int(payload.get("attempt", 1))
        row.attempts = attempt
        if alert is None or hook is None or not hook.active:
            row.state, row.last_error = FAILED, "接收端已删除或停用 / endpoint gone"
            return
        try:
            post(hook.url, hook.secret, forward_body(alert, row), str(row.delivery))
        except Exception as exc:
            log.warning("alert forward %s failed (attempt %s): %s", row.id, attempt, exc)
            row.last_error = f"{type(exc).__name__}: {exc}"[:NOTE_MAX]
            if attempt >= FORWARD_MAX_ATTEMPTS:
                row.state = FAILED
                return
            jobs.enqueue(
                session,
                FORWARD_JOB,
                {"forward_id": str(row.id), "attempt": attempt + 1},
                run_at=clock.now() + timedelta(seconds=min(3600, 5 * 2**attempt)),
            )
            return
        row.state, row.delivered_at, row.last_error = DELIVERED, clock.now(), None

    return run


# --- for the leaders' dashboard ----------------------------------------------------------------


@dataclass(frozen=True)
class AlertBrief:
    id: uuid.UUID
    title: str
    kind: str
    kind_label: str
    level: int
    level_label: str
    status: str
    status_label: str
    raised_at: datetime


@dataclass(frozen=True)
class AlertSummary:
    """Open warnings the actor may see: counts by status and the latest few.
    ``visible`` is False (and everything empty) without ``hotline:alert:read``."""

    visible: bool
    by_status: dict[str, int] = field(default_factory=dict)
    open_count: int = 0
    urgent_open: int = 0
    latest: list[AlertBrief] = field(default_factory=list)


def brief(alert: Alert) -> AlertBrief:
    return AlertBrief(
        id=alert.id,
        title=alert.title,
        kind=alert.kind,
        kind_label=AlertKind(alert.kind).label,
        level=alert.level,
        level_label=LEVEL_LABELS.get(alert.level, ""),
        status=alert.status,
        status_label=AlertStatus(alert.status).label,
        raised_at=alert.raised_at,
    )


def summary(session: Session, actor: Principal, *, latest: int = 5) -> AlertSummary:
    """For the dashboard: open warnings by status (raised, acknowledged), how many are
    紧急, and the ``latest`` newest open ones. Three queries."""
    if not actor.can("hotline:alert:read"):
        return AlertSummary(visible=False)
    clause = visible(actor)
    counts = select(Alert.status, Alert.level, func.count()).where(
        Alert.status.in_([s.value for s in OPEN])
    )
    if clause is not None:
        counts = counts.where(clause)
    by_status = {s.value: 0 for s in (AlertStatus.RAISED, AlertStatus.ACKNOWLEDGED)}
    urgent = 0
    for status, level, n in session.execute(counts.group_by(Alert.status, Alert.level)):
        by_status[status] = by_status.get(status, 0) + n
        urgent += n if level >= 3 else 0
    rows, _ = list_alerts(session, actor, open_only=True, limit=latest) if latest > 0 else ([], 0)
    return AlertSummary(
        visible=True,
        by_status=by_status,
        open_count=sum(by_status.values()),
        urgent_open=urgent,
        latest=[brief(a) for a in rows],
    )
