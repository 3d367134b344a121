"""KPIs over HTTP (指标): the report by unit, town, category, channel or period,
with its formulas and drill-down.

- ``GET /api/v1/reports/kpi?month=2026-11&by=unit`` (or ``start``/``end``: local dates,
  both inclusive): definitions, rows and total.
- ``GET /api/v1/reports/kpi/orders?kpi=...&part=numerator|denominator&month=...&by=...
  &group=<row key>``: the orders behind one figure.
- ``/hotline/reports/kpi``: the page (form, table, formulas, links to the drill-down).

Everything needs ``hotline:report:read`` and is narrowed to the caller's jurisdiction
(``reports.kpi``); bad periods and groupings are 400s in Chinese and English.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from zhengshu.kernel import clock
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import InvalidInput
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.enums import CHANNEL_LABELS
from zhengshu.modules.hotline.reports import kpi
from zhengshu.org.deps import DB, Actor
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

api = APIRouter(prefix="/api/v1", tags=["指标 KPIs"])
pages = APIRouter(include_in_schema=False)


class KpiDefinitionRead(BaseModel):
    key: str
    label: str
    kind: str
    formula: str
    numerator: str | None
    denominator: str | None
    unit: str


class KpiValueRead(BaseModel):
    key: str
    numerator: int | None
    denominator: int | None
    value: float | None
    median: float | None
    p90: float | None


class KpiRowRead(BaseModel):
    key: str | None
    label: str
    orders: int
    values: dict[str, KpiValueRead]


class KpiReportRead(BaseModel):
    start: datetime
    end: datetime
    by: str | None
    definitions: list[KpiDefinitionRead]
    rows: list[KpiRowRead]
    total: KpiRowRead


class KpiOrderRead(BaseModel):
    id: uuid.UUID
    number: str
    title: str | None
    registered_at: datetime
    status: str
    category: str | None
    channel: str
    lead_unit: str | None
    town: str | None


class KpiOrdersRead(BaseModel):
    kpi: str
    label: str
    part: str
    formula: str
    total: int
    items: list[KpiOrderRead]


def period(month: str | None, start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """``month`` (YYYY-MM) or local dates ``start``..``end`` (inclusive) as UTC bounds."""
    if month is not None:
        if start is not None or end is not None:
            raise InvalidInput(
                "请只指定月份，或只指定起止日期",
                "give either month or start/end, not both",
                code="bad_period",
            )
        return kpi.month_bounds(month)
    if start is None or end is None:
        raise InvalidInput(
            "请指定月份（YYYY-MM）或起止日期",
            "give month (YYYY-MM) or both start and end dates",
            code="bad_period",
        )
    return kpi.day_bounds(start, end)


def _row(row: kpi.KpiRow) -> KpiRowRead:
    return KpiRowRead(
        key=row.key,
        label=row.label,
        orders=row.orders,
        values={k: KpiValueRead(**vars(v)) for k, v in row.values.items()},
    )


def _report(report: kpi.KpiReport) -> KpiReportRead:
    return KpiReportRead(
        start=report.start,
        end=report.end,
        by=report.by,
        definitions=[KpiDefinitionRead(**vars(d)) for d in report.definitions],
        rows=[_row(r) for r in report.rows],
        total=_row(report.total),
    )


Month = Annotated[str | None, Query(max_length=20, description="YYYY-MM（北京时间的自然月）")]
Day = Annotated[date | None, Query(description="本地日期，含当日")]
By = Annotated[
    str | None,
    Query(max_length=20, description="unit | town | category | channel | day | week | month"),
]


@api.get("/reports/kpi", response_model=KpiReportRead)
def kpi_report(
    db: DB,
    actor: Actor,
    month: Month = None,
    start: Day = None,
    end: Day = None,
    by: By = None,
    unit_id: uuid.UUID | None = None,
) -> KpiReportRead:
    """Every KPI of the period, grouped ``by``, with numerators, denominators and
    formulas (``hotline:report:read``; narrowed to the caller's jurisdiction)."""
    actor.require(kpi.PERMISSION)
    first, last = period(month, start, end)
    return _report(kpi.compute(db, actor, start=first, end=last, by=by, unit_id=unit_id))


@api.get("/reports/kpi/orders", response_model=KpiOrdersRead)
def kpi_orders(
    db: DB,
    actor: Actor,
    kpi_key: Annotated[str, Query(alias="kpi", max_length=60)],
    part: Annotated[str, Query(max_length=20)] = "numerator",
    month: Month = None,
    start: Day = None,
    end: Day = None,
    by: By = None,
    group: Annotated[str | None, Query(max_length=60)] = None,
    unit_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> KpiOrdersRead:
    """The orders counted in one figure: a KPI's ``numerator`` or ``denominator`` for the
    period, and a row ``group`` (a row's ``key``) of grouping ``by``. Newest first."""
    actor.require(kpi.PERMISSION)
    first, last = period(month, start, end)
    page = kpi.orders(
        db,
        actor,
        kpi=kpi_key,
        part=part,
        start=first,
        end=last,
        by=by,
        group=group,
        unit_id=unit_id,
        limit=limit,
        offset=offset,
    )
    return KpiOrdersRead(
        kpi=page.kpi.key,
        label=page.kpi.label,
        part=page.part,
        formula=page.kpi.formula,
        total=page.total,
        items=[
            KpiOrderRead(
                id=o.case_id,
                number=o.number,
                title=o.title,
                registered_at=o.registered_at,
                status=o.status,
                category=o.category,
                channel=o.channel,
                lead_unit=o.lead_unit,
                town=o.town,
            )
            for o in page.items
        ],
    )


# --- pages -------------------------------------------------------------------------------


def _this_month() -> str:
    return f"{clock.now().astimezone(SHANGHAI):%Y-%m}"


def _page(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    return render(
        request,
        "hotline/kpi.html",
        {
            "title": "指标",
            "groupings": kpi.GROUPING_LABELS,
            "definitions": kpi.definitions(),
            "report": None,
            "found": None,
            "error": None,
            **context,
        },
        status_code=status_code,
    )


@pages.get("/hotline/reports/kpi")
def kpi_page(
    request: Request,
    db: DB,
    actor: PageActor,
    month: Annotated[str | None, Query(max_length=20)] = None,
    by: Annotated[str | None, Query(max_length=20)] = "unit",
) -> Response:
    """The KPI table of a month: one row per group, every figure as numerator /
    denominator linking to its orders, the formulas in a legend."""
    actor.require(kpi.PERMISSION)
    month = (month or "").strip() or _this_month()
    by = by or None

    def drill(key: str, part: str, group: str | None) -> str:
        params: dict[str, Any] = {"kpi": key, "part": part, "month": month}
        if by and group is not None:
            params.update(by=by, group=group)
        return "/hotline/reports/kpi/orders?" + urlencode(params)

    context: dict[str, Any] = {"month": month, "by": by, "drill": drill}
    try:
        start, end = kpi.month_bounds(month)
        report = kpi.compute(db, actor, start=start, end=end, by=by)
    except InvalidInput as exc:
        return _page(request, {**context, "error": exc.message_zh}, 400)
    return _page(request, {**context, "report": report})


@pages.get("/hotline/reports/kpi/orders")
def kpi_orders_page(
    request: Request,
    db: DB,
    actor: PageActor,
    kpi_key: Annotated[str, Query(alias="kpi", max_length=60)] = "",
    part: Annotated[str, Query(max_length=20)] = "numerator",
    month: Annotated[str, Query(max_length=20)] = "",
    by: Annotated[str | None, Query(max_length=20)] = None,
    group: Annotated[str | None, Query(max_length=60)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The orders behind one figure of the KPI page, 50 a page."""
    actor.require(kpi.PERMISSION)
    size = 50
    context: dict[str, Any] = {"month": month, "by": by, "group": group, "page": page}
    try:
        start, end = kpi.month_bounds(month)
        found = kpi.orders(
            db,
            actor,
            kpi=kpi_key,
            part=part,
            start=start,
            end=end,
            by=by or None,
            group=group or None,
            limit=size,
            offset=(page - 1) * size,
        )
    except InvalidInput as exc:
        return _page(request, {**context, "error": exc.message_zh}, 400)
    params = {"kpi": kpi_key, "part": part, "month": month, "by": by, "group": group}
    return _page(
        request,
        {
            **context,
            "title": f"{found.kpi.label}：工单明细",
            "found": found,
            "category_names": {code: c.name for code, c in categories().items()},
            "channel_labels": {str(c.value): label for c, label in CHANNEL_LABELS.items()},
            "pages": max(1, -(-found.total // size)),
            "query": urlencode({k: v for k, v in params.items() if v}),
        },
    )
