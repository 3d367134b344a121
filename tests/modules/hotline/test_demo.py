"""The demo order history goes through the real service: timelines, clocks and callbacks
are what live use leaves, and nothing happens after "now"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import audit, clock
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import demo
from zhengshu.modules.hotline.insight.issue_models import HardProblem
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.service import HotlineConfig

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def test_the_demo_history_is_made_by_the_real_workflow(db: Session, settings: Settings) -> None:
    @contextmanager
    def scope() -> Iterator[Session]:
        yield db
        db.flush()

    before = clock.now
    assert not demo.has_orders(db)
    report = demo.generate(scope, HotlineConfig.from_settings(settings), days=5, per_day=8, now=NOW)
    assert clock.now is before  # the process clock is given back
    orders = db.execute(select(Case, Order).join(Order, Order.id == Case.id)).all()
    assert report.orders == len(orders)
    assert report.orders > 20
    assert sum(report.by_status.values()) == report.orders
    # Every order opens with its registration and no step lies after "now".
    firsts = db.execute(select(CaseEvent.action).where(CaseEvent.seq == 1)).scalars().all()
    assert Counter(firsts) == {"register": report.orders}
    latest = db.execute(select(func.max(CaseEvent.at))).scalar_one()
    assert latest.replace(tzinfo=UTC) <= NOW
    # A closed order was called back as solved and satisfied (the workflow's own rule).
    closed = [o for c, o in orders if c.status == "closed"]
    assert closed
    assert all(o.solved and o.satisfaction is not None for o in closed)
    # The recurring problems are there to be found as hot issues, the extreme texts too.
    titles = Counter(c.title for c, _ in orders)
    assert titles["丰硕广场旁工地夜间施工噪音"] >= 10
    assert titles["有人扬言跳楼"] == 1
    # The hard-problem list has its examples to follow.
    assert len(db.execute(select(HardProblem)).scalars().all()) == 2
    # Each step left its audit row, and the chain verifies.
    assert audit.verify(db).ok
