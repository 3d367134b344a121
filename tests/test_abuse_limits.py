"""Abuse limits: public submissions per address and per phone number, login per address,
and request bodies over the size limit refused (413) before they are read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PASSWORD, frozen_at, unit_id
from zhengshu.app import UPLOAD_LIMITS, body_limit, create_app
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.errors import TooManyRequests
from zhengshu.kernel.ratelimit import Quota, RateLimiter
from zhengshu.kernel.settings import Settings
from zhengshu.org.roles import Role
from zhengshu.org.service import issue_partner_token

try:  # FastAPI >= 0.160 no longer flattens included routers into app.routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
OPEN311 = "/open311/v2/requests.json"

MakeClient = Callable[..., TestClient]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


@pytest.fixture
def make_client(settings: Settings, factory: sessionmaker[Session]) -> Iterator[MakeClient]:
    """``make_client(submit_max_per_phone=2)``: a client of an app with those settings."""
    apps: list[Any] = []

    def make(**overrides: Any) -> TestClient:
        application = create_app(settings.model_copy(update=overrides))
        application.state.sessionmaker = factory
        apps.append(application)
        return TestClient(application, base_url="http://testserver")

    yield make
    for application in apps:
        application.state.engine.dispose()


@pytest.fixture
def open311_key(db: Session) -> str:
    plaintext, _ = issue_partner_token(
        db,
        system_principal(),
        name="市民App",
        kind="open311",
        unit_id=unit_id(db, "441900000000"),
        roles=[Role.PARTNER],
    )
    db.commit()
    return plaintext


def submission(key: str, phone: str) -> dict[str, str]:
    return {
        "api_key": key,
        "service_code": "urban",
        "description": "岗贝社区路口井盖缺失，夜间很危险。",
        "phone": phone,
    }


def errors(response: Any, status: int) -> list[str]:
    assert response.status_code == status, response.text
    return [e["description"] for e in response.json()]


# --- public submissions ------------------------------------------------------------------


def test_open311_submissions_are_limited_per_phone_number(
    make_client: MakeClient, open311_key: str, frozen: FrozenClock
) -> None:
    client = make_client(submit_max_per_phone=2, submit_window_minutes=60)
    for _ in range(2):
        assert client.post(OPEN311, data=submission(open311_key, "13912345678")).status_code == 200
    refused = client.post(OPEN311, data=submission(open311_key, "13912345678"))
    [message] = errors(refused, 429)
    assert "同一联系电话在 60 分钟内最多提交 2 次" in message
    assert "too many submissions from this phone number" in message
    # Another caller from the same address is not held back by that number's quota.
    assert client.post(OPEN311, data=submission(open311_key, "13800138000")).status_code == 200
    # The window slides: an hour after the first two, the number may submit again.
    frozen.advance(timedelta(minutes=61))
    assert client.post(OPEN311, data=submission(open311_key, "13912345678")).status_code == 200


def test_open311_submissions_are_limited_per_address(
    make_client: MakeClient, open311_key: str, frozen: FrozenClock
) -> None:
    client = make_client(submit_max_per_ip=3, submit_max_per_phone=100)
    phones = [f"1391234{n:04d}" for n in range(5)]
    statuses = [
        client.post(OPEN311, data=submission(open311_key, phone)).status_code for phone in phones
    ]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.post(OPEN311, data=submission(open311_key, "13700000000"), params={})
    [message] = errors(refused, 429)
    assert "同一网络地址" in message
    # XML callers get the refusal in XML.
    xml = client.post("/open311/v2/requests.xml", data=submission(open311_key, "13600000000"))
    assert xml.status_code == 429
    assert b"<code>429</code>" in xml.content


def test_an_idempotent_retry_is_not_counted_and_refusals_save_nothing(
    make_client: MakeClient, open311_key: str, db: Session, frozen: FrozenClock
) -> None:
    client = make_client(submit_max_per_phone=1)
    headers = {"Idempotency-Key": "app-retry-1"}
    first = client.post(OPEN311, data=submission(open311_key, "13912345678"), headers=headers)
    again = client.post(OPEN311, data=submission(open311_key, "13912345678"), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    refused = client.post(
        OPEN311, data=submission(open311_key, "13912345678"), headers={"Idempotency-Key": "k2"}
    )
    errors(refused, 429)
    # The refused request claimed no key: once the window has passed, the same key works.
    frozen.advance(timedelta(hours=2))
    later = client.post(
        OPEN311, data=submission(open311_key, "13912345678"), headers={"Idempotency-Key": "k2"}
    )
    assert later.status_code == 200
    assert later.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]


def test_invalid_submissions_do_not_use_up_the_quota(
    make_client: MakeClient, open311_key: str, frozen: FrozenClock
) -> None:
    client = make_client(submit_max_per_ip=1)
    for _ in range(3):
        errors(client.post(OPEN311, data=submission(open311_key, "12345")), 400)
    errors(client.post(OPEN311, data=submission("zs_bad_key", "13912345678")), 403)
    assert client.post(OPEN311, data=submission(open311_key, "13912345678")).status_code == 200


def test_the_limiter_counts_all_quotas_or_none(frozen: FrozenClock) -> None:
    limiter = RateLimiter()
    hour = timedelta(hours=1)
    ip = Quota("t.ip", "1.2.3.4", 3, hour, "同一网络地址", "this address")

    def phone(number: str) -> Quota:
        return Quota("t.phone", number, 1, hour, "同一联系电话", "this phone number")

    limiter.take([phone("a"), ip])
    with pytest.raises(TooManyRequests) as refused:
        limiter.take([phone("a"), ip])
    assert refused.value.details["quota"] == "t.phone"
    assert refused.value.details["retry_after_seconds"] == 3600
    # The refused attempt did not count against the address: two more fit.
    limiter.take([phone("b"), ip])
    limiter.take([phone("c"), ip])
    with pytest.raises(TooManyRequests) as full:
        limiter.take([phone("d"), ip])
    assert full.value.details["quota"] == "t.ip"
    frozen.advance(hour)
    limiter.take([phone("d"), ip])


def test_the_limiter_forgets_the_stalest_keys_beyond_its_room(frozen: FrozenClock) -> None:
    limiter = RateLimiter(max_keys=10)
    for n in range(25):
        frozen.advance(timedelta(seconds=1))
        limiter.take([Quota("t", str(n), 1, timedelta(hours=1), "x", "x")])
    assert len(limiter._events) <= 10
    # The newest key is still held to its quota.
    with pytest.raises(TooManyRequests):
        limiter.take([Quota("t", "24", 1, timedelta(hours=1), "x", "x")])


# --- login -------------------------------------------------------------------------------


def test_login_failures_from_one_address_lock_every_username(make_client: MakeClient) -> None:
    client = make_client(login_max_failures_per_ip=3, login_max_failures_per_user=100)
    for username in ("calltaker", "dispatcher", "nobody"):
        response = client.post(
            "/api/v1/auth/token", json={"username": username, "password": "wrong-password"}
        )
        assert response.status_code == 401
    locked = client.post("/api/v1/auth/token", json={"username": "leader", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limited"
    page = client.post(
        "/login", data={"username": "leader", "password": PASSWORD}, follow_redirects=False
    )
    assert page.status_code == 429
    assert "登录失败次数过多" in page.text


# --- request body size -------------------------------------------------------------------


def test_a_declared_oversized_body_is_refused_before_anything_else(
    make_client: MakeClient,
) -> None:
    client = make_client(max_body_bytes=2048)
    # No credentials at all: the size is refused before login is even looked at.
    response = client.post(
        "/api/v1/orders",
        content=b"x" * 2049,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert error["message"].startswith("提交的内容过大（上限 2 KB）")
    assert error["message_en"] == "request body larger than 2 KB"
    assert error["details"] == {"max_bytes": 2048}


def test_a_megabyte_order_is_refused_at_the_default_limit_and_changes_nothing(
    api: Callable[[str], TestClient], db: Session
) -> None:
    calltaker = api("calltaker")
    before = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    response = calltaker.post(
        "/api/v1/orders",
        json={
            "requester_name": "陈先生",
            "requester_phone": "13800138000",
            "content": "长" * 10**6,
        },
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert response.json()["error"]["details"] == {"max_bytes": 1024 * 1024}
    after = db.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).scalars().first()
    assert after == before


def test_a_chunked_oversized_body_is_refused_while_it_is_read(
    make_client: MakeClient, api: Callable[[str], TestClient]
) -> None:
    client = make_client(max_body_bytes=2048)
    token = api("calltaker").headers["Authorization"]

    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    response = client.post(
        "/api/v1/orders",
        content=chunks(),
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "body_too_large"


def test_a_page_form_over_the_limit_gets_a_page(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=2048)
    response = client.post(
        "/login",
        data={"username": "calltaker", "password": "p" * 3000},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "提交的内容过大" in response.text


def test_bodies_under_the_limit_pass(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=2048)
    response = client.post("/api/v1/auth/token", json={"username": "leader", "password": PASSWORD})
    assert response.status_code == 200


def test_the_default_limit_and_the_upload_routes(settings: Settings, app: Any) -> None:
    assert settings.max_body_bytes == 1024 * 1024
    assert body_limit(settings, "/api/v1/orders") == 1024 * 1024
    assert body_limit(settings, "/api/v1/orders/x/attachments") > 10 * 1024 * 1024
    assert body_limit(settings, "/hotline/import") > 20 * 1024 * 1024
    assert body_limit(settings, "/admin/units/import") > 5_000_000
    # Open311 keeps its own 128 KB cap and answers it in GeoReport's format.
    assert body_limit(settings, "/open311/v2/requests.json") is None
    # Every upload rule still names a real route (a renamed route must not lose its cap).
    paths = {
        re.sub(r"\{[^}]+\}", "x", rc.path)
        for rc in iter_route_contexts(app.routes)
        if getattr(rc, "path", None)
    }
    for pattern, _ in UPLOAD_LIMITS:
        assert any(pattern.match(path) for path in paths), pattern.pattern


def test_an_attachment_over_the_default_limit_still_uploads(
    make_client: MakeClient, api: Callable[[str], TestClient]
) -> None:
    calltaker = api("calltaker")
    order = calltaker.post(
        "/api/v1/orders",
        json={"requester_name": "陈先生", "requester_phone": "13800138000", "content": "路灯坏了"},
    ).json()
    client = make_client(max_body_bytes=2048)
    client.headers["Authorization"] = calltaker.headers["Authorization"]
    text = ("路灯不亮，已持续一周。\n" * 400).encode()
    assert len(text) > 2048
    response = client.post(
        f"/api/v1/orders/{order['id']}/attachments",
        files={"file": ("说明.txt", text, "text/plain")},
    )
    assert response.status_code == 201, response.text
