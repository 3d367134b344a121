"""Partner systems' API tokens: issue, act as the partner, stay in the unit, revoke."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from tests.org.builders import DONGCHENG, SHIJIE, audit_rows, error_of, unit_by_code
from zhengshu.org.models import ApiToken

Api = Callable[[str], TestClient]


def token_body(
    *,
    unit: uuid.UUID,
    name: str = "110 联动平台",
    kind: str = "partner",
    roles: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "kind": kind, "unit_id": str(unit)}
    if roles is not None:
        body["roles"] = roles
    return body


def bearer(app: Any, token: str) -> TestClient:
    return TestClient(
        app, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
    )


def issue(
    api: Api, db: Session, *, actor: str = "admin", code: str = DONGCHENG.code, **kw: Any
) -> dict[str, Any]:
    response = api(actor).post("/api/v1/tokens", json=token_body(unit=unit_id(db, code), **kw))
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


def test_admin_issues_a_partner_token_shown_once(db: Session, api: Api) -> None:
    issued = issue(api, db)

    assert set(issued) == {"id", "token", "prefix"}
    assert issued["token"].startswith(f"zs_{issued['prefix']}_")
    stored = db.get(ApiToken, uuid.UUID(issued["id"]))
    assert stored is not None
    assert (stored.kind, stored.roles, stored.person_id) == ("partner", ["partner"], None)
    assert stored.unit_id == unit_id(db, DONGCHENG.code)
    secret = issued["token"].split("_", 2)[2]
    assert secret not in stored.secret_hash
    [row] = audit_rows(db, action="org.token.issue", entity_id=issued["id"])
    assert row.after == {
        "name": "110 联动平台",
        "kind": "partner",
        "unit_id": str(unit_id(db, DONGCHENG.code)),
        "roles": ["partner"],
        "prefix": issued["prefix"],
    }
    assert secret not in json.dumps(row.after)


def test_partner_token_acts_as_the_partner(db: Session, api: Api, app: Any) -> None:
    issued = issue(api, db)
    me = bearer(app, issued["token"]).get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == {
        "id": None,
        "name": "令牌:110 联动平台",
        "kind": "token",
        "roles": ["partner"],
        "permissions": ["hotline:order:push", "hotline:order:read"],
        "unit_id": str(unit_id(db, DONGCHENG.code)),
    }


@pytest.mark.parametrize(
    ("path", "permission"),
    [
        ("/api/v1/units/{other}", "org:unit:read"),
        ("/api/v1/units/{own}", "org:unit:read"),
        ("/api/v1/units", "org:unit:read"),
        ("/api/v1/people", "org:person:read"),
    ],
)
def test_partner_token_has_no_org_read(
    db: Session, api: Api, app: Any, path: str, permission: str
) -> None:
    issued = issue(api, db)
    url = path.format(other=unit_id(db, SHIJIE.code), own=unit_id(db, DONGCHENG.code))
    response = bearer(app, issued["token"]).get(url)
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert error["details"] == {"permission": permission}


@pytest.mark.parametrize(
    ("roles", "refused"),
    [
        (["partner", "leader"], ["leader"]),
        (["auditor"], ["auditor"]),
        (["admin", "partner", "handler"], ["admin", "handler"]),
    ],
)
def test_a_token_carries_only_the_partner_role(
    db: Session, api: Api, roles: list[str], refused: list[str]
) -> None:
    response = api("admin").post(
        "/api/v1/tokens", json=token_body(unit=unit_id(db, DONGCHENG.code), roles=roles)
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"] == "接口令牌只能授予“对接系统”角色"
    assert error["details"] == {"roles": refused}
    assert audit_rows(db, action="org.token.issue") == []


def test_revoked_token_stops_working(db: Session, api: Api, app: Any) -> None:
    issued = issue(api, db)
    partner = bearer(app, issued["token"])
    assert partner.get("/api/v1/me").status_code == 200

    revoked = api("admin").post(f"/admin/tokens/{issued['id']}/revoke", follow_redirects=False)

    assert revoked.status_code == 303
    me = partner.get("/api/v1/me")
    assert me.status_code == 401
    assert error_of(me)["code"] == "bad_token"
    [row] = audit_rows(db, action="org.token.revoke", entity_id=issued["id"])
    assert row.after == {"revoked": True}


def test_revoking_twice_is_audited_once(db: Session, api: Api) -> None:
    issued = issue(api, db)
    client = api("admin")
    client.post(f"/admin/tokens/{issued['id']}/revoke", follow_redirects=False)
    again = client.post(f"/admin/tokens/{issued['id']}/revoke", follow_redirects=False)
    assert again.status_code == 303
    assert len(audit_rows(db, action="org.token.revoke", entity_id=issued["id"])) == 1


def test_town_admin_cannot_revoke_another_towns_token(db: Session, api: Api, app: Any) -> None:
    issued = issue(api, db, code=SHIJIE.code)
    response = api(DONGCHENG.admin).post(
        f"/admin/tokens/{issued['id']}/revoke",
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found"
    assert error["message"] == "令牌不存在或无权查看"
    assert bearer(app, issued["token"]).get("/api/v1/me").status_code == 200
    assert audit_rows(db, action="org.token.revoke", entity_id=issued["id"]) == []


def test_revoking_a_missing_token_is_not_found(api: Api) -> None:
    response = api("admin").post(
        f"/admin/tokens/{uuid.uuid4()}/revoke",
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_token_of_a_deactivated_unit_stops_working(db: Session, api: Api, app: Any) -> None:
    issued = issue(api, db)
    dc = unit_by_code(db, DONGCHENG.code)
    response = api("admin").patch(
        f"/api/v1/units/{dc.id}", json={"version": dc.version, "active": False}
    )
    assert response.status_code == 200
    assert bearer(app, issued["token"]).get("/api/v1/me").status_code == 401


def test_town_admin_issues_for_the_town(db: Session, api: Api, app: Any) -> None:
    issued = issue(api, db, actor=DONGCHENG.admin, kind="partner")
    assert bearer(app, issued["token"]).get("/api/v1/me").json()["roles"] == ["partner"]


def test_an_open311_key_is_no_bearer_token(db: Session, api: Api, app: Any) -> None:
    """An Open311 key ships inside citizens' apps: it is the api_key of /open311/v2/ and
    nothing else (it must not register orders with any channel, nor act as the 110 bridge)."""
    issued = issue(api, db, actor=DONGCHENG.admin, kind="open311")
    client = bearer(app, issued["token"])
    for method, path in [
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/partner/110/orders"),
        ("PUT", "/api/v1/partner/110/webhook"),
    ]:
        response = client.request(method, path, json={})
        assert response.status_code == 403, (path, response.text)
        assert error_of(response)["code"] == "open311_key_only"


def test_issuing_needs_token_write(db: Session, api: Api) -> None:
    response = api(DONGCHENG.handler).post(
        "/api/v1/tokens", json=token_body(unit=unit_id(db, DONGCHENG.code))
    )
    assert response.status_code == 403
    assert error_of(response)["details"] == {"permission": "org:token:write"}


@pytest.mark.parametrize(
    ("change", "field"),
    [({"kind": "login"}, "kind"), ({"name": ""}, "name"), ({"roles": ["root"]}, "roles.0")],
)
def test_malformed_token_request_is_422(
    db: Session, api: Api, change: dict[str, Any], field: str
) -> None:
    body = {**token_body(unit=unit_id(db, DONGCHENG.code)), **change}
    response = api("admin").post("/api/v1/tokens", json=body)
    assert response.status_code == 422
    assert [f["field"] for f in error_of(response)["details"]["fields"]] == [field]
