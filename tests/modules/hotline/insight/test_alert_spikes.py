"""The spike scan on a hand-made history: four quiet weeks, then a burst of noise
complaints in one town; one warning per burst, none on a quiet stream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from zhengshu.casework.models import Case
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline.insight import alerts
from zhengshu.modules.hotline.insight.alert_models import Alert, AlertRecipient
from zhengshu.modules.hotline.insight.alert_scan import scan_spikes
from zhengshu.modules.hotline.models import Notification, Order
from zhengshu.org import repository
from zhengshu.tasks import build_registry

LOCAL = ZoneInfo("Asia/Shanghai")
DONGCHENG = "441900003000"
SHIJIE = "441900101000"
# A Wednesday 11:00 in Beijing, years from any other test's orders.
NOW = datetime(2031, 3, 5, 11, 0, tzinfo=LOCAL).astimezone(UTC)


def _order(db: Session, at: datetime, category: str, town: uuid.UUID, text: str) -> None:
    case = Case(
        id=uuid.uuid4(),
        case_type="hotline",
        number=f"T{uuid.uuid4().hex[:20]}",
        status="registered",
        version=1,
        title=text[:30],
        category=category,
        urgency="normal",
        created_by="测试",
        created_at=at,
        updated_at=at,
    )
    db.add(case)
    db.add(
        Order(
            id=case.id,
            channel="phone",
            requester_name="市民",
            requester_phone="13800138000",
            content=text,
            location_unit_id=town,
        )
    )


def _quiet(db: Session, *, until: datetime) -> None:
    """28 days before NOW and up to ``until``: three environment orders a day in
    Dongcheng (08:20, 14:40, 19:05) and two urban ones in Shijie (10:30, 16:00)."""
    dongcheng, shijie = unit_id(db, DONGCHENG), unit_id(db, SHIJIE)
    day0 = (NOW - timedelta(days=28)).astimezone(LOCAL).date()
    for d in range(29):
        day = day0 + timedelta(days=d)
        for hour, minute, category, town in (
            (8, 20, "environment", dongcheng),
            (14, 40, "environment", dongcheng),
            (19, 5, "environment", dongcheng),
            (10, 30, "urban", shijie),
            (16, 0, "urban", shijie),
        ):
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL)
            if at.astimezone(UTC) <= until:
                _order(db, at.astimezone(UTC), category, town, "反映日常诉求，请处理。")
    db.flush()


def _burst(db: Session, start: datetime, count: int, every: timedelta) -> None:
    dongcheng = unit_id(db, DONGCHENG)
    for i in range(count):
        _order(
            db,
            start + i * every,
            "environment",
            dongcheng,
            f"东城某工地夜间施工噪音扰民，吵得无法休息（{i}）",
        )
    db.flush()


def _spikes(db: Session) -> list[Alert]:
    return list(db.scalars(select(Alert).where(Alert.kind == "spike").order_by(Alert.raised_at)))


@pytest.fixture
def no_spikes(db: Session) -> None:
    assert _spikes(db) == []


def test_a_burst_after_quiet_weeks_raises_one_warning(db: Session, no_spikes: None) -> None:
    supervisor = repository.person_by_username(db, "supervisor")
    assert supervisor is not None
    supervisor.phone = "13912345678"
    db.flush()
    _quiet(db, until=NOW)
    _burst(db, NOW - timedelta(minutes=59), 40, timedelta(minutes=1.5))
    result = scan_spikes(db, NOW)
    assert (result.found, len(result.raised)) == (1, 1)
    (alert,) = _spikes(db)
    dongcheng = unit_id(db, DONGCHENG)
    assert alert.key == f"environment|{dongcheng.hex}"
    assert (alert.kind, alert.status, alert.category, alert.town_unit_id) == (
        "spike",
        "raised",
        "environment",
        dongcheng,
    )
    # 40 orders from onset to the scan where about half of one was expected: 预警 (an
    # excess of 20 or more; 紧急 takes 50)
    assert alert.level == 2
    assert alert.observed == 40
    assert alert.expected is not None
    assert 0.1 < alert.expected < 1
    assert alert.window_minutes == 15  # the detector fired on the 15-minute window
    assert alert.p_value is not None
    assert alert.p_value < 1e-6
    assert alert.window_start == NOW - timedelta(minutes=59)  # the burst's first order
    assert alert.window_end == NOW
    assert alert.title.startswith("话务突增：东城街道“生态环境”类诉求自 10:01 起 40 件")
    assert alert.dedupe_key == f"spike:environment|{dongcheng.hex}:203103051001"
    # the orders in its window are the 40 of the burst
    linked = alerts.linked_orders(db, alert)
    assert len(linked) == 40
    assert all("噪音" in o.title for o in linked)
    # delivered city-wide (supervisor, leader); a level-2 spike is texted to each mobile
    rows = {r.role: r for r in alerts.recipients(db, alert.id)}
    assert sorted(rows) == ["leader", "supervisor"]
    assert rows["leader"].sms_status == "none"  # no mobile on record
    assert rows["supervisor"].sms_status == "queued"
    sms = db.get(Notification, rows["supervisor"].notification_id)
    assert sms is not None
    assert sms.case_id is None  # about no one order
    assert sms.recipient == "13912345678"
    assert sms.body.startswith("【东莞12345】舆情预警（预警）：话务突增")
    assert alerts.texted(alert)
    alert.level = 1
    assert not alerts.texted(alert)  # a level-1 spike stays on the page


def test_the_next_scans_of_the_same_burst_raise_nothing_new(db: Session, no_spikes: None) -> None:
    _quiet(db, until=NOW + timedelta(minutes=30))
    _burst(db, NOW - timedelta(minutes=59), 40, timedelta(minutes=1.5))
    assert len(scan_spikes(db, NOW).raised) == 1
    _burst(db, NOW + timedelta(minutes=1), 6, timedelta(minutes=1))
    for later in (5, 10, 30):
        again = scan_spikes(db, NOW + timedelta(minutes=later))
        assert again.found >= 1  # the detector still sees it ...
        assert again.raised == []  # ... but it is the same episode
    assert len(_spikes(db)) == 1
    assert db.scalar(select(func.count()).select_from(AlertRecipient)) >= 2


def test_a_quiet_stream_raises_nothing(db: Session, no_spikes: None) -> None:
    _quiet(db, until=NOW)
    for hours_back in range(4, 48, 4):
        assert scan_spikes(db, NOW - timedelta(hours=hours_back)).raised == []
    result = scan_spikes(db, NOW)
    assert result.history > 100
    assert (result.found, result.raised) == (0, [])
    assert _spikes(db) == []


def test_a_new_burst_on_another_day_is_a_new_warning(db: Session, no_spikes: None) -> None:
    _quiet(db, until=NOW)
    yesterday = NOW - timedelta(days=1)
    _burst(db, yesterday - timedelta(minutes=59), 40, timedelta(minutes=1.5))
    assert len(scan_spikes(db, yesterday).raised) == 1
    _burst(db, NOW - timedelta(minutes=59), 40, timedelta(minutes=1.5))
    assert len(scan_spikes(db, NOW).raised) == 1
    assert len(_spikes(db)) == 2


def test_the_scan_runs_every_five_minutes(settings: Settings) -> None:
    registry = build_registry(settings)
    (job,) = [p for p in registry.periodic if p.name == "hotline.alerts.spikes"]
    assert job.every == timedelta(minutes=5)
    assert alerts.FORWARD_JOB in registry.handlers
