"""The web console, page by page, through the login form and the HTML it renders.

Every test logs in through ``POST /login`` like a browser, reads the CSRF token out of the
page and posts the forms the pages carry. Assertions read the rendered text (titles, nav,
flash messages, table cells) and, for changes, the database behind the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, QueryCounter, unit_id
from tests.org.builders import (
    BUREAU,
    CITY,
    DEMO_PEOPLE_COUNT,
    DEMO_UNITS_COUNT,
    DONGCHENG,
    SHIJIE,
    STRONG_PASSWORD,
    count_people,
    count_units,
    csv_subtree,
    person,
)
from tests.web.helpers import Node, Page, full_title, get, login, post
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar_store import CalendarOverride, CalendarYear
from zhengshu.org import repository, service
from zhengshu.org.schemas import PersonCreate, UnitCreate

pytestmark = pytest.mark.usefixtures("frozen_clock")

NO_PERMISSION = "您没有执行此操作的权限"
CITY_ONLY_CALENDAR = "只有市级管理员可以调整全市工作日历"
NOT_IMPORTED_2027 = (
    "2027 年的法定节假日安排尚未导入：该年的办理时限暂按周一至周五计算，并标注“暂定”。"
    "国务院办公厅通知发布后，"
)
DEADLINE_FROM_FROZEN_DAY = "2026-10-13"  # 2026-09-30 + 5 working days across National Day


def ids(db: Session) -> dict[str, uuid.UUID]:
    """Ids the page paths are built from."""
    return {
        "dongcheng": unit_id(db, DONGCHENG.code),
        "shijie": unit_id(db, SHIJIE.code),
        "dc_handler": person(db, "dc.handler").id,
        "sj_handler": person(db, "sj.handler").id,
    }


def table_rows(node: Node) -> list[list[str]]:
    """The body rows of a table as cell texts (the header row has <th>, not <td>)."""
    return [tr.texts("td") for tr in node.find_all("tr") if tr.find_all("td")]


def calendar_cell(page: Page, day: int) -> Node:
    """The cell of ``day`` in the month grid of the calendar page."""
    grid = page.dom.find_all("div", "cal")[-1]
    cells = [
        div
        for div in grid.find_all("div")
        if "hdr" not in div.classes and div.find_all("b") and div.one("b").text == str(day)
    ]
    assert len(cells) == 1, day
    return cells[0]


def result_line(page: Page) -> str:
    return page.dom.one("p", "big").text


# --- every page renders, with its title ------------------------------------------------

PAGES = [
    ("admin", "/", "首页", "您好，系统管理员"),
    ("admin", "/admin/units", "组织机构", f"组织机构 共 {DEMO_UNITS_COUNT} 个单位"),
    ("admin", "/admin/units/{dongcheng}", "东城街道", "东城街道 街道"),
    ("admin", "/admin/units/new?parent_id={dongcheng}", "新增单位", "新增单位 · 上级：东城街道"),
    ("admin", "/admin/people", "人员", f"人员 共 {DEMO_PEOPLE_COUNT} 人"),
    ("admin", "/admin/people/new", "新增人员", "新增人员"),
    (
        "admin",
        "/admin/people/{dc_handler}",
        "东城街道承办人 吴涛",
        "东城街道承办人 吴涛 dc.handler",
    ),
    ("admin", "/admin/calendar", "工作日历", "工作日历"),
    ("admin", "/admin/tokens", "接口令牌", "接口令牌"),
    ("auditor", "/admin/audit", "审计日志", "审计日志"),
    ("calltaker", "/", "首页", "您好，话务员 陈小敏"),
    ("calltaker", "/admin/units", "组织机构", f"组织机构 共 {DEMO_UNITS_COUNT} 个单位"),
    ("calltaker", "/admin/people", "人员", f"人员 共 {DEMO_PEOPLE_COUNT} 人"),
    ("calltaker", "/admin/calendar", "工作日历", "工作日历"),
    (
        "dc.admin",
        "/admin/units",
        "组织机构",
        f"组织机构 共 {len(csv_subtree(DONGCHENG.code))} 个单位",
    ),
    ("dc.admin", "/admin/people", "人员", f"人员 共 {len(DONGCHENG.people)} 人"),
    ("dc.admin", "/admin/units/new?parent_id={dongcheng}", "新增单位", "新增单位 · 上级：东城街道"),
]


@pytest.mark.parametrize(("username", "path", "title", "heading"), PAGES)
def test_page_renders_for_a_role_that_may_see_it(
    client: TestClient, db: Session, username: str, path: str, title: str, heading: str
) -> None:
    login(client, username)
    page = get(client, path.format(**ids(db)))
    assert page.status == 200, page.response.text
    assert page.title == full_title(title)
    assert page.h1 == heading


def test_calendar_page_counts_working_days_across_national_day(client: TestClient) -> None:
    login(client, "admin")
    page = get(client, "/admin/calendar?month=2026-10&start=2026-09-30&days=3")
    assert page.status == 200
    assert result_line(page) == "2026-09-30 受理，3 个工作日后截止：2026-10-10（星期六）"
    assert page.dom.one("p", "big").find_all("span", "provisional") == []
    assert page.dom.find_all("h2")[1].text == "‹ 2026 年 10 月 ›"
    national_day = calendar_cell(page, 1)
    assert national_day.classes == {"off"}
    assert national_day.text == "1 国庆节"
    make_up_day = calendar_cell(page, 10)
    assert make_up_day.classes == {"work-weekend"}
    assert make_up_day.text == "10 国庆节调休上班"
    assert calendar_cell(page, 8).text == "8"


def test_audit_log_is_the_auditors_and_verifies_the_chain(client: TestClient, db: Session) -> None:
    login(client, "auditor")
    page = get(client, "/admin/audit")
    assert page.status == 200
    newest = table_rows(page.dom.one("table"))[0]
    assert newest[2:5] == ["安全审计员(auditor)", "testclient", "org.login.ok"]

    verified = get(client, "/admin/audit?verify=1")
    assert verified.status == 200
    db.expire_all()
    rows = db.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    assert verified.flashes == [f"审计链完整：共 {rows} 条记录，哈希链校验通过。"]
    assert verified.dom.one("div", "flash").classes == {"flash", "ok"}


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/audit?verify=1"])
def test_admin_may_not_read_the_audit_log(client: TestClient, path: str) -> None:
    login(client, "admin")
    page = get(client, path)
    assert page.status == 403
    assert page.title == full_title("没有权限")
    assert page.h1 == "没有权限"
    assert page.error_message == NO_PERMISSION
    assert page.nav == ["首页", "智能派单", "组织机构", "人员", "工作日历", "接口令牌"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/people/new",
        "/admin/units/new?parent_id={dongcheng}",
        "/admin/tokens",
        "/admin/audit",
    ],
)
def test_calltaker_is_refused_pages_beyond_their_role(
    client: TestClient, db: Session, path: str
) -> None:
    login(client, "calltaker")
    page = get(client, path.format(**ids(db)))
    assert page.status == 403
    assert page.title == full_title("没有权限")
    assert page.error_message == NO_PERMISSION


# --- the nav and home tiles follow the role --------------------------------------------

NAV_BY_ROLE = {
    "admin": ["首页", "智能派单", "组织机构", "人员", "工作日历", "接口令牌"],
    "dc.admin": ["首页", "智能派单", "组织机构", "人员", "工作日历", "接口令牌"],
    "auditor": ["首页", "组织机构", "人员", "工作日历", "审计日志"],
    "calltaker": ["首页", "受理", "工单", "组织机构", "人员", "工作日历"],
    "dc.handler": ["首页", "工单", "组织机构", "人员", "工作日历"],
}
ADMIN_TILES = ["新增人员", "维护组织机构", "对接系统令牌", "工作日历", "本辖区人员", "办理时限计算"]
TILES_BY_ROLE = {
    "admin": ADMIN_TILES,
    "dc.admin": ADMIN_TILES,
    "auditor": ["审计日志", "校验审计链", "本辖区人员", "办理时限计算"],
    "calltaker": ["受理登记", "异步受理队列", "工单查询", "本辖区人员", "办理时限计算"],
    "dc.handler": ["待签收", "办理中", "工单查询", "本辖区人员", "办理时限计算"],
}


@pytest.mark.parametrize("username", sorted(NAV_BY_ROLE))
def test_nav_and_tiles_show_only_what_the_role_may_use(client: TestClient, username: str) -> None:
    login(client, username)
    home = get(client, "/")
    assert home.nav == NAV_BY_ROLE[username]
    assert home.active_nav == ["首页"]
    assert home.tiles == TILES_BY_ROLE[username]
    links = [a.attrs["href"] for a in home.dom.one("nav", "mainnav").find_all("a")]
    links += [a.attrs["href"] for a in home.dom.find_all("a", "tile")]
    for href in links:
        assert client.get(href, follow_redirects=False).status_code == 200, (username, href)


def test_nav_marks_the_section_of_the_current_page(client: TestClient) -> None:
    login(client, "admin")
    assert get(client, "/admin/people/new").active_nav == ["人员"]
    assert get(client, "/admin/units").active_nav == ["组织机构"]
    assert get(client, "/admin/calendar?month=2026-10").active_nav == ["工作日历"]


def test_read_only_roles_see_no_write_controls(client: TestClient, db: Session) -> None:
    login(client, "calltaker")
    units = get(client, "/admin/units")
    assert "从 CSV 导入" not in units.dom.texts("h2")
    assert units.dom.find_all("input", type="file") == []
    people = get(client, "/admin/people")
    assert [a for a in people.dom.find_all("a", "btn") if a.text == "新增人员"] == []
    unit = get(client, f"/admin/units/{ids(db)['dongcheng']}")
    assert unit.dom.texts("h2") == ["下级单位（9）", "人员（3）"]
    calendar = get(client, "/admin/calendar")
    assert calendar.dom.texts("h2")[-1] == "‹ 2026 年 9 月 ›"
    assert calendar.dom.find_all("form", action="/admin/calendar/override") == []
    profile = get(client, f"/admin/people/{ids(db)['dc_handler']}")
    assert [b for b in profile.dom.find_all("button") if b.text == "保存"] == []
    assert "disabled" in profile.dom.one("form", "stack").one("fieldset").attrs


def test_writers_get_an_enabled_person_form(client: TestClient, db: Session) -> None:
    login(client, "dc.admin")
    profile = get(client, f"/admin/people/{ids(db)['dc_handler']}")
    assert "disabled" not in profile.dom.one("form", "stack").one("fieldset").attrs
    assert [b.text for b in profile.dom.one("form", "stack").find_all("button")] == ["保存"]


def test_town_admin_reads_the_calendar_without_the_city_wide_controls(
    client: TestClient,
) -> None:
    login(client, "dc.admin")
    page = get(client, "/admin/calendar")
    assert page.status == 200
    assert page.dom.find_all("form", action="/admin/calendar/override") == []
    assert page.dom.find_all("form", action="/admin/calendar/import") == []
    assert page.flashes == [NOT_IMPORTED_2027 + "由市级管理员导入官方安排。"]


# --- the home page per role --------------------------------------------------------------

HOME = [
    ("admin", "系统管理员", "东莞市", "东莞市"),
    ("auditor", "安全审计员", "东莞市", "东莞市"),
    ("calltaker", "话务员", "东莞市政务服务和数据管理局", "东莞市"),
    ("dispatcher", "派单员", "东莞市政务服务和数据管理局", "东莞市"),
    ("leader", "领导", "东莞市", "东莞市"),
    ("zjj.handler", "承办人", "东莞市住房和城乡建设局", "东莞市住房和城乡建设局"),
    ("dc.leader", "单位负责人", "东城街道", "东城街道"),
    ("sj.admin", "系统管理员", "石碣镇", "石碣镇"),
]


@pytest.mark.parametrize(("username", "role", "unit", "scope"), HOME)
def test_home_shows_role_jurisdiction_and_the_five_day_limit(
    client: TestClient, username: str, role: str, unit: str, scope: str
) -> None:
    login(client, username)
    home = get(client, "/")
    assert home.definitions() == {
        "所在单位": unit,
        "管辖范围": scope,
        "角色": role,
        "今天": "2026-09-30 工作日",
        "5 个工作日时限": f"今日受理，按“次日起算”满 5 个工作日为 {DEADLINE_FROM_FROZEN_DAY}",
    }
    assert home.dom.one("dl", "kv").texts("span", "role") == [role]
    upcoming = home.dom.find_all("div", "cal")[0].find_all("div")
    assert [d.text for d in upcoming[:3]] == ["9/30 三", "10/1 四 国庆节", "10/2 五 国庆节"]
    assert upcoming[1].classes == {"off"}


def test_anonymous_visitor_is_sent_to_login_and_back(client: TestClient) -> None:
    response = client.get("/admin/people", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/people"
    page = get(client, "/login?next=/admin/people")
    assert page.title == full_title("登录")
    assert page.nav == []
    assert page.value("next") == "/admin/people"
    done = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "next": "/admin/people"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/people"


def test_login_returns_to_the_page_with_its_query(client: TestClient) -> None:
    wanted = "/admin/people?q=dc&role=handler"
    response = client.get(wanted, follow_redirects=False)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [wanted]
    form = get(client, response.headers["location"])
    back = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "next": form.value("next")},
        follow_redirects=False,
    )
    assert back.headers["location"] == wanted


def test_wrong_password_is_refused_on_the_login_page(client: TestClient) -> None:
    response = client.post(
        "/login",
        data={"username": "admin", "password": "wrong-Passw0rd", "next": "/"},
        follow_redirects=False,
    )
    page = Page.of(response)
    assert page.status == 401
    assert page.title == full_title("登录")
    assert page.flashes == ["用户名或密码错误"]
    assert page.value("username") == "admin"
    assert "zhengshu_session" not in client.cookies


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = login(client, "admin")
    response = post(client, "/logout", {"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    again = client.get("/", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/login?next=/"


# --- forms, end to end -----------------------------------------------------------------


def test_admin_creates_then_edits_a_person(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    dongcheng, community = unit_id(db, DONGCHENG.code), unit_id(db, DONGCHENG.community)
    form = get(client, f"/admin/people/new?unit_id={dongcheng}")
    assert form.selected("unit_id") == ["东城街道"]
    before = count_people(db)

    created = post(
        client,
        "/admin/people/new",
        {
            "csrf_token": csrf,
            "username": "dc.linli",
            "display_name": "东城新同事 林立",
            "phone": "13800138000",
            "unit_id": str(dongcheng),
            "scope_unit_id": "",
            "roles": ["handler", "callback_agent"],
            "password": STRONG_PASSWORD,
        },
    )
    assert created.status_code == 303, created.text
    new = person(db, "dc.linli")
    assert created.headers["location"] == f"/admin/people/{new.id}?flash=" + quote(
        "已新增 东城新同事 林立"
    )
    assert count_people(db) == before + 1
    assert (new.display_name, new.phone, new.unit_id, new.scope_unit_id) == (
        "东城新同事 林立",
        "13800138000",
        dongcheng,
        None,
    )
    assert sorted(new.roles) == ["callback_agent", "handler"]

    page = get(client, created.headers["location"])
    assert page.status == 200
    assert page.title == full_title("东城新同事 林立")
    assert page.h1 == "东城新同事 林立 dc.linli"
    assert page.flashes == ["已新增 东城新同事 林立"]
    assert page.selected("unit_id") == ["东城街道"]
    assert page.selected("scope_unit_id") == []
    assert page.checked("roles") == ["handler", "callback_agent"]
    assert page.value("phone") == "13800138000"
    assert page.checked("active") == ["on"]

    listed = get(client, "/admin/people?q=linli")
    assert listed.h1 == "人员 共 1 人"
    assert table_rows(listed.dom.one("table")) == [
        ["东城新同事 林立", "dc.linli", "东城街道", "回访员 承办人", "在用", ""]
    ]

    edited = post(
        client,
        f"/admin/people/{new.id}",
        {
            "csrf_token": csrf,
            "version": page.value("version"),
            "display_name": "东城同事 林立",
            "phone": "",
            "unit_id": str(community),
            "scope_unit_id": "",
            "roles": ["unit_leader"],
            "active": "on",
            "new_password": "",
        },
    )
    assert edited.status_code == 303, edited.text
    assert edited.headers["location"] == f"/admin/people/{new.id}?flash=" + quote("已保存")
    after = get(client, edited.headers["location"])
    assert after.h1 == "东城同事 林立 dc.linli"
    assert after.flashes == ["已保存"]
    assert after.selected("unit_id") == ["岗贝社区"]
    assert after.checked("roles") == ["unit_leader"]
    assert after.value("phone") == ""
    changed = person(db, "dc.linli")
    assert (changed.display_name, changed.phone, changed.unit_id, changed.roles) == (
        "东城同事 林立",
        None,
        community,
        ["unit_leader"],
    )
    assert changed.version == 2

    # The form the admin opened first still says version 1: saving it again is refused.
    stale = post(
        client,
        f"/admin/people/{new.id}",
        {
            "csrf_token": csrf,
            "version": page.value("version"),
            "display_name": "覆盖",
            "unit_id": str(dongcheng),
            "roles": ["handler"],
            "active": "on",
        },
    )
    refused = Page.of(stale)
    assert refused.status == 409
    assert refused.error_message == "人员已被他人修改，请刷新后重试"
    assert person(db, "dc.linli").display_name == "东城同事 林立"

    # The new account logs in with the password the admin set.
    login(client, "dc.linli", STRONG_PASSWORD)
    assert get(client, "/").h1 == "您好，东城同事 林立"


def test_deactivated_person_can_no_longer_log_in(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    target = person(db, "dc.handler")
    page = get(client, f"/admin/people/{target.id}")
    saved = post(
        client,
        f"/admin/people/{target.id}",
        {
            "csrf_token": csrf,
            "version": page.value("version"),
            "display_name": target.display_name,
            "unit_id": str(target.unit_id),
            "roles": ["handler"],
        },
    )
    assert saved.status_code == 303
    assert person(db, "dc.handler").active is False
    assert get(client, f"/admin/people/{target.id}").checked("active") == []
    refused = client.post(
        "/login", data={"username": "dc.handler", "password": PASSWORD}, follow_redirects=False
    )
    assert refused.status_code == 401
    assert Page.of(refused).flashes == ["用户名或密码错误"]


def test_admin_creates_and_renames_a_unit(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    dongcheng = unit_id(db, DONGCHENG.code)
    created = post(
        client,
        "/admin/units/new",
        {
            "csrf_token": csrf,
            "parent_id": str(dongcheng),
            "kind": "community",
            "code": "441900003999",
            "name": "东城测试社区",
            "short_name": "",
        },
    )
    assert created.status_code == 303, created.text
    unit = repository.unit_by_code(db, "441900003999")
    assert unit is not None
    assert created.headers["location"] == f"/admin/units/{unit.id}?flash=" + quote(
        "已新增 东城测试社区"
    )
    page = get(client, created.headers["location"])
    assert page.title == full_title("东城测试社区")
    assert page.h1 == "东城测试社区 社区"
    assert page.flashes == ["已新增 东城测试社区"]
    assert page.definitions() == {
        "简称": "东城测试社区",
        "编码": "441900003999",
        "上级": "东城街道",
        "更新时间": "2026-09-30 09:00",
    }
    tree = get(client, "/admin/units")
    assert tree.h1 == f"组织机构 共 {DEMO_UNITS_COUNT + 1} 个单位"
    assert "东城测试社区" in tree.dom.one("section", "tree").texts("a")
    parent = get(client, f"/admin/units/{dongcheng}")
    assert ["东城测试社区", "社区", "441900003999"] in table_rows(parent.dom.find_all("table")[0])

    renamed = post(
        client,
        f"/admin/units/{unit.id}",
        {
            "csrf_token": csrf,
            "version": page.value("version"),
            "name": "东城样板社区",
            "short_name": "样板",
            "code": "441900003999",
            "active": "on",
        },
    )
    assert renamed.status_code == 303, renamed.text
    assert get(client, renamed.headers["location"]).definitions()["简称"] == "样板"
    db.expire_all()
    again = repository.unit_by_code(db, "441900003999")
    assert again is not None
    assert (again.name, again.short_name, again.active) == ("东城样板社区", "样板", True)


HEADER = "code,parent_code,kind,name,short_name"
UPLOAD = (
    f"{HEADER}\n"
    "441900003901,441900003000,community,东城一号社区,一号社区\n"
    "441900003000-D99,441900003000,office,东城街道测试办公室,测试办\n"
)


def upload(client: TestClient, csrf: str, content: bytes) -> Page | str:
    response = client.post(
        "/admin/units/import",
        data={"csrf_token": csrf},
        files={"file": ("units.csv", content, "text/csv")},
        follow_redirects=False,
    )
    if response.status_code == 303:
        location: str = response.headers["location"]
        return location
    return Page.of(response)


def test_admin_imports_units_from_an_uploaded_csv(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    location = upload(client, csrf, UPLOAD.encode("utf-8-sig"))
    assert location == "/admin/units?flash=" + quote("导入完成：新增 2，更新 0，未变 0")
    page = get(client, str(location))
    assert page.flashes == ["导入完成：新增 2，更新 0，未变 0"]
    assert page.h1 == f"组织机构 共 {DEMO_UNITS_COUNT + 2} 个单位"
    names = page.dom.one("section", "tree").texts("a")
    assert {"东城一号社区", "东城街道测试办公室"} <= set(names)
    office = repository.unit_by_code(db, "441900003000-D99")
    assert office is not None
    assert (office.kind, office.short_name, office.parent_id) == (
        "office",
        "测试办",
        unit_id(db, DONGCHENG.code),
    )
    # The same file again changes nothing.
    assert upload(client, csrf, UPLOAD.encode()) == "/admin/units?flash=" + quote(
        "导入完成：新增 0，更新 0，未变 2"
    )


def test_admin_sets_and_removes_a_local_calendar_day(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    saved = post(
        client,
        "/admin/calendar/override",
        {"csrf_token": csrf, "day": "2026-10-12", "kind": "off", "name": "台风停工停课"},
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "/admin/calendar?month=2026-10&flash=" + quote(
        "已设置 2026-10-12"
    )
    page = get(client, saved.headers["location"] + "&start=2026-09-30&days=5")
    assert page.flashes == ["已设置 2026-10-12", NOT_IMPORTED_2027 + "请在下方“导入官方安排”。"]
    typhoon = calendar_cell(page, 12)
    assert typhoon.classes == {"off"}
    assert typhoon.text == "12 台风停工停课 本地"
    assert result_line(page) == "2026-09-30 受理，5 个工作日后截止：2026-10-14（星期三）"
    overrides = page.dom.find_all("table")[0]
    assert table_rows(overrides) == [
        ["2026-10-12", "休息", "台风停工停课", "本地调整", "系统管理员(admin)", "恢复"]
    ]

    removed = post(
        client, "/admin/calendar/override/delete", {"csrf_token": csrf, "day": "2026-10-12"}
    )
    assert removed.status_code == 303
    back = get(client, removed.headers["location"])
    assert back.flashes[0] == "已恢复 2026-10-12"
    assert calendar_cell(back, 12).text == "12"
    assert table_rows(back.dom.find_all("table")[0]) == [["无"]]
    db.expire_all()
    assert db.get(CalendarOverride, date(2026, 10, 12)) is None


SCHEDULE_2027 = "2027-02-05~2027-02-11,休,春节\n2027-02-13,班,春节调休上班\n"


def test_admin_imports_next_years_schedule(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    guess = get(client, "/admin/calendar?start=2027-02-01&days=5")
    assert result_line(guess) == (
        "2027-02-01 受理，5 个工作日后截止：2027-02-08（星期一） 暂定：含尚未公布安排的年份"
    )
    february = get(client, "/admin/calendar?month=2027-02")
    assert len(february.dom.find_all("span", "provisional")) == 28

    imported = post(
        client,
        "/admin/calendar/import",
        {"csrf_token": csrf, "year": "2027", "schedule": SCHEDULE_2027},
    )
    assert imported.status_code == 303, imported.text
    assert imported.headers["location"] == "/admin/calendar?month=2027-01&flash=" + quote(
        "已导入 2027 年安排：8 天"
    )
    after = get(client, "/admin/calendar?start=2027-02-01&days=5")
    assert result_line(after) == "2027-02-01 受理，5 个工作日后截止：2027-02-13（星期六）"
    assert after.dom.find_all("span", "provisional") == []
    assert after.flashes == []  # the "not imported yet" warning is gone
    assert "2027（8 天，系统管理员(admin)）" in after.dom.texts("span", "tag")
    february = get(client, "/admin/calendar?month=2027-02")
    assert february.dom.find_all("span", "provisional") == []
    assert calendar_cell(february, 13).text == "13 春节调休上班 本地"
    db.expire_all()
    year = db.get(CalendarYear, 2027)
    assert year is not None
    assert (year.days, year.imported_by) == (8, "系统管理员(admin)")


def overrides_count(db: Session) -> int:
    db.expire_all()
    return db.execute(select(func.count()).select_from(CalendarOverride)).scalar_one()


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/admin/calendar/override", {"day": "2026-10-12", "kind": "off", "name": "台风"}),
        ("/admin/calendar/import", {"year": "2027", "schedule": SCHEDULE_2027}),
    ],
)
def test_town_admin_cannot_change_the_city_calendar(
    client: TestClient, db: Session, path: str, data: dict[str, str]
) -> None:
    csrf = login(client, "dc.admin")
    before = overrides_count(db)
    page = Page.of(post(client, path, {"csrf_token": csrf, **data}))
    assert page.status == 403
    assert page.title == full_title("没有权限")
    assert page.error_message == CITY_ONLY_CALENDAR
    assert overrides_count(db) == before
    assert db.get(CalendarYear, 2027) is None


def test_town_admin_sees_only_their_own_town(client: TestClient, db: Session) -> None:
    login(client, "dc.admin")
    tree = get(client, "/admin/units")
    assert tree.status == 200
    assert "石碣" not in tree.response.text
    names = tree.dom.one("section", "tree").texts("a")
    assert len(names) == len(csv_subtree(DONGCHENG.code))
    assert names[0] == "东城街道"
    people = get(client, "/admin/people")
    assert sorted(row[1] for row in table_rows(people.dom.one("table"))) == sorted(DONGCHENG.people)
    for path, message in [
        (f"/admin/units/{unit_id(db, SHIJIE.code)}", "单位不存在或无权查看"),
        (f"/admin/units/{unit_id(db, SHIJIE.office)}", "单位不存在或无权查看"),
        (f"/admin/people/{person(db, 'sj.handler').id}", "人员不存在或无权查看"),
        (f"/admin/units/new?parent_id={unit_id(db, SHIJIE.code)}", "单位不存在或无权查看"),
    ]:
        page = get(client, path)
        assert page.status == 404, path
        assert page.title == full_title("找不到页面")
        assert page.error_message == message
        assert "石碣" not in page.response.text


def test_town_admin_gets_no_dead_link_to_the_city(client: TestClient, db: Session) -> None:
    login(client, "dc.admin")
    page = get(client, f"/admin/units/{unit_id(db, DONGCHENG.code)}")
    assert page.status == 200
    for link in page.dom.one("main").find_all("a"):
        href = link.attrs["href"]
        if href.startswith("/admin/"):
            assert client.get(href).status_code == 200, (link.text, href)


def test_town_admin_cannot_create_in_the_other_town(client: TestClient, db: Session) -> None:
    csrf = login(client, "dc.admin")
    units, people = count_units(db), count_people(db)
    unit = Page.of(
        post(
            client,
            "/admin/units/new",
            {
                "csrf_token": csrf,
                "parent_id": str(unit_id(db, SHIJIE.code)),
                "kind": "community",
                "code": "441900101999",
                "name": "越权社区",
            },
        )
    )
    assert unit.status == 404
    assert unit.error_message == "单位不存在或无权查看"
    someone = Page.of(
        post(
            client,
            "/admin/people/new",
            {
                "csrf_token": csrf,
                "username": "sj.intruder",
                "display_name": "越权",
                "unit_id": str(unit_id(db, SHIJIE.code)),
                "roles": ["handler"],
                "password": STRONG_PASSWORD,
            },
        )
    )
    assert someone.status == 404
    assert (count_units(db), count_people(db)) == (units, people)


# --- bad input: a page in Chinese, nothing changed ---------------------------------------


def new_person_form(csrf: str, db: Session, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "csrf_token": csrf,
        "username": "dc.weak",
        "display_name": "密码太弱",
        "unit_id": str(unit_id(db, DONGCHENG.code)),
        "roles": ["handler"],
        "password": STRONG_PASSWORD,
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"password": "alllowercase"},
            "密码至少 10 位，且包含大写字母、小写字母、数字、符号中的三种",
        ),
        (
            {"password": "Short-1"},
            "请检查：用户名为 3-64 位小写字母/数字（字母开头）；手机号 11 位；密码至少 10 位",
        ),
        (
            {"username": "9lives"},
            "请检查：用户名为 3-64 位小写字母/数字（字母开头）；手机号 11 位；密码至少 10 位",
        ),
        (
            {"phone": "12345"},
            "请检查：用户名为 3-64 位小写字母/数字（字母开头）；手机号 11 位；密码至少 10 位",
        ),
        ({"roles": ["partner"]}, "“对接系统”角色只能授予 API 令牌"),
        ({"username": "dc.handler"}, "用户名 dc.handler 已存在"),
    ],
)
def test_bad_person_form_is_refused_and_nothing_is_created(
    client: TestClient, db: Session, overrides: dict[str, object], message: str
) -> None:
    csrf = login(client, "admin")
    before = count_people(db)
    page = Page.of(post(client, "/admin/people/new", new_person_form(csrf, db, **overrides)))
    assert page.status in (400, 409)
    assert page.title == full_title("请求有误" if page.status == 400 else "操作冲突")
    assert page.error_message == message
    assert count_people(db) == before
    assert repository.person_by_username(db, "dc.weak") is None


@pytest.mark.parametrize(
    ("code", "kind", "status", "message"),
    [
        ("4419 0000 3999", "community", 400, "编码只能由字母、数字和“-”组成，名称不能为空"),
        ("-441900003999", "community", 400, "编码只能由字母、数字和“-”组成，名称不能为空"),
        ("441900003000", "community", 409, "编码 441900003000 已被“东城街道”使用"),
        ("441900003999", "department", 400, "职能部门不能设在东城街道之下"),
    ],
)
def test_bad_unit_form_is_refused_and_nothing_is_created(
    client: TestClient, db: Session, code: str, kind: str, status: int, message: str
) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    page = Page.of(
        post(
            client,
            "/admin/units/new",
            {
                "csrf_token": csrf,
                "parent_id": str(unit_id(db, DONGCHENG.code)),
                "kind": kind,
                "code": code,
                "name": "坏编码社区",
            },
        )
    )
    assert page.status == status
    assert page.error_message == message
    assert count_units(db) == before


def test_malformed_form_gets_the_validation_page(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    page = Page.of(
        post(
            client,
            "/admin/units/new",
            {
                "csrf_token": csrf,
                "parent_id": str(unit_id(db, DONGCHENG.code)),
                "kind": "hamlet",
                "code": "441900003999",
                "name": "类型不存在",
            },
        )
    )
    assert page.status == 422
    assert page.title == full_title("填写有误")
    assert page.error_message == "提交的内容格式有误，请检查后重试"
    assert len(page.error_list) == 1
    assert page.error_list[0].startswith("kind: ")
    assert count_units(db) == before


def test_form_without_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    login(client, "admin")
    before = count_people(db)
    data = new_person_form("", db, username="dc.nocsrf")
    del data["csrf_token"]
    page = Page.of(post(client, "/admin/people/new", data))
    assert page.status == 403
    assert page.error_message == "页面已过期，请刷新后重试（CSRF 校验失败）"
    assert count_people(db) == before


def test_non_utf8_csv_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    page = upload(client, csrf, UPLOAD.encode("gbk"))
    assert isinstance(page, Page)
    assert page.status == 400
    assert page.title == full_title("请求有误")
    assert page.error_message == "文件须为 UTF-8 编码（可在 Excel 中另存为“CSV UTF-8”）"
    assert count_units(db) == before


def test_csv_with_bad_rows_lists_each_line_and_imports_nothing(
    client: TestClient, db: Session
) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    bad = (
        "code,parent_code,kind,name,short_name\n"
        "441900003901,441900003000,community,东城一号社区,\n"
        "441900003902,441900003000,street2,东城二号社区,\n"
        "441900003903,441900003000,community,,\n"
    )
    page = upload(client, csrf, bad.encode())
    assert isinstance(page, Page)
    assert page.status == 400
    assert page.error_message == "CSV 有错误，未导入任何数据"
    assert page.error_list == [
        "第3行：类型“street2”无效 / unknown kind",
        "第4行：缺少名称 / name missing",
    ]
    assert count_units(db) == before
    assert repository.unit_by_code(db, "441900003901") is None


def test_csv_with_a_wrong_header_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    page = upload(client, csrf, "编码,上级,类型,名称\n1,2,3,4\n".encode())
    assert isinstance(page, Page)
    assert page.status == 400
    assert page.error_message == "表头应为：code,parent_code,kind,name,short_name"
    assert count_units(db) == before


def test_bad_calendar_input_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    blank = Page.of(
        post(
            client,
            "/admin/calendar/override",
            {"csrf_token": csrf, "day": "2026-12-01", "kind": "off", "name": "  "},
        )
    )
    assert blank.status == 400
    assert blank.error_message == "请填写说明（如：台风停工）"
    wrong_year = Page.of(
        post(
            client,
            "/admin/calendar/import",
            {"csrf_token": csrf, "year": "2027", "schedule": "2028-01-01,休,元旦"},
        )
    )
    assert wrong_year.status == 400
    assert wrong_year.error_message == "节假日安排有误，未导入"
    assert wrong_year.error_list == [
        "第1行：日期2028-01-01不在2027年内 / line 1: date 2028-01-01 is not in year 2027"
    ]
    month = get(client, "/admin/calendar?month=2026-13")
    assert month.status == 400
    assert month.error_message == "月份格式应为 YYYY-MM"
    assert overrides_count(db) == 0
    assert db.get(CalendarYear, 2027) is None


def test_bad_schedule_line_is_named_on_the_error_page(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    page = Page.of(
        post(
            client,
            "/admin/calendar/import",
            {
                "csrf_token": csrf,
                "year": "2027",
                "schedule": "2027-01-01,休,元旦\n2027-02-05~2027-02-11,休,春节\n2027-13-01,班,x\n",
            },
        )
    )
    assert page.status == 400
    assert page.error_message == "节假日安排有误，未导入"
    assert page.error_list == [
        "第3行：日期“2027-13-01”不存在 / line 3: date '2027-13-01' does not exist"
    ]
    assert overrides_count(db) == 0
    assert db.get(CalendarYear, 2027) is None


def test_blank_unit_name_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    page = Page.of(
        post(
            client,
            "/admin/units/new",
            {
                "csrf_token": csrf,
                "parent_id": str(unit_id(db, DONGCHENG.code)),
                "kind": "community",
                "code": "441900003999",
                "name": "   ",
            },
        )
    )
    assert page.status == 400
    assert page.error_message == "编码只能由字母、数字和“-”组成，名称不能为空"
    assert count_units(db) == before


def test_blank_unit_rename_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    unit = repository.unit_by_code(db, DONGCHENG.community)
    assert unit is not None
    page = Page.of(
        post(
            client,
            f"/admin/units/{unit.id}",
            {
                "csrf_token": csrf,
                "version": str(unit.version),
                "name": "  ",
                "short_name": "  ",
                "code": unit.code,
                "active": "on",
            },
        )
    )
    assert page.status == 400
    assert page.error_message == "名称、简称不能为空；编码只能由字母、数字和“-”组成"
    db.expire_all()
    kept = repository.unit_by_code(db, DONGCHENG.community)
    assert kept is not None
    assert (kept.name, kept.short_name) == ("岗贝社区", "岗贝社区")


PERSON_FORM_ERROR = (
    "请检查：用户名为 3-64 位小写字母/数字（字母开头）；手机号 11 位；密码至少 10 位"
)


def test_blank_person_name_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    before = count_people(db)
    page = Page.of(post(client, "/admin/people/new", new_person_form(csrf, db, display_name="   ")))
    assert page.status == 400
    assert page.error_message == PERSON_FORM_ERROR
    assert count_people(db) == before


def test_blank_person_rename_is_refused(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    target = person(db, "dc.handler")
    page = Page.of(
        post(
            client,
            f"/admin/people/{target.id}",
            {
                "csrf_token": csrf,
                "version": str(target.version),
                "display_name": "   ",
                "unit_id": str(target.unit_id),
                "roles": ["handler"],
                "active": "on",
            },
        )
    )
    assert page.status == 400
    assert page.error_message == PERSON_FORM_ERROR
    assert person(db, "dc.handler").display_name == "东城街道承办人 吴涛"


def test_csv_import_refuses_a_code_the_form_refuses(client: TestClient, db: Session) -> None:
    csrf = login(client, "admin")
    before = count_units(db)
    page = upload(client, csrf, f"{HEADER}\n东城 X,441900003000,community,坏编码社区,\n".encode())
    assert isinstance(page, Page)
    assert page.status == 400
    assert page.error_message == "CSV 有错误，未导入任何数据"
    assert page.error_list == ["第2行：编码“东城 X”只能由字母、数字和“-”组成 / bad code"]
    assert count_units(db) == before


@pytest.mark.parametrize("q", ["_", "%"])
def test_unit_search_treats_wildcards_literally(client: TestClient, q: str) -> None:
    login(client, "admin")
    page = get(client, f"/admin/units?q={quote(q)}")
    assert page.dom.texts("h2")[0] == f"查找“{q}”：0 个结果"
    assert table_rows(page.dom.find_all("table")[0]) == []
    people = get(client, f"/admin/people?q={quote(q)}")
    assert people.h1 == "人员 共 0 人"


# --- unknown and odd URLs ----------------------------------------------------------------


@pytest.mark.parametrize("logged_in", [False, True])
def test_unknown_url_gets_the_not_found_page(client: TestClient, logged_in: bool) -> None:
    if logged_in:
        login(client, "admin")
    page = get(client, "/no/such/page")
    assert page.status == 404
    assert page.title == full_title("找不到页面")
    assert page.h1 == "找不到页面"
    assert page.error_message == "找不到您要的页面或资源"


def test_not_found_page_keeps_the_logged_in_shell(client: TestClient) -> None:
    login(client, "admin")
    page = get(client, "/no/such/page")
    assert page.status == 404
    assert page.nav == ["首页", "智能派单", "组织机构", "人员", "工作日历", "接口令牌"]
    assert page.dom.one("div", "who").one("span").text == "系统管理员(admin)"


def test_missing_records_get_the_not_found_page(client: TestClient) -> None:
    login(client, "admin")
    nobody = uuid.UUID(int=0)
    for path, message in [
        (f"/admin/units/{nobody}", "单位不存在或无权查看"),
        (f"/admin/people/{nobody}", "人员不存在或无权查看"),
    ]:
        page = get(client, path)
        assert page.status == 404
        assert page.title == full_title("找不到页面")
        assert page.error_message == message


ODD = [
    ("GET", "/admin/units/not-a-uuid", 422, "填写有误"),
    ("GET", "/admin/people/12345", 422, "填写有误"),
    ("GET", "/admin/people?page=0", 422, "填写有误"),
    ("GET", "/admin/people?page=abc", 422, "填写有误"),
    ("GET", "/admin/people?unit_id=nope", 422, "填写有误"),
    ("GET", "/admin/people?q=" + "长" * 51, 422, "填写有误"),
    ("GET", "/admin/people?role=nonsense", 200, "人员"),
    ("GET", "/admin/calendar?month=abc", 400, "请求有误"),
    ("GET", "/admin/calendar?month=2026", 400, "请求有误"),
    ("GET", "/admin/calendar?days=-1&start=2026-10-01", 422, "填写有误"),
    ("GET", "/admin/calendar?start=2026-02-30&days=1", 422, "填写有误"),
    ("GET", "/admin/units/new", 200, "新增单位"),
    ("GET", "/admin/units/new?parent_id=00000000-0000-0000-0000-000000000000", 404, "找不到页面"),
    ("GET", "/admin/tokens?issued=x", 200, "接口令牌"),
    ("GET", "/%E4%B8%AD%E6%96%87", 404, "找不到页面"),
    ("GET", "/static/%2e%2e/%2e%2e/app.py", 404, "找不到页面"),
    ("DELETE", "/admin/units", 405, "不支持的操作"),
    ("PUT", "/admin/people/new", 405, "不支持的操作"),
    ("POST", "/admin/tokens/00000000-0000-0000-0000-000000000000/revoke", 404, "找不到页面"),
    ("POST", "/admin/calendar/override", 422, "填写有误"),
]


@pytest.mark.parametrize(("method", "path", "status", "title"), ODD)
def test_odd_requests_never_fail_with_500(
    lenient_client: TestClient, method: str, path: str, status: int, title: str
) -> None:
    csrf = login(lenient_client, "admin")
    data = {"csrf_token": csrf} if method == "POST" else None
    response = lenient_client.request(method, path, data=data, follow_redirects=False)
    page = Page.of(response)
    assert page.status == status, response.text
    assert page.title == full_title(title)


@pytest.mark.parametrize(
    "query",
    ["month=0001-01", "month=9999-12", "start=9999-12-30&days=5", "start=0001-01-01&days=3"],
)
def test_calendar_at_the_ends_of_time_is_refused_not_crashed(
    lenient_client: TestClient, query: str
) -> None:
    login(lenient_client, "admin")
    page = get(lenient_client, f"/admin/calendar?{query}")
    assert page.status == 400
    assert page.title == full_title("请求有误")
    assert page.error_message == "日期须在 1990–2200 年之间"


# --- query counts ----------------------------------------------------------------------


def add_people(db: Session, unit: uuid.UUID, start: int, count: int) -> None:
    actor = system_principal()
    for n in range(start, start + count):
        service.create_person(
            db,
            actor,
            data=PersonCreate(
                username=f"bulk.{n:03d}",
                display_name=f"批量人员 {n:03d}",
                unit_id=unit,
                roles=["handler", "callback_agent"] if n % 2 else ["handler"],
                password=STRONG_PASSWORD,
            ),
        )
    db.commit()


@pytest.fixture
def cheap_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bulk people never log in: skip argon2 (about 50 ms a person) for them."""
    monkeypatch.setattr(service, "hash_password", lambda password: "not-a-real-hash")


@pytest.fixture
def bulk_unit(db: Session) -> uuid.UUID:
    unit = service.create_unit(
        db,
        system_principal(),
        data=UnitCreate(
            parent_id=unit_id(db, DONGCHENG.code),
            kind="community",
            code="441900003950",
            name="批量社区",
        ),
    )
    db.commit()
    created: uuid.UUID = unit.id
    return created


@pytest.mark.usefixtures("cheap_hash")
def test_people_list_costs_the_same_queries_for_5_or_40_people(
    client: TestClient,
    db: Session,
    bulk_unit: uuid.UUID,
    count_queries: Callable[[], QueryCounter],
) -> None:
    login(client, "admin")
    path = f"/admin/people?unit_id={bulk_unit}"
    add_people(db, bulk_unit, 0, 5)
    five = count_queries()
    page = get(client, path)
    five_count = five.count
    assert len(table_rows(page.dom.one("table"))) == 5

    add_people(db, bulk_unit, 5, 35)
    forty = count_queries()
    page = get(client, path)
    forty_count = forty.count
    rows = table_rows(page.dom.one("table"))
    assert len(rows) == 40
    assert rows[1] == ["批量人员 001", "bulk.001", "批量社区", "回访员 承办人", "在用", ""]
    assert five_count > 0
    assert forty_count == five_count, forty.statements


@pytest.mark.usefixtures("cheap_hash")
def test_people_pager_keeps_the_unit_filter(
    client: TestClient, db: Session, bulk_unit: uuid.UUID
) -> None:
    login(client, "admin")
    add_people(db, bulk_unit, 0, 51)
    first = get(client, f"/admin/people?unit_id={bulk_unit}")
    assert first.h1 == "人员 共 51 人"
    pager = first.dom.one("div", "pager")
    assert pager.text == "第 1 / 2 页 下一页"
    href = pager.one("a").attrs["href"]
    assert href == f"?q=&role=&unit_id={bulk_unit}&page=2"
    second = get(client, "/admin/people" + href)
    assert table_rows(second.dom.one("table")) == [
        ["批量人员 050", "bulk.050", "批量社区", "承办人", "在用", ""]
    ]
    assert second.dom.one("div", "pager").one("a").attrs["href"] == (
        f"?q=&role=&unit_id={bulk_unit}&page=1"
    )


def test_city_wide_people_page_shows_city_and_bureau_staff(client: TestClient, db: Session) -> None:
    login(client, "admin")
    page = get(client, f"/admin/people?unit_id={unit_id(db, BUREAU)}")
    usernames = [row[1] for row in table_rows(page.dom.one("table"))]
    assert usernames == ["callback", "calltaker", "dispatcher", "supervisor"]
    city = get(client, f"/admin/people?unit_id={unit_id(db, CITY)}&role=auditor")
    assert [row[1] for row in table_rows(city.dom.one("table"))] == ["auditor"]
