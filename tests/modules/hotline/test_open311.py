"""Open311 GeoReport v2: every answer validates against the standard's schemas, XML and
JSON carry the same data, requests round-trip into 12345 orders, and the public feed
never shows who asked."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import frozen_at, unit_id
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.models import Notification, Order
from zhengshu.org.roles import Role
from zhengshu.org.service import issue_partner_token, revoke_token

Api = Callable[[str], TestClient]

SCHEMA_DIR = Path(__file__).resolve().parents[3].parent / "shared/data/open311"
BASE = "/open311/v2"
CITY = "441900000000"
DONGCHENG = "441900003000"
# Wednesday 30 September 2026, 09:00 Beijing time.
START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
PHONE = "13912345678"
NAME = "陈小敏"
ISO_BEIJING = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
DATE_FIELDS = ("requested_datetime", "updated_datetime", "expected_datetime")


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


@pytest.fixture(scope="module")
def validate() -> Callable[[str, Any], None]:
    """``validate("requests.json", body)`` against the shared GeoReport schemas."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT202012

    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"GeoReport schemas not found at {SCHEMA_DIR}")
    schemas = {p.name: json.loads(p.read_text("utf-8")) for p in SCHEMA_DIR.glob("*.json")}
    registry = referencing.Registry().with_resources(
        (name, referencing.Resource.from_contents(schema, default_specification=DRAFT202012))
        for name, schema in schemas.items()
        if name != "swagger.json"
    )

    def check(name: str, body: Any) -> None:
        validator = jsonschema.Draft202012Validator(
            schemas[name], registry=registry, format_checker=jsonschema.FormatChecker()
        )
        validator.validate(body)
        for item in body if isinstance(body, list) else [body]:
            for key in DATE_FIELDS:
                if item.get(key) is not None:
                    assert ISO_BEIJING.match(item[key]), (key, item[key])

    return check


@pytest.fixture
def key(db: Session) -> str:
    """An Open311 api_key issued to a citizen app, as an administrator would."""
    plaintext, _ = issue_partner_token(
        db,
        system_principal(),
        name="市民App",
        kind="open311",
        unit_id=unit_id(db, CITY),
        roles=[Role.PARTNER],
    )
    db.commit()
    return plaintext


# --- helpers -----------------------------------------------------------------------------


def form(key: str, **overrides: str) -> dict[str, str]:
    return {
        "api_key": key,
        "service_code": "urban",
        "description": f"岗贝社区路口井盖缺失，夜间很危险。联系人{NAME}，电话 {PHONE}。",
        "address_string": "东城街道岗贝社区东城中路 88 号",
        "lat": "23.0205",
        "long": "113.7518",
        "first_name": "小敏",
        "last_name": "陈",
        "phone": PHONE,
        "email": "chen@example.com",
        "device_id": "device-1",
        "media_url": "https://img.example.com/manhole.jpg",
        **overrides,
    }


def post(client: TestClient, data: dict[str, str], fmt: str = "json") -> Response:
    return client.post(f"{BASE}/requests.{fmt}", data=data)


def parse_xml(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 - the server under test wrote it


def both(client: TestClient, path: str, **params: str) -> tuple[Any, ET.Element, str]:
    """GET ``path`` as JSON and as XML; returns the JSON, the XML root and both texts."""
    as_json = client.get(f"{BASE}/{path}.json", params=params)
    as_xml = client.get(f"{BASE}/{path}.xml", params=params)
    assert as_json.status_code == as_xml.status_code, (as_json.text, as_xml.text)
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_xml.headers["content-type"].startswith("text/xml")
    return as_json.json(), parse_xml(as_xml.content), as_json.text + as_xml.text


def same(value: Any, element: ET.Element) -> None:
    """The XML element carries exactly the JSON value (null is an empty element)."""
    if isinstance(value, dict):
        assert [child.tag for child in element] == list(value), element.tag
        for child in element:
            same(value[child.tag], child)
    elif isinstance(value, list):
        assert len(element) == len(value), element.tag
        for item, child in zip(value, element, strict=True):
            same(item, child)
    elif value is None:
        assert len(element) == 0
        assert not (element.text or "").strip(), element.tag
    elif isinstance(value, bool):
        assert element.text == ("true" if value else "false"), element.tag
    elif isinstance(value, float):
        assert float(element.text or "nan") == value, element.tag
    else:
        assert element.text == str(value), element.tag


def agree(root: ET.Element, root_tag: str, item_tag: str | None, body: Any) -> None:
    assert root.tag == root_tag
    if item_tag is not None:
        assert all(child.tag == item_tag for child in root)
    same(body, root)


def errors(response: Response, fmt: str, status: int) -> list[str]:
    """The GeoReport error list of a refusal, checked for shape; its descriptions."""
    assert response.status_code == status, response.text
    if fmt == "json":
        body = response.json()
        assert isinstance(body, list)
        assert body
        assert all(set(e) == {"code", "description"} for e in body)
        assert all(e["code"] == status for e in body)
        return [e["description"] for e in body]
    root = parse_xml(response.content)
    assert root.tag == "errors"
    assert [child.tag for child in root] == ["error"] * len(root)
    assert all(e.findtext("code") == str(status) for e in root)
    return [e.findtext("description") or "" for e in root]


def case_count(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Case)).scalar_one()


def order_of(db: Session, number: str) -> tuple[Case, Order]:
    case = db.execute(select(Case).where(Case.number == number)).scalar_one()
    order = db.get(Order, case.id)
    assert order is not None
    db.refresh(case)
    return case, order


def act(api: Api, who: str, order_id: object, action: str, **body: object) -> dict[str, Any]:
    response = api(who).post(f"/api/v1/orders/{order_id}/actions/{action}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- discovery and services --------------------------------------------------------------


def test_discovery_names_the_georeport_endpoint(client: TestClient) -> None:
    body, root, _ = both(client, "discovery")
    assert body["endpoints"] == [
        {
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": "http://testserver/open311/v2",
            "changeset": body["changeset"],
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }
    ]
    assert "12345" in body["contact"]
    agree(root, "discovery", None, body)


def test_services_are_the_hotline_categories(
    client: TestClient, validate: Callable[[str, Any], None]
) -> None:
    body, root, _ = both(client, "services")
    validate("services.json", body)
    assert [s["service_code"] for s in body] == list(categories())
    urban = next(s for s in body if s["service_code"] == "urban")
    assert urban == {
        "service_code": "urban",
        "service_name": "城市管理",
        "description": urban["description"],
        "metadata": False,
        "type": "realtime",
        "keywords": urban["keywords"],
        "group": "城市建设与管理",
    }
    assert "城市管理" in urban["description"]
    assert "垃圾" in urban["keywords"].split(",")
    agree(root, "services", "service", body)


def test_a_service_definition_has_no_extra_attributes(
    client: TestClient, validate: Callable[[str, Any], None]
) -> None:
    body, root, _ = both(client, "services/urban")
    validate("service-definition.json", body)
    assert body == {"service_code": "urban", "attributes": []}
    agree(root, "service_definition", None, body)
    for fmt in ("json", "xml"):
        response = client.get(f"{BASE}/services/potholes.{fmt}")
        assert "service_code" in errors(response, fmt, 404)[0]


# --- the round trip ----------------------------------------------------------------------


def test_a_posted_request_becomes_an_order_and_reads_back(
    client: TestClient,
    db: Session,
    key: str,
    frozen: FrozenClock,
    validate: Callable[[str, Any], None],
) -> None:
    response = post(client, form(key))
    assert response.status_code == 200, response.text
    [created] = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    assert created["service_request_id"] == "GD20260930000001"
    assert created["account_id"] is None
    assert "GD20260930000001" in created["service_notice"]
    assert "2026-09-30 09:10" in created["service_notice"]  # 求助: dispatch within 10 minutes

    case, order = order_of(db, "GD20260930000001")
    assert order.channel == "open311"
    assert order.requester_name == NAME
    assert order.requester_phone == PHONE
    assert order.address == "东城街道岗贝社区东城中路 88 号"
    assert order.source_token_id is not None
    assert (case.category, case.request_type, case.status) == ("urban", "help", "registered")
    # Registered like any other channel: the 受理 SMS is queued for the requester.
    [sms] = db.execute(select(Notification).where(Notification.case_id == case.id)).scalars()
    assert (sms.template, sms.recipient, sms.status) == ("registered", PHONE, "queued")

    body, root, text = both(client, "requests/GD20260930000001")
    validate("requests.json", body)
    agree(root, "service_requests", "request", body)
    assert body == [
        {
            "service_request_id": "GD20260930000001",
            "status": "open",
            "status_notes": "已受理待派单",
            "service_name": "城市管理",
            "service_code": "urban",
            "description": "岗贝社区路口井盖缺失，夜间很危险。联系人***，电话 ***。",
            "agency_responsible": "东莞市12345政务服务便民热线",
            "service_notice": "当前派单环节，时限至 2026-09-30 09:10（北京时间）。",
            "requested_datetime": "2026-09-30T09:00:00+08:00",
            "updated_datetime": "2026-09-30T09:00:00+08:00",
            "expected_datetime": "2026-09-30T09:10:00+08:00",
            "address": "东城街道岗贝社区东城中路 88 号",
            "lat": 23.0205,
            "long": 113.7518,
            "media_url": "https://img.example.com/manhole.jpg",
        }
    ]
    assert PHONE not in text
    assert NAME not in text

    # The XML flavour of POST answers in kind, with the next number.
    as_xml = post(client, form(key), fmt="xml")
    assert as_xml.status_code == 200, as_xml.text
    root = parse_xml(as_xml.content)
    assert root.tag == "service_requests"
    [request] = list(root)
    assert request.tag == "request"
    assert [c.tag for c in request] == ["service_request_id", "service_notice", "account_id"]
    assert request.findtext("service_request_id") == "GD20260930000002"
    assert request.findtext("account_id") == ""

    # The token flow: a token is the order number itself.
    body, root, _ = both(client, "tokens/GD20260930000002")
    assert body == [{"service_request_id": "GD20260930000002", "token": "GD20260930000002"}]
    agree(root, "service_requests", "request", body)
    for fmt in ("json", "xml"):
        errors(client.get(f"{BASE}/tokens/GD20990101000001.{fmt}"), fmt, 404)
        errors(client.get(f"{BASE}/requests/GD20990101000001.{fmt}"), fmt, 404)


def test_the_feed_follows_the_order_through_the_closed_loop(
    client: TestClient,
    api: Api,
    db: Session,
    key: str,
    frozen: FrozenClock,
    validate: Callable[[str, Any], None],
) -> None:
    number = post(client, form(key)).json()[0]["service_request_id"]
    case, _ = order_of(db, number)

    frozen.advance(timedelta(minutes=5))
    act(
        api, "dispatcher", case.id, "dispatch", unit_id=str(unit_id(db, DONGCHENG)), note="属地处理"
    )
    frozen.advance(timedelta(minutes=20))
    act(api, "dc.handler", case.id, "sign_for")
    reveal = api("dc.handler").post(f"/api/v1/orders/{case.id}/reveal")
    assert reveal.status_code == 200, reveal.text

    body, root, text = both(client, f"requests/{number}")
    validate("requests.json", body)
    agree(root, "service_requests", "request", body)
    [item] = body
    assert item["status"] == "open"
    assert item["status_notes"] == "办理中"
    assert item["agency_responsible"] == "东城街道"
    assert item["updated_datetime"] == "2026-09-30T09:25:00+08:00"
    # 求助: two working days from the next day, across National Day: 8 and 9 October.
    assert item["expected_datetime"] == "2026-10-09T17:30:00+08:00"

    frozen.advance(timedelta(hours=1))
    act(
        api,
        "dc.handler",
        case.id,
        "record_contact",
        note=f"已致电 {PHONE} 联系{NAME}，约定现场查看",
    )
    frozen.advance(timedelta(hours=1))
    act(api, "dc.handler", case.id, "reply", note="已补装井盖并设置警示。")
    frozen.advance(timedelta(days=1))
    act(api, "callback", case.id, "callback", solved=True, satisfaction="satisfied")

    body, root, text = both(client, f"requests/{number}")
    validate("requests.json", body)
    agree(root, "service_requests", "request", body)
    [item] = body
    assert item["status"] == "closed"
    assert item["status_notes"] == "已办结"
    assert item["expected_datetime"] is None
    assert item["updated_datetime"] == "2026-10-01T11:25:00+08:00"
    assert PHONE not in text
    assert NAME not in text

    closed, _, _ = both(client, "requests", status="closed")
    assert [r["service_request_id"] for r in closed] == [number]
    still_open, _, _ = both(client, "requests", status="open")
    assert number not in [r["service_request_id"] for r in still_open]

    updates, root, text = both(client, "servicerequestupdates", service_request_id=number)
    agree(root, "service_request_updates", "request_update", updates)
    assert [u["description"] for u in updates] == [
        "受理",
        "派单：属地处理",
        "签收",
        "联系诉求人：已致电 *** 联系***，约定现场查看",
        "答复：已补装井盖并设置警示。",
        "回访办结",
    ]
    assert [u["status"] for u in updates] == ["open"] * 5 + ["closed"]
    assert [u["update_id"] for u in updates] == [
        f"{number}_{e.seq}"
        for e in db.execute(
            select(CaseEvent)
            .where(
                CaseEvent.case_id == case.id, CaseEvent.action.not_in(["reveal", "open311_extras"])
            )
            .order_by(CaseEvent.seq)
        ).scalars()
    ]
    assert [u["updated_datetime"] for u in updates] == [
        "2026-09-30T09:00:00+08:00",
        "2026-09-30T09:05:00+08:00",
        "2026-09-30T09:25:00+08:00",
        "2026-09-30T10:25:00+08:00",
        "2026-09-30T11:25:00+08:00",
        "2026-10-01T11:25:00+08:00",
    ]
    assert all(u["service_request_id"] == number for u in updates)
    assert PHONE not in text
    assert NAME not in text

    # A window picks the events inside it, still oldest first.
    window, _, _ = both(
        client,
        "servicerequestupdates",
        start_date="2026-09-30T09:20:00+08:00",
        end_date="2026-09-30T10:30:00+08:00",
    )
    assert [u["description"][:2] for u in window] == ["签收", "联系"]


# --- refusals ----------------------------------------------------------------------------


def _forged(key: str) -> str:
    prefix, _, secret = key.rpartition("_")
    return f"{prefix}_{'x' * len(secret)}"


BAD_REQUESTS: list[tuple[str, Callable[[str], dict[str, str]], int, str]] = [
    ("missing description", lambda k: form(k, description=""), 400, "description"),
    ("1 MB description", lambda k: form(k, description="井" * 1_000_000), 400, "KB"),
    ("4001 characters", lambda k: form(k, description="井" * 4001), 400, "4000"),
    ("unknown service_code", lambda k: form(k, service_code="potholes"), 400, "service_code"),
    ("missing service_code", lambda k: form(k, service_code=""), 400, "service_code"),
    ("no api_key", lambda k: {n: v for n, v in form(k).items() if n != "api_key"}, 403, "api_key"),
    ("garbage api_key", lambda k: form(k, api_key="let-me-in"), 403, "api_key"),
    ("forged api_key", lambda k: form(k, api_key=_forged(k)), 403, "api_key"),
    ("bad phone", lambda k: form(k, phone="12345"), 400, "phone"),
    ("letters for a phone", lambda k: form(k, phone="call me"), 400, "phone"),
    ("missing phone", lambda k: form(k, phone=""), 400, "回访"),
    ("lat without long", lambda k: form(k, long=""), 400, "lat"),
    ("latitude out of range", lambda k: form(k, lat="123.4"), 400, "lat"),
    ("media_url not a URL", lambda k: form(k, media_url="javascript:alert(1)"), 400, "media_url"),
    ("address too long", lambda k: form(k, address_string="路" * 301), 400, "address"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("make", "status", "says"),
    [pytest.param(make, status, says, id=name) for name, make, status, says in BAD_REQUESTS],
)
def test_a_bad_request_is_refused_in_format_and_creates_nothing(
    client: TestClient,
    db: Session,
    key: str,
    fmt: str,
    make: Callable[[str], dict[str, str]],
    status: int,
    says: str,
) -> None:
    before = case_count(db)
    descriptions = errors(post(client, make(key), fmt), fmt, status)
    assert any(says in d for d in descriptions), descriptions
    assert all(" / " in d for d in descriptions)  # Chinese / English
    assert case_count(db) == before


def test_every_problem_is_reported_at_once(client: TestClient, db: Session, key: str) -> None:
    before = case_count(db)
    response = post(client, form(key, description="", service_code="nope", phone=""))
    assert len(errors(response, "json", 400)) == 3
    assert case_count(db) == before


def test_only_a_live_open311_key_may_post(client: TestClient, db: Session, key: str) -> None:
    before = case_count(db)
    partner, _ = issue_partner_token(
        db,
        system_principal(),
        name="110 平台",
        kind="partner",
        unit_id=unit_id(db, CITY),
        roles=[Role.PARTNER],
    )
    revoked, token = issue_partner_token(
        db,
        system_principal(),
        name="旧 App",
        kind="open311",
        unit_id=unit_id(db, CITY),
        roles=[Role.PARTNER],
    )
    revoke_token(db, system_principal(), token_id=token.id)
    db.commit()
    for api_key in (partner, revoked):
        assert "api_key" in errors(post(client, form(api_key)), "json", 403)[0]
    # The key may come in the query string too, as GeoReport's swagger has it.
    fields = {n: v for n, v in form(key).items() if n != "api_key"}
    response = client.post(f"{BASE}/requests.json", params={"api_key": key}, data=fields)
    assert response.status_code == 200, response.text
    assert case_count(db) == before + 1


def test_a_json_body_or_a_file_upload_is_refused(client: TestClient, db: Session, key: str) -> None:
    before = case_count(db)
    errors(client.post(f"{BASE}/requests.json", json=form(key)), "json", 400)
    upload = client.post(
        f"{BASE}/requests.xml",
        data=form(key),
        files={"media": ("photo.jpg", b"\xff\xd8\xff", "image/jpeg")},
    )
    assert "media_url" in errors(upload, "xml", 400)[0]
    assert case_count(db) == before
    # Multipart form fields without a file are a form like any other.
    boundary = "zhengshu-open311"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in form(key).items()
    )
    multipart = client.post(
        f"{BASE}/requests.json",
        content=(parts + f"--{boundary}--\r\n").encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert multipart.status_code == 200, multipart.text
    assert case_count(db) == before + 1


def test_control_characters_are_dropped(client: TestClient, db: Session, key: str) -> None:
    response = post(client, form(key, description="井盖\x00缺失\x07，请处理。\n谢谢"))
    assert response.status_code == 200, response.text
    _, order = order_of(db, response.json()[0]["service_request_id"])
    assert order.content == "井盖缺失，请处理。\n谢谢"


def test_an_idempotency_key_makes_one_order(
    client: TestClient, db: Session, key: str, frozen: FrozenClock
) -> None:
    before = case_count(db)
    headers = {"Idempotency-Key": "app-7f3a-0001"}
    first = client.post(f"{BASE}/requests.json", data=form(key), headers=headers)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    # A retry (even asking for XML) gets the first answer back, and no second order.
    again = client.post(f"{BASE}/requests.xml", data=form(key), headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    agree(parse_xml(again.content), "service_requests", "request", first.json())
    assert case_count(db) == before + 1
    reused = client.post(
        f"{BASE}/requests.json", data=form(key, description="另一件事：路灯不亮。"), headers=headers
    )
    assert "Idempotency-Key" in errors(reused, "json", 409)[0]
    too_long = client.post(
        f"{BASE}/requests.xml", data=form(key), headers={"Idempotency-Key": "k" * 201}
    )
    assert "Idempotency-Key" in errors(too_long, "xml", 400)[0]
    assert case_count(db) == before + 1


def test_a_mobile_number_is_normalised(client: TestClient, db: Session, key: str) -> None:
    response = post(client, form(key, phone="+86 139-1234-5678"))
    assert response.status_code == 200, response.text
    _, order = order_of(db, response.json()[0]["service_request_id"])
    assert order.requester_phone == PHONE


def test_an_anonymous_requester_still_leaves_a_number(
    client: TestClient, db: Session, key: str
) -> None:
    response = post(client, form(key, first_name="", last_name="", lat="", long=""))
    assert response.status_code == 200, response.text
    case, order = order_of(db, response.json()[0]["service_request_id"])
    assert order.requester_name == "匿名"
    extras = db.execute(
        select(CaseEvent.data).where(
            CaseEvent.case_id == case.id, CaseEvent.action == "open311_extras"
        )
    ).scalar_one()
    assert extras == {"media_url": "https://img.example.com/manhole.jpg"}


# --- the public feed ---------------------------------------------------------------------


def test_no_personal_data_in_any_public_answer(
    client: TestClient, api: Api, db: Session, key: str, frozen: FrozenClock
) -> None:
    told = "井盖缺失。座机 (0769)22223333，QQ 87654321，身份证 44190019900101123X，邮箱 a@b.cn"
    number = post(client, form(key, description=told)).json()[0]["service_request_id"]
    by_phone = api("calltaker").post(
        "/api/v1/orders",
        json={
            "requester_name": "林先生",
            "requester_phone": "13600000000",
            "requester_id_number": "441900199001011234",
            "content": "林先生来电，电话 13600000000，反映楼下夜宵店噪音扰民。",
            "address": "南城街道某路 1 号",
            "category": "environment",
            "request_type": "complaint",
        },
    )
    assert by_phone.status_code == 201, by_phone.text
    confidential = api("calltaker").post(
        "/api/v1/orders",
        json={
            "requester_name": "匿名举报人",
            "requester_phone": "13700000000",
            "content": "举报某工地夜间违规施工。",
            "category": "urban",
            "request_type": "report",
        },
    )
    assert confidential.status_code == 201, confidential.text

    texts = []
    listed, root, text = both(client, "requests")
    texts.append(text)
    agree(root, "service_requests", "request", listed)
    numbers = [r["service_request_id"] for r in listed]
    assert numbers == [by_phone.json()["number"], number]  # newest first; no 举报
    phone_order = listed[0]
    assert phone_order["description"] is None  # taken by phone: the content stays inside
    assert phone_order["address"] == "南城街道某路 1 号"
    for path in (
        f"requests/{number}",
        f"requests/{by_phone.json()['number']}",
        f"tokens/{number}",
        "servicerequestupdates",
    ):
        _, _, text = both(client, path)
        texts.append(text)
    for fmt in ("json", "xml"):
        errors(client.get(f"{BASE}/requests/{confidential.json()['number']}.{fmt}"), fmt, 404)
        errors(client.get(f"{BASE}/tokens/{confidential.json()['number']}.{fmt}"), fmt, 404)
    everything = "".join(texts)
    for secret in (PHONE, NAME, "13600000000", "林先生", "441900199001011234", "13700000000"):
        assert secret not in everything, secret
    for secret in ("22223333", "87654321", "44190019900101123X", "a@b.cn"):
        assert secret not in everything, secret
    assert "井盖缺失。座机 ***，QQ ***，身份证 ***，邮箱 ***" in everything
    assert "举报" not in everything
    assert "chen@example.com" not in everything


def test_the_feed_filters_and_refuses_bad_filters(
    client: TestClient, db: Session, key: str, frozen: FrozenClock
) -> None:
    first = post(client, form(key)).json()[0]["service_request_id"]
    frozen.advance(timedelta(days=1))
    second = post(client, form(key, service_code="water")).json()[0]["service_request_id"]

    def ids(**params: str) -> list[str]:
        body, _, _ = both(client, "requests", **params)
        return [r["service_request_id"] for r in body]

    assert ids() == [second, first]
    assert ids(service_code="water") == [second]
    assert ids(service_code="urban,water") == [second, first]
    assert ids(start_date="2026-10-01") == [second]
    assert ids(end_date="2026-09-30T12:00:00+08:00") == [first]
    assert ids(end_date="2026-09-30T04:00:00Z") == [first]
    # An unencoded "+" arrives as a space; it is understood all the same.
    assert ids(start_date="2026-10-01T00:00:00 08:00") == [second]
    assert ids(status="open") == [second, first]
    assert ids(status="closed") == []
    # service_request_id overrides everything else, as the standard says.
    assert ids(service_request_id=f"{first},{second}", service_code="water") == [second, first]
    frozen.advance(timedelta(days=100))
    assert ids() == []  # the default window is the last 90 days

    # (parameters, what the refusal names, whether servicerequestupdates refuses too)
    refused: list[tuple[dict[str, str], str, bool]] = [
        ({"service_code": "potholes"}, "service_code", False),
        ({"start_date": "yesterday"}, "start_date", True),
        ({"end_date": "2026-13-45"}, "end_date", True),
        ({"start_date": "2026-10-02", "end_date": "2026-10-01"}, "start_date", True),
        ({"start_date": "2026-01-01", "end_date": "2026-09-30"}, "90", False),
        ({"start_date": "0001-01-01T00:00:00+08:00"}, "start_date", True),
        ({"start_date": "9999-12-31"}, "start_date", True),
        ({"status": "pending"}, "status", False),
    ]
    for params, says, updates_too in refused:
        for fmt in ("json", "xml"):
            response = client.get(f"{BASE}/requests.{fmt}", params=params)
            assert says in errors(response, fmt, 400)[0], params
        response = client.get(f"{BASE}/servicerequestupdates.json", params=params)
        if updates_too:
            assert says in errors(response, "json", 400)[0], params
        else:
            assert response.status_code == 200, response.text


def test_unknown_endpoints_methods_and_formats(client: TestClient) -> None:
    errors(client.get(f"{BASE}/nothing.json"), "json", 404)
    errors(client.get(f"{BASE}/nothing.xml"), "xml", 404)
    refused = client.delete(f"{BASE}/requests.json")
    errors(refused, "json", 405)
    assert refused.headers["allow"] == "GET, POST"
    errors(client.post(f"{BASE}/services.xml"), "xml", 405)
    assert "json" in errors(client.get(f"{BASE}/services.html"), "json", 400)[0]


def test_the_routes_are_documented(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths[f"{BASE}/requests.{{fmt}}"]) == {"get", "post"}
    assert paths[f"{BASE}/requests.{{fmt}}"]["post"]["tags"] == ["Open311"]
    assert f"{BASE}/{{rest}}" not in paths


def test_odd_input_is_answered_never_a_500(client: TestClient, db: Session, key: str) -> None:
    gets = [
        ("requests.json", {"service_request_id": ",,,"}, 200),
        ("requests.json", {"status": "", "service_code": ""}, 200),
        ("requests.json", {"service_request_id": ",".join(["GD1"] * 101)}, 400),
        ("requests.json", {"start_date": "\x00"}, 400),
        ("requests/%00.json", {}, 404),
        ("requests/<script>.xml", {}, 404),
        ("servicerequestupdates.xml", {"service_request_id": "x" * 5000}, 200),
        ("services/..%2F..%2Fetc.xml", {}, 404),
        ("discovery.yaml", {}, 400),
    ]
    for path, params, status in gets:
        response = client.get(f"{BASE}/{path}", params=params)
        assert response.status_code == status, (path, response.text)
        if path.endswith(".xml"):
            parse_xml(response.content)
    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    posts = [
        (b"\xff\xfe%%%=&&==", urlencoded, 403),
        ("&".join(f"f{i}=1" for i in range(101)).encode(), urlencoded, 400),
        (b"api_key=x", {"Content-Type": "text/plain"}, 400),
        (b"--nope\r\n", {"Content-Type": "multipart/form-data; boundary=zz"}, 400),
    ]
    before = case_count(db)
    for body, headers, status in posts:
        response = client.post(f"{BASE}/requests.json", content=body, headers=headers)
        assert response.status_code == status, (body[:20], response.text)
    # A lone surrogate, percent-encoded, and a noncharacter: replaced, then accepted.
    fields = {n: v for n, v in form(key, address_string="\ufffe").items() if n != "description"}
    body = urlencode(fields) + "&description=%E4%BA%95%ED%A0%80"
    mangled = client.post(f"{BASE}/requests.xml", content=body.encode(), headers=urlencoded)
    assert mangled.status_code == 200, mangled.text
    number = parse_xml(mangled.content).findtext("request/service_request_id") or ""
    assert order_of(db, number)[1].content.startswith("井")
    assert case_count(db) == before + 1
    both(client, f"requests/{number}")  # the noncharacter is left out of the XML
