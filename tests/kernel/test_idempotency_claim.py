"""Claiming an ``Idempotency-Key`` is one statement when no duplicate is in flight.

On PostgreSQL the claim tries a transaction-scoped advisory lock on the key and inserts
the row in the same statement; a transaction that finds the lock taken waits for it
(bounded), as before. The behaviour with real concurrent duplicates is covered in
``tests/modules/hotline/test_idempotency.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.conftest import QueryCounter, factory_for
from zhengshu.kernel import idempotency
from zhengshu.kernel.db import make_engine, open_session, transaction
from zhengshu.kernel.idempotency import PENDING, IdempotencyKey
from zhengshu.kernel.settings import Settings


def _args(key: str = "k") -> dict[str, Any]:
    return {
        "caller": "caller-1",
        "key": key,
        "method": "POST",
        "path": "/api/v1/orders",
        "request_hash": "a" * 64,
    }


def test_a_fresh_key_is_claimed_in_one_statement(
    db: Session, count_queries: Callable[[], QueryCounter]
) -> None:
    db.flush()
    counter = count_queries()
    assert idempotency.begin(db, **_args()) is None
    assert counter.count == 1, counter.statements
    row = db.get(IdempotencyKey, ("caller-1", "k"))
    assert row is not None
    assert (row.status_code, row.response, row.method) == (PENDING, {}, "POST")
    assert row.created_at.tzinfo is not None


def test_a_committed_key_is_answered_without_waiting(
    db: Session, count_queries: Callable[[], QueryCounter]
) -> None:
    assert idempotency.begin(db, **_args()) is None
    idempotency.finish(db, caller="caller-1", key="k", status_code=201, body={"n": 1})
    counter = count_queries()
    assert idempotency.begin(db, **_args()) == idempotency.Replay(201, {"n": 1})
    assert counter.count == 2, counter.statements  # the try, then the stored answer


def test_finish_refreshes_a_row_loaded_in_the_session(db: Session) -> None:
    assert idempotency.begin(db, **_args()) is None
    row = db.get(IdempotencyKey, ("caller-1", "k"))
    assert row is not None
    assert row.status_code == PENDING
    idempotency.finish(db, caller="caller-1", key="k", status_code=201, body={"n": 1})
    again = db.get(IdempotencyKey, ("caller-1", "k"))
    assert again is row
    assert (again.status_code, again.response) == (201, {"n": 1})


def test_the_claim_holds_a_lock_on_the_key_until_the_transaction_ends(
    fresh_database: Settings,
) -> None:
    if fresh_database.is_sqlite:
        pytest.skip("SQLite serializes writers at BEGIN IMMEDIATE; no advisory locks")
    engine = make_engine(fresh_database)
    factory = factory_for(engine)
    probe = text("SELECT pg_try_advisory_xact_lock(:space, :lock)")
    params = {"space": idempotency._LOCK_SPACE, "lock": idempotency._lock_id(_args())}
    try:
        first = open_session(factory, write=True)
        assert idempotency.begin(first, **_args()) is None
        with transaction(factory) as other:
            assert other.execute(probe, params).scalar_one() is False
            # Another key is not held up.
            other_params = {**params, "lock": idempotency._lock_id(_args("other"))}
            assert other.execute(probe, other_params).scalar_one() is True
        idempotency.finish(first, caller="caller-1", key="k", status_code=201, body={"n": 1})
        first.commit()
        first.close()
        with transaction(factory) as other:
            assert other.execute(probe, params).scalar_one() is True
        with transaction(factory) as session:
            assert idempotency.begin(session, **_args()) == idempotency.Replay(201, {"n": 1})
            # The fast path never touches lock_timeout.
            assert session.execute(select(func.current_setting("lock_timeout"))).scalar() == "0"
    finally:
        engine.dispose()
