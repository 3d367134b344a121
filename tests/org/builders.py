"""Small builders and look-ups shared by the organisation tests (not a test module)."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD
from zhengshu.kernel.audit import AuditEntry
from zhengshu.org import repository
from zhengshu.org.models import Person, Unit
from zhengshu.org.seed import demo_units_csv

CITY = "441900000000"
BUREAU = "D020"
HOUSING = "D001"
STRONG_PASSWORD = "New-Passw0rd-2025"


@dataclass(frozen=True)
class Town:
    """A town of the demo city with its demo accounts and a child of each kind."""

    code: str
    name: str
    admin: str
    handler: str
    community: str
    office: str
    people: frozenset[str]


DONGCHENG = Town(
    code="441900003000",
    name="东城街道",
    admin="dc.admin",
    handler="dc.handler",
    community="441900003001",  # 岗贝社区
    office="441900003000-D01",
    people=frozenset({"dc.leader", "dc.handler", "dc.admin"}),
)
SHIJIE = Town(
    code="441900101000",
    name="石碣镇",
    admin="sj.admin",
    handler="sj.handler",
    community="441900101002",  # 城中社区
    office="441900101000-D01",
    people=frozenset({"sj.handler", "sj.admin"}),
)
DEMO_PEOPLE_COUNT = 13
DEMO_UNITS_COUNT = 215


def csv_subtree(code: str) -> set[str]:
    """Codes of a unit and everything under it, read from the demo CSV itself."""
    rows = list(csv.DictReader(io.StringIO(demo_units_csv())))
    found = {code}
    grew = True
    while grew:
        more = {r["code"] for r in rows if r["parent_code"] in found} - found
        found |= more
        grew = bool(more)
    return found


def error_of(response: Response) -> dict[str, Any]:
    """The ``error`` object of an API error response."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "message_en", "details"}, error
    return error


def unit_payload(
    *,
    parent_id: uuid.UUID,
    kind: str = "community",
    code: str = "441900003999",
    name: str = "测试社区",
    short_name: str | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "parent_id": str(parent_id),
        "kind": kind,
        "code": code,
        "name": name,
    }
    if short_name is not None:
        payload["short_name"] = short_name
    return payload


def person_payload(
    *,
    unit_id: uuid.UUID,
    username: str = "dc.new",
    display_name: str = "东城新同事 林立",
    roles: tuple[str, ...] = ("handler",),
    password: str = STRONG_PASSWORD,
    phone: str | None = None,
    scope_unit_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "username": username,
        "display_name": display_name,
        "unit_id": str(unit_id),
        "roles": list(roles),
        "password": password,
    }
    if phone is not None:
        payload["phone"] = phone
    if scope_unit_id is not None:
        payload["scope_unit_id"] = str(scope_unit_id)
    return payload


def unit_by_code(db: Session, code: str) -> Unit:
    """A fresh read of a unit (what the app committed, not the test session's cache)."""
    db.expire_all()
    unit = repository.unit_by_code(db, code)
    assert unit is not None, code
    return unit


def person(db: Session, username: str) -> Person:
    """A fresh read of a person."""
    db.expire_all()
    found = repository.person_by_username(db, username)
    assert found is not None, username
    return found


def count_people(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Person)).scalar_one()


def count_units(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Unit)).scalar_one()


def audit_rows(db: Session, *, action: str, entity_id: object | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == str(entity_id))
    db.expire_all()
    return list(db.execute(query).scalars())


def web_login(
    client: TestClient,
    *,
    username: str,
    password: str = PASSWORD,
    next_path: str = "/",
) -> Response:
    return client.post(
        "/login",
        data={"username": username, "password": password, "next": next_path},
        follow_redirects=False,
    )


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from_page(client: TestClient, path: str = "/") -> str:
    """The CSRF token a logged-in page embeds in its forms (the logout form is on every page)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF_INPUT.search(page.text)
    assert match is not None, "no csrf_token input on the page"
    return match.group(1)


def csv_text(*rows: str) -> str:
    return "\n".join(["code,parent_code,kind,name,short_name", *rows]) + "\n"


def post_csv(client: TestClient, text: str) -> Response:
    return client.post(
        "/api/v1/units/import",
        content=text.encode("utf-8"),
        headers={"Content-Type": "text/csv"},
    )
