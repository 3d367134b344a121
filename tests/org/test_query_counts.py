"""List endpoints run a fixed number of SQL statements, however many rows they return."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import QueryCounter, unit_id
from tests.org.builders import (
    DEMO_PEOPLE_COUNT,
    DEMO_UNITS_COUNT,
    DONGCHENG,
    STRONG_PASSWORD,
)
from zhengshu.kernel.authz import system_principal
from zhengshu.org import service
from zhengshu.org.roles import Role, UnitKind
from zhengshu.org.schemas import PersonCreate, UnitCreate

Api = Callable[[str], TestClient]
Counter = Callable[[], QueryCounter]

# Who is asking: the token (with its kind: an Open311 key is no bearer credential) joined
# with its person, the person's roles and the scope unit, in one statement.
AUTH_STATEMENTS = 1
# count + page + the page's roles in one selectin query.
PEOPLE_LIST_STATEMENTS = AUTH_STATEMENTS + 3
# count + page.
UNIT_LIST_STATEMENTS = AUTH_STATEMENTS + 2


@pytest.fixture(autouse=True)
def _one_hash_for_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 is slow on purpose; the bulk people here share one precomputed hash."""
    stored = service.hash_password(STRONG_PASSWORD)
    monkeypatch.setattr(service, "hash_password", lambda _password: stored)


def add_people(db: Session, *, count: int, unit_code: str) -> None:
    unit = unit_id(db, unit_code)
    for n in range(count):
        service.create_person(
            db,
            system_principal(),
            data=PersonCreate(
                username=f"bulk.{n:02d}",
                display_name=f"批量人员 {n:02d}",
                unit_id=unit,
                roles=[Role.HANDLER, Role.UNIT_LEADER] if n % 2 else [Role.HANDLER],
                password=STRONG_PASSWORD,
            ),
        )
    db.commit()


def add_communities(db: Session, *, count: int, parent_code: str) -> None:
    parent = unit_id(db, parent_code)
    for n in range(count):
        service.create_unit(
            db,
            system_principal(),
            data=UnitCreate(
                parent_id=parent,
                kind=UnitKind.COMMUNITY,
                code=f"{parent_code[:9]}9{n:02d}",
                name=f"批量社区{n:02d}",
            ),
        )
    db.commit()


def statements_for(count_queries: Counter, client: TestClient, url: str) -> tuple[int, int]:
    """(statements run, total reported) for one GET."""
    counter = count_queries()
    response = client.get(url)
    assert response.status_code == 200, response.text
    return counter.count, response.json()["total"]


@pytest.mark.parametrize(("actor", "visible"), [("admin", DEMO_PEOPLE_COUNT), (DONGCHENG.admin, 3)])
def test_people_list_statement_count_does_not_grow_with_people(
    db: Session, api: Api, count_queries: Counter, actor: str, visible: int
) -> None:
    client = api(actor)
    url = "/api/v1/people?limit=50"
    before, total_before = statements_for(count_queries, client, url)

    add_people(db, count=20, unit_code=DONGCHENG.community)
    after, total_after = statements_for(count_queries, client, url)

    assert (total_before, total_after) == (visible, visible + 20)
    assert after == before == PEOPLE_LIST_STATEMENTS


@pytest.mark.parametrize(("actor", "visible"), [("admin", DEMO_UNITS_COUNT), (DONGCHENG.admin, 10)])
def test_unit_list_statement_count_does_not_grow_with_units(
    db: Session, api: Api, count_queries: Counter, actor: str, visible: int
) -> None:
    client = api(actor)
    url = "/api/v1/units?limit=500"
    before, total_before = statements_for(count_queries, client, url)

    add_communities(db, count=20, parent_code=DONGCHENG.code)
    after, total_after = statements_for(count_queries, client, url)

    assert (total_before, total_after) == (visible, visible + 20)
    assert after == before == UNIT_LIST_STATEMENTS


def test_people_page_statement_count_does_not_grow_with_people(
    db: Session, api: Api, count_queries: Counter
) -> None:
    client = api("admin")
    before = page_statements(count_queries, client, "/admin/people", expect="共 13 人")
    add_people(db, count=20, unit_code=DONGCHENG.community)
    after = page_statements(count_queries, client, "/admin/people", expect="共 33 人")
    assert after == before == PEOPLE_LIST_STATEMENTS


def page_statements(count_queries: Counter, client: TestClient, url: str, *, expect: str) -> int:
    counter = count_queries()
    page = client.get(url)
    statements = counter.count
    assert page.status_code == 200
    assert expect in page.text
    return statements
