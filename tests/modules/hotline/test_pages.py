"""The 12345 console, page by page, through the forms a browser would post.

Each test logs in through ``POST /login``, reads the CSRF token and the order's version
out of the page it was shown and posts the forms on it. Assertions read the rendered text
and, for changes, the database behind the page. The clock stands at Wednesday
30 September 2026, 09:00 Beijing time (National Day starts the next day).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import QueryCounter, frozen_at, unit_id
from tests.web.helpers import Node, Page, full_title, get, login, post
from zhengshu.casework import engine
from zhengshu.casework.models import Case
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import ActionRequest, OrderCreate
from zhengshu.modules.hotline.service import HotlineConfig

START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)  # 09:00 Beijing time
NOW = "2026-09-30 09:00"
DONGCHENG = "441900003000"
SHIJIE = "441900101000"
GANGBEI = "441900003001"  # 岗贝社区, a community of Dongcheng
HOUSING = "D001"  # 住建局
NUMBER = "GD20260930000001"
NO_PERMISSION = "您没有执行此操作的权限"
CONTENT = "东城街道岗贝社区某小区电动车在楼道充电，存在消防隐患，请尽快处理。"
TITLE = "东城街道岗贝社区某小区电动车在楼道充电，存在消防隐患，请尽快…"
REPLY = "已联系物业清理楼道，设置集中充电点。"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


# --- helpers ---------------------------------------------------------------------------


def table_rows(table: Node) -> list[list[str]]:
    return [tr.texts("td") for tr in table.find_all("tr") if tr.find_all("td")]


def orders_table(page: Page) -> list[list[str]]:
    tables = page.dom.find_all("table", "orders")
    assert len(tables) == 1
    return table_rows(tables[0])


def timeline(page: Page) -> list[list[str]]:
    return table_rows(page.dom.one("table", "timeline"))


def forms(page: Page) -> list[str]:
    """The titles of the action forms the order page offers."""
    aside = page.dom.one("aside", "order-actions")
    return [section.one("h3").text for section in aside.find_all("section", "action")]


def version(page: Page) -> str:
    values = {n.attrs["value"] for n in page.dom.find_all("input", name="version")}
    assert len(values) == 1, values
    return values.pop()


def flashed(response: Response) -> tuple[str, str]:
    """The path a 303 goes to and the flash message it carries."""
    assert response.status_code == 303, response.text
    target = urlsplit(response.headers["location"])
    return target.path, parse_qs(target.query)["flash"][0]


def intake_form(**overrides: str) -> dict[str, str]:
    return {
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "requester_id_number": "",
        "address": "东城街道岗贝社区某小区 3 栋",
        "location_unit_id": "",
        "channel": "phone",
        "request_type": "complaint",
        "category": "urban",
        "urgency": "normal",
        "content": CONTENT,
        "answer": "",
        "transfer_to": "",
        "transfer_note": "",
        **overrides,
    }


def register(client: TestClient, **overrides: str) -> uuid.UUID:
    """Take a call in through the intake form as the call-taker; the new order's id."""
    csrf = login(client, "calltaker")
    response = post(client, "/hotline/intake", {"csrf_token": csrf, **intake_form(**overrides)})
    path, _ = flashed(response)
    match = re.fullmatch(r"/hotline/orders/([0-9a-f-]{36})", path)
    assert match, path
    return uuid.UUID(match.group(1))


def act(client: TestClient, who: str, order_id: uuid.UUID, action: str, **fields: Any) -> Response:
    """Open the order as ``who`` and post one of its forms with the version shown."""
    csrf = login(client, who)
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.status == 200
    data = {"csrf_token": csrf, "version": version(page), **fields}
    return post(client, f"/hotline/orders/{order_id}/act/{action}", data)


def status_of(db: Session, order_id: uuid.UUID) -> str:
    db.expire_all()
    case = db.get(Case, order_id)
    assert case is not None
    return case.status


def count_orders(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Order)).scalar_one()


# --- pages and roles ---------------------------------------------------------------------

PAGES_BY_ROLE = [
    ("calltaker", "/hotline/intake", "受理登记"),
    ("calltaker", "/hotline/orders", "工单查询 共 0 件"),
    ("dispatcher", "/hotline/orders", "工单查询 共 0 件"),
    ("dispatcher", "/hotline/queue/dispatch", "待派单 共 0 件"),
    ("dispatcher", "/hotline/queue/returns", "退单审核 共 0 件"),
    ("dispatcher", "/hotline/queue/extensions", "延期审批 共 0 件"),
    ("dc.handler", "/hotline/queue/inbox", "待签收 共 0 件"),
    ("dc.handler", "/hotline/queue/handling", "办理中 共 0 件"),
    ("dc.leader", "/hotline/queue/inbox", "待签收 共 0 件"),
    ("dc.leader", "/hotline/board", "督办看板 在办 0 件"),
    ("callback", "/hotline/queue/callback", "待回访 共 0 件"),
    ("supervisor", "/hotline/board", "督办看板 在办 0 件"),
    ("leader", "/hotline/board", "督办看板 在办 0 件"),
]


@pytest.mark.parametrize(("username", "path", "h1"), PAGES_BY_ROLE)
def test_each_page_renders_for_its_role(
    client: TestClient, username: str, path: str, h1: str
) -> None:
    login(client, username)
    page = get(client, path)
    assert page.status == 200
    assert page.h1 == h1
    assert page.title == full_title(h1.split(" ", maxsplit=1)[0])


REFUSED = [
    ("admin", "/hotline/orders"),
    ("admin", "/hotline/intake"),
    ("auditor", "/hotline/board"),
    ("dispatcher", "/hotline/intake"),
    ("dispatcher", "/hotline/queue/inbox"),
    ("dc.handler", "/hotline/intake"),
    ("dc.handler", "/hotline/queue/dispatch"),
    ("dc.handler", "/hotline/queue/callback"),
    ("dc.handler", "/hotline/board"),
    ("calltaker", "/hotline/queue/dispatch"),
    ("callback", "/hotline/queue/extensions"),
    ("supervisor", "/hotline/queue/returns"),
]


@pytest.mark.parametrize(("username", "path"), REFUSED)
def test_pages_refuse_roles_without_the_permission(
    client: TestClient, username: str, path: str
) -> None:
    login(client, username)
    page = get(client, path)
    assert page.status == 403
    assert page.h1 == "没有权限"
    assert page.error_message == NO_PERMISSION


def test_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/hotline/orders?status=registered", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/hotline/orders%3Fstatus%3Dregistered"


def test_unknown_queue_and_order_are_not_found(client: TestClient) -> None:
    login(client, "dispatcher")
    page = get(client, "/hotline/queue/everything")
    assert page.status == 404
    assert page.error_message == "找不到该待办队列"
    page = get(client, f"/hotline/orders/{uuid.UUID(int=0)}")
    assert page.status == 404
    assert page.error_message == "工单不存在或无权查看"
    assert get(client, "/hotline/orders/not-a-uuid").status == 404


def test_another_town_gets_not_found(client: TestClient, db: Session) -> None:
    order_id = register(client)
    act(client, "dispatcher", order_id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    login(client, "sj.handler")
    assert get(client, f"/hotline/orders/{order_id}").status == 404
    assert orders_table(get(client, "/hotline/queue/inbox")) == [["暂无待办工单"]]
    csrf = login(client, "sj.handler")
    response = post(
        client,
        f"/hotline/orders/{order_id}/act/sign_for",
        {"csrf_token": csrf, "version": "2"},
    )
    assert response.status_code == 404
    assert status_of(db, order_id) == "dispatched"


# --- nav and home tiles ------------------------------------------------------------------

ORG = ["组织机构", "人员", "工作日历"]
# What the hotline learns from its orders: dashboard, warnings, hot issues, KPIs, notices.
INSIGHT = ["驾驶舱", "预警", "热点", "指标", "通报"]
INSIGHT_TILES = ["领导驾驶舱", "舆情预警", "热点问题"]
NAV_BY_ROLE = {
    "calltaker": ["首页", "受理", "工单", *ORG],
    "dispatcher": ["首页", "工单", "智能派单", "热点", *ORG],
    "dc.handler": ["首页", "工单", *ORG],
    "dc.leader": ["首页", "工单", "督办看板", *INSIGHT, *ORG],
    "callback": ["首页", "工单", *ORG],
    "supervisor": ["首页", "工单", "督办看板", *INSIGHT, *ORG],
    "admin": ["首页", "智能派单", *ORG, "接口令牌"],
}
TILES_BY_ROLE = {
    "calltaker": ["受理登记", "异步受理队列", "工单查询", "本辖区人员", "办理时限计算"],
    "dispatcher": [
        "待派单",
        "退单审核",
        "延期审批",
        "热点问题",
        "工单查询",
        "本辖区人员",
        "办理时限计算",
    ],
    "dc.handler": ["待签收", "办理中", "工单查询", "本辖区人员", "办理时限计算"],
    "dc.leader": [
        "待签收",
        "办理中",
        "督办看板",
        *INSIGHT_TILES,
        "工单查询",
        "本辖区人员",
        "办理时限计算",
    ],
    "callback": ["待回访", "工单查询", "本辖区人员", "办理时限计算"],
    "supervisor": ["督办看板", *INSIGHT_TILES, "工单查询", "本辖区人员", "办理时限计算"],
}


@pytest.mark.parametrize("username", sorted(NAV_BY_ROLE))
def test_nav_and_tiles_lead_each_role_to_its_hotline_pages(
    client: TestClient, username: str
) -> None:
    login(client, username)
    home = get(client, "/")
    assert home.nav == NAV_BY_ROLE[username]
    if username in TILES_BY_ROLE:
        assert home.tiles == TILES_BY_ROLE[username]
    links = [a.attrs["href"] for a in home.dom.one("nav", "mainnav").find_all("a")]
    links += [a.attrs["href"] for a in home.dom.find_all("a", "tile")]
    for href in links:
        assert client.get(href, follow_redirects=False).status_code == 200, (username, href)


def test_nav_marks_the_hotline_section(client: TestClient) -> None:
    order_id = register(client)
    assert get(client, "/hotline/intake").active_nav == ["受理"]
    assert get(client, "/hotline/orders").active_nav == ["工单"]
    assert get(client, f"/hotline/orders/{order_id}").active_nav == ["工单"]


# --- the closed loop through the forms ---------------------------------------------------


def test_one_order_goes_round_the_loop_through_the_pages(client: TestClient, db: Session) -> None:
    dongcheng = unit_id(db, DONGCHENG)
    # 受理: the call-taker checks the number, then registers the call.
    csrf = login(client, "calltaker")
    check = get(client, "/hotline/intake?phone=13800138000")
    assert check.dom.one("p", "no-duplicates").text == "号码 13800138000 近 30 天没有工单。"
    assert check.value("requester_phone") == "13800138000"
    response = post(
        client,
        "/hotline/intake",
        {
            "csrf_token": csrf,
            **intake_form(location_unit_id=str(unit_id(db, GANGBEI))),
        },
    )
    path, message = flashed(response)
    assert message == f"已受理，工单编号 {NUMBER}"
    order_id = uuid.UUID(path.rsplit("/", 1)[1])
    assert status_of(db, order_id) == "registered"
    page = get(client, f"{path}?flash={message}")
    assert page.flashes == [message]
    assert page.h1 == f"工单 {NUMBER} 已受理待派单"
    assert page.title == full_title(f"工单 {NUMBER}")
    assert page.definitions() == {
        "标题": TITLE,
        "诉求人": "陈先生",
        "联系电话": "138****8000 查看完整号码",
        "身份证号": "—",
        "地址": "东城街道岗贝社区某小区 3 栋",
        "所属镇街/村居": "岗贝社区",
        "受理渠道": "电话",
        "诉求类型": "投诉",
        "诉求分类": "城市管理",
        "紧急程度": "一般",
        "主办单位": "—",
        "协办单位": "—",
        "办理时限": "2026-09-30 09:30 派单环节",
        "受理时间": NOW,
    }
    assert page.dom.one("div", "content").text == CONTENT
    # A call-taker may still answer, hand on or merge it; dispatching is not theirs.
    assert forms(page) == ["并单", "直接答复", "移交 110/119/120"]

    # 派单: the dispatcher finds it in the queue and sends it to Dongcheng.
    login(client, "dispatcher")
    queue = get(client, "/hotline/queue/dispatch")
    assert queue.h1 == "待派单 共 1 件"
    assert orders_table(queue) == [
        [NUMBER, TITLE, "陈先生 138****8000", "城市管理", "已受理待派单", "—",
         "2026-09-30 09:30", NOW],
    ]  # fmt: skip
    page = get(client, f"/hotline/orders/{order_id}")
    assert forms(page) == ["派单", "并单", "移交 110/119/120"]
    # The category's usual department is preselected; the dispatcher picks the town.
    assert page.selected("unit_id") == ["东莞市城市管理和综合执法局"]
    response = act(
        client, "dispatcher", order_id, "dispatch", unit_id=str(dongcheng), note="属地处理"
    )
    assert flashed(response) == (f"/hotline/orders/{order_id}", "已派单至 东城街道")
    assert status_of(db, order_id) == "dispatched"

    # 签收: Dongcheng's handler sees it in the inbox and signs for it.
    login(client, "dc.handler")
    inbox = get(client, "/hotline/queue/inbox")
    assert [row[0] for row in orders_table(inbox)] == [NUMBER]
    page = get(client, f"/hotline/orders/{order_id}")
    assert forms(page) == ["签收", "退单"]
    assert page.definitions()["办理时限"] == "2026-09-30 11:00 签收环节"
    response = act(client, "dc.handler", order_id, "sign_for")
    assert flashed(response)[1] == "已签收，请在办理时限内答复"
    assert status_of(db, order_id) == "handling"

    # 答复
    page = get(client, f"/hotline/orders/{order_id}")
    assert forms(page) == ["联系诉求人", "申请延期", "答复"]
    # Five working days from the next day, across National Day: 13 October, 17:30.
    assert page.definitions()["办理时限"] == "2026-10-13 17:30 办理环节"
    handling = get(client, "/hotline/queue/handling")
    sections = handling.dom.find_all("table", "orders")
    assert [[row[0] for row in table_rows(t)] for t in sections] == [
        [NUMBER],
        ["暂无待办工单"],
        ["暂无待办工单"],
    ]
    response = act(client, "dc.handler", order_id, "reply", note=REPLY)
    assert flashed(response)[1] == "已答复，等待回访"
    assert status_of(db, order_id) == "replied"

    # 回访 -> 办结
    login(client, "callback")
    assert [row[0] for row in orders_table(get(client, "/hotline/queue/callback"))] == [NUMBER]
    page = get(client, f"/hotline/orders/{order_id}")
    assert forms(page) == ["回访"]
    assert page.dom.one("div", "reply").text == REPLY
    response = act(client, "callback", order_id, "callback", solved="yes", satisfaction="satisfied")
    assert flashed(response)[1] == "回访完成，工单已办结"
    assert status_of(db, order_id) == "closed"

    page = get(client, f"/hotline/orders/{order_id}")
    assert page.h1 == f"工单 {NUMBER} 已办结"
    assert page.definitions()["办理时限"] == "已结束"
    assert page.definitions()["办结时间"] == NOW
    assert page.dom.one("p", "callback-result").text == "已解决 · 满意"
    assert forms(page) == []
    assert timeline(page) == [
        [NOW, "受理", "话务员 陈小敏(calltaker)", "东莞市政务服务和数据管理局", "渠道：电话"],
        [NOW, "派单", "派单员 李志强(dispatcher)", "东城街道", "承办单位：东城街道属地处理"],
        [NOW, "签收", "东城街道承办人 吴涛(dc.handler)", "东城街道", ""],
        [NOW, "答复", "东城街道承办人 吴涛(dc.handler)", "东城街道", REPLY],
        [NOW, "回访办结", "回访员 王丽(callback)", "东莞市政务服务和数据管理局", "已解决；满意"],
    ]
    assert orders_table(get(client, "/hotline/queue/callback")) == [["暂无待办工单"]]


def test_a_stale_page_is_refused_with_409(client: TestClient, db: Session) -> None:
    order_id = register(client)
    csrf = login(client, "dispatcher")
    stale = get(client, f"/hotline/orders/{order_id}")
    assert version(stale) == "1"
    response = act(client, "dispatcher", order_id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    assert flashed(response)[1] == "已派单至 东城街道"
    # A second dispatcher still has the page of version 1 open and sends it to Shijie.
    csrf = login(client, "dispatcher")
    response = post(
        client,
        f"/hotline/orders/{order_id}/act/dispatch",
        {"csrf_token": csrf, "version": "1", "unit_id": str(unit_id(db, SHIJIE))},
    )
    page = Page.of(response)
    assert page.status == 409
    assert page.h1 == "操作冲突"
    assert page.error_message == "工单已被他人处理，请刷新后重试"
    db.expire_all()
    case = db.get(Case, order_id)
    assert case is not None
    assert (case.status, case.lead_unit_id) == ("dispatched", unit_id(db, DONGCHENG))


def test_an_action_form_needs_its_version(client: TestClient, db: Session) -> None:
    order_id = register(client)
    csrf = login(client, "dispatcher")
    response = post(
        client,
        f"/hotline/orders/{order_id}/act/dispatch",
        {"csrf_token": csrf, "unit_id": str(unit_id(db, DONGCHENG))},
    )
    page = Page.of(response)
    assert page.status == 400
    assert page.error_message == "页面缺少工单版本，请刷新后重试"
    assert status_of(db, order_id) == "registered"


def test_an_action_without_csrf_is_refused(client: TestClient, db: Session) -> None:
    order_id = register(client)
    login(client, "dispatcher")
    response = post(
        client,
        f"/hotline/orders/{order_id}/act/dispatch",
        {"version": "1", "unit_id": str(unit_id(db, DONGCHENG))},
    )
    assert response.status_code == 403
    assert status_of(db, order_id) == "registered"


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"content": "   "}, "诉求内容：必填，不超过 5000 字"),
        ({"requester_phone": "1380013"}, "联系电话：请填写 11 位手机号或带区号的固定电话"),
        ({"category": "ufo"}, "诉求分类：请从列表中选择"),
        ({"requester_id_number": "12345"}, "身份证号：应为 18 位（末位可为 X），不知道可不填"),
        ({"answer": "请拨打 12333 咨询"}, None),  # an answer without 直接答复 ticked is ignored
        (
            {"direct_answer": "on", "answer": ""},
            "直接答复：请填写答复内容",
        ),
        (
            {"direct_answer": "on", "answer": "已答复", "transfer_to": "110", "transfer_note": "x"},
            "直接答复与移交 110/119/120 只能选一项",
        ),
        ({"transfer_to": "999", "transfer_note": "x"}, "移交对象：请选择 110、119 或 120"),
        (
            {"transfer_to": "119", "transfer_note": ""},
            "移交说明：请填写移交情况（如已三方转接 110）",
        ),
    ],
)
def test_bad_intake_input_shows_the_form_again_and_creates_nothing(
    client: TestClient, db: Session, overrides: dict[str, str], problem: str | None
) -> None:
    csrf = login(client, "calltaker")
    before = count_orders(db)
    response = post(client, "/hotline/intake", {"csrf_token": csrf, **intake_form(**overrides)})
    if problem is None:
        assert response.status_code == 303
        assert count_orders(db) == before + 1
        return
    page = Page.of(response)
    assert page.status == 422
    assert page.h1 == "受理登记"
    flash = page.dom.one("div", "flash")
    assert flash.classes == {"flash", "error"}
    assert flash.one("b").text == "受理信息有误，请按提示修改后重新提交"
    assert flash.one("ul", "form-errors").texts("li") == [problem]
    # What the call-taker typed is still there.
    assert page.value("requester_name") == "陈先生"
    assert page.dom.one("textarea", name="content").text == (
        overrides.get("content", CONTENT).strip()
    )
    assert count_orders(db) == before


def test_several_problems_are_listed_together(client: TestClient, db: Session) -> None:
    csrf = login(client, "calltaker")
    response = post(
        client,
        "/hotline/intake",
        {"csrf_token": csrf, **intake_form(requester_name="", requester_phone="12", content="")},
    )
    page = Page.of(response)
    assert page.status == 422
    assert page.dom.one("ul", "form-errors").texts("li") == [
        "诉求人姓名：必填，不超过 100 字",
        "联系电话：请填写 11 位手机号或带区号的固定电话",
        "诉求内容：必填，不超过 5000 字",
    ]
    assert count_orders(db) == 0


def test_a_location_that_is_not_a_town_or_village_is_refused(
    client: TestClient, db: Session
) -> None:
    csrf = login(client, "calltaker")
    response = post(
        client,
        "/hotline/intake",
        {"csrf_token": csrf, **intake_form(location_unit_id=str(unit_id(db, HOUSING)))},
    )
    page = Page.of(response)
    assert page.status == 400
    assert page.error_message == "所属镇街/村居无效"
    assert count_orders(db) == 0


def test_an_action_refused_by_the_workflow_shows_why(client: TestClient, db: Session) -> None:
    order_id = register(client)
    act(client, "dispatcher", order_id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    page = Page.of(act(client, "dc.handler", order_id, "return_order", note=""))
    assert page.status == 400
    assert page.error_message == "退单须填写说明"
    page = Page.of(act(client, "dc.handler", order_id, "reply", note="已处理"))
    assert page.status == 409
    assert page.error_message == "工单当前为“待签收”，不能答复"
    # The state is checked first: a dispatched order cannot be dispatched by anyone.
    page = Page.of(
        act(client, "dc.handler", order_id, "dispatch", unit_id=str(unit_id(db, SHIJIE)))
    )
    assert page.status == 409
    assert page.error_message == "工单当前为“待签收”，不能派单"
    page = Page.of(
        act(client, "dc.handler", order_id, "redispatch", unit_id=str(unit_id(db, SHIJIE)))
    )
    assert page.status == 403
    assert page.error_message == NO_PERMISSION
    page = Page.of(act(client, "dispatcher", order_id, "request_extension", extension="3 weeks"))
    assert page.status == 400
    assert page.error_list == ["延期时长：如 3wd（3 个工作日）"]
    assert status_of(db, order_id) == "dispatched"


# --- intake extras ------------------------------------------------------------------------


def test_the_duplicate_check_lists_the_same_phone_of_the_last_30_days(
    client: TestClient, db: Session, frozen: FrozenClock
) -> None:
    register(client, content="三十一天前的诉求")
    frozen.advance(timedelta(days=31))
    first = register(client, content="小区门口路灯不亮")
    register(client, requester_phone="13900139000", content="别人的诉求")
    frozen.advance(timedelta(hours=2))
    second = register(client, content="小区门口路灯还是不亮")
    page = get(client, "/hotline/intake?phone=13800138000")
    assert page.dom.one("section", "dupcheck").one("h2").text == (
        "号码 13800138000 近 30 天的工单（2）"
    )
    rows = table_rows(page.dom.one("table", "duplicates"))
    assert rows == [
        ["GD20261031000003", "2026-10-31 11:00", "已受理待派单", "小区门口路灯还是不亮"],
        ["GD20261031000001", "2026-10-31 09:00", "已受理待派单", "小区门口路灯不亮"],
    ]
    # The dispatcher sees the same on the new order, with a button to merge it.
    csrf = login(client, "dispatcher")
    page = get(client, f"/hotline/orders/{second}")
    dupes = page.dom.one("section", "duplicates")
    assert table_rows(dupes) == [
        ["GD20261031000001", "2026-10-31 09:00", "已受理待派单", "小区门口路灯不亮", "并入此单"]
    ]
    response = post(
        client,
        f"/hotline/orders/{second}/act/merge",
        {"csrf_token": csrf, "version": version(page), "parent_number": "GD20261031000001"},
    )
    assert flashed(response)[1] == "已并入工单 GD20261031000001"
    assert (status_of(db, second), status_of(db, first)) == ("merged", "registered")
    page = get(client, f"/hotline/orders/{first}")
    assert timeline(page)[-1][1:] == [
        "并入重复工单",
        "派单员 李志强(dispatcher)",
        "东莞市政务服务和数据管理局",
        "并入工单 GD20261031000003",
    ]


def test_a_question_answered_on_the_call_is_closed_at_once(client: TestClient, db: Session) -> None:
    order_id = register(
        client,
        request_type="consultation",
        category="labour",
        content="请问灵活就业人员怎么参加社保？",
        direct_answer="on",
        answer="可携带身份证到就近社保服务网点办理参保登记，或通过粤省事办理。",
    )
    assert status_of(db, order_id) == "answered"
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.h1 == f"工单 {NUMBER} 已直接答复"
    assert page.dom.one("div", "answer").text == (
        "可携带身份证到就近社保服务网点办理参保登记，或通过粤省事办理。"
    )
    assert [row[1] for row in timeline(page)] == ["受理", "直接答复"]


def test_an_emergency_is_handed_to_110_at_intake(client: TestClient, db: Session) -> None:
    csrf = login(client, "calltaker")
    response = post(
        client,
        "/hotline/intake",
        {
            "csrf_token": csrf,
            **intake_form(
                urgency="emergency",
                content="有人在小区门口打架，有人受伤。",
                transfer_to="110",
                transfer_note="已三方转接 110 指挥中心",
            ),
        },
    )
    path, message = flashed(response)
    assert message == f"已受理，工单编号 {NUMBER}，已移交 110"
    order_id = uuid.UUID(path.rsplit("/", 1)[1])
    assert status_of(db, order_id) == "transferred"
    order = db.get(Order, order_id)
    assert order is not None
    assert order.transferred_to == "110"
    page = get(client, path)
    assert page.h1 == f"工单 {NUMBER} 已移交 110/119/120 特急"
    assert timeline(page)[-1][1:] == [
        "移交 110/119/120",
        "话务员 陈小敏(calltaker)",
        "东莞市政务服务和数据管理局",
        "移交 110已三方转接 110 指挥中心",
    ]


# --- reveal -------------------------------------------------------------------------------


def test_revealing_the_phone_is_audited_and_shown_once(client: TestClient, db: Session) -> None:
    order_id = register(client, requester_id_number="44190019800101123X")
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.definitions()["联系电话"] == "138****8000 查看完整号码"
    assert page.definitions()["身份证号"] == "441900********123X"
    response = client.post(
        f"/hotline/orders/{order_id}/reveal", data={"csrf_token": page.csrf}, follow_redirects=False
    )
    shown = Page.of(response)
    assert shown.status == 200
    assert shown.flashes == ["已显示诉求人完整信息，本次查看已记入审计日志"]
    assert shown.definitions()["联系电话"] == "13800138000 完整号码（已审计）"
    assert shown.definitions()["身份证号"] == "44190019800101123X"
    db.expire_all()
    entries = (
        db.execute(
            select(AuditEntry).where(
                AuditEntry.action == "hotline.reveal", AuditEntry.entity_id == str(order_id)
            )
        )
        .scalars()
        .all()
    )
    assert [(e.actor_name, e.after) for e in entries] == [
        ("话务员 陈小敏(calltaker)", {"fields": ["requester_phone", "requester_id_number"]})
    ]
    assert timeline(shown)[-1][1:3] == ["查看诉求人完整信息", "话务员 陈小敏(calltaker)"]
    # Shown once: the next view is masked again.
    assert get(client, f"/hotline/orders/{order_id}").definitions()["联系电话"] == (
        "138****8000 查看完整号码"
    )


def test_a_role_without_reveal_has_no_button_and_is_refused(
    client: TestClient, db: Session
) -> None:
    order_id = register(client)
    csrf = login(client, "supervisor")
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.definitions()["联系电话"] == "138****8000"
    response = post(client, f"/hotline/orders/{order_id}/reveal", {"csrf_token": csrf})
    assert response.status_code == 403
    count = db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "hotline.reveal")
    ).scalar_one()
    assert count == 0


# --- more of the workflow through the forms -----------------------------------------------


def test_return_extension_suspend_rework_and_urge(client: TestClient, db: Session) -> None:
    dongcheng, shijie = unit_id(db, DONGCHENG), unit_id(db, SHIJIE)
    order_id = register(client)
    act(client, "dispatcher", order_id, "dispatch", unit_id=str(shijie))
    # 石碣 returns it; the dispatcher reviews the return and re-dispatches to 东城.
    response = act(client, "sj.handler", order_id, "return_order", note="地址属于东城街道")
    assert flashed(response)[1] == "已退单，等待热线中心审核"
    login(client, "dispatcher")
    returns = get(client, "/hotline/queue/returns")
    assert [row[0] for row in orders_table(returns)] == [NUMBER]
    page = get(client, f"/hotline/orders/{order_id}")
    assert forms(page) == ["改派", "退单不予同意"]
    response = act(client, "dispatcher", order_id, "redispatch", unit_id=str(dongcheng))
    assert flashed(response)[1] == "已改派至 东城街道"
    # 东城 signs, asks for three more working days; the dispatcher agrees.
    act(client, "dc.handler", order_id, "sign_for")
    response = act(
        client, "dc.handler", order_id, "request_extension", extension="3wd", note="需协调物业"
    )
    assert flashed(response)[1] == "已提交延期申请，等待热线中心审批"
    login(client, "dispatcher")
    assert [row[0] for row in orders_table(get(client, "/hotline/queue/extensions"))] == [NUMBER]
    page = get(client, f"/hotline/orders/{order_id}")
    assert forms(page) == ["同意延期", "不同意延期"]
    response = act(client, "dispatcher", order_id, "approve_extension", note="同意")
    assert flashed(response)[1] == "已同意延期 3个工作日"
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.definitions()["办理时限"] == "2026-10-16 17:30 办理环节"
    assert forms(page) == ["改派", "挂起"]
    # Suspended: the clock stops.
    act(client, "dispatcher", order_id, "suspend", note="诉求人出差，约定国庆后上门")
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.definitions()["办理时限"] == "已挂起，计时暂停"
    login(client, "dc.handler")
    handling = get(client, "/hotline/queue/handling")
    assert handling.dom.texts("h2") == ["办理中（0）", "延期待审批（0）", "已挂起（1）"]
    act(client, "dispatcher", order_id, "resume")
    # The supervisor urges; the unit replies; the caller is not satisfied: rework.
    response = act(client, "supervisor", order_id, "urge", note="请加快办理")
    assert flashed(response)[1] == "已催办"
    act(client, "dc.handler", order_id, "reply", note=REPLY)
    page = Page.of(
        act(client, "callback", order_id, "callback", solved="no", satisfaction="dissatisfied")
    )
    assert page.status == 400
    assert page.error_message == "重办须填写说明"
    response = act(
        client,
        "callback",
        order_id,
        "callback",
        solved="no",
        satisfaction="dissatisfied",
        note="楼道仍有电动车",
    )
    assert flashed(response)[1] == "回访完成：未解决或不满意，工单退回承办单位重办"
    assert status_of(db, order_id) == "handling"
    page = get(client, f"/hotline/orders/{order_id}")
    assert page.definitions()["重办次数"] == "1"
    assert [row[1] for row in timeline(page)] == [
        "受理", "派单", "退单", "改派", "签收", "申请延期", "同意延期", "挂起", "恢复办理",
        "催办", "答复", "重办",
    ]  # fmt: skip
    assert timeline(page)[5][4] == "延期 3个工作日需协调物业"
    assert timeline(page)[-1][4] == "未解决；不满意；第 1 次重办楼道仍有电动车"


def test_a_town_passes_an_order_down_to_a_community(client: TestClient, db: Session) -> None:
    order_id = register(client)
    act(client, "dispatcher", order_id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    act(client, "dc.leader", order_id, "sign_for")
    page = get(client, f"/hotline/orders/{order_id}")
    assert "下派村（社区）" in forms(page)
    options = page.dom.one("select", id="pass_down-unit").texts("option")
    assert options[:3] == ["请选择村（社区）或内设机构", "岗贝社区", "温塘社区"]
    response = act(client, "dc.leader", order_id, "pass_down", unit_id=str(unit_id(db, GANGBEI)))
    assert flashed(response) == (f"/hotline/orders/{order_id}", "已下派至 岗贝社区")
    # The community works inside the street's handling time: still 办理中, now its own.
    assert status_of(db, order_id) == "handling"
    login(client, "dc.handler")
    handling = get(client, "/hotline/queue/handling").dom.find_all("table", "orders")[0]
    assert [(row[0], row[5]) for row in table_rows(handling)] == [(NUMBER, "岗贝社区")]


# --- search -------------------------------------------------------------------------------


def test_search_filters_and_the_export_link(client: TestClient, db: Session) -> None:
    a = register(client, content="路灯不亮", category="urban")
    register(client, content="噪音扰民", category="environment", requester_phone="13900139000")
    act(client, "dispatcher", a, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    login(client, "dispatcher")
    page = get(client, "/hotline/orders")
    assert page.h1 == "工单查询 共 2 件"
    assert [row[0] for row in orders_table(page)] == ["GD20260930000002", NUMBER]
    assert page.dom.one("a", "export").attrs["href"] == "/hotline/orders/export.xlsx"
    page = get(client, "/hotline/orders?text=路灯&category=urban&status=dispatched")
    assert page.h1 == "工单查询 共 1 件"
    assert orders_table(page)[0][:6] == [
        NUMBER, "路灯不亮", "陈先生 138****8000", "城市管理", "待签收", "东城街道"
    ]  # fmt: skip
    assert page.selected("category") == ["城市管理"]
    assert page.selected("status") == ["待签收"]
    page = get(
        client, "/hotline/orders?phone=13900139000&created_from=2026-09-30&created_to=2026-09-30"
    )
    assert [row[0] for row in orders_table(page)] == ["GD20260930000002"]
    href = page.dom.one("a", "export").attrs["href"]
    assert href.startswith("/hotline/orders/export.xlsx?")
    assert parse_qs(urlsplit(href).query) == {
        "phone": ["13900139000"],
        "created_from": ["2026-09-30T00:00:00+08:00"],
        "created_to": ["2026-10-01T00:00:00+08:00"],
    }
    assert orders_table(get(client, "/hotline/orders?created_from=2026-10-01")) == [
        ["没有符合条件的工单"]
    ]
    page = get(client, f"/hotline/orders?town_id={unit_id(db, DONGCHENG)}&warning_level=none")
    # Neither call-taker chose the town; smart dispatch placed both from their address.
    assert page.h1 == "工单查询 共 2 件"
    page = get(client, f"/hotline/orders?unit_id={unit_id(db, DONGCHENG)}")
    assert [row[0] for row in orders_table(page)] == [NUMBER]
    bad = get(client, "/hotline/orders?created_from=yesterday")
    assert bad.status == 400
    assert bad.error_message == "起始日期应为日期，如 2026-09-30"
    bad = get(client, "/hotline/orders?unit_id=x")
    assert bad.status == 400
    assert bad.error_list == ["承办单位：请从列表中选择"]


def test_a_town_searches_only_its_own_orders(client: TestClient, db: Session) -> None:
    a = register(client)
    register(client)
    act(client, "dispatcher", a, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    login(client, "dc.handler")
    page = get(client, "/hotline/orders")
    assert [row[0] for row in orders_table(page)] == [NUMBER]
    unit_options = page.dom.one("select", name="unit_id").texts("option")
    assert unit_options[:3] == ["全部", "东城街道", "岗贝社区"]
    assert unit_options[-3:] == [
        "东城街道综合行政执法办公室",
        "东城街道社会事务局",
        "东城街道经济发展局",
    ]
    assert "石碣镇" not in unit_options


# --- the board ----------------------------------------------------------------------------


def test_the_board_counts_lights_and_lists_supervision(
    client: TestClient, db: Session, as_user: Callable[[str], Principal], settings: Settings
) -> None:
    ids = [register(client, content=f"诉求 {i}") for i in range(4)]
    for order_id in ids[:3]:
        act(client, "dispatcher", order_id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    db.expire_all()
    yellow, red, closed = (db.get(Case, i) for i in ids[:3])
    assert yellow is not None
    assert red is not None
    assert closed is not None
    yellow.warning_level, red.warning_level = "yellow", "red"
    closed.warning_level, closed.status = "red", "closed"  # a closed order leaves the board
    config = HotlineConfig.from_settings(settings)
    engine.open_supervision(
        db,
        as_user("supervisor"),
        red,
        calendar=config.calendar(db),
        kind="supervise",
        level=1,
        reason="派单阶段超时",
    )
    db.commit()
    login(client, "supervisor")
    page = get(client, "/hotline/board")
    assert page.h1 == "督办看板 在办 3 件"
    assert page.dom.one("div", "stats").texts("a") == [
        "1 正常",
        "1 黄灯预警",
        "1 红灯超时",
        "1 督办中",
    ]
    tables = page.dom.find_all("table", "orders")
    assert [[row[0] for row in table_rows(t)] for t in tables] == [
        ["GD20260930000002"],
        [NUMBER],
    ]
    assert table_rows(tables[0])[0][6] == "2026-09-30 11:00 红灯"
    supervision = table_rows(page.dom.find_all("table")[-1])
    assert supervision == [
        ["GD20260930000002", "诉求 1", "第 1 级督办", "东城街道", "派单阶段超时", NOW,
         "2026-10-08 17:30"],
    ]  # fmt: skip
    order = get(client, f"/hotline/orders/{ids[1]}")
    assert order.dom.one("section", "supervision").texts("li") == [
        "第 1 级督办：派单阶段超时（督办员 张建国(supervisor)，2026-09-30 09:00，"
        "须于 2026-10-08 17:30 前答复）"
    ]
    # A town's leader sees only the town's part of the board.
    login(client, "dc.leader")
    assert get(client, "/hotline/board").h1 == "督办看板 在办 2 件"


# --- query counts -------------------------------------------------------------------------


def make_orders(
    db: Session, as_user: Callable[[str], Principal], settings: Settings, n: int
) -> None:
    """``n`` orders, a third each registered, dispatched to Dongcheng and signed for."""
    config = HotlineConfig.from_settings(settings)
    calltaker, dispatcher = as_user("calltaker"), as_user("dispatcher")
    handler = as_user("dc.handler")
    dongcheng, gangbei = unit_id(db, DONGCHENG), unit_id(db, GANGBEI)
    for i in range(n):
        case, _ = service.register_order(
            db,
            calltaker,
            config=config,
            data=OrderCreate(
                requester_name=f"诉求人{i}",
                requester_phone=f"138{i:08d}",
                content=f"第 {i} 件诉求",
                category="urban",
                location_unit_id=gangbei,
            ),
        )
        if i % 3:
            service.act(
                db,
                dispatcher,
                config=config,
                order_id=case.id,
                action="dispatch",
                request=ActionRequest(unit_id=dongcheng),
            )
        if i % 3 == 2:
            service.act(
                db, handler, config=config, order_id=case.id, action="sign_for",
                request=ActionRequest(),
            )  # fmt: skip
            case.warning_level = "yellow" if i % 2 else "red"
    db.commit()


LIST_PAGES = [
    ("dispatcher", "/hotline/orders"),
    ("dispatcher", "/hotline/orders?category=urban&text=诉求&warning_level=none"),
    ("dispatcher", "/hotline/queue/dispatch"),
    ("dc.handler", "/hotline/queue/inbox"),
    ("dc.handler", "/hotline/queue/handling"),
    ("supervisor", "/hotline/board"),
]


@pytest.mark.parametrize(("username", "path"), LIST_PAGES)
def test_list_pages_take_the_same_number_of_queries_for_3_or_30_orders(
    client: TestClient,
    db: Session,
    as_user: Callable[[str], Principal],
    settings: Settings,
    count_queries: Callable[[], QueryCounter],
    username: str,
    path: str,
) -> None:
    login(client, username)

    def measure() -> tuple[int, int]:
        counter = count_queries()
        page = get(client, path)
        assert page.status == 200
        rows = sum(len(table_rows(t)) for t in page.dom.find_all("table", "orders"))
        return counter.count, rows

    make_orders(db, as_user, settings, 3)
    few, few_rows = measure()
    make_orders(db, as_user, settings, 27)
    many, many_rows = measure()
    assert many_rows > few_rows
    assert many == few
    assert few <= 12


def test_the_town_filter_costs_one_query_more_whatever_the_size(
    client: TestClient,
    db: Session,
    as_user: Callable[[str], Principal],
    settings: Settings,
    count_queries: Callable[[], QueryCounter],
) -> None:
    login(client, "dispatcher")
    path = f"/hotline/orders?town_id={unit_id(db, DONGCHENG)}"
    make_orders(db, as_user, settings, 3)
    counter = count_queries()
    assert get(client, path).h1 == "工单查询 共 3 件"
    few = counter.count
    make_orders(db, as_user, settings, 27)
    counter = count_queries()
    assert get(client, path).h1 == "工单查询 共 30 件"
    assert counter.count == few


def test_paging_through_the_orders(
    client: TestClient, db: Session, as_user: Callable[[str], Principal], settings: Settings
) -> None:
    make_orders(db, as_user, settings, 55)
    login(client, "dispatcher")
    first = get(client, "/hotline/orders?category=urban")
    assert first.h1 == "工单查询 共 55 件"
    assert len(orders_table(first)) == 50
    pager = first.dom.one("div", "pager")
    assert pager.text == "第 1 / 2 页 下一页"
    href = pager.one("a").attrs["href"]
    assert unquote(href) == "?category=urban&page=2"
    second = get(client, f"/hotline/orders{href}")
    assert [row[0] for row in orders_table(second)] == [
        "GD20260930000005", "GD20260930000004", "GD20260930000003", "GD20260930000002", NUMBER
    ]  # fmt: skip
