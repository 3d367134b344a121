"""A handling notice as an Excel workbook: sheets 概况, 单位排名, 超期工单, 重办工单, 满意度.

Numbers are numbers and rates are fractions shown as percentages (``0.00%``), so the
sheets can be summed and charted; a change of a rate is in percentage points. Times are
Beijing time, written as Excel times. Text from citizens (titles, notes) is written as a
string cell, never a formula.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.modules.hotline.reports.notice import Notice, late_label

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PERCENT = "0.00%"
POINTS = "+0.00;-0.00;0.00"
COUNT = "#,##0"
TIME = "yyyy-mm-dd hh:mm"

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="2F5597")
_THIN = Side(style="thin", color="A6A6A6")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP = Alignment(wrap_text=True, vertical="top")


def _frac(percent: float | None) -> float | None:
    return None if percent is None else round(percent / 100, 6)


def _local(value: datetime | None) -> datetime | None:
    # Excel has no time zones: write the Beijing wall-clock time.
    return None if value is None else value.astimezone(SHANGHAI).replace(tzinfo=None)


def _safe(value: Any) -> Any:
    """A string that would read as a formula stays text."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
        return "'" + value
    return value


def _table(
    ws: Worksheet,
    first_row: int,
    columns: Sequence[tuple[str, float, str | None]],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Headers (name, width, number format) at ``first_row`` and the rows below them."""
    for col, (name, width, _) in enumerate(columns, start=1):
        head = ws.cell(row=first_row, column=col, value=name)
        head.font, head.fill, head.border = _HEADER_FONT, _HEADER_FILL, _BORDER
        head.alignment = Alignment(horizontal="center", vertical="center")
        letter = get_column_letter(col)
        ws.column_dimensions[letter].width = max(ws.column_dimensions[letter].width or 0, width)
    for r, values in enumerate(rows, start=first_row + 1):
        for col, (value, (_, _, fmt)) in enumerate(zip(values, columns, strict=True), start=1):
            cell = ws.cell(row=r, column=col, value=_safe(value))
            cell.border = _BORDER
            if fmt:
                cell.number_format = fmt
            if isinstance(value, str):
                cell.alignment = _WRAP
    ws.freeze_panes = ws.cell(row=first_row + 1, column=1)
    if rows:
        last = get_column_letter(len(columns))
        ws.auto_filter.ref = f"A{first_row}:{last}{first_row + len(rows)}"


def render_xlsx(notice: Notice) -> bytes:
    """The notice as a workbook of five sheets."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "概况"
    ws["A1"] = notice.title
    ws["A1"].font = Font(bold=True, size=16, color="B22222")
    ws["A2"] = f"{notice.period.label} · {notice.scope_name}"
    ws["A3"] = "生成时间"
    ws["B3"] = _local(notice.generated_at)
    ws["B3"].number_format = TIME
    ws["B3"].alignment = Alignment(horizontal="left")
    row = 5
    for paragraph in notice.text:
        ws.cell(row=row, column=1, value=paragraph).alignment = _WRAP
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=6)
        ws.row_dimensions[row].height = 15 * (1 + len(paragraph) // 48)
        row += 1
    row += 1
    word = notice.period.previous_word
    _table(
        ws,
        row,
        [
            ("指标", 16, None),
            ("本期", 14, None),
            (word, 14, None),
            ("变化（件 / 百分点）", 20, POINTS),
            ("分子", 12, COUNT),
            ("分母", 12, COUNT),
        ],
        [],
    )
    for i, fig in enumerate(notice.figures, start=row + 1):
        is_rate = fig.unit == "%"
        fmt = PERCENT if is_rate else COUNT
        values = [
            fig.label,
            _frac(fig.value) if is_rate else fig.value,
            _frac(fig.previous) if is_rate else fig.previous,
            fig.change,
            fig.numerator,
            fig.denominator,
        ]
        for col, value in enumerate(values, start=1):
            cell = ws.cell(row=i, column=col, value=value)
            cell.border = _BORDER
            if col in (2, 3):
                cell.number_format = fmt
            elif col == 4:
                cell.number_format = POINTS if is_rate else "+#,##0;-#,##0;0"
            elif col > 4:
                cell.number_format = COUNT
    ws.freeze_panes = None
    ws.column_dimensions["A"].width = 18

    rank = wb.create_sheet("单位排名")
    rank["A1"] = f"排名方法：{notice.ranking_method}"
    _table(
        rank,
        3,
        [
            ("排名", 8, None),
            ("单位", 28, None),
            ("受理量", 10, COUNT),
            ("按时办结率", 14, PERCENT),
            ("满意率", 12, PERCENT),
            ("解决率", 12, PERCENT),
            ("综合得分", 12, "0.00"),
            ("备注", 16, None),
        ],
        [
            [
                u.rank,
                u.name,
                u.orders,
                _frac(u.on_time_closure_rate),
                _frac(u.satisfaction_rate),
                _frac(u.resolution_rate),
                u.score,
                "排名靠后" if u in notice.bottom else None,
            ]
            for u in notice.ranking
        ]
        + [
            [None, u.name, u.orders, None, None, None, None, "暂无可评价工单"]
            for u in notice.unranked
        ],
    )

    over = wb.create_sheet("超期工单")
    _table(
        over,
        1,
        [
            ("工单编号", 20, None),
            ("标题", 40, None),
            ("承办单位", 18, None),
            ("超期环节", 10, None),
            ("时限", 18, TIME),
            ("亮红灯时间", 18, TIME),
            ("完成该环节时间", 18, TIME),
            ("超期分钟", 12, COUNT),
            ("超期时长", 14, None),
        ],
        [
            [
                o.number,
                o.title,
                o.unit,
                o.stage,
                _local(o.due_at),
                _local(o.overdue_at),
                _local(o.done_at),
                o.late_minutes,
                late_label(o.late_minutes) + ("" if o.done_at else "（仍超期）"),
            ]
            for o in notice.overdue
        ],
    )

    rework = wb.create_sheet("重办工单")
    _table(
        rework,
        1,
        [
            ("工单编号", 20, None),
            ("标题", 40, None),
            ("承办单位", 18, None),
            ("重办时间", 18, TIME),
            ("回访评价", 12, None),
            ("是否解决", 10, None),
            ("重办次数", 10, COUNT),
            ("重办原因", 40, None),
        ],
        [
            [
                r.number,
                r.title,
                r.unit,
                _local(r.reworked_at),
                r.satisfaction,
                None if r.solved is None else ("是" if r.solved else "否"),
                r.rework_count,
                r.reason,
            ]
            for r in notice.reworked
        ],
    )

    sat = wb.create_sheet("满意度")
    _table(
        sat,
        1,
        [("评价", 14, None), ("件数", 10, COUNT), ("占比", 10, PERCENT)],
        [[lvl.label, lvl.count, _frac(lvl.share)] for lvl in notice.satisfaction],
    )
    total_row = len(notice.satisfaction) + 2
    sat.cell(row=total_row, column=1, value="合计").font = Font(bold=True)
    sat.cell(row=total_row, column=2, value=notice.satisfaction_total).number_format = COUNT

    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
