"""The audit log: an append-only, hash-chained record of every state change.

Every use case that changes state calls ``record`` in the same transaction, so the row
commits or rolls back with the change. Rows are numbered by ``seq`` without gaps, and each
row's ``hash`` is an HMAC-SHA256 (keyed by the installation's audit key) over its content
and the previous row's hash. ``audit_chain_head`` holds the last seq and hash: appending
updates that single row, which serializes writers on PostgreSQL (row lock) as SQLite's
write lock already does, so the chain never forks. The lock is held from the append to
the end of the transaction, so use cases audit last, after their other writes.

``verify`` walks the chain and reports the first row that was changed, deleted or inserted
out of order, and rows missing from or added after the recorded head. The HMAC key means
someone with write access to the database alone cannot rebuild a valid chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Integer, String, Table, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.util import identity_key

from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.db import Base, new_id

GENESIS = "0" * 64
AUDIT_KEY = "zhengshu_audit_key"  # Session.info key holding the HMAC key (bytes)


class AuditEntry(Base):
    """One state change: who did what to which object, from where, before and after.

    Append-only: the application never updates or deletes these rows.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(default=new_id, unique=True)
    occurred_at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str] = mapped_column(String(60), index=True)
    entity_id: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row that remembers the chain's end; appending locks and moves it."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    # HMAC over (seq, hash): moving the head back over deleted rows needs the key.
    mac: Mapped[str] = mapped_column(String(64))


_LOG = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)
_COLUMNS = [column.name for column in _LOG.columns]


def to_jsonable(value: Any) -> Any:
    """Normalize a snapshot to plain JSON (UUIDs, datetimes, enums become strings)."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _canonical(entry: AuditEntry) -> bytes:
    body = [
        entry.seq,
        str(entry.id),
        entry.occurred_at.isoformat(),
        entry.actor_kind,
        str(entry.actor_id) if entry.actor_id else None,
        entry.actor_name,
        entry.ip,
        entry.action,
        entry.entity_type,
        entry.entity_id,
        entry.before,
        entry.after,
        entry.prev_hash,
    ]
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def compute_hash(key: bytes, entry: AuditEntry) -> str:
    return hmac.new(key, _canonical(entry), hashlib.sha256).hexdigest()


def head_mac(key: bytes, seq: int, last_hash: str) -> str:
    return hmac.new(key, f"head:{seq}:{last_hash}".encode(), hashlib.sha256).hexdigest()


def _key(session: Session) -> bytes:
    key = session.info.get(AUDIT_KEY)
    if not isinstance(key, bytes) or not key:
        raise RuntimeError("session has no audit key; open it through the app's sessionmaker")
    return key


def record(
    session: Session,
    actor: Principal,
    action: str,
    *,
    entity_type: str,
    entity_id: object | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit row in the caller's transaction and move the chain head.

    ``action`` is dotted (``org.person.create``); ``before``/``after`` are snapshots of the
    fields that matter (secrets excluded by the caller).

    The head stays locked until the transaction ends, so appending is the transaction's
    serialization point: it costs two statements (lock and read the head; write the row
    and move the head, in one statement on PostgreSQL), issued with SQLAlchemy Core rather
    than through the unit of work. The returned entry is not attached to the session.
    """
    # The caller's pending changes go first (as they always did): a failing write fails
    # before the head is locked, and the lock is held for as short a time as possible.
    session.flush()
    head = session.execute(
        select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
    ).one_or_none()
    if head is None:
        raise RuntimeError("audit_chain_head is missing: run `zhengshu audit verify`")
    key = _key(session)
    # Microseconds are kept; the value must round-trip unchanged for the hash to verify.
    entry = AuditEntry(
        seq=head.seq + 1,
        id=new_id(),
        occurred_at=clock.now().astimezone(UTC),
        actor_kind=str(actor.kind),
        actor_id=actor.id,
        actor_name=actor.name,
        ip=actor.ip,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        before=to_jsonable(dict(before)) if before is not None else None,
        after=to_jsonable(dict(after)) if after is not None else None,
        prev_hash=head.hash,
    )
    entry.hash = compute_hash(key, entry)
    row = {column: getattr(entry, column) for column in _COLUMNS}
    move = (
        update(_HEAD)
        .where(_HEAD.c.id == 1)
        .values(seq=entry.seq, hash=entry.hash, mac=head_mac(key, entry.seq, entry.hash))
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(insert(_LOG).values(row).add_cte(move.cte("moved_head")))
    else:
        session.execute(insert(_LOG).values(row))
        session.execute(move)
    loaded = session.identity_map.get(identity_key(AuditChainHead, 1))
    if loaded is not None:
        session.expire(loaded)  # a head read earlier in this session is stale now
    return entry


@dataclass(frozen=True)
class AuditProblem:
    """The first place where the chain does not hold."""

    seq: int
    # changed | deleted | inserted | truncated | head_forged | head_deleted | anchor_mismatch
    kind: str
    message_zh: str
    message_en: str


@dataclass(frozen=True)
class AuditReport:
    rows: int
    head_seq: int
    problem: AuditProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(
    session: Session,
    *,
    key: bytes | None = None,
    anchor: tuple[int, str] | None = None,
    batch: int = 2000,
) -> AuditReport:
    """Walk the whole chain in seq order and report the first break.

    ``anchor`` is a (seq, hash) pair saved outside the database by an earlier verify: the
    chain must still hold that row unchanged, which catches a rollback of the whole log
    to an earlier state (something no check inside the database alone can see).
    """
    key = key or _key(session)
    head = session.get(AuditChainHead, 1)
    if head is None:
        return _report(
            0, 0, 0, "head_deleted", "审计链头记录被删除", "the chain head row was deleted"
        )
    expected_seq, prev_hash, rows, anchored = 1, GENESIS, 0, anchor is None
    stream = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    ).scalars()
    for entry in stream:
        rows += 1
        problem = _check(entry, key, expected_seq, prev_hash, head.seq)
        if problem:
            return AuditReport(rows=rows, head_seq=head.seq, problem=problem)
        if anchor is not None and entry.seq == anchor[0]:
            anchored = hmac.compare_digest(entry.hash, anchor[1])
        expected_seq, prev_hash = entry.seq + 1, entry.hash
        session.expunge(entry)
    signed = head.seq == 0 and head.hash == GENESIS and not head.mac
    if not signed and not hmac.compare_digest(head.mac, head_mac(key, head.seq, head.hash)):
        return _report(
            rows,
            head.seq,
            head.seq,
            "head_forged",
            "审计链头记录被改动（签名不符），末尾的记录可能已被删除",
            "the chain head was altered (bad MAC); rows at the end may be deleted",
        )
    if expected_seq - 1 != head.seq or prev_hash != head.hash:
        return _report(
            rows,
            head.seq,
            expected_seq,
            "truncated",
            f"审计链末尾缺失：链头记为第 {head.seq} 条，实际只到第 {expected_seq - 1} 条",
            f"rows missing at the end: head says {head.seq}, chain ends at {expected_seq - 1}",
        )
    if not anchored:
        assert anchor is not None
        return _report(
            rows,
            head.seq,
            anchor[0],
            "anchor_mismatch",
            f"与外部锚点不符：第 {anchor[0]} 条已不存在或被改动（日志可能被整体回退）",
            f"row {anchor[0]} no longer matches the external anchor (log rolled back?)",
        )
    return AuditReport(rows=rows, head_seq=head.seq, problem=None)


def _report(rows: int, head_seq: int, seq: int, kind: str, zh: str, en: str) -> AuditReport:
    return AuditReport(rows=rows, head_seq=head_seq, problem=AuditProblem(seq, kind, zh, en))


def _check(
    entry: AuditEntry, key: bytes, expected_seq: int, prev_hash: str, head_seq: int
) -> AuditProblem | None:
    if entry.seq > head_seq:
        return AuditProblem(
            entry.seq,
            "inserted",
            f"第 {entry.seq} 条在链头（第 {head_seq} 条）之后，是绕过系统插入的",
            f"row {entry.seq} lies after the recorded head {head_seq}: inserted behind the app",
        )
    if entry.seq > expected_seq:
        return AuditProblem(
            expected_seq,
            "deleted",
            f"第 {expected_seq} 条至第 {entry.seq - 1} 条已被删除",
            f"rows {expected_seq}..{entry.seq - 1} were deleted",
        )
    if entry.seq < expected_seq:
        return AuditProblem(
            entry.seq,
            "inserted",
            f"第 {entry.seq} 条次序错乱（插入）",
            f"row {entry.seq} out of order (inserted)",
        )
    if not hmac.compare_digest(compute_hash(key, entry), entry.hash):
        return AuditProblem(
            entry.seq,
            "changed",
            f"第 {entry.seq} 条内容被篡改（哈希不符）",
            f"row {entry.seq} was changed (hash mismatch)",
        )
    if entry.prev_hash != prev_hash:
        return AuditProblem(
            entry.seq,
            "inserted",
            f"第 {entry.seq} 条与前一条不相连（被替换或插入）",
            f"row {entry.seq} does not follow the previous row (replaced or inserted)",
        )
    return None
