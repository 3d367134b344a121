"""The five-minute spike scan against a city's month of orders, in the database.

On a scratch PostgreSQL installation (the demo city), ``--days`` days of ``--per-day``
orders (hour-of-day rhythm, weekends lighter, spread over the categories and the demo's
villages) are written straight into ``cases`` / ``orders``; then the real
``alert_scan.scan_spikes`` (the baseline summed by the database: per category x place,
per hour) is timed beside the baseline it replaced in the same run: fetching every order
of the 28 days and fitting the detector on them one by one. Both learn the same baseline
(``tests/modules/hotline/insight/test_spikes.py``); printed: rows, best-of times, ratio.

    python bench/spike_scan.py                 # 28 days x 10,000 orders
    python bench/spike_scan.py --per-day 2000 --days 28
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
# bench/calendar.py must not shadow the standard library's calendar; harness stays importable.
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE] + [_HERE]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from harness import DEFAULT_PG, scratch_site  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

HOURLY = [1, 0, 0, 0, 0, 1, 2, 5, 9, 12, 12, 10, 7, 8, 11, 11, 10, 8, 6, 6, 5, 4, 3, 2]


def fill(session: Session, *, days: int, per_day: int, now: datetime, seed: int) -> int:
    from zhengshu.casework.models import Case
    from zhengshu.modules.hotline.catalogue import categories
    from zhengshu.modules.hotline.models import Order
    from zhengshu.org.models import Unit

    rng = random.Random(seed)
    places = list(session.scalars(select(Unit.id).where(Unit.kind.in_(["village", "community"]))))
    codes = list(categories())
    start = now - timedelta(days=days)
    made = 0
    for day in range(days):
        local_day = (start + timedelta(days=day)).astimezone(UTC)
        volume = int(per_day * (0.6 if local_day.weekday() >= 5 else 1.0))
        cases, orders = [], []
        for i in range(volume):
            at = local_day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                hours=rng.choices(range(24), weights=HOURLY)[0] - 8, minutes=rng.uniform(0, 60)
            )
            if at >= now:
                continue
            case_id = uuid.uuid4()
            cases.append(
                {
                    "id": case_id,
                    "case_type": "hotline",
                    "number": f"B{day:03d}{i:07d}",
                    "status": "closed",
                    "title": "诉求",
                    "category": rng.choice(codes),
                    "created_by": "bench",
                    "created_at": at,
                    "updated_at": at,
                }
            )
            orders.append(
                {
                    "id": case_id,
                    "channel": "phone",
                    "requester_name": "市民",
                    "requester_phone": "13800000000",
                    "content": "诉求内容",
                    "location_unit_id": rng.choice(places),
                }
            )
        session.execute(insert(Case), cases)
        session.execute(insert(Order), orders)
        session.commit()
        made += len(cases)
    return made


def baseline_scan(session: Session, now: datetime) -> int:
    """The scan as it was: every order of the window fetched and fitted one by one."""
    from zhengshu.casework.models import Case
    from zhengshu.modules.hotline.insight import alert_scan
    from zhengshu.modules.hotline.insight.spikes import SpikeDetector
    from zhengshu.modules.hotline.models import Order
    from zhengshu.org.models import Unit

    det = SpikeDetector()
    since = now - timedelta(days=alert_scan.HISTORY_DAYS)
    split = now - timedelta(minutes=max(det.windows))
    place = Unit.__table__.alias("place")
    rows = session.execute(
        select(Case.created_at, Case.category, place.c.path)
        .join(Order, Order.id == Case.id)
        .outerjoin(place, place.c.id == Order.location_unit_id)
        .where(Case.case_type == "hotline", Case.created_at >= since, Case.created_at <= now)
        .order_by(Case.created_at)
    ).all()
    history, recent = [], []
    for created_at, category, path in rows:
        event = (alert_scan._key(category, alert_scan._town_of_path(path)), created_at)
        (history if created_at < split else recent).append(event)
    det.fit((k, alert_scan._local(at)) for k, at in history)
    det.run((k, alert_scan._local(at)) for k, at in recent)
    return len(rows)


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("ZHENGSHU_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    with scratch_site("postgresql", args.pg) as site:
        os.environ.update(
            {"ZHENGSHU_DATABASE_URL": site.url, "ZHENGSHU_DATA_DIR": str(site.data_dir)}
        )
        from zhengshu.kernel.db import make_engine, make_sessionmaker
        from zhengshu.kernel.settings import Settings
        from zhengshu.modules.hotline.insight import alert_scan

        engine = make_engine(Settings())
        factory = make_sessionmaker(engine)
        now = datetime.now(UTC).replace(microsecond=0)
        t = time.perf_counter()
        with factory() as session:
            made = fill(session, days=args.days, per_day=args.per_day, now=now, seed=args.seed)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE cases")
            conn.exec_driver_sql("VACUUM ANALYZE orders")
        print(f"orders written: {made:,} over {args.days} days ({time.perf_counter() - t:.0f} s)")

        def scan() -> None:
            with factory() as session:
                alert_scan.scan_spikes(session, now)
                session.rollback()

        fetched = 0

        def old() -> None:
            nonlocal fetched
            with factory() as session:
                fetched = baseline_scan(session, now)

        new_s = best(scan, args.repeat)
        old_s = best(old, args.repeat)
        print(f"scan_spikes (history summed by the database): {new_s * 1000:8.1f} ms")
        print(f"baseline (every order fetched, {fetched:,} rows): {old_s * 1000:8.1f} ms")
        print(f"ratio scan / baseline: {new_s / old_s:.2f}x  (best of {args.repeat})")
        engine.dispose()


if __name__ == "__main__":
    main()
