"""The audit hash chain: appending, verifying, and catching tampering behind the app's back.

Tampering tests write a real chain into ``fresh_database`` (real commits), then change the
table with plain SQL and check that both ``audit.verify`` and ``zhengshu audit verify``
report the break at the right row.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from tests.conftest import AUDIT_TEST_KEY, factory_for
from zhengshu.cli import app
from zhengshu.kernel import audit
from zhengshu.kernel.audit import GENESIS, AuditChainHead, AuditEntry, AuditReport
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock, use_clock
from zhengshu.kernel.db import make_engine, transaction
from zhengshu.kernel.settings import Settings

ACTOR = system_principal("审计测试")
LOG = AuditEntry.__table__
HEAD = AuditChainHead.__table__
CHAIN_LENGTH = 5


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def fresh_engine(fresh_database: Settings) -> Iterator[Engine]:
    engine = make_engine(fresh_database)
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_factory(fresh_engine: Engine) -> sessionmaker[Session]:
    return factory_for(fresh_engine)


@pytest.fixture
def chain(fresh_factory: sessionmaker[Session]) -> list[AuditEntry]:
    """Five committed rows, seq 1..5."""
    return write_chain(fresh_factory, CHAIN_LENGTH)


@pytest.fixture
def verify_cli(fresh_database: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Result]:
    """``zhengshu audit verify`` against fresh_database, with the key the tests wrote with."""
    monkeypatch.setenv("ZHENGSHU_DATABASE_URL", fresh_database.database_url)
    monkeypatch.setenv("ZHENGSHU_AUDIT_KEY", fresh_database.audit_key)
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", fresh_database.secret_key)
    # The CLI exports ZHENGSHU_DATA_DIR; monkeypatch puts the old value back afterwards.
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(fresh_database.data_dir))
    runner = CliRunner()

    def run() -> Result:
        return runner.invoke(app, ["audit", "verify", "--data-dir", str(fresh_database.data_dir)])

    return run


# --------------------------------------------------------------------------- helpers


def write_chain(factory: sessionmaker[Session], n: int) -> list[AuditEntry]:
    with transaction(factory) as session:
        return [
            audit.record(
                session,
                ACTOR,
                f"test.thing.step{i}",
                entity_type="thing",
                entity_id=i,
                before={"n": i - 1} if i > 1 else None,
                after={"n": i, "名称": f"第{i}条", "id": uuid.UUID(int=i)},
            )
            for i in range(1, n + 1)
        ]


def verify(factory: sessionmaker[Session], key: bytes | None = None) -> AuditReport:
    with transaction(factory, write=False) as session:
        return audit.verify(session, key=key)


def row(conn: Connection, seq: int) -> dict[str, object]:
    return dict(conn.execute(select(LOG).where(LOG.c.seq == seq)).mappings().one())


def head_of(factory: sessionmaker[Session]) -> tuple[int, str]:
    with factory() as session:
        head = session.get(AuditChainHead, 1)
        assert head is not None
        return head.seq, head.hash


def count_rows(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def assert_cli_ok(result: Result, rows: int) -> None:
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK：审计链完整，共 {rows} 条 / chain intact, {rows} rows\n"


def assert_cli_fails(result: Result, seq: int, kind: str, message_en: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("FAILED：")
    assert lines[1] == f"  seq={seq} kind={kind}: {message_en}"


# --------------------------------------------------------------------------- appending


def test_record_appends_a_linked_chain_from_genesis(
    fresh_factory: sessionmaker[Session], chain: list[AuditEntry]
) -> None:
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == GENESIS
    for previous, entry in itertools.pairwise(chain):
        assert entry.prev_hash == previous.hash
    for entry in chain:
        assert len(entry.hash) == 64
        assert entry.hash == audit.compute_hash(AUDIT_TEST_KEY, entry)
    assert len({e.hash for e in chain}) == CHAIN_LENGTH
    assert head_of(fresh_factory) == (5, chain[-1].hash)
    assert count_rows(fresh_factory) == 5


def test_record_stores_who_what_and_snapshots(
    fresh_factory: sessionmaker[Session], chain: list[AuditEntry]
) -> None:
    with fresh_factory() as session:
        stored = session.get(AuditEntry, 2)
        assert stored is not None
        assert stored.actor_kind == "system"
        assert stored.actor_id is None
        assert stored.actor_name == "审计测试"
        assert stored.ip is None
        assert stored.action == "test.thing.step2"
        assert stored.entity_type == "thing"
        assert stored.entity_id == "2"
        assert stored.before == {"n": 1}
        # UUIDs in a snapshot become strings (to_jsonable).
        assert stored.after == {"n": 2, "名称": "第2条", "id": str(uuid.UUID(int=2))}
        assert stored.id == chain[1].id
        assert stored.hash == chain[1].hash


def test_record_moves_the_head_in_a_later_transaction(
    fresh_factory: sessionmaker[Session], chain: list[AuditEntry]
) -> None:
    more = write_chain(fresh_factory, 2)
    assert [e.seq for e in more] == [6, 7]
    assert more[0].prev_hash == chain[-1].hash
    assert head_of(fresh_factory) == (7, more[-1].hash)
    report = verify(fresh_factory)
    assert (report.ok, report.rows, report.head_seq) == (True, 7, 7)


def test_record_extends_the_seeded_chain_in_the_test_transaction(db: Session) -> None:
    head = db.get(AuditChainHead, 1)
    assert head is not None
    before_seq, before_hash = head.seq, head.hash
    entry = audit.record(db, ACTOR, "test.thing.touch", entity_type="thing")
    assert entry.seq == before_seq + 1
    assert entry.prev_hash == before_hash
    assert entry.entity_id is None
    assert entry.before is None
    assert entry.after is None
    db.expire_all()
    head = db.get(AuditChainHead, 1)
    assert head is not None
    assert (head.seq, head.hash) == (before_seq + 1, entry.hash)
    report = audit.verify(db)
    assert (report.ok, report.rows, report.head_seq) == (True, before_seq + 1, before_seq + 1)


def test_record_needs_the_audit_key(connection: Connection) -> None:
    with (
        Session(bind=connection, join_transaction_mode="create_savepoint") as session,
        pytest.raises(RuntimeError, match="session has no audit key"),
    ):
        audit.record(session, ACTOR, "test.thing.touch", entity_type="thing")


def test_rolled_back_transaction_leaves_no_audit_row(
    fresh_factory: sessionmaker[Session], chain: list[AuditEntry]
) -> None:
    seqs: list[int] = []

    def use_case_that_fails_after_auditing() -> None:
        with transaction(fresh_factory) as session:
            entry = audit.record(session, ACTOR, "test.thing.doomed", entity_type="thing")
            seqs.append(entry.seq)
            raise LookupError("the use case failed after auditing")

    with pytest.raises(LookupError, match="failed after auditing"):
        use_case_that_fails_after_auditing()
    assert seqs == [6]
    assert count_rows(fresh_factory) == 5
    assert head_of(fresh_factory) == (5, chain[-1].hash)
    with fresh_factory() as session:
        assert (
            session.execute(
                select(AuditEntry).where(AuditEntry.action == "test.thing.doomed")
            ).first()
            is None
        )
    # The next append reuses seq 6 and links to row 5.
    (entry,) = write_chain(fresh_factory, 1)
    assert (entry.seq, entry.prev_hash) == (6, chain[-1].hash)
    assert verify(fresh_factory).ok is True


# --------------------------------------------------------------------------- verifying


def test_verify_an_intact_chain(
    fresh_factory: sessionmaker[Session],
    chain: list[AuditEntry],
    verify_cli: Callable[[], Result],
) -> None:
    report = verify(fresh_factory)
    assert report == AuditReport(rows=5, head_seq=5, problem=None)
    assert report.ok is True
    result = verify_cli()
    assert_cli_ok(result, 5)
    assert result.stdout.startswith("OK")
    assert result.stderr == ""


def test_verify_an_empty_chain(
    fresh_factory: sessionmaker[Session], verify_cli: Callable[[], Result]
) -> None:
    assert verify(fresh_factory) == AuditReport(rows=0, head_seq=0, problem=None)
    assert_cli_ok(verify_cli(), 0)


def test_verify_the_seeded_test_database(db: Session) -> None:
    head = db.get(AuditChainHead, 1)
    assert head is not None
    assert head.seq > 0
    report = audit.verify(db)
    assert (report.ok, report.rows, report.head_seq) == (True, head.seq, head.seq)


def test_verify_with_another_key_fails_at_the_first_row(
    fresh_factory: sessionmaker[Session],
    chain: list[AuditEntry],
    verify_cli: Callable[[], Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = verify(fresh_factory, key=b"another-installation")
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind, report.rows) == (1, "changed", 1)
    monkeypatch.setenv("ZHENGSHU_AUDIT_KEY", "another-installation")
    assert_cli_fails(verify_cli(), 1, "changed", "row 1 was changed (hash mismatch)")


@pytest.mark.parametrize("microsecond", [678901, 1, 0])
def test_occurred_at_round_trips_and_verifies(
    fresh_factory: sessionmaker[Session], microsecond: int
) -> None:
    at = datetime(2026, 5, 17, 3, 4, 5, microsecond, tzinfo=UTC)
    previous = use_clock(FrozenClock(at.astimezone(timezone(timedelta(hours=8)))))
    try:
        (entry,) = write_chain(fresh_factory, 1)
    finally:
        use_clock(previous)
    assert entry.occurred_at == at
    with fresh_factory() as session:
        stored = session.get(AuditEntry, 1)
        assert stored is not None
        assert stored.occurred_at == at
        assert stored.occurred_at.tzinfo is UTC
        assert stored.occurred_at.isoformat() == entry.occurred_at.isoformat()
        assert stored.occurred_at.microsecond == microsecond
    assert verify(fresh_factory) == AuditReport(rows=1, head_seq=1, problem=None)


# --------------------------------------------------------------------------- tampering


def _change_after(conn: Connection) -> None:
    conn.execute(update(LOG).where(LOG.c.seq == 3).values(after={"n": 3, "名称": "篡改"}))


def _change_actor_name(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_log SET actor_name = '他人' WHERE seq = 2"))


def _change_occurred_at_by_a_microsecond(conn: Connection) -> None:
    at = row(conn, 4)["occurred_at"]
    assert isinstance(at, datetime)
    conn.execute(
        update(LOG).where(LOG.c.seq == 4).values(occurred_at=at + timedelta(microseconds=1))
    )


def _change_and_rehash_with_a_wrong_key(conn: Connection) -> None:
    values = row(conn, 3)
    values["actor_name"] = "伪造者"
    forged = AuditEntry(**values)
    conn.execute(
        update(LOG)
        .where(LOG.c.seq == 3)
        .values(actor_name="伪造者", hash=audit.compute_hash(b"a-guessed-key", forged))
    )


def _delete_middle_row(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))


def _delete_first_row(conn: Connection) -> None:
    conn.execute(delete(LOG).where(LOG.c.seq == 1))


def _delete_last_row(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))


def _delete_every_row(conn: Connection) -> None:
    conn.execute(delete(LOG))


def _insert_after_head(conn: Connection) -> None:
    values = row(conn, 5)
    values.update(seq=6, id=uuid.uuid4())
    conn.execute(insert(LOG).values(**values))


def _insert_after_head_and_move_head(conn: Connection) -> None:
    values = row(conn, 5)
    values.update(seq=6, id=uuid.uuid4(), prev_hash=values["hash"], hash="f" * 64)
    conn.execute(insert(LOG).values(**values))
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=6, hash="f" * 64))


def _delete_tail_and_rewind_head(conn: Connection) -> None:
    """Delete the newest row and move the head back onto the last remaining row."""
    conn.execute(delete(LOG).where(LOG.c.seq == 5))
    four = row(conn, 4)
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=4, hash=four["hash"]))


def _forge_head_mac(conn: Connection) -> None:
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(mac="0" * 64))


def _delete_head_row(conn: Connection) -> None:
    conn.execute(delete(HEAD))


def _swap_rows_2_and_3(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = 2"))
    conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
    conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = -1"))


def _swap_content_of_rows_2_and_3(conn: Connection) -> None:
    two, three = row(conn, 2), row(conn, 3)
    for target, source in ((2, three), (3, two)):
        values = {k: v for k, v in source.items() if k not in {"seq", "id"}}
        conn.execute(update(LOG).where(LOG.c.seq == target).values(**values))


def _renumber_a_middle_row(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_log SET seq = 40 WHERE seq = 4"))


TAMPERING = {
    # name: (tamper, seq, kind, English message)
    "edit-after": (_change_after, 3, "changed", "row 3 was changed (hash mismatch)"),
    "edit-actor": (_change_actor_name, 2, "changed", "row 2 was changed (hash mismatch)"),
    "edit-time": (
        _change_occurred_at_by_a_microsecond,
        4,
        "changed",
        "row 4 was changed (hash mismatch)",
    ),
    "rehash-wrong-key": (
        _change_and_rehash_with_a_wrong_key,
        3,
        "changed",
        "row 3 was changed (hash mismatch)",
    ),
    "delete-middle": (_delete_middle_row, 3, "deleted", "rows 3..3 were deleted"),
    "delete-first": (_delete_first_row, 1, "deleted", "rows 1..1 were deleted"),
    "delete-last": (
        _delete_last_row,
        5,
        "truncated",
        "rows missing at the end: head says 5, chain ends at 4",
    ),
    "delete-all": (
        _delete_every_row,
        1,
        "truncated",
        "rows missing at the end: head says 5, chain ends at 0",
    ),
    "delete-tail-rewind-head": (
        _delete_tail_and_rewind_head,
        4,
        "head_forged",
        "the chain head was altered (bad MAC); rows at the end may be deleted",
    ),
    "forge-head-mac": (
        _forge_head_mac,
        5,
        "head_forged",
        "the chain head was altered (bad MAC); rows at the end may be deleted",
    ),
    "delete-head-row": (
        _delete_head_row,
        0,
        "head_deleted",
        "the chain head row was deleted",
    ),
    "insert-after-head": (
        _insert_after_head,
        6,
        "inserted",
        "row 6 lies after the recorded head 5: inserted behind the app",
    ),
    "insert-and-move-head": (
        _insert_after_head_and_move_head,
        6,
        "changed",
        "row 6 was changed (hash mismatch)",
    ),
    "swap-rows": (_swap_rows_2_and_3, 2, "changed", "row 2 was changed (hash mismatch)"),
    "swap-content": (
        _swap_content_of_rows_2_and_3,
        2,
        "changed",
        "row 2 was changed (hash mismatch)",
    ),
    "renumber": (_renumber_a_middle_row, 4, "deleted", "rows 4..4 were deleted"),
}


@pytest.mark.parametrize(
    ("tamper", "seq", "kind", "message_en"), list(TAMPERING.values()), ids=list(TAMPERING)
)
def test_tampering_behind_the_apps_back_is_caught(
    fresh_engine: Engine,
    fresh_factory: sessionmaker[Session],
    chain: list[AuditEntry],
    verify_cli: Callable[[], Result],
    tamper: Callable[[Connection], None],
    seq: int,
    kind: str,
    message_en: str,
) -> None:
    assert_cli_ok(verify_cli(), CHAIN_LENGTH)
    with fresh_engine.begin() as conn:
        tamper(conn)
    report = verify(fresh_factory)
    assert report.ok is False
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (seq, kind)
    assert report.problem.message_en == message_en
    result = verify_cli()
    assert_cli_fails(result, seq, kind, message_en)
    assert result.stdout.splitlines()[0] == f"FAILED：{report.problem.message_zh}"


def test_a_validly_signed_replacement_breaks_the_link_to_the_next_row(
    fresh_engine: Engine,
    fresh_factory: sessionmaker[Session],
    chain: list[AuditEntry],
    verify_cli: Callable[[], Result],
) -> None:
    """Even re-signing a changed row with the real key is caught: the next row still
    points at the old hash."""
    with fresh_engine.begin() as conn:
        values = row(conn, 3)
        values["actor_name"] = "伪造者"
        resigned = audit.compute_hash(AUDIT_TEST_KEY, AuditEntry(**values))
        conn.execute(update(LOG).where(LOG.c.seq == 3).values(actor_name="伪造者", hash=resigned))
    report = verify(fresh_factory)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind, report.rows) == (4, "inserted", 4)
    assert_cli_fails(
        verify_cli(),
        4,
        "inserted",
        "row 4 does not follow the previous row (replaced or inserted)",
    )


def test_wiping_the_log_and_its_head_is_caught(
    fresh_engine: Engine,
    fresh_factory: sessionmaker[Session],
    chain: list[AuditEntry],
    verify_cli: Callable[[], Result],
) -> None:
    with fresh_engine.begin() as conn:
        conn.execute(delete(LOG))
        conn.execute(delete(HEAD))
    assert verify_cli().exit_code == 1
    assert verify(fresh_factory).ok is False
