"""The 智能派单 page in a real browser: an administrator edits the dispatch catalogue, a
dispatcher reads it. Screenshots in ``test-artifacts/dispatch/`` (git-ignored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.modules.hotline.test_browser_order import log_in, switch_to

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.browser

SCREENSHOTS = "dispatch"


def test_an_admin_edits_the_catalogue_and_a_dispatcher_reads_it(
    live_server: str, browser_page: Page, shots: Any
) -> None:
    base, page = live_server, browser_page
    log_in(page, base, "admin")
    page.locator("nav.mainnav").get_by_role("link", name="智能派单").click()
    expect(page.locator("h1")).to_have_text("智能派单")
    empty = "目录为空：暂按模型与类别默认单位建议"
    expect(page.locator("table.rules td").first).to_have_text(empty)
    page.get_by_text("新增或修改目录条目").click()
    page.get_by_label("诉求分类").select_option(label="城市管理")
    page.get_by_label("辖区（同一分类、同一辖区的现行条目将被替换）").select_option(
        label="东城街道"
    )
    page.get_by_label("主办单位").select_option(label="由诉求所在镇街主办")
    page.get_by_label("自动派单置信度阈值（%，留空用全市默认）").fill("95")
    page.get_by_label("说明").fill("城市管理类属地事项由街道主办")
    shots(page, "01-catalogue-form")
    page.get_by_role("button", name="保存到派单目录").click()
    expect(page.locator(".flash.ok")).to_have_text("已加入派单目录")
    row = page.locator("table.rules tr").nth(1)
    expect(row).to_contain_text("城市管理")
    expect(row).to_contain_text("东城街道")
    expect(row).to_contain_text("所在镇街")
    expect(row).to_contain_text("95%")
    expect(page.locator("h2").filter(has_text="派单目录")).to_contain_text("第 1 版")
    shots(page, "02-catalogue-saved")
    switch_to(page, base, "dispatcher")
    page.goto(f"{base}/hotline/dispatch")
    expect(page.locator("table.rules")).to_contain_text("东城街道")
    expect(page.get_by_role("button", name="保存到派单目录")).to_have_count(0)
    expect(page.get_by_role("button", name="立即重新训练")).to_have_count(0)
    shots(page, "04-dispatcher-view")
