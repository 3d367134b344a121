"""One order through the whole closed loop over the API, with exact states and clocks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import frozen_at, unit_id
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.clock import FrozenClock

Api = Callable[[str], TestClient]

# Wednesday 30 September 2026, 09:00 Beijing time: National Day starts the next day.
START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> FrozenClock:
    yield from frozen_at(START)


def new_order(api: Api, **overrides: object) -> dict:
    body = {
        "channel": "phone",
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "content": "东城街道岗贝社区某小区电动车在楼道充电，存在消防隐患。",
        "request_type": "complaint",
        "category": "urban",
        "urgency": "normal",
        **overrides,
    }
    response = api("calltaker").post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def act(api: Api, who: str, order: dict, action: str, **body: object) -> dict:
    response = api(who).post(f"/api/v1/orders/{order['id']}/actions/{action}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_order_goes_round_the_closed_loop(api: Api, db: Session, frozen: FrozenClock) -> None:
    order = new_order(api)
    assert order["number"] == "GD20260930000001"
    assert order["status"] == "registered"
    assert order["requester_phone"] == "138****8000"
    assert order["due_at"] == "2026-09-30T01:30:00Z"  # dispatch within 30 minutes
    dongcheng = unit_id(db, "441900003000")
    order = act(api, "dispatcher", order, "dispatch", unit_id=str(dongcheng), note="属地处理")
    assert order["status"] == "dispatched"
    assert [u["name"] for u in order["units"]] == ["东城街道"]
    # Two working hours from 09:00 on a working day: 11:00 Beijing time.
    assert order["due_at"] == "2026-09-30T03:00:00Z"
    order = act(api, "dc.handler", order, "sign_for")
    assert order["status"] == "handling"
    # Five working days counted from the next day, across National Day (1-7 October) and
    # the make-up Saturday 10 October: 8, 9, 10, 12, 13 October, closing at 17:30.
    assert order["due_at"] == "2026-10-13T09:30:00Z"
    order = act(api, "dc.handler", order, "reply", note="已联系物业清理楼道，设置集中充电点。")
    assert order["status"] == "replied"
    order = act(api, "callback", order, "callback", solved=True, satisfaction="satisfied")
    assert order["status"] == "closed"
    assert order["due_at"] is None
    timeline = api("dispatcher").get(f"/api/v1/orders/{order['id']}/timeline").json()
    assert [t["action"] for t in timeline] == ["register", "dispatch", "sign_for", "reply", "close"]
    actions = (
        db.execute(
            select(AuditEntry.action)
            .where(AuditEntry.entity_id == order["id"])
            .order_by(AuditEntry.seq)
        )
        .scalars()
        .all()
    )
    assert actions == [
        "hotline.register",
        "hotline.dispatch",
        "hotline.sign_for",
        "hotline.reply",
        "hotline.close",
    ]


def test_another_town_cannot_see_or_touch_the_order(
    api: Api, db: Session, frozen: FrozenClock
) -> None:
    order = new_order(api)
    act(api, "dispatcher", order, "dispatch", unit_id=str(unit_id(db, "441900003000")))
    assert api("sj.handler").get(f"/api/v1/orders/{order['id']}").status_code == 404
    response = api("sj.handler").post(f"/api/v1/orders/{order['id']}/actions/sign_for", json={})
    assert response.status_code == 404
    assert api("sj.handler").get("/api/v1/orders").json()["total"] == 0
    assert api("dc.handler").get("/api/v1/orders").json()["total"] == 1


def test_a_nul_character_is_refused_not_a_server_error(api: Api, db: Session) -> None:
    calltaker = api("calltaker")
    before = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    response = calltaker.post(
        "/api/v1/orders",
        json={"requester_name": "陈先生", "requester_phone": "13800138000", "content": "x\u0000y"},
    )
    if db.get_bind().dialect.name == "sqlite":
        # SQLite stores NUL inside text; PostgreSQL refuses it.
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unstorable_input"
    after = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    assert after == before


BAD_ORDERS = [
    pytest.param({"content": ""}, 422, "validation_failed", id="missing-text"),
    # (A megabyte is refused before it is read: tests/test_abuse_limits.py.)
    pytest.param({"content": "长" * 100_000}, 422, "validation_failed", id="over-long-text"),
    pytest.param({"requester_phone": "1380013800x"}, 422, "validation_failed", id="bad-phone"),
    pytest.param({"category": "weather"}, 422, "validation_failed", id="unknown-category"),
]


@pytest.mark.parametrize(("change", "status", "code"), BAD_ORDERS)
def test_a_bad_order_is_refused_and_changes_nothing(
    api: Api, db: Session, change: dict, status: int, code: str
) -> None:
    calltaker = api("calltaker")
    before = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    body = {
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "content": "路灯不亮",
        **change,
    }
    response = calltaker.post("/api/v1/orders", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] == "提交的内容格式有误，请检查后重试"
    after = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    assert after == before


def test_a_wrong_token_is_refused_and_changes_nothing(client: TestClient, db: Session) -> None:
    before = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    response = client.post(
        "/api/v1/orders",
        json={"requester_name": "陈先生", "requester_phone": "13800138000", "content": "路灯不亮"},
        headers={"Authorization": "Bearer zs_000000000000_forged"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_token"
    after = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    assert after == before


def test_the_order_list_pages_and_refuses_unknown_parameters(api: Api) -> None:
    for _ in range(3):
        new_order(api)
    dispatcher = api("dispatcher")
    page = dispatcher.get("/api/v1/orders", params={"limit": 2, "offset": 1})
    assert page.status_code == 200, page.text
    assert (page.json()["total"], len(page.json()["items"])) == (3, 2)
    assert (page.json()["limit"], page.json()["offset"]) == (2, 1)
    assert dispatcher.get("/api/v1/orders", params={"limit": 0}).status_code == 422
    assert dispatcher.get("/api/v1/orders", params={"colour": "red"}).status_code == 422
