"""Jurisdiction through the API: a user of town A cannot read or change anything of town B.

Every refusal for a record outside the caller's scope is a 404, exactly like a missing
record, and leaves the database (units, people, audit log) exactly as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from tests.org.builders import (
    CITY,
    DONGCHENG,
    SHIJIE,
    STRONG_PASSWORD,
    Town,
    csv_subtree,
    error_of,
    person,
    person_payload,
    unit_by_code,
    unit_payload,
)
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import system_principal
from zhengshu.org import service
from zhengshu.org.models import Person, Unit
from zhengshu.org.schemas import PersonCreate

UNIT_NOT_FOUND = "单位不存在或无权查看"
PERSON_NOT_FOUND = "人员不存在或无权查看"
NO_PERMISSION = "您没有执行此操作的权限"

Api = Callable[[str], TestClient]


@dataclass(frozen=True)
class Targets:
    """Ids in the caller's own town and in the other town."""

    own_unit: uuid.UUID
    own_community: uuid.UUID
    own_person: uuid.UUID
    other_unit: uuid.UUID
    other_community: uuid.UUID
    other_office: uuid.UUID
    other_person: uuid.UUID


def targets(db: Session, *, own: Town, other: Town) -> Targets:
    return Targets(
        own_unit=unit_id(db, own.code),
        own_community=unit_id(db, own.community),
        own_person=person(db, own.handler).id,
        other_unit=unit_id(db, other.code),
        other_community=unit_id(db, other.community),
        other_office=unit_id(db, other.office),
        other_person=person(db, other.handler).id,
    )


@dataclass(frozen=True)
class Probe:
    method: str
    path: Callable[[Targets], str]
    body: Callable[[Targets], dict[str, Any] | None]
    message: str

    def send(self, client: TestClient, t: Targets) -> Any:
        body = self.body(t)
        if body is None:
            return client.request(self.method, self.path(t))
        return client.request(self.method, self.path(t), json=body)


def _none(_t: Targets) -> None:
    return None


PROBES = {
    "read-town": Probe("GET", lambda t: f"/api/v1/units/{t.other_unit}", _none, UNIT_NOT_FOUND),
    "read-community": Probe(
        "GET", lambda t: f"/api/v1/units/{t.other_community}", _none, UNIT_NOT_FOUND
    ),
    "read-office": Probe("GET", lambda t: f"/api/v1/units/{t.other_office}", _none, UNIT_NOT_FOUND),
    "rename-town": Probe(
        "PATCH",
        lambda t: f"/api/v1/units/{t.other_unit}",
        lambda _t: {"version": 1, "name": "被改名的镇"},
        UNIT_NOT_FOUND,
    ),
    "rename-community": Probe(
        "PATCH",
        lambda t: f"/api/v1/units/{t.other_community}",
        lambda _t: {"version": 1, "name": "被改名的社区"},
        UNIT_NOT_FOUND,
    ),
    "deactivate-office": Probe(
        "PATCH",
        lambda t: f"/api/v1/units/{t.other_office}",
        lambda _t: {"version": 1, "active": False},
        UNIT_NOT_FOUND,
    ),
    "create-unit-under-other": Probe(
        "POST",
        lambda _t: "/api/v1/units",
        lambda t: unit_payload(parent_id=t.other_unit, code="449999999001"),
        UNIT_NOT_FOUND,
    ),
    "move-own-community-into-other": Probe(
        "PATCH",
        lambda t: f"/api/v1/units/{t.own_community}",
        lambda t: {"version": 1, "parent_id": str(t.other_unit)},
        UNIT_NOT_FOUND,
    ),
    "read-person": Probe(
        "GET", lambda t: f"/api/v1/people/{t.other_person}", _none, PERSON_NOT_FOUND
    ),
    "edit-person": Probe(
        "PATCH",
        lambda t: f"/api/v1/people/{t.other_person}",
        lambda _t: {"version": 1, "display_name": "被改名的人"},
        PERSON_NOT_FOUND,
    ),
    "deactivate-person": Probe(
        "PATCH",
        lambda t: f"/api/v1/people/{t.other_person}",
        lambda _t: {"version": 1, "active": False},
        PERSON_NOT_FOUND,
    ),
    "reset-password": Probe(
        "POST",
        lambda t: f"/api/v1/people/{t.other_person}/password",
        lambda _t: {"password": STRONG_PASSWORD},
        PERSON_NOT_FOUND,
    ),
    "create-person-in-other": Probe(
        "POST",
        lambda _t: "/api/v1/people",
        lambda t: person_payload(unit_id=t.other_unit, username="intruder"),
        UNIT_NOT_FOUND,
    ),
    "create-person-scoped-to-other": Probe(
        "POST",
        lambda _t: "/api/v1/people",
        lambda t: person_payload(
            unit_id=t.own_unit, scope_unit_id=t.other_unit, username="intruder"
        ),
        UNIT_NOT_FOUND,
    ),
    "move-own-person-into-other": Probe(
        "PATCH",
        lambda t: f"/api/v1/people/{t.own_person}",
        lambda t: {"version": 1, "unit_id": str(t.other_unit)},
        UNIT_NOT_FOUND,
    ),
    "widen-own-person-scope-to-other": Probe(
        "PATCH",
        lambda t: f"/api/v1/people/{t.own_person}",
        lambda t: {"version": 1, "scope_unit_id": str(t.other_unit)},
        UNIT_NOT_FOUND,
    ),
    "issue-token-for-other": Probe(
        "POST",
        lambda _t: "/api/v1/tokens",
        lambda t: {"name": "越权令牌", "kind": "partner", "unit_id": str(t.other_unit)},
        UNIT_NOT_FOUND,
    ),
}

DIRECTIONS = pytest.mark.parametrize(
    ("own", "other"), [(DONGCHENG, SHIJIE), (SHIJIE, DONGCHENG)], ids=["dc-vs-sj", "sj-vs-dc"]
)


def world(db: Session) -> dict[str, Any]:
    """Everything a probe could have touched: every unit, every person, the audit log size."""
    db.expire_all()
    units = {
        u.code: (u.name, u.short_name, u.kind, u.parent_id, u.path, u.active, u.version)
        for u in db.execute(select(Unit)).scalars()
    }
    people = {
        p.username: (
            p.display_name,
            p.unit_id,
            p.scope_unit_id,
            tuple(p.roles),
            p.active,
            p.password_hash,
            p.version,
        )
        for p in db.execute(select(Person)).scalars()
    }
    audit_count = db.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    return {"units": units, "people": people, "audit": audit_count}


@DIRECTIONS
@pytest.mark.parametrize("probe", PROBES.values(), ids=PROBES.keys())
def test_town_admin_gets_not_found_for_the_other_town_and_nothing_changes(
    db: Session, api: Api, own: Town, other: Town, probe: Probe
) -> None:
    client = api(own.admin)
    t = targets(db, own=own, other=other)
    before = world(db)

    response = probe.send(client, t)

    assert response.status_code == 404, response.text
    error = error_of(response)
    assert error["code"] == "not_found"
    assert error["message"] == probe.message
    assert world(db) == before


CITY_ADMIN_CAN = {
    "read-town": 200,
    "read-community": 200,
    "read-office": 200,
    "rename-town": 200,
    "rename-community": 200,
    "deactivate-office": 200,
    "create-unit-under-other": 201,
    "read-person": 200,
    "edit-person": 200,
    "deactivate-person": 200,
    "reset-password": 204,
    "create-person-in-other": 201,
    "issue-token-for-other": 201,
}


@pytest.mark.parametrize(("name", "status"), CITY_ADMIN_CAN.items(), ids=CITY_ADMIN_CAN.keys())
def test_city_admin_reaches_every_town(db: Session, api: Api, name: str, status: int) -> None:
    t = targets(db, own=DONGCHENG, other=SHIJIE)
    response = PROBES[name].send(api("admin"), t)
    assert response.status_code == status, response.text


def test_city_admin_rename_of_a_town_is_written(db: Session, api: Api) -> None:
    sj = unit_by_code(db, SHIJIE.code)
    response = api("admin").patch(
        f"/api/v1/units/{sj.id}", json={"version": sj.version, "name": "石碣镇（新）"}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "石碣镇（新）"
    assert unit_by_code(db, SHIJIE.code).name == "石碣镇（新）"


@DIRECTIONS
def test_unit_list_holds_exactly_the_own_subtree(
    db: Session, api: Api, own: Town, other: Town
) -> None:
    expected = csv_subtree(own.code)
    response = api(own.admin).get("/api/v1/units", params={"limit": 500})
    assert response.status_code == 200
    page = response.json()
    codes = {u["code"] for u in page["items"]}
    assert page["total"] == len(expected)
    assert codes == expected
    assert codes.isdisjoint(csv_subtree(other.code))


def test_dongcheng_subtree_is_the_street_its_communities_and_offices(db: Session, api: Api) -> None:
    page = api(DONGCHENG.admin).get("/api/v1/units").json()
    kinds = sorted(u["kind"] for u in page["items"])
    assert page["total"] == 10
    assert kinds == ["community"] * 6 + ["office"] * 3 + ["street"]


@DIRECTIONS
def test_unit_list_filters_cannot_reach_the_other_town(
    db: Session, api: Api, own: Town, other: Town
) -> None:
    client = api(own.admin)
    by_parent = client.get("/api/v1/units", params={"parent_id": str(unit_id(db, other.code))})
    by_name = client.get("/api/v1/units", params={"q": other.name[:2]})
    by_code = client.get("/api/v1/units", params={"q": other.code})
    for response in (by_parent, by_name, by_code):
        assert response.status_code == 200
        assert response.json()["total"] == 0
        assert response.json()["items"] == []


@DIRECTIONS
def test_people_list_holds_only_own_people(db: Session, api: Api, own: Town, other: Town) -> None:
    client = api(own.admin)
    everyone = client.get("/api/v1/people", params={"limit": 500}).json()
    assert everyone["total"] == len(own.people)
    assert {p["username"] for p in everyone["items"]} == own.people
    in_other = client.get("/api/v1/people", params={"unit_id": str(unit_id(db, other.code))})
    assert in_other.json()["total"] == 0
    by_name = client.get("/api/v1/people", params={"q": other.handler})
    assert by_name.json()["total"] == 0


@DIRECTIONS
def test_export_holds_only_own_rows(db: Session, api: Api, own: Town, other: Town) -> None:
    response = api(own.admin).get("/api/v1/units/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    lines = response.text.splitlines()
    assert lines[0] == "code,parent_code,kind,name,short_name"
    codes = [line.split(",")[0] for line in lines[1:]]
    assert len(codes) == len(csv_subtree(own.code))
    assert set(codes) == csv_subtree(own.code)
    assert lines[1].startswith(f"{own.code},{CITY},")  # the town first, under the city
    assert other.name not in response.text


@DIRECTIONS
def test_web_pages_of_the_other_town_are_not_found(
    db: Session, api: Api, own: Town, other: Town
) -> None:
    client = api(own.admin)
    unit_page = client.get(f"/admin/units/{unit_id(db, other.code)}")
    person_page = client.get(f"/admin/people/{person(db, other.handler).id}")
    assert unit_page.status_code == 404
    assert UNIT_NOT_FOUND in unit_page.text
    assert person_page.status_code == 404
    assert PERSON_NOT_FOUND in person_page.text
    tree = client.get("/admin/units")
    people = client.get("/admin/people")
    assert tree.status_code == 200
    assert other.name not in tree.text
    assert own.name in tree.text
    assert other.handler not in people.text
    assert own.handler in people.text


def test_handler_reads_own_town_but_cannot_change_it(db: Session, api: Api) -> None:
    client = api(DONGCHENG.handler)
    dc = unit_by_code(db, DONGCHENG.code)
    assert client.get(f"/api/v1/units/{dc.id}").status_code == 200
    before = world(db)

    response = client.patch(f"/api/v1/units/{dc.id}", json={"version": dc.version, "name": "x"})

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert error["message"] == NO_PERMISSION
    assert error["details"] == {"permission": "org:unit:write"}
    assert world(db) == before


def test_handler_cannot_create_people_in_own_town(db: Session, api: Api) -> None:
    client = api(DONGCHENG.handler)
    before = world(db)
    response = client.post(
        "/api/v1/people", json=person_payload(unit_id=unit_id(db, DONGCHENG.code))
    )
    assert response.status_code == 403
    assert error_of(response)["details"] == {"permission": "org:person:write"}
    assert world(db) == before


def test_handler_of_one_town_gets_not_found_not_forbidden_for_the_other(
    db: Session, api: Api
) -> None:
    response = api(DONGCHENG.handler).patch(
        f"/api/v1/units/{unit_id(db, SHIJIE.code)}", json={"version": 1, "name": "x"}
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_auditor_cannot_create_people(db: Session, api: Api) -> None:
    client = api("auditor")
    before = world(db)
    response = client.post(
        "/api/v1/people", json=person_payload(unit_id=unit_id(db, DONGCHENG.code))
    )
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert error["details"] == {"permission": "org:person:write"}
    assert world(db) == before


def _city_scoped_person_in_dongcheng(db: Session) -> Person:
    """Someone who sits in 东城 but works city-wide (as the hotline staff do in the bureau)."""
    created = service.create_person(
        db,
        system_principal(),
        data=PersonCreate(
            username="dc.liaison",
            display_name="东城驻市联络员 陈晨",
            unit_id=unit_id(db, DONGCHENG.code),
            scope_unit_id=unit_id(db, CITY),
            roles=["dispatcher"],
            password=STRONG_PASSWORD,
        ),
    )
    db.commit()
    return created


OUT_OF_SCOPE = "目标单位不在您的管辖范围内"


def test_town_admin_cannot_promote_a_person_whose_scope_exceeds_the_town(
    db: Session, api: Api
) -> None:
    """Regression: the person's wider scope counts, not only the unit they sit in."""
    liaison = _city_scoped_person_in_dongcheng(db)
    response = api(DONGCHENG.admin).patch(
        f"/api/v1/people/{liaison.id}", json={"version": liaison.version, "roles": ["admin"]}
    )
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert error["message"] == OUT_OF_SCOPE
    assert person(db, "dc.liaison").roles == ["dispatcher"]


def test_town_admin_still_reads_a_city_scoped_person_of_the_town(db: Session, api: Api) -> None:
    liaison = _city_scoped_person_in_dongcheng(db)
    response = api(DONGCHENG.admin).get(f"/api/v1/people/{liaison.id}")
    assert response.status_code == 200
    assert response.json()["scope_unit_id"] == str(unit_id(db, CITY))


def test_town_admin_cannot_reset_the_password_of_a_city_scoped_person(
    db: Session, api: Api
) -> None:
    """Regression: a reset would hand the town admin a city-wide account."""
    liaison = _city_scoped_person_in_dongcheng(db)
    old_hash = liaison.password_hash
    response = api(DONGCHENG.admin).post(
        f"/api/v1/people/{liaison.id}/password", json={"password": "Taken-0ver-2025"}
    )
    assert response.status_code == 403
    assert error_of(response)["message"] == OUT_OF_SCOPE
    assert person(db, "dc.liaison").password_hash == old_hash


def test_city_admin_manages_a_city_scoped_person(db: Session, api: Api) -> None:
    liaison = _city_scoped_person_in_dongcheng(db)
    response = api("admin").patch(
        f"/api/v1/people/{liaison.id}", json={"version": liaison.version, "roles": ["leader"]}
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["leader"]


AUDITOR_IS_CITY_ONLY = "只有市级管理员可以授予安全审计员角色"


def test_town_admin_cannot_create_an_auditor(db: Session, api: Api) -> None:
    """Regression: the audit log is not divided by town, so its reader must be city-wide."""
    client = api(DONGCHENG.admin)
    before = world(db)
    response = client.post(
        "/api/v1/people",
        json=person_payload(unit_id=unit_id(db, DONGCHENG.code), roles=("auditor",)),
    )
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert error["message"] == AUDITOR_IS_CITY_ONLY
    assert world(db) == before


def test_town_admin_cannot_make_a_colleague_an_auditor(db: Session, api: Api) -> None:
    handler = person(db, DONGCHENG.handler)
    response = api(DONGCHENG.admin).patch(
        f"/api/v1/people/{handler.id}",
        json={"version": handler.version, "roles": ["handler", "auditor"]},
    )
    assert response.status_code == 403
    assert error_of(response)["message"] == AUDITOR_IS_CITY_ONLY
    assert person(db, DONGCHENG.handler).roles == ["handler"]


def test_city_admin_may_create_an_auditor(db: Session, api: Api) -> None:
    response = api("admin").post(
        "/api/v1/people",
        json=person_payload(unit_id=unit_id(db, CITY), username="auditor2", roles=("auditor",)),
    )
    assert response.status_code == 201
    assert response.json()["roles"] == ["auditor"]


def test_a_token_cannot_carry_the_auditor_role(db: Session, api: Api) -> None:
    client = api(DONGCHENG.admin)
    before = world(db)
    response = client.post(
        "/api/v1/tokens",
        json={
            "name": "东城审计对接",
            "kind": "partner",
            "unit_id": str(unit_id(db, DONGCHENG.code)),
            "roles": ["auditor"],
        },
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"] == "接口令牌只能授予“对接系统”角色"
    assert error["details"] == {"roles": ["auditor"]}
    assert world(db) == before


def test_audit_log_page_is_for_city_wide_auditors_only(db: Session, api: Api) -> None:
    """An auditor placed in a town (by the city admin) still cannot read the city's log."""
    service.create_person(
        db,
        system_principal(),
        data=PersonCreate(
            username="dc.auditor",
            display_name="东城审计员 许可",
            unit_id=unit_id(db, DONGCHENG.code),
            roles=["auditor"],
            password=STRONG_PASSWORD,
        ),
    )
    db.commit()
    town_auditor = api("dc.auditor").get("/admin/audit", headers={"Accept": "application/json"})
    assert town_auditor.status_code == 403
    assert error_of(town_auditor)["message"] == "审计日志不分辖区，只有市级安全审计员可以查看"
    city_auditor = api("auditor").get("/admin/audit", params={"action": "org.person.create"})
    assert city_auditor.status_code == 200
    assert SHIJIE.handler in city_auditor.text
