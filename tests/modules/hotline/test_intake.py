"""The fast lane of 受理 (``Prefer: respond-async``): 202 with a receipt at once, the order
registered by the worker exactly once, its clock running from acceptance; repeats, keys
shared with the normal lane, refusals, retries and concurrent workers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PASSWORD, factory_for
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import clock
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.db import make_engine, transaction
from zhengshu.kernel.errors import InvalidInput
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import intake
from zhengshu.modules.hotline.models import IntakeReceipt, Order
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org import repository
from zhengshu.org import service as org_service
from zhengshu.org.roles import Role
from zhengshu.org.seed import seed_demo

Api = Callable[[str], TestClient]

START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
ORDERS = "/api/v1/orders"
ASYNC = {"Prefer": "respond-async"}
ORDER = {
    "requester_name": "陈先生",
    "requester_phone": "13800138000",
    "content": "小区电动车在楼道充电，存在消防隐患。",
    "request_type": "complaint",
    "category": "urban",
}


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    fixed = FrozenClock(START)
    previous = clock.use_clock(fixed)
    yield fixed
    clock.use_clock(previous)


@pytest.fixture
def config(settings: Settings) -> HotlineConfig:
    return HotlineConfig.from_settings(settings)


def accept(client: TestClient, body: dict[str, Any], key: str | None) -> Any:
    headers = dict(ASYNC)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(ORDERS, json=body, headers=headers)


def cases(db: Session) -> int:
    return int(db.execute(select(func.count()).select_from(Case)).scalar_one())


def receipts(db: Session) -> list[IntakeReceipt]:
    db.expire_all()
    return list(db.execute(select(IntakeReceipt).order_by(IntakeReceipt.received_at)).scalars())


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("respond-async", True),
        ("RESPOND-ASYNC", True),
        ("return=minimal, respond-async; foo=bar", True),
        ("respond-async, wait=10", True),
        ("wait=10", False),
        ("return=representation", False),
        ("respond-asynchronously", False),
        ("", False),
        (None, False),
    ],
)
def test_the_prefer_header_is_read_as_rfc_7240_says(header: str | None, wanted: bool) -> None:
    assert intake.wants_async(header) is wanted


def test_accepted_at_once_registered_by_the_worker_with_the_clock_from_acceptance(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    calltaker = api("calltaker")
    response = accept(calltaker, ORDER, "burst-0001")
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "queued"
    assert receipt["status_label"] == "已接收，待登记"
    assert receipt["order_id"] is None
    assert receipt["number"] is None
    assert response.headers["Location"] == f"/api/v1/intake-receipts/{receipt['id']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert cases(db) == 0
    assert calltaker.get(receipt["url"]).json()["status"] == "queued"

    frozen.advance(timedelta(minutes=7))  # the worker is behind
    assert intake.drain(factory, config) == 1
    assert intake.drain(factory, config) == 0  # nothing left

    done = calltaker.get(receipt["url"]).json()
    assert done["status"] == "registered"
    assert done["status_label"] == "已登记"
    assert done["number"]
    order = calltaker.get(f"{ORDERS}/{done['order_id']}").json()
    assert order["number"] == done["number"]
    assert order["content"] == ORDER["content"]
    case = db.get(Case, uuid.UUID(done["order_id"]))
    assert case is not None
    assert case.created_at == START  # received when accepted, not when registered
    fresh = calltaker.post(ORDERS, json=ORDER)  # the normal lane, seven minutes later
    later = db.get(Case, uuid.UUID(fresh.json()["id"]))
    assert later is not None
    assert case.due_at is not None
    assert later.due_at is not None
    assert later.due_at - case.due_at == timedelta(minutes=7)
    # Registered in the caller's name, with the usual timeline entry and audit row.
    event = db.execute(select(CaseEvent).where(CaseEvent.case_id == case.id)).scalars().first()
    assert event is not None
    assert event.action == "register"
    person = repository.person_by_username(db, "calltaker")
    assert person is not None
    assert event.actor_id == person.id
    audit_row = db.execute(
        select(AuditEntry).where(
            AuditEntry.action == "hotline.register", AuditEntry.entity_id == str(case.id)
        )
    ).scalar_one()
    assert audit_row.actor_id == person.id


def test_a_repeat_gets_the_same_receipt_and_the_key_is_shared_with_the_normal_lane(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    first = accept(api("calltaker"), ORDER, "k-1").json()
    again = accept(api("calltaker"), ORDER, "k-1")  # another token of the same person
    assert again.status_code == 202
    assert again.json()["id"] == first["id"]
    assert len(receipts(db)) == 1
    other = accept(api("calltaker"), {**ORDER, "content": "另一件事"}, "k-1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_mismatch"

    intake.drain(factory, config)
    registered = accept(api("calltaker"), ORDER, "k-1").json()
    assert registered["id"] == first["id"]
    assert registered["status"] == "registered"
    # The same key on the normal lane answers with the order the worker registered.
    plain = api("calltaker").post(ORDERS, json=ORDER, headers={"Idempotency-Key": "k-1"})
    assert plain.status_code == 201
    assert plain.headers["Idempotent-Replayed"] == "true"
    assert plain.json()["id"] == registered["order_id"]
    assert cases(db) == 1


def test_a_key_first_used_on_the_normal_lane_makes_no_second_order(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    plain = api("calltaker").post(ORDERS, json=ORDER, headers={"Idempotency-Key": "k-2"})
    assert plain.status_code == 201
    queued = accept(api("calltaker"), ORDER, "k-2").json()
    intake.drain(factory, config)
    done = api("calltaker").get(queued["url"]).json()
    assert done["status"] == "registered"
    assert done["order_id"] == plain.json()["id"]
    assert done["number"] == plain.json()["number"]
    assert cases(db) == 1


def test_refused_before_anything_is_stored(db: Session, api: Api, frozen: FrozenClock) -> None:
    no_key = accept(api("calltaker"), ORDER, None)
    assert no_key.status_code == 400
    assert no_key.json()["error"]["code"] == "idempotency_key_required"
    assert "Idempotency-Key" in no_key.json()["error"]["message"]
    # A leader reads orders but takes none in.
    denied = accept(api("leader"), ORDER, "k-3")
    assert denied.status_code == 403
    city = repository.unit_by_code(db, "441900000000")
    assert city is not None
    bad_place = accept(api("calltaker"), {**ORDER, "location_unit_id": str(city.id)}, "k-4")
    assert bad_place.status_code == 400
    assert bad_place.json()["error"]["code"] == "bad_location"
    invalid = accept(api("calltaker"), {**ORDER, "requester_phone": "12"}, "k-5")
    assert invalid.status_code == 422
    assert receipts(db) == []


def test_only_the_sender_sees_a_receipt(db: Session, api: Api, frozen: FrozenClock) -> None:
    receipt = accept(api("calltaker"), ORDER, "k-6").json()
    assert api("calltaker").get(receipt["url"]).status_code == 200
    other = api("dispatcher").get(receipt["url"])
    assert other.status_code == 404
    assert api("calltaker").get(f"/api/v1/intake-receipts/{uuid.uuid4()}").status_code == 404


def test_a_partner_push_on_the_fast_lane_is_the_partners_order(
    db: Session,
    app: Any,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    plaintext, token = org_service.issue_partner_token(
        db,
        system_principal("测试"),
        name="110 平台",
        kind="partner",
        unit_id=repository.unit_by_code(db, "441900000000").id,  # type: ignore[union-attr]
        roles=[Role.PARTNER],
    )
    db.commit()
    partner = TestClient(
        app, base_url="http://testserver", headers={"Authorization": f"Bearer {plaintext}"}
    )
    receipt = accept(partner, {**ORDER, "channel": "police_110"}, "110-0001").json()
    intake.drain(factory, config)
    done = partner.get(receipt["url"]).json()
    order = db.get(Order, uuid.UUID(done["order_id"]))
    assert order is not None
    assert order.source_token_id == token.id
    assert order.channel == "police_110"


def test_an_error_is_retried_and_a_refusal_is_reported(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashing = accept(api("calltaker"), ORDER, "k-7").json()
    real = intake.service.register_order
    calls = {"n": 0}

    def flaky(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("connection reset")
        return real(*args, **kw)

    monkeypatch.setattr(intake.service, "register_order", flaky)
    assert intake.drain(factory, config) == 1
    [row] = receipts(db)
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.run_at > START  # backoff: not taken again at once
    assert intake.drain(factory, config) == 0
    assert cases(db) == 0  # the failed attempt left nothing behind
    frozen.advance(timedelta(seconds=11))
    assert intake.drain(factory, config) == 1
    done = api("calltaker").get(crashing["url"]).json()
    assert done["status"] == "registered"
    assert cases(db) == 1

    refused = accept(api("calltaker"), {**ORDER, "content": "另一件事"}, "k-8").json()

    def refuse(*args: Any, **kw: Any) -> Any:
        raise InvalidInput("所属镇街/村居无效", "location must be a town or village unit")

    monkeypatch.setattr(intake.service, "register_order", refuse)
    intake.drain(factory, config)
    failed = api("calltaker").get(refused["url"]).json()
    assert failed["status"] == "failed"
    assert failed["status_label"] == "登记失败"
    assert failed["error_message"] == "所属镇街/村居无效"
    assert failed["error_message_en"] == "location must be a town or village unit"
    assert failed["order_id"] is None
    assert cases(db) == 1


def test_an_error_that_keeps_coming_back_fails_the_receipt_after_five_tries(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receipt = accept(api("calltaker"), ORDER, "k-9").json()

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(intake.service, "register_order", broken)
    for _ in range(intake.MAX_ATTEMPTS):
        intake.drain(factory, config)
        frozen.advance(timedelta(minutes=10))
    failed = api("calltaker").get(receipt["url"]).json()
    assert failed["status"] == "failed"
    assert failed["error_code"] == "registration_failed"
    assert receipts(db)[0].attempts == intake.MAX_ATTEMPTS


def test_two_workers_at_once_register_each_receipt_once(fresh_database: Settings) -> None:
    engine = make_engine(fresh_database)
    factory = factory_for(engine)
    with transaction(factory) as session:
        seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
    with transaction(factory) as session:
        person = repository.person_by_username(session, "calltaker")
        assert person is not None
        scope = repository.unit_by_code(session, "441900000000")
        assert scope is not None
        actor = org_service.principal_for(person, scope, ip=None)
        for n in range(24):
            data = intake.OrderCreate.model_validate({**ORDER, "content": f"第 {n} 件事"})
            intake.accept(session, actor, data, raw_key=f"race-{n}")
    config = HotlineConfig.from_settings(fresh_database)
    handled: list[int] = []
    workers = [
        threading.Thread(target=lambda: handled.append(intake.drain(factory, config)))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(handled) == 24
    with factory() as session:
        rows = list(session.execute(select(IntakeReceipt)).scalars())
        assert {r.status for r in rows} == {"registered"}
        assert all(r.attempts == 1 for r in rows)
        assert len({r.case_id for r in rows}) == 24
        assert session.execute(select(func.count()).select_from(Case)).scalar_one() == 24
    engine.dispose()
