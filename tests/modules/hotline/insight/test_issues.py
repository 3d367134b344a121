"""Hot issues over the database: rescan, stability, manual moves, scoping, pages, API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import actor, unit_id
from tests.web.helpers import get, login, post
from zhengshu.casework.models import Case
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.errors import InvalidInput, NotFound, PermissionDenied
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.insight import issues
from zhengshu.modules.hotline.insight.issue_models import HotIssue, HotIssueOrder
from zhengshu.modules.hotline.schemas import OrderCreate
from zhengshu.modules.hotline.service import HotlineConfig

NOW = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
DONGCHENG = "441900003000"
SHIJIE = "441900101000"

WATER = [
    "阳光花园小区停水三天了，什么时候恢复供水？",
    "东城阳光花园小区突然停水，没有任何通知",
    "阳光花园小区连续停水，居民生活受影响",
    "投诉阳光花园小区停水问题，物业不作为",
    "阳光花园小区又停水了，老人小孩没水用",
]
LIFTS = [
    "金色家园小区电梯故障，经常困人",
    "金色家园小区电梯又坏了，老人上下楼困难",
    "投诉金色家园小区电梯故障无人维修",
    "金色家园小区电梯停运一周，请督促物业维修",
]
NOISE = [
    "咨询新生儿医保办理流程",
    "建议增加公交线路到高铁站",
    "驾驶证到期换证需要什么材料",
    "公积金提取需要多久到账",
    "请问养老保险怎么补缴",
    "咨询居住证办理条件",
]


def add_order(
    db: Session,
    settings: Settings,
    text: str,
    *,
    phone: str,
    town: str,
    at: datetime,
    category: str = "other",
) -> Case:
    case, _ = service.register_order(
        db,
        system_principal("话务员"),
        config=HotlineConfig.from_settings(settings),
        data=OrderCreate(
            requester_name="市民",
            requester_phone=phone,
            title=text[:60],
            content=text,
            category=category,
            location_unit_id=unit_id(db, town),
        ),
        smart=False,
    )
    case.created_at = at
    db.flush()
    return case


def build(db: Session, settings: Settings) -> dict[str, list[uuid.UUID]]:
    """Two real problems at two places (5 + 4 callers) and six one-off questions."""
    out: dict[str, list[uuid.UUID]] = {"water": [], "lifts": [], "noise": []}
    for i, text in enumerate(WATER):
        at = NOW - timedelta(days=6) + timedelta(hours=10 * i)
        out["water"].append(
            add_order(db, settings, text, phone=f"1380000100{i}", town=DONGCHENG, at=at).id
        )
    for i, text in enumerate(LIFTS):
        at = NOW - timedelta(days=20) + timedelta(hours=8 * i)
        out["lifts"].append(
            add_order(db, settings, text, phone=f"1390000200{i}", town=SHIJIE, at=at).id
        )
    for i, text in enumerate(NOISE):
        at = NOW - timedelta(days=1 + 3 * i)
        out["noise"].append(
            add_order(db, settings, text, phone=f"1370000300{i}", town=DONGCHENG, at=at).id
        )
    return out


def members(db: Session, issue_id: uuid.UUID) -> set[uuid.UUID]:
    return set(db.scalars(select(HotIssueOrder.order_id).where(HotIssueOrder.issue_id == issue_id)))


def by_orders(db: Session) -> dict[frozenset[uuid.UUID], HotIssue]:
    rows = db.scalars(select(HotIssue).where(HotIssue.status == "active")).all()
    return {frozenset(members(db, r.id)): r for r in rows}


def test_rescan_finds_the_two_problems_and_leaves_the_noise(
    db: Session, settings: Settings
) -> None:
    made = build(db, settings)
    report = issues.rescan(db, NOW)
    assert report.clustered == 15
    assert (report.issues, report.created, report.continued, report.closed) == (2, 2, 0, 0)
    found = by_orders(db)
    assert set(found) == {frozenset(made["water"]), frozenset(made["lifts"])}
    water = found[frozenset(made["water"])]
    lifts = found[frozenset(made["lifts"])]
    assert (water.n_orders, water.n_callers) == (5, 5)
    assert (lifts.n_orders, lifts.n_callers) == (4, 4)
    assert water.place is not None
    assert "阳光花园" in water.place
    assert "停水" in water.description
    assert water.start_at == NOW - timedelta(days=6)
    assert water.end_at == NOW - timedelta(days=6) + timedelta(hours=40)
    # Every order is still open: all unresolved.
    assert water.unresolved_share == 1.0
    # Water: 5 orders in the last 15 days, none in the 15 before: growth (5 - 0) / 1.
    assert water.growth == 5.0
    # Lifts: all 4 in the earlier half: (0 - 4) / 4.
    assert lifts.growth == -1.0
    assert water.town_unit_id == unit_id(db, DONGCHENG)
    assert lifts.town_unit_id == unit_id(db, SHIJIE)
    assert water.score > lifts.score
    assert [i.id for i in issues.top(db, system_principal(), limit=5)] == [water.id, lifts.id]


def test_a_second_rescan_keeps_the_ids_and_a_grown_cluster_keeps_its_id(
    db: Session, settings: Settings
) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    first = {k: v.id for k, v in by_orders(db).items()}
    report = issues.rescan(db, NOW)
    assert (report.created, report.continued, report.closed) == (0, 2, 0)
    assert {k: v.id for k, v in by_orders(db).items()} == first
    water_id = first[frozenset(made["water"])]
    later = add_order(
        db,
        settings,
        "阳光花园小区还是停水，已经一个星期了",
        phone="13800001009",
        town=DONGCHENG,
        at=NOW + timedelta(hours=2),
    )
    issues.rescan(db, NOW + timedelta(hours=3))
    assert members(db, water_id) == {*made["water"], later.id}
    db.expire_all()
    water = db.get(HotIssue, water_id)
    assert water is not None
    assert (water.n_orders, water.n_callers) == (6, 6)


def test_an_issue_no_longer_found_is_closed_with_its_orders(
    db: Session, settings: Settings
) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    lifts = by_orders(db)[frozenset(made["lifts"])]
    # 25 days later the lift orders are out of the 30-day window.
    report = issues.rescan(db, NOW + timedelta(days=15))
    assert report.closed == 1
    db.expire_all()
    assert db.get(HotIssue, lifts.id).status == "closed"  # type: ignore[union-attr]
    assert members(db, lifts.id) == set(made["lifts"])


def test_a_manual_move_is_audited_and_survives_rescans(db: Session, settings: Settings) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    found = by_orders(db)
    water, lifts = found[frozenset(made["water"])], found[frozenset(made["lifts"])]
    supervisor = actor(db, "supervisor")
    moved = made["water"][0]
    source, target = issues.move_order(db, supervisor, moved, lifts.id, "其实是同一物业")
    assert (source, target) == (water, lifts)
    assert (water.n_orders, lifts.n_orders) == (4, 5)
    entry = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "hotline.hot_issue.move")
    ).one()
    assert entry.entity_id == str(moved)
    assert entry.before == {"issue_id": str(water.id), "pinned": False}
    assert entry.after["issue_id"] == str(lifts.id)
    assert entry.after["note"] == "其实是同一物业"
    # Taken out of any cluster by hand: not put back.
    out = made["water"][1]
    issues.move_order(db, supervisor, out, None, "与停水无关")
    issues.rescan(db, NOW + timedelta(hours=1))
    issues.rescan(db, NOW + timedelta(hours=2))
    assert members(db, water.id) == set(made["water"][2:])
    assert members(db, lifts.id) == {*made["lifts"], moved}
    link = db.scalars(select(HotIssueOrder).where(HotIssueOrder.order_id == out)).one()
    assert (link.issue_id, link.pinned) == (None, True)


def test_move_to_a_new_issue_and_refusals(db: Session, settings: Settings) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    water = by_orders(db)[frozenset(made["water"])]
    supervisor = actor(db, "supervisor")
    _, new = issues.move_order(db, supervisor, made["noise"][0], None, None, new_issue=True)
    assert new is not None
    assert new.manual
    assert new.n_orders == 1
    issues.rescan(db, NOW + timedelta(hours=1))
    db.expire_all()
    assert db.get(HotIssue, new.id).status == "active"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput):
        issues.move_order(db, supervisor, made["water"][2], water.id, None)
    with pytest.raises(InvalidInput):
        issues.move_order(db, supervisor, made["noise"][1], None, None)
    with pytest.raises(PermissionDenied):
        issues.move_order(db, actor(db, "dispatcher"), made["water"][2], None, None)


def test_a_town_sees_only_the_issues_located_in_it(db: Session, settings: Settings) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    found = by_orders(db)
    water, lifts = found[frozenset(made["water"])], found[frozenset(made["lifts"])]
    # A town's leader reads the hot issues of the town; a handler reads none.
    reader = actor(db, "dc.leader")
    assert [i.id for i in issues.list_issues(db, reader)[0]] == [water.id]
    assert [i.id for i in issues.top(db, reader)] == [water.id]
    assert issues.top(db, actor(db, "dc.handler")) == []
    with pytest.raises(NotFound):
        issues.get_issue(db, reader, lifts.id)
    city = actor(db, "leader")
    assert {i.id for i in issues.list_issues(db, city)[0]} == {water.id, lifts.id}


Api = Callable[[str], TestClient]


def test_api_lists_reads_and_moves(db: Session, settings: Settings, api: Api) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    found = by_orders(db)
    water, lifts = found[frozenset(made["water"])], found[frozenset(made["lifts"])]
    db.commit()
    leader = api("leader")
    body = leader.get("/api/v1/hot-issues").json()
    assert body["total"] == 2
    assert [i["id"] for i in body["items"]] == [str(water.id), str(lifts.id)]
    one = leader.get(f"/api/v1/hot-issues/{water.id}").json()
    assert one["n_orders"] == 5
    assert len(one["orders"]) == 5
    moved = made["water"][0]
    denied = leader.post(
        f"/api/v1/hot-issues/{water.id}/orders/{moved}/move", json={"to_issue_id": str(lifts.id)}
    )
    assert denied.status_code == 403
    ok = api("supervisor").post(
        f"/api/v1/hot-issues/{water.id}/orders/{moved}/move",
        json={"to_issue_id": str(lifts.id), "note": "同一物业"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["n_orders"] == 4
    wrong = api("supervisor").post(
        f"/api/v1/hot-issues/{water.id}/orders/{moved}/move", json={"to_issue_id": None}
    )
    assert wrong.status_code == 404  # the order is no longer in that issue
    assert leader.get(f"/api/v1/hot-issues/{uuid.uuid4()}").status_code == 404


def test_pages_render_and_the_move_form_works(
    db: Session, settings: Settings, client: TestClient
) -> None:
    made = build(db, settings)
    issues.rescan(db, NOW)
    found = by_orders(db)
    water, lifts = found[frozenset(made["water"])], found[frozenset(made["lifts"])]
    db.commit()
    csrf = login(client, "supervisor")
    page = get(client, "/hotline/hot")
    assert page.status == 200
    assert water.description in page.response.text
    assert "每周一题" in page.response.text
    assert "难题清单" in page.response.text
    detail = get(client, f"/hotline/hot/{water.id}")
    assert detail.status == 200
    number = db.get(Case, made["water"][0]).number  # type: ignore[union-attr]
    assert number in detail.response.text
    assert f'href="/hotline/orders/{made["water"][0]}"' in detail.response.text
    # Statuses read as people say them, not as the code names them.
    assert "已受理待派单" in detail.response.text
    assert ">registered<" not in detail.response.text
    response = post(
        client,
        f"/hotline/hot/{water.id}/move",
        {"csrf_token": csrf, "order_id": str(made["water"][0]), "to": str(lifts.id), "note": ""},
    )
    assert response.status_code == 303
    db.expire_all()
    assert members(db, lifts.id) == {*made["lifts"], made["water"][0]}
    response = post(client, "/hotline/hot/rescan", {"csrf_token": csrf})
    assert response.status_code == 303
    csrf = login(client, "dispatcher")
    assert get(client, "/hotline/hot").status == 200
    assert post(client, "/hotline/hot/rescan", {"csrf_token": csrf}).status_code == 403


def test_the_same_complaint_in_two_towns_is_two_hot_issues(db: Session, settings: Settings) -> None:
    """Estate names repeat across towns: 万科城 in 东城 and 万科城 in 石碣 are two places."""
    text = "万科城小区旁边工地夜间施工噪音扰民，晚上十一点以后还在打桩"
    east = [
        add_order(
            db,
            settings,
            text,
            phone=f"1350000400{i}",
            town=DONGCHENG,
            at=NOW - timedelta(hours=5 + 7 * i),
        ).id
        for i in range(4)
    ]
    west = [
        add_order(
            db,
            settings,
            text,
            phone=f"1360000500{i}",
            town=SHIJIE,
            at=NOW - timedelta(hours=6 + 7 * i),
        ).id
        for i in range(3)
    ]
    issues.rescan(db, NOW)
    found = by_orders(db)
    assert set(found) == {frozenset(east), frozenset(west)}
    assert found[frozenset(east)].town_unit_id == unit_id(db, DONGCHENG)
    assert found[frozenset(west)].town_unit_id == unit_id(db, SHIJIE)


def test_a_group_across_towns_stays_one_hot_issue(db: Session, settings: Settings) -> None:
    """The same people wherever they live (here: the couriers of one platform) are one issue."""
    texts = [
        "外卖骑手反映平台克扣配送费，要求有关部门介入",
        "我是外卖骑手，平台无故克扣配送费",
        "外卖骑手配送费被平台克扣，投诉无门",
        "外卖骑手群体反映平台克扣配送费问题",
    ]
    towns = [DONGCHENG, SHIJIE, DONGCHENG, SHIJIE]
    made = [
        add_order(
            db,
            settings,
            t,
            phone=f"1340000600{i}",
            town=towns[i],
            at=NOW - timedelta(hours=3 + 9 * i),
        ).id
        for i, t in enumerate(texts)
    ]
    issues.rescan(db, NOW)
    assert set(by_orders(db)) == {frozenset(made)}
