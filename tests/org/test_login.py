"""Login and sessions: web cookies, CSRF, the rate limit, bearer tokens, deactivation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD
from tests.org.builders import (
    audit_rows,
    csrf_from_page,
    error_of,
    person,
    person_payload,
    unit_by_code,
    web_login,
)
from zhengshu.org.deps import SESSION_COOKIE
from zhengshu.org.models import ApiToken, LoginAttempt, WebSession

Api = Callable[[str], TestClient]

BAD_LOGIN = "用户名或密码错误"
LOCKED = "登录失败次数过多，请 15 分钟后再试"
CSRF_FAILED = "页面已过期，请刷新后重试（CSRF 校验失败）"
ADMIN_PERMISSIONS = [
    "hotline:dispatch:configure",
    "hotline:dispatch:read",
    "kernel:calendar:read",
    "kernel:calendar:write",
    "kernel:jobs:read",
    "org:person:read",
    "org:person:write",
    "org:token:write",
    "org:unit:read",
    "org:unit:write",
]


def sessions_of(db: Session, username: str) -> list[WebSession]:
    db.expire_all()
    who = person(db, username)
    return list(db.execute(select(WebSession).where(WebSession.person_id == who.id)).scalars())


def cookie_attributes(header: str) -> dict[str, str]:
    """``name=value; HttpOnly; Path=/`` -> ``{"name": value, "httponly": "", "path": "/"}``."""
    attributes = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        attributes[key.lower() if key != SESSION_COOKIE else key] = value
    return attributes


def api_login(client: TestClient, *, username: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def bearer(app: Any, token: str) -> TestClient:
    return TestClient(
        app, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
    )


# --- web login ------------------------------------------------------------------------


def test_login_sets_an_httponly_lax_session_cookie_and_redirects_to_next(
    client: TestClient, db: Session
) -> None:
    response = web_login(client, username="dc.admin", next_path="/admin/units")

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/units"
    [header] = response.headers.get_list("set-cookie")
    cookie = cookie_attributes(header)
    assert len(cookie[SESSION_COOKIE]) >= 40
    assert "httponly" in cookie
    assert cookie["samesite"] == "lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600)
    assert "secure" not in cookie  # cookie_secure is off in the test settings
    [row] = sessions_of(db, "dc.admin")
    assert row.id != cookie[SESSION_COOKIE]  # only the digest is stored
    assert len(audit_rows(db, action="org.login.ok", entity_id=row.person_id)) == 1
    assert client.get("/admin/units").status_code == 200


@pytest.mark.parametrize(
    "target", ["//evil.com", "//evil.com/admin", "https://evil.com", "evil.com", "/\\evil.com"]
)
def test_login_never_redirects_off_site(client: TestClient, target: str) -> None:
    response = web_login(client, username="dc.admin", next_path=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_login_page_of_a_logged_in_person_also_guards_next(client: TestClient) -> None:
    web_login(client, username="dc.admin")
    response = client.get("/login", params={"next": "//evil.com"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_wrong_password_is_refused_and_audited(client: TestClient, db: Session) -> None:
    response = web_login(client, username="dc.admin", password="Wrong-Passw0rd!")

    assert response.status_code == 401
    assert BAD_LOGIN in response.text
    assert "set-cookie" not in response.headers
    [row] = audit_rows(db, action="org.login.failed", entity_id="dc.admin")
    assert row.after == {"reason": "bad_credentials"}
    assert row.actor_name == "匿名(dc.admin)"
    assert sessions_of(db, "dc.admin") == []


def test_unknown_username_fails_with_the_same_message(client: TestClient, db: Session) -> None:
    response = web_login(client, username="nobody.here", password=PASSWORD)

    assert response.status_code == 401
    assert BAD_LOGIN in response.text
    [row] = audit_rows(db, action="org.login.failed", entity_id="nobody.here")
    assert row.after == {"reason": "bad_credentials"}


def test_five_failures_lock_the_username_even_for_the_right_password(
    client: TestClient, db: Session
) -> None:
    for _ in range(5):
        assert web_login(client, username="dc.admin", password="Wrong-Passw0rd!").status_code == 401

    response = web_login(client, username="dc.admin", password=PASSWORD)

    assert response.status_code == 429
    assert LOCKED in response.text
    assert "set-cookie" not in response.headers
    assert len(audit_rows(db, action="org.login.failed", entity_id="dc.admin")) == 5
    [locked] = audit_rows(db, action="org.login.locked", entity_id="dc.admin")
    assert locked.after == {"failures_user": 5, "failures_ip": 5}
    assert sessions_of(db, "dc.admin") == []


def test_four_failures_still_let_the_right_password_in(client: TestClient) -> None:
    for _ in range(4):
        web_login(client, username="dc.admin", password="Wrong-Passw0rd!")
    assert web_login(client, username="dc.admin").status_code == 303


def test_the_lock_is_per_username(client: TestClient, db: Session) -> None:
    for _ in range(5):
        web_login(client, username="sj.admin", password="Wrong-Passw0rd!")
    assert web_login(client, username="dc.admin").status_code == 303
    attempts = db.execute(
        select(func.count()).select_from(LoginAttempt).where(LoginAttempt.success.is_(False))
    ).scalar_one()
    assert attempts == 5


def test_username_is_case_insensitive_for_login_and_the_lock(client: TestClient) -> None:
    assert web_login(client, username="DC.Admin").status_code == 303
    for _ in range(5):
        web_login(client, username="DC.ADMIN", password="Wrong-Passw0rd!")
    assert web_login(client, username="dc.admin").status_code == 429


# --- CSRF and logout -----------------------------------------------------------------


def test_logout_without_csrf_token_is_refused_as_json(client: TestClient, db: Session) -> None:
    web_login(client, username="dc.admin")
    response = client.post(
        "/logout", headers={"Accept": "application/json"}, follow_redirects=False
    )
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "csrf"
    assert error["message"] == CSRF_FAILED
    assert len(sessions_of(db, "dc.admin")) == 1


def test_logout_without_csrf_token_is_refused_as_a_page(client: TestClient, db: Session) -> None:
    web_login(client, username="dc.admin")
    response = client.post("/logout", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert CSRF_FAILED in response.text
    assert len(sessions_of(db, "dc.admin")) == 1


def test_a_wrong_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    web_login(client, username="dc.admin")
    response = client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert response.status_code == 403
    assert len(sessions_of(db, "dc.admin")) == 1


def test_any_form_post_needs_the_csrf_token(client: TestClient, db: Session) -> None:
    web_login(client, username="dc.admin")
    dc = unit_by_code(db, "441900003000")
    form = {
        "username": "dc.csrf",
        "display_name": "跨站请求",
        "unit_id": str(dc.id),
        "password": "Strong-Passw0rd-1",
    }
    refused = client.post("/admin/people/new", data=form, follow_redirects=False)
    assert refused.status_code == 403
    assert CSRF_FAILED in refused.text

    token = csrf_from_page(client)
    created = client.post(
        "/admin/people/new", data={**form, "csrf_token": token}, follow_redirects=False
    )
    assert created.status_code == 303
    assert person(db, "dc.csrf").unit_id == dc.id


def test_the_page_token_is_the_sessions_csrf_token(client: TestClient, db: Session) -> None:
    web_login(client, username="dc.admin")
    [row] = sessions_of(db, "dc.admin")
    assert csrf_from_page(client) == row.csrf_token


def test_csrf_token_may_come_in_a_header(client: TestClient, db: Session) -> None:
    web_login(client, username="dc.admin")
    [row] = sessions_of(db, "dc.admin")
    response = client.post(
        "/logout", headers={"X-CSRF-Token": row.csrf_token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert sessions_of(db, "dc.admin") == []


def test_logout_with_csrf_token_ends_the_session_for_good(
    client: TestClient, db: Session, app: Any
) -> None:
    web_login(client, username="dc.admin")
    old_cookie = client.cookies[SESSION_COOKIE]
    token = csrf_from_page(client)

    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert sessions_of(db, "dc.admin") == []
    assert len(audit_rows(db, action="org.logout", entity_id=person(db, "dc.admin").id)) == 1
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303
    assert home.headers["location"] == "/login?next=/"
    with TestClient(
        app, base_url="http://testserver", cookies={SESSION_COOKIE: old_cookie}
    ) as replay:
        again = replay.get("/", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/login?next=/"


def test_bearer_form_posts_need_no_csrf_token(db: Session, api: Api) -> None:
    """CSRF rides on cookies; a request that carries its own bearer token cannot be forged."""
    dc = unit_by_code(db, "441900003000")
    response = api("dc.admin").post(
        "/admin/units/new",
        data={"parent_id": str(dc.id), "kind": "community", "code": "441900003901", "name": "新城"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert unit_by_code(db, "441900003901").parent_id == dc.id


# --- deactivation --------------------------------------------------------------------


def test_deactivated_person_loses_sessions_and_tokens_and_cannot_log_in(
    client: TestClient, db: Session, api: Api, app: Any
) -> None:
    assert web_login(client, username="dc.handler").status_code == 303
    token = api_login(client, username="dc.handler").json()["access_token"]
    handler = person(db, "dc.handler")

    response = api("admin").patch(
        f"/api/v1/people/{handler.id}", json={"version": handler.version, "active": False}
    )

    assert response.status_code == 200
    assert response.json()["active"] is False
    assert sessions_of(db, "dc.handler") == []
    [login_token] = db.execute(select(ApiToken).where(ApiToken.person_id == handler.id)).scalars()
    assert login_token.revoked_at is not None
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303
    assert home.headers["location"] == "/login?next=/"
    me = bearer(app, token).get("/api/v1/me")
    assert me.status_code == 401
    assert error_of(me)["code"] == "bad_token"
    again = web_login(client, username="dc.handler")
    assert again.status_code == 401
    assert BAD_LOGIN in again.text
    [failed] = audit_rows(db, action="org.login.failed", entity_id="dc.handler")
    assert failed.after == {"reason": "inactive"}


# --- API login -----------------------------------------------------------------------


def test_api_token_login_gives_a_token_that_works(
    client: TestClient, db: Session, app: Any
) -> None:
    response = api_login(client, username="dc.admin")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at"}
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("zs_")
    me = bearer(app, body["access_token"]).get("/api/v1/me")
    assert me.status_code == 200
    dc_admin = person(db, "dc.admin")
    assert me.json() == {
        "id": str(dc_admin.id),
        "name": "东城街道管理员 郑洁(dc.admin)",
        "kind": "token",
        "roles": ["admin"],
        "permissions": ADMIN_PERMISSIONS,
        "unit_id": str(unit_by_code(db, "441900003000").id),
    }
    [row] = audit_rows(db, action="org.login.ok", entity_id=dc_admin.id)
    assert row.after == {"via": "api"}


def test_api_token_login_with_a_bad_password_is_401_and_audited(
    client: TestClient, db: Session
) -> None:
    response = api_login(client, username="dc.admin", password="Wrong-Passw0rd!")

    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "bad_credentials"
    assert error["message"] == BAD_LOGIN
    [row] = audit_rows(db, action="org.login.failed", entity_id="dc.admin")
    assert row.after == {"reason": "bad_credentials"}


def test_api_token_login_is_rate_limited_too(client: TestClient) -> None:
    for _ in range(5):
        api_login(client, username="dc.admin", password="Wrong-Passw0rd!")
    response = api_login(client, username="dc.admin")
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert error["message"] == LOCKED


def test_api_token_login_rejects_unknown_fields(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/token", json={"username": "dc.admin", "password": PASSWORD, "x": 1}
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"


@pytest.mark.parametrize(
    "token",
    ["garbage", "zs_abc", "zs_0123456789ab_secret", "xx_0123456789ab_secret", "zs_" + "a" * 250],
)
def test_garbage_bearer_is_401_bad_token(app: Any, token: str) -> None:
    response = bearer(app, token).get("/api/v1/me")
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "bad_token"
    assert error["message"] == "令牌无效或已过期"


def test_right_prefix_wrong_secret_is_401(client: TestClient, app: Any) -> None:
    token = api_login(client, username="dc.admin").json()["access_token"]
    forged = token.rsplit("_", 1)[0] + "_" + "A" * 43
    response = bearer(app, forged).get("/api/v1/me")
    assert response.status_code == 401
    assert error_of(response)["code"] == "bad_token"


def test_unauthenticated_api_call_is_401_json(client: TestClient) -> None:
    response = client.get("/api/v1/units")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    error = error_of(response)
    assert error["code"] == "not_authenticated"
    assert error["message"] == "请先登录"


def test_unauthenticated_page_redirects_to_login(client: TestClient) -> None:
    response = client.get("/admin/people", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/people"


def test_password_reset_by_admin_ends_the_persons_sessions(
    client: TestClient, db: Session, api: Api
) -> None:
    assert web_login(client, username="dc.handler").status_code == 303
    handler = person(db, "dc.handler")
    response = api("dc.admin").post(
        f"/api/v1/people/{handler.id}/password", json={"password": "Fresh-Passw0rd-9"}
    )
    assert response.status_code == 204
    assert sessions_of(db, "dc.handler") == []
    assert client.get("/", follow_redirects=False).status_code == 303
    assert web_login(client, username="dc.handler").status_code == 401
    assert web_login(client, username="dc.handler", password="Fresh-Passw0rd-9").status_code == 303


def test_new_account_logs_in_with_its_password(client: TestClient, db: Session, api: Api) -> None:
    dc = unit_by_code(db, "441900003000")
    created = api("dc.admin").post("/api/v1/people", json=person_payload(unit_id=dc.id))
    assert created.status_code == 201
    response = web_login(client, username="dc.new", password="New-Passw0rd-2025")
    assert response.status_code == 303
