"""The fast lane of 受理 (``Prefer: respond-async``): 202 with a receipt at once, the order
registered by the worker exactly once, its clock running from acceptance; repeats, keys
shared with the normal lane, refusals, retries and concurrent workers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PASSWORD, actor, factory_for, frozen_at, partner_client
from tests.modules.hotline.test_idempotency import ORDER, ORDERS, START
from tests.web.helpers import get, login, post
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import clock
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.db import make_engine, transaction
from zhengshu.kernel.errors import Conflict, InvalidInput, PermissionDenied
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import intake
from zhengshu.modules.hotline.models import IntakeReceipt, Order
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org import repository
from zhengshu.org import service as org_service
from zhengshu.org.seed import seed_demo

Api = Callable[[str], TestClient]

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


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
    partner, token = partner_client(app, db, "110 平台")
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


# --- the queue as staff see it ------------------------------------------------------------


def fail(db: Session, receipt_id: str, message: str = "所属镇街/村居无效") -> None:
    """Make a queued receipt one the worker gave up on (as a refusal would)."""
    receipt = db.get(IntakeReceipt, uuid.UUID(receipt_id))
    assert receipt is not None
    receipt.status, receipt.attempts = intake.FAILED, 1
    receipt.error = {"code": "bad_location", "message": message, "message_en": "bad location"}
    receipt.finished_at = clock.now()
    db.commit()


def test_a_registration_from_the_fast_lane_says_so_on_the_timeline(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    receipt = accept(api("calltaker"), ORDER, "k-note").json()
    frozen.advance(timedelta(seconds=42))
    intake.drain(factory, config)
    done = api("calltaker").get(receipt["url"]).json()
    timeline = api("calltaker").get(f"{ORDERS}/{done['order_id']}/timeline").json()
    first = timeline[0]
    assert first["action"] == "register"
    assert first["note"] == f"经快速受理通道接收，42 秒后由系统登记（回执 {receipt['id']}）"
    # The normal lane's entry has no such note.
    plain = api("calltaker").post(ORDERS, json=ORDER).json()
    assert api("calltaker").get(f"{ORDERS}/{plain['id']}/timeline").json()[0]["note"] is None


def test_the_backlog_is_counted_and_on_metrics(
    db: Session,
    api: Api,
    client: TestClient,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    empty = intake.backlog(db)
    assert (empty.queued, empty.failed, empty.oldest_queued_at) == (0, 0, None)
    assert "zhengshu_intake_oldest_queued_seconds 0.0" in client.get("/metrics").text
    first = accept(api("calltaker"), ORDER, "b-1").json()
    frozen.advance(timedelta(seconds=30))
    accept(api("calltaker"), {**ORDER, "content": "第二件事"}, "b-2")
    third = accept(api("calltaker"), {**ORDER, "content": "第三件事"}, "b-3").json()
    fail(db, third["id"])
    frozen.advance(timedelta(seconds=15))
    state = intake.backlog(db)
    assert (state.queued, state.failed, state.registered_last_day) == (2, 1, 0)
    assert state.oldest_queued_seconds(clock.now()) == 45.0
    metrics = client.get("/metrics").text
    assert 'zhengshu_intake_receipts{status="queued"} 2.0' in metrics
    assert 'zhengshu_intake_receipts{status="failed"} 1.0' in metrics
    assert "zhengshu_intake_oldest_queued_seconds 45.0" in metrics
    assert intake.drain(factory, config) == 2
    state = intake.backlog(db)
    assert (state.queued, state.failed, state.registered_last_day) == (0, 1, 2)
    assert api("calltaker").get(first["url"]).json()["status"] == "registered"
    frozen.advance(timedelta(days=1, seconds=1))
    assert intake.backlog(db).registered_last_day == 0


def test_a_failed_receipt_sent_back_to_the_queue_is_registered(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    receipt = accept(api("calltaker"), ORDER, "r-1").json()
    fail(db, receipt["id"])
    staff = actor(db, "calltaker")
    with pytest.raises(PermissionDenied):
        intake.requeue(db, actor(db, "leader"), uuid.UUID(receipt["id"]))
    intake.requeue(db, staff, uuid.UUID(receipt["id"]))
    db.commit()
    with pytest.raises(Conflict):  # queued now: nothing to send back
        intake.requeue(db, staff, uuid.UUID(receipt["id"]))
    db.rollback()
    row = receipts(db)[0]
    assert (row.status, row.attempts, row.error) == ("queued", 0, None)
    assert intake.drain(factory, config) == 1
    assert api("calltaker").get(receipt["url"]).json()["status"] == "registered"
    assert cases(db) == 1
    logged = db.execute(
        select(AuditEntry).where(AuditEntry.action == "hotline.intake.requeue")
    ).scalar_one()
    assert logged.actor_id == staff.id
    assert logged.before is not None
    assert logged.before["error"]["code"] == "bad_location"


def test_a_call_taker_registers_a_failed_receipt_by_hand(
    db: Session,
    app: Any,
    client: TestClient,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    partner, token = partner_client(app, db, "110 平台")
    pushed = {**ORDER, "channel": "police_110", "title": "楼道充电", "external_ref": "J-0042"}
    receipt = accept(partner, pushed, "110-hand").json()
    fail(db, receipt["id"])
    frozen.advance(timedelta(minutes=20))

    csrf = login(client, "calltaker")
    queue = get(client, "/hotline/intake/receipts")
    assert queue.status == 200
    assert queue.h1 == "异步受理队列"
    [row] = queue.dom.one("table", "failed-receipts").find_all("tr")[1:]
    cells = row.texts("td")
    assert cells[1] == "令牌:110 平台"  # the sender, as timelines and audit name it
    assert cells[4] == "138****8000"  # masked on the list
    assert cells[5] == "所属镇街/村居无效"
    form = get(client, f"/hotline/intake?receipt={receipt['id']}")
    assert form.h1 == "人工登记失败回执"
    assert form.value("receipt_id") == receipt["id"]
    assert form.value("requester_phone") == "13800138000"
    assert len(form.selected("channel")) == 1  # the partner's channel, offered
    dongcheng = repository.unit_by_code(db, "441900003000")
    assert dongcheng is not None
    fields = {
        "csrf_token": csrf,
        "receipt_id": receipt["id"],
        "requester_name": ORDER["requester_name"],
        "requester_phone": ORDER["requester_phone"],
        "content": ORDER["content"],
        "channel": "police_110",
        "request_type": "complaint",
        "category": "urban",
        "urgency": "normal",
        "location_unit_id": str(dongcheng.id),  # the correction
    }
    done = post(client, "/hotline/intake", fields)
    assert done.status_code == 303, done.text
    assert "已人工登记回执" in unquote(done.headers["location"])

    registered = partner.get(receipt["url"]).json()
    assert registered["status"] == "registered"
    assert registered["error_message"] is None
    case = db.get(Case, uuid.UUID(registered["order_id"]))
    order = db.get(Order, uuid.UUID(registered["order_id"]))
    assert case is not None
    assert order is not None
    assert case.number == registered["number"]
    assert case.created_at == START  # its clocks run from the push
    assert case.title == "楼道充电"  # what the form does not show comes from the request
    assert order.external_ref == "J-0042"
    assert order.location_unit_id == dongcheng.id
    assert order.source_token_id == token.id  # the partner still sees its order
    assert partner.get(f"{ORDERS}/{case.id}").status_code == 200
    first = (
        db.execute(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq))
        .scalars()
        .first()
    )
    assert first is not None
    assert first.note is not None
    assert first.note.startswith(f"人工登记快速受理通道回执 {receipt['id']}")
    assert first.actor_id == actor(db, "calltaker").id
    # The partner's retry, on either lane, finds this order; nothing is registered twice.
    again = partner.post(ORDERS, json=pushed, headers={"Idempotency-Key": "110-hand"})
    assert again.status_code == 201
    assert again.json()["id"] == str(case.id)
    assert accept(partner, pushed, "110-hand").json()["number"] == case.number
    assert cases(db) == 1
    # Handled: a second try is refused and the list is empty.
    refused = post(client, "/hotline/intake", fields)
    assert refused.status_code == 409
    assert "不是登记失败" in refused.text
    assert cases(db) == 1
    assert "没有登记失败的回执" in get(client, "/hotline/intake/receipts").response.text
    logged = db.execute(
        select(AuditEntry).where(AuditEntry.action == "hotline.intake.register_by_hand")
    ).scalar_one()
    assert logged.after == {"status": "registered", "number": case.number, "created": True}


def test_a_failed_receipt_whose_key_made_an_order_meanwhile_is_not_registered_twice(
    db: Session, api: Api, config: HotlineConfig, frozen: FrozenClock
) -> None:
    receipt = accept(api("calltaker"), ORDER, "k-both").json()
    fail(db, receipt["id"])
    plain = api("calltaker").post(ORDERS, json=ORDER, headers={"Idempotency-Key": "k-both"})
    assert plain.status_code == 201
    data = intake.OrderCreate.model_validate(ORDER)
    calltaker = actor(db, "calltaker")
    failed = intake.failed_receipt(db, calltaker, uuid.UUID(receipt["id"]))
    order_id, number, created = intake.register_by_hand(db, calltaker, config, failed, data)
    db.commit()
    assert (str(order_id), number, created) == (plain.json()["id"], plain.json()["number"], False)
    assert cases(db) == 1
    assert receipts(db)[0].status == "registered"


def test_registered_receipts_are_purged_after_the_idempotency_window(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    config: HotlineConfig,
    frozen: FrozenClock,
) -> None:
    accept(api("calltaker"), ORDER, "p-1")
    intake.drain(factory, config)
    failed = accept(api("calltaker"), {**ORDER, "content": "失败的"}, "p-2").json()
    fail(db, failed["id"])
    frozen.advance(timedelta(days=3))
    accept(api("calltaker"), {**ORDER, "content": "排队的"}, "p-3")
    frozen.advance(timedelta(days=4, seconds=1))
    assert intake.purge(db) == 1  # the registered one, 7 days on
    db.commit()
    left = {r.key: r.status for r in receipts(db)}
    assert left == {"p-2": "failed", "p-3": "queued"}
    assert cases(db) == 1  # the order stays
