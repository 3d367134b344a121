"""The authorization matrix: every route of the app x every demo role (and anonymous, the
110 partner's token and an Open311 key) x an object in 东城 and one in 石碣.

``tests/authz_matrix.yaml`` holds the expected outcome of each cell; this module builds a
real request for each (with ids of real objects, made once per module) and compares.
The routes come from ``app.routes``: a route without a row fails the suite, naming it,
and so does a row whose route is gone. Only the routes in ``EXCLUDED`` are left out.

Outcomes: ``A`` allowed (2xx, a redirect other than to the login page, or a 4xx the row's
request is expected to get once it passes authorization), ``D`` denied (401, 403, 404, or
a redirect to the login page), ``dc`` / ``sj`` allowed on that object only (denied on the
other). The objects: a 12345 order in 东城 (registered by the hotline, dispatched to 东城
街道) and one in 石碣 (pushed by the 110 partner, dispatched to 石碣镇), each with an
attachment; a community of each town; the handler of each town; a partner token of each
town; a smart-dispatch line of each town; an early warning, a hot issue (and one of its
orders) and a 每周一题 of each town, a notice of each town; a hard problem (the city's).

Set ``ZHENGSHU_AUTHZ_RECORD=path.yaml`` to write the observed matrix there (to draft the
rows of a new route: then read every cell before you copy it).
"""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select

from tests.conftest import PASSWORD, actor, unit_id
from tests.sandbox import Sandbox
from zhengshu.kernel import clock, jobs
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar_store import set_override
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import importer, service
from zhengshu.modules.hotline.dispatch import catalogue
from zhengshu.modules.hotline.dispatch.models import DispatchSuggestion
from zhengshu.modules.hotline.insight import alert_scan, hard, issues, weekly
from zhengshu.modules.hotline.insight.issue_models import HotIssueOrder
from zhengshu.modules.hotline.models import IntakeReceipt, Order, Webhook
from zhengshu.modules.hotline.reports.notice import current_period
from zhengshu.modules.hotline.schemas import OrderCreate
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org import repository as org_repository
from zhengshu.org.auth import issue_login_token, start_web_session
from zhengshu.org.deps import SESSION_COOKIE
from zhengshu.org.models import Person, Unit
from zhengshu.org.roles import Role
from zhengshu.org.service import issue_partner_token

try:  # FastAPI >= 0.160 no longer flattens included routers into app.routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


MATRIX_FILE = Path(__file__).with_name("authz_matrix.yaml")
PEOPLE = [
    "admin",
    "auditor",
    "calltaker",
    "dispatcher",
    "callback",
    "supervisor",
    "leader",
    "zjj.handler",
    "dc.leader",
    "dc.handler",
    "dc.admin",
    "sj.handler",
    "sj.admin",
]
PRINCIPALS = ["anonymous", *PEOPLE, "partner110", "open311"]
TARGETS = ("dc", "sj")
TOWN = {"dc": "441900003000", "sj": "441900101000"}
POLICE = "D009"
CITY = "441900000000"
HOUSING = "D001"

# Routes no principal-dependent rule applies to, with the reason.
EXCLUDED = {
    "GET /static": "packaged CSS (StaticFiles mount): public by design, no data",
    "GET /api/docs": "Swagger UI page: public by design, shows only the published schema",
    "GET /docs/oauth2-redirect": "Swagger UI's OAuth helper page: static HTML",
    "GET /api/v1/openapi.json": "the published API schema: public by design",
}

# --- the objects -------------------------------------------------------------------------


@dataclass
class World:
    sandbox: Sandbox
    bearer: dict[str, str] = field(default_factory=dict)
    cookie: dict[str, tuple[str, str]] = field(default_factory=dict)  # token, csrf
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)
    towns: dict[str, str] = field(default_factory=dict)
    communities: dict[str, tuple[str, int]] = field(default_factory=dict)  # id, version
    handlers: dict[str, tuple[str, int]] = field(default_factory=dict)  # id, version
    partner_tokens: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    housing: str = ""
    job_id: str = ""
    # Insight: an early warning, a hot issue (with an order of it) and a 每周一题 led by
    # each town; a hard problem (the city's); the week and candidate a pick may take.
    alerts: dict[str, str] = field(default_factory=dict)
    hot_issues: dict[str, str] = field(default_factory=dict)
    hot_orders: dict[str, str] = field(default_factory=dict)
    weekly: dict[str, str] = field(default_factory=dict)
    hard_problem: tuple[str, int] = ("", 0)  # id, version
    pick_week: str = ""
    pick_key: str = ""
    receipt: str = ""  # a fast-lane intake receipt of the call-taker's
    failed_receipt: str = ""  # the id of another, which the worker failed to register
    clients: dict[tuple[str, bool], TestClient] = field(default_factory=dict)

    def client(self, principal: str, page: bool) -> TestClient:
        key = (principal, page)
        if key not in self.clients:
            headers = {}
            if principal in self.bearer and (not page or principal not in self.cookie):
                headers["Authorization"] = f"Bearer {self.bearer[principal]}"
            # A server error is a cell of its own ("5xx ..."), not a crash of the row.
            self.clients[key] = TestClient(
                self.sandbox.app,
                base_url="http://testserver",
                headers=headers,
                raise_server_exceptions=False,
            )
        return self.clients[key]

    def upload(self, principal: str) -> str:
        """A fresh inspected import upload (its owner: the caller if a dispatcher)."""
        with self.sandbox.session() as db:
            owner = actor(db, principal if principal == "dispatcher" else "dispatcher")
            data = "诉求内容,联系电话\n路灯不亮,13800138000\n".encode()
            return importer.inspect_upload(
                self.sandbox.settings.data_dir, owner, filename="历史.csv", data=data
            ).token


def build_world(sandbox: Sandbox) -> World:
    world = World(sandbox)
    system = system_principal("测试")
    with sandbox.session() as db:
        for username in PEOPLE:
            person = org_repository.person_by_username(db, username)
            assert person is not None
            token, _ = issue_login_token(db, sandbox.settings, person=person, ip="127.0.0.1")
            cookie, row = start_web_session(
                db, sandbox.settings, person=person, ip="127.0.0.1", user_agent="matrix"
            )
            world.bearer[username] = token
            world.cookie[username] = (cookie, row.csrf_token)
        world.bearer["partner110"], police = issue_partner_token(
            db,
            system,
            name="110",
            kind="partner",
            unit_id=unit_id(db, POLICE),
            roles=[Role.PARTNER],
        )
        police_token = police.id
        world.bearer["open311"], _ = issue_partner_token(
            db,
            system,
            name="市民App",
            kind="open311",
            unit_id=unit_id(db, CITY),
            roles=[Role.PARTNER],
        )
        world.housing = str(unit_id(db, HOUSING))
        for target, code in TOWN.items():
            town = org_repository.unit_by_code(db, code)
            assert town is not None
            world.towns[target] = str(town.id)
            community = (
                db.execute(
                    select(Unit)
                    .where(Unit.parent_id == town.id, Unit.kind.in_(["community", "village"]))
                    .order_by(Unit.code)
                )
                .scalars()
                .first()
            )
            assert community is not None
            world.communities[target] = (str(community.id), community.version)
            handler = org_repository.person_by_username(db, f"{target}.handler")
            assert handler is not None
            world.handlers[target] = (str(handler.id), handler.version)
            _, token = issue_partner_token(
                db,
                system,
                name=f"{code} 系统",
                kind="partner",
                unit_id=town.id,
                roles=[Role.PARTNER],
            )
            world.partner_tokens[target] = str(token.id)
            rule = catalogue.add_rule(
                db,
                system,
                catalogue.RuleInput(category="housing", town_unit_id=town.id, lead_is_town=True),
            )
            world.rules[target] = str(rule.id)
        job = jobs.enqueue(db, importer.JOB_NAME, {"total": 1, "done": 0}, max_attempts=1)
        world.job_id = str(job.id)
        db.commit()
    calltaker = world.client("calltaker", page=False)
    dispatcher = world.client("dispatcher", page=False)
    body = {"requester_name": "陈先生", "requester_phone": "13800138000", "content": "路灯不亮。"}
    registered = calltaker.post("/api/v1/orders", json=body)
    assert registered.status_code == 201, registered.text
    pushed = world.client("partner110", page=False).post(
        "/api/v1/partner/110/orders",
        json={"incident_number": "J44190020261", "caller_phone": "13900139000", "content": "噪音"},
    )
    assert pushed.status_code == 201, pushed.text
    queued = calltaker.post(
        "/api/v1/orders",
        json={**body, "content": "路灯不亮（快速受理）。"},
        headers={"Prefer": "respond-async", "Idempotency-Key": "matrix-receipt"},
    )
    assert queued.status_code == 202, queued.text
    world.receipt = queued.json()["url"]
    failing = calltaker.post(
        "/api/v1/orders",
        json={**body, "content": "井盖缺失（快速受理，登记失败）。"},
        headers={"Prefer": "respond-async", "Idempotency-Key": "matrix-failed"},
    )
    assert failing.status_code == 202, failing.text
    world.failed_receipt = failing.json()["id"]
    with world.sandbox.session() as db:
        receipt = db.get(IntakeReceipt, uuid.UUID(world.failed_receipt))
        assert receipt is not None
        receipt.status, receipt.error = "failed", {"code": "registration_failed"}
        db.commit()
    for target, order_id in (("dc", registered.json()["id"]), ("sj", pushed.json()["order_id"])):
        done = dispatcher.post(
            f"/api/v1/orders/{order_id}/actions/dispatch",
            json={"unit_id": world.towns[target]},
        )
        assert done.status_code == 200, done.text
        world.orders[target] = done.json()
        upload = dispatcher.post(
            f"/api/v1/orders/{order_id}/attachments",
            files={"file": ("说明.txt", "现场情况说明。".encode(), "text/plain")},
        )
        assert upload.status_code == 201, upload.text
        world.attachments[target] = upload.json()["id"]
    with sandbox.session() as db:
        set_override(db, system, day=date(2026, 12, 31), is_workday=False, name="矩阵")
        for target in TARGETS:
            case_id = uuid.UUID(world.orders[target]["id"])
            if db.get(DispatchSuggestion, case_id) is None:
                db.add(
                    DispatchSuggestion(
                        case_id=case_id,
                        created_at=clock.now(),
                        normalized_text="路灯不亮",
                        category_source="none",
                        category_top=[],
                        reasons=[],
                        lead_unit_id=uuid.UUID(world.towns[target]),
                        co_unit_ids=[],
                        unit_source="catalogue",
                        geo_matched=[],
                    )
                )
        db.add(
            Webhook(
                id=uuid.uuid4(),
                token_id=police_token,
                url="https://110.example.gov.cn/hook",
                secret="s" * 32,
                events=["status"],
                active=True,
                created_at=clock.now(),
            )
        )
        db.commit()
    build_insight(world)
    return world


# Hot issues: a few callers about one problem at one place, per town.
HOT_TEXTS = {
    "dc": [
        "阳光花园小区停水三天了，什么时候恢复供水？",
        "东城阳光花园小区突然停水，没有任何通知",
        "阳光花园小区连续停水，居民生活受影响",
        "投诉阳光花园小区停水问题，物业不作为",
    ],
    "sj": [
        "金色家园小区电梯故障，经常困人",
        "金色家园小区电梯又坏了，老人上下楼困难",
        "投诉金色家园小区电梯故障无人维修",
        "金色家园小区电梯停运一周，请督促物业维修",
    ],
}


def build_insight(world: World) -> None:
    """An early warning (an extreme order at intake), a hot issue and a 每周一题 per
    town, a hard problem, and an order reworked twice (a 每周一题 candidate of its own)."""
    sandbox = world.sandbox
    config = HotlineConfig.from_settings(sandbox.settings)
    calltaker = system_principal("话务员")
    now = clock.now()

    def register(db: Any, text: str, town: str, phone: str) -> Any:
        case, _ = service.register_order(
            db,
            calltaker,
            config=config,
            data=OrderCreate(
                requester_name="市民",
                requester_phone=phone,
                title=text[:60],
                content=text,
                category="other",
                location_unit_id=uuid.UUID(world.towns[town]),
            ),
            smart=False,
        )
        return case

    with sandbox.session() as db:
        supervisor = actor(db, "supervisor")
        firsts: dict[str, uuid.UUID] = {}
        for n, target in enumerate(TARGETS):
            case = register(db, "老板拖欠工资半年，有人扬言要跳楼。", target, f"1370000900{n}")
            order = db.get(Order, case.id)
            assert order is not None
            raised = alert_scan.on_intake(db, case, order, words=config.extreme_words)
            assert raised is not None, f"no warning raised in {target}"
            assert raised.town_unit_id == uuid.UUID(world.towns[target])
            world.alerts[target] = str(raised.id)
            for i, text in enumerate(HOT_TEXTS[target]):
                made = register(db, text, target, f"13{n}0000800{i}")
                firsts.setdefault(target, made.id)
        repeat = register(db, "咨询新生儿医保办理流程", "dc", "13700007000")
        repeat.rework_count = 2
        db.flush()
        issues.rescan(db, clock.now())
        for target, order_id in firsts.items():
            link = db.scalars(select(HotIssueOrder).where(HotIssueOrder.order_id == order_id)).one()
            assert link.issue_id is not None, f"no hot issue found in {target}"
            world.hot_issues[target] = str(link.issue_id)
            world.hot_orders[target] = str(order_id)
        workflow, calendar = config.workflow(), config.calendar(db)
        for k, target in enumerate(TARGETS):
            week = weekly.week_of(now + timedelta(days=7 * k))
            problem = weekly.pick(
                db,
                supervisor,
                weekly.PickInput(
                    week=week,
                    candidate_key=f"hot:{world.hot_issues[target]}",
                    lead_unit_id=uuid.UUID(world.towns[target]),
                    deadline=weekly.default_deadline(week),
                ),
                workflow=workflow,
                calendar=calendar,
            )
            world.weekly[target] = str(problem.id)
        world.pick_week = weekly.week_of(now + timedelta(days=14))
        world.pick_key = f"order:{repeat.id}"
        assert world.pick_key in {c.key for c in weekly.candidates(db, world.pick_week)}
        row = hard.create(db, supervisor, hard.HardInput(name="矩阵难题", keywords=("停水",)))
        world.hard_problem = (str(row.id), row.version)
        db.commit()


# --- the requests ------------------------------------------------------------------------


@dataclass
class Call:
    path: str
    json: Any = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    content: bytes | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = ()  # statuses that mean "allowed" although >= 400
    # Statuses that mean "denied" besides 401/403/404 (a bulk import refuses a row whose
    # parent is outside the caller's jurisdiction as an unknown parent: 400, nothing saved).
    no: tuple[int, ...] = ()


Build = Callable[[World, str, str | None], Call]


def fixed(path: str, **kw: Any) -> Build:
    return lambda w, p, t: Call(path, **kw)


def order(w: World, t: str | None) -> dict[str, Any]:
    assert t is not None
    return w.orders[t]


def csv_units(w: World, t: str | None) -> bytes:
    assert t is not None
    header = "code,parent_code,kind,name,short_name\n"
    return f"{header}MX-{t},{TOWN[t]},community,矩阵社区,矩阵\n".encode()


def new_person(w: World, t: str | None) -> dict[str, Any]:
    assert t is not None
    return {
        "username": f"matrix.{t}",
        "display_name": "矩阵测试",
        "unit_id": w.towns[t],
        "roles": ["handler"],
        "password": "Matrix-Passw0rd",
    }


ACTION_BODIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "sign_for": lambda w: {},
    "redispatch": lambda w: {"unit_id": w.housing, "note": "改派住建局"},
    "urge": lambda w: {"note": "请尽快办理"},
}


def this_month() -> str:
    return str(current_period("month").key)


def last_month() -> str:
    return str(current_period("month").previous().key)


ORDER_BODY = {
    "requester_name": "陈先生",
    "requester_phone": "13800138000",
    "content": "小区路灯不亮。",
}

# key: "METHOD path" or "METHOD path [variant]"; targeted builders take "dc" / "sj".
SPECS: dict[str, Build] = {
    # --- JSON API ------------------------------------------------------------------------
    "GET /healthz": fixed("/healthz"),
    "GET /metrics": fixed("/metrics"),
    "POST /api/v1/auth/token": fixed(
        "/api/v1/auth/token", json={"username": "leader", "password": PASSWORD}
    ),
    "GET /api/v1/me": fixed("/api/v1/me"),
    "GET /api/v1/units": fixed("/api/v1/units"),
    "POST /api/v1/units": lambda w, p, t: Call(
        "/api/v1/units",
        json={
            "parent_id": w.towns[t or ""],
            "kind": "community",
            "code": f"MX-{t}",
            "name": "矩阵社区",
        },
    ),
    "GET /api/v1/units/export.csv": fixed("/api/v1/units/export.csv"),
    "POST /api/v1/units/import": lambda w, p, t: Call(
        "/api/v1/units/import",
        content=csv_units(w, t),
        headers={"Content-Type": "text/csv"},
        no=(400,),
    ),
    "GET /api/v1/units/{unit_id}": lambda w, p, t: Call(
        f"/api/v1/units/{w.communities[t or ''][0]}"
    ),
    "PATCH /api/v1/units/{unit_id}": lambda w, p, t: Call(
        f"/api/v1/units/{w.communities[t or ''][0]}",
        json={"version": w.communities[t or ""][1], "short_name": "改名"},
    ),
    "GET /api/v1/people": fixed("/api/v1/people"),
    "POST /api/v1/people": lambda w, p, t: Call("/api/v1/people", json=new_person(w, t)),
    "GET /api/v1/people/{person_id}": lambda w, p, t: Call(
        f"/api/v1/people/{w.handlers[t or ''][0]}"
    ),
    "PATCH /api/v1/people/{person_id}": lambda w, p, t: Call(
        f"/api/v1/people/{w.handlers[t or ''][0]}",
        json={"version": w.handlers[t or ""][1], "display_name": "改名的承办人"},
    ),
    "POST /api/v1/people/{person_id}/password": lambda w, p, t: Call(
        f"/api/v1/people/{w.handlers[t or ''][0]}/password",
        json={"password": "Another-Passw0rd"},
    ),
    "POST /api/v1/tokens": lambda w, p, t: Call(
        "/api/v1/tokens",
        json={"name": "矩阵系统", "kind": "partner", "unit_id": w.towns[t or ""]},
    ),
    "GET /api/v1/orders/export.xlsx": fixed("/api/v1/orders/export.xlsx"),
    "POST /api/v1/orders/{order_id}/attachments": lambda w, p, t: Call(
        f"/api/v1/orders/{order(w, t)['id']}/attachments",
        files={"file": ("补充.txt", "补充说明。".encode(), "text/plain")},
    ),
    "GET /api/v1/orders/{order_id}/attachments": lambda w, p, t: Call(
        f"/api/v1/orders/{order(w, t)['id']}/attachments"
    ),
    "GET /api/v1/attachments/{attachment_id}": lambda w, p, t: Call(
        f"/api/v1/attachments/{w.attachments[t or '']}"
    ),
    "POST /api/v1/orders": fixed("/api/v1/orders", json=ORDER_BODY),
    "GET /api/v1/orders": fixed("/api/v1/orders"),
    "GET /api/v1/intake-receipts/{receipt_id}": lambda w, p, t: Call(w.receipt),
    "GET /api/v1/orders/{order_id}": lambda w, p, t: Call(f"/api/v1/orders/{order(w, t)['id']}"),
    "GET /api/v1/orders/{order_id}/timeline": lambda w, p, t: Call(
        f"/api/v1/orders/{order(w, t)['id']}/timeline"
    ),
    "POST /api/v1/orders/{order_id}/reveal": lambda w, p, t: Call(
        f"/api/v1/orders/{order(w, t)['id']}/reveal"
    ),
    "GET /api/v1/orders/{order_id}/suggestion": lambda w, p, t: Call(
        f"/api/v1/orders/{order(w, t)['id']}/suggestion"
    ),
    "POST /api/v1/partner/110/orders": fixed(
        "/api/v1/partner/110/orders",
        json={"incident_number": "J-MATRIX", "caller_phone": "13900139000", "content": "噪音扰民"},
    ),
    "GET /api/v1/partner/110/orders/{number}": lambda w, p, t: Call(
        f"/api/v1/partner/110/orders/{order(w, t)['number']}"
    ),
    "PUT /api/v1/partner/110/webhook": fixed(
        "/api/v1/partner/110/webhook",
        json={"url": "https://110.example.gov.cn/new", "secret": "x" * 32},
    ),
    "GET /api/v1/partner/110/webhook": fixed("/api/v1/partner/110/webhook"),
    "DELETE /api/v1/partner/110/webhook": fixed("/api/v1/partner/110/webhook"),
    "GET /api/v1/calendar/days/{day}": fixed("/api/v1/calendar/days/2026-10-01"),
    "GET /api/v1/calendar/add-working-days": fixed(
        "/api/v1/calendar/add-working-days", params={"start": "2026-09-30", "days": 5}
    ),
    "GET /api/v1/dispatch/rules": fixed("/api/v1/dispatch/rules"),
    "POST /api/v1/dispatch/rules": lambda w, p, t: Call(
        "/api/v1/dispatch/rules",
        json={"category": "urban", "town_unit_id": w.towns[t or ""], "lead_is_town": True},
    ),
    "DELETE /api/v1/dispatch/rules/{rule_id}": lambda w, p, t: Call(
        f"/api/v1/dispatch/rules/{w.rules[t or '']}"
    ),
    "GET /api/v1/dispatch/models": fixed("/api/v1/dispatch/models"),
    "POST /api/v1/dispatch/models/retrain": fixed("/api/v1/dispatch/models/retrain"),
    # --- Open311 (public reads; the api_key is the credential of a submission) ----------
    "GET /open311/v2/discovery.{fmt}": fixed("/open311/v2/discovery.json"),
    "GET /open311/v2/services.{fmt}": fixed("/open311/v2/services.json"),
    "GET /open311/v2/services/{service_code}.{fmt}": fixed("/open311/v2/services/urban.json"),
    "GET /open311/v2/requests.{fmt}": fixed("/open311/v2/requests.json"),
    "GET /open311/v2/requests/{service_request_id}.{fmt}": lambda w, p, t: Call(
        f"/open311/v2/requests/{order(w, t)['number']}.json"
    ),
    "GET /open311/v2/tokens/{token}.{fmt}": lambda w, p, t: Call(
        f"/open311/v2/tokens/{order(w, t)['number']}.json"
    ),
    "GET /open311/v2/servicerequestupdates.{fmt}": fixed("/open311/v2/servicerequestupdates.json"),
    "POST /open311/v2/requests.{fmt}": lambda w, p, t: Call(
        "/open311/v2/requests.json",
        data={
            "api_key": w.bearer.get(p, ""),
            "service_code": "urban",
            "description": "路口井盖缺失。",
            "phone": "13912345678",
        },
    ),
    # Unknown endpoints and methods: GeoReport's 404 / 405, the same for everyone.
    "GET /open311/v2/{rest:path}": fixed("/open311/v2/nothing.json", ok=(404,)),
    "POST /open311/v2/{rest:path}": fixed("/open311/v2/services.json", ok=(405,)),
    "PUT /open311/v2/{rest:path}": fixed("/open311/v2/requests.json", ok=(405,)),
    "PATCH /open311/v2/{rest:path}": fixed("/open311/v2/requests.json", ok=(405,)),
    "DELETE /open311/v2/{rest:path}": fixed("/open311/v2/requests.json", ok=(405,)),
    # --- pages ---------------------------------------------------------------------------
    "GET /login": fixed("/login"),
    "POST /login": fixed("/login", data={"username": "leader", "password": PASSWORD}),
    "POST /logout": fixed("/logout"),
    "GET /": fixed("/"),
    "GET /hotline/orders/export.xlsx": fixed("/hotline/orders/export.xlsx"),
    "POST /hotline/orders/{order_id}/attachments": lambda w, p, t: Call(
        f"/hotline/orders/{order(w, t)['id']}/attachments",
        files={"file": ("补充.txt", "补充说明。".encode(), "text/plain")},
    ),
    "GET /hotline/attachments/{attachment_id}": lambda w, p, t: Call(
        f"/hotline/attachments/{w.attachments[t or '']}"
    ),
    "GET /hotline/import": fixed("/hotline/import"),
    "POST /hotline/import": fixed(
        "/hotline/import",
        files={"file": ("历史.csv", "诉求内容\n路灯不亮\n".encode(), "text/csv")},
    ),
    "POST /hotline/import/start": lambda w, p, t: Call(
        "/hotline/import/start", data={"token": w.upload(p), "content": "0"}
    ),
    "GET /hotline/import/{job_id}.json": lambda w, p, t: Call(f"/hotline/import/{w.job_id}.json"),
    "GET /hotline/import/{job_id}": lambda w, p, t: Call(f"/hotline/import/{w.job_id}"),
    "GET /hotline/orders": fixed("/hotline/orders"),
    "GET /hotline/board": fixed("/hotline/board"),
    "GET /hotline/intake": fixed("/hotline/intake"),
    "POST /hotline/intake": fixed("/hotline/intake", data=ORDER_BODY),
    "GET /hotline/intake/receipts": fixed("/hotline/intake/receipts"),
    "POST /hotline/intake/receipts/{receipt_id}/requeue": lambda w, p, t: Call(
        f"/hotline/intake/receipts/{w.failed_receipt}/requeue"
    ),
    "GET /hotline/orders/{order_id:uuid}": lambda w, p, t: Call(
        f"/hotline/orders/{order(w, t)['id']}"
    ),
    "POST /hotline/orders/{order_id:uuid}/reveal": lambda w, p, t: Call(
        f"/hotline/orders/{order(w, t)['id']}/reveal"
    ),
    "GET /hotline/dispatch": fixed("/hotline/dispatch"),
    "POST /hotline/dispatch/rules": lambda w, p, t: Call(
        "/hotline/dispatch/rules",
        data={"category": "urban", "town_unit_id": w.towns[t or ""], "lead": "town"},
    ),
    "POST /hotline/dispatch/rules/{rule_id:uuid}/retire": lambda w, p, t: Call(
        f"/hotline/dispatch/rules/{w.rules[t or '']}/retire"
    ),
    "POST /hotline/dispatch/retrain": fixed("/hotline/dispatch/retrain"),
    "GET /admin/units": fixed("/admin/units"),
    "GET /admin/units/export.csv": fixed("/admin/units/export.csv"),
    "POST /admin/units/import": lambda w, p, t: Call(
        "/admin/units/import",
        files={"file": ("units.csv", csv_units(w, t), "text/csv")},
        no=(400,),
    ),
    "GET /admin/units/new": lambda w, p, t: Call(
        "/admin/units/new", params={"parent_id": w.towns[t or ""]}
    ),
    "POST /admin/units/new": lambda w, p, t: Call(
        "/admin/units/new",
        data={
            "parent_id": w.towns[t or ""],
            "kind": "community",
            "code": f"MX-{t}",
            "name": "矩阵",
        },
    ),
    "GET /admin/units/{unit_id}": lambda w, p, t: Call(f"/admin/units/{w.communities[t or ''][0]}"),
    "POST /admin/units/{unit_id}": lambda w, p, t: Call(
        f"/admin/units/{w.communities[t or ''][0]}",
        data={
            "version": w.communities[t or ""][1],
            "name": "矩阵社区",
            "short_name": "矩阵",
            "code": f"MX-{t}",
            "active": "on",
        },
    ),
    "GET /admin/people": fixed("/admin/people"),
    "GET /admin/people/new": fixed("/admin/people/new"),
    "POST /admin/people/new": lambda w, p, t: Call(
        "/admin/people/new", data={**new_person(w, t), "roles": "handler"}
    ),
    "GET /admin/people/{person_id}": lambda w, p, t: Call(
        f"/admin/people/{w.handlers[t or ''][0]}"
    ),
    "POST /admin/people/{person_id}": lambda w, p, t: Call(
        f"/admin/people/{w.handlers[t or ''][0]}",
        data={
            "version": w.handlers[t or ""][1],
            "display_name": "改名的承办人",
            "unit_id": w.towns[t or ""],
            "roles": "handler",
            "active": "on",
        },
    ),
    "GET /admin/calendar": fixed("/admin/calendar"),
    "POST /admin/calendar/override": fixed(
        "/admin/calendar/override", data={"day": "2026-12-31", "kind": "off", "name": "测试"}
    ),
    "POST /admin/calendar/override/delete": fixed(
        "/admin/calendar/override/delete", data={"day": "2026-12-31"}
    ),
    "POST /admin/calendar/import": fixed(
        "/admin/calendar/import",
        data={"year": "2027", "schedule": "2027-02-06~2027-02-12,休,春节"},
    ),
    "GET /admin/audit": fixed("/admin/audit"),
    "GET /admin/tokens": fixed("/admin/tokens"),
    "POST /admin/tokens": lambda w, p, t: Call(
        "/admin/tokens",
        data={"name": "矩阵系统", "unit_id": w.towns[t or ""], "kind": "partner"},
    ),
    "POST /admin/tokens/{token_id}/revoke": lambda w, p, t: Call(
        f"/admin/tokens/{w.partner_tokens[t or '']}/revoke"
    ),
    # --- early warnings ------------------------------------------------------------------
    "GET /api/v1/alerts": fixed("/api/v1/alerts"),
    "GET /api/v1/alerts/{alert_id}": lambda w, p, t: Call(f"/api/v1/alerts/{w.alerts[t or '']}"),
    "GET /hotline/alerts": fixed("/hotline/alerts"),
    "GET /hotline/alerts/{alert_id:uuid}": lambda w, p, t: Call(
        f"/hotline/alerts/{w.alerts[t or '']}"
    ),
    # --- hot issues ----------------------------------------------------------------------
    "GET /api/v1/hot-issues": fixed("/api/v1/hot-issues"),
    "POST /api/v1/hot-issues/rescan": fixed("/api/v1/hot-issues/rescan"),
    "GET /api/v1/hot-issues/{issue_id}": lambda w, p, t: Call(
        f"/api/v1/hot-issues/{w.hot_issues[t or '']}"
    ),
    "POST /api/v1/hot-issues/{issue_id}/orders/{order_id}/move": lambda w, p, t: Call(
        f"/api/v1/hot-issues/{w.hot_issues[t or '']}/orders/{w.hot_orders[t or '']}/move",
        json={"note": "不属于该热点"},
    ),
    "GET /hotline/hot": fixed("/hotline/hot"),
    "POST /hotline/hot/rescan": fixed("/hotline/hot/rescan"),
    "GET /hotline/hot/{issue_id:uuid}": lambda w, p, t: Call(
        f"/hotline/hot/{w.hot_issues[t or '']}"
    ),
    "POST /hotline/hot/{issue_id:uuid}/move": lambda w, p, t: Call(
        f"/hotline/hot/{w.hot_issues[t or '']}/move",
        data={"order_id": w.hot_orders[t or ""], "to": "none", "note": "不属于该热点"},
    ),
    # --- 每周一题 ----------------------------------------------------------------------------
    "GET /api/v1/weekly-problems": fixed("/api/v1/weekly-problems"),
    "GET /api/v1/weekly-problems/candidates": lambda w, p, t: Call(
        "/api/v1/weekly-problems/candidates", params={"week": w.pick_week}
    ),
    "POST /api/v1/weekly-problems": lambda w, p, t: Call(
        "/api/v1/weekly-problems",
        json={"week": w.pick_week, "candidate_key": w.pick_key, "lead_unit_id": w.towns["dc"]},
    ),
    "GET /api/v1/weekly-problems/{problem_id}": lambda w, p, t: Call(
        f"/api/v1/weekly-problems/{w.weekly[t or '']}"
    ),
    "POST /api/v1/weekly-problems/{problem_id}/reports": lambda w, p, t: Call(
        f"/api/v1/weekly-problems/{w.weekly[t or '']}/reports", json={"text": "已约谈物业。"}
    ),
    "POST /api/v1/weekly-problems/{problem_id}/close": lambda w, p, t: Call(
        f"/api/v1/weekly-problems/{w.weekly[t or '']}/close", json={"conclusion": "已解决。"}
    ),
    "GET /hotline/weekly": fixed("/hotline/weekly"),
    "POST /hotline/weekly/pick": lambda w, p, t: Call(
        "/hotline/weekly/pick",
        data={"week": w.pick_week, "candidate_key": w.pick_key, "lead_unit_id": w.towns["dc"]},
    ),
    "GET /hotline/weekly/{problem_id:uuid}": lambda w, p, t: Call(
        f"/hotline/weekly/{w.weekly[t or '']}"
    ),
    "POST /hotline/weekly/{problem_id:uuid}/report": lambda w, p, t: Call(
        f"/hotline/weekly/{w.weekly[t or '']}/report", data={"text": "已约谈物业。"}
    ),
    "POST /hotline/weekly/{problem_id:uuid}/close": lambda w, p, t: Call(
        f"/hotline/weekly/{w.weekly[t or '']}/close", data={"conclusion": "已解决。"}
    ),
    # --- 难题清单 (the city's list: one object) ---------------------------------------------
    "GET /api/v1/hard-problems": fixed("/api/v1/hard-problems"),
    "POST /api/v1/hard-problems": fixed(
        "/api/v1/hard-problems", json={"name": "矩阵新难题", "keywords": ["停电"]}
    ),
    "GET /api/v1/hard-problems/{problem_id}": lambda w, p, t: Call(
        f"/api/v1/hard-problems/{w.hard_problem[0]}"
    ),
    "PUT /api/v1/hard-problems/{problem_id}": lambda w, p, t: Call(
        f"/api/v1/hard-problems/{w.hard_problem[0]}",
        json={"name": "矩阵难题", "keywords": ["停水", "断水"], "version": w.hard_problem[1]},
    ),
    "GET /hotline/hard-problems": fixed("/hotline/hard-problems"),
    "POST /hotline/hard-problems": fixed(
        "/hotline/hard-problems",
        data={"name": "矩阵新难题", "keywords": "停电", "target_kind": "resolution_rate"}
        | {"target_value": "90"},
    ),
    "POST /hotline/hard-problems/examples": fixed("/hotline/hard-problems/examples"),
    "GET /hotline/hard-problems/{problem_id:uuid}": lambda w, p, t: Call(
        f"/hotline/hard-problems/{w.hard_problem[0]}"
    ),
    "POST /hotline/hard-problems/{problem_id:uuid}": lambda w, p, t: Call(
        f"/hotline/hard-problems/{w.hard_problem[0]}",
        data={
            "name": "矩阵难题",
            "keywords": "停水，断水",
            "target_kind": "resolution_rate",
            "target_value": "90",
            "version": str(w.hard_problem[1]),
        },
    ),
    # --- KPIs, notices (a town's notice: dc / sj), the leaders' dashboard ----------------
    "GET /api/v1/reports/kpi": lambda w, p, t: Call(
        "/api/v1/reports/kpi", params={"month": this_month(), "by": "unit"}
    ),
    "GET /api/v1/reports/kpi/orders": lambda w, p, t: Call(
        "/api/v1/reports/kpi/orders",
        params={"kpi": "rework_rate", "part": "denominator", "month": this_month()},
    ),
    "GET /hotline/reports/kpi": lambda w, p, t: Call(
        "/hotline/reports/kpi", params={"month": this_month(), "by": "unit"}
    ),
    "GET /hotline/reports/kpi/orders": lambda w, p, t: Call(
        "/hotline/reports/kpi/orders",
        params={"kpi": "rework_rate", "part": "denominator", "month": this_month()},
    ),
    "GET /api/v1/notices": lambda w, p, t: Call(
        "/api/v1/notices", params={"period": last_month(), "unit_id": w.towns[t or ""]}
    ),
    "GET /api/v1/notices.xlsx": lambda w, p, t: Call(
        "/api/v1/notices.xlsx", params={"period": last_month(), "unit_id": w.towns[t or ""]}
    ),
    "GET /api/v1/notices.pdf": lambda w, p, t: Call(
        "/api/v1/notices.pdf", params={"period": last_month(), "unit_id": w.towns[t or ""]}
    ),
    "GET /hotline/notices": fixed("/hotline/notices"),
    "GET /hotline/notices/view": lambda w, p, t: Call(
        "/hotline/notices/view", params={"period": last_month(), "unit": w.towns[t or ""]}
    ),
    "GET /hotline/notices/view.xlsx": lambda w, p, t: Call(
        "/hotline/notices/view.xlsx", params={"period": last_month(), "unit": w.towns[t or ""]}
    ),
    "GET /hotline/notices/view.pdf": lambda w, p, t: Call(
        "/hotline/notices/view.pdf", params={"period": last_month(), "unit": w.towns[t or ""]}
    ),
    "GET /api/v1/dashboard": fixed("/api/v1/dashboard"),
    "GET /hotline/dashboard": fixed("/hotline/dashboard"),
    "GET /vendor/plotly.min.js": fixed("/vendor/plotly.min.js"),
}

ALERT_BODIES: dict[str, dict[str, str]] = {
    "acknowledge": {},
    "handle": {"note": "已联系当事人并处置"},
    "dismiss": {"reason": "经核实为误报"},
    "forward": {"destination": "police", "note": "请属地派出所关注"},
}
for _action, _alert_body in ALERT_BODIES.items():
    SPECS[f"POST /api/v1/alerts/{{alert_id}}/{_action}"] = (
        lambda w, p, t, a=_action, b=_alert_body: Call(
            f"/api/v1/alerts/{w.alerts[t or '']}/{a}", json=b
        )
    )
    SPECS[f"POST /hotline/alerts/{{alert_id:uuid}}/{{action}} [{_action}]"] = (
        lambda w, p, t, a=_action, b=_alert_body: Call(
            f"/hotline/alerts/{w.alerts[t or '']}/{a}", data=b or None
        )
    )

for _action, _body in ACTION_BODIES.items():
    SPECS[f"POST /api/v1/orders/{{order_id}}/actions/{{action}} [{_action}]"] = (
        lambda w, p, t, a=_action, b=_body: Call(
            f"/api/v1/orders/{order(w, t)['id']}/actions/{a}", json=b(w)
        )
    )
    SPECS[f"POST /hotline/orders/{{order_id:uuid}}/act/{{action}} [{_action}]"] = (
        lambda w, p, t, a=_action, b=_body: Call(
            f"/hotline/orders/{order(w, t)['id']}/act/{a}",
            data={"version": str(order(w, t)["version"]), **b(w)},
        )
    )
for _queue in ("dispatch", "inbox", "handling", "extensions", "returns", "callback"):
    SPECS[f"GET /hotline/queue/{{name}} [{_queue}]"] = fixed(f"/hotline/queue/{_queue}")

# Routes whose builder takes an object (dc / sj); the others take none.
TARGETED = {
    key
    for key in SPECS
    if any(
        word in key
        for word in (
            "{order_id",
            "{unit_id}",
            "{person_id}",
            "{attachment_id}",
            "{number}",
            "{service_request_id}",
            "{token}",
            "{token_id}",
            "{rule_id",
            "{alert_id",
            "{issue_id",
            "/weekly-problems/{problem_id",
            "/weekly/{problem_id",
        )
    )
}
TARGETED |= {
    "POST /api/v1/units",
    "POST /api/v1/units/import",
    "POST /api/v1/people",
    "POST /api/v1/tokens",
    "POST /api/v1/dispatch/rules",
    "POST /hotline/dispatch/rules",
    "POST /admin/units/import",
    "GET /admin/units/new",
    "POST /admin/units/new",
    "POST /admin/people/new",
    "POST /admin/tokens",
    # A notice of a unit: the town's (the API's unit_id, the page's unit).
    "GET /api/v1/notices",
    "GET /api/v1/notices.xlsx",
    "GET /api/v1/notices.pdf",
    "GET /hotline/notices/view",
    "GET /hotline/notices/view.xlsx",
    "GET /hotline/notices/view.pdf",
}


def route_of(key: str) -> str:
    """``POST /a/{b} [variant]`` -> ``POST /a/{b}``."""
    return re.sub(r" \[[^\]]+\]$", "", key)


def is_page(path: str) -> bool:
    return not path.startswith(("/api/", "/open311/", "/healthz", "/metrics"))


# --- running a cell ----------------------------------------------------------------------


def send(world: World, principal: str, key: str, call: Call) -> Response:
    method = key.split(" ", 1)[0]
    page = is_page(call.path)
    client = world.client(principal, page)
    headers = dict(call.headers)
    if page and principal in world.cookie:
        cookie, csrf = world.cookie[principal]
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        if method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = csrf
    try:
        return client.request(
            method,
            call.path,
            json=call.json,
            data=call.data,
            files=call.files,
            content=call.content,
            params=call.params,
            headers=headers,
            follow_redirects=False,
        )
    finally:
        client.cookies.clear()  # a login or logout must not stick to the next cell


def outcome(response: Response, call: Call) -> str:
    status = response.status_code
    location = response.headers.get("location", "")
    if status >= 500:
        return f"5xx ({status}: {response.text[:200]})"
    if status in (401, 403, 404, *call.no) and status not in call.ok:
        return "D"
    if status in (302, 303, 307) and location.startswith("/login?next="):
        return "D"
    if status < 400 or status in call.ok:
        return "A"
    return f"unexpected {status}: {response.text[:300]}"


def expected_of(cell: str, target: str | None) -> str:
    if cell in ("A", "D"):
        return cell
    return "A" if cell == target else "D"


def observe(world: World, key: str) -> list[str]:
    """The row as it is: one cell per principal."""
    cells = []
    for principal in PRINCIPALS:
        seen = {}
        for target in TARGETS if key in TARGETED else (None,):
            with world.sandbox.savepoint():
                call = SPECS[key](world, principal, target)
                seen[target] = outcome(send(world, principal, key, call), call)
        values = set(seen.values())
        if len(values) == 1:
            cells.append(values.pop())
        elif seen == {"dc": "A", "sj": "D"}:
            cells.append("dc")
        elif seen == {"dc": "D", "sj": "A"}:
            cells.append("sj")
        else:
            cells.append(" / ".join(f"{t}: {v}" for t, v in seen.items()))
    return cells


# --- fixtures and tests ------------------------------------------------------------------


def load_matrix() -> dict[str, Any]:
    data = yaml.safe_load(MATRIX_FILE.read_text("utf-8"))
    assert data["columns"] == PRINCIPALS, "the matrix's columns must be PRINCIPALS, in order"
    return dict(data)


MATRIX = load_matrix()
ROWS: dict[str, list[str]] = MATRIX["routes"]
KNOWN_BUGS: dict[str, str] = MATRIX.get("known_bugs") or {}


@pytest.fixture(scope="module")
def world(engine: Engine, settings: Settings) -> Iterator[World]:
    sandbox = Sandbox(engine, settings)
    try:
        yield build_world(sandbox)
    finally:
        sandbox.close()


@pytest.fixture(scope="module")
def recorded() -> Iterator[dict[str, list[str]]]:
    rows: dict[str, list[str]] = {}
    yield rows
    target = os.environ.get("ZHENGSHU_AUTHZ_RECORD")
    if target and rows:
        Path(target).write_text(render_rows(rows), "utf-8")


def render_rows(rows: dict[str, list[str]]) -> str:
    out = io.StringIO()
    width = max(len(k) for k in rows) + 3
    for key in sorted(rows, key=lambda k: (route_of(k).split(" ", 1)[1], k)):
        cells = ", ".join(f"{c:<3}" if len(c) <= 3 else f'"{c}"' for c in rows[key])
        out.write(f"  {f'{key!r}:'.replace(chr(39), chr(34)):<{width}} [{cells}]\n")
    return out.getvalue()


def app_routes(app: Any) -> set[str]:
    found = set()
    for context in iter_route_contexts(app.routes):
        path = getattr(context, "path", None)
        if not path:
            continue
        methods = getattr(context, "methods", None) or {"GET"}
        for method in methods:
            if method != "HEAD":
                found.add(f"{method} {path}")
    return found


def test_every_route_has_a_row_and_every_row_a_route(world: World) -> None:
    routes = app_routes(world.sandbox.app)
    covered = {route_of(key) for key in ROWS}
    missing = sorted(routes - covered - set(EXCLUDED))
    assert not missing, (
        "routes without a row in tests/authz_matrix.yaml (add one per route: the expected "
        f"outcome for every principal, and a request in SPECS): {missing}"
    )
    stale = sorted(covered - routes)
    assert not stale, f"rows of routes that no longer exist: {stale}"
    assert not sorted(set(EXCLUDED) - routes), "EXCLUDED names a route that is gone"
    assert set(ROWS) <= set(SPECS), f"rows without a request in SPECS: {set(ROWS) - set(SPECS)}"
    for key, cells in ROWS.items():
        assert len(cells) == len(PRINCIPALS), key
        allowed = {"A", "D", "dc", "sj"} if key in TARGETED else {"A", "D"}
        assert set(cells) <= allowed, (key, cells)


@pytest.mark.parametrize("key", sorted(set(ROWS) | set(SPECS)))
def test_the_matrix_holds(world: World, recorded: dict[str, list[str]], key: str) -> None:
    assert key in SPECS, f"{key}: a row without a request: add one to SPECS"
    observed = observe(world, key)
    recorded[key] = observed
    assert key in ROWS, f"{key}: no row in tests/authz_matrix.yaml; observed: {observed}"
    expected = ROWS[key]
    wrong = [
        f"{principal}: expected {want}, got {got}"
        for principal, want, got in zip(PRINCIPALS, expected, observed, strict=True)
        if want != got
    ]
    if key in KNOWN_BUGS:
        if not wrong:
            pytest.fail(f"{key} now holds: remove it from known_bugs ({KNOWN_BUGS[key]})")
        pytest.xfail(f"known bug: {KNOWN_BUGS[key]}: {'; '.join(wrong)}")
    assert not wrong, f"{key}:\n  " + "\n  ".join(wrong)


def test_person_tokens_and_sessions_are_what_the_cells_use(world: World) -> None:
    """The principals are who the matrix says: one demo account each."""
    with world.sandbox.session() as db:
        usernames = set(db.execute(select(Person.username)).scalars())
    assert set(PEOPLE) <= usernames
    me = world.client("dc.handler", page=False).get("/api/v1/me").json()
    assert me["roles"] == ["handler"]
    assert world.client("anonymous", page=False).get("/api/v1/me").status_code == 401
