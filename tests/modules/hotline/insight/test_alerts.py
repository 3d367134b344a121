"""Early warnings as objects: raised at intake, delivered, acknowledged, handled or
dismissed (compare-and-set), sent on through the outbox, scoped by town, on pages."""

from __future__ import annotations

import json
import timeit
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from tests.web.helpers import get, login, post
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from zhengshu.kernel.jobs import Job
from zhengshu.modules.hotline import events, importer, notify, service
from zhengshu.modules.hotline.insight import alert_scan, alerts, extreme
from zhengshu.modules.hotline.insight.alert_models import Alert, AlertRecipient
from zhengshu.modules.hotline.models import Notification, Order, Webhook
from zhengshu.modules.hotline.schemas import OrderCreate
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.models import ApiToken, Person
from zhengshu.tasks import build_registry

Api = Callable[[str], TestClient]
DONGCHENG = "441900003000"
SHIJIE = "441900101000"
SUPERVISOR = "督办员 张建国(supervisor)"  # how a person signs their actions
THREAT = "老板拖欠工资半年，再不解决我就去跳楼。"


@pytest.fixture
def config(settings) -> HotlineConfig:  # type: ignore[no-untyped-def]
    return HotlineConfig.from_settings(settings)


def _register(
    db: Session,
    config: HotlineConfig,
    content: str,
    *,
    town: str | None = DONGCHENG,
    smart: bool = True,
    phone: str = "13800138000",
) -> tuple[Case, Order]:
    return service.register_order(
        db,
        system_principal("话务员"),
        config=config,
        data=OrderCreate(
            requester_name="陈先生",
            requester_phone=phone,
            content=content,
            category="labour",
            location_unit_id=unit_id(db, town) if town else None,
        ),
        smart=smart,
    )


def _alerts_of(db: Session, case: Case) -> list[Alert]:
    return list(db.scalars(select(Alert).where(Alert.case_id == case.id)))


def _alert(db: Session, config: HotlineConfig, town: str | None = DONGCHENG) -> Alert:
    case, _ = _register(db, config, THREAT, town=town)
    (alert,) = _alerts_of(db, case)
    return alert


def _set_phone(db: Session, username: str, phone: str | None) -> None:
    db.execute(update(Person).where(Person.username == username).values(phone=phone))


# --- raising at intake -----------------------------------------------------------------------


def test_a_threat_at_intake_raises_one_warning_linked_to_the_order(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    _set_phone(db, "supervisor", "13912345678")
    case, _order = _register(db, config, THREAT)
    (alert,) = _alerts_of(db, case)
    assert (alert.kind, alert.status, alert.level, alert.version) == ("extreme", "raised", 3, 1)
    assert alert.dedupe_key == f"extreme:{case.id}"
    assert alert.town_unit_id == unit_id(db, DONGCHENG)
    assert "跳楼" in alert.title
    assert "\n" not in alert.title
    assert alert.matches is not None
    assert alert.matches[0]["term"] == "跳楼"
    # the order's timeline says so
    notes = db.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "alert_raised")
    ).all()
    assert [n.label for n in notes] == ["触发舆情预警"]
    # delivered to the city's supervisor and leader (no town person holds those roles)
    rows = {r.person_name: r for r in alerts.recipients(db, alert.id)}
    assert sorted(r.role for r in rows.values()) == ["leader", "supervisor"]
    supervisor = rows["督办员 张建国"]
    assert supervisor.sms_status == "queued"
    assert supervisor.read_at is None
    sms = db.get(Notification, supervisor.notification_id)
    assert sms is not None
    assert sms.recipient == "13912345678"
    assert sms.body.startswith("【东莞12345】舆情预警（紧急）")
    assert sms.case_id == case.id
    assert alerts.NOTIFY_JOB == notify.JOB
    # audited
    audit = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(alert.id))).all()
    assert audit == ["hotline.alert.raise"]
    # listed as the order behind it
    (linked,) = alerts.linked_orders(db, alert)
    assert linked.number == case.number


@pytest.mark.parametrize(
    "text",
    [
        "我不会跳楼的，只是想快点拿到工资。",
        "听说去年有人在这栋楼跳楼，希望物业加装护栏。",
        "小区路灯坏了，晚上很黑，请尽快维修。",
    ],
)
def test_negated_news_like_and_plain_texts_raise_nothing(
    db: Session, config: HotlineConfig, text: str
) -> None:
    case, _ = _register(db, config, text)
    assert _alerts_of(db, case) == []
    assert (
        db.scalar(
            select(func.count())
            .select_from(CaseEvent)
            .where(CaseEvent.case_id == case.id, CaseEvent.action == "alert_raised")
        )
        == 0
    )


def test_the_same_order_never_raises_twice(db: Session, config: HotlineConfig) -> None:
    case, order = _register(db, config, THREAT)
    assert alert_scan.on_intake(db, case, order) is None
    assert len(_alerts_of(db, case)) == 1


def test_the_historical_import_raises_no_warning(db: Session, config: HotlineConfig) -> None:
    before = db.scalar(select(func.count()).select_from(Alert))
    importer.import_row(
        db,
        system_principal("导入"),
        config=config,
        row=importer.ImportRow(
            ref="H1",
            title="讨薪",
            content=THREAT,
            time=None,
            requester="王先生",
            phone=None,
            reply=None,
            reply_time=None,
        ),
        number=1,
        job_id="j",
        filename="history.csv",
    )
    assert db.scalar(select(func.count()).select_from(Alert)) == before


def test_a_group_incident_without_a_number_of_people_raises_nothing(
    db: Session, config: HotlineConfig
) -> None:
    calm, _ = _register(db, config, "门口有人聚集聊天，声音有点大。")
    crowd, _ = _register(db, config, "三十多名工人聚集在厂门口讨薪，情绪激动。")
    assert _alerts_of(db, calm) == []
    (alert,) = _alerts_of(db, crowd)
    assert alert.level == 2
    assert "群体事件" in alert.title


def test_the_scan_is_cheap_beside_a_registration() -> None:
    text = "小区楼下的垃圾桶满了好几天没人清理，天气热臭味很大，希望环卫尽快处理。" * 3
    extreme.scan(text)  # load the list once
    runs = 2000
    per_call_ms = timeit.timeit(lambda: extreme.scan(text), number=runs) / runs * 1000
    print(f"extreme.scan: {per_call_ms:.3f} ms per order")
    assert per_call_ms < 5


# --- the lifecycle ---------------------------------------------------------------------------


def test_acknowledge_then_handle_with_a_note(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    alert = _alert(db, config)
    supervisor = as_user("supervisor")
    alerts.acknowledge(db, supervisor, alert.id, version=1)
    assert (alert.status, alert.version, alert.acknowledged_by) == (
        "acknowledged",
        2,
        SUPERVISOR,
    )
    mine = db.scalar(
        select(AlertRecipient).where(
            AlertRecipient.alert_id == alert.id, AlertRecipient.person_id == supervisor.id
        )
    )
    assert mine is not None
    assert mine.acknowledged_at is not None
    assert mine.read_at is not None
    with pytest.raises(InvalidInput) as empty:
        alerts.handle(db, supervisor, alert.id, note="  ", version=2)
    assert empty.value.message_zh == "请填写处置情况说明"
    alerts.handle(db, supervisor, alert.id, note="已联系劳动监察到场处置", version=2)
    assert (alert.status, alert.version, alert.close_note) == (
        "handled",
        3,
        "已联系劳动监察到场处置",
    )
    assert alert.closed_by == SUPERVISOR
    assert alert.closed_at is not None
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity_id == str(alert.id))
        .order_by(AuditEntry.seq)
    ).all()
    assert actions == ["hotline.alert.raise", "hotline.alert.acknowledge", "hotline.alert.handle"]
    # handled is final
    for act in (
        lambda: alerts.acknowledge(db, supervisor, alert.id),
        lambda: alerts.dismiss(db, supervisor, alert.id, reason="误报"),
        lambda: alerts.handle(db, supervisor, alert.id, note="再来"),
        lambda: alerts.forward(db, supervisor, alert.id, destination="police"),
    ):
        with pytest.raises(Conflict) as refused:
            act()
        assert refused.value.code == "wrong_state"
        assert refused.value.message_zh.startswith("预警当前为“已处置”")


def test_dismiss_needs_a_reason_and_is_final(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    alert = _alert(db, config)
    supervisor = as_user("supervisor")
    with pytest.raises(InvalidInput) as empty:
        alerts.dismiss(db, supervisor, alert.id, reason=None)
    assert empty.value.message_zh == "请填写排除理由"
    alerts.dismiss(db, supervisor, alert.id, reason="来电人情绪发泄，已回访确认无风险")
    assert (alert.status, alert.version) == ("dismissed", 2)
    assert alert.acknowledged_by == SUPERVISOR  # dismissing straight away signs for it
    with pytest.raises(Conflict) as again:
        alerts.acknowledge(db, supervisor, alert.id)
    assert again.value.message_zh == "预警当前为“已排除”，不能签收"


def test_a_stale_version_or_a_concurrent_writer_gets_409(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    alert = _alert(db, config)
    supervisor = as_user("supervisor")
    with pytest.raises(Conflict) as stale:
        alerts.acknowledge(db, supervisor, alert.id, version=7)
    assert stale.value.message_zh == "预警已被他人处理，请刷新后重试"
    # Someone else acknowledges between our read and our write: the row moved on while
    # our copy still says raised / version 1, so the compare-and-set matches nothing.
    db.execute(
        update(Alert)
        .where(Alert.id == alert.id)
        .values(status="acknowledged", version=2, acknowledged_by="值班领导")
        .execution_options(synchronize_session=False)
    )
    assert alert.status == "raised"
    assert alert.version == 1
    with pytest.raises(Conflict) as lost:
        alerts.acknowledge(db, supervisor, alert.id)
    assert lost.value.code == "stale_version"
    assert lost.value.message_zh == "预警已被他人处理，请刷新后重试"
    db.refresh(alert)
    assert (alert.status, alert.version, alert.acknowledged_by) == ("acknowledged", 2, "值班领导")


def test_reading_and_acting_need_their_permissions(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    alert = _alert(db, config)
    with pytest.raises(PermissionDenied):
        alerts.get_alert(db, as_user("dispatcher"), alert.id)
    leader = as_user("leader")  # reads, does not act
    assert alerts.get_alert(db, leader, alert.id) is alert
    with pytest.raises(PermissionDenied):
        alerts.acknowledge(db, leader, alert.id)


def test_a_town_sees_only_its_own_warnings(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    mine = _alert(db, config, DONGCHENG)
    theirs = _alert(db, config, SHIJIE)
    city = _alert(db, config, None)
    # The town's leader hears of the town's warnings; handling them is the supervisors'.
    dc_leader = as_user("dc.leader")
    rows, total = alerts.list_alerts(db, dc_leader, limit=200)
    ids = {a.id for a in rows}
    assert mine.id in ids
    assert theirs.id not in ids
    assert city.id not in ids
    assert total == len(rows)
    assert alerts.get_alert(db, dc_leader, mine.id).id == mine.id
    with pytest.raises(NotFound):
        alerts.get_alert(db, dc_leader, theirs.id)
    with pytest.raises(PermissionDenied):
        alerts.acknowledge(db, dc_leader, mine.id)
    with pytest.raises(PermissionDenied):
        alerts.list_alerts(db, as_user("dc.admin"), limit=200)
    everything, _ = alerts.list_alerts(db, as_user("supervisor"), limit=200)
    assert {mine.id, theirs.id, city.id} <= {a.id for a in everything}


def test_summary_for_the_dashboard(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    supervisor = as_user("supervisor")
    before = alerts.summary(db, supervisor)
    first, second, third = (_alert(db, config) for _ in range(3))
    alerts.acknowledge(db, supervisor, second.id)
    alerts.dismiss(db, supervisor, third.id, reason="误报")
    after = alerts.summary(db, supervisor, latest=2)
    assert after.visible
    assert after.by_status["raised"] == before.by_status["raised"] + 1
    assert after.by_status["acknowledged"] == before.by_status["acknowledged"] + 1
    assert after.open_count == before.open_count + 2
    assert after.urgent_open == before.urgent_open + 2
    assert [b.id for b in after.latest] == [second.id, first.id]
    assert after.latest[0].status_label == "已签收"
    assert after.latest[0].level_label == "紧急"
    assert alerts.summary(db, as_user("dispatcher")) == alerts.AlertSummary(visible=False)


# --- sending on ------------------------------------------------------------------------------


def _partner_hook(db: Session, events_: list[str]) -> Webhook:
    token = ApiToken(
        id=uuid.uuid4(),
        name="公安预警接口",
        kind="partner",
        prefix=uuid.uuid4().hex[:12],
        secret_hash="x" * 64,
        person_id=None,
        unit_id=unit_id(db, DONGCHENG),
        roles=["partner"],
        created_by="测试",
        created_at=alerts.clock.now(),
    )
    db.add(token)
    db.flush()
    hook = Webhook(
        id=uuid.uuid4(),
        token_id=token.id,
        url="https://police.example/alerts",
        secret="s3cret",
        events=events_,
        active=True,
        created_at=alerts.clock.now(),
    )
    db.add(hook)
    db.flush()
    return hook


def test_forward_queues_a_signed_outbox_delivery(
    db: Session,
    config: HotlineConfig,
    as_user: Callable[[str], Principal],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = _partner_hook(db, ["alert.forwarded.police"])
    alert = _alert(db, config)
    supervisor = as_user("supervisor")
    (row,) = alerts.forward(
        db, supervisor, alert.id, destination="police", note="疑似极端行为，请关注", version=1
    )
    assert (row.state, row.webhook_id, row.forwarded_by) == ("queued", hook.id, SUPERVISOR)
    assert alert.version == 2
    assert alert.status == "raised"
    job = db.scalar(
        select(Job).where(Job.name == alerts.FORWARD_JOB).order_by(Job.created_at.desc())
    )
    assert job is not None
    assert job.payload == {"forward_id": str(row.id), "attempt": 1}
    with pytest.raises(Conflict) as twice:
        alerts.forward(db, supervisor, alert.id, destination="police")
    assert twice.value.message_zh == "该预警已转送公安"
    with pytest.raises(InvalidInput) as nowhere:
        alerts.forward(db, supervisor, alert.id, destination="fbi")
    assert nowhere.value.message_zh == "请选择转送对象：公安或网信"
    # the cyberspace office has no endpoint: recorded, handed over by other means
    (other,) = alerts.forward(db, supervisor, alert.id, destination="cyberspace")
    assert (other.state, other.webhook_id) == ("no_endpoint", None)

    # the worker's handler, as registered, signs and posts like every webhook
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    def fake_post(url: str, raw: bytes, headers: dict[str, str], timeout: float = 5) -> int:
        sent.append((url, raw, headers))
        return 200

    monkeypatch.setattr(events, "post", fake_post)
    build_registry(settings).handlers[alerts.FORWARD_JOB](db, job.payload)
    ((url, raw, headers),) = sent
    assert url == "https://police.example/alerts"
    assert headers[events.EVENT_HEADER] == "alert.forwarded"
    assert headers[events.DELIVERY_HEADER] == str(row.delivery)
    assert headers[events.SIGNATURE_HEADER] == events.sign("s3cret", raw)
    body = json.loads(raw)
    assert body["destination"] == "police"
    assert body["alert"]["id"] == str(alert.id)
    assert row.state == "delivered"
    assert row.attempts == 1
    assert row.delivered_at is not None


def test_a_failed_forward_is_retried_then_marked_failed(
    db: Session, config: HotlineConfig, as_user: Callable[[str], Principal]
) -> None:
    _partner_hook(db, ["alert.forwarded"])
    alert = _alert(db, config)
    (row,) = alerts.forward(db, as_user("supervisor"), alert.id, destination="cyberspace")

    def refuse(url: str, secret: str, body: dict[str, Any], delivery: str) -> None:
        raise events.WebhookFailed("HTTP 503")

    run = alerts.forward_job(refuse)
    run(db, {"forward_id": str(row.id), "attempt": 1})
    assert (row.state, row.attempts, row.last_error) == ("queued", 1, "WebhookFailed: HTTP 503")
    retry = db.scalar(
        select(Job).where(Job.name == alerts.FORWARD_JOB).order_by(Job.run_at.desc()).limit(1)
    )
    assert retry is not None
    assert retry.payload["attempt"] == 2
    run(db, {"forward_id": str(row.id), "attempt": alerts.FORWARD_MAX_ATTEMPTS})
    assert row.state == "failed"


# --- HTTP ------------------------------------------------------------------------------------


def test_api_lifecycle_and_errors(db: Session, config: HotlineConfig, api: Api) -> None:
    alert = _alert(db, config)
    db.commit()
    sup = api("supervisor")
    listed = sup.get("/api/v1/alerts", params={"status": "raised", "kind": "extreme"})
    assert listed.status_code == 200
    assert str(alert.id) in {item["id"] for item in listed.json()["items"]}
    one = sup.get(f"/api/v1/alerts/{alert.id}").json()
    assert one["orders"][0]["id"] == str(alert.case_id)
    mine = [r for r in one["recipients"] if r["person_name"] == "督办员 张建国"]
    assert mine[0]["read_at"] is not None  # opening it is the read receipt
    acked = sup.post(f"/api/v1/alerts/{alert.id}/acknowledge", json={"version": 1})
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    again = sup.post(f"/api/v1/alerts/{alert.id}/acknowledge", json={"version": 1})
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "预警已被他人处理，请刷新后重试"
    no_note = sup.post(f"/api/v1/alerts/{alert.id}/handle", json={"version": 2})
    assert no_note.status_code == 400
    assert no_note.json()["error"]["message"] == "请填写处置情况说明"
    sent = sup.post(f"/api/v1/alerts/{alert.id}/forward", json={"destination": "police"})
    assert sent.status_code == 200
    assert sent.json()["forwarded_to"] == ["police"]
    done = sup.post(f"/api/v1/alerts/{alert.id}/handle", json={"note": "已处置"})
    assert done.json()["status"] == "handled"
    assert done.json()["version"] == 4
    assert api("dispatcher").get("/api/v1/alerts").status_code == 403
    assert (
        api("leader").post(f"/api/v1/alerts/{alert.id}/dismiss", json={"reason": "x"}).status_code
        == 403
    )
    assert sup.get(f"/api/v1/alerts/{uuid.uuid4()}").status_code == 404
    assert sup.get("/api/v1/alerts", params={"status": "nonsense"}).status_code == 422


def test_api_scoping_by_town(db: Session, config: HotlineConfig, api: Api) -> None:
    mine = _alert(db, config, DONGCHENG)
    theirs = _alert(db, config, SHIJIE)
    db.commit()
    dc = api("dc.leader")
    ids = {item["id"] for item in dc.get("/api/v1/alerts", params={"limit": 200}).json()["items"]}
    assert str(mine.id) in ids
    assert str(theirs.id) not in ids
    assert dc.get(f"/api/v1/alerts/{theirs.id}").status_code == 404


def test_pages_render_and_act(db: Session, config: HotlineConfig, client: TestClient) -> None:
    alert = _alert(db, config)
    db.commit()
    csrf = login(client, "supervisor")
    listing = get(client, "/hotline/alerts")
    assert listing.status == 200
    assert alert.title in listing.dom.text
    newest = listing.dom.find_all("tr", "alert-row")[0]
    assert "l3" in newest.classes  # coloured by severity
    assert newest.find_all("span", "alert-level")[0].text == "紧急"
    assert get(client, "/hotline/alerts?status=handled&kind=spike").status == 200
    detail = get(client, f"/hotline/alerts/{alert.id}")
    assert detail.status == 200
    assert "签收" in detail.dom.text
    assert "推送对象" in detail.dom.text
    response = post(
        client,
        f"/hotline/alerts/{alert.id}/forward",
        {"csrf_token": csrf, "destination": "police", "version": "1"},
    )
    assert response.status_code == 303
    shown = get(client, f"/hotline/alerts/{alert.id}")
    assert "已转送：公安" in shown.dom.text
    facts = shown.definitions()
    assert facts["类型"] == "极端事件"
    assert facts["镇街"] == "东城街道"
    assert facts["命中词"] == "危及生命·跳楼"
    response = post(
        client,
        f"/hotline/alerts/{alert.id}/dismiss",
        {"csrf_token": csrf, "reason": "误报", "version": "2"},
    )
    assert response.status_code == 303
    db.refresh(alert)
    assert alert.status == "dismissed"
    assert alert.close_note == "误报"
    stale = post(
        client,
        f"/hotline/alerts/{alert.id}/handle",
        {"csrf_token": csrf, "note": "x", "version": "2"},
    )
    assert stale.status_code == 409
