"""KPIs on a small hand-built history: nine orders driven through the real service and
engine with the clock moved by hand (November 2026, Beijing time; 2 November is a
Monday, office hours 08:30-12:00 and 14:00-17:30). Every figure below is counted by hand
from the history in ``history``'s docstring."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import actor, frozen_at, unit_id
from tests.web.helpers import login
from zhengshu.casework.models import CaseEvent
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.errors import InvalidInput, PermissionDenied
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.reports import facts, kpi
from zhengshu.modules.hotline.reports.kpi import KpiConfigError, KpiReport, KpiRow
from zhengshu.modules.hotline.reports.models import OrderFact, OrderFactDaily
from zhengshu.modules.hotline.schemas import ActionRequest, OrderCreate

GANGBEI = "441900003001"  # 岗贝社区, under 东城街道
DONGCHENG = "441900003000"
SHIJIE = "441900101000"
SHIJIE_VILLAGE = "441900101202"  # 石碣村, under 石碣镇
HOUSING = "D001"  # 住建局

Api = Callable[[str], TestClient]


def bj(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(bj(10, 31, 9))


@dataclass
class Desk:
    db: Session
    config: service.HotlineConfig
    frozen: FrozenClock

    def at(self, month: int, day: int, hour: int, minute: int = 0) -> Desk:
        self.frozen.set(bj(month, day, hour, minute))
        return self

    def new(self, *, location: str | None = None, **fields: object) -> uuid.UUID:
        body: dict[str, object] = {
            "requester_name": "陈先生",
            "requester_phone": "13800138000",
            "content": "小区电动车在楼道充电，存在消防隐患。",
            "request_type": "complaint",
            "category": "urban",
            **fields,
        }
        if location is not None:
            body["location_unit_id"] = unit_id(self.db, location)
        case, _ = service.register_order(
            self.db,
            actor(self.db, "calltaker"),
            config=self.config,
            data=OrderCreate.model_validate(body),
            smart=False,
        )
        return case.id

    def act(self, who: str, order: uuid.UUID, action: str, **body: object) -> None:
        if "unit" in body:
            body["unit_id"] = unit_id(self.db, str(body.pop("unit")))
        service.act(
            self.db,
            actor(self.db, who),
            config=self.config,
            order_id=order,
            action=action,
            request=ActionRequest.model_validate(body),
        )
        self.db.flush()


@dataclass
class History:
    ids: dict[str, uuid.UUID]


@pytest.fixture
def desk(db: Session, settings: Settings, frozen: FrozenClock) -> Desk:
    return Desk(db, service.HotlineConfig.from_settings(settings), frozen)


@pytest.fixture
def history(desk: Desk, db: Session) -> History:
    """
    H  31 Oct 09:00  phone consultation, answered directly (October: outside November)
    A   2 Nov 09:00  phone urban @岗贝 -> 东城 09:10, signed 10:00 (due 11:10: on time),
                     replied 3 Nov 10:00 (on time), callback solved + very satisfied: closed
    B   2 Nov 09:01  web urban @岗贝 -> 东城 09:10, signed 15:00 (due 11:10: late), replied
                     3 Nov 10:00, callback unsolved + dissatisfied 3 Nov 11:00: rework
                     (new handling limit 10 Nov 17:30), replied 20 Nov 10:00 (late),
                     callback solved + basically satisfied 20 Nov 11:00: closed
    C   4 Nov 10:00  phone help (求助) civil_affairs @石碣村 -> 石碣镇 10:02, signed 10:10
                     (on time): response 10 min; still handling
    D   5 Nov 09:00  app urban emergency (特急) @岗贝 -> 东城 09:01, signed 09:25 (due 09:31:
                     on time): response 25 min; replied 11:00 (on time); no callback yet
    E   6 Nov 09:00  phone education consultation, answered directly 09:05
    F   6 Nov 10:00  phone health help, transferred to 120 at 10:03: response 3 min
    G   9 Nov 08:50  web housing @石碣镇 -> 住建局 09:00, not signed
    I  10 Nov 09:00  phone urban @岗贝 -> 东城 09:05, signed 09:30, replied 10:00, callback
                     11 Nov 09:00 unsolved but satisfied: rework; handling again
    """
    ids: dict[str, uuid.UUID] = {}
    ids["H"] = desk.at(10, 31, 9).new(request_type="consultation", category="education")
    desk.at(10, 31, 9, 5).act("calltaker", ids["H"], "answer_directly", note="已告知。")

    ids["A"] = desk.at(11, 2, 9).new(location=GANGBEI)
    ids["B"] = desk.at(11, 2, 9, 1).new(location=GANGBEI, channel="web")
    desk.at(11, 2, 9, 10)
    desk.act("dispatcher", ids["A"], "dispatch", unit=DONGCHENG)
    desk.act("dispatcher", ids["B"], "dispatch", unit=DONGCHENG)
    desk.at(11, 2, 10).act("dc.handler", ids["A"], "sign_for")
    desk.at(11, 2, 15).act("dc.handler", ids["B"], "sign_for")
    desk.at(11, 3, 10)
    desk.act("dc.handler", ids["A"], "reply", note="已清理楼道。")
    desk.act("dc.handler", ids["B"], "reply", note="已清理楼道。")
    desk.at(11, 3, 11)
    desk.act("callback", ids["A"], "callback", solved=True, satisfaction="very_satisfied")
    desk.act(
        "callback", ids["B"], "callback", solved=False, satisfaction="dissatisfied", note="仍有"
    )

    ids["C"] = desk.at(11, 4, 10).new(
        location=SHIJIE_VILLAGE, request_type="help", category="civil_affairs"
    )
    desk.at(11, 4, 10, 2).act("dispatcher", ids["C"], "dispatch", unit=SHIJIE)
    desk.at(11, 4, 10, 10).act("sj.handler", ids["C"], "sign_for")

    ids["D"] = desk.at(11, 5, 9).new(location=GANGBEI, channel="app", urgency="emergency")
    desk.at(11, 5, 9, 1).act("dispatcher", ids["D"], "dispatch", unit=DONGCHENG)
    desk.at(11, 5, 9, 25).act("dc.handler", ids["D"], "sign_for")
    desk.at(11, 5, 11).act("dc.handler", ids["D"], "reply", note="已处置。")

    ids["E"] = desk.at(11, 6, 9).new(request_type="consultation", category="education")
    desk.at(11, 6, 9, 5).act("calltaker", ids["E"], "answer_directly", note="已告知。")
    ids["F"] = desk.at(11, 6, 10).new(request_type="help", category="health")
    desk.at(11, 6, 10, 3).act(
        "calltaker", ids["F"], "transfer_emergency", target="120", note="转 120。"
    )

    ids["G"] = desk.at(11, 9, 8, 50).new(location=SHIJIE, channel="web", category="housing")
    desk.at(11, 9, 9).act("dispatcher", ids["G"], "dispatch", unit=HOUSING)

    ids["I"] = desk.at(11, 10, 9).new(location=GANGBEI)
    desk.at(11, 10, 9, 5).act("dispatcher", ids["I"], "dispatch", unit=DONGCHENG)
    desk.at(11, 10, 9, 30).act("dc.handler", ids["I"], "sign_for")
    desk.at(11, 10, 10).act("dc.handler", ids["I"], "reply", note="已处理。")
    desk.at(11, 11, 9).act(
        "callback", ids["I"], "callback", solved=False, satisfaction="satisfied", note="未解决"
    )

    desk.at(11, 20, 10).act("dc.handler", ids["B"], "reply", note="已彻底整改。")
    desk.at(11, 20, 11).act(
        "callback", ids["B"], "callback", solved=True, satisfaction="basically_satisfied"
    )
    desk.at(12, 1, 9)
    report = facts.refresh(db)
    assert (report.cases, report.more) == (9, False)
    return History(ids)


def figures(row: KpiRow) -> dict[str, tuple[int | None, int | None]]:
    return {k: (v.numerator, v.denominator) for k, v in row.values.items()}


def november(db: Session, who: str = "supervisor", **kw: object) -> KpiReport:
    start, end = kpi.month_bounds("2026-11")
    return kpi.compute(db, actor(db, who), start=start, end=end, **kw)  # type: ignore[arg-type]


NOVEMBER = {
    "sign_for_rate": (5, 6),  # signed A B C D I / dispatched A B C D G I
    "on_time_sign_for_rate": (4, 5),  # A C D I (B signed late)
    "closure_rate": (3, 6),  # A B closed, D replied; I reworked and handling again
    "on_time_closure_rate": (2, 3),  # A D (B's last reply came after its rework limit)
    "callback_rate": (3, 4),  # A B I called back / A B D I replied
    "resolution_rate": (2, 3),  # A B (I unsolved)
    "satisfaction_rate": (3, 3),  # very satisfied, basically satisfied, satisfied
    "rework_rate": (2, 3),  # B I
    "direct_answer_rate": (1, 8),  # E, of A B C D E F G I
    "emergency_response_minutes": (38, 3),  # C 10 + D 25 + F 3 minutes
}


def test_every_figure_of_the_month(history: History, db: Session) -> None:
    report = november(db)
    assert report.rows == []
    assert report.total.orders == 8
    assert figures(report.total) == NOVEMBER
    values = report.total.values
    assert values["sign_for_rate"].value == pytest.approx(5 / 6)
    assert values["on_time_closure_rate"].value == pytest.approx(2 / 3)
    assert values["direct_answer_rate"].value == pytest.approx(1 / 8)
    emergency = values["emergency_response_minutes"]
    # mean 38 / 3; median of 3, 10, 25 is 10; p90 is the nearest rank ceil(0.9 x 3) = 3rd.
    assert (emergency.value, emergency.median, emergency.p90) == (12.67, 10.0, 25.0)
    assert [d.key for d in report.definitions] == list(NOVEMBER)
    assert report.definitions[1].formula.startswith("在签收时限内签收的工单数 ÷ 已签收工单数")


def test_the_on_time_flags_come_from_the_timeline(history: History, db: Session) -> None:
    sign_for = db.execute(
        select(CaseEvent.data).where(
            CaseEvent.case_id == history.ids["B"], CaseEvent.action == "sign_for"
        )
    ).scalar_one()
    assert sign_for == {
        "stage_left": {"stage": "sign_for", "due_at": "2026-11-02 03:10:00+00:00", "late": True}
    }
    replies = (
        db.execute(
            select(CaseEvent.data)
            .where(CaseEvent.case_id == history.ids["B"], CaseEvent.action == "reply")
            .order_by(CaseEvent.seq)
        )
        .scalars()
        .all()
    )
    # Five working days from 4 November for the rework: 4, 5, 6, 9, 10 November, 17:30.
    assert [r["stage_left"] for r in replies] == [
        {"stage": "handle", "due_at": "2026-11-09 09:30:00+00:00", "late": False},
        {"stage": "handle", "due_at": "2026-11-10 09:30:00+00:00", "late": True},
    ]
    # The dispatch stage is the hotline's own, not a unit's: not recorded.
    dispatch = db.execute(
        select(CaseEvent.data).where(
            CaseEvent.case_id == history.ids["B"], CaseEvent.action == "dispatch"
        )
    ).scalar_one()
    assert dispatch is None or "stage_left" not in dispatch
    fact = db.get(OrderFact, history.ids["B"])
    assert fact is not None
    assert (fact.signed, fact.signed_on_time, fact.closed, fact.closed_on_time) == (
        True,
        False,
        True,
        False,
    )
    assert (fact.solved, fact.satisfied, fact.reworked) == (True, True, True)


def by_key(report: KpiReport) -> dict[str, KpiRow]:
    return {row.label: row for row in report.rows}


def test_grouped_by_unit(history: History, db: Session) -> None:
    report = november(db, by="unit")
    rows = by_key(report)
    assert [(r.label, r.orders) for r in report.rows] == [
        ("东城街道", 4),
        ("东莞市住房和城乡建设局", 1),
        ("石碣镇", 1),
        ("未派单", 2),
    ]
    assert figures(rows["东城街道"]) == {
        "sign_for_rate": (4, 4),
        "on_time_sign_for_rate": (3, 4),
        "closure_rate": (3, 4),
        "on_time_closure_rate": (2, 3),
        "callback_rate": (3, 4),
        "resolution_rate": (2, 3),
        "satisfaction_rate": (3, 3),
        "rework_rate": (2, 3),
        "direct_answer_rate": (0, 4),
        "emergency_response_minutes": (25, 1),
    }
    assert figures(rows["未派单"])["direct_answer_rate"] == (1, 2)
    assert rows["未派单"].key == kpi.NONE_KEY
    assert rows["东莞市住房和城乡建设局"].values["sign_for_rate"].value == 0.0
    assert rows["未派单"].values["sign_for_rate"].value is None  # nothing dispatched
    f = rows["未派单"].values["emergency_response_minutes"]
    assert (f.numerator, f.denominator, f.value, f.median, f.p90) == (3, 1, 3.0, 3.0, 3.0)
    assert figures(report.total) == NOVEMBER


def test_grouped_by_town_category_and_channel(history: History, db: Session) -> None:
    towns = november(db, by="town")
    assert [(r.label, r.orders) for r in towns.rows] == [
        ("东城街道", 4),
        ("石碣镇", 2),
        ("未定位", 2),
    ]
    assert figures(by_key(towns)["石碣镇"])["sign_for_rate"] == (1, 2)  # C signed, G not
    categories = november(db, by="category")
    assert [(r.label, r.orders) for r in categories.rows] == [
        ("城市管理", 4),
        ("住房城建", 1),
        ("卫生健康", 1),
        ("教育", 1),
        ("民政", 1),
    ]
    channels = november(db, by="channel")
    assert [(r.key, r.label, r.orders) for r in channels.rows] == [
        ("phone", "电话", 5),
        ("web", "网站", 2),
        ("app", "移动端", 1),
    ]
    assert figures(by_key(channels)["网站"])["closure_rate"] == (1, 2)  # B closed, G not


def test_grouped_by_period(history: History, db: Session) -> None:
    who = actor(db, "supervisor")
    start, _ = kpi.month_bounds("2026-10")
    _, end = kpi.month_bounds("2026-11")
    months = kpi.compute(db, who, start=start, end=end, by="month")
    assert [(r.key, r.label, r.orders) for r in months.rows] == [
        ("2026-10", "2026年10月", 1),
        ("2026-11", "2026年11月", 8),
    ]
    assert figures(months.rows[1]) == NOVEMBER
    weeks = november(db, by="week")
    assert [(r.key, r.orders) for r in weeks.rows] == [
        ("2026-W45", 6),  # 2-8 November: A B C D E F
        ("2026-W46", 2),  # G I
    ]
    assert weeks.rows[0].label == "2026年第45周（11月02日—11月08日）"
    days = november(db, by="day")
    assert [(r.key, r.orders) for r in days.rows][:2] == [("2026-11-02", 2), ("2026-11-04", 1)]


def test_a_period_of_part_days_is_read_from_the_facts(history: History, db: Session) -> None:
    report = kpi.compute(db, actor(db, "supervisor"), start=bj(11, 2, 9, 1), end=bj(11, 6, 9, 30))
    assert report.total.orders == 4  # B C D E (A at 09:00 is before, F at 10:00 after)
    assert figures(report.total)["emergency_response_minutes"] == (35, 2)


def test_a_town_leader_sees_only_the_town(history: History, db: Session) -> None:
    report = november(db, "dc.leader", by="unit")
    assert [(r.label, r.orders) for r in report.rows] == [("东城街道", 4)]
    assert report.total.orders == 4
    assert figures(report.total)["sign_for_rate"] == (4, 4)
    with pytest.raises(PermissionDenied):
        november(db, "sj.handler")
    # The city narrowed to one unit's subtree: 石碣镇 leads C, and G happened there.
    shijie = november(db, unit_id=unit_id(db, SHIJIE))
    assert shijie.total.orders == 2


def test_a_later_rework_updates_the_facts_and_the_rollup(
    history: History, db: Session, desk: Desk
) -> None:
    desk.at(12, 2, 9).act(
        "callback",
        history.ids["D"],
        "callback",
        solved=False,
        satisfaction="very_dissatisfied",
        note="仍未处置",
    )
    before = figures(november(db).total)
    assert before["callback_rate"] == (3, 4)  # not refreshed yet
    report = facts.refresh(db)
    assert (report.cases, report.days) == (1, 1)
    after = november(db).total
    assert figures(after)["callback_rate"] == (4, 4)
    assert figures(after)["closure_rate"] == (2, 6)  # D is back in handling
    assert figures(after)["rework_rate"] == (3, 4)
    assert figures(after)["satisfaction_rate"] == (3, 4)
    # The rollup still equals the facts summed.
    day = db.execute(
        select(OrderFactDaily).where(OrderFactDaily.day == bj(11, 5, 9).date())
    ).scalar_one()
    assert (day.orders, day.called_back, day.reworked, day.closed) == (1, 1, 1, 0)
    assert facts.refresh(db).cases == 0  # nothing changed since


def test_the_drill_down_lists_the_orders_behind_a_figure(history: History, db: Session) -> None:
    start, end = kpi.month_bounds("2026-11")
    who = actor(db, "supervisor")
    page = kpi.orders(
        db, who, kpi="on_time_sign_for_rate", part="denominator", start=start, end=end
    )
    ids = history.ids
    assert page.total == 5
    assert {o.case_id for o in page.items} == {ids[k] for k in "ABCDI"}
    page = kpi.orders(db, who, kpi="on_time_sign_for_rate", part="numerator", start=start, end=end)
    assert {o.case_id for o in page.items} == {ids[k] for k in "ACDI"}
    dongcheng = str(unit_id(db, DONGCHENG))
    page = kpi.orders(
        db,
        who,
        kpi="rework_rate",
        part="numerator",
        start=start,
        end=end,
        by="unit",
        group=dongcheng,
    )
    assert [o.case_id for o in page.items] == [ids["I"], ids["B"]]  # newest first
    assert page.items[0].lead_unit == "东城街道"
    assert page.items[0].town == "东城街道"
    page = kpi.orders(
        db,
        who,
        kpi="direct_answer_rate",
        part="numerator",
        start=start,
        end=end,
        by="unit",
        group="none",
    )
    assert [o.case_id for o in page.items] == [ids["E"]]
    page = kpi.orders(
        db, who, kpi="emergency_response_minutes", part="denominator", start=start, end=end
    )
    assert {o.case_id for o in page.items} == {ids[k] for k in "CDF"}
    leader = kpi.orders(
        db, actor(db, "dc.leader"), kpi="sign_for_rate", part="denominator", start=start, end=end
    )
    assert leader.total == 4
    with pytest.raises(InvalidInput):
        kpi.orders(db, who, kpi="nope", part="numerator", start=start, end=end)


def test_the_configuration_is_checked() -> None:
    good = """
satisfied_levels: [satisfied]
kpis:
  - key: sign_for_rate
    label: 签收率
    kind: rate
    numerator: signed
    denominator: dispatched
    formula: x
"""
    config = kpi.parse_config(good)
    assert config.satisfied_levels == frozenset({"satisfied"})
    assert [(d.key, d.unit) for d in config.definitions] == [("sign_for_rate", "%")]
    with pytest.raises(KpiConfigError, match="numerator 'signed_late' is not a fact flag"):
        kpi.parse_config(good.replace("numerator: signed", "numerator: signed_late"))
    with pytest.raises(KpiConfigError, match="denominator 'everything' is not a fact flag"):
        kpi.parse_config(good.replace("denominator: dispatched", "denominator: everything"))
    with pytest.raises(KpiConfigError, match="'kind' must be rate or duration"):
        kpi.parse_config(good.replace("kind: rate", "kind: ratio"))
    with pytest.raises(KpiConfigError, match="unknown level 'happy'"):
        kpi.parse_config(good.replace("[satisfied]", "[happy]"))
    with pytest.raises(KpiConfigError, match="is not a duration column"):
        kpi.parse_config(good.replace("kind: rate", "kind: duration"))
    # The packaged file passes.
    assert [d.key for d in kpi.definitions()] == list(NOVEMBER)


def test_a_city_may_define_its_own_kpis(tmp_path: Path) -> None:
    """``<data dir>/kpis.yaml`` replaces the packaged definitions; a bad one stops the
    start with its error; without one the packaged file is back."""
    own = tmp_path / "kpis.yaml"
    own.write_text(
        "satisfied_levels: [very_satisfied, satisfied]\n"
        "kpis:\n"
        "  - {key: satisfaction_rate, label: 满意率（不含基本满意）, kind: rate,\n"
        "     numerator: satisfied, denominator: called_back, formula: 满意 ÷ 已回访}\n",
        encoding="utf-8",
    )
    try:
        kpi.use_city_file(own)
        assert [d.label for d in kpi.definitions()] == ["满意率（不含基本满意）"]
        assert kpi.satisfied_levels() == frozenset({"very_satisfied", "satisfied"})
        own.write_text("kpis: [{key: x, kind: ratio}]", encoding="utf-8")
        with pytest.raises(KpiConfigError):
            kpi.use_city_file(own)
    finally:
        kpi.use_city_file(None)
    assert [d.key for d in kpi.definitions()] == list(NOVEMBER)


def test_month_bounds_are_beijing_months() -> None:
    assert kpi.month_bounds("2026-11") == (
        datetime(2026, 10, 31, 16, 0, tzinfo=UTC),
        datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
    )
    assert kpi.month_bounds("2026-12")[1] == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    for bad in ("2026-13", "26-11", "2026/11", ""):
        with pytest.raises(InvalidInput):
            kpi.month_bounds(bad)


def test_the_report_over_http(history: History, api: Api, db: Session) -> None:
    response = api("supervisor").get("/api/v1/reports/kpi?month=2026-11&by=unit")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"]["orders"] == 8
    assert body["total"]["values"]["sign_for_rate"] == {
        "key": "sign_for_rate",
        "numerator": 5,
        "denominator": 6,
        "value": pytest.approx(5 / 6),
        "median": None,
        "p90": None,
    }
    assert [r["label"] for r in body["rows"]] == [
        "东城街道",
        "东莞市住房和城乡建设局",
        "石碣镇",
        "未派单",
    ]
    assert body["definitions"][0]["formula"] == "已签收工单数 ÷ 已派单工单数"
    dongcheng = body["rows"][0]["key"]
    response = api("supervisor").get(
        "/api/v1/reports/kpi/orders",
        params={
            "kpi": "closure_rate",
            "part": "numerator",
            "month": "2026-11",
            "by": "unit",
            "group": dongcheng,
        },
    )
    assert response.status_code == 200, response.text
    drill = response.json()
    assert drill["total"] == 3
    numbers = {db.get(OrderFact, history.ids[k]).number for k in "ABD"}  # type: ignore[union-attr]
    assert {o["number"] for o in drill["items"]} == numbers
    assert {o["title"] for o in drill["items"]} == {"小区电动车在楼道充电，存在消防隐患。"}
    dates = api("supervisor").get("/api/v1/reports/kpi?start=2026-11-02&end=2026-11-02")
    assert dates.json()["total"]["orders"] == 2  # A and B, the whole local day
    for query, code in [
        ("month=2026-13", "bad_month"),
        ("month=2026-11&by=weekday", "bad_grouping"),
        ("start=2026-11-05&end=2026-11-01", "bad_period"),
        ("", "bad_period"),
    ]:
        response = api("supervisor").get(f"/api/v1/reports/kpi?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == code
    assert api("sj.handler").get("/api/v1/reports/kpi?month=2026-11").status_code == 403


def test_the_page_shows_every_figure_with_its_links(
    history: History, client: TestClient, db: Session
) -> None:
    login(client, "supervisor")
    page = client.get("/hotline/reports/kpi?month=2026-11&by=unit")
    assert page.status_code == 200, page.text
    html = page.text
    assert "东城街道" in html
    assert "合计" in html
    assert "83.3%" in html  # 签收率 5 / 6 in the total row
    assert "已签收工单数 ÷ 已派单工单数" in html  # the legend
    dongcheng = unit_id(db, DONGCHENG)
    link = (
        "/hotline/reports/kpi/orders?kpi=rework_rate&amp;part=numerator"
        f"&amp;month=2026-11&amp;by=unit&amp;group={dongcheng}"
    )
    assert link in html
    orders = client.get(link.replace("&amp;", "&"))
    assert orders.status_code == 200
    numbers = [db.get(OrderFact, history.ids[k]).number for k in "BI"]  # type: ignore[union-attr]
    assert all(n in orders.text for n in numbers)
    assert "共 2 件" in orders.text
    assert "电话" in orders.text  # the channel as people name it
    assert ">phone<" not in orders.text
    bad = client.get("/hotline/reports/kpi?month=2026-13")
    assert bad.status_code == 400
    assert "月份格式应为 YYYY-MM" in bad.text
    login(client, "sj.handler")
    assert client.get("/hotline/reports/kpi").status_code == 403
