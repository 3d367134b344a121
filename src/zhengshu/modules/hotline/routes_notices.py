"""Handling notices (办理情况通报) over HTTP: web page, Excel and PDF.

API: ``GET /api/v1/notices?period=2026-11&unit_id=...`` (JSON), ``/api/v1/notices.xlsx``
and ``/api/v1/notices.pdf`` (downloads named in Chinese, RFC 5987 ``filename*``).
Pages: ``/hotline/notices`` (choose a period and a unit) and
``/hotline/notices/view?period=...&unit=...`` with its ``.xlsx`` / ``.pdf`` downloads.
Everything needs ``hotline:report:read``; the unit must lie in the reader's jurisdiction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.errors import InvalidInput
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.attachments import content_disposition
from zhengshu.modules.hotline.reports import notice_excel, notice_pdf
from zhengshu.modules.hotline.reports.notice import (
    Notice,
    build_notice,
    current_period,
    late_label,
    recent_periods,
)
from zhengshu.org import repository as org_repository
from zhengshu.org.deps import DB, Actor
from zhengshu.org.roles import TOWN_LEVEL, UnitKind
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

api = APIRouter(prefix="/api/v1", tags=["通报 notices"])
pages = APIRouter(include_in_schema=False)


# --- schemas -------------------------------------------------------------------------------


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PeriodRead(_Read):
    key: str
    kind: str
    label: str
    start: datetime
    end: datetime


class FigureRead(_Read):
    key: str
    label: str
    unit: str
    value: float | None
    previous: float | None
    change: float | None
    numerator: int | None
    denominator: int | None


class RankedUnitRead(_Read):
    rank: int | None
    unit_id: str | None
    name: str
    orders: int
    on_time_closure_rate: float | None
    satisfaction_rate: float | None
    resolution_rate: float | None
    score: float | None


class OverdueRead(_Read):
    case_id: uuid.UUID
    number: str
    title: str
    unit: str | None
    stage: str
    due_at: datetime
    overdue_at: datetime
    done_at: datetime | None
    late_minutes: int


class ReworkRead(_Read):
    case_id: uuid.UUID
    number: str
    title: str
    unit: str | None
    reworked_at: datetime
    satisfaction: str | None
    solved: bool | None
    rework_count: int
    reason: str | None


class SatisfactionRead(_Read):
    key: str
    label: str
    count: int
    share: float | None


class CityRank(BaseModel):
    rank: int
    units: int


class NoticeRead(_Read):
    """A handling notice. Rates are in percent (0-100); a rate's ``change`` is in
    percentage points, the orders' in orders."""

    title: str
    period: PeriodRead
    previous: PeriodRead
    scope_unit_id: uuid.UUID | None
    scope_name: str
    generated_at: datetime
    figures: list[FigureRead]
    ranking_method: str
    ranking: list[RankedUnitRead]
    unranked: list[RankedUnitRead]
    bottom: list[RankedUnitRead]
    city_rank: CityRank | None
    overdue: list[OverdueRead]
    overdue_total: int
    reworked: list[ReworkRead]
    reworked_total: int
    satisfaction: list[SatisfactionRead]
    satisfaction_total: int
    text: list[str]


def notice_read(notice: Notice) -> NoticeRead:
    data: dict[str, Any] = {
        name: getattr(notice, name) for name in NoticeRead.model_fields if name != "city_rank"
    }
    if notice.city_rank is not None:
        data["city_rank"] = CityRank(rank=notice.city_rank[0], units=notice.city_rank[1])
    else:
        data["city_rank"] = None
    return NoticeRead.model_validate(data)


# --- downloads -----------------------------------------------------------------------------


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": content_disposition(filename),
            "Cache-Control": "private, no-store",
        },
    )


def xlsx_response(notice: Notice) -> Response:
    return _download(
        notice_excel.render_xlsx(notice), notice_excel.MEDIA_TYPE, f"{notice.file_stem}.xlsx"
    )


def pdf_response(notice: Notice) -> Response:
    return _download(
        notice_pdf.render_pdf(notice), notice_pdf.MEDIA_TYPE, f"{notice.file_stem}.pdf"
    )


def _binary_doc(media_type: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            "description": "下载文件",
        }
    }


PeriodParam = Annotated[
    str, Query(description="月份 2026-11 或 ISO 周 2026-W47", examples=["2026-11"])
]
UnitParam = Annotated[uuid.UUID | None, Query(description="单位；不填为全市（或本单位）")]


# --- API -----------------------------------------------------------------------------------


@api.get("/notices", response_model=NoticeRead)
def get_notice(db: DB, actor: Actor, period: PeriodParam, unit_id: UnitParam = None) -> NoticeRead:
    """The handling notice of a month or an ISO week, city-wide or for one unit
    (``hotline:report:read``; a unit's reader gets their own unit's)."""
    return notice_read(build_notice(db, actor, period=period, unit_id=unit_id))


@api.get("/notices.xlsx", response_class=Response, responses=_binary_doc(notice_excel.MEDIA_TYPE))
def get_notice_xlsx(
    db: DB, actor: Actor, period: PeriodParam, unit_id: UnitParam = None
) -> Response:
    """The notice as an Excel workbook (概况, 单位排名, 超期工单, 重办工单, 满意度)."""
    return xlsx_response(build_notice(db, actor, period=period, unit_id=unit_id))


@api.get("/notices.pdf", response_class=Response, responses=_binary_doc(notice_pdf.MEDIA_TYPE))
def get_notice_pdf(
    db: DB, actor: Actor, period: PeriodParam, unit_id: UnitParam = None
) -> Response:
    """The notice as a PDF document with an embedded Chinese font."""
    return pdf_response(build_notice(db, actor, period=period, unit_id=unit_id))


# --- pages ---------------------------------------------------------------------------------


def _unit_param(raw: str | None) -> uuid.UUID | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise InvalidInput("单位选择无效", "bad unit", code="bad_unit") from exc


def _choices(db: DB, actor: Principal) -> list[Any]:
    """Units a reader may pick: the scope itself, then the towns and departments in it."""
    units = [u for u in org_repository.all_units(db, actor) if u.active]
    if repository.is_city_wide(actor):
        return [
            u
            for u in units
            if u.parent_id is not None
            and (UnitKind(u.kind) in TOWN_LEVEL or UnitKind(u.kind) is UnitKind.DEPARTMENT)
            and u.depth <= 1
        ]
    return units[:200]


@pages.get("/hotline/notices")
def notices_page(request: Request, db: DB, actor: PageActor, unit: str | None = None) -> Response:
    actor.require("hotline:report:read")
    unit_id = _unit_param(unit)
    now = clock.now()
    return render(
        request,
        "hotline/notices.html",
        {
            "title": "办理情况通报",
            "periods": recent_periods(now),
            "default_period": current_period("month", now).previous().key,
            "units": _choices(db, actor),
            "city_wide": repository.is_city_wide(actor),
            "unit": str(unit_id) if unit_id else "",
        },
    )


def _page_notice(db: DB, actor: Principal, period: str | None, unit: str | None) -> Notice:
    actor.require("hotline:report:read")
    return build_notice(db, actor, period=period or "", unit_id=_unit_param(unit))


@pages.get("/hotline/notices/view")
def notice_page(
    request: Request, db: DB, actor: PageActor, period: str | None = None, unit: str | None = None
) -> Response:
    if not (period or "").strip():
        period = current_period("month").previous().key
    notice = _page_notice(db, actor, period, unit)
    query = f"period={notice.period.key}" + (
        f"&unit={notice.scope_unit_id}" if notice.scope_unit_id else ""
    )
    return render(
        request,
        "hotline/notice.html",
        {
            "title": f"{notice.title} {notice.period.label}",
            "notice": notice,
            "late_label": late_label,
            "query": query,
        },
    )


@pages.get("/hotline/notices/view.xlsx")
def notice_page_xlsx(
    db: DB, actor: PageActor, period: str | None = None, unit: str | None = None
) -> Response:
    return xlsx_response(_page_notice(db, actor, period, unit))


@pages.get("/hotline/notices/view.pdf")
def notice_page_pdf(
    db: DB, actor: PageActor, period: str | None = None, unit: str | None = None
) -> Response:
    return pdf_response(_page_notice(db, actor, period, unit))
