"""Orders registered per second through HTTP, beside the database's own commit floor.

For each database (``--db sqlite|postgres|both``) on a scratch installation: start
``zhengshu serve --workers N``, log in as the demo call-taker, and let ``--clients``
concurrent connections (spread over ``--procs`` client processes, asyncio keep-alive)
POST ``/api/v1/orders`` with an ``Idempotency-Key`` for ``--seconds`` after a warm-up.
Then measure the floor in the same run: the same number of concurrent connections
committing one small row per transaction with the app's own engine settings (same driver,
on SQLite ``BEGIN IMMEDIATE``), which no design with one commit per order can beat.
Printed: orders/s, p50/p99 latency, the floor and the share of it reached, and the CPU
time per order of the server, the database server and the clients.

``--statements N`` instead registers N orders in-process (through the ASGI app) and
prints the SQL statements one registration issues, counted with SQLAlchemy events.

    python bench/intake.py --db both
    python bench/intake.py --db postgres --workers 3 --clients 48 --seconds 30
    python bench/intake.py --db postgres --statements 200
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
# bench/calendar.py must not shadow the standard library's calendar; harness stays importable.
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE] + [_HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from harness import (  # noqa: E402
    DEFAULT_PG,
    RawClient,
    Server,
    Site,
    login,
    order_body,
    percentile,
    scratch_site,
    start_worker,
    stop_worker,
    uptime,
    which_databases,
)
from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid, event, insert  # noqa: E402
from sqlalchemy import text as sql_text  # noqa: E402


@dataclass
class Window:
    """What one client process saw inside the measured window."""

    ok: int
    errors: collections.Counter[str]
    latencies: list[float]
    cpu_s: float


def _client_proc(
    port: int,
    token: str,
    run: str,
    conns: int,
    start_at: float,
    end_at: float,
    fast: bool,
    out: Any,
) -> None:
    out.put(asyncio.run(_client_main(port, token, run, conns, start_at, end_at, fast)))


async def _client_main(
    port: int, token: str, run: str, conns: int, start_at: float, end_at: float, fast: bool
) -> Window:
    errors: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    ok = 0
    cpu0 = time.process_time()

    async def one(n: int) -> None:
        nonlocal ok
        client = RawClient(port, {"Authorization": f"Bearer {token}"})
        i = 0
        while time.time() < end_at:
            key = f"{run}-{os.getpid()}-{n}-{i}"
            headers = {"Idempotency-Key": key, **({"Prefer": "respond-async"} if fast else {})}
            i += 1
            started = time.time()
            try:
                status, body = await client.request(
                    "POST", "/api/v1/orders", order_body(run, key), headers
                )
            except OSError as exc:
                status, body = -1, type(exc).__name__.encode()
            done = time.time()
            if started < start_at or done > end_at:
                continue
            if status == (202 if fast else 201):
                ok += 1
                latencies.append(done - started)
            else:
                errors[f"{status} {body[:120]!r}"] += 1
        await client.close()

    await asyncio.gather(*(one(n) for n in range(conns)))
    return Window(ok, errors, latencies, time.process_time() - cpu0)


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def drive(
    port: int,
    token: str,
    clients: int,
    procs: int,
    warmup: float,
    seconds: float,
    *,
    fast: bool = False,
) -> tuple[Window, float]:
    """Run the client processes; returns their merged window and its length."""
    run = uuid.uuid4().hex[:8]
    start_at = time.time() + 1.0 + warmup
    end_at = start_at + seconds
    out: Any = mp.get_context("fork").Queue()
    workers = [
        mp.get_context("fork").Process(
            target=_client_proc, args=(port, token, run, n, start_at, end_at, fast, out)
        )
        for n in _spread(clients, procs)
        if n
    ]
    for w in workers:
        w.start()
    windows = [out.get() for _ in workers]
    for w in workers:
        w.join()
    merged = Window(0, collections.Counter(), [], 0.0)
    for w in windows:
        merged.ok += w.ok
        merged.errors.update(w.errors)
        merged.latencies.extend(w.latencies)
        merged.cpu_s += w.cpu_s
    return merged, seconds


# --- the floor: one-row commits with the app's engine, same concurrency ------------------


FLOOR = MetaData()
floor_rows = Table(
    "bench_floor",
    FLOOR,
    Column("id", Uuid, primary_key=True),
    Column("at", DateTime(timezone=True)),
    Column("body", String(300)),
)


def _floor_proc(
    site_env: dict[str, str], threads: int, start_at: float, end_at: float, out: Any
) -> None:
    os.environ.update(site_env)
    from zhengshu.kernel.db import make_engine, make_sessionmaker, open_session
    from zhengshu.kernel.settings import Settings

    settings = Settings()
    engine = make_engine(settings)
    factory = make_sessionmaker(engine)
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    cpu0 = time.process_time()

    def loop() -> None:
        mine: list[float] = []
        while time.time() < end_at:
            started = time.time()
            try:
                session = open_session(factory, write=True)
                session.execute(
                    insert(floor_rows).values(
                        id=uuid.uuid4(), at=None, body="东城街道 路灯不亮，请尽快维修（压测）"
                    )
                )
                session.commit()
                session.close()
            except Exception as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                continue
            done = time.time()
            if start_at <= started and done <= end_at:
                mine.append(done - started)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    engine.dispose()
    out.put(Window(len(latencies), errors, latencies, time.process_time() - cpu0))


def floor(site: Site, clients: int, procs: int, seconds: float) -> Window:
    engine = site.engine()
    FLOOR.create_all(engine)
    engine.dispose()
    start_at = time.time() + 1.5
    end_at = start_at + seconds
    ctx = mp.get_context("fork")
    out: Any = ctx.Queue()
    env = {"ZHENGSHU_DATABASE_URL": site.url, "ZHENGSHU_DATA_DIR": str(site.data_dir)}
    ps = [
        ctx.Process(target=_floor_proc, args=(env, n, start_at, end_at, out))
        for n in _spread(clients, procs)
        if n
    ]
    for p in ps:
        p.start()
    windows = [out.get() for _ in ps]
    for p in ps:
        p.join()
    merged = Window(0, collections.Counter(), [], 0.0)
    for w in windows:
        merged.ok += w.ok
        merged.errors.update(w.errors)
        merged.latencies.extend(w.latencies)
        merged.cpu_s += w.cpu_s
    engine = site.engine()
    FLOOR.drop_all(engine)
    engine.dispose()
    return merged


# --- CPU accounting -----------------------------------------------------------------------


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each process."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU used by ``pids`` since ``before`` (processes started since count from zero)."""
    now = cpu_by_pid(pids)
    return sum(v - before.get(pid, 0.0) for pid, v in now.items())


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


# --- statements per order (in-process) ----------------------------------------------------


def count_statements(site: Site, n: int) -> None:
    os.environ.update({"ZHENGSHU_DATABASE_URL": site.url, "ZHENGSHU_DATA_DIR": str(site.data_dir)})
    from fastapi.testclient import TestClient

    from zhengshu.app import create_app

    app = create_app()
    statements: collections.Counter[str] = collections.Counter()
    timing: collections.Counter[str] = collections.Counter()

    @event.listens_for(app.state.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t"] = time.perf_counter()

    @event.listens_for(app.state.engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = " ".join(statement.split())
        short = words[:90]
        statements[short] += 1
        timing[short] += time.perf_counter() - conn.info.pop("bench_t", time.perf_counter())

    @event.listens_for(app.state.engine, "commit")
    def _commit(conn: Any) -> None:
        statements["COMMIT"] += 1

    with TestClient(app) as client:
        token = client.post(
            "/api/v1/auth/token", json={"username": "calltaker", "password": site.password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for i in range(20):  # warm caches (statement cache, calendar, workflow)
            key = f"warm-{i}"
            client.post(
                "/api/v1/orders",
                json=order_body("warm", key),
                headers={**headers, "Idempotency-Key": key},
            )
        statements.clear()
        timing.clear()
        started, cpu0 = time.perf_counter(), time.process_time()
        for i in range(n):
            key = f"count-{i}"
            response = client.post(
                "/api/v1/orders",
                json=order_body("count", key),
                headers={**headers, "Idempotency-Key": key},
            )
            assert response.status_code == 201, response.text
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    total = sum(v for k, v in statements.items() if k != "COMMIT")
    print(f"database: {site.dialect}; {n} registrations in-process (one at a time)")
    print(f"statements per order: {total / n:.1f} (+ {statements['COMMIT'] / n:.1f} commit)")
    for text_, count in statements.most_common():
        if text_ != "COMMIT":
            print(f"  {count / n:4.1f}  {timing[text_] / count * 1000:6.2f} ms  {text_}")
    print(
        f"in-process: {n / elapsed:,.0f} orders/s, {elapsed / n * 1000:.2f} ms per order, "
        f"CPU {cpu / n * 1000:.2f} ms per order (app and test client)"
    )
    app.state.engine.dispose()


# --- main ---------------------------------------------------------------------------------


def receipt_counts(site: Site) -> dict[str, int]:
    engine = site.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            sql_text("SELECT status, count(*) FROM intake_receipts GROUP BY status")
        ).all()
        cases = conn.execute(sql_text("SELECT count(*) FROM cases")).scalar_one()
        distinct = conn.execute(
            sql_text(
                "SELECT count(DISTINCT case_id) FROM intake_receipts WHERE case_id IS NOT NULL"
            )
        ).scalar_one()
    engine.dispose()
    counts = {"queued": 0, "registered": 0, "failed": 0}
    counts.update({status: int(n) for status, n in rows})
    counts["cases"], counts["distinct_orders"] = int(cases), int(distinct)
    return counts


def lane(
    server: Server, site: Site, token: str, args: argparse.Namespace, fast: bool
) -> dict[str, Any]:
    """One measured window of the normal lane (201) or the fast lane (202, then the
    worker's registration of the backlog, timed until the queue is empty)."""
    pg = site.dialect == "postgresql"
    server_pids = server.group_pids()
    worker = start_worker(site) if fast else None
    cases_before = receipt_counts(site)["cases"] if fast else 0
    worker_pids = [worker.pid] if worker else []
    cpu_server0 = cpu_by_pid(server_pids)
    cpu_pg0 = cpu_by_pid(postgres_pids() if pg else [])
    cpu_worker0 = cpu_by_pid(worker_pids)
    # CPU is read over warm-up + window; scaled to the window's share below.
    t0 = time.time()
    window, seconds = drive(
        server.port, token, args.clients, args.procs, args.warmup, args.seconds, fast=fast
    )
    wall = time.time() - t0
    cpu_server = cpu_since(cpu_server0, server_pids)
    cpu_pg = cpu_since(cpu_pg0, postgres_pids() if pg else [])
    orders_all = window.ok * wall / seconds
    result: dict[str, Any] = {
        "fast": fast,
        "rate": window.ok / seconds,
        "p50": percentile(window.latencies, 0.50) * 1000,
        "p99": percentile(window.latencies, 0.99) * 1000,
        "errors": dict(window.errors),
        "cpu_server_ms": cpu_server / max(1.0, orders_all) * 1000,
        "cpu_pg_ms": cpu_pg / max(1.0, orders_all) * 1000,
        "cpu_client_ms": window.cpu_s / max(1, window.ok) * 1000,
    }
    if worker is None:
        return result
    # The backlog: how far registration was behind at the end of the burst, how long it
    # took to catch up, and whether every acknowledged request became exactly one order.
    at_end = receipt_counts(site)
    ended = time.time()
    counts = at_end
    while counts["queued"] and time.time() - ended < args.drain_timeout:
        time.sleep(0.5)
        counts = receipt_counts(site)
    drained = time.time() - ended
    cpu_worker = cpu_since(cpu_worker0, worker_pids)
    stop_worker(worker)
    accepted = counts["queued"] + counts["registered"] + counts["failed"]
    result.update(
        {
            "accepted": accepted,
            "backlog_at_end": at_end["queued"],
            "drain_s": drained,
            "registered": counts["registered"],
            "failed": counts["failed"],
            "left_queued": counts["queued"],
            "new_cases": counts["cases"] - cases_before,
            "distinct_orders": counts["distinct_orders"],
            "register_rate_idle": (at_end["queued"] - counts["queued"]) / max(drained, 1e-9),
            "cpu_worker_ms": cpu_worker / max(1, counts["registered"]) * 1000,
        }
    )
    return result


def bench_one(dialect: str, args: argparse.Namespace) -> dict[str, Any]:
    workers = args.workers if dialect == "postgresql" else 1
    with scratch_site(dialect, args.pg) as site:
        if args.statements:
            count_statements(site, args.statements)
            return {}
        server = Server(site, workers=workers)
        if args.no_access_log:
            server.extra_env["ZHENGSHU_ACCESS_LOG"] = "false"
        server.start()
        lanes = []
        try:
            token = login(server.base, site.password)
            for fast in {"normal": [False], "fast": [True], "both": [False, True]}[args.lane]:
                lanes.append(lane(server, site, token, args, fast))
        finally:
            server.stop()
        logged = server.logged_errors()
        fl = floor(site, args.clients, args.procs, args.seconds)
    floor_rate = fl.ok / args.seconds
    for one in lanes:
        one["share"] = (one["rate"] / floor_rate) if floor_rate else float("nan")
    return {
        "dialect": dialect,
        "workers": workers,
        "lanes": lanes,
        "floor": floor_rate,
        "floor_p50": percentile(fl.latencies, 0.50) * 1000,
        "floor_p99": percentile(fl.latencies, 0.99) * 1000,
        "floor_errors": dict(fl.errors),
        "logged": logged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="both", help="sqlite, postgres or both")
    parser.add_argument("--pg", default=os.environ.get("ZHENGSHU_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--workers", type=int, default=2, help="server processes (PostgreSQL)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--statements", type=int, default=0, help="count SQL per order instead")
    parser.add_argument("--lane", default="both", help="normal (201), fast (202) or both")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument(
        "--no-access-log", action="store_true", help="serve with ZHENGSHU_ACCESS_LOG=false"
    )
    args = parser.parse_args()
    print(f"machine: {uptime()}")
    results = [bench_one(d, args) for d in which_databases(args.db)]
    if args.statements:
        return
    print(
        f"{args.clients} concurrent clients in {args.procs} processes, "
        f"{args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up"
    )
    for r in results:
        print(
            f"\ndatabase: {r['dialect']}; server workers: {r['workers']}; "
            f"access log {'off' if args.no_access_log else 'on'}"
        )
        print(
            f"  floor (1-row insert + commit):      {r['floor']:,.0f} commits/s, "
            f"p50 {r['floor_p50']:.1f} ms, p99 {r['floor_p99']:.1f} ms"
        )
        for one in r["lanes"]:
            name = (
                "fast lane, Prefer: respond-async -> 202" if one["fast"] else "normal lane -> 201"
            )
            print(f"  {name}:")
            print(
                f"    accepted through HTTP: {one['rate']:,.0f} orders/s, p50 {one['p50']:.1f} ms, "
                f"p99 {one['p99']:.1f} ms, errors {sum(one['errors'].values())}; "
                f"{one['share']:.2f} of the floor"
            )
            print(
                f"    CPU per order: server {one['cpu_server_ms']:.2f} ms, "
                f"database {one['cpu_pg_ms']:.2f} ms, client {one['cpu_client_ms']:.2f} ms"
            )
            for what, n in list(one["errors"].items())[:5]:
                print(f"    error x{n}: {what}")
            if one["fast"]:
                print(
                    f"    registered by the worker (nice 10): backlog {one['backlog_at_end']:,} "
                    f"at the end of the burst, empty {one['drain_s']:.1f} s later "
                    f"({one['register_rate_idle']:,.0f} orders/s once the burst was over; "
                    f"worker CPU {one['cpu_worker_ms']:.2f} ms per order)"
                )
                print(
                    f"    exactly once: {one['accepted']:,} receipts, {one['registered']:,} "
                    f"registered, {one['failed']} failed, {one['left_queued']} still queued; "
                    f"{one['new_cases']:,} new orders, {one['distinct_orders']:,} distinct"
                )

        for line in r["logged"]:
            print(f"  server log: {line}")
        for what, n in list(r["floor_errors"].items())[:5]:
            print(f"  floor error x{n}: {what}")
    print(f"\nmachine after: {uptime()}")


if __name__ == "__main__":
    main()
