"""Excel export of an order list: every row the caller may see under the list's filters.

Rows are read through ``repository.list_orders`` (so jurisdiction and filters are exactly
the list's) in pages of ``PAGE_SIZE`` and written with openpyxl's write-only workbook, so
memory stays flat. Phone numbers are masked as on screen; times are Beijing time. A bulk
export moves personal data, so each one is an audit row (``hotline.export``) with the
filter and the row count. Cells are always written as text: a citizen's "=HYPERLINK(...)"
stays words, never a formula.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.casework.definitions import Workflow
from zhengshu.casework.models import Case
from zhengshu.kernel import audit
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.db import transaction
from zhengshu.kernel.errors import InvalidInput
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.enums import (
    CHANNEL_LABELS,
    REQUEST_TYPE_LABELS,
    Channel,
    RequestType,
    Urgency,
)
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import OrderFilters
from zhengshu.modules.hotline.views import mask_phone

PAGE_SIZE = 500
MAX_ROWS = 50_000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# (header, column width in characters)
COLUMNS: list[tuple[str, int]] = [
    ("工单编号", 20),
    ("受理时间", 20),
    ("渠道", 10),
    ("诉求类型", 10),
    ("分类", 12),
    ("紧急程度", 10),
    ("标题", 40),
    ("诉求人", 14),
    ("联系电话", 16),
    ("地址", 40),
    ("状态", 14),
    ("主办单位", 24),
    ("办理时限", 26),
    ("预警", 8),
    ("办结时间", 20),
]
HEADER = [name for name, _ in COLUMNS]
WARNING_LABELS = {"none": "正常", "yellow": "黄灯", "red": "红灯"}

# Characters an XML 1.0 document cannot hold (openpyxl refuses them): dropped.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Export:
    content: bytes
    rows: int


def beijing(value: datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime(TIME_FORMAT) if value else ""


def _label(mapping: dict[Any, str], enum: type[Any], value: str | None) -> str:
    if not value:
        return ""
    try:
        return mapping[enum(value)]
    except (ValueError, KeyError):
        return value


def row_values(case: Case, order: Order, lead_name: str | None, workflow: Workflow) -> list[str]:
    """One order as the export's cells, in ``HEADER`` order."""
    category = categories().get(case.category or "")
    try:
        status = workflow.state(case.status).label
    except KeyError:
        status = case.status
    due = beijing(case.due_at)
    if due and case.due_provisional:
        due += "（暂定）"
    try:
        urgency = Urgency(case.urgency).label
    except ValueError:
        urgency = case.urgency
    return [
        case.number,
        beijing(case.created_at),
        _label(CHANNEL_LABELS, Channel, order.channel),
        _label(REQUEST_TYPE_LABELS, RequestType, case.request_type),
        category.name if category else (case.category or ""),
        urgency,
        case.title,
        order.requester_name,
        mask_phone(order.requester_phone),
        order.address or "",
        status,
        lead_name or "",
        due,
        WARNING_LABELS.get(case.warning_level, case.warning_level),
        beijing(case.closed_at),
    ]


def _text_cell(sheet: Any, value: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=_ILLEGAL.sub("", value))
    cell.data_type = "s"  # never a formula, whatever the text starts with
    return cell


def export_orders(
    session: Session, actor: Principal, filters: OrderFilters, *, workflow: Workflow
) -> Export:
    """The workbook of every order ``actor`` may see under ``filters``, newest first.

    ``hotline:order:read``. Refuses (400) when more than ``MAX_ROWS`` orders match, rather
    than hand over a partial list that looks complete. Writes nothing: the caller audits
    (see ``audit_export``)."""
    actor.require("hotline:order:read")
    rows, total = repository.list_orders(session, actor, filters, limit=PAGE_SIZE, offset=0)
    if total > MAX_ROWS:
        raise InvalidInput(
            f"符合条件的工单共 {total} 条，超过单次导出上限 {MAX_ROWS} 条，"
            "请缩小筛选范围（如按受理时间分段）后再导出",
            f"{total} orders match; an export holds at most {MAX_ROWS}: narrow the filters",
            code="export_too_large",
            details={"total": total, "max_rows": MAX_ROWS},
        )
    book = Workbook(write_only=True)
    sheet = book.create_sheet("工单")
    sheet.freeze_panes = "A2"
    for index, (_, width) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.append([_text_cell(sheet, name) for name in HEADER])
    # Offset pages can shift when orders arrive during the export: an order seen on one
    # page may show again on the next, so each is written once.
    seen: set[uuid.UUID] = set()
    offset = 0
    while rows and len(seen) < MAX_ROWS:
        for case, order, lead_name in rows:
            if case.id in seen or len(seen) >= MAX_ROWS:
                continue
            seen.add(case.id)
            sheet.append(
                [_text_cell(sheet, v) for v in row_values(case, order, lead_name, workflow)]
            )
        if len(rows) < PAGE_SIZE:
            break
        offset += PAGE_SIZE
        rows, _ = repository.list_orders(session, actor, filters, limit=PAGE_SIZE, offset=offset)
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(seen) + 1}"
    buffer = io.BytesIO()
    book.save(buffer)
    return Export(content=buffer.getvalue(), rows=len(seen))


def audit_export(
    factory: sessionmaker[Session], actor: Principal, filters: OrderFilters, rows: int
) -> None:
    """Record the export (``hotline.export``) in its own short write transaction.

    The export itself only reads, in the request's read transaction; on SQLite a read
    transaction that later writes can fail when another writer committed meanwhile, and
    a write transaction held through a long export would block every other writer."""
    with transaction(factory) as session:
        audit.record(
            session,
            actor,
            "hotline.export",
            entity_type="order_export",
            after={
                "format": "xlsx",
                "filters": filters.model_dump(mode="json", exclude_none=True),
                "rows": rows,
            },
        )


def filename(now: datetime) -> str:
    return f"工单导出-{now.astimezone(SHANGHAI):%Y%m%d-%H%M%S}.xlsx"
