"""The leaders' dashboard: live counts from the orders, KPIs from the same engine as the
KPI report, narrowed to the viewer's jurisdiction; plotly.js from the installed package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import actor
from tests.web.helpers import login
from zhengshu.casework.models import Case
from zhengshu.kernel import clock
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import demo
from zhengshu.modules.hotline.reports import facts, kpi
from zhengshu.modules.hotline.service import HotlineConfig

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
OPEN = [
    "registered",
    "dispatched",
    "returned",
    "handling",
    "extension_requested",
    "suspended",
    "replied",
]


@pytest.fixture
def history(db: Session, settings: Settings) -> Iterator[None]:
    @contextmanager
    def scope() -> Iterator[Session]:
        yield db
        db.flush()

    demo.generate(scope, HotlineConfig.from_settings(settings), days=6, per_day=8, now=NOW)
    previous = clock.use_clock(FrozenClock(NOW))
    facts.refresh(db)
    db.commit()
    yield
    clock.use_clock(previous)


def test_the_city_leader_sees_the_whole_city(
    history: None, api: Callable[[str], TestClient], db: Session
) -> None:
    data = api("leader").get("/api/v1/dashboard").json()
    open_now = db.execute(
        select(func.count()).select_from(Case).where(Case.status.in_(OPEN))
    ).scalar_one()
    red = db.execute(
        select(func.count())
        .select_from(Case)
        .where(Case.status.in_(OPEN), Case.warning_level == "red")
    ).scalar_one()
    assert data["counts"]["open"] == open_now
    assert data["counts"]["red"] == red
    assert data["month"] == "2026-11"
    # The headline is the KPI report's own total for the month.
    start, end = kpi.month_bounds("2026-11")
    report = kpi.compute(db, actor(db, "leader"), start=start, end=end)
    headline = {h["key"]: h for h in data["headline"]}
    for key in ("on_time_closure_rate", "satisfaction_rate"):
        assert headline[key]["numerator"] == report.total.values[key].numerator
        assert headline[key]["denominator"] == report.total.values[key].denominator
    # The charts are plotly figures; the trend has one bar per day of the last 30.
    trend = data["charts"]["trend"]["data"][0]
    assert trend["type"] == "bar"
    assert len(trend["x"]) == 30
    assert sum(trend["y"]) == sum(t["orders"] for t in data["towns"]) > 0
    pie = data["charts"]["categories"]["data"][0]
    assert sum(pie["values"]) == sum(trend["y"])
    # The recurring problems and the extreme texts of the history show up.
    assert any(a["kind"] == "extreme" for a in data["alerts"])


def test_a_town_leader_sees_the_town_only(history: None, api: Callable[[str], TestClient]) -> None:
    city = api("leader").get("/api/v1/dashboard").json()
    town = api("dc.leader").get("/api/v1/dashboard").json()
    assert 0 < town["counts"]["open"] < city["counts"]["open"]
    assert [t["town"] for t in town["towns"]] == ["东城街道"]


def test_who_may_not_see_it(api: Callable[[str], TestClient]) -> None:
    assert api("dc.handler").get("/api/v1/dashboard").status_code == 403
    assert api("calltaker").get("/api/v1/dashboard").status_code == 403


def test_the_page_and_its_plotly(history: None, client: TestClient) -> None:
    login(client, "leader")
    page = client.get("/hotline/dashboard")
    assert page.status_code == 200
    assert "领导驾驶舱" in page.text
    assert '<script src="/vendor/plotly.min.js">' in page.text
    assert "cdn" not in page.text.lower()
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert b"plotly.js" in js.content[:400]
