"""Test harness: a real database built by the real migrations, one per test run.

- ``ZHENGSHU_TEST_DATABASE_URL`` unset: a SQLite file in a temporary directory.
- ``ZHENGSHU_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres``:
  the suite creates its own uniquely named database on that server and drops it after.

The demo city (Dongguan tree + one account per role, every password ``PASSWORD``) is
seeded once and committed; each test then runs inside a transaction that is rolled back,
so tests see the same starting data and leave nothing behind. Code under test that
commits only releases a savepoint.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.app import create_app
from zhengshu.kernel import clock, migrate
from zhengshu.kernel.audit import AUDIT_KEY
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.db import make_engine
from zhengshu.kernel.settings import Settings
from zhengshu.org import passwords, repository, service
from zhengshu.org.auth import issue_login_token
from zhengshu.org.models import Unit
from zhengshu.org.roles import Role
from zhengshu.org.seed import seed_demo

# Cheap argon2 parameters for the suite: the production defaults cost ~0.3 s per hash,
# which the suite would pay thousands of times. Verification accepts any parameters.
passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
passwords._DUMMY = passwords._hasher.hash("zhengshu-dummy-password")

PASSWORD = "Demo-Passw0rd!"

# Fixtures of the browser tests (a live server, Chromium, screenshots).
pytest_plugins = ["tests.browser_support"]
AUDIT_TEST_KEY = b"test-audit-key"


@dataclass
class TestDatabase:
    url: str
    drop: Callable[[], None]


def create_database(tmp: Path) -> TestDatabase:
    """A new empty database: SQLite file, or a fresh database on the PostgreSQL server."""
    server = os.environ.get("ZHENGSHU_TEST_DATABASE_URL", "")
    if not server:
        path = tmp / f"zs-{uuid.uuid4().hex[:8]}.sqlite3"
        return TestDatabase(f"sqlite:///{path}", lambda: None)
    name = f"zs_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    return TestDatabase(url, drop)


def make_settings(url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        secret_key="test-secret",
        audit_key=AUDIT_TEST_KEY.decode(),
    )


def factory_for(bind: Engine | Connection, **kw: Any) -> sessionmaker[Session]:
    return sessionmaker(bind=bind, expire_on_commit=False, info={AUDIT_KEY: AUDIT_TEST_KEY}, **kw)


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    db = create_database(tmp_path_factory.mktemp("db"))
    yield db
    db.drop()


@pytest.fixture(scope="session")
def settings(database: TestDatabase, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database.url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    migrate.upgrade(engine)
    with factory_for(engine)() as session:
        seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection in an outer transaction that the test never commits."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    return factory_for(connection, join_transaction_mode="create_savepoint")


@pytest.fixture
def db(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, *args: Any) -> None:
        statement = args[2]
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(connection: Connection) -> Iterator[Callable[[], QueryCounter]]:
    """``with``-less query counter: ``counter = count_queries()`` then read ``counter.count``."""
    counters: list[QueryCounter] = []

    def start() -> QueryCounter:
        counter = QueryCounter()
        event.listen(connection, "before_cursor_execute", counter)
        counters.append(counter)
        return counter

    yield start
    for counter in counters:
        event.remove(connection, "before_cursor_execute", counter)


@pytest.fixture
def app(settings: Settings, factory: sessionmaker[Session]) -> Iterator[Any]:
    application = create_app(settings)
    application.state.sessionmaker = factory
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def actor(db: Session, username: str) -> Principal:
    """The principal of a demo person, as login would build it."""
    person = repository.person_by_username(db, username)
    assert person is not None, username
    scope = db.get(Unit, person.scope_unit_id or person.unit_id)
    assert scope is not None
    return service.principal_for(person, scope, ip="127.0.0.1")


@pytest.fixture
def as_user(db: Session) -> Callable[[str], Principal]:
    return lambda username: actor(db, username)


@pytest.fixture
def api(app: Any, db: Session, settings: Settings) -> Callable[[str], TestClient]:
    """``api("dc.admin")``: a client that sends that person's bearer token."""
    clients: list[TestClient] = []

    def make(username: str) -> TestClient:
        person = repository.person_by_username(db, username)
        assert person is not None, username
        token, _ = issue_login_token(db, settings, person=person, ip="127.0.0.1")
        db.commit()
        test_client = TestClient(
            app, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
        )
        clients.append(test_client)
        return test_client

    return make


def frozen_at(moment: datetime) -> Iterator[FrozenClock]:
    """The clock stopped at ``moment`` for a test (``yield from frozen_at(START)`` in a
    fixture), the real one put back after."""
    fixed = FrozenClock(moment)
    previous = clock.use_clock(fixed)
    yield fixed
    clock.use_clock(previous)


def partner_client(app: Any, db: Session, name: str = "110 平台") -> tuple[TestClient, Any]:
    """A client with a new city-wide partner token (committed), and the token's row."""
    plaintext, token = service.issue_partner_token(
        db,
        system_principal("测试"),
        name=name,
        kind="partner",
        unit_id=unit_id(db, "441900000000"),
        roles=[Role.PARTNER],
    )
    db.commit()
    client = TestClient(
        app, base_url="http://testserver", headers={"Authorization": f"Bearer {plaintext}"}
    )
    return client, token


def unit_id(db: Session, code: str) -> uuid.UUID:
    unit = repository.unit_by_code(db, code)
    assert unit is not None, code
    return unit.id


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[Settings]:
    """A separate, migrated, empty database whose commits are real (CLI and audit tests)."""
    db = create_database(tmp_path)
    settings = make_settings(db.url, tmp_path / "data")
    engine = make_engine(settings)
    migrate.upgrade(engine)
    engine.dispose()
    yield settings
    db.drop()
