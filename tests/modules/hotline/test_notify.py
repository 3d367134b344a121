"""Messages to the requester: one at registration, reply and callback, written with the
step and sent by the worker through the installed sender, which may fail and be retried."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import frozen_at, unit_id
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.jobs import Job, JobStatus, run_due_jobs
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import notify
from zhengshu.modules.hotline.models import Notification
from zhengshu.tasks import build_registry

Api = Callable[[str], TestClient]

START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
NUMBER = "GD20260930000001"
REGISTERED = "【东莞12345】您的诉求已受理，工单号GD20260930000001，可凭工单号和手机号查询进度。"
REPLIED = (
    "【东莞12345】您的工单GD20260930000001已办理并答复，可凭工单号和手机号查询答复内容，"
    "我们将回访了解您的意见。"
)
CLOSED = "【东莞12345】您的工单GD20260930000001已回访办结，感谢您对12345热线工作的支持。"
REWORKED = "【东莞12345】您的工单GD20260930000001经回访已交承办单位重新办理，请留意后续答复。"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


class Gateway:
    """A sender that records what it sends and fails while ``down``."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.sent: list[str] = []

    def send(self, notification: Notification) -> None:
        if self.down:
            raise RuntimeError("短信网关不可用")
        self.sent.append(notification.body)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    fake = Gateway()
    previous = notify.use_sender(fake)
    yield fake
    notify.use_sender(previous)


def register(api: Api, phone: str = "13800138000") -> dict[str, Any]:
    response = api("calltaker").post(
        "/api/v1/orders",
        json={
            "requester_name": "陈先生",
            "requester_phone": phone,
            "content": "小区电动车在楼道充电，存在消防隐患。",
            "request_type": "complaint",
            "category": "urban",
        },
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def act(api: Api, who: str, order: dict[str, Any], action: str, **body: object) -> None:
    response = api(who).post(f"/api/v1/orders/{order['id']}/actions/{action}", json=body)
    assert response.status_code == 200, response.text


def to_reply(api: Api, db: Session, order: dict[str, Any]) -> None:
    act(api, "dispatcher", order, "dispatch", unit_id=str(unit_id(db, "441900003000")))
    act(api, "dc.handler", order, "sign_for")
    act(api, "dc.handler", order, "reply", note="已联系物业清理楼道。")


def messages(db: Session) -> list[Notification]:
    db.expire_all()
    return list(
        db.execute(
            select(Notification).order_by(Notification.created_at, Notification.template)
        ).scalars()
    )


def notify_jobs(db: Session) -> list[Job]:
    db.expire_all()
    return list(
        db.execute(select(Job).where(Job.name == notify.JOB).order_by(Job.created_at)).scalars()
    )


def run(factory: sessionmaker[Session], settings: Settings) -> int:
    return run_due_jobs(factory, build_registry(settings), worker_id="t")


def test_registration_reply_and_callback_each_queue_one_message(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    order = register(api)
    [registered] = messages(db)
    assert registered.case_id == uuid.UUID(order["id"])
    assert (registered.channel, registered.recipient, registered.template) == (
        "sms",
        "13800138000",
        "registered",
    )
    assert registered.body == REGISTERED
    assert (registered.status, registered.created_at, registered.sent_at) == (
        "queued",
        START,
        None,
    )

    frozen.advance(timedelta(minutes=5))
    act(api, "dispatcher", order, "dispatch", unit_id=str(unit_id(db, "441900003000")))
    act(api, "dc.handler", order, "sign_for")
    assert len(messages(db)) == 1  # dispatch and sign_for tell the requester nothing
    act(api, "dc.handler", order, "reply", note="已联系物业清理楼道。")
    assert [(m.template, m.body) for m in messages(db)] == [
        ("registered", REGISTERED),
        ("replied", REPLIED),
    ]
    frozen.advance(timedelta(minutes=5))
    act(api, "callback", order, "callback", solved=True, satisfaction="satisfied")
    assert [(m.template, m.body, m.status) for m in messages(db)] == [
        ("registered", REGISTERED, "queued"),
        ("replied", REPLIED, "queued"),
        ("closed", CLOSED, "queued"),
    ]
    # One send job for each, written in the same transaction (the outbox).
    ids = {str(m.id) for m in messages(db)}
    assert {j.payload["notification_id"] for j in notify_jobs(db)} == ids
    assert len(notify_jobs(db)) == 3


def test_an_unsolved_callback_tells_the_requester_it_is_handled_again(
    db: Session, api: Api, frozen: FrozenClock
) -> None:
    order = register(api)
    to_reply(api, db, order)
    act(
        api, "callback", order, "callback", solved=False, satisfaction="dissatisfied", note="未解决"
    )
    assert [m.body for m in messages(db)] == [REGISTERED, REPLIED, REWORKED]


def test_a_landline_gets_no_sms(db: Session, api: Api, frozen: FrozenClock) -> None:
    register(api, phone="0769-22345678")
    assert messages(db) == []
    assert notify_jobs(db) == []


def test_the_log_sender_marks_them_sent(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register(api)
    frozen.advance(timedelta(seconds=3))
    with caplog.at_level(logging.INFO, logger="zhengshu.modules.hotline.notify"):
        assert run(factory, settings) == 1
    [message] = messages(db)
    assert (message.status, message.sent_at, message.error) == (
        "sent",
        START + timedelta(seconds=3),
        None,
    )
    assert [j.status for j in notify_jobs(db)] == [JobStatus.DONE]
    assert REGISTERED in caplog.text
    assert "138****8000" in caplog.text
    assert "13800138000" not in caplog.text
    # Sent once: running the worker again sends nothing more.
    assert run(factory, settings) == 0


def test_a_failing_sender_keeps_the_error_and_retries(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
    gateway: Gateway,
) -> None:
    register(api)
    gateway.down = True
    assert run(factory, settings) == 1
    [message] = messages(db)
    assert (message.status, message.error, message.sent_at) == (
        "queued",
        "RuntimeError: 短信网关不可用",
        None,
    )
    first, retry = notify_jobs(db)
    assert first.status == JobStatus.DONE
    assert (retry.status, retry.run_at) == (JobStatus.QUEUED, START + timedelta(seconds=10))
    assert retry.payload == {"notification_id": str(message.id), "attempt": 2}

    assert run(factory, settings) == 0  # not due yet
    gateway.down = False
    frozen.advance(timedelta(seconds=10))
    assert run(factory, settings) == 1
    [message] = messages(db)
    assert (message.status, message.error, message.sent_at) == (
        "sent",
        None,
        START + timedelta(seconds=10),
    )
    assert gateway.sent == [REGISTERED]


def test_a_message_that_never_goes_out_ends_failed(
    db: Session,
    api: Api,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
    gateway: Gateway,
) -> None:
    register(api)
    gateway.down = True
    for _ in range(notify.MAX_ATTEMPTS):
        assert run(factory, settings) == 1
        frozen.advance(timedelta(hours=1))
    [message] = messages(db)
    assert (message.status, message.error) == ("failed", "RuntimeError: 短信网关不可用")
    assert len(notify_jobs(db)) == notify.MAX_ATTEMPTS
    assert run(factory, settings) == 0
    assert gateway.sent == []
