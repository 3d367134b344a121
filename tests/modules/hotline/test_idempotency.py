"""``Idempotency-Key`` on ``POST /api/v1/orders``: a repeat gets the first answer, never a
second order; a key reused for something else, or still in flight, is a 409; and two
identical requests at once, on real connections, still make one order."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, factory_for, frozen_at, partner_client
from zhengshu.app import create_app
from zhengshu.casework.models import Case
from zhengshu.kernel import idempotency
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.db import make_engine, open_session, transaction
from zhengshu.kernel.errors import Conflict
from zhengshu.kernel.idempotency import PENDING, IdempotencyKey
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.schemas import OrderCreate
from zhengshu.org import repository
from zhengshu.org.auth import issue_login_token
from zhengshu.org.seed import seed_demo
from zhengshu.tasks import build_registry

Api = Callable[[str], TestClient]

START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
ORDERS = "/api/v1/orders"
ORDER = {
    "requester_name": "陈先生",
    "requester_phone": "13800138000",
    "content": "小区电动车在楼道充电，存在消防隐患。",
    "request_type": "complaint",
    "category": "urban",
}


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


def post(client: TestClient, body: dict[str, Any], key: str | bytes | None) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(ORDERS, json=body, headers=headers)


def case_count(db: Session) -> int:
    return int(db.execute(select(func.count()).select_from(Case)).scalar_one())


def person_id(db: Session, username: str) -> str:
    person = repository.person_by_username(db, username)
    assert person is not None
    return str(person.id)


def hash_of(body: dict[str, Any]) -> str:
    payload = OrderCreate.model_validate(body).model_dump(mode="json")
    return idempotency.request_hash("POST", ORDERS, payload)


def test_the_same_key_twice_makes_one_order_and_the_same_answer(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    first = post(api("calltaker"), ORDER, "order-2026-0001")
    # A second token of the same person: the key belongs to the person.
    second = post(api("calltaker"), ORDER, "order-2026-0001")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert case_count(db) == 1
    row = db.get(IdempotencyKey, (person_id(db, "calltaker"), "order-2026-0001"))
    assert row is not None
    assert (row.method, row.path, row.status_code) == ("POST", ORDERS, 201)
    assert row.request_hash == hash_of(ORDER)
    assert row.response == first.json()
    assert row.created_at == START
    # Without a key every POST is a new order.
    assert post(api("calltaker"), ORDER, None).status_code == 201
    assert case_count(db) == 2


def test_the_same_body_differently_written_is_the_same_request(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    first = post(api("calltaker"), ORDER, "k")
    explicit = {**dict(reversed(ORDER.items())), "channel": "phone", "urgency": "normal"}
    again = post(api("calltaker"), explicit, "k")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert case_count(db) == 1


def test_the_same_key_with_another_body_is_a_conflict(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    assert post(api("calltaker"), ORDER, "k-1").status_code == 201
    response = post(api("calltaker"), {**ORDER, "content": "另一件事"}, "k-1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_mismatch"
    assert case_count(db) == 1


def test_callers_have_keys_of_their_own(
    db: Session, api: Api, app: Any, frozen: FrozenClock
) -> None:
    partner, token = partner_client(app, db, "市民服务 App")
    mine = post(api("calltaker"), ORDER, "shared-key")
    theirs = post(partner, ORDER, "shared-key")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["number"] != theirs.json()["number"]
    assert case_count(db) == 2
    callers = set(db.execute(select(IdempotencyKey.caller)).scalars())
    assert callers == {person_id(db, "calltaker"), str(token.id)}


@pytest.mark.parametrize(
    "key",
    ["", "   ", "x" * 201, "tab\there", "caf\xe9".encode("latin-1")],
    ids=["empty", "blank", "too-long", "tab", "latin-1"],
)
def test_bad_keys_are_refused(db: Session, api: Api, frozen: FrozenClock, key: str | bytes) -> None:
    response = post(api("calltaker"), ORDER, key)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_idempotency_key"
    assert case_count(db) == 0


def test_a_key_of_200_printable_characters_is_fine(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    key = ("Ab0-_.~:/ +=!" * 20)[:200]
    assert post(api("calltaker"), ORDER, key).status_code == 201
    assert post(api("calltaker"), ORDER, key).status_code == 201
    assert case_count(db) == 1


def test_a_refused_request_keeps_no_key(db: Session, api: Api, frozen: FrozenClock) -> None:
    response = post(api("dc.handler"), ORDER, "k-denied")
    assert response.status_code == 403
    assert db.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one() == 0


def test_the_loser_of_a_race_gets_the_winners_answer(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    # The winner committed between the loser's start and its insert: the loser's insert
    # meets the winner's primary key and answers from the winner's row.
    winner = {"id": str(uuid.uuid4()), "number": "GD20260930000042"}
    db.add(
        IdempotencyKey(
            caller=person_id(db, "calltaker"),
            key="race",
            method="POST",
            path=ORDERS,
            request_hash=hash_of(ORDER),
            status_code=201,
            response=winner,
            created_at=START,
        )
    )
    db.commit()
    response = post(api("calltaker"), ORDER, "race")
    assert response.status_code == 201
    assert response.json() == winner
    assert case_count(db) == 0


def test_a_request_still_in_flight_is_told_to_retry(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    db.add(
        IdempotencyKey(
            caller=person_id(db, "calltaker"),
            key="busy",
            method="POST",
            path=ORDERS,
            request_hash=hash_of(ORDER),
            status_code=PENDING,
            response={},
            created_at=START,
        )
    )
    db.commit()
    response = post(api("calltaker"), ORDER, "busy")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_flight"
    assert case_count(db) == 0


def test_keys_older_than_seven_days_are_purged(
    db: Session, settings: Settings, frozen: FrozenClock
) -> None:
    for key, age in (("old", timedelta(days=7, seconds=1)), ("recent", timedelta(days=6))):
        db.add(
            IdempotencyKey(
                caller="someone",
                key=key,
                method="POST",
                path=ORDERS,
                request_hash="0" * 64,
                status_code=201,
                response={},
                created_at=START - age,
            )
        )
    db.flush()
    assert idempotency.purge(db) == 1
    assert list(db.execute(select(IdempotencyKey.key)).scalars()) == ["recent"]
    periodic = {task.name: task for task in build_registry(settings).periodic}
    assert periodic["kernel.idempotency.purge"].every == timedelta(hours=1)
    assert periodic["kernel.idempotency.purge"].handler is idempotency.purge_expired


# --- real concurrency, on a database whose commits are real ---------------------------------


def _claim_args(key: str = "k") -> dict[str, Any]:
    return {
        "caller": "caller-1",
        "key": key,
        "method": "POST",
        "path": ORDERS,
        "request_hash": "a" * 64,
    }


def test_a_duplicate_waits_for_the_first_then_replays_or_takes_over(
    fresh_database: Settings,
) -> None:
    """Two sessions on two connections: the second waits while the first holds the key
    (SQLite: at BEGIN IMMEDIATE; PostgreSQL: on the primary key), then gets the stored
    answer, or the key itself when the first rolled back."""
    engine = make_engine(fresh_database)
    factory = factory_for(engine)
    try:
        for outcome in ("commit", "rollback"):
            key = f"k-{outcome}"
            first = open_session(factory, write=True)
            assert idempotency.begin(first, **_claim_args(key)) is None
            results: list[Any] = []

            def second(key: str = key, results: list[Any] = results) -> None:
                with transaction(factory) as session:
                    results.append(idempotency.begin(session, **_claim_args(key)))
                    if results[-1] is None:
                        idempotency.finish(
                            session, caller="caller-1", key=key, status_code=201, body={"n": 2}
                        )

            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.3)
            assert thread.is_alive()  # waiting for the first
            idempotency.finish(first, caller="caller-1", key=key, status_code=201, body={"n": 1})
            if outcome == "commit":
                first.commit()
            else:
                first.rollback()
            first.close()
            thread.join(10)
            assert not thread.is_alive()
            if outcome == "commit":
                assert results == [idempotency.Replay(201, {"n": 1})]
            else:
                assert results == [None]
            with factory() as check:
                row = check.get(IdempotencyKey, ("caller-1", key))
                assert row is not None
                assert row.response == ({"n": 1} if outcome == "commit" else {"n": 2})
    finally:
        engine.dispose()


def test_a_duplicate_that_waits_too_long_is_told_to_retry(fresh_database: Settings) -> None:
    if fresh_database.is_sqlite:
        pytest.skip("SQLite serializes writers at BEGIN IMMEDIATE (the busy timeout applies)")
    engine = make_engine(fresh_database)
    factory = factory_for(engine)
    try:
        first = open_session(factory, write=True)
        assert idempotency.begin(first, **_claim_args()) is None
        with pytest.raises(Conflict) as refused, transaction(factory) as session:
            idempotency.begin(session, **_claim_args(), wait_seconds=0.2)
        assert refused.value.code == "idempotency_in_flight"
        idempotency.finish(first, caller="caller-1", key="k", status_code=201, body={"n": 1})
        first.commit()
        first.close()
        with transaction(factory) as session:
            assert idempotency.begin(session, **_claim_args()) == idempotency.Replay(201, {"n": 1})
            # The wait bound is put back for the rest of the transaction.
            assert session.execute(select(func.current_setting("lock_timeout"))).scalar() == "0"
    finally:
        engine.dispose()


def test_two_identical_requests_at_once_make_one_order(
    fresh_database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(fresh_database)
    with factory_for(engine)() as session:
        seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
        person = repository.person_by_username(session, "calltaker")
        assert person is not None
        tokens = [
            issue_login_token(session, fresh_database, person=person, ip=None)[0] for _ in range(2)
        ]
        session.commit()
    register = service.register_order

    def slow_register(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # hold the key while the duplicate arrives
        return register(*args, **kwargs)

    monkeypatch.setattr(service, "register_order", slow_register)
    app = create_app(fresh_database)
    barrier = threading.Barrier(2)
    responses: list[Any] = []

    def send(token: str) -> None:
        with TestClient(
            app, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            barrier.wait()
            responses.append(post(client, ORDER, "same-request"))

    threads = [threading.Thread(target=send, args=(token,)) for token in tokens]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(r.status_code for r in responses) == [201, 201], [r.text for r in responses]
        assert responses[0].json() == responses[1].json()
        assert sorted(r.headers.get("Idempotent-Replayed", "") for r in responses) == ["", "true"]
        with factory_for(engine)() as session:
            assert session.execute(select(func.count()).select_from(Case)).scalar_one() == 1
    finally:
        app.state.engine.dispose()
        engine.dispose()
