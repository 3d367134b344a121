"""Many people act on the same order at the same instant: exactly one wins, the others are
told 409 in plain Chinese, and nothing is lost or doubled.

These tests need real concurrent transactions, so they run against a database of their
own (SQLite file, or a fresh PostgreSQL database when ``ZHENGSHU_TEST_DATABASE_URL`` is
set), served by an app whose every request commits for real: not the suite's per-test
rolled-back connection. On SQLite a writing request begins ``BEGIN IMMEDIATE`` (the
writers queue); on PostgreSQL they run side by side under READ COMMITTED and the version
compare-and-set decides.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.conftest import PASSWORD, create_database, factory_for, make_settings
from zhengshu.app import create_app
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import migrate
from zhengshu.kernel.audit import AuditEntry, verify
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.db import make_engine
from zhengshu.modules.hotline.models import Order
from zhengshu.org.models import Person, Unit
from zhengshu.org.seed import seed_demo

CLIENTS = 8
DONGCHENG = "441900003000"
CJK = re.compile(r"[\u4e00-\u9fff]")
# What a loser may be told: the order moved on under it (version compare-and-set), or it
# is no longer in a state that allows the action (checked first when writers queue).
LOSER_CODES = {"stale_version", "wrong_state"}


@dataclass
class Live:
    app: Any
    engine: Engine
    tokens: dict[str, str]

    def client(self, username: str) -> TestClient:
        return TestClient(
            self.app,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {self.tokens[username]}"},
        )

    def session(self) -> Session:
        return factory_for(self.engine)()

    def person_id(self, username: str) -> str:
        with self.session() as session:
            return str(
                session.execute(select(Person.id).where(Person.username == username)).scalar_one()
            )

    def unit_id(self, code: str) -> str:
        with self.session() as session:
            return str(session.execute(select(Unit.id).where(Unit.code == code)).scalar_one())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("concurrency")
    database = create_database(folder)
    settings = make_settings(database.url, folder / "data")
    engine = make_engine(settings)
    migrate.upgrade(engine)
    with factory_for(engine)() as session:
        seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
        session.commit()
    app = create_app(settings)
    login = TestClient(app, base_url="http://testserver")
    tokens = {}
    for username in ("calltaker", "dispatcher", "callback", "dc.handler", "dc.leader", "admin"):
        response = login.post(
            "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        tokens[username] = response.json()["access_token"]
    yield Live(app, engine, tokens)
    app.state.engine.dispose()
    engine.dispose()
    database.drop()


def race(calls: list[Callable[[], Response]]) -> list[Response]:
    """Run every call in its own thread, all released at the same instant."""
    start = threading.Barrier(len(calls))
    results: list[Response | BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported below, not lost in the thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, Response)]


def one_winner(responses: list[Response]) -> Response:
    """Exactly one 200; every other answer a 409 with a Chinese message."""
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (len(responses) - 1), [
        (r.status_code, r.text[:200]) for r in responses
    ]
    for loser in (r for r in responses if r.status_code == 409):
        error = loser.json()["error"]
        assert error["code"] in LOSER_CODES, error
        assert CJK.search(error["message"]), error
        assert "刷新" in error["message"] or "不能" in error["message"], error
        assert error["message_en"]
    return next(r for r in responses if r.status_code == 200)


def new_order(live: Live, content: str = "楼道电动车充电，存在消防隐患。") -> dict[str, Any]:
    response = live.client("calltaker").post(
        "/api/v1/orders",
        json={"requester_name": "陈先生", "requester_phone": "13800138000", "content": content},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def act(live: Live, who: str, order: dict[str, Any], action: str, **body: Any) -> dict[str, Any]:
    response = live.client(who).post(f"/api/v1/orders/{order['id']}/actions/{action}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def dispatched(live: Live) -> dict[str, Any]:
    return act(live, "dispatcher", new_order(live), "dispatch", unit_id=live.unit_id(DONGCHENG))


def events(live: Live, order_id: str, action: str) -> int:
    with live.session() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == uuid.UUID(order_id), CaseEvent.action == action)
            ).scalar_one()
        )


def audit_rows(live: Live, order_id: str, action: str) -> int:
    with live.session() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.entity_id == order_id, AuditEntry.action == action)
            ).scalar_one()
        )


def case_of(live: Live, order_id: str) -> Case:
    with live.session() as session:
        case = session.get(Case, uuid.UUID(order_id))
        assert case is not None
        return case


def test_many_sign_fors_at_once_one_wins(live: Live) -> None:
    order = dispatched(live)
    version = case_of(live, order["id"]).version
    who = ["dc.handler", "dc.leader"] * (CLIENTS // 2)
    url = f"/api/v1/orders/{order['id']}/actions/sign_for"
    clients = [live.client(name) for name in who]
    winner = one_winner(race([lambda c=c: c.post(url, json={}) for c in clients]))
    assert winner.json()["status"] == "handling"
    assert events(live, order["id"], "sign_for") == 1
    assert audit_rows(live, order["id"], "hotline.sign_for") == 1
    assert case_of(live, order["id"]).version == version + 1


def test_many_replies_at_once_one_wins_and_its_text_is_kept(live: Live) -> None:
    order = act(live, "dc.handler", dispatched(live), "sign_for")
    url = f"/api/v1/orders/{order['id']}/actions/reply"
    clients = [live.client("dc.handler" if i % 2 else "dc.leader") for i in range(CLIENTS)]
    notes = [f"第 {i} 位承办人的答复：已处理完毕。" for i in range(CLIENTS)]
    calls = [
        lambda c=c, n=n: c.post(url, json={"note": n}) for c, n in zip(clients, notes, strict=True)
    ]
    responses = race(calls)
    winner = one_winner(responses)
    won = notes[responses.index(winner)]
    with live.session() as session:
        stored = session.get(Order, uuid.UUID(order["id"]))
        assert stored is not None
        # The winner's answer, not overwritten by a loser's.
        assert stored.reply_text == won
    assert events(live, order["id"], "reply") == 1


def test_many_merges_of_one_order_at_once_one_wins(live: Live) -> None:
    duplicate = new_order(live, "同一诉求再次来电。")
    parents = [new_order(live, f"主工单 {i}") for i in range(CLIENTS)]
    url = f"/api/v1/orders/{duplicate['id']}/actions/merge"
    clients = [live.client("dispatcher" if i % 2 else "calltaker") for i in range(CLIENTS)]
    calls = [
        lambda c=c, p=p: c.post(url, json={"parent_number": p["number"]})
        for c, p in zip(clients, parents, strict=True)
    ]
    responses = race(calls)
    winner = one_winner(responses)
    parent = parents[responses.index(winner)]
    merged = case_of(live, duplicate["id"])
    assert merged.status == "merged"
    assert str(merged.parent_id) == parent["id"]
    # Only the winning parent notes the merged duplicate.
    assert sum(events(live, p["id"], "merged_in") for p in parents) == 1
    assert events(live, parent["id"], "merged_in") == 1


def test_merges_of_different_duplicates_into_one_parent_all_succeed(live: Live) -> None:
    """Different orders, so nobody loses: the parent's timeline takes every note, in
    order, without two notes claiming the same place."""
    parent = new_order(live, "主工单：小区噪音扰民。")
    duplicates = [new_order(live, f"重复来电 {i}") for i in range(CLIENTS)]
    client = live.client("dispatcher")
    calls = [
        lambda d=d: client.post(
            f"/api/v1/orders/{d['id']}/actions/merge", json={"parent_number": parent["number"]}
        )
        for d in duplicates
    ]
    responses = race(calls)
    assert [r.status_code for r in responses] == [200] * CLIENTS, [r.text for r in responses]
    assert events(live, parent["id"], "merged_in") == CLIENTS
    with live.session() as session:
        seqs = session.execute(
            select(CaseEvent.seq)
            .where(CaseEvent.case_id == uuid.UUID(parent["id"]))
            .order_by(CaseEvent.seq)
        ).scalars()
        assert list(seqs) == list(range(1, CLIENTS + 2))


def test_reveals_at_once_each_leave_their_own_timeline_entry(live: Live) -> None:
    order = new_order(live)
    url = f"/api/v1/orders/{order['id']}/reveal"
    clients = [live.client("dispatcher" if i % 2 else "calltaker") for i in range(CLIENTS)]
    responses = race([lambda c=c: c.post(url) for c in clients])
    assert [r.status_code for r in responses] == [200] * CLIENTS, [r.text for r in responses]
    assert events(live, order["id"], "reveal") == CLIENTS
    assert audit_rows(live, order["id"], "hotline.reveal") == CLIENTS


def test_orders_registered_at_once_get_distinct_numbers(live: Live) -> None:
    client = live.client("calltaker")
    body = {"requester_name": "陈先生", "requester_phone": "13800138000", "content": "同时来电"}
    responses = race([lambda: client.post("/api/v1/orders", json=body)] * CLIENTS)
    assert [r.status_code for r in responses] == [201] * CLIENTS, [r.text for r in responses]
    assert len({r.json()["number"] for r in responses}) == CLIENTS


def test_a_stale_page_cannot_overwrite_a_newer_action(live: Live) -> None:
    """The version the page showed travels with the action: a page left open while
    someone else acted is refused, never applied over their work."""
    order = dispatched(live)
    seen = order["version"]
    act(live, "dc.handler", order, "sign_for", version=seen)
    late = live.client("dc.leader").post(
        f"/api/v1/orders/{order['id']}/actions/return_order",
        json={"version": seen, "note": "不属于本单位职责"},
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "stale_version"
    assert late.json()["error"]["message"] == "工单已被他人处理，请刷新后重试"
    assert case_of(live, order["id"]).status == "handling"


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("units", "name", "东城街道（{n}）"),
        ("people", "display_name", "东城街道承办人 吴涛（{n}）"),
    ],
)
def test_edits_with_the_same_version_at_once_one_wins(
    live: Live, path: str, field: str, value: str
) -> None:
    admin = live.client("admin")
    target = live.unit_id(DONGCHENG) if path == "units" else live.person_id("dc.handler")
    current = admin.get(f"/api/v1/{path}/{target}").json()
    clients = [live.client("admin") for _ in range(CLIENTS)]
    values = [value.format(n=i) for i in range(CLIENTS)]
    calls = [
        lambda c=c, v=v: c.patch(
            f"/api/v1/{path}/{target}", json={"version": current["version"], field: v}
        )
        for c, v in zip(clients, values, strict=True)
    ]
    responses = race(calls)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (CLIENTS - 1), [r.text[:200] for r in responses]
    winner = next(r for r in responses if r.status_code == 200)
    for loser in (r for r in responses if r.status_code == 409):
        error = loser.json()["error"]
        assert error["code"] == "stale_version"
        assert "已被他人修改，请刷新后重试" in error["message"]
    after = admin.get(f"/api/v1/{path}/{target}").json()
    assert after[field] == winner.json()[field] == values[responses.index(winner)]
    assert after["version"] == current["version"] + 1


def test_the_audit_chain_holds_after_all_the_races(live: Live) -> None:
    with live.session() as session:
        report = verify(session)
    assert report.ok, report.problem
