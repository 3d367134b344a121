"""Audit appends per second (hash chain + head row) vs. plain inserts, and verify speed."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, insert, make_url, text
from sqlalchemy.orm import sessionmaker

from zhengshu.kernel import audit, migrate
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.db import make_engine, open_session
from zhengshu.kernel.settings import Settings

ROWS = 3000
PER_TX = 1  # one audit row per transaction, like one change per request


def scratch_url(tmp: Path) -> tuple[str, object]:
    server = os.environ.get("ZHENGSHU_DATABASE_URL", "")
    if not server:
        return f"sqlite:///{tmp / 'bench.sqlite3'}", None
    name = f"zs_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(server).set(database=name).render_as_string(hide_password=False), (admin, name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, cleanup = scratch_url(Path(tmp))
        settings = Settings(database_url=url, data_dir=Path(tmp), secret_key="bench")
        engine = make_engine(settings)
        migrate.upgrade(engine)
        factory = sessionmaker(
            bind=engine, expire_on_commit=False, info={audit.AUDIT_KEY: b"bench-key"}
        )
        actor = system_principal("bench")
        after = {"name": "东城街道", "code": "441900003000", "roles": ["handler"]}

        started = time.perf_counter()
        for i in range(ROWS):
            session = open_session(factory, write=True)
            audit.record(
                session,
                actor,
                "bench.change",
                entity_type="bench",
                entity_id=i,
                before=None,
                after=after,
            )
            session.commit()
            session.close()
        chain_s = time.perf_counter() - started

        started = time.perf_counter()
        for i in range(ROWS):
            session = open_session(factory, write=True)
            session.execute(
                insert(audit.AuditEntry).values(
                    seq=10_000_000 + i,
                    id=uuid.uuid4(),
                    occurred_at=audit.clock.now(),
                    actor_kind="system",
                    actor_id=None,
                    actor_name="bench",
                    ip=None,
                    action="bench.plain",
                    entity_type="bench",
                    entity_id=str(i),
                    before=None,
                    after=after,
                    prev_hash="0" * 64,
                    hash="0" * 64,
                )
            )
            session.commit()
            session.close()
        plain_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log WHERE seq >= 10000000"))

        session = factory()
        started = time.perf_counter()
        report = audit.verify(session)
        verify_s = time.perf_counter() - started
        session.close()
        assert report.ok and report.rows == ROWS, report
        print(f"database: {engine.dialect.name}; {ROWS} rows, one per transaction")
        print(f"audit.record (chain + head):  {ROWS / chain_s:,.0f} rows/s")
        print(f"baseline plain insert:        {ROWS / plain_s:,.0f} rows/s")
        print(f"ratio (chained / plain throughput): {plain_s / chain_s:.2f}")
        print(f"audit.verify: {ROWS / verify_s:,.0f} rows/s ({verify_s * 1000:.0f} ms for {ROWS})")
        engine.dispose()
        if cleanup:
            admin, name = cleanup  # type: ignore[misc]
            with admin.connect() as conn:  # type: ignore[attr-defined]
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
