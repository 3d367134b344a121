"""The database layer: aware-UTC datetimes, SQLite's connection settings and write lock,
transactions, and the constraint naming convention."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import factory_for
from zhengshu.kernel.calendar_store import CalendarOverride, CalendarYear
from zhengshu.kernel.db import (
    NAMING_CONVENTION,
    WRITE_INTENT,
    Base,
    UTCDateTime,
    make_engine,
    make_sessionmaker,
    new_id,
    open_session,
    transaction,
)
from zhengshu.kernel.settings import Settings
from zhengshu.org.models import PersonRole

BEIJING = timezone(timedelta(hours=8))


def override(day: date, updated_at: datetime) -> CalendarOverride:
    return CalendarOverride(
        day=day,
        is_workday=False,
        name="台风停工",
        source="local",
        updated_by="测试",
        updated_at=updated_at,
    )


# --------------------------------------------------------------------------- UTCDateTime


def test_utc_datetime_refuses_naive_values_on_bind() -> None:
    kind = UTCDateTime()
    with pytest.raises(ValueError, match="naive datetime refused: store aware UTC times only"):
        kind.process_bind_param(datetime(2026, 1, 5, 9, 0), _dialect("sqlite"))  # noqa: DTZ001
    assert kind.process_bind_param(None, _dialect("sqlite")) is None
    assert kind.process_result_value(None, _dialect("sqlite")) is None


def test_utc_datetime_converts_to_utc_per_dialect() -> None:
    kind = UTCDateTime()
    local = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=BEIJING)
    on_sqlite = kind.process_bind_param(local, _dialect("sqlite"))
    assert on_sqlite == datetime(2026, 3, 1, 1, 30, 15, 123456)  # noqa: DTZ001
    assert on_sqlite is not None
    assert on_sqlite.tzinfo is None
    on_postgres = kind.process_bind_param(local, _dialect("postgresql"))
    assert on_postgres == datetime(2026, 3, 1, 1, 30, 15, 123456, tzinfo=UTC)
    assert on_postgres is not None
    assert on_postgres.tzinfo is UTC
    naive_from_sqlite = datetime(2026, 3, 1, 1, 30)  # noqa: DTZ001
    back = kind.process_result_value(naive_from_sqlite, _dialect("sqlite"))
    assert back == datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    assert back is not None
    assert back.tzinfo is UTC


def _dialect(name: str) -> Dialect:
    return sqlite.dialect() if name == "sqlite" else postgresql.dialect()


def test_naive_datetime_is_refused_by_the_database_layer(db: Session) -> None:
    db.add(override(date(2026, 7, 15), datetime(2026, 7, 15, 9, 0)))  # noqa: DTZ001
    with pytest.raises(StatementError, match="naive datetime refused") as caught:
        db.flush()
    assert isinstance(caught.value.orig, ValueError)
    db.rollback()
    assert db.get(CalendarOverride, date(2026, 7, 15)) is None


def test_aware_datetime_reads_back_as_the_same_instant_in_utc(db: Session) -> None:
    local = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=BEIJING)
    db.add(override(date(2026, 3, 2), local))
    db.flush()
    db.expunge_all()
    stored = db.execute(
        select(CalendarOverride.updated_at).where(CalendarOverride.day == date(2026, 3, 2))
    ).scalar_one()
    assert stored == datetime(2026, 3, 1, 1, 30, 15, 123456, tzinfo=UTC)
    assert stored.tzinfo is UTC
    raw = db.execute(
        text("SELECT updated_at FROM calendar_overrides WHERE name = '台风停工'")
    ).scalar_one()
    if db.get_bind().dialect.name == "sqlite":
        assert raw == "2026-03-01 01:30:15.123456"  # the UTC wall time, no offset
    else:
        assert raw == datetime(2026, 3, 1, 1, 30, 15, 123456, tzinfo=UTC)


def test_aware_datetimes_compare_as_instants_in_queries(db: Session) -> None:
    db.add(override(date(2026, 3, 3), datetime(2026, 3, 3, 8, 0, tzinfo=BEIJING)))
    db.flush()
    found = (
        db.execute(
            select(CalendarOverride.day).where(
                CalendarOverride.updated_at == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
            )
        )
        .scalars()
        .all()
    )
    assert found == [date(2026, 3, 3)]
    later = (
        db.execute(
            select(CalendarOverride.day).where(
                CalendarOverride.updated_at > datetime(2026, 3, 3, 7, 59, tzinfo=BEIJING),
                CalendarOverride.day == date(2026, 3, 3),
            )
        )
        .scalars()
        .all()
    )
    assert later == [date(2026, 3, 3)]


def test_new_id_is_a_fresh_uuid4() -> None:
    first, second = new_id(), new_id()
    assert isinstance(first, uuid.UUID)
    assert first.version == 4
    assert first != second


# --------------------------------------------------------------------------- SQLite settings


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'lock.sqlite3'}",
        sqlite_busy_timeout_ms=1234,
        secret_key="k",
    )


@pytest.fixture
def sqlite_engine(sqlite_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(sqlite_settings)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield engine
    engine.dispose()


def test_sqlite_connection_pragmas(sqlite_engine: Engine, sqlite_settings: Settings) -> None:
    assert sqlite_settings.data_dir.is_dir()  # make_engine creates the data directory
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_test_engine_pragmas_on_sqlite(engine: Engine, settings: Settings) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite connection settings")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert settings.sqlite_busy_timeout_ms == 10_000


def test_postgresql_engine_has_a_pool(engine: Engine, settings: Settings) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL pool settings")
    assert engine.pool.size() == settings.db_pool_size  # type: ignore[attr-defined]


def test_foreign_keys_are_enforced(db: Session) -> None:
    with pytest.raises(IntegrityError):
        db.execute(insert(PersonRole.__table__).values(person_id=uuid.uuid4(), role="admin"))
    db.rollback()


def _second_writer(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=0, isolation_level=None)


def test_write_session_takes_the_sqlite_write_lock_at_begin(
    sqlite_engine: Engine, sqlite_settings: Settings
) -> None:
    path = sqlite_settings.database_url.removeprefix("sqlite:///")
    factory = make_sessionmaker(sqlite_engine)
    other = _second_writer(path)
    try:
        session = open_session(factory, write=True)
        assert session.info[WRITE_INTENT] is True
        # No statement has run in the session yet, and still the lock is held.
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        session.rollback()
        session.close()
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_read_session_does_not_take_the_write_lock(
    sqlite_engine: Engine, sqlite_settings: Settings
) -> None:
    path = sqlite_settings.database_url.removeprefix("sqlite:///")
    factory = make_sessionmaker(sqlite_engine)
    other = _second_writer(path)
    try:
        session = open_session(factory, write=False)
        assert session.info[WRITE_INTENT] is False
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")
        other.execute("COMMIT")
        session.close()
    finally:
        other.close()


def test_a_second_sqlite_writer_fails_after_the_busy_timeout(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'busy.sqlite3'}",
        sqlite_busy_timeout_ms=0,
        secret_key="k",
    )
    engine = make_engine(settings)
    try:
        factory = make_sessionmaker(engine)
        first = open_session(factory, write=True)
        with pytest.raises(OperationalError, match="database is locked"):
            open_session(factory, write=True)
        first.close()
        open_session(factory, write=True).close()  # free again
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- transactions


@pytest.fixture
def fresh_factory(fresh_database: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_database)
    yield factory_for(engine)
    engine.dispose()


def _years(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return list(session.execute(select(CalendarYear.year)).scalars())


def _year(year: int) -> CalendarYear:
    return CalendarYear(
        year=year, days=1, imported_by="测试", imported_at=datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_transaction_commits_on_success(fresh_factory: sessionmaker[Session]) -> None:
    with transaction(fresh_factory) as session:
        assert session.info[WRITE_INTENT] is True
        session.add(_year(2030))
    assert _years(fresh_factory) == [2030]


def test_transaction_rolls_back_on_error(fresh_factory: sessionmaker[Session]) -> None:

    def failing_unit_of_work() -> None:
        with transaction(fresh_factory) as session:
            session.add(_year(2031))
            session.flush()
            raise ZeroDivisionError("after the flush")

    with pytest.raises(ZeroDivisionError, match="after the flush"):
        failing_unit_of_work()
    assert _years(fresh_factory) == []


def test_read_transaction_is_marked_read(fresh_factory: sessionmaker[Session]) -> None:
    with transaction(fresh_factory, write=False) as session:
        assert session.info[WRITE_INTENT] is False
        assert session.execute(select(CalendarYear)).first() is None


# --------------------------------------------------------------------------- naming


def test_constraints_are_named_by_the_convention(engine: Engine) -> None:
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("units")["name"] == "pk_units"
    assert [u["name"] for u in inspector.get_unique_constraints("units")] == ["uq_units_code"]
    indexes = inspector.get_indexes("units")
    # PostgreSQL also lists the unique constraint's own index; skip that one.
    assert sorted(i["name"] for i in indexes if not i.get("duplicates_constraint")) == [
        "ix_units_parent_id",
        "ix_units_path",
    ]
    assert [fk["name"] for fk in inspector.get_foreign_keys("units")] == [
        "fk_units_parent_id_units"
    ]
    assert inspector.get_pk_constraint("audit_log")["name"] == "pk_audit_log"
    assert [u["name"] for u in inspector.get_unique_constraints("audit_log")] == ["uq_audit_log_id"]


def test_every_table_has_a_conventionally_named_primary_key(engine: Engine) -> None:
    assert set(NAMING_CONVENTION) == {"ix", "uq", "ck", "fk", "pk"}
    inspector = inspect(engine)
    for table in Base.metadata.tables:
        assert inspector.get_pk_constraint(table)["name"] == f"pk_{table}", table


def test_sqlite_writers_of_one_process_take_turns_without_starving(tmp_path: Path) -> None:
    """Writers queue on a lock before BEGIN IMMEDIATE: a waiting writer proceeds as soon as
    the writer before it ends (SQLite's own busy wait polls and can starve one), and every
    way a transaction ends lets the next one in."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'turns.sqlite3'}",
        sqlite_busy_timeout_ms=3000,
        secret_key="k",
    )
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        factory = make_sessionmaker(engine)
        first = open_session(factory, write=True)
        waited: list[float] = []

        def second() -> None:
            started = time.monotonic()
            with transaction(factory) as session:
                waited.append(time.monotonic() - started)
                session.execute(text("INSERT INTO t VALUES (2)"))

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # queued behind the first writer
        first.execute(text("INSERT INTO t VALUES (1)"))
        released = time.monotonic()
        first.commit()
        first.close()
        thread.join(5)
        assert not thread.is_alive()
        assert waited[0] >= 0.3
        assert time.monotonic() - released < 1.0

        # Rollback, close without commit, and an invalidated connection all free the turn.
        rolled = open_session(factory, write=True)
        rolled.rollback()
        rolled.close()
        open_session(factory, write=True).close()
        broken = open_session(factory, write=True)
        broken.connection().invalidate()
        broken.close()

        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(25):
                    with transaction(factory) as session:
                        session.execute(text("INSERT INTO t VALUES (:x)"), {"x": n * 100 + i})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2 + 8 * 25
    finally:
        engine.dispose()
