"""Soak: a mixed hotline load for a while; errors must stay at zero and memory flat.

On a scratch installation (``--db postgres|sqlite|both``) ``zhengshu serve`` gets, from
``--clients`` keep-alive connections, a mix of what a hotline centre does all day:
call-takers register orders (with ``Idempotency-Key``), the dispatcher lists and searches
them and dispatches each to the housing bureau, whose handler signs for it and replies.
Every answer other than the expected 2xx counts as an error. The server's resident memory
(the supervisor and its workers together) is sampled every ``--sample`` seconds.

    python bench/soak.py                       # 10 minutes on PostgreSQL
    python bench/soak.py --minutes 2 --db both
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
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from urllib.parse import quote  # noqa: E402

from harness import (  # noqa: E402
    DEFAULT_PG,
    RawClient,
    Server,
    Site,
    demo_password,
    login,
    order_body,
    percentile,
    scratch_site,
    uptime,
    which_databases,
)
from sqlalchemy import text  # noqa: E402

# Operation weights: what a hotline centre's day looks like, roughly.
MIX = {
    "register": 40,
    "dispatch": 15,
    "sign_for": 10,
    "reply": 5,
    "list": 15,
    "search": 10,
    "read": 5,
}
# GET /api/v1/orders answers 422 to ?limit= and ?offset= (its filter model forbids extra
# fields and takes every query parameter), so the soak reads the default first page (50).
SEARCHES = [
    "text=" + quote("路灯"),
    "phone=13800138000",
    "status=dispatched",
    "text=" + quote("维修") + "&status=registered",
]


@dataclass
class Tally:
    ok: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latency: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (s, MiB, orders)


@dataclass
class Queues:
    """Orders waiting for their next step (each taken by one connection at a time)."""

    registered: collections.deque[str] = field(default_factory=collections.deque)
    dispatched: collections.deque[str] = field(default_factory=collections.deque)
    handling: collections.deque[str] = field(default_factory=collections.deque)


def housing_unit(site: Site) -> str:
    engine = site.engine()
    with engine.connect() as conn:
        value = conn.execute(text("SELECT id FROM units WHERE code = 'D001'")).scalar_one()
    engine.dispose()
    return str(uuid.UUID(str(value)))


async def _worker(
    port: int,
    tokens: dict[str, str],
    unit: str,
    queues: Queues,
    tally: Tally,
    end_at: float,
    rng: random.Random,
    run: str,
) -> None:
    clients = {
        who: RawClient(port, {"Authorization": f"Bearer {token}"}) for who, token in tokens.items()
    }
    ops, weights = list(MIX), list(MIX.values())
    n = 0
    while time.monotonic() < end_at:
        op = rng.choices(ops, weights)[0]
        source = {"dispatch": queues.registered, "sign_for": queues.dispatched}.get(op)
        if op == "reply":
            source = queues.handling
        order_id = None
        if source is not None:
            if not source:
                op = "register"
            else:
                order_id = source.popleft()
        expect, target = 200, None
        if op == "register":
            n += 1
            key = f"{run}-{id(clients)}-{n}"
            call = clients["calltaker"].request(
                "POST", "/api/v1/orders", order_body(run, key), {"Idempotency-Key": key}
            )
            expect, target = 201, queues.registered
        elif op == "dispatch":
            call = clients["dispatcher"].request(
                "POST", f"/api/v1/orders/{order_id}/actions/dispatch", {"unit_id": unit}
            )
            target = queues.dispatched
        elif op == "sign_for":
            call = clients["handler"].request(
                "POST", f"/api/v1/orders/{order_id}/actions/sign_for", {}
            )
            target = queues.handling
        elif op == "reply":
            call = clients["handler"].request(
                "POST",
                f"/api/v1/orders/{order_id}/actions/reply",
                {"note": "已安排维修人员更换路灯，已电话告知诉求人。"},
            )
        elif op == "list":
            call = clients["dispatcher"].request("GET", "/api/v1/orders")
        elif op == "search":
            query = rng.choice(SEARCHES)
            call = clients["dispatcher"].request("GET", f"/api/v1/orders?{query}")
        else:
            call = clients["handler"].request("GET", "/api/v1/orders?status=handling")
        started = time.monotonic()
        try:
            status, body = await call
        except OSError as exc:
            status, body = -1, type(exc).__name__.encode()
        elapsed = time.monotonic() - started
        if status == expect:
            tally.ok[op] += 1
            tally.latency[op].append(elapsed)
            if target is not None:
                target.append(order_id or json.loads(body)["id"])
        else:
            tally.errors[f"{op} {status} {body[:160]!r}"] += 1
    for client in clients.values():
        await client.close()


async def _sampler(
    server: Server, tally: Tally, started: float, end_at: float, every: float
) -> None:
    while time.monotonic() < end_at:
        tally.samples.append((time.monotonic() - started, server.rss_mib(), tally.ok["register"]))
        await asyncio.sleep(min(every, max(0.0, end_at - time.monotonic())) or 0.01)
    tally.samples.append((time.monotonic() - started, server.rss_mib(), tally.ok["register"]))


async def _soak(
    server: Server, tokens: dict[str, str], unit: str, args: argparse.Namespace
) -> Tally:
    tally = Tally()
    queues = Queues()
    run = f"soak{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    end_at = started + args.minutes * 60
    rngs = [random.Random(args.seed + i) for i in range(args.clients)]
    await asyncio.gather(
        _sampler(server, tally, started, end_at, args.sample),
        *(
            _worker(server.port, tokens, unit, queues, tally, end_at, rngs[i], run)
            for i in range(args.clients)
        ),
    )
    return tally


def soak_one(dialect: str, args: argparse.Namespace) -> tuple[Tally, int, str]:
    workers = args.workers if dialect == "postgresql" else 1
    with scratch_site(dialect, args.pg) as site:
        server = Server(site, workers=workers)
        server.start()
        try:
            tokens = {
                "calltaker": login(server.base, site.password),
                "dispatcher": login(
                    server.base, demo_password(site.data_dir, "dispatcher"), "dispatcher"
                ),
                "handler": login(
                    server.base, demo_password(site.data_dir, "zjj.handler"), "zjj.handler"
                ),
            }
            tally = asyncio.run(_soak(server, tokens, housing_unit(site), args))
        finally:
            server.stop()
        for line in server.logged_errors():
            print(f"  server log: {line}")
        verified = site.cli("audit", "verify", check=False)
        return tally, workers, (verified.stdout + verified.stderr).strip()


def report(dialect: str, workers: int, tally: Tally, audit: str, minutes: float) -> bool:
    total = sum(tally.ok.values())
    errors = sum(tally.errors.values())
    print(f"\ndatabase: {dialect}; server workers: {workers}; {minutes:g} minutes")
    print(
        f"  requests: {total:,} answered as expected ({total / (minutes * 60):,.1f}/s), "
        f"errors: {errors}"
    )
    for op in MIX:
        lat = tally.latency.get(op, [])
        print(
            f"    {op:<9} {tally.ok[op]:>7,}  p50 {percentile(lat, 0.5) * 1000:7.1f} ms  "
            f"p99 {percentile(lat, 0.99) * 1000:7.1f} ms"
        )
    for what, n in tally.errors.most_common(8):
        print(f"  error x{n}: {what}")
    samples = tally.samples
    # Memory after the first tenth of the run (warm caches) against the end.
    settled = [s for s in samples if s[0] >= samples[-1][0] * 0.1] or samples
    first, last = settled[0][1], samples[-1][1]
    peak = max(s[1] for s in samples)
    print(
        f"  server RSS: {samples[0][1]:.0f} MiB at start, {first:.0f} MiB once warm, "
        f"{last:.0f} MiB at the end (peak {peak:.0f}); growth after warm-up "
        f"{last - first:+.0f} MiB ({(last / first - 1) * 100 if first else 0:+.1f}%)"
    )
    step = max(1, len(samples) // 10)
    print(
        "  RSS over time (s, MiB, orders registered): "
        + ", ".join(f"{t:.0f}s {m:.0f} ({o:,})" for t, m, o in samples[::step])
    )
    print(f"  zhengshu audit verify: {audit}")
    return errors == 0 and audit.startswith("OK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="postgres", help="sqlite, postgres or both")
    parser.add_argument("--pg", default=os.environ.get("ZHENGSHU_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=6, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="server processes (PostgreSQL)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    print(f"machine: {uptime()}")
    ok = True
    for dialect in which_databases(args.db):
        tally, workers, audit = soak_one(dialect, args)
        ok &= report(dialect, workers, tally, audit, args.minutes)
    print(f"\nmachine after: {uptime()}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
