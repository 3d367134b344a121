"""Handling notices (办理情况通报): the city's periodic notice on how 12345 orders were
handled, for a month (``2026-11``) or an ISO week (``2026-W47``), city-wide or for one unit.

A notice holds the headline figures (orders, closure, on-time closure, resolution and
satisfaction rates) beside the previous period's with the change, the ranking of units,
the units at the bottom, the orders that went overdue and the orders sent back for
rework in the period, the five-level satisfaction breakdown, and a paragraph of text in
the style of a government notice. The figures are the KPIs of ``kpi.compute`` (orders
registered in the period); the overdue and rework lists are the timeline entries
(``overdue``, ``rework``) dated in the period; the satisfaction breakdown is the last
callback's answer of the orders registered in the period.

Ranking (stated in the notice): a composite score, 60% on-time closure rate plus 40%
satisfaction rate (in percent); a unit with only one of the two rates is scored on that
one; a unit with neither is listed as not ranked. Equal scores share a rank.

Who reads what: ``hotline:report:read``; a city-wide reader (the hotline centre, city
leaders) reads the city's notice and any unit's; a unit's leader reads only the notice of
their own unit (or of a unit below it) — asking for the city's gives their own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, func, select
from sqlalchemy.orm import Session

from zhengshu.casework.definitions import Workflow, load_workflow
from zhengshu.casework.models import Case, CaseEvent, CaseUnit
from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import InvalidInput, not_found
from zhengshu.modules.hotline.enums import SATISFACTION_LABELS, Satisfaction
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.reports import kpi
from zhengshu.modules.hotline.repository import is_city_wide
from zhengshu.org.models import Unit

TITLE = "东莞市12345热线办理情况通报"
CASE_TYPE = "hotline"

# The headline figures, in the order the notice states them.
HEADLINE_KPIS = (
    "closure_rate",
    "on_time_closure_rate",
    "resolution_rate",
    "satisfaction_rate",
    "rework_rate",
)
FALLBACK_LABELS = {
    "closure_rate": "办结率",
    "on_time_closure_rate": "按时办结率",
    "resolution_rate": "解决率",
    "satisfaction_rate": "满意率",
    "rework_rate": "重办率",
}
# Composite ranking score: weights of the rates (percent), stated in the notice text.
SCORE_WEIGHTS = (("on_time_closure_rate", 0.6), ("satisfaction_rate", 0.4))
RANKING_METHOD = "综合得分 = 按时办结率 × 60% + 满意率 × 40%（仅有一项时以该项计）"
BOTTOM_MAX = 3
STAGE_LABELS = {
    "dispatch": "派单",
    "sign_for": "签收",
    "review": "退单审核",
    "handle": "办理",
    "callback": "回访",
}
MAX_LISTED = 500  # rows of each list in one notice (the counts are always exact)
# The KPI report's row of the orders that have no unit (未派单): no unit to rank.
NONE_KEY = getattr(kpi, "NONE_KEY", "none")

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


# --- periods -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A month or an ISO week, in Beijing time, as aware UTC bounds ``[start, end)``."""

    key: str
    kind: str  # "month" | "week"
    label: str
    start: datetime
    end: datetime
    first_day: date
    last_day: date

    @property
    def previous_word(self) -> str:
        return "上月" if self.kind == "month" else "上周"

    def previous(self) -> Period:
        return _period_of(self.kind, self.first_day - timedelta(days=1))


def _month(year: int, month: int) -> Period:
    first = date(year, month, 1)
    after = date(year + (month == 12), month % 12 + 1, 1)
    return Period(
        key=f"{year:04d}-{month:02d}",
        kind="month",
        label=f"{year}年{month}月",
        start=_utc(first),
        end=_utc(after),
        first_day=first,
        last_day=after - timedelta(days=1),
    )


def _week(year: int, week: int) -> Period:
    first = date.fromisocalendar(year, week, 1)
    last = first + timedelta(days=6)
    return Period(
        key=f"{year:04d}-W{week:02d}",
        kind="week",
        label=f"{year}年第{week}周（{first.month}月{first.day}日至{last.month}月{last.day}日）",
        start=_utc(first),
        end=_utc(last + timedelta(days=1)),
        first_day=first,
        last_day=last,
    )


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(UTC)


def _period_of(kind: str, day: date) -> Period:
    if kind == "month":
        return _month(day.year, day.month)
    year, week, _ = day.isocalendar()
    return _week(year, week)


def bad_period(text: str) -> InvalidInput:
    return InvalidInput(
        "通报期间格式有误：按月写作 2026-11，按周写作 2026-W47",
        "bad period: a month is written 2026-11, an ISO week 2026-W47",
        code="bad_period",
        details={"period": text[:40]},
    )


def parse_period(text: str | None) -> Period:
    """``"2026-11"`` (a month) or ``"2026-W47"`` (an ISO week) -> the period; anything
    else, or a year outside 2000-2099, is an ``InvalidInput`` (400)."""
    raw = (text or "").strip().upper()
    month, week = _MONTH.match(raw), _WEEK.match(raw)
    try:
        if month and 2000 <= int(month[1]) <= 2099 and 1 <= int(month[2]) <= 12:
            return _month(int(month[1]), int(month[2]))
        if week and 2000 <= int(week[1]) <= 2099:
            return _week(int(week[1]), int(week[2]))
    except ValueError:  # week 53 of a 52-week year, week 0
        pass
    raise bad_period(text or "")


def current_period(kind: str = "month", now: datetime | None = None) -> Period:
    """The period that contains ``now`` (Beijing time)."""
    today = (now or clock.now()).astimezone(SHANGHAI).date()
    return _period_of(kind, today)


def recent_periods(
    now: datetime | None = None, *, months: int = 12, weeks: int = 8
) -> list[Period]:
    """The current and previous months, then the current and previous weeks (the list page)."""
    month = current_period("month", now)
    week = current_period("week", now)
    out: list[Period] = []
    for _ in range(months):
        out.append(month)
        month = month.previous()
    for _ in range(weeks):
        out.append(week)
        week = week.previous()
    return out


# --- the notice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A headline figure: this period, the previous one, and the change (percentage
    points for a rate; a count of orders for ``orders``)."""

    key: str
    label: str
    unit: str  # "件" | "%"
    value: float | None
    previous: float | None
    change: float | None
    numerator: int | None = None
    denominator: int | None = None


@dataclass(frozen=True)
class RankedUnit:
    rank: int | None
    unit_id: str | None
    name: str
    orders: int
    on_time_closure_rate: float | None
    satisfaction_rate: float | None
    resolution_rate: float | None
    score: float | None


@dataclass(frozen=True)
class OverdueOrder:
    """An order whose stage clock ran out in the period (a red light on its timeline)."""

    case_id: uuid.UUID
    number: str
    title: str
    unit: str | None
    stage: str
    due_at: datetime
    overdue_at: datetime
    done_at: datetime | None  # when the late stage was left; None: still late
    late_minutes: int


@dataclass(frozen=True)
class ReworkedOrder:
    """An order sent back to its unit after an unsolved or dissatisfied callback."""

    case_id: uuid.UUID
    number: str
    title: str
    unit: str | None
    reworked_at: datetime
    satisfaction: str | None  # the callback's level, as its label
    solved: bool | None
    rework_count: int
    reason: str | None


@dataclass(frozen=True)
class SatisfactionLevel:
    key: str
    label: str
    count: int
    share: float | None  # of the orders with an answer


@dataclass(frozen=True)
class Notice:
    title: str
    period: Period
    previous: Period
    scope_unit_id: uuid.UUID | None  # None: the whole city
    scope_name: str
    generated_at: datetime
    figures: list[Figure]
    ranking_method: str
    ranking: list[RankedUnit]
    unranked: list[RankedUnit]
    bottom: list[RankedUnit]
    city_rank: tuple[int, int] | None  # a unit's notice: (rank, units ranked) city-wide
    overdue: list[OverdueOrder]
    overdue_total: int
    reworked: list[ReworkedOrder]
    reworked_total: int
    satisfaction: list[SatisfactionLevel]
    satisfaction_total: int
    text: list[str]

    @property
    def city_wide(self) -> bool:
        return self.scope_unit_id is None

    def figure(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    @property
    def file_stem(self) -> str:
        return f"{self.scope_name}12345热线办理情况通报-{self.period.key}"


# --- figures and ranking (pure: tested on hand-made reports) -------------------------------


def _value(row: kpi.KpiRow | None, key: str) -> float | None:
    if row is None:
        return None
    found = row.values.get(key)
    return None if found is None else found.value


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def headline(
    current: kpi.KpiRow, previous: kpi.KpiRow | None, defs: list[kpi.KpiDefinition]
) -> list[Figure]:
    labels = {d.key: d.label for d in defs}
    prev_orders = previous.orders if previous is not None else None
    figures = [
        Figure(
            key="orders",
            label="受理工单",
            unit="件",
            value=float(current.orders),
            previous=None if prev_orders is None else float(prev_orders),
            change=None if prev_orders is None else float(current.orders - prev_orders),
        )
    ]
    for key in HEADLINE_KPIS:
        now_v, before = _pct(_value(current, key)), _pct(_value(previous, key))
        found = current.values.get(key)
        figures.append(
            Figure(
                key=key,
                label=labels.get(key, FALLBACK_LABELS[key]),
                unit="%",
                value=now_v,
                previous=before,
                change=None if now_v is None or before is None else round(now_v - before, 2),
                numerator=found.numerator if found else None,
                denominator=found.denominator if found else None,
            )
        )
    return figures


def score_of(row: kpi.KpiRow) -> float | None:
    """The composite score (0-100) of ``RANKING_METHOD``; None when neither rate exists."""
    parts = [(_value(row, key), weight) for key, weight in SCORE_WEIGHTS]
    present = [(v, w) for v, w in parts if v is not None]
    if not present:
        return None
    weight = sum(w for _, w in present)
    return round(sum(v * 100 * w for v, w in present) / weight, 2)


def rank_units(rows: list[kpi.KpiRow]) -> tuple[list[RankedUnit], list[RankedUnit]]:
    """Units by composite score, best first (more orders first on equal scores; equal
    scores share a rank), and the units with no score."""

    def unit(row: kpi.KpiRow, rank: int | None, score: float | None) -> RankedUnit:
        return RankedUnit(
            rank=rank,
            unit_id=row.key,
            name=row.label,
            orders=row.orders,
            on_time_closure_rate=_pct(_value(row, "on_time_closure_rate")),
            satisfaction_rate=_pct(_value(row, "satisfaction_rate")),
            resolution_rate=_pct(_value(row, "resolution_rate")),
            score=score,
        )

    scored = [(score_of(r), r) for r in rows]
    ordered = sorted(
        ((s, r) for s, r in scored if s is not None),
        key=lambda sr: (-sr[0], -sr[1].orders, sr[1].label),
    )
    ranked: list[RankedUnit] = []
    for position, (score, row) in enumerate(ordered, start=1):
        same = ranked and ranked[-1].score == score
        ranked.append(unit(row, ranked[-1].rank if same else position, score))
    unranked = [unit(r, None, None) for s, r in scored if s is None]
    unranked.sort(key=lambda u: (-u.orders, u.name))
    return ranked, unranked


def bottom_of(ranked: list[RankedUnit]) -> list[RankedUnit]:
    """The last units of the ranking: three, or fewer so that they are at most half."""
    n = min(BOTTOM_MAX, len(ranked) // 2)
    return ranked[len(ranked) - n :] if n else []


# --- text ----------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}"


def _rate_phrase(fig: Figure | None, word: str) -> str:
    if fig is None or fig.value is None:
        return f"{fig.label if fig else ''}暂无数据"
    text = f"{fig.label}{_num(fig.value)}%"
    if fig.change is None:
        return text
    if abs(fig.change) < 0.05:
        return f"{text}，与{word}持平"
    direction = "上升" if fig.change > 0 else "下降"
    return f"{text}，较{word}{direction}{abs(fig.change):.1f}个百分点"


def _orders_phrase(fig: Figure, word: str) -> str:
    count = int(fig.value or 0)
    if fig.change is None:
        return f"{count:,}件"
    delta = int(fig.change)
    if delta == 0:
        return f"{count:,}件，与{word}持平"
    return f"{count:,}件，较{word}{'增加' if delta > 0 else '减少'}{abs(delta):,}件"


def notice_text(notice: Notice) -> list[str]:
    """The notice's paragraphs, in the style of a government notice."""
    word = notice.period.previous_word
    f = notice.figure
    orders = f("orders")
    assert orders is not None
    who = (
        "全市12345热线共受理工单" if notice.city_wide else f"{notice.scope_name}共承办12345热线工单"
    )
    first = (
        f"{notice.period.label}，{who}{_orders_phrase(orders, word)}；"
        f"{_rate_phrase(f('closure_rate'), word)}；"
        f"{_rate_phrase(f('on_time_closure_rate'), word)}；"
        f"{_rate_phrase(f('resolution_rate'), word)}；"
        f"{_rate_phrase(f('satisfaction_rate'), word)}。"
    )
    second = (
        f"本期发生超期{notice.overdue_total}件次，重办{notice.reworked_total}件次；"
        f"回访评价{notice.satisfaction_total}件"
    )
    if notice.satisfaction_total:
        parts = [f"{lvl.label}{lvl.count}件" for lvl in notice.satisfaction if lvl.count]
        second += f"，其中{'、'.join(parts)}"
    second += "。"
    paragraphs = [first, second]
    if notice.ranking:
        top = "、".join(u.name for u in notice.ranking[:3])
        place = {1: "位居第一", 2: "位居前两名"}.get(len(notice.ranking), "位居前三名")
        third = f"按综合得分（按时办结率占60%、满意率占40%）排名，{top}{place}"
        if notice.bottom:
            third += f"；{'、'.join(u.name for u in notice.bottom)}排名靠后"
        third += "。"
        paragraphs.append(third)
    if notice.city_rank is not None:
        rank, total = notice.city_rank
        paragraphs.append(
            f"按上述综合得分，{notice.scope_name}在全市{total}个承办单位中排第{rank}名。"
        )
    if notice.bottom or notice.overdue_total or notice.reworked_total:
        paragraphs.append(
            "请排名靠后及有超期、重办工单的单位认真分析原因，逐件整改落实，"
            "切实提高按时办结率和群众满意度。"
        )
    return paragraphs


# --- reading the timelines ------------------------------------------------------------------


def _in_scope(scope: Unit | None) -> ColumnElement[bool] | None:
    """Orders on which the unit, or one below it, was ever a handling unit."""
    if scope is None:
        return None
    return exists().where(CaseUnit.case_id == Case.id, CaseUnit.unit_path.startswith(scope.path))


def _where(*clauses: ColumnElement[bool] | None) -> ColumnElement[bool]:
    return and_(*(c for c in clauses if c is not None))


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value if isinstance(value, datetime) else None


def _entries(
    session: Session, action: str, period: Period, scope: Unit | None
) -> tuple[Sequence[Row[CaseEvent, str, str, str]], int]:
    """The timeline entries of ``action`` dated in the period (the first ``MAX_LISTED``,
    in order, with the order's number, title and lead unit) and how many there are."""
    where = _where(
        Case.case_type == CASE_TYPE,
        CaseEvent.action == action,
        CaseEvent.at >= period.start,
        CaseEvent.at < period.end,
        _in_scope(scope),
    )
    total = session.execute(
        select(func.count())
        .select_from(CaseEvent)
        .join(Case, Case.id == CaseEvent.case_id)
        .where(where)
    ).scalar_one()
    rows = session.execute(
        select(CaseEvent, Case.number, Case.title, Unit.name)
        .join(Case, Case.id == CaseEvent.case_id)
        .outerjoin(Unit, Unit.id == Case.lead_unit_id)
        .where(where)
        .order_by(CaseEvent.at, Case.number)
        .limit(MAX_LISTED)
    ).all()
    return rows, total


def overdue_orders(
    session: Session,
    period: Period,
    scope: Unit | None,
    workflow: Workflow,
    now: datetime,
) -> tuple[list[OverdueOrder], int]:
    """The red lights (``overdue`` entries) dated in the period, latest due first: when
    the late stage was left (the first later transition into a state of another stage)
    and by how much it was late then (or is still, at ``now``)."""
    rows, total = _entries(session, "overdue", period, scope)
    if not rows:
        return [], total
    case_ids = {ev.case_id for ev, *_ in rows}
    later: dict[uuid.UUID, list[CaseEvent]] = {}
    for ev in session.execute(
        select(CaseEvent)
        .where(CaseEvent.case_id.in_(case_ids), CaseEvent.to_status.is_not(None))
        .order_by(CaseEvent.case_id, CaseEvent.seq)
    ).scalars():
        later.setdefault(ev.case_id, []).append(ev)
    stage_of = {name: state.stage for name, state in workflow.states.items()}
    out: list[OverdueOrder] = []
    for ev, number, title, unit_name in rows:
        data = ev.data or {}
        stage = str(data.get("stage") or "")
        due = _aware(data.get("due_at")) or ev.at
        done = next(
            (
                t.at
                for t in later.get(ev.case_id, [])
                if t.seq > ev.seq and stage_of.get(str(t.to_status)) != stage
            ),
            None,
        )
        until = done or now
        out.append(
            OverdueOrder(
                case_id=ev.case_id,
                number=number,
                title=title,
                unit=unit_name,
                stage=STAGE_LABELS.get(stage, stage or "—"),
                due_at=due,
                overdue_at=ev.at,
                done_at=done,
                late_minutes=max(0, int((until - due).total_seconds() // 60)),
            )
        )
    return out, total


def reworked_orders(
    session: Session, period: Period, scope: Unit | None
) -> tuple[list[ReworkedOrder], int]:
    """The reworks (``rework`` entries) dated in the period, in order."""
    rows, total = _entries(session, "rework", period, scope)
    out = []
    for ev, number, title, unit_name in rows:
        data = ev.data or {}
        level = data.get("satisfaction")
        try:
            label = Satisfaction(level).label if level else None
        except ValueError:
            label = str(level)
        solved = data.get("solved")
        out.append(
            ReworkedOrder(
                case_id=ev.case_id,
                number=number,
                title=title,
                unit=unit_name,
                reworked_at=ev.at,
                satisfaction=label,
                solved=solved if isinstance(solved, bool) else None,
                rework_count=int(data.get("rework") or 1),
                reason=ev.note,
            )
        )
    return out, total


def satisfaction_breakdown(
    session: Session, period: Period, scope: Unit | None
) -> tuple[list[SatisfactionLevel], int]:
    """The five levels (glossary order) of the orders registered in the period that
    have been called back, by their last callback's answer."""
    counts = dict(
        session.execute(
            select(Order.satisfaction, func.count())
            .join(Case, Case.id == Order.id)
            .where(
                _where(
                    Case.case_type == CASE_TYPE,
                    Case.created_at >= period.start,
                    Case.created_at < period.end,
                    Order.satisfaction.is_not(None),
                    _in_scope(scope),
                )
            )
            .group_by(Order.satisfaction)
        ).all()
    )
    total = sum(counts.get(level.value, 0) for level in Satisfaction)
    levels = [
        SatisfactionLevel(
            key=level.value,
            label=SATISFACTION_LABELS[level],
            count=counts.get(level.value, 0),
            share=round(counts.get(level.value, 0) / total * 100, 2) if total else None,
        )
        for level in Satisfaction
    ]
    return levels, total


# --- building -----------------------------------------------------------------------------


def _scope_unit(session: Session, actor: Principal, unit_id: uuid.UUID | None) -> Unit | None:
    """The unit the notice is about (None: the city). Outside the reader's jurisdiction
    reads as not found; a reader who is not city-wide gets their own unit's notice."""
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is None or not actor.covers(unit.path):
            raise not_found("单位", "unit")
        return None if unit.parent_id is None else unit
    if is_city_wide(actor):
        return None
    if actor.scope_path is None:
        raise not_found("单位", "unit")
    unit = session.execute(select(Unit).where(Unit.path == actor.scope_path)).scalar_one_or_none()
    if unit is None:
        raise not_found("单位", "unit")
    return unit


def _units_within(session: Session, rows: list[kpi.KpiRow], scope: Unit | None) -> list[kpi.KpiRow]:
    """The rows of real units (not "未派单") that lie in the scope: a town's report also
    counts orders located in the town but led by a city department, which is no unit of
    the town to rank."""
    keyed: dict[uuid.UUID, kpi.KpiRow] = {}
    for row in rows:
        if row.key is None or row.key == NONE_KEY:
            continue
        try:
            keyed[uuid.UUID(row.key)] = row
        except ValueError:
            continue
    if scope is None or not keyed:
        return list(keyed.values())
    inside = set(
        session.execute(
            select(Unit.id).where(Unit.id.in_(keyed), Unit.path.startswith(scope.path))
        ).scalars()
    )
    return [row for key, row in keyed.items() if key in inside]


def build_notice(
    session: Session,
    actor: Principal,
    *,
    period: str | Period,
    unit_id: uuid.UUID | None = None,
    workflow: Workflow | None = None,
) -> Notice:
    """The notice of ``period`` for the city (``unit_id`` None) or one unit.

    Permission ``hotline:report:read``; the unit must lie in the reader's jurisdiction
    (else 404); a reader who is not city-wide gets their own unit's notice. Reads only.
    """
    actor.require("hotline:report:read")
    when = period if isinstance(period, Period) else parse_period(period)
    before = when.previous()
    scope = _scope_unit(session, actor, unit_id)
    scope_id = None if scope is None else scope.id
    wf = workflow or load_workflow(CASE_TYPE)
    now = clock.now()

    current = kpi.compute(
        session, actor, start=when.start, end=when.end, by="unit", unit_id=scope_id
    )
    previous = kpi.compute(session, actor, start=before.start, end=before.end, unit_id=scope_id)
    ranked, unranked = rank_units(_units_within(session, current.rows, scope))
    city_rank: tuple[int, int] | None = None
    if scope is not None:
        # The unit's place among all units of the city: the city's ranking is published
        # to every unit, so its own position is no other unit's data.
        city = kpi.compute(
            session, system_principal("办理情况通报"), start=when.start, end=when.end, by="unit"
        )
        city_ranked, _ = rank_units(_units_within(session, city.rows, None))
        mine = next((u for u in city_ranked if u.unit_id == str(scope.id)), None)
        if mine is not None and mine.rank is not None:
            city_rank = (mine.rank, len(city_ranked))
    overdue, overdue_total = overdue_orders(session, when, scope, wf, now)
    reworked, reworked_total = reworked_orders(session, when, scope)
    levels, answered = satisfaction_breakdown(session, when, scope)
    notice = Notice(
        title=TITLE if scope is None else f"{TITLE}（{scope.name}）",
        period=when,
        previous=before,
        scope_unit_id=scope_id,
        scope_name="全市" if scope is None else scope.name,
        generated_at=now,
        figures=headline(current.total, previous.total, current.definitions),
        ranking_method=RANKING_METHOD,
        ranking=ranked,
        unranked=unranked,
        bottom=bottom_of(ranked),
        city_rank=city_rank,
        overdue=overdue,
        overdue_total=overdue_total,
        reworked=reworked,
        reworked_total=reworked_total,
        satisfaction=levels,
        satisfaction_total=answered,
        text=[],
    )
    return with_text(notice)


def with_text(notice: Notice) -> Notice:
    """The notice with its paragraphs written from its figures."""
    return replace(notice, text=notice_text(notice))


def late_label(minutes: int) -> str:
    """``3天2小时`` / ``5小时10分钟`` / ``40分钟``."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分钟" if mins else f"{hours}小时"
    return f"{mins}分钟"
