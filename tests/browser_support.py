"""Shared pieces of the browser tests: the app on a real port over a seeded database,
Debian's Chromium driven by Playwright, and a screenshot folder per test module.

Registered as a plugin by ``tests/conftest.py``; Playwright is imported only when a
browser fixture runs, so machines without it still collect the suite (the browser test
modules skip themselves).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn

from tests.conftest import PASSWORD, factory_for
from zhengshu.app import create_app
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.db import make_engine
from zhengshu.kernel.settings import Settings
from zhengshu.org.seed import seed_demo

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium's background calls are refused by the sandbox's
# closed network, many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS_ROOT = Path(__file__).resolve().parents[1] / "test-artifacts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(fresh_database: Settings) -> Iterator[str]:
    """The app on a real port, over a freshly seeded database; yields its base URL."""
    settings = fresh_database
    engine = make_engine(settings)
    with factory_for(engine)() as session:
        seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
        session.commit()
    engine.dispose()

    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert thread.is_alive(), "the server thread died while starting"
        assert time.monotonic() < deadline, "the server did not answer /healthz in 30 s"
        time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        app.state.engine.dispose()


@pytest.fixture
def browser_page() -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/<the module's SCREENSHOTS>/``, emptied once per module so it holds
    only this run's steps."""
    folder = ARTIFACTS_ROOT / str(request.module.SCREENSHOTS)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def shots(artifacts: Path) -> Callable[[Page, str], Path]:
    """``shots(page, "01-step")`` saves a full-page screenshot of the step."""

    def shot(page: Page, step: str) -> Path:
        path = artifacts / f"{step}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path

    return shot
