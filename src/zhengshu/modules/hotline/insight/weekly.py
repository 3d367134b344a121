"""每周一题: each ISO week a supervisor picks one problem to drive to a solution.

``candidates`` ranks what could be picked, each with the reason it is there:

- **hot issues** active in the week (their last order at most 30 days before the week
  ends), score = the issue's hotness score;
- **repeated, unresolved orders**: an order of the last 90 days reworked at least twice
  or with at least two unsatisfied callbacks and not solved, score =
  ``10 x (reworks + unsatisfied callbacks)``; one that belongs to a listed hot issue
  raises that issue's score by its own instead of being listed twice.

Candidates of a problem already picked in an earlier, still open week are left out.

``pick`` (``hotline:weekly:manage``) makes the week's ``WeeklyProblem``: it links the
orders, names the responsible units (lead + others) and a deadline, and opens formal
supervision (督办, reason ``每周一题：<title>``) on each linked order still open, through
the case engine, as a supervisor's 督办 does; so the units see it on their board. One
per week: a second pick is a 409. Responsible units report progress
(``hotline:weekly:report`` for their own unit, or the supervisor); the supervisor closes
it with a conclusion (compare-and-set on the version).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, exists, false, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.casework.definitions import Workflow
from zhengshu.casework.engine import Move
from zhengshu.casework.models import Case, CaseEvent, Supervision
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar
from zhengshu.kernel.errors import Conflict, InvalidInput, PermissionDenied, not_found
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.insight.issue_models import (
    HotIssue,
    HotIssueOrder,
    WeeklyProblem,
    WeeklyProblemOrder,
    WeeklyProblemReport,
    WeeklyProblemUnit,
)
from zhengshu.modules.hotline.models import Order
from zhengshu.org.models import Unit

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
REPEAT_LOOKBACK = timedelta(days=90)
HOT_RECENT = timedelta(days=30)  # the scan window
_UNSATISFIED = ("dissatisfied", "very_dissatisfied")


def parse_week(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week written ``2026-W40``; 400 otherwise."""
    match = _WEEK.match(week.strip())
    if match is None:
        raise InvalidInput("周次格式应为 2026-W40", "week must look like 2026-W40", code="bad_week")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise InvalidInput("没有这一周", "no such ISO week", code="bad_week") from exc
    return monday, monday + timedelta(days=6)


def week_of(moment: datetime) -> str:
    """The ISO week (Beijing time) of a moment, as ``2026-W40``."""
    year, week, _ = moment.astimezone(SHANGHAI).isocalendar()
    return f"{year}-W{week:02d}"


def _bounds(week: str) -> tuple[datetime, datetime]:
    monday, sunday = parse_week(week)
    start = datetime.combine(monday, time(0), SHANGHAI)
    end = datetime.combine(sunday + timedelta(days=1), time(0), SHANGHAI)
    return start, end


@dataclass
class Candidate:
    """A problem that could be this week's, with why it is here."""

    key: str  # "hot:<issue id>" or "order:<order id>"
    kind: str  # hot | repeat
    title: str
    reason: str
    score: float
    order_ids: list[uuid.UUID]
    hot_issue_id: uuid.UUID | None = None
    lead_unit_id: uuid.UUID | None = None
    extra: list[str] = field(default_factory=list)


def _unsatisfied_counts(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Unsatisfied or unsolved callbacks per order, from the timeline (a callback that
    sends the order back is recorded as its rework event with the answer in ``data``)."""
    out: Counter[uuid.UUID] = Counter()
    if not ids:
        return out
    for case_id, data in session.execute(
        select(CaseEvent.case_id, CaseEvent.data).where(
            CaseEvent.case_id.in_(list(ids)), CaseEvent.action.in_(("rework", "callback"))
        )
    ).all():
        if isinstance(data, dict) and (
            data.get("solved") is False or data.get("satisfaction") in _UNSATISFIED
        ):
            out[case_id] += 1
    return out


def _lead_of(session: Session, order_ids: Sequence[uuid.UUID]) -> uuid.UUID | None:
    if not order_ids:
        return None
    leads = Counter(
        lead
        for lead in session.scalars(select(Case.lead_unit_id).where(Case.id.in_(list(order_ids))))
        if lead is not None
    )
    return leads.most_common(1)[0][0] if leads else None


def candidates(session: Session, week: str, *, limit: int = 10) -> list[Candidate]:
    """The week's candidate problems, best first (see the module docstring)."""
    start, end = _bounds(week)
    taken_hot = set(
        session.scalars(
            select(WeeklyProblem.hot_issue_id).where(
                WeeklyProblem.status == "open", WeeklyProblem.hot_issue_id.is_not(None)
            )
        )
    )
    taken_sources = set(session.scalars(select(WeeklyProblem.source)))
    hot_rows = session.scalars(
        select(HotIssue).where(
            HotIssue.status == "active",
            HotIssue.n_orders > 0,
            HotIssue.end_at >= start - HOT_RECENT,
            HotIssue.start_at < end,
        )
    ).all()
    out: dict[str, Candidate] = {}
    issue_of: dict[uuid.UUID, str] = {}
    for row in hot_rows:
        if row.id in taken_hot:
            continue
        ids = list(
            session.scalars(select(HotIssueOrder.order_id).where(HotIssueOrder.issue_id == row.id))
        )
        unresolved = (
            f"，未解决占比 {row.unresolved_share:.0%}" if row.unresolved_share is not None else ""
        )
        key = f"hot:{row.id}"
        out[key] = Candidate(
            key=key,
            kind="hot",
            title=row.description,
            reason=(
                f"热点问题：{row.n_orders} 件工单、{row.n_callers} 位来电人{unresolved}，"
                f"增长 {row.growth:+.1f}，热度 {row.score:.1f}"
            ),
            score=row.score,
            order_ids=ids,
            hot_issue_id=row.id,
            lead_unit_id=_lead_of(session, ids),
        )
        for oid in ids:
            issue_of[oid] = key

    # Orders reworked again and again, or called back unsatisfied more than once.
    recent = session.execute(
        select(Case.id, Case.title, Case.rework_count, Case.lead_unit_id, Order.solved)
        .join(Order, Order.id == Case.id)
        .where(
            Case.case_type == "hotline",
            Case.created_at >= start - REPEAT_LOOKBACK,
            Case.created_at < end,
            or_(Order.solved.is_(None), Order.solved.is_(False)),
            or_(
                Case.rework_count >= 1,
                Order.satisfaction.in_(_UNSATISFIED),
            ),
        )
    ).all()
    unsatisfied = _unsatisfied_counts(session, [r[0] for r in recent])
    for case_id, title, reworks, lead, _solved in recent:
        bad = unsatisfied.get(case_id, 0)
        if reworks < 2 and bad < 2:
            continue
        score = 10.0 * (reworks + bad)
        why = f"重办 {reworks} 次、不满意回访 {bad} 次，仍未解决"
        if case_id in issue_of:
            hot_candidate = out[issue_of[case_id]]
            hot_candidate.score = round(hot_candidate.score + score, 2)
            hot_candidate.extra.append(why)
            continue
        key = f"order:{case_id}"
        out[key] = Candidate(
            key=key,
            kind="repeat",
            title=title,
            reason=f"反复未解决：{why}",
            score=score,
            order_ids=[case_id],
            lead_unit_id=lead,
        )
    ranked = [c for c in out.values() if c.key not in taken_sources]
    for c in ranked:
        if c.extra:
            c.reason += "；其中" + "；".join(c.extra)
    ranked.sort(key=lambda c: (-c.score, c.key))
    return ranked[:limit]


# --- the problem's life --------------------------------------------------------------------


def visible_clause(actor: Principal) -> ColumnElement[bool] | None:
    """Problems the actor may see: all for the city; else those with a responsible unit
    in the actor's jurisdiction."""
    if repository.is_city_wide(actor):
        return None
    if actor.scope_path is None:
        return false()
    return exists().where(
        WeeklyProblemUnit.problem_id == WeeklyProblem.id,
        WeeklyProblemUnit.unit_path.startswith(actor.scope_path),
    )


def _require_read(actor: Principal) -> None:
    if not (
        actor.can("hotline:weekly:manage")
        or actor.can("hotline:weekly:report")
        or actor.can("hotline:hot:read")
    ):
        actor.require("hotline:weekly:report")


def list_problems(session: Session, actor: Principal, *, limit: int = 30) -> list[WeeklyProblem]:
    """Past and present weekly problems, newest week first."""
    _require_read(actor)
    query = select(WeeklyProblem)
    clause = visible_clause(actor)
    if clause is not None:
        query = query.where(clause)
    return list(session.scalars(query.order_by(WeeklyProblem.week.desc()).limit(limit)))


def get_problem(session: Session, actor: Principal, problem_id: uuid.UUID) -> WeeklyProblem:
    _require_read(actor)
    query = select(WeeklyProblem).where(WeeklyProblem.id == problem_id)
    clause = visible_clause(actor)
    if clause is not None:
        query = query.where(clause)
    row = session.scalars(query).one_or_none()
    if row is None:
        raise not_found("每周一题", "weekly problem")
    return row


def problem_for_week(session: Session, week: str) -> WeeklyProblem | None:
    return session.scalars(select(WeeklyProblem).where(WeeklyProblem.week == week)).one_or_none()


@dataclass(frozen=True)
class PickInput:
    week: str
    candidate_key: str
    lead_unit_id: uuid.UUID
    deadline: datetime
    title: str | None = None
    description: str | None = None
    co_unit_ids: tuple[uuid.UUID, ...] = ()


def pick(
    session: Session,
    actor: Principal,
    data: PickInput,
    *,
    workflow: Workflow,
    calendar: WorkCalendar,
) -> WeeklyProblem:
    """Make one of the week's candidates its 每周一题 (``hotline:weekly:manage``).
    409 if the week has one already; 400 for an unknown candidate, unit or a deadline
    in the past. Opens 督办 on each linked open order; audited."""
    actor.require("hotline:weekly:manage")
    parse_week(data.week)
    if problem_for_week(session, data.week) is not None:
        raise Conflict(
            "本周已选定每周一题", "this week has its weekly problem already", code="week_taken"
        )
    found = {c.key: c for c in candidates(session, data.week, limit=1000)}
    candidate = found.get(data.candidate_key)
    if candidate is None:
        raise InvalidInput("候选问题不存在或已被选用", "unknown candidate", code="bad_candidate")
    now = clock.now()
    if data.deadline <= now:
        raise InvalidInput(
            "完成期限须晚于现在", "deadline must be in the future", code="bad_deadline"
        )
    unit_ids = [data.lead_unit_id, *(u for u in data.co_unit_ids if u != data.lead_unit_id)]
    units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))}
    if len(units) != len(set(unit_ids)) or not all(u.active for u in units.values()):
        raise InvalidInput("责任单位无效", "unknown or inactive unit", code="bad_unit")
    title = (data.title or candidate.title).strip()[:200]
    if not title:
        raise InvalidInput("标题不能为空", "title is required", code="bad_title")
    description = (data.description or candidate.reason).strip()
    problem = WeeklyProblem(
        id=uuid.uuid4(),
        week=data.week,
        title=title,
        description=description,
        source=candidate.key,
        hot_issue_id=candidate.hot_issue_id,
        deadline=data.deadline,
        status="open",
        created_by=actor.name,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(problem)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "本周已选定每周一题", "this week has its weekly problem already", code="week_taken"
        ) from exc
    for uid in dict.fromkeys(unit_ids):
        session.add(
            WeeklyProblemUnit(
                id=uuid.uuid4(),
                problem_id=problem.id,
                unit_id=uid,
                unit_path=units[uid].path,
                role="lead" if uid == data.lead_unit_id else "co",
            )
        )
    reason = f"每周一题：{title}"
    supervise = workflow.action("supervise")
    opened = 0
    for case in session.scalars(select(Case).where(Case.id.in_(candidate.order_ids))).all():
        sup: Supervision | None = None
        if case.status in supervise.sources:
            engine.transition(
                session,
                actor,
                case,
                "supervise",
                workflow=workflow,
                calendar=calendar,
                move=Move(note=reason, data={"weekly_problem": str(problem.id)}),
            )
            sup = engine.open_supervision(
                session,
                actor,
                case,
                calendar=calendar,
                kind="supervise",
                level=max(1, case.escalation_level),
                reason=reason,
                note_event=False,
            )
            opened += 1
        session.add(
            WeeklyProblemOrder(
                id=uuid.uuid4(),
                problem_id=problem.id,
                order_id=case.id,
                supervision_id=sup.id if sup else None,
            )
        )
    session.flush()
    audit.record(
        session,
        actor,
        "hotline.weekly_problem.pick",
        entity_type="weekly_problem",
        entity_id=problem.id,
        after={
            "week": data.week,
            "title": title,
            "source": candidate.key,
            "orders": [str(o) for o in candidate.order_ids],
            "supervised": opened,
            "units": [str(u) for u in unit_ids],
            "deadline": data.deadline,
        },
    )
    return problem


def _open(problem: WeeklyProblem) -> None:
    if problem.status != "open":
        raise Conflict("该每周一题已结束", "the weekly problem is closed", code="closed")


def report(
    session: Session, actor: Principal, problem_id: uuid.UUID, text: str
) -> WeeklyProblemReport:
    """A progress report: a responsible unit's person with ``hotline:weekly:report``
    (for their own unit), or the supervisor (``hotline:weekly:manage``). Audited."""
    problem = get_problem(session, actor, problem_id)
    _open(problem)
    text = text.strip()
    if not text:
        raise InvalidInput("进展内容不能为空", "text is required", code="empty_report")
    if len(text) > 5000:
        raise InvalidInput("进展内容过长（最多 5000 字）", "text too long", code="too_long")
    unit_id: uuid.UUID | None = None
    if actor.can("hotline:weekly:manage"):
        unit_id = actor.unit_id
    else:
        actor.require("hotline:weekly:report")
        rows = session.execute(
            select(WeeklyProblemUnit.unit_id, WeeklyProblemUnit.unit_path).where(
                WeeklyProblemUnit.problem_id == problem.id
            )
        ).all()
        own = [uid for uid, path in rows if uid == actor.unit_id or actor.covers(path)]
        if not own:
            raise PermissionDenied(
                "只有责任单位可以报送进展", "only a responsible unit may report progress"
            )
        unit_id = actor.unit_id if actor.unit_id in own else own[0]
    row = WeeklyProblemReport(
        id=uuid.uuid4(),
        problem_id=problem.id,
        unit_id=unit_id,
        author=actor.name,
        text=text,
        created_at=clock.now(),
    )
    session.add(row)
    audit.record(
        session,
        actor,
        "hotline.weekly_problem.report",
        entity_type="weekly_problem",
        entity_id=problem.id,
        after={"unit_id": unit_id, "text": text},
    )
    return row


def close(
    session: Session,
    actor: Principal,
    problem_id: uuid.UUID,
    conclusion: str,
    *,
    expected_version: int | None = None,
) -> WeeklyProblem:
    """Close with a conclusion (``hotline:weekly:manage``); open -> closed by
    compare-and-set, so a second close is a 409. Audited."""
    actor.require("hotline:weekly:manage")
    problem = get_problem(session, actor, problem_id)
    conclusion = conclusion.strip()
    if not conclusion:
        raise InvalidInput("请填写办理结论", "a conclusion is required", code="no_conclusion")
    version = problem.version if expected_version is None else expected_version
    now = clock.now()
    done = session.execute(
        update(WeeklyProblem)
        .where(
            WeeklyProblem.id == problem.id,
            WeeklyProblem.status == "open",
            WeeklyProblem.version == version,
        )
        .values(
            status="closed",
            conclusion=conclusion[:5000],
            closed_by=actor.name,
            closed_at=now,
            version=version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise Conflict(
            "该每周一题已结束或刚被修改，请刷新", "closed already or changed", code="stale"
        )
    session.refresh(problem)
    audit.record(
        session,
        actor,
        "hotline.weekly_problem.close",
        entity_type="weekly_problem",
        entity_id=problem.id,
        before={"status": "open"},
        after={"status": "closed", "conclusion": conclusion},
    )
    return problem


@dataclass(frozen=True)
class ProblemDetail:
    problem: WeeklyProblem
    units: list[tuple[WeeklyProblemUnit, str]]
    orders: Sequence[tuple[Case, Supervision | None]]
    reports: Sequence[tuple[WeeklyProblemReport, str | None]]


def detail(session: Session, actor: Principal, problem_id: uuid.UUID) -> ProblemDetail:
    problem = get_problem(session, actor, problem_id)
    units = [
        (u, name)
        for u, name in session.execute(
            select(WeeklyProblemUnit, Unit.name)
            .join(Unit, Unit.id == WeeklyProblemUnit.unit_id)
            .where(WeeklyProblemUnit.problem_id == problem.id)
            .order_by(WeeklyProblemUnit.role.desc(), Unit.code)
        ).all()
    ]
    query = (
        select(Case, Supervision)
        .join(WeeklyProblemOrder, WeeklyProblemOrder.order_id == Case.id)
        .outerjoin(Supervision, Supervision.id == WeeklyProblemOrder.supervision_id)
        .where(WeeklyProblemOrder.problem_id == problem.id)
        .order_by(Case.created_at)
    )
    clause = repository.visible(actor)
    if clause is not None:
        query = query.join(Order, Order.id == Case.id).where(clause)
    orders = [(c, s) for c, s in session.execute(query).all()]
    reports = [
        (r, name)
        for r, name in session.execute(
            select(WeeklyProblemReport, Unit.name)
            .outerjoin(Unit, Unit.id == WeeklyProblemReport.unit_id)
            .where(WeeklyProblemReport.problem_id == problem.id)
            .order_by(WeeklyProblemReport.created_at)
        ).all()
    ]
    return ProblemDetail(problem, units, orders, reports)


def default_deadline(week: str) -> datetime:
    """Two weeks after the week's Sunday, 18:00 Beijing time."""
    _, sunday = parse_week(week)
    return datetime.combine(sunday + timedelta(days=14), time(18), SHANGHAI)
