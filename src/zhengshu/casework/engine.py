"""Transitions, timeline and stage clocks of cases (pure engine, no HTTP).

Every transition: checks the action against the workflow (state, permission, lead unit,
note), compares-and-sets the case's version (a lost race is a 409, never a lost
update), moves the stage clock, writes a timeline event and an audit row in the caller's
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from zhengshu.casework import clocks
from zhengshu.casework.definitions import Limit, Workflow
from zhengshu.casework.models import Case, CaseCounter, CaseEvent, CaseUnit, Supervision
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar
from zhengshu.kernel.errors import Conflict, InvalidInput, PermissionDenied
from zhengshu.org.models import Unit


def next_number(session: Session, prefix: str, now: datetime) -> str:
    """The next business number of the day: ``<prefix><YYYYMMDD><6 digits>``.

    The counter row is incremented with one UPDATE (row-locked on PostgreSQL, serialized
    by the write lock on SQLite); the first number of a day inserts the row, and a race on
    that insert retries as an UPDATE inside a savepoint. Numbers have no gaps, so the row
    stays locked until the transaction ends: every registration of the day queues on it
    (see docs/performance.md). The UPDATE is plain Core (no ORM bulk-update bookkeeping).
    """
    day = now.astimezone(SHANGHAI).date()
    counters = cast(Table, CaseCounter.__table__)
    for _ in range(3):
        value = session.execute(
            update(counters)
            .where(counters.c.prefix == prefix, counters.c.day == day)
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        ).scalar_one_or_none()
        if value is not None:
            return f"{prefix}{day:%Y%m%d}{value:06d}"
        try:
            with session.begin_nested():
                session.add(CaseCounter(prefix=prefix, day=day, value=1))
            return f"{prefix}{day:%Y%m%d}{1:06d}"
        except IntegrityError:
            continue
    raise Conflict("编号生成繁忙，请重试", "number counter busy; retry")


def _event(
    session: Session,
    actor: Principal,
    case: Case,
    *,
    action: str,
    label: str,
    from_status: str | None,
    to_status: str | None,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
    unit_id: uuid.UUID | None = None,
    first: bool = False,
) -> CaseEvent:
    if first:
        # A case opened in this transaction: no other transaction can see it yet, so its
        # first entry is seq 1 without a query and without taking the lock below.
        seq = 0
    else:
        # Two entries on one case at once (two reveals, a merge note and an upload) must
        # not both take max(seq) + 1. Every writer of the timeline moves the audit chain's
        # head in the same transaction anyway: taking that row lock first serializes them
        # (PostgreSQL; SQLite's writers are serialized already) and keeps one lock order,
        # case row then head, so no two of them can deadlock.
        session.execute(
            select(audit.AuditChainHead.id).where(audit.AuditChainHead.id == 1).with_for_update()
        )
        seq = session.execute(
            select(func.coalesce(func.max(CaseEvent.seq), 0)).where(CaseEvent.case_id == case.id)
        ).scalar_one()
    event = CaseEvent(
        id=uuid.uuid4(),
        case_id=case.id,
        seq=seq + 1,
        at=clock.now(),
        action=action,
        label=label,
        from_status=from_status,
        to_status=to_status,
        actor_kind=str(actor.kind),
        actor_id=actor.id,
        actor_name=actor.name,
        unit_id=unit_id or actor.unit_id,
        note=note,
        data=audit.to_jsonable(dict(data)) if data else None,
    )
    session.add(event)
    return event


def _start_stage(
    case: Case, workflow: Workflow, calendar: WorkCalendar, stage: str | None, now: datetime
) -> None:
    case.stage, case.stage_started_at = stage, now
    case.paused_remaining_seconds = None
    case.warning_level = "none"
    limit = workflow.limit_for(case.request_type, case.urgency, stage) if stage else None
    if limit is None:
        case.due_at = case.warn_at = None
        case.stage_total_seconds = None
        case.due_provisional = False
        return
    due = clocks.deadline(calendar, now, limit, workflow.warning_share)
    case.due_at, case.warn_at = due.due_at, due.warn_at
    case.stage_total_seconds = int(due.total.total_seconds())
    case.due_provisional = due.provisional


def _stage_unit(workflow: Workflow, case: Case) -> str:
    limit = workflow.limit_for(case.request_type, case.urgency, case.stage) if case.stage else None
    return limit.unit if limit else "m"


def open_case(
    session: Session,
    actor: Principal,
    *,
    workflow: Workflow,
    calendar: WorkCalendar,
    number_prefix: str,
    title: str,
    request_type: str | None,
    urgency: str,
    category: str | None,
    data: Mapping[str, Any] | None = None,
    received_at: datetime | None = None,
    note: str | None = None,
) -> Case:
    """Open a case in the workflow's initial state, its first stage clock running (from
    ``received_at`` when the request was taken in earlier than it is registered); ``note``
    goes on the first timeline entry."""
    now = clock.now() if received_at is None else min(received_at, clock.now())
    case = Case(
        id=uuid.uuid4(),
        case_type=workflow.case_type,
        number=next_number(session, number_prefix, now),
        status=workflow.initial,
        title=title[:200],
        request_type=request_type,
        category=category,
        urgency=urgency,
        created_by=actor.name,
        created_at=now,
        updated_at=now,
        warning_level="none",
        escalation_level=0,
        rework_count=0,
        due_provisional=False,
    )
    _start_stage(case, workflow, calendar, workflow.state(workflow.initial).stage, now)
    session.add(case)
    session.flush()
    _event(
        session,
        actor,
        case,
        action="register",
        label="受理",
        from_status=None,
        to_status=case.status,
        note=note,
        data=data,
        first=True,
    )
    audit.record(
        session,
        actor,
        f"{workflow.case_type}.register",
        entity_type="case",
        entity_id=case.id,
        after=_snapshot(case),
    )
    return case


def _snapshot(case: Case) -> dict[str, Any]:
    return {
        "number": case.number,
        "status": case.status,
        "category": case.category,
        "lead_unit_id": case.lead_unit_id,
        "due_at": case.due_at,
        "warning_level": case.warning_level,
        "rework_count": case.rework_count,
    }


def lead_path(session: Session, case: Case) -> str | None:
    if case.lead_unit_id is None:
        return None
    unit = session.get(Unit, case.lead_unit_id)
    return unit.path if unit else None


def _attach(session: Session, case: Case, unit: Unit, role: str, now: datetime) -> None:
    existing = session.execute(
        select(CaseUnit).where(CaseUnit.case_id == case.id, CaseUnit.unit_id == unit.id)
    ).scalar_one_or_none()
    if existing is None:
        session.add(
            CaseUnit(
                id=uuid.uuid4(),
                case_id=case.id,
                unit_id=unit.id,
                unit_path=unit.path,
                role=role,
                active=True,
                assigned_at=now,
            )
        )
    else:
        existing.role, existing.active, existing.assigned_at = role, True, now


def set_lead(session: Session, case: Case, unit: Unit, now: datetime) -> None:
    """Make ``unit`` the lead unit; the previous lead stops seeing the case as its own."""
    session.execute(
        update(CaseUnit)
        .where(CaseUnit.case_id == case.id, CaseUnit.role == "lead", CaseUnit.active.is_(True))
        .values(active=False)
    )
    _attach(session, case, unit, "lead", now)
    case.lead_unit_id = unit.id


def set_co_units(session: Session, case: Case, units: Sequence[Unit], now: datetime) -> None:
    """Replace the co-handling units (协办); the lead unit is never its own co-unit."""
    session.execute(
        update(CaseUnit)
        .where(CaseUnit.case_id == case.id, CaseUnit.role == "co")
        .values(active=False)
    )
    for unit in units:
        if unit.id != case.lead_unit_id:
            _attach(session, case, unit, "co", now)


@dataclass(frozen=True)
class Move:
    """What a transition carries beyond the action itself."""

    note: str | None = None
    data: Mapping[str, Any] | None = None
    lead_unit: Unit | None = None
    co_units: Sequence[Unit] | None = None
    extension: Limit | None = None
    expected_version: int | None = None
    restart_clock: bool = False
    count_rework: bool = False
    # A reclassification that goes with the action (a dispatcher correcting the category).
    category: str | None = None


def check_state(workflow: Workflow, case: Case, action_name: str) -> None:
    """409 unless ``action_name`` may be taken in the case's current state."""
    action = workflow.action(action_name)
    if case.status not in action.sources:
        state = workflow.state(case.status)
        raise Conflict(
            f"工单当前为“{state.label}”，不能{action.label}",
            f"cannot {action.name} a case in state {case.status}",
            code="wrong_state",
            details={"status": case.status, "action": action.name},
        )


def transition(
    session: Session,
    actor: Principal,
    case: Case,
    action_name: str,
    *,
    workflow: Workflow,
    calendar: WorkCalendar,
    move: Move | None = None,
) -> CaseEvent:
    """Take ``action_name`` on ``case`` for ``actor``; see the module docstring."""
    move = move or Move()
    check_state(workflow, case, action_name)
    action = workflow.action(action_name)
    state = workflow.state(case.status)
    actor.require(action.permission)
    if action.by_lead_unit and not actor.covers(lead_path(session, case)):
        raise PermissionDenied(
            f"只有主办单位可以{action.label}", f"only the lead unit may {action.name}"
        )
    note = (move.note or "").strip() or None
    if action.note_required and not note:
        raise InvalidInput(
            f"{action.label}须填写说明", f"{action.name} needs a note", code="note_required"
        )
    if move.expected_version is not None and move.expected_version != case.version:
        raise Conflict(
            "工单已被他人处理，请刷新后重试", "the case changed; reload", code="stale_version"
        )
    now = clock.now()
    before = _snapshot(case)
    target = workflow.state(action.target) if action.target else state
    if move.category is not None:
        case.category = move.category
    if move.lead_unit is not None:
        set_lead(session, case, move.lead_unit, now)
    if move.co_units is not None:
        set_co_units(session, case, move.co_units, now)
    old_stage, old_started = case.stage, case.stage_started_at
    old_due, old_paused = case.due_at, case.paused_remaining_seconds
    _move_clock(case, workflow, calendar, state.name, target.name, now, restart=move.restart_clock)
    if move.count_rework:
        case.rework_count += 1
    if move.extension is not None and case.due_at is not None:
        old_due = case.due_at
        case.due_at, provisional = clocks.extend(calendar, case.due_at, move.extension)
        if case.warn_at is not None:
            # The yellow light moves by the same working time as the deadline, so an
            # extension never leaves the stage without a yellow window.
            case.warn_at = clocks.shift(
                calendar, case.warn_at, old_due, case.due_at, _stage_unit(workflow, case)
            )
        case.due_provisional = case.due_provisional or provisional
        if case.warn_at is not None and case.warn_at > now:
            case.warning_level = "none"
    case.status = target.name
    case.updated_at = now
    if target.final:
        case.closed_at = now
    data = dict(move.data) if move.data else {}
    stage_ended = target.final or (case.stage, case.stage_started_at) != (old_stage, old_started)
    if stage_ended:
        # The stage that was late is over (or the case is): its supervision is answered.
        close_supervisions(session, case)
        if old_stage is not None and before["lead_unit_id"] is not None:
            # Whether a unit's stage ended on time is read from the timeline by the KPIs
            # (按时签收, 按时办结), so it is written down when the stage ends, against the
            # deadline that stood then. Stages before a unit holds the case (the hotline's
            # own dispatch stage) are not a unit's clock and are not recorded.
            data["stage_left"] = _stage_left(old_stage, old_due, old_paused, now)
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            "工单已被他人处理，请刷新后重试",
            "the case was changed concurrently",
            code="stale_version",
        ) from exc
    event = _event(
        session,
        actor,
        case,
        action=action.name,
        label=action.label,
        from_status=state.name,
        to_status=target.name if action.target else None,
        note=note,
        data=data,
        unit_id=move.lead_unit.id if move.lead_unit else None,
    )
    audit.record(
        session,
        actor,
        f"{workflow.case_type}.{action.name}",
        entity_type="case",
        entity_id=case.id,
        before=before,
        after={**_snapshot(case), "note": note},
    )
    return event


def _stage_left(
    stage: str, due_at: datetime | None, paused_remaining: int | None, now: datetime
) -> dict[str, Any]:
    """The record of a stage that ended: its name, its deadline then and whether it ended
    late. A stage left while paused judges by the time that was left when it paused; a
    stage without a limit is never late (``late`` is None)."""
    late: bool | None
    if due_at is not None:
        late = now > due_at
    elif paused_remaining is not None:
        late = paused_remaining < 0
    else:
        late = None
    return {"stage": stage, "due_at": due_at, "late": late}


def _move_clock(
    case: Case,
    workflow: Workflow,
    calendar: WorkCalendar,
    source: str,
    target: str,
    now: datetime,
    *,
    restart: bool,
) -> None:
    src, dst = workflow.state(source), workflow.state(target)
    if dst.final:
        # A finished case shows no light; whether it was late stays on its timeline.
        case.stage, case.due_at, case.warn_at = None, None, None
        case.warning_level = "none"
        case.paused_remaining_seconds = None
        return
    if dst.paused:
        if not src.paused and case.due_at is not None:
            left = clocks.remaining(calendar, now, case.due_at, _stage_unit(workflow, case))
            case.paused_remaining_seconds = int(left.total_seconds())
            case.due_at = case.warn_at = None
        return
    if src.paused and dst.stage == src.stage and not restart:
        if case.paused_remaining_seconds is not None and case.stage_total_seconds is not None:
            due = clocks.resume(
                calendar,
                now,
                timedelta(seconds=case.paused_remaining_seconds),
                timedelta(seconds=case.stage_total_seconds),
                _stage_unit(workflow, case),
                workflow.warning_share,
            )
            case.due_at, case.warn_at = due.due_at, due.warn_at
            case.due_provisional = case.due_provisional or due.provisional
        case.paused_remaining_seconds = None
        return
    if restart or dst.stage != src.stage:
        _start_stage(case, workflow, calendar, dst.stage, now)


def add_note(
    session: Session,
    actor: Principal,
    case: Case,
    *,
    action: str,
    label: str,
    note: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> CaseEvent:
    """A timeline entry that changes no state (a system note, an SMS sent, a reveal)."""
    return _event(
        session,
        actor,
        case,
        action=action,
        label=label,
        from_status=None,
        to_status=None,
        note=note,
        data=data,
    )


# --- the worker's sweep ------------------------------------------------------------------

SUPERVISION_LIMIT = Limit(1, "wd")  # a formal supervision must be answered in a working day


@dataclass
class SweepReport:
    yellow: int = 0
    red: int = 0
    escalated: int = 0


def sweep(
    session: Session, actor: Principal, *, calendar: WorkCalendar, batch: int = 500
) -> SweepReport:
    """Raise yellow and red lights from the stage clocks, open supervision on overdue cases
    and escalate supervision left unanswered past its own deadline."""
    now = clock.now()
    report = SweepReport()
    for case in session.execute(
        select(Case)
        .where(Case.warn_at <= now, Case.warning_level == "none", Case.due_at.is_not(None))
        .limit(batch)
    ).scalars():
        case.warning_level = "yellow"
        _event(
            session,
            actor,
            case,
            action="warning",
            label="黄灯预警",
            from_status=None,
            to_status=None,
            data={"due_at": case.due_at, "stage": case.stage},
        )
        report.yellow += 1
    for case in session.execute(
        select(Case).where(Case.due_at <= now, Case.warning_level != "red").limit(batch)
    ).scalars():
        case.warning_level = "red"
        _event(
            session,
            actor,
            case,
            action="overdue",
            label="红灯超时",
            from_status=None,
            to_status=None,
            data={"due_at": case.due_at, "stage": case.stage},
        )
        open_supervision(
            session,
            actor,
            case,
            calendar=calendar,
            kind="supervise",
            level=1,
            reason=f"{case.stage or ''}阶段超时",
        )
        report.red += 1
    for sup in (
        session.execute(
            select(Supervision)
            .where(
                Supervision.status == "open",
                Supervision.due_at <= now,
                Supervision.kind == "supervise",
            )
            .limit(batch)
        )
        .scalars()
        .all()
    ):
        owner = session.get(Case, sup.case_id)
        if owner is None or owner.closed_at is not None:
            sup.status, sup.closed_at = "closed", now
            continue
        sup.status, sup.closed_at = "escalated", now
        open_supervision(
            session,
            actor,
            owner,
            calendar=calendar,
            kind="supervise",
            level=sup.level + 1,
            reason=f"督办逾期未办，提级至第 {sup.level + 1} 级",
        )
        report.escalated += 1
    session.flush()
    if report.yellow or report.red or report.escalated:
        audit.record(
            session,
            actor,
            "casework.sweep",
            entity_type="sweep",
            after={"yellow": report.yellow, "red": report.red, "escalated": report.escalated},
        )
    return report


def open_supervision(
    session: Session,
    actor: Principal,
    case: Case,
    *,
    calendar: WorkCalendar,
    kind: str,
    level: int,
    reason: str,
    note_event: bool = True,
) -> Supervision:
    """Formal supervision (督办) or a reminder (催办) of a case's lead unit, with its own
    deadline; ``note_event=False`` when the caller's transition already wrote the entry.
    Only formal supervision raises the case's escalation level."""
    now = clock.now()
    due = clocks.deadline(calendar, now, SUPERVISION_LIMIT, 0.8)
    sup = Supervision(
        id=uuid.uuid4(),
        case_id=case.id,
        kind=kind,
        level=level,
        unit_id=case.lead_unit_id,
        reason=reason[:300],
        issued_by=actor.name,
        issued_at=now,
        due_at=due.due_at,
        status="open",
    )
    session.add(sup)
    if kind != "supervise":
        return sup
    case.escalation_level = max(case.escalation_level, level)
    if not note_event:
        return sup
    label = "督办" if level == 1 else f"提级督办（第 {level} 级）"
    _event(
        session,
        actor,
        case,
        action="supervise" if level == 1 else "escalate",
        label=label,
        from_status=None,
        to_status=None,
        note=reason,
        data={"level": level, "due_at": due.due_at},
    )
    return sup


def close_supervisions(session: Session, case: Case) -> None:
    """A case that reaches a final state answers its open supervision."""
    session.execute(
        update(Supervision)
        .where(Supervision.case_id == case.id, Supervision.status == "open")
        .values(status="closed", closed_at=clock.now())
    )
