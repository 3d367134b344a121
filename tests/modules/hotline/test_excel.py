"""Excel export of order lists: exact workbook, jurisdiction, masking, Beijing time, audit."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import frozen_at, unit_id
from tests.web.helpers import login
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.clock import FrozenClock
from zhengshu.modules.hotline import excel

Api = Callable[[str], TestClient]

# Wednesday 30 September 2026, 09:00 Beijing time.
START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
DONGCHENG = "441900003000"
SHIJIE = "441900101000"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

HEADER = [
    "工单编号",
    "受理时间",
    "渠道",
    "诉求类型",
    "分类",
    "紧急程度",
    "标题",
    "诉求人",
    "联系电话",
    "地址",
    "状态",
    "主办单位",
    "办理时限",
    "预警",
    "办结时间",
]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


def register(api: Api, **overrides: object) -> dict[str, Any]:
    body = {
        "channel": "phone",
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "content": "楼道电动车充电，存在消防隐患。",
        "request_type": "complaint",
        "category": "urban",
        "urgency": "normal",
        **overrides,
    }
    response = api("calltaker").post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def dispatch(api: Api, order: dict[str, Any], unit: object) -> None:
    response = api("dispatcher").post(
        f"/api/v1/orders/{order['id']}/actions/dispatch", json={"unit_id": str(unit)}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def orders(api: Api, db: Session, frozen: FrozenClock) -> list[dict[str, Any]]:
    """Three orders ten minutes apart: Dongcheng's, Shijie's, and one not yet dispatched."""
    first = register(api, title="楼道充电隐患", address="东城街道岗贝社区 3 栋")
    dispatch(api, first, unit_id(db, DONGCHENG))
    frozen.advance(timedelta(minutes=10))
    second = register(
        api,
        title='=HYPERLINK("http://evil.example","点我")',
        requester_name="何女士",
        requester_phone="0769-22123456",
        request_type="consultation",
        urgency="urgent",
    )
    dispatch(api, second, unit_id(db, SHIJIE))
    frozen.advance(timedelta(minutes=10))
    third = register(api, title="小区供水问题", category="water", requester_phone="12345")
    return [first, second, third]


def workbook_rows(content: bytes) -> tuple[Any, list[list[Any]]]:
    book = load_workbook(io.BytesIO(content))
    sheet = book.active
    assert sheet is not None
    return sheet, [[c.value for c in row] for row in sheet.iter_rows()]


def export_audits(db: Session) -> list[AuditEntry]:
    return list(
        db.execute(
            select(AuditEntry).where(AuditEntry.action == "hotline.export").order_by(AuditEntry.seq)
        ).scalars()
    )


def test_the_web_export_holds_every_matching_order_exactly(
    client: TestClient, db: Session, orders: list[dict[str, Any]]
) -> None:
    login(client, "dispatcher")
    # Empty fields of a GET form, and the list page's paging, are no filter.
    response = client.get("/hotline/orders/export.xlsx?category=urban&status=&unit_id=&page=2")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    assert response.headers["content-disposition"] == (
        'attachment; filename="____-20260930-092000.xlsx"; '
        "filename*=UTF-8''%E5%B7%A5%E5%8D%95%E5%AF%BC%E5%87%BA-20260930-092000.xlsx"
    )
    assert response.headers["x-export-rows"] == "2"
    sheet, rows = workbook_rows(response.content)
    assert sheet.title == "工单"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:O3"
    assert sheet.column_dimensions["G"].width == 40
    assert rows == [
        HEADER,
        [
            "GD20260930000002",
            "2026-09-30 09:10:00",
            "电话",
            "咨询",
            "城市管理",
            "紧急",
            '=HYPERLINK("http://evil.example","点我")',
            "何女士",
            "076******3456",
            None,
            "待签收",
            "石碣镇",
            "2026-09-30 10:10:00",
            "正常",
            None,
        ],
        [
            "GD20260930000001",
            "2026-09-30 09:00:00",
            "电话",
            "投诉",
            "城市管理",
            "一般",
            "楼道充电隐患",
            "陈先生",
            "138****8000",
            "东城街道岗贝社区 3 栋",
            "待签收",
            "东城街道",
            "2026-09-30 11:00:00",
            "正常",
            None,
        ],
    ]
    # A citizen's "=..." is kept as text, never turned into a formula.
    assert sheet["G2"].data_type == "s"
    (entry,) = export_audits(db)
    assert entry.actor_name == "派单员 李志强(dispatcher)"
    assert entry.entity_type == "order_export"
    assert entry.after == {"format": "xlsx", "filters": {"category": "urban"}, "rows": 2}


def test_a_town_exports_only_its_own_orders(
    api: Api, db: Session, orders: list[dict[str, Any]]
) -> None:
    response = api("dc.handler").get("/api/v1/orders/export.xlsx")
    assert response.status_code == 200, response.text
    _, rows = workbook_rows(response.content)
    assert [r[0] for r in rows] == ["工单编号", "GD20260930000001"]
    assert api("sj.handler").get("/api/v1/orders/export.xlsx?status=dispatched").status_code == 200
    _, city = workbook_rows(api("leader").get("/api/v1/orders/export.xlsx").content)
    assert [r[0] for r in city[1:]] == [
        "GD20260930000003",
        "GD20260930000002",
        "GD20260930000001",
    ]
    assert city[1][8] == "*****"  # a five-digit number is all mask
    assert city[1][10] == "已受理待派单"
    assert city[1][12] == "2026-09-30 09:50:00"  # dispatch within 30 minutes
    assert [(e.actor_name, e.after) for e in export_audits(db)] == [
        ("东城街道承办人 吴涛(dc.handler)", {"format": "xlsx", "filters": {}, "rows": 1}),
        (
            "石碣镇承办人 何军(sj.handler)",
            {"format": "xlsx", "filters": {"status": "dispatched"}, "rows": 1},
        ),
        ("市领导 刘副市长(leader)", {"format": "xlsx", "filters": {}, "rows": 3}),
    ]


def test_export_in_pages_and_beijing_dates(
    client: TestClient,
    db: Session,
    orders: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(excel, "PAGE_SIZE", 2)
    login(client, "leader")
    # A time typed in a form is Beijing time: from 09:10 that day on.
    response = client.get("/hotline/orders/export.xlsx?created_from=2026-09-30T09:10")
    assert response.status_code == 200, response.text
    _, rows = workbook_rows(response.content)
    assert [r[0] for r in rows[1:]] == ["GD20260930000003", "GD20260930000002"]
    # A date alone is that day from midnight, Beijing time (the day before in UTC).
    response = client.get("/hotline/orders/export.xlsx?created_to=2026-09-30")
    _, rows = workbook_rows(response.content)
    assert rows[1:] == []
    response = client.get("/hotline/orders/export.xlsx")
    _, rows = workbook_rows(response.content)
    assert len(rows) == 4


def test_too_many_rows_is_refused_with_a_clear_message(
    client: TestClient,
    db: Session,
    orders: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(excel, "MAX_ROWS", 2)
    login(client, "leader")
    response = client.get("/hotline/orders/export.xlsx", headers={"accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "export_too_large"
    assert response.json()["error"]["message"] == (
        "符合条件的工单共 3 条，超过单次导出上限 2 条，请缩小筛选范围（如按受理时间分段）后再导出"
    )
    assert export_audits(db) == []


def test_export_needs_the_read_permission_and_a_login(
    client: TestClient, db: Session, orders: list[dict[str, Any]]
) -> None:
    response = client.get("/hotline/orders/export.xlsx", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/hotline/orders/export.xlsx"
    login(client, "auditor")
    assert client.get("/hotline/orders/export.xlsx").status_code == 403
    assert export_audits(db) == []
