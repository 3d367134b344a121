"""每周一题: candidates and their ranking, picking (supervision on the orders), one per
week, progress reports by the responsible units only, closing; pages and API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import actor, frozen_at, unit_id
from tests.modules.hotline.insight.test_issues import DONGCHENG, NOW, build, by_orders
from tests.web.helpers import get, login, post
from zhengshu.casework.models import Case, CaseEvent, Supervision
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline.insight import hot, issues, weekly
from zhengshu.modules.hotline.insight.issue_models import WeeklyProblemOrder
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.service import HotlineConfig

WEEK = "2026-W40"  # Monday 28 September to Sunday 4 October 2026
HOUSING = "D001"
Api = Callable[[str], TestClient]


@pytest.fixture(autouse=True)
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(NOW)


def world(db: Session, settings: Settings) -> dict[str, list[uuid.UUID]]:
    """The hot issues of test_issues, plus two noise orders reworked again and again."""
    made = build(db, settings)
    issues.rescan(db, NOW)
    for oid, reworks in ((made["noise"][0], 3), (made["noise"][1], 2)):
        case = db.get(Case, oid)
        order = db.get(Order, oid)
        assert case is not None
        assert order is not None
        case.rework_count = reworks
        order.solved = False
    db.flush()
    return made


def pick(db: Session, settings: Settings, key: str, lead: str, week: str = WEEK):  # type: ignore[no-untyped-def]
    config = HotlineConfig.from_settings(settings)
    return weekly.pick(
        db,
        actor(db, "supervisor"),
        weekly.PickInput(
            week=week,
            candidate_key=key,
            lead_unit_id=unit_id(db, lead),
            deadline=weekly.default_deadline(week),
        ),
        workflow=config.workflow(),
        calendar=config.calendar(db),
    )


def test_weeks_are_iso_weeks() -> None:
    assert weekly.week_of(NOW) == WEEK
    monday, sunday = weekly.parse_week(WEEK)
    assert (monday.isoformat(), sunday.isoformat()) == ("2026-09-28", "2026-10-04")
    with pytest.raises(InvalidInput):
        weekly.parse_week("2026-W54")


def test_candidates_are_ranked_with_their_reasons(db: Session, settings: Settings) -> None:
    made = world(db, settings)
    found = by_orders(db)
    water = found[frozenset(made["water"])]
    lifts = found[frozenset(made["lifts"])]
    ranked = weekly.candidates(db, WEEK)
    # Water: 5 callers, 5 orders, growth 5, all unresolved, at a place.
    water_score = hot.hotness(n_messages=5, n_users=5, growth=5.0, unresolved_share=1.0)
    lifts_score = hot.hotness(n_messages=4, n_users=4, growth=-1.0, unresolved_share=1.0)
    assert (water.score, lifts.score) == (water_score, lifts_score)
    assert round(water_score, 1) == 40.3
    assert round(lifts_score, 1) == 29.0
    assert [(c.key, c.score) for c in ranked] == [
        (f"hot:{water.id}", water_score),
        (f"order:{made['noise'][0]}", 30.0),  # 10 x 3 reworks
        (f"hot:{lifts.id}", lifts_score),
        (f"order:{made['noise'][1]}", 20.0),  # 10 x 2 reworks
    ]
    assert ranked[0].reason.startswith("热点问题：5 件工单、5 位来电人，未解决占比 100%")
    assert ranked[1].reason == "反复未解决：重办 3 次、不满意回访 0 次，仍未解决"
    assert sorted(ranked[0].order_ids) == sorted(made["water"])


def test_pick_opens_supervision_on_each_open_order(db: Session, settings: Settings) -> None:
    made = world(db, settings)
    water = by_orders(db)[frozenset(made["water"])]
    problem = pick(db, settings, f"hot:{water.id}", DONGCHENG)
    assert (problem.week, problem.status, problem.hot_issue_id) == (WEEK, "open", water.id)
    sups = db.scalars(select(Supervision).where(Supervision.case_id.in_(made["water"]))).all()
    assert len(sups) == 5
    assert {s.reason for s in sups} == {f"每周一题：{water.description}"}
    assert {s.kind for s in sups} == {"supervise"}
    links = db.scalars(
        select(WeeklyProblemOrder).where(WeeklyProblemOrder.problem_id == problem.id)
    ).all()
    assert {link.supervision_id for link in links} == {s.id for s in sups}
    events = db.scalars(
        select(CaseEvent).where(
            CaseEvent.case_id.in_(made["water"]), CaseEvent.action == "supervise"
        )
    ).all()
    assert len(events) == 5
    assert db.scalars(
        select(AuditEntry).where(AuditEntry.action == "hotline.weekly_problem.pick")
    ).one()
    # The picked issue is no candidate any more; a second pick the same week is a 409.
    assert f"hot:{water.id}" not in {c.key for c in weekly.candidates(db, WEEK)}
    with pytest.raises(Conflict):
        pick(db, settings, f"order:{made['noise'][0]}", DONGCHENG)


def test_reports_by_the_responsible_unit_only_then_close(db: Session, settings: Settings) -> None:
    made = world(db, settings)
    water = by_orders(db)[frozenset(made["water"])]
    problem = pick(db, settings, f"hot:{water.id}", DONGCHENG)
    other = pick(db, settings, f"order:{made['noise'][0]}", HOUSING, week="2026-W41")
    leader = actor(db, "dc.leader")  # 东城街道, hotline:weekly:report
    row = weekly.report(db, leader, problem.id, "已约谈物业，周五前恢复供水")
    assert row.unit_id == unit_id(db, DONGCHENG)
    with pytest.raises(PermissionDenied):
        weekly.report(db, actor(db, "dc.handler"), problem.id, "无权报送")
    with pytest.raises(NotFound):  # not responsible: not even visible
        weekly.report(db, leader, other.id, "不是本单位的")
    weekly.report(db, actor(db, "supervisor"), problem.id, "督办组已现场核查")
    d = weekly.detail(db, actor(db, "supervisor"), problem.id)
    assert [r.text for r, _ in d.reports] == ["已约谈物业，周五前恢复供水", "督办组已现场核查"]
    assert [p.id for p in weekly.list_problems(db, leader)] == [problem.id]
    with pytest.raises(PermissionDenied):
        weekly.close(db, leader, problem.id, "结束")
    closed = weekly.close(db, actor(db, "supervisor"), problem.id, "已恢复供水并建立停水通知机制")
    assert (closed.status, closed.conclusion) == ("closed", "已恢复供水并建立停水通知机制")
    with pytest.raises(Conflict):
        weekly.close(db, actor(db, "supervisor"), problem.id, "再次")
    with pytest.raises(Conflict):
        weekly.report(db, leader, problem.id, "结束后报送")


def test_api_and_pages(db: Session, settings: Settings, api: Api, client: TestClient) -> None:
    made = world(db, settings)
    water = by_orders(db)[frozenset(made["water"])]
    db.commit()
    supervisor = api("supervisor")
    cands = supervisor.get("/api/v1/weekly-problems/candidates", params={"week": WEEK})
    assert cands.status_code == 200
    assert cands.json()[0]["key"] == f"hot:{water.id}"
    assert api("dispatcher").get("/api/v1/weekly-problems/candidates").status_code == 403
    body = {
        "week": WEEK,
        "candidate_key": f"hot:{water.id}",
        "lead_unit_id": str(unit_id(db, DONGCHENG)),
    }
    made_problem = supervisor.post("/api/v1/weekly-problems", json=body)
    assert made_problem.status_code == 201, made_problem.text
    problem = made_problem.json()
    assert len(problem["orders"]) == 5
    assert all(o["supervision_id"] for o in problem["orders"])
    again = supervisor.post(
        "/api/v1/weekly-problems", json={**body, "candidate_key": f"order:{made['noise'][0]}"}
    )
    assert again.status_code == 409
    report = api("dc.leader").post(
        f"/api/v1/weekly-problems/{problem['id']}/reports", json={"text": "已整改"}
    )
    assert report.status_code == 201
    assert report.json()["unit"] == "东城街道"

    csrf = login(client, "supervisor")
    page = get(client, "/hotline/weekly")
    assert page.status == 200
    assert water.description in page.response.text
    detail = get(client, f"/hotline/weekly/{problem['id']}")
    assert "已整改" in detail.response.text
    closed = post(
        client,
        f"/hotline/weekly/{problem['id']}/close",
        {"csrf_token": csrf, "conclusion": "已解决", "version": str(problem["version"])},
    )
    assert closed.status_code == 303
    login(client, "dc.leader")
    assert get(client, f"/hotline/weekly/{problem['id']}").status == 200
