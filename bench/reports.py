"""The monthly KPI report on a 10-million-order history, beside a plain SQL aggregate.

On PostgreSQL (``--url``, the server; a scratch database is created and dropped): the
real migrations and the demo city, then ``--orders`` fact rows (default 10,000,000) over
12 months, made by ``INSERT ... SELECT FROM generate_series`` with realistic mixes (towns
and categories skewed, 60% of orders led by their own town and the rest by the
department of their category, 60% phone calls, 3% emergencies; flags drawn so that each
numerator implies its denominator, as the facts guarantee). Then the daily rollup is
built with the same statement the refresh uses, the tables are VACUUM ANALYZEd, and,
best of ``--repeat``, timed side by side:

- report: ``kpi.compute`` for one month by unit, the real function (city-wide actor);
- baseline: the plain aggregate over the same month's fact rows
  (``SELECT lead_unit_id, count(*) ... GROUP BY lead_unit_id``);
- naive: what the report would cost read straight from the facts (every flag summed per
  unit over the month's fact rows, the durations beside), for reference.

Prints the times, the ratio report / baseline, the rows and the build times.
Target: the report within 2x of the baseline and under 2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
# bench/calendar.py must not shadow the standard library's calendar; harness stays importable.
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE] + [_HERE]

import argparse  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import date  # noqa: E402
from typing import Any  # noqa: E402

from harness import DEFAULT_PG, scratch_site  # noqa: E402
from sqlalchemy import Engine, create_engine, event, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from zhengshu.kernel.authz import Principal, PrincipalKind  # noqa: E402
from zhengshu.modules.hotline.catalogue import categories  # noqa: E402
from zhengshu.modules.hotline.reports import facts, kpi  # noqa: E402
from zhengshu.modules.hotline.reports.models import FLAGS, OrderFact  # noqa: E402
from zhengshu.org.models import Unit  # noqa: E402
from zhengshu.org.roles import TOWN_LEVEL  # noqa: E402

FIRST_DAY = date(2025, 12, 1)  # 12 months: December 2025 to November 2026
MONTH = "2026-06"
CHANNELS = [  # share of orders per channel
    ("phone", 0.60),
    ("app", 0.15),
    ("web", 0.12),
    ("message_board", 0.08),
    ("police_110", 0.03),
    ("open311", 0.01),
    ("api", 0.01),
]


def _channel(draw: str) -> str:
    cases, edge = [], 0.0
    for name, share in CHANNELS[:-1]:
        edge += share
        cases.append(f"WHEN {draw} < {edge:.4f} THEN '{name}'")
    return f"CASE {' '.join(cases)} ELSE '{CHANNELS[-1][0]}' END"


def generate(engine: Engine, orders: int, chunk: int = 1_000_000) -> float:
    """Fill ``order_facts`` with ``orders`` rows; returns the seconds taken (indexes
    dropped during the load and built after, as a bulk load does)."""
    with Session(engine) as session:
        units = session.execute(select(Unit.id, Unit.kind, Unit.code)).all()
    towns = [str(u.id) for u in units if u.kind in {k.value for k in TOWN_LEVEL}]
    by_code = {u.code: str(u.id) for u in units}
    cats = list(categories().values())
    cat_codes = [c.code for c in cats]
    # The department of each category (same order as cat_codes); a town when it has none.
    depts = [by_code.get(c.unit_code or "", towns[0]) for c in cats]
    town_array = "ARRAY[" + ",".join(f"'{t}'" for t in towns) + "]::uuid[]"
    cat_array = "ARRAY[" + ",".join(f"'{c}'" for c in cat_codes) + "]::text[]"
    dept_array = "ARRAY[" + ",".join(f"'{d}'" for d in depts) + "]::uuid[]"
    table = OrderFact.__table__
    indexes = list(table.indexes)
    started = time.perf_counter()
    with engine.begin() as conn:
        for index in indexes:
            conn.execute(text(f'DROP INDEX IF EXISTS "{index.name}"'))
        conn.execute(text("SELECT setseed(0.42)"))
    days = 365
    for low in range(1, orders + 1, chunk):
        high = min(orders, low + chunk - 1)
        sql = f"""
        INSERT INTO order_facts (
            case_id, number, registered_at, day, channel, category, request_type, urgency,
            status, town_unit_id, lead_unit_id, {", ".join(FLAGS)},
            dispatched_at, signed_at, replied_at, closed_at, response_minutes,
            case_updated_at, refreshed_at)
        SELECT gen_random_uuid(), 'GD' || to_char(day, 'YYYYMMDD') || lpad(g::text, 8, '0'),
            at, day, channel, category,
            CASE WHEN emergency AND r7 < 0.5 THEN 'help' WHEN r7 < 0.35 THEN 'consultation'
                 WHEN r7 < 0.75 THEN 'complaint' WHEN r7 < 0.85 THEN 'report'
                 ELSE 'suggestion' END,
            CASE WHEN emergency THEN 'emergency' WHEN r8 < 0.05 THEN 'urgent' ELSE 'normal' END,
            CASE WHEN answered THEN 'answered' WHEN closed AND called_back THEN 'closed'
                 WHEN closed THEN 'replied' WHEN signed THEN 'handling'
                 WHEN dispatched THEN 'dispatched' ELSE 'registered' END,
            town, CASE WHEN NOT dispatched THEN NULL WHEN r6 < 0.6 THEN town ELSE dept END,
            dispatched, signed, signed AND r2 < 0.92, replied, closed, closed AND r3 < 0.9,
            answered, called_back, called_back AND r4 < 0.9, called_back AND r5 < 0.93,
            called_back AND r6 < 0.04, emergency, emergency AND signed,
            CASE WHEN dispatched THEN at + interval '20 minutes' END,
            CASE WHEN signed THEN at + interval '90 minutes' END,
            CASE WHEN replied THEN at + interval '3 days' END,
            CASE WHEN closed AND called_back THEN at + interval '4 days' END,
            CASE WHEN emergency AND signed THEN round((3 + 45 * power(r5, 2))::numeric, 3) END,
            at, now()
        FROM (
            SELECT *, dispatched AND r1 < 0.97 AS signed,
                dispatched AND r1 < 0.97 AND r2 < 0.95 AS replied,
                dispatched AND r1 < 0.97 AND r2 < 0.95 AND r3 < 0.96 AS closed,
                dispatched AND r1 < 0.97 AND r2 < 0.95 AND r4 < 0.88 AS called_back
            FROM (
                SELECT g, at, (at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                    {_channel("c")} AS channel, ({cat_array})[ci] AS category,
                    ({town_array})[ti] AS town, ({dept_array})[ci] AS dept,
                    a < 0.12 AS answered, a >= 0.12 AND a < 0.985 AS dispatched,
                    e < 0.03 AS emergency, r1, r2, r3, r4, r5, r6, r7, r8
                FROM (
                    SELECT g, timestamptz '{FIRST_DAY.isoformat()} 00:00+08'
                            + (g - 1)::float8 / {orders} * interval '{days} days'
                            + random() * interval '1 minute' AS at,
                        random() AS c, random() AS a, random() AS e,
                        1 + floor({len(cat_codes)} * power(random(), 1.8))::int AS ci,
                        1 + floor({len(towns)} * power(random(), 1.6))::int AS ti,
                        random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                        random() AS r5, random() AS r6, random() AS r7, random() AS r8
                    FROM generate_series({low}, {high}) AS g
                ) raw
            ) drawn
        ) flagged
        """
        with engine.begin() as conn:
            conn.execute(text(sql))
        print(f"  {high:>12,} fact rows  {time.perf_counter() - started:7.1f} s", flush=True)
    with engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        for index in indexes:
            index.create(conn)
    return time.perf_counter() - started


def build_rollup(engine: Engine) -> float:
    started = time.perf_counter()
    with Session(engine) as session:
        session.execute(text("SET work_mem = '256MB'"))
        days = list(session.execute(select(OrderFact.day).distinct()).scalars())
        facts.rebuild_days(session, days)
        session.commit()
    return time.perf_counter() - started


def best(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_PG, help="PostgreSQL server (scratch db made)")
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    free = shutil.disk_usage("/").free / 2**30
    need = args.orders * 450 / 2**30  # rows + indexes + rollup, generously
    print(f"disk: {free:.1f} GiB free; about {need:.1f} GiB needed")
    if free < need * 1.5:
        raise SystemExit("not enough disk for this many orders (use --orders)")
    with scratch_site("postgresql", args.url) as site:
        engine = create_engine(site.url)
        print(f"generating {args.orders:,} orders over 12 months ...", flush=True)
        load_s = generate(engine, args.orders)
        rollup_s = build_rollup(engine)
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE order_facts"))
            conn.execute(text("VACUUM ANALYZE order_fact_daily"))
        vacuum_s = time.perf_counter() - started
        with engine.connect() as conn:
            n_facts = conn.execute(text("SELECT count(*) FROM order_facts")).scalar_one()
            n_daily = conn.execute(text("SELECT count(*) FROM order_fact_daily")).scalar_one()
            n_units = conn.execute(text("SELECT count(*) FROM order_fact_daily_units")).scalar_one()
            size = conn.execute(
                text(
                    "SELECT pg_total_relation_size('order_facts'),"
                    " pg_total_relation_size('order_fact_daily')"
                )
            ).one()
            city_path = conn.execute(text("SELECT path FROM units WHERE depth = 0")).scalar_one()
        actor = Principal(
            kind=PrincipalKind.PERSON,
            name="bench",
            permissions=frozenset({"hotline:report:read"}),
            scope_path=city_path,
        )
        start, end = kpi.month_bounds(MONTH)

        def report() -> kpi.KpiReport:
            with Session(engine) as session:
                return kpi.compute(session, actor, start=start, end=end, by="unit")

        def baseline() -> list[Any]:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        text(
                            "SELECT lead_unit_id, count(*) FROM order_facts"
                            " WHERE registered_at >= :s AND registered_at < :e"
                            " GROUP BY lead_unit_id"
                        ),
                        {"s": start, "e": end},
                    )
                )

        sums = ", ".join(f"sum({f}::int)" for f in FLAGS)

        def naive() -> list[Any]:
            with engine.connect() as conn:
                rows = list(
                    conn.execute(
                        text(
                            f"SELECT lead_unit_id, count(*), {sums}, sum(response_minutes)"
                            " FROM order_facts WHERE registered_at >= :s AND registered_at < :e"
                            " GROUP BY lead_unit_id"
                        ),
                        {"s": start, "e": end},
                    )
                )
                rows += list(
                    conn.execute(
                        text(
                            "SELECT lead_unit_id, response_minutes FROM order_facts"
                            " WHERE responded AND registered_at >= :s AND registered_at < :e"
                        ),
                        {"s": start, "e": end},
                    )
                )
                return rows

        report_s, result = best(args.repeat, report)
        statements: list[tuple[float, str]] = []

        def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            conn.info["t0"] = time.perf_counter()

        def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            took = time.perf_counter() - conn.info["t0"]
            statements.append((took, " ".join(statement.split())[:90]))

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        report()
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        baseline_s, plain = best(args.repeat, baseline)
        naive_s, _ = best(args.repeat, naive)
        month_orders = sum(n for _, n in plain)
        assert result.total.orders == month_orders, (result.total.orders, month_orders)
        assert {r.orders for r in result.rows} == {n for _, n in plain}
        engine.dispose()
    print()
    print(f"facts: {n_facts:,} rows ({size[0] / 2**30:.2f} GiB with indexes)")
    print(f"rollup: {n_daily:,} rows ({size[1] / 2**20:.0f} MiB); by unit x town: {n_units:,} rows")
    print(f"build: facts {load_s:.1f} s, rollup {rollup_s:.1f} s, vacuum analyze {vacuum_s:.1f} s")
    print(f"month {MONTH}: {month_orders:,} orders, {len(result.rows)} units")
    t = result.total.values
    print(
        "  sign-for {:.1%}, on-time closure {:.1%}, satisfaction {:.1%},"
        " emergency response mean {:.1f} / median {:.1f} / p90 {:.1f} min".format(
            t["sign_for_rate"].value or 0,
            t["on_time_closure_rate"].value or 0,
            t["satisfaction_rate"].value or 0,
            t["emergency_response_minutes"].value or 0,
            t["emergency_response_minutes"].median or 0,
            t["emergency_response_minutes"].p90 or 0,
        )
    )
    print(f"best of {args.repeat}:")
    print(f"  report (kpi.compute by unit)      {report_s * 1000:8.1f} ms")
    print(f"  baseline (count(*) GROUP BY unit) {baseline_s * 1000:8.1f} ms")
    print(f"  naive (every KPI from the facts)  {naive_s * 1000:8.1f} ms")
    print("  statements of one report:")
    for took, statement in statements:
        print(f"    {took * 1000:8.1f} ms  {statement}")
    print(f"ratio report / baseline: {report_s / baseline_s:.2f}x (target <= 2x, report < 2 s)")
    print(f"ratio report / naive:    {report_s / naive_s:.2f}x")


if __name__ == "__main__":
    main()
