"""A module-wide sandbox for tests that share one set of seeded objects (not a test module).

The suite's ``app`` / ``db`` fixtures give every test a fresh transaction, so objects a
test needs are made again for each one. Tests that fire many requests against the same
objects (the authorization matrix, the fuzzer) instead build them once per module inside
a ``Sandbox``: one connection holds an outer transaction that is never committed (the
objects vanish at the end of the module); each test runs inside a savepoint of it
(``with sandbox.savepoint():``), rolled back afterwards, so every test starts from the same
state whatever the one before it did. The app's sessions join that connection and their
commits only release savepoints, as in ``conftest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import factory_for
from zhengshu.app import create_app
from zhengshu.kernel.settings import Settings


class Sandbox:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.connection = engine.connect()
        self._outer = self.connection.begin()
        self.factory: sessionmaker[Session] = factory_for(
            self.connection, join_transaction_mode="create_savepoint"
        )
        self.app: Any = create_app(settings)
        self.app.state.sessionmaker = self.factory
        self.settings = settings

    def session(self) -> Session:
        return self.factory()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Everything done inside is rolled back when the block ends."""
        nested = self.connection.begin_nested()
        try:
            yield
        finally:
            if nested.is_active:
                nested.rollback()

    def close(self) -> None:
        if self._outer.is_active:
            self._outer.rollback()
        self.connection.close()
        self.app.state.engine.dispose()
