"""Database engine, sessions, the declarative base and portable column types.

SQLite is the embedded default: one file, WAL, foreign keys on, a busy timeout. Because
SQLite's deferred transactions fail (rather than wait) when a reader later tries to write
after another writer committed, a session opened for writing begins ``BEGIN IMMEDIATE``;
read sessions begin a plain deferred transaction. PostgreSQL gets a connection pool.

One transaction per request or job: services flush, the caller commits (see
``transaction``). Alembic migrations are the only way the schema is made.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator, Uuid

from zhengshu.kernel.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Session.info key: True when the session was opened for writing.
WRITE_INTENT = "zhengshu_write"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database; naive values are refused, not guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC times only")
        value = value.astimezone(UTC)
        # SQLite keeps no offset; store the UTC wall time and re-attach UTC on the way out.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every table of zhengshu."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def new_id() -> uuid.UUID:
    """Primary keys are made in Python, so an object has its id before it is flushed."""
    return uuid.uuid4()


def make_engine(settings: Settings) -> Engine:
    """Create the engine for the configured database, with per-dialect settings."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": settings.sqlite_busy_timeout_ms / 1000,
            },
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
    )


_GATE = "zhengshu_sqlite_writer"  # connection info key: this connection holds the gate


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN, so that we choose IMMEDIATE for
        # writers and savepoints work (the pysqlite driver's own BEGIN handling breaks both).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # Writers of this process queue on a lock before BEGIN IMMEDIATE. SQLite's own wait
    # for its write lock polls with sleeps of up to 100 ms and is not first come, first
    # served: under a steady stream of writers one can starve past the busy timeout
    # ("database is locked"). Blocked on a lock a writer wakes as soon as the last one is
    # done. The lock is held until the connection goes back to the pool (the session's
    # commit or rollback); waiting for it counts against the same busy timeout, after
    # which BEGIN IMMEDIATE decides as before (other processes still meet SQLite's lock).
    gate = threading.Lock()
    wait_s = busy_timeout_ms / 1000

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        if immediate and not connection.info.get(_GATE) and gate.acquire(timeout=wait_s):
            connection.info[_GATE] = gate
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def _release(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
        held = record.info.pop(_GATE, None) if record is not None else None
        if held is not None:
            held.release()

    event.listen(engine.pool, "checkin", _release)
    event.listen(engine.pool, "invalidate", _release)
    event.listen(engine.pool, "soft_invalidate", _release)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def open_session(factory: sessionmaker[Session], *, write: bool) -> Session:
    """Open a session; a writing session on SQLite takes the write lock at BEGIN."""
    session = factory()
    session.info[WRITE_INTENT] = write
    if write and _is_sqlite(session):
        session.connection(execution_options={"sqlite_immediate": True})
    return session


@contextmanager
def transaction(factory: sessionmaker[Session], *, write: bool = True) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception, then release
    the side effects queued with ``kernel.jobs.after_commit``."""
    session = open_session(factory, write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"


def utcnow() -> datetime:
    return datetime.now(UTC)
