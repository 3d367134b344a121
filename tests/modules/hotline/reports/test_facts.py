"""Per-order facts: the refresh watermark, the batches, the rollups kept equal to the
facts, the town of an order, and the periodic job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from tests.conftest import actor, frozen_at, unit_id
from zhengshu.kernel import clock
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.reports import facts
from zhengshu.modules.hotline.reports.models import (
    FLAGS,
    OrderFact,
    OrderFactDaily,
    OrderFactDailyUnit,
)
from zhengshu.modules.hotline.schemas import ActionRequest, OrderCreate
from zhengshu.tasks import build_registry

GANGBEI = "441900003001"
DONGCHENG = "441900003000"
DONGCHENG_OFFICE = "441900003000-D01"  # 东城执法办, an office under 东城街道
HOUSING = "D001"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI))


def register(db: Session, settings: Settings, **fields: object) -> tuple[object, object]:
    body: dict[str, object] = {
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "content": "路灯不亮。",
        "request_type": "complaint",
        "category": "urban",
        **fields,
    }
    return service.register_order(
        db,
        actor(db, "calltaker"),
        config=service.HotlineConfig.from_settings(settings),
        data=OrderCreate.model_validate(body),
        smart=False,
    )


def act(
    db: Session, settings: Settings, who: str, order_id: object, action: str, **body: object
) -> None:
    service.act(
        db,
        actor(db, who),
        config=service.HotlineConfig.from_settings(settings),
        order_id=order_id,  # type: ignore[arg-type]
        action=action,
        request=ActionRequest.model_validate(body),
    )
    db.flush()


def rollup_equals_facts(db: Session) -> None:
    """Both rollups hold exactly GROUP BY over the facts."""
    sums = [func.count(), *(func.sum(cast(getattr(OrderFact, f), Integer)) for f in FLAGS)]
    from_facts = db.execute(select(OrderFact.day, *sums).group_by(OrderFact.day)).all()
    for model in (OrderFactDaily, OrderFactDailyUnit):
        rolled = db.execute(
            select(
                model.day,
                func.sum(model.orders),
                *(func.sum(getattr(model, f)) for f in FLAGS),
            ).group_by(model.day)
        ).all()
        assert sorted(tuple(r) for r in rolled) == sorted(tuple(r) for r in from_facts)


def test_the_refresh_follows_the_watermark(
    db: Session, settings: Settings, frozen: FrozenClock
) -> None:
    case, _ = register(db, settings, location_unit_id=unit_id(db, GANGBEI))
    first = facts.refresh(db)
    assert (first.cases, first.days, first.more) == (1, 1, False)
    fact = db.get(OrderFact, case.id)  # type: ignore[attr-defined]
    assert fact is not None
    assert (fact.dispatched, fact.town_unit_id, fact.lead_unit_id) == (
        False,
        unit_id(db, DONGCHENG),
        None,
    )
    assert facts.refresh(db).cases == 0  # nothing changed
    frozen.advance(timedelta(minutes=5))
    act(db, settings, "dispatcher", case.id, "dispatch", unit_id=unit_id(db, DONGCHENG))  # type: ignore[attr-defined]
    assert facts.refresh(db).cases == 1
    db.expire_all()  # the refresh rewrote the row with a Core statement
    assert (fact.dispatched, fact.lead_unit_id, fact.status) == (
        True,
        unit_id(db, DONGCHENG),
        "dispatched",
    )
    assert fact.dispatched_at == clock.now()
    rollup_equals_facts(db)


def test_a_late_commit_inside_the_overlap_is_still_picked_up(
    db: Session, settings: Settings, frozen: FrozenClock
) -> None:
    early, _ = register(db, settings)
    frozen.advance(timedelta(minutes=3))
    late, _ = register(db, settings)
    facts.refresh(db, case_ids=[late.id])  # type: ignore[attr-defined]
    # The watermark is now the later order's time; the earlier one (a transaction that
    # committed after the last run) is 3 minutes older, inside the 10-minute overlap.
    report = facts.refresh(db)
    assert report.cases == 1
    assert db.get(OrderFact, early.id) is not None  # type: ignore[attr-defined]


def test_batches_are_bounded(db: Session, settings: Settings, frozen: FrozenClock) -> None:
    for _ in range(5):
        register(db, settings)
        frozen.advance(timedelta(seconds=1))
    first = facts.refresh(db, batch=3)
    assert (first.cases, first.more) == (3, True)
    second = facts.refresh(db, batch=3)
    assert (second.cases, second.more) == (2, False)
    assert db.scalar(select(func.count()).select_from(OrderFact)) >= 5
    rollup_equals_facts(db)


def test_the_town_of_an_order_without_a_location_is_its_lead_units(
    db: Session, settings: Settings, frozen: FrozenClock
) -> None:
    office, _ = register(db, settings)
    city_dept, _ = register(db, settings)
    frozen.advance(timedelta(minutes=1))
    act(db, settings, "dispatcher", office.id, "dispatch", unit_id=unit_id(db, DONGCHENG_OFFICE))  # type: ignore[attr-defined]
    act(db, settings, "dispatcher", city_dept.id, "dispatch", unit_id=unit_id(db, HOUSING))  # type: ignore[attr-defined]
    facts.refresh(db, case_ids=[office.id, city_dept.id])  # type: ignore[attr-defined]
    assert db.get(OrderFact, office.id).town_unit_id == unit_id(db, DONGCHENG)  # type: ignore[attr-defined,union-attr]
    assert db.get(OrderFact, city_dept.id).town_unit_id is None  # type: ignore[attr-defined,union-attr]


def test_the_worker_refreshes_every_minute(settings: Settings) -> None:
    registry = build_registry(settings)
    job = next(p for p in registry.periodic if p.name == "hotline.reports.facts")
    assert job.every == timedelta(minutes=1)
    assert job.handler is facts.refresh_job
