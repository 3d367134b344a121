"""The leaders' dashboard (领导驾驶舱): what a city or town leader looks at first.

One read-only snapshot, narrowed to the viewer's jurisdiction:

- live counts straight from the case rows (open orders, yellow and red lights, orders taken
  today) and the open early warnings;
- this month's headline KPIs and the last 30 days by day, category and town, from the KPI
  engine (``reports.kpi``: the daily rollup of the per-order facts, so the figures are the
  same as the KPI report's and cost a few hundred rows whatever the city's volume);
- the top hot issues and the latest warnings.

Charts are plotly figure specifications (plain JSON) that the page draws with the plotly.js
bundled in the installed ``plotly`` package (served by ``routes_dashboard``; no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.casework.models import Case
from zhengshu.kernel.authz import Principal
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.insight import alerts, issues
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.reports import kpi

LOCAL = ZoneInfo("Asia/Shanghai")
CASE_TYPE = "hotline"
# The KPIs on the headline strip, in order.
HEADLINE = ("on_time_closure_rate", "resolution_rate", "satisfaction_rate", "callback_rate")
TREND_DAYS = 30
TOP_CATEGORIES = 8
PALETTE = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#c62828", "#5d4037", "#455a64"]


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    value: float | None
    numerator: int | None
    denominator: int | None


@dataclass
class Dashboard:
    now: datetime
    month: str
    counts: dict[str, int]
    headline: list[Headline]
    charts: dict[str, dict[str, Any]]
    towns: list[dict[str, Any]]
    hot_issues: list[Any] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """What the API returns and the page polls: everything but the ORM rows."""
        return {
            "now": self.now.isoformat(),
            "month": self.month,
            "counts": self.counts,
            "headline": [h.__dict__ for h in self.headline],
            "charts": self.charts,
            "towns": self.towns,
            "hot_issues": [
                {
                    "id": str(h.id),
                    "description": h.description,
                    "place": h.place,
                    "score": h.score,
                    "n_orders": h.n_orders,
                }
                for h in self.hot_issues
            ],
            "alerts": [
                {
                    "id": str(a.id),
                    "title": a.title,
                    "kind": a.kind,
                    "status": a.status,
                    "raised_at": a.raised_at.isoformat(),
                }
                for a in self.alerts
            ],
        }


def _live_counts(
    session: Session, actor: Principal, open_states: list[str], now: datetime
) -> dict[str, int]:
    clause = repository.visible(actor)
    query = (
        select(Case.warning_level, func.count())
        .select_from(Case)
        .join(Order, Order.id == Case.id)
        .where(Case.case_type == CASE_TYPE, Case.status.in_(open_states))
        .group_by(Case.warning_level)
    )
    if clause is not None:
        query = query.where(clause)
    levels = {str(level): int(n) for level, n in session.execute(query).all()}
    day_start = now.astimezone(LOCAL).replace(hour=0, minute=0, second=0, microsecond=0)
    today = (
        select(func.count())
        .select_from(Case)
        .join(Order, Order.id == Case.id)
        .where(Case.case_type == CASE_TYPE, Case.created_at >= day_start)
    )
    if clause is not None:
        today = today.where(clause)
    return {
        "open": sum(levels.values()),
        "yellow": levels.get("yellow", 0),
        "red": levels.get("red", 0),
        "today": session.execute(today).scalar_one(),
    }


def _rate(row: kpi.KpiRow, key: str) -> float | None:
    value = row.values.get(key)
    return None if value is None or value.value is None else round(value.value * 100, 1)


def _trend_chart(report: kpi.KpiReport, first: date) -> dict[str, Any]:
    """One bar per day of the window, a day without orders included."""
    rows = {r.key: r for r in report.rows}
    days = [first + timedelta(days=i) for i in range(TREND_DAYS)]
    taken = [rows[d.isoformat()].orders if d.isoformat() in rows else 0 for d in days]
    closed = [
        rows[d.isoformat()].values["closure_rate"].numerator or 0 if d.isoformat() in rows else 0
        for d in days
    ]
    labels = [f"{d.month}-{d.day:02d}" for d in days]
    return {
        "data": [
            {"type": "bar", "name": "受理量", "x": labels, "y": taken},
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "其中已办结",
                "x": labels,
                "y": closed,
                "line": {"color": PALETTE[1]},
            },
        ],
        "layout": {
            "title": {"text": f"近{TREND_DAYS}日受理量（按受理日）"},
            "xaxis": {"type": "category", "tickangle": -45},
            "barmode": "overlay",
            "legend": {"orientation": "h"},
            "margin": {"l": 40, "r": 10, "t": 40, "b": 40},
        },
    }


def _category_chart(report: kpi.KpiReport) -> dict[str, Any]:
    rows = sorted(report.rows, key=lambda r: r.orders, reverse=True)
    top, rest = rows[:TOP_CATEGORIES], rows[TOP_CATEGORIES:]
    labels = [r.label for r in top] + (["其他"] if rest else [])
    values = [r.orders for r in top] + ([sum(r.orders for r in rest)] if rest else [])
    return {
        "data": [
            {
                "type": "pie",
                "hole": 0.45,
                "labels": labels,
                "values": values,
                "marker": {"colors": [*PALETTE, "#9e9e9e"]},
                "textinfo": "label+percent",
            }
        ],
        "layout": {
            "title": {"text": f"近{TREND_DAYS}日诉求分类构成"},
            "showlegend": False,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        },
    }


def _town_rows(report: kpi.KpiReport) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "town": r.label,
            "orders": r.orders,
            "on_time_closure_rate": _rate(r, "on_time_closure_rate"),
            "satisfaction_rate": _rate(r, "satisfaction_rate"),
        }
        for r in report.rows
        if r.key is not None
    ]
    rows.sort(key=lambda r: r["orders"], reverse=True)
    return rows


def _town_chart(towns: list[dict[str, Any]]) -> dict[str, Any]:
    top = list(reversed(towns[:15]))
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "受理量",
                "y": [t["town"] for t in top],
                "x": [t["orders"] for t in top],
                "marker": {"color": PALETTE[0]},
                "customdata": [[t["on_time_closure_rate"], t["satisfaction_rate"]] for t in top],
                "hovertemplate": (
                    "%{y}<br>受理 %{x} 件<br>按时办结率 %{customdata[0]}%"
                    "<br>满意率 %{customdata[1]}%<extra></extra>"
                ),
            }
        ],
        "layout": {
            "title": {"text": f"近{TREND_DAYS}日镇街受理量排名（前15）"},
            "margin": {"l": 90, "r": 10, "t": 40, "b": 30},
        },
    }


def snapshot(
    session: Session, actor: Principal, *, open_states: list[str], now: datetime
) -> Dashboard:
    """The dashboard as ``actor`` may see it at ``now`` (needs hotline:report:read)."""
    actor.require("hotline:report:read")
    local = now.astimezone(LOCAL)
    month = f"{local.year:04d}-{local.month:02d}"
    month_start, month_end = kpi.month_bounds(month)
    this_month = kpi.compute(session, actor, start=month_start, end=month_end)
    headline = []
    definitions = {d.key: d for d in this_month.definitions}
    for key in HEADLINE:
        value = this_month.total.values.get(key)
        if key in definitions and value is not None:
            headline.append(
                Headline(
                    key, definitions[key].label, value.value, value.numerator, value.denominator
                )
            )
    window_end = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    window_start = window_end - timedelta(days=TREND_DAYS)

    def last_days(by: str) -> kpi.KpiReport:
        return kpi.compute(session, actor, start=window_start, end=window_end, by=by)

    by_day, by_category = last_days("day"), last_days("category")
    towns = _town_rows(last_days("town"))
    summary = alerts.summary(session, actor)
    return Dashboard(
        now=now,
        month=month,
        counts={
            **_live_counts(session, actor, open_states, now),
            "alerts": summary.open_count,
        },
        headline=headline,
        charts={
            "trend": _trend_chart(by_day, window_start.date()),
            "categories": _category_chart(by_category),
            "towns": _town_chart(towns),
        },
        towns=towns,
        hot_issues=list(issues.top(session, actor, limit=5)),
        alerts=list(summary.latest),
    )
