"""The worker's sweep of stage clocks: yellow, red, supervision, escalation.

Driven both directly (``engine.sweep``) and as the registered periodic task
``casework.sweep`` (``tasks.build_registry`` + ``kernel.jobs.run_periodic``). The clock is
frozen; an order signed for at 09:00 on Wed 30 September 2026 is due at 17:30 on Tue 13
October (8, 9, 10, 12, 13 October) and turns yellow at 16:12 on Mon 12 October.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import frozen_at
from tests.modules.hotline.test_transitions import DONGCHENG, Api, Desk
from zhengshu.casework.engine import SweepReport, sweep
from zhengshu.casework.models import Case, CaseEvent, Supervision
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar
from zhengshu.kernel.calendar_store import set_override
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.jobs import run_periodic
from zhengshu.kernel.settings import Settings
from zhengshu.tasks import build_registry


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(bj(2026, 9, 30, 9, 0))


@pytest.fixture
def desk(api: Api, db: Session, frozen: FrozenClock) -> Desk:
    return Desk(api, db)


def run_sweep(db: Session) -> SweepReport:
    db.expire_all()  # the orders were moved by other sessions (the API's)
    report = sweep(db, system_principal("测试巡检"), calendar=WorkCalendar())
    db.commit()
    return report


def case_of(db: Session, order: dict) -> Case:
    db.expire_all()
    case = db.get(Case, uuid.UUID(order["id"]))
    assert case is not None
    return case


def events_of(db: Session, order: dict) -> list[CaseEvent]:
    db.expire_all()
    return list(
        db.execute(
            select(CaseEvent)
            .where(CaseEvent.case_id == uuid.UUID(order["id"]))
            .order_by(CaseEvent.seq)
        ).scalars()
    )


def supervisions_of(db: Session, order: dict) -> list[Supervision]:
    db.expire_all()
    return list(
        db.execute(
            select(Supervision)
            .where(Supervision.case_id == uuid.UUID(order["id"]))
            .order_by(Supervision.level)
        ).scalars()
    )


def sweep_audits(db: Session) -> list[dict]:
    return [
        after
        for (after,) in db.execute(
            select(AuditEntry.after)
            .where(AuditEntry.action == "casework.sweep")
            .order_by(AuditEntry.seq)
        ).all()
    ]


NOTHING = SweepReport(yellow=0, red=0, escalated=0)


def test_yellow_then_red_then_escalation(desk: Desk, db: Session, frozen: FrozenClock) -> None:
    order = desk.bring("handling")
    assert run_sweep(db) == NOTHING
    frozen.set(bj(2026, 10, 12, 16, 11))
    assert run_sweep(db) == NOTHING
    assert case_of(db, order).warning_level == "none"

    # Yellow at the warning instant itself.
    frozen.set(bj(2026, 10, 12, 16, 12))
    assert run_sweep(db) == SweepReport(yellow=1)
    case = case_of(db, order)
    assert (case.warning_level, case.escalation_level) == ("yellow", 0)
    warning = events_of(db, order)[-1]
    assert (warning.action, warning.label, warning.from_status, warning.to_status) == (
        "warning",
        "黄灯预警",
        None,
        None,
    )
    assert warning.data == {"due_at": "2026-10-13 09:30:00+00:00", "stage": "handle"}
    assert warning.actor_name == "测试巡检"
    assert warning.at == bj(2026, 10, 12, 16, 12)
    count = len(events_of(db, order))
    assert run_sweep(db) == NOTHING
    assert len(events_of(db, order)) == count

    # Red at the due instant, with formal supervision for a working day.
    frozen.set(bj(2026, 10, 13, 17, 29))
    assert run_sweep(db) == NOTHING
    frozen.set(bj(2026, 10, 13, 17, 30))
    assert run_sweep(db) == SweepReport(red=1)
    case = case_of(db, order)
    assert (case.warning_level, case.escalation_level, case.status) == ("red", 1, "handling")
    overdue, supervise = events_of(db, order)[-2:]
    assert (overdue.action, overdue.label) == ("overdue", "红灯超时")
    assert overdue.data == {"due_at": "2026-10-13 09:30:00+00:00", "stage": "handle"}
    assert (supervise.action, supervise.label, supervise.note) == (
        "supervise",
        "督办",
        "handle阶段超时",
    )
    assert supervise.data is not None
    assert supervise.data["level"] == 1
    assert datetime.fromisoformat(supervise.data["due_at"]) == bj(2026, 10, 14, 17, 30)
    (first,) = supervisions_of(db, order)
    assert (first.kind, first.level, first.status) == ("supervise", 1, "open")
    assert first.unit_id == uuid.UUID(desk.unit(DONGCHENG))
    assert first.reason == "handle阶段超时"
    assert first.issued_by == "测试巡检"
    assert first.issued_at == bj(2026, 10, 13, 17, 30)
    assert first.due_at == bj(2026, 10, 14, 17, 30)  # Wed 14 October, close of day
    count = len(events_of(db, order))
    assert run_sweep(db) == NOTHING
    assert len(events_of(db, order)) == count
    assert len(supervisions_of(db, order)) == 1

    # Supervision unanswered at its own deadline: escalated a level.
    frozen.set(bj(2026, 10, 14, 17, 29))
    assert run_sweep(db) == NOTHING
    frozen.set(bj(2026, 10, 14, 17, 30))
    assert run_sweep(db) == SweepReport(escalated=1)
    first, second = supervisions_of(db, order)
    assert (first.level, first.status, first.closed_at) == (
        1,
        "escalated",
        bj(2026, 10, 14, 17, 30),
    )
    assert (second.level, second.status, second.kind) == (2, "open", "supervise")
    assert second.reason == "督办逾期未办，提级至第 2 级"
    assert second.due_at == bj(2026, 10, 15, 17, 30)
    assert case_of(db, order).escalation_level == 2
    escalate = events_of(db, order)[-1]
    assert (escalate.action, escalate.label, escalate.note) == (
        "escalate",
        "提级督办（第 2 级）",
        "督办逾期未办，提级至第 2 级",
    )
    count = len(events_of(db, order))
    assert run_sweep(db) == NOTHING
    assert len(events_of(db, order)) == count

    # And again a working day later: level 3 (Fri 16 October).
    frozen.set(bj(2026, 10, 15, 17, 30))
    assert run_sweep(db) == SweepReport(escalated=1)
    assert [(s.level, s.status) for s in supervisions_of(db, order)] == [
        (1, "escalated"),
        (2, "escalated"),
        (3, "open"),
    ]
    assert supervisions_of(db, order)[-1].due_at == bj(2026, 10, 16, 17, 30)
    assert case_of(db, order).escalation_level == 3

    # Only sweeps that changed something are audited.
    assert sweep_audits(db) == [
        {"yellow": 1, "red": 0, "escalated": 0},
        {"yellow": 0, "red": 1, "escalated": 0},
        {"yellow": 0, "red": 0, "escalated": 1},
        {"yellow": 0, "red": 0, "escalated": 1},
    ]
    # Escalation over a weekend waits for the next working day: Fri 16 -> Mon 19 October.
    frozen.set(bj(2026, 10, 16, 17, 30))
    assert run_sweep(db) == SweepReport(escalated=1)
    assert supervisions_of(db, order)[-1].due_at == bj(2026, 10, 19, 17, 30)


def test_an_order_late_at_once_turns_yellow_and_red_in_one_sweep(
    desk: Desk, db: Session, frozen: FrozenClock
) -> None:
    order = desk.new_order()  # dispatch within 30 minutes: 09:30
    frozen.set(bj(2026, 9, 30, 10, 0))
    assert run_sweep(db) == SweepReport(yellow=1, red=1)
    assert [e.action for e in events_of(db, order)] == [
        "register",
        "warning",
        "overdue",
        "supervise",
    ]
    assert [e.seq for e in events_of(db, order)] == [1, 2, 3, 4]
    (sup,) = supervisions_of(db, order)
    # Nobody leads an undispatched order: the supervision is the hotline centre's own.
    assert (sup.unit_id, sup.reason) == (None, "dispatch阶段超时")
    assert sup.due_at == bj(2026, 10, 8, 17, 30)  # one working day after 30 Sep
    assert case_of(db, order).warning_level == "red"
    assert run_sweep(db) == NOTHING
    assert len(events_of(db, order)) == 4


def test_a_new_stage_starts_with_no_light(desk: Desk, db: Session, frozen: FrozenClock) -> None:
    order = desk.new_order()
    frozen.set(bj(2026, 9, 30, 10, 0))
    assert run_sweep(db) == SweepReport(yellow=1, red=1)
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(DONGCHENG))
    assert (order["warning_level"], order["escalation_level"]) == ("none", 1)
    # Sign for within 2 working hours of 10:00: 12:00; yellow at 11:36.
    frozen.set(bj(2026, 9, 30, 11, 36))
    assert run_sweep(db) == SweepReport(yellow=1)
    frozen.set(bj(2026, 9, 30, 12, 0))
    assert run_sweep(db) == SweepReport(red=1)
    # The late dispatch's supervision was answered when the dispatch happened; the late
    # sign-for opens its own.
    assert [(s.level, s.status) for s in supervisions_of(db, order)] == [
        (1, "closed"),
        (1, "open"),
    ]


def test_finished_and_paused_orders_are_never_swept(
    desk: Desk, db: Session, frozen: FrozenClock
) -> None:
    resting = [desk.bring(state) for state in ("closed", "answered", "transferred", "suspended")]
    before = {o["id"]: len(events_of(db, o)) for o in resting}
    frozen.set(bj(2027, 6, 1, 12, 0))
    assert run_sweep(db) == NOTHING
    for order in resting:
        assert len(events_of(db, order)) == before[order["id"]]
        assert case_of(db, order).warning_level == "none"
        assert supervisions_of(db, order) == []
    assert sweep_audits(db) == []


def test_a_merged_order_is_not_swept_but_its_parent_is(
    desk: Desk, db: Session, frozen: FrozenClock
) -> None:
    child = desk.bring("merged")
    frozen.set(bj(2026, 9, 30, 10, 0))
    assert run_sweep(db) == SweepReport(yellow=1, red=1)  # the parent, still undispatched
    assert case_of(db, child).warning_level == "none"
    assert [e.action for e in events_of(db, child)] == ["register", "merge"]


def test_a_closed_orders_supervision_is_closed_not_escalated(
    desk: Desk, db: Session, frozen: FrozenClock
) -> None:
    answered = desk.new_order()
    closed = desk.bring("replied")
    frozen.set(bj(2026, 10, 13, 17, 30))  # callback (2wd from 30 Sep) due 9 Oct: long past
    assert run_sweep(db) == SweepReport(yellow=2, red=2)
    # The callback closes its order and answers the supervision at once.
    closed = desk.act("callback", closed, "callback", solved=True, satisfaction="satisfied")
    assert [(s.status, s.closed_at) for s in supervisions_of(db, closed)] == [
        ("closed", bj(2026, 10, 13, 17, 30))
    ]
    # A direct answer finishes the other order and answers its supervision at once too.
    answered = desk.act("calltaker", answered, "answer_directly", note="已答复。")
    assert [s.status for s in supervisions_of(db, answered)] == ["closed"]
    frozen.set(bj(2026, 10, 14, 17, 30))
    assert run_sweep(db) == NOTHING
    assert [(s.level, s.status) for s in supervisions_of(db, answered)] == [(1, "closed")]
    assert case_of(db, answered).escalation_level == 1
    assert [e.action for e in events_of(db, answered)][-1] == "answer_directly"


# --------------------------------------------------------------------------- the worker


def test_the_registered_periodic_task_sweeps(
    desk: Desk,
    db: Session,
    frozen: FrozenClock,
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    registry = build_registry(settings)
    (task,) = [t for t in registry.periodic if t.name == "casework.sweep"]
    assert task.every == timedelta(minutes=1)
    order = desk.bring("handling")
    assert run_periodic(factory, registry) == len(registry.periodic)  # all due at first
    assert task.next_run == bj(2026, 9, 30, 9, 1)
    assert run_periodic(factory, registry) == 0  # none is due again yet
    assert events_of(db, order)[-1].action == "sign_for"

    frozen.set(bj(2026, 10, 12, 16, 12))
    assert run_periodic(factory, registry) == len(registry.periodic)
    assert case_of(db, order).warning_level == "yellow"
    warning = events_of(db, order)[-1]
    assert (warning.action, warning.actor_name, warning.actor_kind) == (
        "warning",
        "时限巡检",
        "system",
    )
    frozen.set(bj(2026, 10, 12, 16, 13))
    assert run_periodic(factory, registry) >= 1  # a minute later the sweep runs again
    assert task.next_run == bj(2026, 10, 12, 16, 14)
    assert [e.action for e in events_of(db, order)].count("warning") == 1

    frozen.set(bj(2026, 10, 13, 17, 30))
    run_periodic(factory, registry)
    assert case_of(db, order).warning_level == "red"
    (sup,) = supervisions_of(db, order)
    assert (sup.level, sup.status, sup.issued_by) == (1, "open", "时限巡检")
    assert sup.due_at == bj(2026, 10, 14, 17, 30)

    frozen.set(bj(2026, 10, 14, 17, 30))
    run_periodic(factory, registry)
    assert [(s.level, s.status) for s in supervisions_of(db, order)] == [
        (1, "escalated"),
        (2, "open"),
    ]
    assert case_of(db, order).escalation_level == 2
    frozen.set(bj(2026, 10, 14, 17, 31))
    run_periodic(factory, registry)
    assert len(supervisions_of(db, order)) == 2
    actions = [e.action for e in events_of(db, order)]
    assert actions == [
        "register",
        "dispatch",
        "sign_for",
        "warning",
        "overdue",
        "supervise",
        "escalate",
    ]
    assert sweep_audits(db) == [
        {"yellow": 1, "red": 0, "escalated": 0},
        {"yellow": 0, "red": 1, "escalated": 0},
        {"yellow": 0, "red": 0, "escalated": 1},
    ]


def test_the_periodic_sweep_reads_the_calendar_overrides(
    desk: Desk,
    db: Session,
    frozen: FrozenClock,
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    order = desk.bring("handling")
    frozen.set(bj(2026, 10, 13, 17, 30))
    # A typhoon closes the offices on Wed 14 October: supervision waits for Thursday.
    set_override(
        db, system_principal("测试"), day=bj(2026, 10, 14).date(), is_workday=False, name="台风停工"
    )
    db.commit()
    run_periodic(factory, build_registry(settings))
    (sup,) = supervisions_of(db, order)
    assert sup.due_at == bj(2026, 10, 15, 17, 30)
    assert sup.due_at.astimezone(UTC) == datetime(2026, 10, 15, 9, 30, tzinfo=UTC)
    assert db.execute(select(func.count()).select_from(Supervision)).scalar_one() == 1
