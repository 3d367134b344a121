"""People through the API: accounts, passwords, roles, self-lockout, lists."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from tests.org.builders import (
    BUREAU,
    DEMO_PEOPLE_COUNT,
    DONGCHENG,
    STRONG_PASSWORD,
    count_people,
    error_of,
    person,
    person_payload,
)
from zhengshu.kernel.audit import AuditEntry

Api = Callable[[str], TestClient]

WEAK = "密码至少 10 位，且包含大写字母、小写字母、数字、符号中的三种"
STALE = "人员已被他人修改，请刷新后重试"
PARTNER_REFUSED = "“对接系统”角色只能授予 API 令牌"
ALL_PEOPLE_IN_ORDER = [  # by unit depth, unit code, username
    "admin",
    "auditor",
    "leader",
    "dc.admin",
    "dc.handler",
    "dc.leader",
    "sj.admin",
    "sj.handler",
    "zjj.handler",
    "callback",
    "calltaker",
    "dispatcher",
    "supervisor",
]


def audit_of(db: Session, *, action: str, entity_id: object) -> list[AuditEntry]:
    db.expire_all()
    query = select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.entity_id == str(entity_id)
    )
    return list(db.execute(query.order_by(AuditEntry.seq)).scalars())


def create(api: Api, db: Session, *, actor: str = "dc.admin", **kw: Any) -> Any:
    kw.setdefault("unit_id", unit_id(db, DONGCHENG.code))
    return api(actor).post("/api/v1/people", json=person_payload(**kw))


def patch_person(api: Api, db: Session, *, actor: str, username: str, **changes: Any) -> Any:
    target = person(db, username)
    return api(actor).patch(
        f"/api/v1/people/{target.id}", json={"version": target.version, **changes}
    )


# --- create ----------------------------------------------------------------------------


def test_create_person_answers_without_any_secret(db: Session, api: Api) -> None:
    dc = unit_id(db, DONGCHENG.code)
    response = create(api, db, unit_id=dc, phone="13800138000", roles=("unit_leader", "handler"))

    assert response.status_code == 201
    body = response.json()
    new_id = uuid.UUID(body.pop("id"))
    assert body == {
        "username": "dc.new",
        "display_name": "东城新同事 林立",
        "phone": "13800138000",
        "unit_id": str(dc),
        "scope_unit_id": None,
        "roles": ["handler", "unit_leader"],
        "active": True,
        "version": 1,
        "last_login_at": None,
    }
    assert STRONG_PASSWORD not in response.text
    [row] = audit_of(db, action="org.person.create", entity_id=new_id)
    assert row.after == {
        "username": "dc.new",
        "display_name": "东城新同事 林立",
        "phone": "13800138000",
        "unit_id": str(dc),
        "scope_unit_id": None,
        "active": True,
        "roles": ["handler", "unit_leader"],
    }
    stored = person(db, "dc.new")
    assert stored.password_hash.startswith("$argon2id$")
    assert STRONG_PASSWORD not in stored.password_hash


def test_no_audit_row_ever_holds_a_password(db: Session, api: Api) -> None:
    created = create(api, db)
    new_id = created.json()["id"]
    api("dc.admin").post(f"/api/v1/people/{new_id}/password", json={"password": "Other-Passw0rd-1"})
    rows = list(db.execute(select(AuditEntry)).scalars())
    assert len(audit_of(db, action="org.person.password_reset", entity_id=new_id)) == 1
    for row in rows:
        for snapshot in (row.before or {}, row.after or {}):
            assert not any("password" in key for key in snapshot), (row.action, snapshot)
        dumped = json.dumps([row.before, row.after], ensure_ascii=False)
        assert STRONG_PASSWORD not in dumped
        assert "Other-Passw0rd-1" not in dumped
        assert "$argon2" not in dumped


def test_scope_defaults_to_the_unit(db: Session, api: Api) -> None:
    dc = unit_id(db, DONGCHENG.code)
    response = create(api, db, unit_id=unit_id(db, DONGCHENG.community), scope_unit_id=dc)
    assert response.status_code == 201
    assert response.json()["scope_unit_id"] == str(dc)
    same = create(api, db, username="dc.same", scope_unit_id=dc)
    assert same.json()["scope_unit_id"] is None


@pytest.mark.parametrize("password", ["Short-1!", "short"])
def test_password_shorter_than_10_is_422(db: Session, api: Api, password: str) -> None:
    response = create(api, db, password=password)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert [f["field"] for f in error["details"]["fields"]] == ["password"]
    assert count_people(db) == DEMO_PEOPLE_COUNT


@pytest.mark.parametrize("password", ["abcdefghijk", "abcdefghij12", "ABCDEFGHIJ-!"])
def test_weak_password_of_10_or_more_is_400(db: Session, api: Api, password: str) -> None:
    response = create(api, db, password=password)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "weak_password"
    assert error["message"] == WEAK
    assert count_people(db) == DEMO_PEOPLE_COUNT


@pytest.mark.parametrize("password", ["Abcdefghij1", "abcdefgh-12", "ABCDEFGH-12"])
def test_three_character_classes_are_enough(db: Session, api: Api, password: str) -> None:
    assert create(api, db, password=password).status_code == 201


@pytest.mark.parametrize("username", ["dc.handler", "DC.Handler", " dc.handler "])
def test_duplicate_username_is_409(db: Session, api: Api, username: str) -> None:
    response = create(api, db, username=username)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "duplicate_username"
    assert error["message"] == "用户名 dc.handler 已存在"
    assert count_people(db) == DEMO_PEOPLE_COUNT


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "1abc"}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "有中文"}, "username"),
        ({"phone": "12345"}, "phone"),
        ({"roles": ["superuser"]}, "roles.0"),
        ({"display_name": ""}, "display_name"),
    ],
)
def test_malformed_person_is_422(db: Session, api: Api, change: dict[str, Any], field: str) -> None:
    payload = {**person_payload(unit_id=unit_id(db, DONGCHENG.code)), **change}
    response = api("dc.admin").post("/api/v1/people", json=payload)
    assert response.status_code == 422
    assert [f["field"] for f in error_of(response)["details"]["fields"]] == [field]


def test_partner_role_is_refused_for_a_person(db: Session, api: Api) -> None:
    response = create(api, db, roles=("handler", "partner"))
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"] == PARTNER_REFUSED
    assert count_people(db) == DEMO_PEOPLE_COUNT


# --- update ----------------------------------------------------------------------------


def test_role_change_is_audited_with_before_and_after(db: Session, api: Api) -> None:
    response = patch_person(
        api, db, actor="dc.admin", username="dc.handler", roles=["unit_leader", "handler"]
    )

    assert response.status_code == 200
    assert response.json()["roles"] == ["handler", "unit_leader"]
    assert response.json()["version"] == 2
    handler = person(db, "dc.handler")
    assert handler.roles == ["handler", "unit_leader"]
    [row] = audit_of(db, action="org.person.update", entity_id=handler.id)
    assert row.before["roles"] == ["handler"]
    assert row.after["roles"] == ["handler", "unit_leader"]
    assert row.actor_name == "东城街道管理员 郑洁(dc.admin)"


def test_all_roles_can_be_removed(db: Session, api: Api) -> None:
    response = patch_person(api, db, actor="dc.admin", username="dc.handler", roles=[])
    assert response.status_code == 200
    assert response.json()["roles"] == []
    assert person(db, "dc.handler").roles == []


def test_partner_role_is_refused_on_update(db: Session, api: Api) -> None:
    response = patch_person(api, db, actor="dc.admin", username="dc.handler", roles=["partner"])
    assert response.status_code == 400
    assert error_of(response)["message"] == PARTNER_REFUSED
    assert person(db, "dc.handler").roles == ["handler"]


def test_details_change_and_phone_clears(db: Session, api: Api) -> None:
    first = patch_person(
        api,
        db,
        actor="dc.admin",
        username="dc.handler",
        display_name=" 吴涛（东城） ",
        phone="0769-22223333",
    )
    assert first.status_code == 200
    body = first.json()
    assert (body["display_name"], body["phone"]) == ("吴涛（东城）", "0769-22223333")
    cleared = patch_person(api, db, actor="dc.admin", username="dc.handler", phone=None)
    assert cleared.status_code == 200
    assert cleared.json()["phone"] is None
    assert cleared.json()["display_name"] == "吴涛（东城）"


def test_person_moves_to_a_community_of_the_town(db: Session, api: Api) -> None:
    community = unit_id(db, DONGCHENG.community)
    response = patch_person(
        api, db, actor="dc.admin", username="dc.handler", unit_id=str(community)
    )
    assert response.status_code == 200
    assert person(db, "dc.handler").unit_id == community


def test_stale_version_is_409(db: Session, api: Api) -> None:
    handler = person(db, "dc.handler")
    seen = handler.version
    client = api("dc.admin")
    first = client.patch(
        f"/api/v1/people/{handler.id}", json={"version": seen, "display_name": "甲"}
    )
    assert first.status_code == 200

    second = client.patch(
        f"/api/v1/people/{handler.id}", json={"version": seen, "display_name": "乙"}
    )

    assert second.status_code == 409
    error = error_of(second)
    assert error["code"] == "stale_version"
    assert error["message"] == STALE
    fresh = person(db, "dc.handler")
    assert (fresh.display_name, fresh.version) == ("甲", seen + 1)


@pytest.mark.parametrize("admin", ["admin", "dc.admin"])
def test_admin_cannot_deactivate_self(db: Session, api: Api, admin: str) -> None:
    response = patch_person(api, db, actor=admin, username=admin, active=False)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"] == "不能停用自己的账号"
    assert person(db, admin).active is True


@pytest.mark.parametrize("roles", [[], ["auditor"], ["handler", "leader"]])
def test_admin_cannot_drop_own_admin_role(db: Session, api: Api, roles: list[str]) -> None:
    response = patch_person(api, db, actor="admin", username="admin", roles=roles)
    assert response.status_code == 400
    assert error_of(response)["message"] == "不能取消自己的管理员角色"
    assert person(db, "admin").roles == ["admin"]


def test_admin_may_add_a_role_to_self(db: Session, api: Api) -> None:
    response = patch_person(api, db, actor="admin", username="admin", roles=["admin", "leader"])
    assert response.status_code == 200
    assert response.json()["roles"] == ["admin", "leader"]


def test_one_admin_may_deactivate_another(db: Session, api: Api) -> None:
    response = patch_person(api, db, actor="admin", username="dc.admin", active=False)
    assert response.status_code == 200
    assert person(db, "dc.admin").active is False


# --- passwords -------------------------------------------------------------------------


def test_admin_reset_is_audited_without_the_secret(db: Session, api: Api) -> None:
    handler = person(db, "dc.handler")
    old_hash = handler.password_hash
    response = api("dc.admin").post(
        f"/api/v1/people/{handler.id}/password", json={"password": "Fresh-Passw0rd-9"}
    )
    assert response.status_code == 204
    assert response.content == b""
    assert person(db, "dc.handler").password_hash != old_hash
    [row] = audit_of(db, action="org.person.password_reset", entity_id=handler.id)
    assert row.after == {"by_self": False}


def test_a_person_may_change_their_own_password(db: Session, api: Api) -> None:
    handler = person(db, "dc.handler")
    response = api("dc.handler").post(
        f"/api/v1/people/{handler.id}/password", json={"password": "Fresh-Passw0rd-9"}
    )
    assert response.status_code == 204
    [row] = audit_of(db, action="org.person.password_reset", entity_id=handler.id)
    assert row.after == {"by_self": True}


def test_a_handler_cannot_reset_a_colleagues_password(db: Session, api: Api) -> None:
    leader = person(db, "dc.leader")
    old_hash = leader.password_hash
    response = api("dc.handler").post(
        f"/api/v1/people/{leader.id}/password", json={"password": "Fresh-Passw0rd-9"}
    )
    assert response.status_code == 403
    assert error_of(response)["details"] == {"permission": "org:person:write"}
    assert person(db, "dc.leader").password_hash == old_hash


def test_weak_reset_password_is_400(db: Session, api: Api) -> None:
    handler = person(db, "dc.handler")
    response = api("dc.admin").post(
        f"/api/v1/people/{handler.id}/password", json={"password": "onlylowercase"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "weak_password"


# --- list ------------------------------------------------------------------------------


def people(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/people", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def test_people_list_orders_by_unit_then_username(api: Api) -> None:
    page = people(api("admin"), limit=500)
    assert page["total"] == DEMO_PEOPLE_COUNT
    assert [p["username"] for p in page["items"]] == ALL_PEOPLE_IN_ORDER


@pytest.mark.parametrize(
    ("params", "usernames"),
    [
        ({"role": "handler"}, ["dc.handler", "sj.handler", "zjj.handler"]),
        ({"role": "admin"}, ["admin", "dc.admin", "sj.admin"]),
        ({"role": "auditor"}, ["auditor"]),
        ({"role": "nonsense"}, []),
        ({"q": "东城"}, ["dc.admin", "dc.handler", "dc.leader"]),
        ({"q": "sj."}, ["sj.admin", "sj.handler"]),
        ({"q": "话务员"}, ["calltaker"]),
        ({"q": "handler", "role": "handler"}, ["dc.handler", "sj.handler", "zjj.handler"]),
        ({"q": "东城", "role": "admin"}, ["dc.admin"]),
        ({"active": "false"}, []),
    ],
)
def test_people_list_filters(api: Api, params: dict[str, str], usernames: list[str]) -> None:
    page = people(api("admin"), **params)
    assert page["total"] == len(usernames)
    assert [p["username"] for p in page["items"]] == usernames


def test_people_list_by_unit(db: Session, api: Api) -> None:
    page = people(api("admin"), unit_id=str(unit_id(db, BUREAU)))
    assert [p["username"] for p in page["items"]] == [
        "callback",
        "calltaker",
        "dispatcher",
        "supervisor",
    ]


def test_people_list_active_filter_sees_deactivation(db: Session, api: Api) -> None:
    patch_person(api, db, actor="dc.admin", username="dc.handler", active=False)
    client = api("admin")
    assert [p["username"] for p in people(client, active="false")["items"]] == ["dc.handler"]
    assert people(client, active="true")["total"] == DEMO_PEOPLE_COUNT - 1


def test_people_list_pages(api: Api) -> None:
    page = people(api("admin"), limit=5, offset=10)
    assert (page["total"], page["limit"], page["offset"]) == (DEMO_PEOPLE_COUNT, 5, 10)
    assert [p["username"] for p in page["items"]] == ALL_PEOPLE_IN_ORDER[10:]
    past_the_end = people(api("admin"), limit=5, offset=50)
    assert (past_the_end["total"], past_the_end["items"]) == (DEMO_PEOPLE_COUNT, [])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}])
def test_people_list_bounds_are_422(api: Api, params: dict[str, int]) -> None:
    response = api("admin").get("/api/v1/people", params=params)
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"
