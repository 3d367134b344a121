"""KPIs (指标) of the 12345 hotline, defined in ``kpis.yaml`` with auditable formulas and
computed from the per-order facts (``facts.py``, read from the order timelines).

- A rate KPI names two fact flags: numerator / denominator (``orders`` = every order
  registered in the period). Every numerator flag implies its denominator flag (the facts
  guarantee it), so the numerator's orders are a subset of the denominator's and both can
  be listed (``orders``: the drill-down).
- A duration KPI names a duration column (minutes) and the flag of the orders measured:
  the mean is sum / count (from the rollup), the median and p90 are read from the facts.
  p90 is the nearest rank: the smallest value with at least 90% of the values at or
  below it; the median is the middle value (the mean of the two middle values for an even
  count).
- An order belongs to the period it was registered in. Periods of whole Asia/Shanghai
  days are read from the daily rollups (``order_fact_daily_units`` for the total and by
  unit, town or period; ``order_fact_daily`` by category or channel); any other period
  from the facts themselves, with the same result.
- Jurisdiction: a city-wide principal sees every order; anyone else the orders whose lead
  unit or whose town lies in their subtree (a town's leader: the orders of the town and
  of the units under it). ``unit_id`` narrows the same way to one unit's subtree. Needs
  ``hotline:report:read``.

Published interface (the notices and the dashboard build on it):
``KpiDefinition``, ``KpiValue``, ``KpiRow``, ``KpiReport``, ``definitions()``,
``month_bounds(month)``, ``compute(...)``; and ``orders(...)`` for the drill-down.
"""

from __future__ import annotations

import math
import re
import statistics
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import ColumnElement, Integer, Table, and_, cast, false, func, or_, select, true
from sqlalchemy.orm import Session

from zhengshu.casework.models import Case
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import InvalidInput, not_found
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.enums import CHANNEL_LABELS, Channel, Satisfaction
from zhengshu.modules.hotline.reports.models import (
    DURATIONS,
    FLAGS,
    OrderFact,
    OrderFactDaily,
    OrderFactDailyUnit,
)
from zhengshu.org.models import Unit

GROUPINGS: tuple[str | None, ...] = (
    None,
    "unit",
    "town",
    "category",
    "channel",
    "day",
    "week",
    "month",
)
GROUPING_LABELS = {
    "unit": "承办单位",
    "town": "镇街",
    "category": "诉求分类",
    "channel": "受理渠道",
    "day": "日",
    "week": "周",
    "month": "月",
}
ORDERS = "orders"  # the denominator meaning "every order of the period"
NONE_KEY = "none"  # the key of the group without a unit / town / category
NONE_LABELS = {"unit": "未派单", "town": "未定位", "category": "未分类", "channel": "未知渠道"}
PERMISSION = "hotline:report:read"


class KpiConfigError(ValueError):
    """``kpis.yaml`` names something that is not a fact column, or is malformed."""


@dataclass(frozen=True)
class KpiDefinition:
    """One KPI as configured: a rate (numerator / denominator, both fact columns) or a
    duration (the mean, median and p90 of a duration column of the facts)."""

    key: str
    label: str
    kind: str  # "rate" | "duration"
    formula: str
    numerator: str | None
    denominator: str | None
    unit: str  # "%" or "分钟"


@dataclass(frozen=True)
class KpiValue:
    """One figure: for a rate, numerator / denominator (value 0..1, None when the
    denominator is 0); for a duration, the total minutes as numerator, the orders measured
    as denominator, the mean minutes as value, with median and p90."""

    key: str
    numerator: int | None
    denominator: int | None
    value: float | None
    median: float | None = None
    p90: float | None = None


@dataclass(frozen=True)
class KpiRow:
    """One row of a report: a group (unit, town, category, channel or period) and its
    figures keyed by KPI key. ``key`` identifies the group for the drill-down (a unit id,
    a category code, ``2026-11``...; ``NONE_KEY`` for the group without one; None for the
    total)."""

    key: str | None
    label: str
    orders: int
    values: dict[str, KpiValue]


@dataclass(frozen=True)
class KpiReport:
    start: datetime
    end: datetime
    by: str | None
    definitions: list[KpiDefinition]
    rows: list[KpiRow]
    total: KpiRow


@dataclass(frozen=True)
class KpiConfig:
    definitions: tuple[KpiDefinition, ...]
    satisfied_levels: frozenset[str]


# --- configuration -----------------------------------------------------------------------


def parse_config(text: str) -> KpiConfig:
    """Validate and read the text of a ``kpis.yaml``; ``KpiConfigError`` says what is
    wrong and where."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KpiConfigError(f"kpis.yaml is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("kpis"), list):
        raise KpiConfigError("kpis.yaml: expected a mapping with a 'kpis' list")
    levels = raw.get("satisfied_levels", [])
    known_levels = {s.value for s in Satisfaction}
    if not isinstance(levels, list) or not levels:
        raise KpiConfigError("kpis.yaml: 'satisfied_levels' must be a non-empty list")
    for level in levels:
        if level not in known_levels:
            raise KpiConfigError(
                f"kpis.yaml: satisfied_levels: unknown level {level!r} "
                f"(known: {', '.join(sorted(known_levels))})"
            )
    found: list[KpiDefinition] = []
    for i, item in enumerate(raw["kpis"]):
        if not isinstance(item, dict):
            raise KpiConfigError(f"kpis.yaml: kpis[{i}] must be a mapping")
        key = str(item.get("key", "")).strip()
        where = f"kpis.yaml: KPI {key or f'#{i + 1}'}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise KpiConfigError(f"{where}: 'key' must be a lower-case identifier")
        if any(d.key == key for d in found):
            raise KpiConfigError(f"{where}: defined twice")
        for field in ("label", "formula", "numerator", "denominator"):
            if not str(item.get(field) or "").strip():
                raise KpiConfigError(f"{where}: '{field}' is missing")
        kind = item.get("kind")
        numerator, denominator = str(item["numerator"]), str(item["denominator"])
        if kind == "rate":
            if numerator not in FLAGS:
                raise KpiConfigError(
                    f"{where}: numerator {numerator!r} is not a fact flag "
                    f"(known: {', '.join(FLAGS)})"
                )
            if denominator not in (*FLAGS, ORDERS):
                raise KpiConfigError(
                    f"{where}: denominator {denominator!r} is not a fact flag "
                    f"(known: {ORDERS}, {', '.join(FLAGS)})"
                )
            unit = "%"
        elif kind == "duration":
            if numerator not in DURATIONS:
                raise KpiConfigError(
                    f"{where}: numerator {numerator!r} is not a duration column "
                    f"(known: {', '.join(DURATIONS)})"
                )
            if denominator not in FLAGS:
                raise KpiConfigError(
                    f"{where}: denominator {denominator!r} is not a fact flag "
                    f"(known: {', '.join(FLAGS)})"
                )
            unit = "分钟"
        else:
            raise KpiConfigError(f"{where}: 'kind' must be rate or duration, not {kind!r}")
        found.append(
            KpiDefinition(
                key=key,
                label=str(item["label"]),
                kind=str(kind),
                formula=str(item["formula"]),
                numerator=numerator,
                denominator=denominator,
                unit=unit,
            )
        )
    if not found:
        raise KpiConfigError("kpis.yaml: no KPI defined")
    return KpiConfig(tuple(found), frozenset(str(level) for level in levels))


# A city's own definitions (``<data dir>/kpis.yaml``), set at start-up by ``use_city_file``.
_city_file: dict[str, Path | None] = {"path": None}


def use_city_file(path: Path | None) -> None:
    """Use the city's ``kpis.yaml`` at ``path`` when it exists (else the packaged one).
    The app and the worker call it at start-up with ``<data dir>/kpis.yaml``; the file is
    validated at once, so a mistake in it stops the start with its ``KpiConfigError``."""
    _city_file["path"] = path if path is not None and path.is_file() else None
    config.cache_clear()
    config()


@cache
def config() -> KpiConfig:
    """The KPI definitions in force (the city's file, or the packaged ``kpis.yaml``),
    validated once."""
    own = _city_file["path"]
    if own is not None:
        return parse_config(own.read_text("utf-8"))
    text = (
        resources.files("zhengshu.modules.hotline.reports").joinpath("kpis.yaml").read_text("utf-8")
    )
    return parse_config(text)


def definitions() -> list[KpiDefinition]:
    """The KPIs configured in ``kpis.yaml``, in their order, validated."""
    return list(config().definitions)


def satisfied_levels() -> frozenset[str]:
    """The callback answers that count as satisfied (满意率)."""
    return config().satisfied_levels


def definition(key: str) -> KpiDefinition:
    for item in config().definitions:
        if item.key == key:
            return item
    raise InvalidInput(f"未知指标：{key[:40]}", f"unknown KPI {key[:40]!r}", code="bad_kpi")


# --- periods -----------------------------------------------------------------------------


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SHANGHAI).astimezone(UTC)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` -> that Asia/Shanghai month as aware UTC ``[start, end)``."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip()) if isinstance(month, str) else None
    if match is None or not (1 <= int(match[2]) <= 12) or not (2000 <= int(match[1]) <= 2100):
        raise InvalidInput(
            "月份格式应为 YYYY-MM，如 2026-11",
            "month must be YYYY-MM, e.g. 2026-11",
            code="bad_month",
        )
    year, mon = int(match[1]), int(match[2])
    first = date(year, mon, 1)
    following = date(year + (mon == 12), mon % 12 + 1, 1)
    return _local_midnight(first), _local_midnight(following)


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Local dates ``start`` to ``end`` inclusive as aware UTC ``[start, end)``."""
    if end < start:
        raise InvalidInput(
            "结束日期不能早于开始日期", "end date is before start date", code="bad_period"
        )
    if (end - start).days > 3660:
        raise InvalidInput(
            "统计区间不能超过十年", "period longer than ten years", code="bad_period"
        )
    return _local_midnight(start), _local_midnight(end + timedelta(days=1))


def _whole_days(start: datetime, end: datetime) -> tuple[date, date] | None:
    """The local days ``[first, last)`` when both bounds are local midnights."""
    s, e = start.astimezone(SHANGHAI), end.astimezone(SHANGHAI)
    if s.time() == time(0) and e.time() == time(0):
        return s.date(), e.date()
    return None


def _period_key(by: str, day: date) -> tuple[str, str]:
    if by == "day":
        return day.isoformat(), f"{day:%Y年%m月%d日}"
    if by == "week":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        sunday = monday + timedelta(days=6)
        return f"{year}-W{week:02d}", f"{year}年第{week}周（{monday:%m月%d日}—{sunday:%m月%d日}）"
    return f"{day:%Y-%m}", f"{day.year}年{day.month}月"


def _period_range(by: str, key: str) -> tuple[date, date]:
    """The local days ``[first, last)`` of a period key (drill-down)."""
    try:
        if by == "day":
            first = date.fromisoformat(key)
            return first, first + timedelta(days=1)
        if by == "week":
            iso_year, iso_week = key.split("-W")
            first = date.fromisocalendar(int(iso_year), int(iso_week), 1)
            return first, first + timedelta(days=7)
        y, m = (int(p) for p in key.split("-"))
        return date(y, m, 1), date(y + (m == 12), m % 12 + 1, 1)
    except ValueError:
        raise InvalidInput(
            f"分组值无效：{key[:40]}", f"bad group key {key[:40]!r}", code="bad_group"
        ) from None


# --- scope -------------------------------------------------------------------------------


def _subtree(session: Session, path: str) -> list[uuid.UUID]:
    return list(session.execute(select(Unit.id).where(Unit.path.startswith(path))).scalars())


def _scope_clause(
    session: Session, actor: Principal, unit_id: uuid.UUID | None, table: Any
) -> ColumnElement[bool]:
    """Orders whose lead unit or town lies in the actor's subtree (and in ``unit_id``'s)."""
    clauses: list[ColumnElement[bool]] = []
    if not repository.is_city_wide(actor):
        if actor.scope_path is None:
            return false()
        ids = _subtree(session, actor.scope_path)
        clauses.append(or_(table.c.lead_unit_id.in_(ids), table.c.town_unit_id.in_(ids)))
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is None:
            raise not_found("单位", "unit")
        ids = _subtree(session, unit.path)
        clauses.append(or_(table.c.lead_unit_id.in_(ids), table.c.town_unit_id.in_(ids)))
    return and_(true(), *clauses)


def _check_by(by: str | None) -> None:
    if by not in GROUPINGS:
        raise InvalidInput(
            "分组方式应为 unit、town、category、channel、day、week 或 month",
            "by must be one of unit, town, category, channel, day, week, month",
            code="bad_grouping",
        )


def _group_column(by: str | None, table: Any) -> Any:
    if by is None:
        return None
    if by in ("day", "week", "month"):
        return table.c.day
    name = {
        "unit": "lead_unit_id",
        "town": "town_unit_id",
        "category": "category",
        "channel": "channel",
    }[by]
    return table.c[name]


# --- compute -----------------------------------------------------------------------------


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _values(
    defs: Sequence[KpiDefinition], sums: Mapping[str, float], durations: Mapping[str, list[float]]
) -> dict[str, KpiValue]:
    out: dict[str, KpiValue] = {}
    for d in defs:
        assert d.numerator is not None
        assert d.denominator is not None
        den = int(sums.get(d.denominator, 0))
        if d.kind == "rate":
            num = int(sums.get(d.numerator, 0))
            out[d.key] = KpiValue(d.key, num, den, num / den if den else None)
        else:
            total = float(sums.get(d.numerator, 0.0))
            measured = durations.get(d.key, [])
            out[d.key] = KpiValue(
                d.key,
                round(total),
                den,
                round(total / den, 2) if den else None,
                median=round(statistics.median(measured), 2) if measured else None,
                p90=round(p, 2) if (p := _percentile(measured, 0.9)) is not None else None,
            )
    return out


def _labels(session: Session, by: str | None, keys: set[Any]) -> dict[Any, str]:
    if by in ("unit", "town"):
        ids = [k for k in keys if k is not None]
        rows = (
            session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ids))).all() if ids else []
        )
        return {row.id: row.name for row in rows}
    if by == "category":
        return {code: c.name for code, c in categories().items()}
    if by == "channel":
        return {str(c.value): label for c, label in CHANNEL_LABELS.items()}
    return {}


def compute(
    session: Session,
    actor: Principal,
    *,
    start: datetime,
    end: datetime,
    by: str | None = None,
    unit_id: uuid.UUID | None = None,
) -> KpiReport:
    """Every KPI over the orders registered in ``[start, end)`` that the actor may see,
    one row per group ``by`` (None: the total only), and the total. Figures come from the
    daily rollup when the period is whole local days, else from the facts. Reads only."""
    actor.require(PERMISSION)
    _check_by(by)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("时间须带时区", "start and end must be aware", code="bad_period")
    if end <= start:
        raise InvalidInput("统计区间为空", "end must be after start", code="bad_period")
    defs = definitions()
    days = _whole_days(start, end)
    table: Table
    if days is not None:
        # The narrow rollup answers everything but category and channel.
        model = OrderFactDaily if by in ("category", "channel") else OrderFactDailyUnit
        table = model.__table__  # type: ignore[assignment]
        period: ColumnElement[bool] = and_(table.c.day >= days[0], table.c.day < days[1])
        measures = [
            func.sum(table.c.orders).label(ORDERS),
            *(func.sum(table.c[f]).label(f) for f in FLAGS),
            *(func.sum(table.c[d]).label(d) for d in DURATIONS),
        ]
    else:
        table = OrderFact.__table__  # type: ignore[assignment]
        period = and_(table.c.registered_at >= start, table.c.registered_at < end)
        measures = [
            func.count().label(ORDERS),
            *(func.sum(cast(table.c[f], Integer)).label(f) for f in FLAGS),
            *(func.sum(table.c[d]).label(d) for d in DURATIONS),
        ]
    scope = _scope_clause(session, actor, unit_id, table)
    group = _group_column(by, table)
    query = select(*([group.label("g")] if group is not None else []), *measures).where(
        period, scope
    )
    if group is not None:
        query = query.group_by(group)
    groups: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in session.execute(query).mappings():
        if row[ORDERS] is None:
            continue
        key = _fold(by, row["g"]) if group is not None else None
        bucket = groups[key]
        for name in (ORDERS, *FLAGS, *DURATIONS):
            bucket[name] += float(row[name] or 0)
    durations = _durations(session, actor, unit_id, defs, start, end, by)
    rows = _rows(session, by, defs, groups, durations)
    total_sums: dict[str, float] = defaultdict(float)
    for bucket in groups.values():
        for name, value in bucket.items():
            total_sums[name] += value
    all_durations = {
        k: [v for per_group in durations.values() for v in per_group.get(k, [])]
        for k in (d.key for d in defs if d.kind == "duration")
    }
    total = KpiRow(None, "合计", int(total_sums[ORDERS]), _values(defs, total_sums, all_durations))
    return KpiReport(start, end, by, defs, rows, total)


def _fold(by: str | None, value: Any) -> Any:
    """A group value as the row's key: a period's key for day/week/month groupings."""
    if by in ("day", "week", "month"):
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        return _period_key(by, day)[0]
    return value


def _durations(
    session: Session,
    actor: Principal,
    unit_id: uuid.UUID | None,
    defs: Sequence[KpiDefinition],
    start: datetime,
    end: datetime,
    by: str | None,
) -> dict[Any, dict[str, list[float]]]:
    """The measured durations per group (for the median and p90), from the facts."""
    out: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    table: Table = OrderFact.__table__  # type: ignore[assignment]
    scope = _scope_clause(session, actor, unit_id, table)
    group = _group_column(by, table)
    for d in defs:
        if d.kind != "duration":
            continue
        column = table.c[str(d.numerator)]
        flag = table.c[str(d.denominator)]
        query = select(*([group.label("g")] if group is not None else []), column.label("v")).where(
            flag == true(),  # `responded = true`: PostgreSQL matches the partial index
            table.c.registered_at >= start,
            table.c.registered_at < end,
            column.is_not(None),
            scope,
        )
        for row in session.execute(query).mappings():
            key = _fold(by, row["g"]) if group is not None else None
            out[key][d.key].append(float(row["v"]))
    return out


def _rows(
    session: Session,
    by: str | None,
    defs: Sequence[KpiDefinition],
    groups: Mapping[Any, Mapping[str, float]],
    durations: Mapping[Any, Mapping[str, list[float]]],
) -> list[KpiRow]:
    if by is None:
        return []
    labels = _labels(session, by, set(groups))
    rows = []
    for key, sums in groups.items():
        if by in ("day", "week", "month"):
            first, _ = _period_range(by, str(key))
            label = _period_key(by, first)[1]
        elif key is None:
            label = NONE_LABELS[by]
        else:
            label = labels.get(key, str(key))
        rows.append(
            KpiRow(
                NONE_KEY if key is None else str(key),
                label,
                int(sums[ORDERS]),
                _values(defs, sums, durations.get(key, {})),
            )
        )
    if by in ("day", "week", "month"):
        rows.sort(key=lambda r: str(r.key))
    else:
        rows.sort(key=lambda r: (r.key == NONE_KEY, -r.orders, r.label))
    return rows


# --- drill-down --------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillOrder:
    case_id: uuid.UUID
    number: str
    title: str | None
    registered_at: datetime
    status: str
    category: str | None
    channel: str
    lead_unit: str | None
    town: str | None


@dataclass(frozen=True)
class DrillPage:
    kpi: KpiDefinition
    part: str
    total: int
    items: list[DrillOrder]


def orders(
    session: Session,
    actor: Principal,
    *,
    kpi: str,
    part: str,
    start: datetime,
    end: datetime,
    by: str | None = None,
    group: str | None = None,
    unit_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> DrillPage:
    """The orders behind one figure: those counted in the KPI's ``numerator`` or
    ``denominator`` for the period, the actor's jurisdiction, ``unit_id`` and the row
    ``group`` of grouping ``by`` (a row's ``key``). Newest first. Reads only."""
    actor.require(PERMISSION)
    _check_by(by)
    d = definition(kpi)
    if part not in ("numerator", "denominator"):
        raise InvalidInput(
            "part 应为 numerator 或 denominator",
            "part must be numerator or denominator",
            code="bad_part",
        )
    if end <= start:
        raise InvalidInput("统计区间为空", "end must be after start", code="bad_period")
    table: Table = OrderFact.__table__  # type: ignore[assignment]
    where: list[ColumnElement[bool]] = [
        table.c.registered_at >= start,
        table.c.registered_at < end,
        _scope_clause(session, actor, unit_id, table),
    ]
    if d.denominator != ORDERS:
        where.append(table.c[str(d.denominator)].is_(True))
    if part == "numerator" and d.kind == "rate":
        where.append(table.c[str(d.numerator)].is_(True))
    if d.kind == "duration":
        where.append(table.c[str(d.numerator)].is_not(None))
    if group is not None:
        if by is None:
            raise InvalidInput("指定分组值时须指定分组方式", "group needs by", code="bad_group")
        where.append(_group_clause(by, group, table))
    total = session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    lead = Unit.__table__.alias("lead")
    town = Unit.__table__.alias("town")
    rows = session.execute(
        select(
            table.c.case_id,
            table.c.number,
            Case.title,
            table.c.registered_at,
            table.c.status,
            table.c.category,
            table.c.channel,
            lead.c.name.label("lead_name"),
            town.c.name.label("town_name"),
        )
        .outerjoin(Case, Case.id == table.c.case_id)
        .outerjoin(lead, lead.c.id == table.c.lead_unit_id)
        .outerjoin(town, town.c.id == table.c.town_unit_id)
        .where(*where)
        .order_by(table.c.registered_at.desc(), table.c.number.desc())
        .limit(limit)
        .offset(offset)
    ).mappings()
    items = [
        DrillOrder(
            case_id=r["case_id"],
            number=r["number"],
            title=r["title"],
            registered_at=r["registered_at"],
            status=r["status"],
            category=r["category"],
            channel=r["channel"],
            lead_unit=r["lead_name"],
            town=r["town_name"],
        )
        for r in rows
    ]
    return DrillPage(d, part, int(total), items)


def _group_clause(by: str, group: str, table: Any) -> ColumnElement[bool]:
    if by in ("day", "week", "month"):
        first, last = _period_range(by, group)
        return and_(table.c.day >= first, table.c.day < last)
    column = _group_column(by, table)
    if group == NONE_KEY:
        return column.is_(None)  # type: ignore[no-any-return]
    if by in ("unit", "town"):
        try:
            return column == uuid.UUID(group)  # type: ignore[no-any-return]
        except ValueError:
            raise InvalidInput(
                f"分组值无效：{group[:40]}", f"bad group key {group[:40]!r}", code="bad_group"
            ) from None
    if by == "channel" and group not in {c.value for c in Channel}:
        raise InvalidInput(
            f"分组值无效：{group[:40]}", f"bad group key {group[:40]!r}", code="bad_group"
        )
    return column == group  # type: ignore[no-any-return]
