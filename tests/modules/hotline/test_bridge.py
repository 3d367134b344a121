"""The 110 bridge: diverted calls pushed in, progress read back, webhooks delivered, and
12345's hand-over to 110 announced, over the API with a real HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import frozen_at, unit_id
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.jobs import Job, JobStatus, run_due_jobs
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import events
from zhengshu.modules.hotline.models import Order, Webhook
from zhengshu.org import service as org_service
from zhengshu.org.roles import Role
from zhengshu.tasks import build_registry

Api = Callable[[str], TestClient]
Partner = Callable[..., tuple[TestClient, uuid.UUID]]

# Wednesday 30 September 2026, 09:00 Beijing time: National Day starts the next day.
START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
PUSH = "/api/v1/partner/110/orders"
WEBHOOK = "/api/v1/partner/110/webhook"
POLICE = "D009"  # 东莞市公安局
DONGCHENG = "441900003000"
SECRET = "s3cret-of-the-110-platform"
INCIDENT = {
    "incident_number": "J44190020260930000123",
    "caller_name": "李女士",
    "caller_phone": "13912345678",
    "address": "东城街道岗贝社区翠园小区 3 栋",
    "content": "楼上住户深夜装修，噪音持续，影响休息。",
    "category": "urban",
    "urgency": "normal",
    "three_way_call": True,
    "note": "已告知来电人由 12345 跟进",
}
NOTE_110 = (
    "110 警情编号：J44190020260930000123；已进行三方通话；110 备注：已告知来电人由 12345 跟进"
)


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


@pytest.fixture
def partner(app: Any, db: Session) -> Partner:
    """``partner()``: a client holding a new partner token of the police bureau."""

    def make(
        name: str = "市公安局 110 警务平台", code: str = POLICE
    ) -> tuple[TestClient, uuid.UUID]:
        plaintext, token = org_service.issue_partner_token(
            db,
            system_principal("测试"),
            name=name,
            kind="partner",
            unit_id=unit_id(db, code),
            roles=[Role.PARTNER],
        )
        db.commit()
        client = TestClient(
            app, base_url="http://testserver", headers={"Authorization": f"Bearer {plaintext}"}
        )
        return client, token.id

    return make


class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), raw))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/12345"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, _, raw in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def signature(raw: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def case_count(db: Session) -> int:
    return int(db.execute(select(func.count()).select_from(Case)).scalar_one())


def act(api: Api, who: str, order_id: str, action: str, **body: object) -> dict[str, Any]:
    response = api(who).post(f"/api/v1/orders/{order_id}/actions/{action}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def run_jobs(factory: sessionmaker[Session], settings: Settings) -> int:
    return run_due_jobs(factory, build_registry(settings), worker_id="t")


def webhook_jobs(db: Session) -> list[Job]:
    db.expire_all()
    return list(
        db.execute(select(Job).where(Job.name == events.JOB).order_by(Job.created_at)).scalars()
    )


def test_a_diverted_call_becomes_an_order_at_once(
    db: Session, api: Api, partner: Partner, frozen: FrozenClock
) -> None:
    police, token_id = partner()
    response = police.post(PUSH, json=INCIDENT)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "order_id": body["order_id"],
        "number": "GD20260930000001",
        "status": "registered",
        "status_label": "已受理待派单",
    }
    order = db.get(Order, uuid.UUID(body["order_id"]))
    assert order is not None
    assert (order.channel, order.external_ref, order.source_token_id) == (
        "police_110",
        "J44190020260930000123",
        token_id,
    )
    assert (order.requester_name, order.requester_phone) == ("李女士", "13912345678")
    case = db.get(Case, order.id)
    assert case is not None
    assert (case.request_type, case.category, case.urgency) == ("help", "urban", "normal")
    # 求助: dispatch within 10 minutes.
    assert case.due_at == START + timedelta(minutes=10)
    timeline = api("dispatcher").get(f"/api/v1/orders/{order.id}/timeline").json()
    assert [(t["action"], t["label"]) for t in timeline] == [
        ("register", "受理"),
        ("police_110", "110 警情分流"),
    ]
    assert timeline[0]["data"] == {"channel": "police_110", "external_ref": "J44190020260930000123"}
    assert timeline[1]["note"] == NOTE_110
    assert timeline[1]["data"] == {
        "incident_number": "J44190020260930000123",
        "three_way_call": True,
        "note": "已告知来电人由 12345 跟进",
    }
    assert timeline[1]["actor_name"] == "令牌:市公安局 110 警务平台"


def test_a_call_without_three_way_call_or_name_says_so(
    db: Session, api: Api, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    body = {**INCIDENT, "three_way_call": False, "note": None}
    del body["caller_name"]
    response = police.post(PUSH, json=body)
    assert response.status_code == 201, response.text
    order = db.get(Order, uuid.UUID(response.json()["order_id"]))
    assert order is not None
    assert order.requester_name == "110来电人"
    note = db.execute(
        select(CaseEvent.note).where(
            CaseEvent.case_id == order.id, CaseEvent.action == "police_110"
        )
    ).scalar_one()
    assert note == "110 警情编号：J44190020260930000123；未进行三方通话"


def test_the_same_incident_pushed_twice_is_one_order(
    db: Session, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    first = police.post(PUSH, json=INCIDENT)
    assert first.status_code == 201, first.text
    again = police.post(PUSH, json={**INCIDENT, "content": "重复推送（内容有补充）"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert case_count(db) == 1
    # Another incident is another order.
    other = police.post(PUSH, json={**INCIDENT, "incident_number": "J44190020260930000124"})
    assert other.status_code == 201
    assert other.json()["number"] == "GD20260930000002"
    assert case_count(db) == 2


def test_a_push_repeated_with_its_idempotency_key_gets_the_first_answer(
    db: Session, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    headers = {"Idempotency-Key": "push-0001"}
    first = police.post(PUSH, json=INCIDENT, headers=headers)
    second = police.post(PUSH, json=INCIDENT, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    other = police.post(PUSH, json={**INCIDENT, "note": "改了"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_mismatch"
    assert case_count(db) == 1


def test_110_reads_back_progress_of_its_order(
    db: Session, api: Api, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    pushed = police.post(PUSH, json=INCIDENT).json()
    order_id, number = pushed["order_id"], pushed["number"]
    act(api, "dispatcher", order_id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)), note="属地")
    api("calltaker").post(f"/api/v1/orders/{order_id}/reveal")  # internal: 110 never sees it
    act(api, "dc.handler", order_id, "sign_for")

    response = police.get(f"{PUSH}/{number}")
    assert response.status_code == 200, response.text
    read = response.json()
    timeline = read.pop("timeline")
    assert read == {
        "order_id": order_id,
        "number": "GD20260930000001",
        "incident_number": "J44190020260930000123",
        "status": "handling",
        "status_label": "办理中",
        "lead_unit_name": "东城街道",
        # 求助 is handled in two working days from the next working day after National
        # Day: 8 and 9 October, closing at 17:30 Beijing time.
        "due_at": "2026-10-09T09:30:00Z",
        "reply_text": None,
        "replied_at": None,
        "closed_at": None,
    }
    assert [(t["seq"], t["action"], t["to_status"], t["unit_name"]) for t in timeline] == [
        (1, "register", "registered", "东莞市公安局"),
        (2, "police_110", None, "东莞市公安局"),
        (3, "dispatch", "dispatched", "东城街道"),
        (5, "sign_for", "handling", "东城街道"),
    ]
    assert [t["note"] for t in timeline] == [None, NOTE_110, None, None]
    assert all(set(t) == {
        "seq", "at", "action", "label", "from_status", "to_status", "unit_name", "note"
    } for t in timeline)  # fmt: skip
    assert "13912345678" not in response.text
    assert "吴涛" not in response.text  # no staff names either

    act(api, "dc.handler", order_id, "reply", note="已约谈施工方，夜间停止施工。")
    read = police.get(f"{PUSH}/{number}").json()
    assert (read["status"], read["reply_text"]) == ("replied", "已约谈施工方，夜间停止施工。")
    assert read["replied_at"] == "2026-09-30T01:00:00Z"
    assert read["timeline"][-1]["note"] == "已约谈施工方，夜间停止施工。"
    # The incident number finds it too.
    by_incident = police.get(f"{PUSH}/J44190020260930000123")
    assert by_incident.status_code == 200
    assert by_incident.json()["number"] == number


def test_another_partner_cannot_read_it(
    db: Session, api: Api, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    number = police.post(PUSH, json=INCIDENT).json()["number"]
    other, _ = partner(name="市应急管理局联动平台")
    for ref in (number, "J44190020260930000123", "GD20990101000001"):
        response = other.get(f"{PUSH}/{ref}")
        assert response.status_code == 404, ref
        assert response.json()["error"]["code"] == "not_found"
    # Nor does a person: the bridge is for the partner system that pushed the order.
    assert api("calltaker").get(f"{PUSH}/{number}").status_code == 403


def test_a_town_cannot_push(db: Session, api: Api, frozen: FrozenClock) -> None:
    for who in ("dc.handler", "calltaker"):
        response = api(who).post(PUSH, json=INCIDENT)
        assert response.status_code == 403, who
        assert response.json()["error"]["code"] == "permission_denied"
    assert case_count(db) == 0


def test_bad_pushes_are_refused(db: Session, partner: Partner, frozen: FrozenClock) -> None:
    police, _ = partner()
    for problem in (
        {"incident_number": ""},
        {"incident_number": "J" * 65},
        {"caller_phone": "call-me"},
        {"category": "nonsense"},
        {"content": ""},
        {"unknown": 1},
    ):
        response = police.post(PUSH, json={**INCIDENT, **problem})
        assert response.status_code == 422, problem
    assert case_count(db) == 0


def test_the_webhook_is_validated_and_replaced(
    db: Session, api: Api, partner: Partner, frozen: FrozenClock
) -> None:
    police, token_id = partner()
    for url in (
        "ftp://110.example.gov.cn/hook",
        "javascript:alert(1)",
        "https://",
        "https://user:pw@110.example.gov.cn/hook",
        "https://110.example.gov.cn/hook with space",
        "https://110.example.gov.cn/" + "a" * 500,
    ):
        response = police.put(WEBHOOK, json={"url": url, "secret": SECRET})
        assert response.status_code == 422, url
    short = police.put(WEBHOOK, json={"url": "https://110.example.gov.cn/h", "secret": "short"})
    assert short.status_code == 422
    assert police.get(WEBHOOK).status_code == 404

    first = police.put(WEBHOOK, json={"url": "https://110.example.gov.cn/a", "secret": SECRET})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "url": "https://110.example.gov.cn/a",
        "events": ["status"],
        "active": True,
        "created_at": "2026-09-30T01:00:00Z",
    }
    second = police.put(
        WEBHOOK,
        json={
            "url": "http://10.20.30.40:8080/b",
            "secret": SECRET,
            "events": ["transfer", "status"],
        },
    )
    assert second.status_code == 200
    hooks = db.execute(select(Webhook).where(Webhook.token_id == token_id)).scalars().all()
    assert [(h.url, h.events, h.secret) for h in hooks] == [
        ("http://10.20.30.40:8080/b", ["status", "transfer"], SECRET)
    ]
    assert police.get(WEBHOOK).json()["url"] == "http://10.20.30.40:8080/b"
    audit = db.execute(
        select(AuditEntry.after).where(AuditEntry.action == "hotline.webhook.set")
    ).scalars()
    assert [a["url"] for a in audit] == [
        "https://110.example.gov.cn/a",
        "http://10.20.30.40:8080/b",
    ]
    assert SECRET not in json.dumps(
        [a.after for a in db.execute(select(AuditEntry)).scalars() if a.after]
    )
    # A person cannot register one.
    person = api("dc.admin").put(WEBHOOK, json={"url": "https://x.example/h", "secret": SECRET})
    assert person.status_code == 403
    assert police.delete(WEBHOOK).status_code == 204
    assert police.get(WEBHOOK).status_code == 404


def test_status_events_reach_the_webhook_signed_and_in_order(
    db: Session,
    api: Api,
    partner: Partner,
    receiver: Receiver,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
) -> None:
    police, _ = partner()
    assert police.put(WEBHOOK, json={"url": receiver.url, "secret": SECRET}).status_code == 200
    pushed = police.post(PUSH, json=INCIDENT).json()
    frozen.advance(timedelta(minutes=1))
    act(api, "dispatcher", pushed["order_id"], "dispatch", unit_id=str(unit_id(db, DONGCHENG)))
    assert receiver.requests == []  # nothing leaves before the worker runs

    assert run_jobs(factory, settings) == 3  # two deliveries and the requester's SMS
    assert [path for path, _, _ in receiver.requests] == ["/hooks/12345", "/hooks/12345"]
    assert receiver.bodies() == [
        {
            "event": "status",
            "number": "GD20260930000001",
            "external_ref": "J44190020260930000123",
            "status": "registered",
            "status_label": "已受理待派单",
            "at": "2026-09-30T01:00:00Z",
            "action": "register",
            "seq": 1,
        },
        {
            "event": "status",
            "number": "GD20260930000001",
            "external_ref": "J44190020260930000123",
            "status": "dispatched",
            "status_label": "待签收",
            "at": "2026-09-30T01:01:00Z",
            "action": "dispatch",
            "seq": 3,
        },
    ]
    for _, headers, raw in receiver.requests:
        assert headers["X-Zhengshu-Signature"] == signature(raw)
        assert headers["X-Zhengshu-Event"] == "status"
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert uuid.UUID(headers["X-Zhengshu-Delivery"])
        assert headers["X-Zhengshu-Signature"] != signature(raw, "another-secret-entirely")
    assert [j.status for j in webhook_jobs(db)] == [JobStatus.DONE, JobStatus.DONE]


def test_a_refused_delivery_is_retried_with_the_same_delivery_id(
    db: Session,
    api: Api,
    partner: Partner,
    receiver: Receiver,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
) -> None:
    police, _ = partner()
    police.put(WEBHOOK, json={"url": receiver.url, "secret": SECRET})
    receiver.status = 503
    police.post(PUSH, json=INCIDENT)
    run_jobs(factory, settings)
    [job] = webhook_jobs(db)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert "HTTP 503" in (job.last_error or "")
    assert job.run_at == START + timedelta(seconds=10)

    receiver.status = 200
    assert run_jobs(factory, settings) == 0  # not due yet
    frozen.advance(timedelta(seconds=10))
    assert run_jobs(factory, settings) == 1
    [job] = webhook_jobs(db)
    assert (job.status, job.attempts) == (JobStatus.DONE, 2)
    (_, first, raw1), (_, second, raw2) = receiver.requests
    assert first["X-Zhengshu-Delivery"] == second["X-Zhengshu-Delivery"]
    assert raw1 == raw2
    assert second["X-Zhengshu-Signature"] == signature(raw2)


def test_a_transfer_to_110_is_announced_to_the_110_platform(
    db: Session,
    api: Api,
    partner: Partner,
    receiver: Receiver,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
) -> None:
    police, _ = partner()
    police.put(WEBHOOK, json={"url": receiver.url, "secret": SECRET, "events": ["transfer"]})
    # A partner that only follows its own orders' status hears nothing of it.
    other, _ = partner(name="市应急管理局联动平台")
    other.put(WEBHOOK, json={"url": receiver.url + "/other", "secret": SECRET})
    registered = api("calltaker").post(
        "/api/v1/orders",
        json={
            "requester_name": "王先生",
            "requester_phone": "13800138000",
            "address": "南城街道某出租屋",
            "content": "邻居家中传出打斗和呼救声。",
            "request_type": "report",
            "category": "public_security",
            "urgency": "emergency",
        },
    )
    assert registered.status_code == 201, registered.text
    order = registered.json()
    assert webhook_jobs(db) == []  # 12345's own order: no status events for anyone
    frozen.advance(timedelta(minutes=2))
    act(
        api,
        "calltaker",
        order["id"],
        "transfer_emergency",
        target="110",
        note="疑似人身伤害，已移交 110",
    )
    [job] = webhook_jobs(db)
    assert job.payload["event"] == "transfer"

    run_jobs(factory, settings)
    [(path, headers, raw)] = receiver.requests
    assert path == "/hooks/12345"
    assert headers["X-Zhengshu-Event"] == "transfer"
    assert headers["X-Zhengshu-Signature"] == signature(raw)
    assert json.loads(raw) == {
        "event": "transfer",
        "number": "GD20260930000001",
        "external_ref": None,
        "status": "transferred",
        "status_label": "已移交 110/119/120",
        "at": "2026-09-30T01:02:00Z",
        "action": "transfer_emergency",
        "seq": 2,
        "target": "110",
        "note": "疑似人身伤害，已移交 110",
        "order": {
            "title": "邻居家中传出打斗和呼救声。",
            "content": "邻居家中传出打斗和呼救声。",
            "request_type": "report",
            "category": "public_security",
            "category_name": "公安政法",
            "urgency": "emergency",
            "channel": "phone",
            "address": "南城街道某出租屋",
            "location": "南城街道",  # placed from the address by smart dispatch
            "requester_name": "王先生",
            "requester_phone": "13800138000",
            "registered_at": "2026-09-30T01:00:00Z",
        },
    }


def test_a_transfer_to_120_is_not_sent_to_110(
    db: Session, api: Api, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    police.put(WEBHOOK, json={"url": "https://110.example.gov.cn/h", "secret": SECRET})
    police.put(
        WEBHOOK,
        json={"url": "https://110.example.gov.cn/h", "secret": SECRET, "events": ["transfer"]},
    )
    order = (
        api("calltaker")
        .post(
            "/api/v1/orders",
            json={
                "requester_name": "赵女士",
                "requester_phone": "13800138001",
                "content": "老人摔倒",
            },
        )
        .json()
    )
    act(api, "calltaker", order["id"], "transfer_emergency", target="120", note="转 120 急救")
    assert webhook_jobs(db) == []


def test_an_incident_pushed_before_through_the_orders_api_is_found(
    db: Session, partner: Partner, frozen: FrozenClock
) -> None:
    police, _ = partner()
    earlier = police.post(
        "/api/v1/orders",
        json={
            "channel": "police_110",
            "requester_name": "李女士",
            "requester_phone": "13912345678",
            "content": "楼上住户深夜装修。",
            "external_ref": "J44190020260930000123",
        },
    )
    assert earlier.status_code == 201, earlier.text
    response = police.post(PUSH, json=INCIDENT)
    assert response.status_code == 200
    assert response.json()["order_id"] == earlier.json()["id"]
    assert police.post(PUSH, json=INCIDENT).status_code == 200
    assert case_count(db) == 1
