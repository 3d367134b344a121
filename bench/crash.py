"""Crash safety: kill -9 the server while orders pour in, restart, retry, then count.

For each database (``--db sqlite|postgres|both``) on a scratch installation (its own data
directory; on PostgreSQL its own database, dropped afterwards): start ``zhengshu serve``,
log in as the demo call-taker, and let ``--clients`` client processes POST orders, each
with its own ``Idempotency-Key`` (also sent as ``external_ref`` and in the content).
Every ``--interval`` seconds or so the server's whole process group gets SIGKILL and is
started again, ``--kills`` times. Clients retry every request that got no answer (or a
409 ``idempotency_in_flight`` / a 5xx) with the same key until it is acknowledged.

Then the database is checked: every acknowledged key maps to exactly one order with the
acknowledged number (none lost, none doubled), every order is whole (its case row, its
``register`` timeline entry, its audit row, an answered idempotency row), and
``zhengshu audit verify`` exits 0.

With ``--lane fast`` the clients ask for the fast lane (``Prefer: respond-async``: 202 and
a receipt), a ``zhengshu worker`` registers the receipts, and every kill takes the worker
down with the server (mid-registration or not). After the last kill the worker is left to
empty the queue; then every acknowledged receipt must be registered as exactly one whole
order, checked as above.

    python bench/crash.py --db both
    python bench/crash.py --db both --lane fast
    python bench/crash.py --db postgres --kills 8 --clients 12
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
# bench/calendar.py must not shadow the standard library's calendar; harness stays importable.
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from harness import (  # noqa: E402
    DEFAULT_PG,
    Server,
    Site,
    login,
    order_body,
    scratch_site,
    start_worker,
    stop_worker,
    uptime,
    which_databases,
)
from sqlalchemy import text  # noqa: E402

RETRYABLE = {409, 500, 502, 503, 504}


@dataclass
class KeyLog:
    """One key as a client saw it."""

    attempts: int = 0
    number: str | None = None
    order_id: str | None = None
    receipt: str | None = None  # the fast lane's acknowledgement
    replayed: bool = False
    refusals: list[str] = field(default_factory=list)


def _client(
    base: str, token: str, run: str, n: int, stop: Any, out_path: str, final_s: float, fast: bool
) -> None:
    """Send new keys until ``stop``, then retry the unanswered ones; write a JSON log."""
    keys: dict[str, KeyLog] = {}
    pending: list[str] = []
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=15.0)

    def attempt(key: str) -> bool:
        log = keys[key]
        log.attempts += 1
        try:
            headers = {"Idempotency-Key": key, **({"Prefer": "respond-async"} if fast else {})}
            response = client.post("/api/v1/orders", json=order_body(run, key), headers=headers)
        except httpx.HTTPError as exc:  # refused, reset, timed out: the server is down
            log.refusals.append(type(exc).__name__)
            return False
        if fast and response.status_code == 202:
            log.receipt = response.json()["id"]
            return True
        if response.status_code == 201:
            body = response.json()
            log.number, log.order_id = body["number"], body["id"]
            log.replayed = response.headers.get("idempotent-replayed") == "true"
            return True
        log.refusals.append(str(response.status_code))
        if response.status_code not in RETRYABLE:
            # Anything else is a bug in the bench or the server: keep it visible.
            log.refusals.append(response.text[:200])
        return False

    i = 0
    while not stop.is_set():
        if pending:
            # The request in flight when the server died: retry it, same key, until it is
            # answered, before sending anything new (as a call-taker's client would).
            pending = [k for k in pending if not attempt(k)]
            if pending:
                time.sleep(0.1)
            continue
        key = f"{run}-{n}-{i}"
        i += 1
        keys[key] = KeyLog()
        if not attempt(key):
            pending.append(key)
    deadline = time.monotonic() + final_s
    while pending and time.monotonic() < deadline:
        pending = [k for k in pending if not attempt(k)]
        if pending:
            time.sleep(0.2)
    client.close()
    Path(out_path).write_text(
        json.dumps({k: vars(v) for k, v in keys.items()}, ensure_ascii=False), "utf-8"
    )


@dataclass
class Outcome:
    dialect: str
    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    retry_attempts: int = 0
    replayed: int = 0
    unanswered: int = 0
    lost: int = 0
    doubled: int = 0
    stray: int = 0
    half_written: int = 0
    orders: int = 0
    audit_ok: bool = False
    audit_output: str = ""
    kills: int = 0
    down_s: float = 0.0
    run_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    receipts: int = 0
    drain_s: float = 0.0


def check(site: Site, run: str, logs: dict[str, dict[str, Any]], outcome: Outcome) -> None:
    """Compare what the clients were told with what the database holds."""
    engine = site.engine()
    marker = f"{run}-%"
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT o.external_ref, c.number, c.id AS case_id,
                    (SELECT count(*) FROM case_events e
                        WHERE e.case_id = c.id AND e.action = 'register') AS events
                FROM orders o LEFT JOIN cases c ON c.id = o.id
                WHERE o.external_ref LIKE :marker
                """
            ),
            {"marker": marker},
        ).all()
        audited = {
            str(entity_id)
            for (entity_id,) in conn.execute(
                text(
                    "SELECT entity_id FROM audit_log WHERE action = 'hotline.register' "
                    "AND entity_type = 'case'"
                )
            )
        }
        keys = dict(
            conn.execute(
                text("SELECT key, status_code FROM idempotency_keys WHERE key LIKE :marker"),
                {"marker": marker},
            ).all()
        )
    engine.dispose()
    by_ref: dict[str, list[Any]] = {}
    for row in rows:
        by_ref.setdefault(row.external_ref, []).append(row)
    outcome.orders = len(rows)
    outcome.doubled = sum(len(v) - 1 for v in by_ref.values() if len(v) > 1)
    for row in rows:
        case_id = None if row.case_id is None else str(uuid.UUID(str(row.case_id)))
        whole = (
            row.number is not None
            and row.events == 1
            and case_id in audited
            and keys.get(row.external_ref, 0) == 201
        )
        if not whole:
            outcome.half_written += 1
            outcome.problems.append(f"half-written order {row.external_ref}: {dict(row._mapping)}")
    for key, log in logs.items():
        found = by_ref.get(key, [])
        if log["number"] is None:
            outcome.unanswered += 1
            if found:
                outcome.stray += len(found)  # committed, but the client never heard of it
            continue
        if not any(r.number == log["number"] for r in found):
            outcome.lost += 1
            outcome.problems.append(f"lost: key {key} was told {log['number']}, found {found}")
    for key in by_ref:
        if key not in logs:
            outcome.stray += 1
            outcome.problems.append(f"order {key} in the database was never sent")


def wait_for_registration(site: Site, timeout: float) -> float:
    """Seconds until the worker has no queued receipt left (or ``timeout``)."""
    started = time.monotonic()
    engine = site.engine()
    try:
        while time.monotonic() - started < timeout:
            with engine.connect() as conn:
                queued = conn.execute(
                    text("SELECT count(*) FROM intake_receipts WHERE status = 'queued'")
                ).scalar_one()
            if not queued:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return time.monotonic() - started


def registered_numbers(site: Site, logs: dict[str, dict[str, Any]], outcome: Outcome) -> None:
    """Fast lane: each acknowledged receipt must be registered, the order it names being
    the one ``check`` then looks for under the key (as if the client had been told it)."""
    engine = site.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, key, status, number, error FROM intake_receipts")
        ).all()
    engine.dispose()
    by_key = {row.key: row for row in rows}
    outcome.receipts = len(rows)
    for key, log in logs.items():
        row = by_key.get(key)
        if log["receipt"] is None:
            continue
        if row is None or str(uuid.UUID(str(row.id))) != log["receipt"]:
            outcome.lost += 1
            outcome.problems.append(f"lost: key {key} was told receipt {log['receipt']}")
            continue
        if row.status != "registered":
            outcome.problems.append(f"receipt of {key} is {row.status}: {row.error}")
            continue
        log["number"] = row.number


def crash_one(dialect: str, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(dialect=dialect)
    fast = args.lane == "fast"
    workers = args.workers if dialect == "postgresql" else 1
    run = f"crash{uuid.uuid4().hex[:6]}"
    with scratch_site(dialect, args.pg) as site:
        server = Server(site, workers=workers)
        server.start()
        worker = start_worker(site) if fast else None
        token = login(server.base, site.password)
        ctx = mp.get_context("fork")
        stop = ctx.Event()
        paths = [str(site.data_dir / f"client-{n}.json") for n in range(args.clients)]
        clients = [
            ctx.Process(
                target=_client,
                args=(server.base, token, run, n, stop, paths[n], args.final_seconds, fast),
            )
            for n in range(args.clients)
        ]
        for c in clients:
            c.start()
        rng = random.Random(args.seed)
        started = time.monotonic()
        try:
            for _ in range(args.kills):
                time.sleep(rng.uniform(args.interval * 0.5, args.interval * 1.5))
                server.kill9()
                if worker is not None:  # the worker dies too, mid-registration or not
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()
                down = time.monotonic()
                outcome.kills += 1
                time.sleep(rng.uniform(0.1, 0.5))
                server.start()
                if worker is not None:
                    worker = start_worker(site)
                outcome.down_s += time.monotonic() - down
            time.sleep(args.interval)
        finally:
            stop.set()
            for c in clients:
                c.join(args.final_seconds + 60)
        outcome.run_s = time.monotonic() - started
        server.stop()
        if worker is not None:
            outcome.drain_s = wait_for_registration(site, args.final_seconds + 600)
            stop_worker(worker)
        logs: dict[str, dict[str, Any]] = {}
        for path in paths:
            logs.update(json.loads(Path(path).read_text("utf-8")))
        outcome.sent = len(logs)
        if fast:
            outcome.acknowledged = sum(1 for v in logs.values() if v["receipt"] is not None)
            registered_numbers(site, logs, outcome)
        else:
            outcome.acknowledged = sum(1 for v in logs.values() if v["number"] is not None)
        outcome.retried = sum(1 for v in logs.values() if v["attempts"] > 1)
        outcome.retry_attempts = sum(max(0, v["attempts"] - 1) for v in logs.values())
        outcome.replayed = sum(1 for v in logs.values() if v["replayed"])
        for key, v in logs.items():
            odd = [r for r in v["refusals"] if not r.isdigit() or int(r) not in RETRYABLE]
            odd = [r for r in odd if not r.endswith(("Error", "Timeout", "Exception"))]
            if odd:
                outcome.problems.append(f"key {key}: unexpected answers {odd[:3]}")
        check(site, run, logs, outcome)
        verified = site.cli("audit", "verify", check=False)
        outcome.audit_ok = verified.returncode == 0
        outcome.audit_output = (verified.stdout + verified.stderr).strip()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="both", help="sqlite, postgres or both")
    parser.add_argument("--pg", default=os.environ.get("ZHENGSHU_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="server processes (PostgreSQL)")
    parser.add_argument("--interval", type=float, default=2.0, help="mean seconds between kills")
    parser.add_argument("--final-seconds", type=float, default=90.0, help="retry time at the end")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--lane", default="normal", help="normal (201) or fast (202 + worker)")
    args = parser.parse_args()
    if args.kills < 1:
        raise SystemExit("--kills must be at least 1")
    print(f"machine: {uptime()}")
    outcomes = [crash_one(d, args) for d in which_databases(args.db)]
    failed = False
    for o in outcomes:
        ok = (
            o.lost == 0
            and o.doubled == 0
            and o.half_written == 0
            and o.unanswered == 0
            and o.stray == 0
            and o.audit_ok
            and not o.problems
        )
        failed |= not ok
        print(
            f"\ndatabase: {o.dialect}; kill -9 of the server: {o.kills} times in "
            f"{o.run_s:.0f} s (down, restarting: {o.down_s:.0f} s)"
        )
        print(
            f"  sent {o.sent}, acknowledged {o.acknowledged}, "
            f"retried {o.retried} ({o.retry_attempts} attempts while the server was down; "
            f"answered from the stored first answer: {o.replayed}), "
            f"never acknowledged {o.unanswered}"
        )
        if args.lane == "fast":
            print(
                f"  fast lane: {o.receipts} receipts; the worker (killed with the server) "
                f"emptied the queue {o.drain_s:.0f} s after the last restart's clients stopped"
            )
        print(
            f"  orders in the database {o.orders}: lost {o.lost}, doubled {o.doubled}, "
            f"half-written {o.half_written}, stray {o.stray}"
        )
        print(f"  zhengshu audit verify: {'OK' if o.audit_ok else 'FAILED'} ({o.audit_output})")
        for line in o.problems[:10]:
            print(f"  problem: {line}")
        print(f"  result: {'PASS' if ok else 'FAIL'}")
    print(f"\nmachine after: {uptime()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
