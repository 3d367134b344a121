"""The console in a real browser: headless Chromium against a real server.

A separate database is migrated and seeded with the demo city (real commits), the app runs
under uvicorn on a free port in a background thread, and Playwright drives Chromium
through the scenario an administrator lives: log in, browse the org tree, add a person,
log out; the new person logs in; a wrong password is refused. Each step leaves a
screenshot in ``test-artifacts/browser/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.org.builders import DEMO_PEOPLE_COUNT, DEMO_UNITS_COUNT, STRONG_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser

SCREENSHOTS = "browser"
NEW_USERNAME = "dc.linli"
NEW_NAME = "东城新同事 林立"


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def test_admin_adds_a_person_who_then_logs_in(
    live_server: str, browser_page: Page, shots: Any
) -> None:
    base, page = live_server, browser_page

    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/login?next=/")
    expect(page.locator("h1")).to_have_text("登录政数平台")
    expect(page).to_have_title("登录 · 政数平台 · 东莞市")
    shots(page, "01-login")

    log_in(page, base, "admin", PASSWORD)
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("h1")).to_have_text("您好，系统管理员")
    expect(page.locator("nav.mainnav a")).to_have_text(
        ["首页", "智能派单", "组织机构", "人员", "工作日历", "接口令牌"]
    )
    expect(page.locator(".who span")).to_have_text("系统管理员(admin)")
    shots(page, "02-home-admin")

    page.locator("nav.mainnav").get_by_role("link", name="组织机构").click()
    expect(page).to_have_url(f"{base}/admin/units")
    expect(page.locator("h1")).to_have_text(f"组织机构 共 {DEMO_UNITS_COUNT} 个单位")
    tree = page.locator("section.tree")
    gangbei = tree.get_by_role("link", name="岗贝社区", exact=True)
    expect(gangbei).to_be_hidden()
    shots(page, "03-units")

    summary = tree.locator("summary").filter(
        has=page.get_by_role("link", name="东城街道", exact=True)
    )
    expect(summary).to_have_count(1)
    summary.locator(".code").click()  # the summary toggles; the link in it would navigate
    expect(summary.locator("xpath=..")).to_have_attribute("open", "")
    expect(gangbei).to_be_visible()
    expect(tree.get_by_role("link", name="石碣村", exact=True)).to_be_hidden()
    shots(page, "04-tree-dongcheng-open")

    page.locator("nav.mainnav").get_by_role("link", name="人员").click()
    expect(page.locator("h1")).to_have_text(f"人员 共 {DEMO_PEOPLE_COUNT} 人")
    shots(page, "05-people")

    page.get_by_role("link", name="新增人员").click()
    expect(page).to_have_url(f"{base}/admin/people/new")
    expect(page.locator("h1")).to_have_text("新增人员")
    page.locator("input[name=username]").fill(NEW_USERNAME)
    page.locator("input[name=display_name]").fill(NEW_NAME)
    page.locator("input[name=phone]").fill("13800138000")
    page.locator("select[name=unit_id]").select_option(label="\u3000东城街道")
    page.get_by_label("承办人", exact=True).check()
    page.locator("input[name=password]").fill(STRONG_PASSWORD)
    shots(page, "06-person-form")
    page.get_by_role("button", name="保存").click()

    expect(page.locator(".flash")).to_have_text(f"已新增 {NEW_NAME}")
    expect(page.locator("h1")).to_have_text(f"{NEW_NAME} {NEW_USERNAME}")
    expect(page).to_have_title(f"{NEW_NAME} · 政数平台 · 东莞市")
    shots(page, "07-person-created")

    page.locator("nav.mainnav").get_by_role("link", name="人员").click()
    expect(page.locator("h1")).to_have_text(f"人员 共 {DEMO_PEOPLE_COUNT + 1} 人")
    row = page.locator("tr").filter(has_text=NEW_USERNAME)
    expect(row.locator("td")).to_have_text(
        [NEW_NAME, NEW_USERNAME, "东城街道", "承办人", "在用", ""]
    )
    shots(page, "08-people-listed")

    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.locator("nav.mainnav")).to_have_count(0)
    shots(page, "09-logged-out")

    log_in(page, base, NEW_USERNAME, STRONG_PASSWORD)
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("h1")).to_have_text(f"您好，{NEW_NAME}")
    expect(page.locator("dl.kv .tag.role")).to_have_text(["承办人"])
    expect(page.locator("nav.mainnav a")).to_have_text(
        ["首页", "工单", "组织机构", "人员", "工作日历"]
    )
    shots(page, "10-home-new-person")

    page.get_by_role("link", name="工作日历").first.click()
    expect(page.locator("h1")).to_have_text("工作日历")
    shots(page, "11-calendar")

    page.goto(f"{base}/admin/units/00000000-0000-0000-0000-000000000000")
    expect(page.locator("h1")).to_have_text("找不到页面")
    expect(page.locator(".error-page .big")).to_have_text("单位不存在或无权查看")
    shots(page, "12-not-found")

    page.get_by_role("button", name="退出").click()
    log_in(page, base, NEW_USERNAME, "Wrong-Passw0rd")
    expect(page.locator(".flash.error")).to_have_text("用户名或密码错误")
    expect(page.get_by_label("用户名")).to_have_value(NEW_USERNAME)
    expect(page.locator("nav.mainnav")).to_have_count(0)
    shots(page, "13-wrong-password")

    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, base, "admin", PASSWORD)
    page.goto(f"{base}/admin/people")
    expect(page.locator("h1")).to_have_text(re.compile(r"^人员\s+共 14 人$"))
    shots(page, "14-people-narrow")


def test_admin_and_auditor_pages_in_the_browser(
    live_server: str, browser_page: Page, shots: Any
) -> None:
    base, page = live_server, browser_page
    log_in(page, base, "admin", PASSWORD)
    expect(page.locator("h1")).to_have_text("您好，系统管理员")

    page.goto(f"{base}/admin/units?q=东城")
    expect(page.locator("main h2").first).to_have_text("查找“东城”：4 个结果")
    page.locator("main table").get_by_role("link", name="东城街道", exact=True).click()
    expect(page.locator("h1")).to_have_text("东城街道 街道")
    expect(page.locator("main h2")).to_have_text(["编辑", "下级单位（9）", "人员（3）"])
    shots(page, "21-unit-dongcheng")

    page.get_by_role("link", name="新增下级单位").click()
    expect(page.locator("h1")).to_have_text("新增单位 · 上级：东城街道")
    page.locator("select[name=kind]").select_option("community")
    page.locator("input[name=code]").fill("441900003999")
    page.locator("input[name=name]").fill("东城测试社区")
    page.get_by_role("button", name="新增").click()
    expect(page.locator(".flash")).to_have_text("已新增 东城测试社区")
    expect(page.locator("h1")).to_have_text("东城测试社区 社区")
    shots(page, "22-unit-created")

    page.locator("nav.mainnav").get_by_role("link", name="工作日历").click()
    page.locator("input[name=day]").fill("2026-12-25")
    page.locator("select[name=kind]").select_option("off")
    page.locator("input[name=name]").fill("台风停工停课")
    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"/admin/calendar\?month=2026-12&flash="))
    expect(page.locator(".flash.ok")).to_have_text("已设置 2026-12-25")
    expect(page.locator(".cal div").filter(has_text="台风停工停课")).to_have_count(1)
    shots(page, "23-calendar-admin")

    page.locator("nav.mainnav").get_by_role("link", name="接口令牌").click()
    page.locator("input[name=name]").fill("市公安局 110 警务平台")
    page.get_by_role("button", name="签发").click()
    expect(page.locator("h1")).to_have_text("令牌已签发：市公安局 110 警务平台")
    expect(page.locator("main pre")).to_have_text(re.compile(r"^zs_[0-9a-f]{12}_\S{40,}$"))
    shots(page, "24-token-issued")
    page.get_by_role("link", name="返回令牌列表").click()
    expect(page.locator("main table tr").nth(1).locator("td").first).to_have_text(
        "市公安局 110 警务平台"
    )
    shots(page, "25-tokens")

    page.goto(f"{base}/admin/people/new")
    page.locator("input[name=username]").fill("dc.weak")
    page.locator("input[name=display_name]").fill("弱密码")
    page.locator("input[name=password]").fill("aaaaaaaaaaaa")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("h1")).to_have_text("请求有误")
    expect(page.locator(".error-page .big")).to_have_text(
        "密码至少 10 位，且包含大写字母、小写字母、数字、符号中的三种"
    )
    shots(page, "26-weak-password")

    page.get_by_role("button", name="退出").click()
    log_in(page, base, "auditor", PASSWORD)
    page.locator("nav.mainnav").get_by_role("link", name="审计日志").click()
    expect(page.locator("h1")).to_have_text("审计日志")
    page.get_by_role("link", name="校验哈希链").click()
    verified = re.compile(r"^\s*审计链完整：共 \d+ 条记录，哈希链校验通过。\s*$")
    expect(page.locator(".flash.ok")).to_have_text(verified)
    expect(page.locator("main table tr").nth(1).locator("td").nth(4)).to_have_text("org.login.ok")
    shots(page, "27-audit-verified")
