"""How ``audit.record`` appends: few statements, the caller's changes first, no stale head.

The head row is locked from the append to the end of the transaction (the serialization
point of auditing writers), so the append must stay cheap: it reads and locks the head,
then writes the row and moves the head (one statement on PostgreSQL, two on SQLite).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import QueryCounter
from zhengshu.kernel import audit
from zhengshu.kernel.audit import AuditChainHead, AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.org.models import Unit

ACTOR = system_principal("审计测试")


def test_an_append_costs_two_statements_on_postgresql_three_on_sqlite(
    db: Session, count_queries: Callable[[], QueryCounter]
) -> None:
    db.flush()
    counter = count_queries()
    audit.record(db, ACTOR, "test.thing.touch", entity_type="thing", after={"n": 1})
    expected = 2 if db.get_bind().dialect.name == "postgresql" else 3
    assert counter.count == expected, counter.statements
    assert "FOR UPDATE" in counter.statements[0] or db.get_bind().dialect.name == "sqlite"


def test_the_callers_pending_changes_are_written_before_the_head_is_locked(
    db: Session, count_queries: Callable[[], QueryCounter]
) -> None:
    parent = db.execute(select(Unit).where(Unit.code == "441900000000")).scalar_one()
    before = db.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    parent.name = parent.name + "（改）"
    counter = count_queries()
    audit.record(db, ACTOR, "test.thing.rename", entity_type="unit", entity_id=parent.id)
    assert counter.statements[0].lstrip().upper().startswith("UPDATE UNITS")
    assert "audit_chain_head" in counter.statements[1]
    after = db.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    assert after == before + 1


def test_a_head_read_earlier_in_the_session_is_not_left_stale(db: Session) -> None:
    head = db.get(AuditChainHead, 1)
    assert head is not None
    seq = head.seq
    entry = audit.record(db, ACTOR, "test.thing.touch", entity_type="thing")
    again = db.get(AuditChainHead, 1)
    assert again is head  # the same object, refreshed
    assert (again.seq, again.hash) == (seq + 1, entry.hash)
    assert again.mac == audit.head_mac(db.info[audit.AUDIT_KEY], entry.seq, entry.hash)


def test_the_returned_entry_is_what_was_stored(db: Session) -> None:
    entry = audit.record(
        db,
        ACTOR,
        "test.thing.touch",
        entity_type="thing",
        entity_id=uuid.UUID(int=7),
        after={"名称": "第7条", "id": uuid.UUID(int=7)},
    )
    assert entry not in db  # written with Core, not through the unit of work
    stored = db.execute(select(AuditEntry).where(AuditEntry.seq == entry.seq)).scalar_one()
    assert stored is not entry
    assert (stored.id, stored.hash, stored.prev_hash) == (entry.id, entry.hash, entry.prev_hash)
    assert stored.after == {"名称": "第7条", "id": str(uuid.UUID(int=7))}
    assert stored.entity_id == str(uuid.UUID(int=7))
    assert stored.occurred_at == entry.occurred_at
    assert audit.compute_hash(db.info[audit.AUDIT_KEY], stored) == stored.hash
    assert audit.verify(db).ok
