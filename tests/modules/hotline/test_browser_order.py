"""One 12345 order through the console in a real browser, each role in turn.

Like ``tests/web/test_browser.py``: a separate database is migrated and seeded with the
demo city (real commits), the app runs under uvicorn on a free port in a background
thread, and Playwright drives headless Chromium. The clock is the real one. The call-taker
checks the caller's number and registers the call, the dispatcher sends it to Dongcheng,
Dongcheng's handler signs for it and replies, the callback agent records the caller's
satisfaction and the order closes. Each step leaves a screenshot in
``test-artifacts/hotline/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from zhengshu.kernel import clock
from zhengshu.kernel.calendar import SHANGHAI

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser

SCREENSHOTS = "hotline"
PHONE = "13800138000"
CONTENT = "东城街道岗贝社区某小区电动车在楼道充电，存在消防隐患，请尽快处理。"
REPLY = "已联系物业清理楼道电动车，并在小区东门设置集中充电点。"
TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{base}/")


def switch_to(page: Page, base: str, username: str) -> None:
    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(f"{base}/login")
    log_in(page, base, username)


def open_from_tile(page: Page, tile: str) -> None:
    page.locator("a.tile").filter(has_text=tile).click()


def timeline_labels(page: Page) -> Any:
    return page.locator("table.timeline tr td:nth-child(2)")


def test_one_order_through_intake_dispatch_sign_for_reply_callback_and_close(
    live_server: str, browser_page: Page, shots: Any
) -> None:
    base, page = live_server, browser_page
    today = clock.now().astimezone(SHANGHAI)
    number = f"GD{today:%Y%m%d}000001"

    # 1. 受理: the call-taker checks the caller's number, then registers the call.
    log_in(page, base, "calltaker")
    expect(page.locator("nav.mainnav a")).to_have_text(
        ["首页", "受理", "工单", "组织机构", "人员", "工作日历"]
    )
    expect(page.locator("a.tile b")).to_have_text(
        ["受理登记", "异步受理队列", "工单查询", "本辖区人员", "办理时限计算"]
    )
    shots(page, "01-home-calltaker")
    page.locator("nav.mainnav").get_by_role("link", name="受理").click()
    expect(page).to_have_url(f"{base}/hotline/intake")
    expect(page.locator("h1")).to_have_text("受理登记")
    page.get_by_label("来电号码").fill(PHONE)
    page.get_by_role("button", name="查重").click()
    expect(page).to_have_url(f"{base}/hotline/intake?phone={PHONE}")
    expect(page.locator(".no-duplicates")).to_have_text(f"号码 {PHONE} 近 30 天没有工单。")
    expect(page.get_by_label("联系电话")).to_have_value(PHONE)
    shots(page, "02-intake-checked")

    page.get_by_label("诉求人姓名").fill("陈先生")
    page.get_by_label("联系电话").fill("1380013")  # a digit short: the server says so
    page.get_by_label("地址").fill("东城街道岗贝社区某小区 3 栋")
    page.get_by_label("所属镇街/村居").select_option(label="\u3000岗贝社区")
    page.get_by_label("诉求类型").select_option(label="投诉")
    page.get_by_label("诉求分类").select_option(label="城市管理")
    page.get_by_label("诉求内容").fill(CONTENT)
    page.get_by_role("button", name="登记受理").click()
    expect(page.locator(".flash.error b")).to_have_text("受理信息有误，请按提示修改后重新提交")
    expect(page.locator("ul.form-errors li")).to_have_text(
        ["联系电话：请填写 11 位手机号或带区号的固定电话"]
    )
    expect(page.get_by_label("诉求内容")).to_have_value(CONTENT)
    expect(page.get_by_label("所属镇街/村居").locator("option:checked")).to_have_text(
        "\u3000岗贝社区"
    )
    shots(page, "03-intake-error")
    page.get_by_label("联系电话").fill(PHONE)
    shots(page, "04-intake-filled")
    page.get_by_role("button", name="登记受理").click()
    expect(page).to_have_url(re.compile(rf"{base}/hotline/orders/[0-9a-f-]{{36}}\?flash="))
    order_url = page.url.split("?")[0]
    expect(page.locator(".flash.ok")).to_have_text(f"已受理，工单编号 {number}")
    expect(page.locator("h1")).to_have_text(f"工单 {number} 已受理待派单")
    kv = page.locator("dl.kv")
    expect(kv.locator("dd").nth(2)).to_have_text(re.compile(r"^138\*\*\*\*8000\s+查看完整号码$"))
    expect(page.locator(".content")).to_have_text(CONTENT)
    expect(timeline_labels(page)).to_have_text(["受理"])
    shots(page, "05-registered")

    # 2. 派单: the dispatcher picks it from the queue and sends it to Dongcheng.
    switch_to(page, base, "dispatcher")
    open_from_tile(page, "待派单")
    expect(page.locator("h1")).to_have_text(re.compile(r"^待派单\s+共 1 件$"))
    row = page.locator("table.orders tr").filter(has_text=number)
    expect(row.locator("td").nth(4)).to_have_text("已受理待派单")
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^陈先生\s*138\*\*\*\*8000$"))
    shots(page, "06-dispatch-queue")
    row.get_by_role("link", name=number).click()
    expect(page).to_have_url(order_url)
    expect(page.locator("aside section.action h3")).to_have_text(
        ["派单", "并单", "移交 110/119/120"]
    )
    # Smart dispatch found the place from the address and says why it did not act alone.
    smart = page.locator("section.smart-dispatch")
    expect(smart).to_contain_text("东城街道 · 岗贝社区")
    expect(smart.locator(".held")).to_have_text("未自动派单：仅有类别默认单位，需人工确认")
    # The category's usual department is preselected; this one belongs to the town.
    expect(page.locator("#dispatch-unit option:checked")).to_have_text("东莞市城市管理和综合执法局")
    page.locator("#dispatch-unit").select_option(label="东城街道")
    page.get_by_label("派单意见（可空）").fill("属地管理，请东城街道核实处理")
    shots(page, "07-dispatch-form")
    page.get_by_role("button", name="派单", exact=True).click()
    expect(page.locator(".flash.ok")).to_have_text("已派单至 东城街道")
    expect(page.locator("h1")).to_have_text(f"工单 {number} 待签收")
    expect(kv.locator("dd").nth(10)).to_have_text("东城街道")
    expect(timeline_labels(page)).to_have_text(["受理", "派单"])
    shots(page, "08-dispatched")

    # 3. 签收: Dongcheng's handler finds it in the inbox and signs for it.
    switch_to(page, base, "dc.handler")
    open_from_tile(page, "待签收")
    expect(page.locator("h1")).to_have_text(re.compile(r"^待签收\s+共 1 件$"))
    shots(page, "09-inbox")
    page.get_by_role("link", name=number).click()
    expect(page.locator("aside h3")).to_have_text(["签收", "退单"])
    page.get_by_role("button", name="签收", exact=True).click()
    expect(page.locator(".flash.ok")).to_have_text("已签收，请在办理时限内答复")
    expect(page.locator("h1")).to_have_text(f"工单 {number} 办理中")
    expect(kv.locator("dd.due")).to_have_text(re.compile(rf"^{TIME}"))
    shots(page, "10-signed-for")

    # 4. 答复
    expect(page.locator("aside h3")).to_have_text(["联系诉求人", "申请延期", "答复"])
    page.get_by_label("答复内容（将告知诉求人）").fill(REPLY)
    page.get_by_role("button", name="答复", exact=True).click()
    expect(page.locator(".flash.ok")).to_have_text("已答复，等待回访")
    expect(page.locator("h1")).to_have_text(f"工单 {number} 已答复待回访")
    expect(page.locator(".reply")).to_have_text(REPLY)
    expect(page.locator(".no-actions")).to_have_text("当前没有您可以执行的操作。")
    shots(page, "11-replied")

    # 5. 回访 -> 办结
    switch_to(page, base, "callback")
    open_from_tile(page, "待回访")
    expect(page.locator("h1")).to_have_text(re.compile(r"^待回访\s+共 1 件$"))
    page.get_by_role("link", name=number).click()
    expect(page.locator("aside h3")).to_have_text(["回访"])
    page.get_by_label("已解决").check()
    page.get_by_label("满意", exact=True).check()
    page.get_by_label("回访记录（未解决或不满意时必填）").fill("诉求人表示楼道已清理")
    shots(page, "12-callback-form")
    page.get_by_role("button", name="提交回访").click()
    expect(page.locator(".flash.ok")).to_have_text("回访完成，工单已办结")
    expect(page.locator("h1")).to_have_text(f"工单 {number} 已办结")
    expect(page.locator(".callback-result")).to_have_text("已解决 · 满意")
    expect(timeline_labels(page)).to_have_text(["受理", "派单", "签收", "答复", "回访办结"])
    expect(page.locator("table.timeline tr td:nth-child(3)")).to_have_text(
        [
            "话务员 陈小敏(calltaker)",
            "派单员 李志强(dispatcher)",
            "东城街道承办人 吴涛(dc.handler)",
            "东城街道承办人 吴涛(dc.handler)",
            "回访员 王丽(callback)",
        ]
    )
    shots(page, "13-closed")

    # The call-taker finds the closed order by the caller's number.
    switch_to(page, base, "calltaker")
    page.locator("nav.mainnav").get_by_role("link", name="工单").click()
    page.locator("input[name=phone]").fill(PHONE)
    page.get_by_role("button", name="查询").click()
    expect(page.locator("h1")).to_have_text(re.compile(r"^工单查询\s+共 1 件$"))
    row = page.locator("table.orders tr").filter(has_text=number)
    expect(row.locator("td").nth(4)).to_have_text("已办结")
    expect(page.get_by_role("link", name="导出 Excel")).to_have_attribute(
        "href", f"/hotline/orders/export.xlsx?phone={PHONE}"
    )
    shots(page, "14-search")

    # The supervisor's board: nothing open, nothing late.
    switch_to(page, base, "supervisor")
    page.locator("nav.mainnav").get_by_role("link", name="督办看板").click()
    expect(page.locator("h1")).to_have_text(re.compile(r"^督办看板\s+在办 0 件$"))
    expect(page.locator(".stats .stat b")).to_have_text(["0", "0", "0", "0"])
    shots(page, "15-board")

    # On a phone the order reads top to bottom: details, content, timeline.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(order_url)
    expect(page.locator("h1")).to_have_text(f"工单 {number} 已办结")
    shots(page, "16-order-narrow")
