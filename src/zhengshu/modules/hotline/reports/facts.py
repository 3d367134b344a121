"""Per-order facts (``order_facts``) read from the case timelines, and their daily rollup.

One row per 12345 order, recomputed from the order, its case and its timeline
(``CaseEvent`` rows) whenever the case changes. The rules, which the KPI formulas in
``kpis.yaml`` rely on:

- ``registered_at`` is the case's creation, ``day`` its Asia/Shanghai date: an order
  belongs to the period it was registered in, whatever happened later.
- ``town_unit_id``: the town (镇街/园区) holding the order's location (a village resolves
  to its town); without a location, the town above the lead unit (a town office, a
  village); a city department without a location gives none (报表中为“未定位”).
- ``dispatched``: a dispatch is on the timeline; ``signed``: a sign-for is.
- ``signed_on_time``: signed, and the last sign-for ended its stage before the deadline
  that stood then. The engine writes ``data["stage_left"] = {"stage", "due_at",
  "late"}`` on the event that ends a unit's stage (``casework.engine.transition``), so
  on-time is what the timeline says, not a recomputation with today's calendar. A stage
  without a limit (``late`` null) counts as on time.
- ``replied``: the unit replied at least once; ``closed`` (办结): the unit's reply stands
  now: status ``replied`` (awaiting callback) or ``closed`` (a reworked order back in
  handling is not closed); ``closed_on_time``: closed, and the last reply ended the
  handling stage on time (an approved extension moved that deadline; a suspension paused
  it).
- ``answered_directly``: answered at intake (直接答复).
- ``called_back``: a callback is on the timeline (close or rework); ``solved`` and
  ``satisfied`` come from the last callback; satisfied means a level in
  ``satisfied_levels`` of ``kpis.yaml`` (非常满意, 满意, 基本满意 by default).
- ``reworked``: reworked at least once (``rework_count`` > 0).
- ``emergency`` (紧急求助): a help request (求助) or any order marked 特急 (emergency):
  both run on minute clocks. ``response_minutes``: from registration to the first
  sign-for, or to the transfer to 110/119/120 when the hotline handed it on;
  ``responded``: an emergency with that measured.

Refresh is incremental: cases whose ``updated_at`` is past the watermark (the newest
``case_updated_at`` among the facts, less an overlap for transactions that committed
late) and whose fact is missing or older are recomputed, in bounded batches; then the
rollup rows of their registration days are rebuilt from the facts with one
``INSERT ... SELECT ... GROUP BY`` (two grains: with category and channel, and per
lead unit x town only, which the reports by unit, town and period read). The worker
runs it every minute (``zhengshu.tasks``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Table, cast, delete, func, insert, or_, select
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import clock
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.db import transaction
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.reports import kpi
from zhengshu.modules.hotline.reports.models import (
    DIMENSIONS,
    DURATIONS,
    FLAGS,
    UNIT_DIMENSIONS,
    OrderFact,
    OrderFactDaily,
    OrderFactDailyUnit,
)
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL

CASE_TYPE = "hotline"
# A transaction stamps updated_at when it writes, but commits later: a refresh that ran in
# between saw a newer watermark. Looking back this far catches it (unchanged facts are
# skipped, so the overlap costs one indexed range read).
OVERLAP = timedelta(minutes=10)
BATCH = 2000
CALLBACK_ACTIONS = ("close", "rework")
RESPONSE_ACTIONS = ("sign_for", "transfer_emergency")


@dataclass(frozen=True)
class RefreshReport:
    """What one ``refresh`` did: cases recomputed, rollup days rebuilt, and whether more
    changed cases wait for the next batch."""

    cases: int
    days: int
    more: bool


class Towns:
    """The town (镇街/园区) of any unit, from the materialized paths of the org tree."""

    def __init__(self, session: Session) -> None:
        rows = session.execute(select(Unit.id, Unit.kind, Unit.path)).all()
        kinds = {row.id: row.kind for row in rows}
        self._town: dict[uuid.UUID, uuid.UUID | None] = {}
        for row in rows:
            town = None
            for part in row.path.strip("/").split("/"):
                try:
                    ancestor = uuid.UUID(part)
                except ValueError:
                    continue
                if kinds.get(ancestor) in {k.value for k in TOWN_LEVEL}:
                    town = ancestor
                    break
            self._town[row.id] = town

    def of(self, unit_id: uuid.UUID | None) -> uuid.UUID | None:
        return self._town.get(unit_id) if unit_id is not None else None


def _late(event: CaseEvent | None) -> bool | None:
    if event is None or not event.data:
        return None
    left = event.data.get("stage_left")
    if not isinstance(left, dict):
        return None
    late = left.get("late")
    return late if isinstance(late, bool) else None


def derive(
    case: Case,
    order: Order,
    events: Sequence[CaseEvent],
    *,
    towns: Towns,
    satisfied_levels: frozenset[str],
    now: datetime,
) -> dict[str, Any]:
    """The fact row of one order (see the module docstring for each rule)."""
    first: dict[str, CaseEvent] = {}
    last: dict[str, CaseEvent] = {}
    for event in events:
        first.setdefault(event.action, event)
        last[event.action] = event
    callbacks = [e for e in events if e.action in CALLBACK_ACTIONS]
    last_callback = callbacks[-1] if callbacks else None
    outcome = (last_callback.data or {}) if last_callback else {}
    solved = bool(outcome.get("solved", order.solved)) if last_callback else False
    level = outcome.get("satisfaction", order.satisfaction) if last_callback else None
    signed = "sign_for" in first
    closed = case.status in ("replied", "closed") and "reply" in last
    emergency = case.urgency == "emergency" or case.request_type == "help"
    responses = [e for e in events if e.action in RESPONSE_ACTIONS]
    response = (
        (responses[0].at - case.created_at).total_seconds() / 60
        if emergency and responses
        else None
    )
    town = towns.of(order.location_unit_id) or towns.of(case.lead_unit_id)
    return {
        "case_id": case.id,
        "number": case.number,
        "registered_at": case.created_at,
        "day": case.created_at.astimezone(SHANGHAI).date(),
        "channel": order.channel,
        "category": case.category,
        "request_type": case.request_type,
        "urgency": case.urgency,
        "status": case.status,
        "town_unit_id": town,
        "lead_unit_id": case.lead_unit_id,
        "dispatched": "dispatch" in first,
        "signed": signed,
        "signed_on_time": signed and _late(last.get("sign_for")) is not True,
        "replied": "reply" in first,
        "closed": closed,
        "closed_on_time": closed and _late(last.get("reply")) is not True,
        "answered_directly": "answer_directly" in first,
        "called_back": last_callback is not None,
        "solved": solved,
        "satisfied": level in satisfied_levels,
        "reworked": case.rework_count > 0,
        "emergency": emergency,
        "responded": response is not None,
        "dispatched_at": first["dispatch"].at if "dispatch" in first else None,
        "signed_at": first["sign_for"].at if signed else None,
        "replied_at": last["reply"].at if "reply" in last else None,
        "closed_at": case.closed_at,
        "response_minutes": round(response, 3) if response is not None else None,
        "case_updated_at": case.updated_at,
        "refreshed_at": now,
    }


def watermark(session: Session) -> datetime | None:
    """The newest ``updated_at`` of a case whose fact is computed."""
    return session.execute(select(func.max(OrderFact.case_updated_at))).scalar_one()


def _changed(session: Session, since: datetime | None, limit: int) -> list[uuid.UUID]:
    query = (
        select(Case.id)
        .join(Order, Order.id == Case.id)
        .outerjoin(OrderFact, OrderFact.case_id == Case.id)
        .where(
            Case.case_type == CASE_TYPE,
            or_(OrderFact.case_id.is_(None), OrderFact.case_updated_at != Case.updated_at),
        )
        .order_by(Case.updated_at, Case.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(Case.updated_at > since)
    return list(session.execute(query).scalars())


def refresh(
    session: Session,
    *,
    since: datetime | None = None,
    case_ids: Iterable[uuid.UUID] | None = None,
    full: bool = False,
    batch: int = BATCH,
) -> RefreshReport:
    """Recompute the facts of changed orders and the rollup days they touch.

    ``since``: look at cases updated after it (default: the stored watermark less
    ``OVERLAP``); ``case_ids``: exactly these orders; ``full``: every order whose fact is
    missing or stale, whatever its age (after a change of ``satisfied_levels``: ``rebuild``,
    ``zhengshu reports rebuild``). At most ``batch`` orders per call; ``more`` says whether
    to call again. Never commits (the job does)."""
    if case_ids is not None:
        ids = list(dict.fromkeys(case_ids))
        more = False
    else:
        if since is None and not full:
            mark = watermark(session)
            since = mark - OVERLAP if mark is not None else None
        ids = _changed(session, None if full else since, batch + 1)
        more = len(ids) > batch
        ids = ids[:batch]
    if not ids:
        return RefreshReport(0, 0, False)
    days = _recompute(session, ids)
    rebuild_days(session, days)
    return RefreshReport(len(ids), len(days), more)


def _recompute(session: Session, ids: list[uuid.UUID]) -> set[date]:
    towns = Towns(session)
    levels = kpi.satisfied_levels()
    now = clock.now()
    rows = session.execute(
        select(Case, Order).join(Order, Order.id == Case.id).where(Case.id.in_(ids))
    ).all()
    timelines: dict[uuid.UUID, list[CaseEvent]] = defaultdict(list)
    for event in session.execute(
        select(CaseEvent)
        .where(CaseEvent.case_id.in_(ids))
        .order_by(CaseEvent.case_id, CaseEvent.seq)
    ).scalars():
        timelines[event.case_id].append(event)
    days = set(
        session.execute(
            select(OrderFact.day).where(OrderFact.case_id.in_(ids)).distinct()
        ).scalars()
    )
    facts = [
        derive(c, o, timelines[c.id], towns=towns, satisfied_levels=levels, now=now)
        for c, o in rows
    ]
    # Core statements: no ORM bookkeeping of the rows (the session may hold stale ones).
    table: Table = OrderFact.__table__  # type: ignore[assignment]
    session.execute(delete(table).where(table.c.case_id.in_(ids)))
    if facts:
        session.execute(insert(table), facts)
    days.update(f["day"] for f in facts)
    return days


def rebuild_days(session: Session, days: Iterable[date]) -> None:
    """Make the rollup rows of ``days`` equal to GROUP BY over their facts again (both
    grains: ``order_fact_daily`` and ``order_fact_daily_units``)."""
    days = sorted(set(days))
    if not days:
        return
    facts = OrderFact.__table__
    for model, dimensions in (
        (OrderFactDaily, DIMENSIONS),
        (OrderFactDailyUnit, UNIT_DIMENSIONS),
    ):
        daily: Table = model.__table__  # type: ignore[assignment]
        session.execute(delete(daily).where(daily.c.day.in_(days)))
        dims = [facts.c[d] for d in dimensions]
        select_list = [
            *dims,
            func.count().label("orders"),
            *(func.sum(cast(facts.c[f], Integer)).label(f) for f in FLAGS),
            *(func.coalesce(func.sum(facts.c[d]), 0.0).label(d) for d in DURATIONS),
        ]
        source = select(*select_list).where(facts.c.day.in_(days)).group_by(*dims)
        session.execute(
            insert(daily).from_select([*dimensions, "orders", *FLAGS, *DURATIONS], source)
        )


def rebuild(
    factory: sessionmaker[Session],
    *,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> RefreshReport:
    """Recompute every order's fact, then every rollup day touched, from scratch: after
    a change of what the facts mean (``satisfied_levels`` in a city's ``kpis.yaml``), or
    to repair them. Facts are rewritten in batches of ``batch`` orders, each committed on
    its own (an interrupted rebuild is simply run again); the days are rebuilt once, at
    the end. ``progress(done, total)`` after each batch."""
    with transaction(factory, write=False) as session:
        total = int(
            session.execute(
                select(func.count()).select_from(Case).where(Case.case_type == CASE_TYPE)
            ).scalar_one()
        )
    days: set[date] = set()
    done = 0
    after: uuid.UUID | None = None
    while True:
        with transaction(factory) as session:
            query = (
                select(Case.id)
                .join(Order, Order.id == Case.id)
                .where(Case.case_type == CASE_TYPE)
                .order_by(Case.id)
                .limit(batch)
            )
            if after is not None:
                query = query.where(Case.id > after)
            ids = list(session.execute(query).scalars())
            if not ids:
                break
            days |= _recompute(session, ids)
        done += len(ids)
        after = ids[-1]
        if progress is not None:
            progress(done, total)
    with transaction(factory) as session:
        # Rollup rows of days no order belongs to any more go too.
        days |= set(session.execute(select(OrderFactDaily.day).distinct()).scalars())
        rebuild_days(session, days)
    return RefreshReport(done, len(days), False)


def refresh_job(session: Session) -> None:
    """The worker's periodic task: one bounded batch per run (every minute)."""
    refresh(session)
