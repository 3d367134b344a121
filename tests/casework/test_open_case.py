"""Opening a case: the number, the first timeline entry and the audit row, cheaply.

Registration holds the day's number counter from ``next_number`` to the end of its
transaction, so nothing avoidable may run in between: the first timeline entry of a new
case is seq 1 without looking up the timeline or taking the audit head early.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import QueryCounter
from zhengshu.casework import engine
from zhengshu.casework.definitions import load_workflow
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import audit
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar_store import load_calendar

ACTOR = system_principal("测试")


def _open(db: Session, title: str) -> Case:
    return engine.open_case(
        db,
        ACTOR,
        workflow=load_workflow("hotline"),
        calendar=load_calendar(db),
        number_prefix="ZZ",
        title=title,
        request_type="consultation",
        urgency="normal",
        category="other",
    )


def test_a_new_case_gets_consecutive_numbers_and_a_first_entry_without_lookups(
    db: Session, count_queries: Callable[[], QueryCounter]
) -> None:
    first = _open(db, "第一件")
    counter = count_queries()
    second = _open(db, "第二件")
    assert int(second.number[-6:]) == int(first.number[-6:]) + 1
    statements = " ".join(counter.statements).lower()
    assert "max(case_events.seq)" not in statements
    # The audit head is touched only by the append: lock it, then move it.
    assert sum("audit_chain_head" in s for s in counter.statements) == 2
    events = db.execute(select(CaseEvent).where(CaseEvent.case_id == second.id)).scalars().all()
    assert [(e.seq, e.action) for e in events] == [(1, "register")]
    assert audit.verify(db).ok


def test_later_entries_still_follow_the_timeline(db: Session) -> None:
    case = _open(db, "第三件")
    engine.add_note(db, ACTOR, case, action="note", label="备注", note="补充说明")
    db.flush()
    seqs = db.execute(
        select(CaseEvent.seq).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)
    ).scalars()
    assert list(seqs) == [1, 2]
