"""Idempotency keys: a POST repeated with the same ``Idempotency-Key`` creates at most one
result, and the repeat gets the first answer back.

The row is written in the same transaction as the result it guards, so either both
commit or neither does; a concurrent duplicate loses on the primary key and is answered
from the winner's row (or told to retry while the winner is still in flight).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.util import identity_key

from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.db import Base, UTCDateTime
from zhengshu.kernel.errors import Conflict, InvalidInput


class IdempotencyKey(Base):
    """The first response to a keyed request, per caller (a key is scoped to whoever sent
    it, so two partners cannot collide or read each other's answers)."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)


# --- logic ---------------------------------------------------------------------------------

# How long a key (and the answer it guards) is kept; the periodic purge drops older rows.
RETENTION = timedelta(days=7)
# How long a duplicate waits on PostgreSQL for the first request's transaction to finish
# before it is told to retry (409 ``idempotency_in_flight``).
WAIT_SECONDS = 5.0
# ``status_code`` of a row claimed by a transaction that has not stored its answer yet.
PENDING = 0

_KEY = re.compile(r"[\x20-\x7e]{1,200}")
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout expired


@dataclass(frozen=True)
class Replay:
    """The stored first answer to a repeated request."""

    status_code: int
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Idempotent-Replayed": "true"}


def check_key(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header: absent is fine (None); else 1..200 printable ASCII
    characters, not all blank, or 400 ``bad_idempotency_key``."""
    if raw is None:
        return None
    if not _KEY.fullmatch(raw) or not raw.strip():
        raise InvalidInput(
            "Idempotency-Key 须为 1 至 200 个可打印 ASCII 字符",
            "Idempotency-Key must be 1 to 200 printable ASCII characters",
            code="bad_idempotency_key",
        )
    return raw


def caller_of(principal: Principal) -> str:
    """Whose key space a request uses: the person (whichever of their tokens or sessions
    sent it), else the partner token, else the system principal's name."""
    if principal.id is not None:
        return str(principal.id)
    if principal.token_id is not None:
        return str(principal.token_id)
    return f"system:{principal.name}"[:80]


def request_hash(method: str, path: str, payload: Any) -> str:
    """SHA-256 of the canonical JSON of the request (method, path and parsed body), so
    formatting and field order do not matter but any change of meaning does."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def in_flight() -> Conflict:
    return Conflict(
        "相同 Idempotency-Key 的请求正在处理，请稍后重试",
        "a request with this Idempotency-Key is still in progress; retry shortly",
        code="idempotency_in_flight",
    )


def mismatch() -> Conflict:
    return Conflict(
        "该 Idempotency-Key 已用于另一个不同的请求",
        "this Idempotency-Key was used for a different request",
        code="idempotency_mismatch",
    )


def claim(
    session: Session,
    *,
    caller: str,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    wait_seconds: float = WAIT_SECONDS,
) -> IdempotencyKey | None:
    """Insert the key row (``PENDING``) in the caller's transaction.

    Returns None when this transaction now owns the key, else the row already there. A
    concurrent duplicate does not fail on the primary key: ``INSERT .. ON CONFLICT DO
    NOTHING`` waits for the first transaction (PostgreSQL: at most ``wait_seconds``, then
    409 ``idempotency_in_flight``; SQLite: writers are serialized at ``BEGIN IMMEDIATE``)
    and then finds its committed row, or takes the key if that transaction rolled back.

    On PostgreSQL every transaction that inserts a key first takes a transaction-scoped
    advisory lock on it. The usual case (no duplicate in flight) is then one statement:
    try the lock and insert together (``_try_claim``); only when another transaction
    holds the lock does this one wait for it, bounded by ``lock_timeout``.
    """
    values = {
        "caller": caller,
        "key": key,
        "method": method.upper()[:10],
        "path": path[:300],
        "request_hash": request_hash,
        "status_code": PENDING,
        "response": {},
        "created_at": clock.now(),
    }
    for _ in range(3):
        if _insert(session, values, wait_seconds):
            return None
        row = session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is not None:
            return row
        # Purged between the insert and the read: try to take it again.
    raise in_flight()


# Namespace of this module's advisory locks (the two-key form, so as not to meet others).
_LOCK_SPACE = 0x1DE4
_TRY_CLAIM = text(
    """
    WITH lock AS (SELECT pg_try_advisory_xact_lock(:space, :lock) AS got),
    claimed AS (
        INSERT INTO idempotency_keys
            (caller, key, method, path, request_hash, status_code, response, created_at)
        SELECT :caller, :key, :method, :path, :request_hash, :status_code,
            CAST(:response AS JSON), :created_at
        FROM lock WHERE lock.got
        ON CONFLICT (caller, key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT got FROM lock) AS got, (SELECT count(*) FROM claimed) AS claimed
    """
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def _lock_id(values: dict[str, Any]) -> int:
    digest = hashlib.sha256(f"{values['caller']}\x00{values['key']}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _try_claim(session: Session, values: dict[str, Any]) -> bool | None:
    """PostgreSQL, one round trip: True when this transaction took the key, False when a
    committed row holds it already, None when a concurrent transaction holds its lock."""
    got, claimed = session.execute(
        _TRY_CLAIM,
        {
            **values,
            "response": json.dumps(values["response"]),
            "space": _LOCK_SPACE,
            "lock": _lock_id(values),
        },
    ).one()
    if not got:
        return None
    return bool(claimed)


def _insert(session: Session, values: dict[str, Any], wait_seconds: float) -> bool:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        taken = _try_claim(session, values)
        if taken is not None:
            return taken
    if dialect not in ("postgresql", "sqlite"):
        try:
            with session.begin_nested():
                session.add(IdempotencyKey(**values))
        except IntegrityError:
            return False
        return True
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(IdempotencyKey)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["caller", "key"])
        .returning(IdempotencyKey.key)
    )
    with _lock_wait(session, wait_seconds):
        if dialect == "postgresql":
            # Wait (bounded) for the transaction that holds the key's lock to end.
            session.execute(
                text("SELECT pg_advisory_xact_lock(:space, :lock)"),
                {"space": _LOCK_SPACE, "lock": _lock_id(values)},
            )
        inserted = session.execute(statement).scalar_one_or_none()
    return inserted is not None


@contextmanager
def _lock_wait(session: Session, seconds: float) -> Iterator[None]:
    """On PostgreSQL, bound how long the insert waits for a concurrent duplicate."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    previous = session.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    session.execute(
        text("SELECT set_config('lock_timeout', :value, true)"),
        {"value": f"{max(1, int(seconds * 1000))}ms"},
    )
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise in_flight() from exc
        raise
    session.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": str(previous)}
    )


def begin(
    session: Session,
    *,
    caller: str,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    wait_seconds: float = WAIT_SECONDS,
) -> Replay | None:
    """Claim the key for this request (None: go ahead, then ``finish``), or the stored
    answer of the first request with it. A key reused for a different request is 409
    ``idempotency_mismatch``; one whose first request has not finished is 409
    ``idempotency_in_flight``."""
    row = claim(
        session,
        caller=caller,
        key=key,
        method=method,
        path=path,
        request_hash=request_hash,
        wait_seconds=wait_seconds,
    )
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise mismatch()
    if row.status_code == PENDING:
        raise in_flight()
    return Replay(row.status_code, dict(row.response))


def _table() -> Table:
    return cast(Table, IdempotencyKey.__table__)


def finish(
    session: Session, *, caller: str, key: str, status_code: int, body: dict[str, Any]
) -> None:
    """Store the answer on the claimed row, in the same transaction as the result."""
    keys = _table()
    session.execute(
        update(keys)
        .where(keys.c.caller == caller, keys.c.key == key)
        .values(status_code=status_code, response=body)
    )
    loaded = session.identity_map.get(identity_key(IdempotencyKey, (caller, key)))
    if loaded is not None:
        session.expire(loaded)


@dataclass
class Guard:
    """One request's use of its key: ``replay`` is set when the answer is already known;
    otherwise call ``save`` with the answer before the transaction commits."""

    session: Session
    caller: str
    key: str | None
    replay: Replay | None = None

    def save(self, status_code: int, body: dict[str, Any]) -> None:
        if self.key is None or self.replay is not None:
            return
        finish(self.session, caller=self.caller, key=self.key, status_code=status_code, body=body)


def guard(
    session: Session,
    principal: Principal,
    raw_key: str | None,
    *,
    method: str,
    path: str,
    payload: Any,
    wait_seconds: float = WAIT_SECONDS,
) -> Guard:
    """Check the ``Idempotency-Key`` header and claim it for ``principal``; no header, no
    guard (``save`` does nothing)."""
    key = check_key(raw_key)
    caller = caller_of(principal)
    if key is None:
        return Guard(session, caller, None)
    replay = begin(
        session,
        caller=caller,
        key=key,
        method=method,
        path=path,
        request_hash=request_hash(method, path, payload),
        wait_seconds=wait_seconds,
    )
    return Guard(session, caller, key, replay)


def purge(session: Session, *, older_than: timedelta = RETENTION) -> int:
    """Drop keys older than ``older_than``; returns how many."""
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < clock.now() - older_than)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def purge_expired(session: Session) -> None:
    """Periodic task: keys are kept for ``RETENTION`` (7 days)."""
    purge(session)
