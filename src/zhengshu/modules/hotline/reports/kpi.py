"""KPIs (指标) of the 12345 hotline, defined in ``kpis.yaml`` with auditable formulas and
computed from the per-order facts (see ``facts.py``).

Published interface (the notices and the dashboard build on it):
``KpiDefinition``, ``KpiValue``, ``KpiRow``, ``KpiReport``, ``definitions()``,
``month_bounds(month)`` and ``compute(session, actor, start=, end=, by=, unit_id=)``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from zhengshu.kernel.authz import Principal

GROUPINGS = (None, "unit", "town", "category", "channel", "day", "week", "month")


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
    denominator is 0); for a duration, the number of orders measured as denominator and the
    mean minutes as value, with median and p90."""

    key: str
    numerator: int | None
    denominator: int | None
    value: float | None
    median: float | None = None
    p90: float | None = None


@dataclass(frozen=True)
class KpiRow:
    """One row of a report: a group (unit, town, category, channel or period) and its
    figures keyed by KPI key. ``key`` is the group's identifier (None for the total)."""

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


def definitions() -> list[KpiDefinition]:
    """The KPIs configured in ``kpis.yaml``, in their order, validated."""
    raise NotImplementedError


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` -> that Asia/Shanghai month as aware UTC ``[start, end)``."""
    raise NotImplementedError


def compute(
    session: Session,
    actor: Principal,
    *,
    start: datetime,
    end: datetime,
    by: str | None = None,
    unit_id: uuid.UUID | None = None,
) -> KpiReport:
    """Every KPI over orders registered in ``[start, end)``, grouped ``by``."""
    raise NotImplementedError
