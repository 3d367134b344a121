"""Handling notices (办理情况通报) on a small history driven through the real API.

The history (Beijing time, clock frozen and moved by hand; 2 November 2026 is a Monday,
no holiday in November):

- E, 28 Oct 09:00: 东城街道, closed at once, 满意 (the previous period, October).
- A, B, 2 Nov 09:00: 东城街道, closed at once: 非常满意, 满意.
- D, 2 Nov 09:00: 石碣镇, signed for at 09:00: handling due 5 working days from the
  next day (3, 4, 5, 6, 9 Nov) at 17:30 on Mon 9 Nov. The sweep at 09:00 on Tue 10 Nov
  turns it red (overdue). Replied at 10:00 on 10 Nov: 16 h 30 min late (990 minutes);
  called back 基本满意, solved: closed, not on time.
- C, 11 Nov 09:00: 石碣镇, replied, called back 不满意 and not solved: reworked, back
  in handling (not closed).

November, by hand: 4 orders (A, B, C, D), all dispatched; closed (reply standing) A, B,
D = 3 -> 办结率 75%; on time A, B -> 按时办结率 2/3 = 66.67%; called back 4, solved A,
B, D -> 解决率 75%, satisfied A, B, D -> 满意率 75%. October: 1 order, every rate 100%.
Units: 东城 on-time 2/2, satisfied 2/2 -> score 100; 石碣 on-time 0/1, satisfied 1/2 ->
0.6 x 0 + 0.4 x 50 = 20. Ranking 东城, 石碣; the bottom: 石碣 (at most half of 2).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import actor, frozen_at, unit_id
from tests.modules.hotline.test_transitions import DONGCHENG, SHIJIE, Api, Desk
from tests.web.helpers import login
from zhengshu.casework.engine import sweep
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.errors import InvalidInput, NotFound, PermissionDenied
from zhengshu.modules.hotline.reports import facts, kpi, notice_excel, notice_pdf
from zhengshu.modules.hotline.reports.notice import (
    Notice,
    OverdueOrder,
    ReworkedOrder,
    SatisfactionLevel,
    bottom_of,
    build_notice,
    headline,
    late_label,
    parse_period,
    rank_units,
    with_text,
)


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


# --- periods ----------------------------------------------------------------------------------


def test_a_month_is_its_beijing_days() -> None:
    p = parse_period("2026-11")
    assert (p.kind, p.label) == ("month", "2026年11月")
    assert p.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert p.previous().key == "2026-10"
    assert parse_period("2026-01").previous().key == "2025-12"


def test_an_iso_week() -> None:
    p = parse_period("2026-W47")
    assert p.label == "2026年第47周（11月16日至11月22日）"
    assert p.start == bj(2026, 11, 16).astimezone(UTC)
    assert p.end == bj(2026, 11, 23).astimezone(UTC)
    assert p.previous().key == "2026-W46"
    assert parse_period("2026-W01").previous().key == "2025-W52"
    assert parse_period("2026-w53").key == "2026-W53"  # 2026 has 53 ISO weeks


@pytest.mark.parametrize(
    "text", ["", "2026", "2026-13", "2026-00", "2025-W53", "2026-W00", "26-11", "2026-11-01", "x"]
)
def test_a_bad_period_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_period(text)
    assert caught.value.code == "bad_period"
    assert "2026-W47" in caught.value.message_zh
    assert "2026-W47" in caught.value.message_en


# --- ranking and text on hand-made reports ---------------------------------------------------


def _value(key: str, n: int, d: int) -> kpi.KpiValue:
    return kpi.KpiValue(key=key, numerator=n, denominator=d, value=n / d if d else None)


def _row(
    key: str | None, label: str, orders: int, on_time: tuple[int, int], sat: tuple[int, int]
) -> kpi.KpiRow:
    return kpi.KpiRow(
        key=key,
        label=label,
        orders=orders,
        values={
            "on_time_closure_rate": _value("on_time_closure_rate", *on_time),
            "satisfaction_rate": _value("satisfaction_rate", *sat),
            "resolution_rate": _value("resolution_rate", *sat),
            "closure_rate": _value("closure_rate", on_time[1], orders),
            "rework_rate": _value("rework_rate", 0, orders),
        },
    )


def test_units_rank_by_the_composite_score() -> None:
    rows = [
        _row("a", "甲", 10, (9, 10), (8, 10)),  # 0.6*90 + 0.4*80 = 86
        _row("b", "乙", 20, (10, 10), (13, 20)),  # 60 + 26 = 86: same score, more orders
        _row("c", "丙", 5, (0, 0), (5, 5)),  # only satisfaction: 100
        _row("d", "丁", 8, (4, 8), (4, 8)),  # 50
        _row("e", "戊", 3, (0, 0), (0, 0)),  # nothing to score
    ]
    ranked, unranked = rank_units(rows)
    assert [(u.name, u.rank, u.score) for u in ranked] == [
        ("丙", 1, 100.0),
        ("乙", 2, 86.0),
        ("甲", 2, 86.0),
        ("丁", 4, 50.0),
    ]
    assert [u.name for u in unranked] == ["戊"]
    assert [u.name for u in bottom_of(ranked)] == ["甲", "丁"]  # at most half of 4
    assert bottom_of(ranked[:1]) == []


def sample_notice() -> Notice:
    """A hand-made city notice (the renderings' tests)."""
    period = parse_period("2026-11")
    rows = [
        _row(str(uuid.uuid4()), "东城街道", 120, (110, 118), (95, 100)),
        _row(str(uuid.uuid4()), "石碣镇", 80, (60, 78), (60, 70)),
        _row(str(uuid.uuid4()), "住建局", 60, (58, 58), (40, 41)),
    ]
    ranked, unranked = rank_units(rows)
    overdue = OverdueOrder(
        case_id=uuid.uuid4(),
        number="GD20261103000012",
        title='=HYPERLINK("x") 小区电动车楼道充电',
        unit="东城街道",
        stage="办理",
        due_at=bj(2026, 11, 10, 17, 30),
        overdue_at=bj(2026, 11, 10, 17, 31),
        done_at=None,
        late_minutes=3000,
    )
    rework = ReworkedOrder(
        case_id=uuid.uuid4(),
        number="GD20261105000031",
        title="道路积水",
        unit="石碣镇",
        reworked_at=bj(2026, 11, 12, 11),
        satisfaction="不满意",
        solved=False,
        rework_count=1,
        reason="积水仍未排除",
    )
    levels = [
        SatisfactionLevel("very_satisfied", "非常满意", 3, 60.0),
        SatisfactionLevel("satisfied", "满意", 1, 20.0),
        SatisfactionLevel("basically_satisfied", "基本满意", 0, 0.0),
        SatisfactionLevel("dissatisfied", "不满意", 1, 20.0),
        SatisfactionLevel("very_dissatisfied", "非常不满意", 0, 0.0),
    ]
    return with_text(
        Notice(
            title="东莞市12345热线办理情况通报",
            period=period,
            previous=period.previous(),
            scope_unit_id=None,
            scope_name="全市",
            generated_at=bj(2026, 12, 1, 9),
            figures=headline(
                _row(None, "合计", 260, (228, 254), (195, 211)),
                _row(None, "合计", 240, (200, 236), (180, 200)),
                [],
            ),
            ranking_method="综合得分",
            ranking=ranked,
            unranked=unranked,
            bottom=bottom_of(ranked),
            city_rank=None,
            overdue=[overdue],
            overdue_total=1,
            reworked=[rework],
            reworked_total=1,
            satisfaction=levels,
            satisfaction_total=5,
            text=[],
        )
    )


def test_the_text_reads_like_a_notice() -> None:
    text = sample_notice().text
    assert text[0].startswith("2026年11月，全市12345热线共受理工单260件，较上月增加20件；")
    # 228/254 = 89.76%, 200/236 = 84.75%: +5.0 points.
    assert "按时办结率89.8%，较上月上升5.0个百分点" in text[0]
    assert "满意率92.4%，较上月上升2.4个百分点" in text[0]  # 195/211 vs 180/200
    assert text[1] == (
        "本期发生超期1件次，重办1件次；回访评价5件，其中非常满意3件、满意1件、不满意1件。"
    )
    assert "住建局、东城街道、石碣镇位居前三名；石碣镇排名靠后" in text[2]


def test_late_label() -> None:
    assert [late_label(m) for m in (40, 60, 990, 1440, 3000)] == [
        "40分钟",
        "1小时",
        "16小时30分钟",
        "1天",
        "2天2小时",
    ]


# --- renderings -------------------------------------------------------------------------------


def test_the_workbook_holds_the_figures_as_numbers() -> None:
    wb = openpyxl.load_workbook(io.BytesIO(notice_excel.render_xlsx(sample_notice())))
    assert wb.sheetnames == ["概况", "单位排名", "超期工单", "重办工单", "满意度"]
    summary = wb["概况"]
    assert summary["A1"].value == "东莞市12345热线办理情况通报"
    figures = {
        row[0].value: row for row in summary.iter_rows(min_row=1) if row[0].value and row[1].value
    }
    orders = figures["受理工单"]
    assert (orders[1].value, orders[2].value, orders[3].value) == (260, 240, 20)
    on_time = figures["按时办结率"]
    assert on_time[1].value == pytest.approx(0.8976)
    assert on_time[1].number_format == "0.00%"
    assert (on_time[4].value, on_time[5].value) == (228, 254)
    ranking = wb["单位排名"]
    assert [c.value for c in ranking[3]][:3] == ["排名", "单位", "受理量"]
    assert [c.value for c in ranking[4]][:3] == [1, "住建局", 60]
    assert ranking["D4"].value == 1.0
    assert ranking["D4"].number_format == "0.00%"
    assert ranking["H6"].value == "排名靠后"
    assert ranking.column_dimensions["B"].width == 28
    over = wb["超期工单"]
    assert over["A2"].value == "GD20261103000012"
    assert over["B2"].value.startswith("'=HYPERLINK")  # text, not a formula
    assert over["E2"].value == bj(2026, 11, 10, 17, 30).replace(tzinfo=None)  # wall clock
    assert over["H2"].value == 3000
    assert over["I2"].value == "2天2小时（仍超期）"
    assert wb["重办工单"]["H2"].value == "积水仍未排除"
    sat = wb["满意度"]
    assert [(sat.cell(r, 1).value, sat.cell(r, 2).value) for r in range(2, 8)] == [
        ("非常满意", 3),
        ("满意", 1),
        ("基本满意", 0),
        ("不满意", 1),
        ("非常不满意", 0),
        ("合计", 5),
    ]
    assert sat["C2"].value == 0.6
    assert sat["C2"].number_format == "0.00%"


needs_cjk_font = pytest.mark.skipif(
    notice_pdf.find_fonts() is None, reason="no Chinese font on this machine (fonts-noto-cjk)"
)


def _pdf_fonts(data: bytes) -> list[dict[str, Any]]:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    found = []
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            descendant = font["/DescendantFonts"][0].get_object()
            descriptor = descendant["/FontDescriptor"].get_object()
            found.append(
                {
                    "name": str(font["/BaseFont"]),
                    "embedded": any(
                        k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")
                    ),
                }
            )
    return found


def _pdf_text(data: bytes) -> str:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    # pypdf spaces out the glyphs of a CID font (and pads them with NULs): compare
    # without whitespace (PDFium extracts the same text plainly).
    return "".join("".join(p.extract_text().replace("\x00", "").split()) for p in reader.pages)


@needs_cjk_font
def test_the_pdf_embeds_a_chinese_font_and_holds_the_text() -> None:
    data = notice_pdf.render_pdf(sample_notice())
    assert data.startswith(b"%PDF-")
    fonts = _pdf_fonts(data)
    assert fonts
    assert all(f["embedded"] for f in fonts)
    assert any("CJK" in f["name"] or "Song" in f["name"] or "Hei" in f["name"] for f in fonts)
    text = _pdf_text(data)
    assert "东莞市12345热线办理情况通报" in text
    assert "（2026年11月·全市）" in text
    assert "2026年11月，全市12345热线共受理工单260件" in text
    for heading in ("一、总体情况", "二、单位排名", "三、超期工单", "四、重办工单", "五、满意度"):
        assert heading in text
    assert "GD20261103000012" in text
    assert "2天2小时（仍超期）" in text


@needs_cjk_font
def test_the_pdf_page_renders_chinese(tmp_path: Path) -> None:
    """Render the first page; the title band must hold dark glyph pixels (a missing font
    draws nothing or boxes: the screenshot kept by ``bench`` is looked at by a person)."""
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument(notice_pdf.render_pdf(sample_notice()))
    try:
        image = doc[0].render(scale=1).to_pil().convert("L")
    finally:
        doc.close()
    width, _ = image.size
    title_band = image.crop((0, 40, width, 90))
    dark = sum(title_band.histogram()[:160])  # pixels darker than mid-grey
    assert dark > 500
    image.save(tmp_path / "notice.png")


def test_without_a_chinese_font_the_pdf_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notice_pdf, "find_fonts", lambda: None)
    with pytest.raises(notice_pdf.FontMissing) as caught:
        notice_pdf.render_pdf(sample_notice())
    assert caught.value.status_code == 503


# --- the notice on a real history ---------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(bj(2026, 10, 28, 9))


@dataclass
class History:
    a: dict[str, Any]
    b: dict[str, Any]
    c: dict[str, Any]
    d: dict[str, Any]
    e: dict[str, Any]


def _closed(desk: Desk, unit: str, handler: str, level: str, **fields: object) -> dict[str, Any]:
    order = desk.new_order(**fields)
    order = desk.act("dispatcher", order, "dispatch", unit_id=desk.unit(unit))
    order = desk.act(handler, order, "sign_for")
    order = desk.act(handler, order, "reply", note="已处理。")
    return desk.act("callback", order, "callback", solved=True, satisfaction=level)


@pytest.fixture
def history(api: Api, db: Session, frozen: FrozenClock) -> History:
    desk = Desk(api, db)
    e = _closed(desk, DONGCHENG, "dc.handler", "satisfied")
    frozen.set(bj(2026, 11, 2, 9))
    a = _closed(desk, DONGCHENG, "dc.handler", "very_satisfied")
    b = _closed(desk, DONGCHENG, "dc.handler", "satisfied")
    d = desk.new_order(content="石碣镇某路段路灯不亮。")
    d = desk.act("dispatcher", d, "dispatch", unit_id=desk.unit(SHIJIE))
    d = desk.act("sj.handler", d, "sign_for")
    assert d["due_at"] == bj(2026, 11, 9, 17, 30).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    frozen.set(bj(2026, 11, 10, 9))
    db.expire_all()
    report = sweep(db, system_principal("测试巡检"), calendar=WorkCalendar())
    assert report.red == 1
    db.commit()
    frozen.set(bj(2026, 11, 10, 10))
    d = desk.act("sj.handler", d, "reply", note="已修复路灯。")
    d = desk.act("callback", d, "callback", solved=True, satisfaction="basically_satisfied")
    frozen.set(bj(2026, 11, 11, 9))
    c = desk.new_order(content="石碣镇某小区门口道路积水。")
    c = desk.act("dispatcher", c, "dispatch", unit_id=desk.unit(SHIJIE))
    c = desk.act("sj.handler", c, "sign_for")
    c = desk.act("sj.handler", c, "reply", note="已疏通。")
    c = desk.act(
        "callback", c, "callback", solved=False, satisfaction="dissatisfied", note="积水仍未排除"
    )
    assert c["status"] == "handling"
    db.expire_all()
    facts.refresh(db, full=True)
    db.commit()
    return History(a=a, b=b, c=c, d=d, e=e)


def test_the_city_notice_of_november(db: Session, history: History) -> None:
    notice = build_notice(db, actor(db, "supervisor"), period="2026-11")
    assert notice.city_wide
    assert notice.scope_name == "全市"
    figures = {f.key: (f.value, f.previous, f.change) for f in notice.figures}
    assert figures["orders"] == (4.0, 1.0, 3.0)
    assert figures["closure_rate"] == (75.0, 100.0, -25.0)
    assert figures["on_time_closure_rate"] == (66.67, 100.0, -33.33)
    assert figures["resolution_rate"] == (75.0, 100.0, -25.0)
    assert figures["satisfaction_rate"] == (75.0, 100.0, -25.0)
    on_time = notice.figure("on_time_closure_rate")
    assert on_time is not None
    assert (on_time.numerator, on_time.denominator) == (2, 3)

    assert [(u.name, u.rank, u.score) for u in notice.ranking] == [
        ("东城街道", 1, 100.0),
        ("石碣镇", 2, 20.0),
    ]
    assert [u.name for u in notice.bottom] == ["石碣镇"]

    assert notice.overdue_total == 1
    (late,) = notice.overdue
    assert (late.number, late.unit, late.stage) == (history.d["number"], "石碣镇", "办理")
    assert late.due_at == bj(2026, 11, 9, 17, 30)
    assert late.done_at == bj(2026, 11, 10, 10)
    assert late.late_minutes == 990

    assert notice.reworked_total == 1
    (rework,) = notice.reworked
    assert (rework.number, rework.unit, rework.satisfaction, rework.solved) == (
        history.c["number"],
        "石碣镇",
        "不满意",
        False,
    )
    assert (rework.rework_count, rework.reason) == (1, "积水仍未排除")

    assert [(s.label, s.count) for s in notice.satisfaction] == [
        ("非常满意", 1),
        ("满意", 1),
        ("基本满意", 1),
        ("不满意", 1),
        ("非常不满意", 0),
    ]
    assert notice.satisfaction_total == 4
    assert notice.text[0] == (
        "2026年11月，全市12345热线共受理工单4件，较上月增加3件；"
        "办结率75.0%，较上月下降25.0个百分点；按时办结率66.7%，较上月下降33.3个百分点；"
        "解决率75.0%，较上月下降25.0个百分点；满意率75.0%，较上月下降25.0个百分点。"
    )
    assert "东城街道、石碣镇位居前两名；石碣镇排名靠后" in notice.text[2]


def test_october_saw_nothing_late(db: Session, history: History) -> None:
    notice = build_notice(db, actor(db, "leader"), period="2026-10")
    assert notice.figure("orders") is not None
    assert notice.figures[0].value == 1.0
    assert (notice.overdue_total, notice.reworked_total) == (0, 0)
    assert [u.name for u in notice.ranking] == ["东城街道"]
    assert notice.bottom == []


def test_a_week_notice(db: Session, history: History) -> None:
    # ISO week 46: 9-15 November: the red light (10 Nov) and the rework (11 Nov); C only
    # was registered that week.
    notice = build_notice(db, actor(db, "supervisor"), period="2026-W46")
    assert notice.figures[0].value == 1.0
    assert (notice.overdue_total, notice.reworked_total) == (1, 1)
    assert "较上周" in notice.text[0]


def test_a_unit_leader_reads_their_own_unit(db: Session, history: History) -> None:
    leader = actor(db, "dc.leader")
    notice = build_notice(db, leader, period="2026-11")  # no unit: their own
    assert notice.scope_name == "东城街道"
    assert not notice.city_wide
    assert notice.figures[0].value == 2.0
    assert (notice.overdue_total, notice.reworked_total) == (0, 0)
    assert [(s.label, s.count) for s in notice.satisfaction][:2] == [("非常满意", 1), ("满意", 1)]
    assert notice.city_rank == (1, 2)
    assert [u.name for u in notice.ranking] == ["东城街道"]  # its own subtree only
    assert "东城街道共承办12345热线工单2件" in notice.text[0]
    shijie = uuid.UUID(desk_unit(db, SHIJIE))
    with pytest.raises(NotFound):
        build_notice(db, leader, period="2026-11", unit_id=shijie)
    with pytest.raises(PermissionDenied):
        build_notice(db, actor(db, "dc.handler"), period="2026-11")


def test_the_city_reads_a_unit_notice(db: Session, history: History) -> None:
    notice = build_notice(
        db, actor(db, "supervisor"), period="2026-11", unit_id=uuid.UUID(desk_unit(db, SHIJIE))
    )
    assert notice.scope_name == "石碣镇"
    assert notice.figures[0].value == 2.0
    assert [o.number for o in notice.overdue] == [history.d["number"]]
    assert notice.city_rank == (2, 2)


def desk_unit(db: Session, code: str) -> str:
    return str(unit_id(db, code))


# --- over HTTP ----------------------------------------------------------------------------


def test_the_api_gives_json_excel_and_pdf(api: Api, db: Session, history: History) -> None:
    client = api("supervisor")
    body = client.get("/api/v1/notices", params={"period": "2026-11"}).json()
    assert body["period"]["key"] == "2026-11"
    assert body["figures"][0] == {
        "key": "orders",
        "label": "受理工单",
        "unit": "件",
        "value": 4.0,
        "previous": 1.0,
        "change": 3.0,
        "numerator": None,
        "denominator": None,
    }
    assert [u["name"] for u in body["ranking"]] == ["东城街道", "石碣镇"]
    assert body["overdue"][0]["late_minutes"] == 990

    xlsx = client.get("/api/v1/notices.xlsx", params={"period": "2026-11"})
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"] == notice_excel.MEDIA_TYPE
    name = "全市12345热线办理情况通报-2026-11"
    assert f"filename*=UTF-8''{quote(name + '.xlsx')}" in xlsx.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert wb["超期工单"]["A2"].value == history.d["number"]

    if notice_pdf.find_fonts() is not None:
        pdf = client.get("/api/v1/notices.pdf", params={"period": "2026-11"})
        assert pdf.status_code == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert f"filename*=UTF-8''{quote(name + '.pdf')}" in pdf.headers["content-disposition"]
        assert "东莞市12345热线办理情况通报" in _pdf_text(pdf.content)


@pytest.mark.parametrize("period", ["2026-13", "2026-W60", "november"])
def test_a_bad_period_is_a_400_in_both_languages(api: Api, period: str) -> None:
    response = api("supervisor").get("/api/v1/notices", params={"period": period})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_period"
    assert error["message"].startswith("通报期间格式有误")
    assert error["message_en"].startswith("bad period")


def test_who_may_read(api: Api, db: Session) -> None:
    assert api("dispatcher").get("/api/v1/notices", params={"period": "2026-11"}).status_code == 403
    own = api("dc.leader").get("/api/v1/notices", params={"period": "2026-11"})
    assert own.status_code == 200
    assert own.json()["scope_name"] == "东城街道"
    other = api("dc.leader").get(
        "/api/v1/notices", params={"period": "2026-11", "unit_id": desk_unit(db, SHIJIE)}
    )
    assert other.status_code == 404


def test_the_pages(client: TestClient, history: History) -> None:
    login(client, "supervisor")
    listing = client.get("/hotline/notices")
    assert listing.status_code == 200
    assert "办理情况通报" in listing.text
    assert "石碣镇" in listing.text
    page = client.get("/hotline/notices/view", params={"period": "2026-11"})
    assert page.status_code == 200
    assert "2026年11月，全市12345热线共受理工单4件" in page.text
    assert history.d["number"] in page.text
    assert history.c["number"] in page.text
    assert "/hotline/notices/view.pdf?period=2026-11" in page.text
    xlsx = client.get("/hotline/notices/view.xlsx", params={"period": "2026-11"})
    assert xlsx.headers["content-type"] == notice_excel.MEDIA_TYPE
    bad = client.get("/hotline/notices/view", params={"period": "2026-99"})
    assert bad.status_code == 400


def test_lines_break_the_chinese_way() -> None:
    def width(text: str) -> float:
        return float(len(text))  # one unit a character

    # A closing mark hangs rather than start a line; an opening one moves down.
    assert notice_pdf.wrap_lines("一二三四，五六", 4, width) == ["一二三四，", "五六"]
    assert notice_pdf.wrap_lines("一二三（四五", 4, width) == ["一二三", "（四五"]
    # A figure is not split across lines.
    assert notice_pdf.wrap_lines("下降37.4个", 5, width) == ["下降", "37.4个"]
