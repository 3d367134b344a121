"""Every workflow action in every state over the API: who may, from where, to where.

``Desk`` brings a fresh order to any state of hotline.yaml through the API, as the people
of the demo city would; the matrix then takes each action in each state and checks the
status code, the error code and message, the new status and what was written (exactly
one timeline event and one audit row per transition).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import frozen_at, unit_id
from zhengshu.casework.definitions import load_workflow
from zhengshu.casework.models import Case, CaseEvent, Supervision
from zhengshu.kernel import clock
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.clock import FrozenClock

Api = Callable[[str], TestClient]

# Wednesday 30 September 2026, 09:00 Beijing time.
START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)

CITY = "441900000000"
DONGCHENG = "441900003000"
GANGBEI = "441900003001"  # 岗贝社区, a community directly under 东城街道
DONGCHENG_OFFICE = "441900003000-D01"  # 东城执法办, an office directly under 东城街道
SHIJIE = "441900101000"
SHIJIE_VILLAGE = "441900101202"  # 石碣村, under 石碣镇
HOUSING = "D001"  # 住建局

WORKFLOW = load_workflow("hotline")
STATES = list(WORKFLOW.states)
UNASSIGNED = {"registered", "answered", "transferred", "merged"}  # no lead unit yet
UNIT_PEOPLE = {"dc.handler", "dc.leader", "sj.handler", "zjj.handler"}


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


@dataclass
class Desk:
    """The demo city's people working orders through the API."""

    api: Api
    db: Session
    _clients: dict[tuple[str, datetime], TestClient] = field(default_factory=dict)

    def client(self, who: str) -> TestClient:
        # A login token lasts a working session: a new one once the clock has moved.
        key = (who, clock.now())
        if key not in self._clients:
            self._clients[key] = self.api(who)
        return self._clients[key]

    def unit(self, code: str) -> str:
        return str(unit_id(self.db, code))

    def new_order(self, **overrides: object) -> dict[str, Any]:
        body = {
            "channel": "phone",
            "requester_name": "陈先生",
            "requester_phone": "13800138000",
            "content": "东城街道岗贝社区某小区电动车在楼道充电，存在消防隐患。",
            "request_type": "complaint",
            "category": "urban",
            "urgency": "normal",
            **overrides,
        }
        response = self.client("calltaker").post("/api/v1/orders", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def post(self, who: str, order: dict[str, Any], action: str, **body: object) -> httpx.Response:
        return self.client(who).post(f"/api/v1/orders/{order['id']}/actions/{action}", json=body)

    def act(self, who: str, order: dict[str, Any], action: str, **body: object) -> dict[str, Any]:
        response = self.post(who, order, action, **body)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, who: str, order: dict[str, Any]) -> dict[str, Any]:
        response = self.client(who).get(f"/api/v1/orders/{order['id']}")
        assert response.status_code == 200, response.text
        return response.json()

    def timeline(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client("dispatcher").get(f"/api/v1/orders/{order['id']}/timeline")
        assert response.status_code == 200, response.text
        return response.json()

    def bring(self, state: str, **order_fields: object) -> dict[str, Any]:
        """A new order, moved through the API to ``state``."""
        order = self.new_order(**order_fields)
        if state == "registered":
            return order
        if state == "answered":
            return self.act("calltaker", order, "answer_directly", note="已告知办理流程。")
        if state == "transferred":
            return self.act(
                "calltaker", order, "transfer_emergency", target="110", note="涉及治安，转 110。"
            )
        if state == "merged":
            parent = self.new_order()
            return self.act("calltaker", order, "merge", parent_number=parent["number"])
        order = self.act("dispatcher", order, "dispatch", unit_id=self.unit(DONGCHENG))
        if state == "dispatched":
            return order
        if state == "returned":
            return self.act("dc.handler", order, "return_order", note="不属本单位职责。")
        order = self.act("dc.handler", order, "sign_for")
        if state == "handling":
            return order
        if state == "extension_requested":
            return self.act(
                "dc.handler", order, "request_extension", extension="3wd", note="需协调物业。"
            )
        if state == "suspended":
            return self.act("dispatcher", order, "suspend", note="诉求人出差，暂无法核实。")
        order = self.act("dc.handler", order, "reply", note="已清理楼道，设置集中充电点。")
        if state == "replied":
            return order
        order = self.act("callback", order, "callback", solved=True, satisfaction="satisfied")
        assert state == "closed", state
        return order

    def counts(self, order: dict[str, Any]) -> tuple[int, int]:
        """(timeline events, audit rows) of an order."""
        events = self.db.execute(
            select(func.count())
            .select_from(CaseEvent)
            .where(CaseEvent.case_id == uuid.UUID(order["id"]))
        ).scalar_one()
        audits = self.db.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.entity_id == order["id"])
        ).scalar_one()
        return events, audits


@pytest.fixture
def desk(api: Api, db: Session, frozen: FrozenClock) -> Desk:
    return Desk(api, db)


# --------------------------------------------------------------------------- the matrix


def _merge_body(desk: Desk) -> dict[str, object]:
    return {"parent_number": desk.new_order()["number"]}


# action: (who may take it, the body a client sends, what the order's status becomes)
Body = Callable[[Desk], dict[str, object]]
SPEC: dict[str, tuple[str, Body]] = {
    "answer_directly": ("calltaker", lambda d: {"note": "已告知办理流程。"}),
    "transfer_emergency": ("calltaker", lambda d: {"target": "119", "note": "有明火，转 119。"}),
    "dispatch": ("dispatcher", lambda d: {"unit_id": d.unit(DONGCHENG)}),
    "merge": ("calltaker", _merge_body),
    "sign_for": ("dc.handler", lambda d: {}),
    "return_order": ("dc.handler", lambda d: {"note": "不属本单位职责。"}),
    "reject_return": ("dispatcher", lambda d: {"note": "属地管理，请继续办理。"}),
    "redispatch": ("dispatcher", lambda d: {"unit_id": d.unit(HOUSING)}),
    "pass_down": ("dc.leader", lambda d: {"unit_id": d.unit(GANGBEI)}),
    "record_contact": ("dc.handler", lambda d: {"note": "已电话联系诉求人。"}),
    "request_extension": ("dc.handler", lambda d: {"extension": "3wd", "note": "需协调物业。"}),
    "approve_extension": ("dispatcher", lambda d: {}),
    "refuse_extension": ("dispatcher", lambda d: {"note": "时限内可以办结。"}),
    "suspend": ("dispatcher", lambda d: {"note": "诉求人出差，暂无法核实。"}),
    "resume": ("dispatcher", lambda d: {}),
    "reply": ("dc.handler", lambda d: {"note": "已清理楼道。"}),
    "close": ("callback", lambda d: {"solved": True, "satisfaction": "satisfied"}),
    "rework": (
        "callback",
        lambda d: {"solved": False, "satisfaction": "dissatisfied", "note": "楼道仍有电动车。"},
    ),
    "supervise": ("supervisor", lambda d: {"note": "请于一个工作日内办结。"}),
    "urge": ("supervisor", lambda d: {"note": "请加快办理。"}),
}

# A person in the order's jurisdiction who lacks the action's permission.
WRONG_ROLE = {
    "answer_directly": "dispatcher",
    "transfer_emergency": "callback",
    "dispatch": "calltaker",
    "merge": "callback",
    "sign_for": "calltaker",
    "return_order": "dispatcher",
    "reject_return": "dc.handler",
    "redispatch": "calltaker",
    "pass_down": "dc.handler",
    "record_contact": "dispatcher",
    "request_extension": "dispatcher",
    "approve_extension": "dc.handler",
    "refuse_extension": "dc.leader",
    "suspend": "dc.handler",
    "resume": "dc.handler",
    "reply": "callback",
    "close": "dc.handler",
    "rework": "dc.leader",
    "supervise": "dispatcher",
    "urge": "dispatcher",
}


def test_the_matrix_covers_every_action_of_the_workflow() -> None:
    assert set(SPEC) == set(WORKFLOW.actions)
    assert set(WRONG_ROLE) == set(WORKFLOW.actions)


ALLOWED = [
    pytest.param(action, state, id=f"{action}-from-{state}")
    for action, spec in WORKFLOW.actions.items()
    for state in STATES
    if state in spec.sources
]


def _wrong(action: str, state: str) -> Any:
    return pytest.param(action, state, id=f"{action}-in-{state}")


WRONG_STATE = [
    _wrong(action, state)
    for action, spec in WORKFLOW.actions.items()
    for state in STATES
    if state not in spec.sources
]


def test_the_matrix_is_every_action_times_every_state() -> None:
    assert len(ALLOWED) + len(WRONG_STATE) == len(WORKFLOW.actions) * len(WORKFLOW.states)
    assert len(ALLOWED) == sum(len(a.sources) for a in WORKFLOW.actions.values())


@pytest.mark.parametrize(("action", "state"), ALLOWED)
def test_an_allowed_action_moves_the_order(desk: Desk, action: str, state: str) -> None:
    order = desk.bring(state)
    assert order["status"] == state
    who, body = SPEC[action]
    events, audits = desk.counts(order)
    moved = desk.act(who, order, action, **body(desk))
    target = WORKFLOW.action(action).target
    assert moved["status"] == (target or state)
    assert moved["status_label"] == WORKFLOW.state(target or state).label
    # Exactly one timeline event and one audit row, both named for the action.
    assert desk.counts(order) == (events + 1, audits + 1)
    last = desk.timeline(order)[-1]
    assert (last["action"], last["label"]) == (action, WORKFLOW.action(action).label)
    assert (last["from_status"], last["to_status"]) == (state, target)
    audit = desk.db.execute(
        select(AuditEntry.action, AuditEntry.before, AuditEntry.after)
        .where(AuditEntry.entity_id == order["id"])
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).one()
    assert audit.action == f"hotline.{action}"
    assert audit.before["status"] == state
    assert audit.after["status"] == moved["status"]


@pytest.mark.parametrize(("action", "state"), WRONG_STATE)
def test_an_action_in_the_wrong_state_is_refused(desk: Desk, action: str, state: str) -> None:
    order = desk.bring(state)
    who, body = SPEC[action]
    if who in UNIT_PEOPLE and state in UNASSIGNED:
        # No unit sees an order that has no lead unit yet: jurisdiction answers first.
        response = desk.post(who, order, action, **body(desk))
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
        who = "supervisor"  # city-wide; the state is checked before the permission
    events, audits = desk.counts(order)
    response = desk.post(who, order, action, **body(desk))
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "wrong_state"
    label, action_label = WORKFLOW.state(state).label, WORKFLOW.action(action).label
    assert error["message"] == f"工单当前为“{label}”，不能{action_label}"
    assert error["details"] == {"status": state, "action": action}
    assert desk.get("dispatcher", order)["status"] == state
    assert desk.counts(order) == (events, audits)


@pytest.mark.parametrize("action", list(WORKFLOW.actions))
def test_an_action_by_someone_without_the_permission_is_refused(desk: Desk, action: str) -> None:
    spec = WORKFLOW.action(action)
    state = next(s for s in STATES if s in spec.sources)
    order = desk.bring(state)
    _, body = SPEC[action]
    events, audits = desk.counts(order)
    response = desk.post(WRONG_ROLE[action], order, action, **body(desk))
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert error["message"] == "您没有执行此操作的权限"
    assert error["details"] == {"permission": spec.permission}
    after = desk.get("dispatcher", order)
    assert (after["status"], after["version"]) == (state, order["version"])
    assert desk.counts(order) == (events, audits)


def test_the_callback_pseudo_action_closes_or_reworks(desk: Desk) -> None:
    order = desk.bring("replied")
    events, audits = desk.counts(order)
    closed = desk.act("callback", order, "callback", solved=True, satisfaction="very_satisfied")
    assert (closed["status"], closed["solved"], closed["satisfaction"]) == (
        "closed",
        True,
        "very_satisfied",
    )
    assert desk.counts(order) == (events + 1, audits + 1)
    assert desk.timeline(order)[-1]["action"] == "close"

    order = desk.bring("replied")
    events, audits = desk.counts(order)
    again = desk.act(
        "callback", order, "callback", solved=True, satisfaction="dissatisfied", note="不满意"
    )
    assert (again["status"], again["rework_count"]) == ("handling", 1)
    assert desk.counts(order) == (events + 1, audits + 1)
    assert desk.timeline(order)[-1]["action"] == "rework"


def test_the_callback_pseudo_action_in_the_wrong_state(desk: Desk) -> None:
    for state in STATES:
        if state == "replied":
            continue
        order = desk.bring(state)
        response = desk.post("callback", order, "callback", solved=True, satisfaction="satisfied")
        assert response.status_code == 409, (state, response.text)
        label = WORKFLOW.state(state).label
        assert response.json()["error"]["message"] == f"工单当前为“{label}”，不能回访办结"


def test_a_callback_needs_solved_and_satisfaction(desk: Desk) -> None:
    order = desk.bring("replied")
    for body in ({}, {"solved": True}, {"satisfaction": "satisfied"}):
        response = desk.post("callback", order, "callback", **body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "callback_incomplete"
    assert desk.get("callback", order)["status"] == "replied"


def test_close_never_reworks_the_order(desk: Desk) -> None:
    order = desk.bring("replied")
    desk.post("callback", order, "close", solved=False, satisfaction="dissatisfied", note="没修好")
    after = desk.get("callback", order)
    assert (after["status"], after["rework_count"]) != ("handling", 1)


def test_rework_never_closes_the_order(desk: Desk) -> None:
    order = desk.bring("replied")
    desk.post("callback", order, "rework", solved=True, satisfaction="satisfied", note="重办")
    assert desk.get("callback", order)["status"] != "closed"


def test_dispatch_of_an_order_in_handling_is_refused_not_redispatched(desk: Desk) -> None:
    order = desk.bring("handling")
    response = desk.post("dispatcher", order, "dispatch", unit_id=desk.unit(HOUSING))
    assert response.status_code == 409, response.text
    assert desk.get("dispatcher", order)["status"] == "handling"


def test_approving_an_extension_nobody_asked_for_is_a_state_error(desk: Desk) -> None:
    order = desk.bring("handling")
    response = desk.post("dispatcher", order, "approve_extension")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "wrong_state"


def test_an_unknown_action_is_not_found(desk: Desk) -> None:
    order = desk.bring("handling")
    response = desk.post("dispatcher", order, "fly")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "操作不存在或无权查看",
        "message_en": "action not found",
        "details": {},
    }


def test_the_actions_offered_follow_role_and_unit(desk: Desk) -> None:
    order = desk.bring("handling")
    assert desk.get("dc.handler", order)["actions"] == [
        "record_contact",
        "request_extension",
        "reply",
    ]
    assert desk.get("dc.leader", order)["actions"] == [
        "pass_down",
        "record_contact",
        "request_extension",
        "reply",
    ]
    assert desk.get("dispatcher", order)["actions"] == ["redispatch", "suspend"]
    assert desk.get("supervisor", order)["actions"] == ["supervise", "urge"]
    assert desk.get("callback", order)["actions"] == []
    registered = desk.bring("registered")
    assert desk.get("calltaker", registered)["actions"] == [
        "answer_directly",
        "transfer_emergency",
        "merge",
    ]
    assert desk.get("dispatcher", registered)["actions"] == [
        "transfer_emergency",
        "dispatch",
        "merge",
    ]


# --------------------------------------------------------------------------- jurisdiction


@pytest.mark.parametrize("action", [*WORKFLOW.actions, "callback"])
def test_another_town_gets_not_found_for_every_action(desk: Desk, action: str) -> None:
    order = desk.bring("handling")
    body = (
        SPEC[action][1](desk) if action in SPEC else {"solved": True, "satisfaction": "satisfied"}
    )
    events, audits = desk.counts(order)
    response = desk.post("sj.handler", order, action, **body)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"] == "工单不存在或无权查看"
    assert desk.counts(order) == (events, audits)


def test_a_co_handling_unit_sees_the_order_but_cannot_act_as_lead(desk: Desk) -> None:
    order = desk.new_order()
    order = desk.act(
        "dispatcher",
        order,
        "dispatch",
        unit_id=desk.unit(DONGCHENG),
        co_unit_ids=[desk.unit(HOUSING), desk.unit(SHIJIE)],
    )
    assert [(u["name"], u["role"]) for u in order["units"]] == [
        ("东城街道", "lead"),
        ("石碣镇", "co"),  # co-units assigned together: by unit code
        ("东莞市住房和城乡建设局", "co"),
    ]
    for who in ("zjj.handler", "sj.handler"):
        assert desk.get(who, order)["actions"] == []
        for action, body in (("sign_for", {}), ("return_order", {"note": "不属本单位"})):
            response = desk.post(who, order, action, **body)
            assert response.status_code == 403, response.text
            label = WORKFLOW.action(action).label
            assert response.json()["error"]["message"] == f"只有主办单位可以{label}"
            assert response.json()["error"]["code"] == "permission_denied"
    order = desk.act("dc.handler", order, "sign_for")
    lead_only = {
        "record_contact": {"note": "已联系"},
        "request_extension": {"extension": "2wd", "note": "需协调"},
        "reply": {"note": "已办理"},
    }
    for who in ("zjj.handler", "sj.handler"):
        for action, body in lead_only.items():
            response = desk.post(who, order, action, **body)
            assert response.status_code == 403, response.text
            label = WORKFLOW.action(action).label
            assert response.json()["error"]["message"] == f"只有主办单位可以{label}"
    assert desk.get("dispatcher", order)["status"] == "handling"


def test_a_unit_whose_office_co_handles_cannot_act_as_lead(desk: Desk) -> None:
    order = desk.act(
        "dispatcher",
        desk.new_order(),
        "dispatch",
        unit_id=desk.unit(SHIJIE),
        co_unit_ids=[desk.unit(DONGCHENG_OFFICE)],
    )
    # 东城街道 sees the order through its office, but 石碣镇 leads.
    assert desk.get("dc.handler", order)["status"] == "dispatched"
    response = desk.post("dc.handler", order, "sign_for")
    assert response.status_code == 403, response.text
    assert response.json()["error"]["message"] == "只有主办单位可以签收"
    assert desk.act("sj.handler", order, "sign_for")["status"] == "handling"


def test_pass_down_to_a_community_and_the_town_above_still_acts(desk: Desk) -> None:
    order = desk.bring("handling")
    moved = desk.act("dc.leader", order, "pass_down", unit_id=desk.unit(GANGBEI))
    # The community takes over inside the street's handling time: no new sign-for stage.
    assert moved["status"] == "handling"
    assert moved["due_at"] == order["due_at"]
    assert moved["lead_unit_id"] == desk.unit(GANGBEI)
    assert [(u["name"], u["role"]) for u in moved["units"]] == [("岗贝社区", "lead")]
    # The street is above its community: it still sees the order and may reply for it.
    assert desk.act("dc.handler", moved, "reply", note="社区已处理")["status"] == "replied"
    assert desk.client("sj.handler").get(f"/api/v1/orders/{order['id']}").status_code == 404


def test_a_redispatched_order_leaves_the_old_units_inbox(desk: Desk) -> None:
    order = desk.bring("handling")
    moved = desk.act("dispatcher", order, "redispatch", unit_id=desk.unit(SHIJIE))
    assert moved["status"] == "dispatched"
    assert desk.client("dc.handler").get(f"/api/v1/orders/{order['id']}").status_code == 404
    assert desk.post("dc.handler", order, "sign_for").status_code == 404
    assert desk.act("sj.handler", order, "sign_for")["status"] == "handling"


# --------------------------------------------------------------------------- notes, versions


NOTE_REQUIRED = [
    pytest.param(name, id=name) for name, a in WORKFLOW.actions.items() if a.note_required
]


def test_the_note_required_actions_are_the_expected_ones() -> None:
    assert {p.values[0] for p in NOTE_REQUIRED} == {
        "answer_directly",
        "transfer_emergency",
        "return_order",
        "reject_return",
        "record_contact",
        "request_extension",
        "refuse_extension",
        "suspend",
        "reply",
        "rework",
        "supervise",
        "urge",
    }


@pytest.mark.parametrize("action", NOTE_REQUIRED)
@pytest.mark.parametrize("note", [None, "   "], ids=["missing", "blank"])
def test_a_note_required_action_without_a_note_is_refused(
    desk: Desk, action: str, note: str | None
) -> None:
    state = next(s for s in STATES if s in WORKFLOW.action(action).sources)
    order = desk.bring(state)
    who, body_of = SPEC[action]
    body = {k: v for k, v in body_of(desk).items() if k != "note"}
    if note is not None:
        body["note"] = note
    events, audits = desk.counts(order)
    response = desk.post(who, order, action, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "note_required"
    assert error["message"] == f"{WORKFLOW.action(action).label}须填写说明"
    assert desk.get("dispatcher", order)["status"] == state
    assert desk.counts(order) == (events, audits)


def test_a_stale_version_is_a_conflict(desk: Desk) -> None:
    order = desk.bring("dispatched")
    loaded = order["version"]
    response = desk.post("dc.handler", order, "sign_for", version=loaded - 1)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "stale_version"
    assert response.json()["error"]["message"] == "工单已被他人处理，请刷新后重试"
    assert desk.get("dc.handler", order)["status"] == "dispatched"
    signed = desk.act("dc.handler", order, "sign_for", version=loaded)
    assert signed["status"] == "handling"
    assert signed["version"] > loaded
    # The second of two people who loaded the same version loses.
    response = desk.post("dispatcher", order, "suspend", version=loaded, note="暂缓")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert desk.get("dispatcher", order)["status"] == "handling"


# --------------------------------------------------------------------------- rework


def test_the_third_rework_opens_supervision(desk: Desk) -> None:
    order = desk.bring("handling")
    for round_ in (1, 2, 3):
        order = desk.act("dc.handler", order, "reply", note=f"第 {round_} 次答复")
        order = desk.act(
            "callback",
            order,
            "callback",
            solved=False,
            satisfaction="dissatisfied",
            note="问题未解决",
        )
        assert (order["status"], order["rework_count"]) == ("handling", round_)
        supervisions = (
            desk.db.execute(
                select(Supervision).where(Supervision.case_id == uuid.UUID(order["id"]))
            )
            .scalars()
            .all()
        )
        if round_ < 3:
            assert supervisions == []
            assert order["escalation_level"] == 0
    assert order["escalation_level"] == 1
    (sup,) = supervisions
    assert (sup.kind, sup.level, sup.status, sup.reason) == ("supervise", 1, "open", "已重办 3 次")
    assert sup.unit_id == uuid.UUID(desk.unit(DONGCHENG))
    assert sup.issued_by == "回访员 王丽(callback)"
    # One working day from Wed 30 Sep: Thu 8 Oct (after National Day), 17:30 Beijing.
    assert sup.due_at == datetime(2026, 10, 8, 17, 30, tzinfo=SHANGHAI)
    timeline = desk.timeline(order)
    assert [t["action"] for t in timeline[-2:]] == ["rework", "supervise"]
    assert timeline[-1]["label"] == "督办"
    case = desk.db.get(Case, uuid.UUID(order["id"]))
    assert case is not None
    desk.db.refresh(case)
    assert (case.rework_count, case.escalation_level) == (3, 1)


def test_the_audit_row_of_a_rework_shows_the_count_before_and_after(desk: Desk) -> None:
    order = desk.bring("replied")
    desk.act("callback", order, "rework", solved=False, satisfaction="dissatisfied", note="未解决")
    before, after = desk.db.execute(
        select(AuditEntry.before, AuditEntry.after).where(
            AuditEntry.entity_id == order["id"], AuditEntry.action == "hotline.rework"
        )
    ).one()
    assert (before["rework_count"], after["rework_count"]) == (0, 1)


# --------------------------------------------------------------------------- merge


def test_merge_links_the_duplicate_to_its_parent(desk: Desk) -> None:
    parent = desk.bring("dispatched")
    child = desk.new_order()
    merged = desk.act("calltaker", child, "merge", parent_number=parent["number"])
    assert (merged["status"], merged["parent_number"]) == ("merged", parent["number"])
    assert merged["closed_at"] is not None
    note = desk.timeline(parent)[-1]
    assert (note["action"], note["label"], note["data"]) == (
        "merged_in",
        "并入重复工单",
        {"child": child["number"]},
    )


def test_merge_into_a_finished_order_is_a_conflict(desk: Desk) -> None:
    for final in ("closed", "answered", "transferred"):
        parent = desk.bring(final)
        child = desk.new_order()
        response = desk.post("calltaker", child, "merge", parent_number=parent["number"])
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "wrong_state"
        assert response.json()["error"]["message"] == "主工单已办结，不能并入"
        after = desk.get("calltaker", child)
        assert (after["status"], after["parent_number"]) == ("registered", None)


def test_merge_needs_a_sound_parent(desk: Desk) -> None:
    child = desk.new_order()
    response = desk.post("calltaker", child, "merge")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "parent_required")
    response = desk.post("calltaker", child, "merge", parent_number=child["number"])
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_parent")
    merged = desk.bring("merged")
    response = desk.post("calltaker", child, "merge", parent_number=merged["number"])
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_parent")
    response = desk.post("calltaker", child, "merge", parent_number="GD20260930999999")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "code",
    [SHIJIE_VILLAGE, DONGCHENG, HOUSING, SHIJIE, CITY],
    ids=["another-towns-village", "the-lead-itself", "a-department", "another-town", "the-city"],
)
def test_pass_down_only_to_a_unit_directly_below(desk: Desk, code: str) -> None:
    order = desk.bring("handling")
    response = desk.post("dc.leader", order, "pass_down", unit_id=desk.unit(code))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_unit"
    assert desk.get("dc.leader", order)["status"] == "handling"


def test_pass_down_to_an_office_of_the_street(desk: Desk) -> None:
    order = desk.bring("handling")
    moved = desk.act("dc.leader", order, "pass_down", unit_id=desk.unit(DONGCHENG_OFFICE))
    assert (moved["status"], moved["lead_unit_id"]) == ("handling", desk.unit(DONGCHENG_OFFICE))


def test_dispatch_to_the_city_is_refused(desk: Desk) -> None:
    order = desk.new_order()
    response = desk.post("dispatcher", order, "dispatch", unit_id=desk.unit(CITY))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_unit"
    assert response.json()["error"]["message"] == "不能派给市本级，请选择部门或镇街"
    response = desk.post(
        "dispatcher",
        order,
        "dispatch",
        unit_id=desk.unit(DONGCHENG),
        co_unit_ids=[desk.unit(CITY)],
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_unit")
    handling = desk.bring("handling")
    response = desk.post("dispatcher", handling, "redispatch", unit_id=desk.unit(CITY))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_unit")
    assert desk.get("dispatcher", order)["status"] == "registered"


def test_dispatch_needs_a_known_unit(desk: Desk) -> None:
    order = desk.new_order()
    response = desk.post("dispatcher", order, "dispatch")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "unit_required")
    response = desk.post("dispatcher", order, "dispatch", unit_id=str(uuid.uuid4()))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_unit")


def test_transfer_needs_a_target_and_request_extension_a_length(desk: Desk) -> None:
    order = desk.new_order()
    response = desk.post("calltaker", order, "transfer_emergency", note="紧急")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "target_required")
    transferred = desk.act("calltaker", order, "transfer_emergency", target="120", note="急病")
    assert transferred["status"] == "transferred"
    handling = desk.bring("handling")
    response = desk.post("dc.handler", handling, "request_extension", note="需协调")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "extension_required")
    response = desk.post("dc.handler", handling, "request_extension", note="x", extension="3days")
    assert response.status_code == 422
