"""Fuzzing the JSON API and Open311 with schemathesis, from the app's own OpenAPI schema.

Every operation under ``/api/v1`` and ``/open311/v2`` gets a bounded, derandomized run of
generated requests (``MAX_EXAMPLES`` per phase; a fixed seed, no example database), sent
with real credentials: a dispatcher's bearer token (a call-taker's to register orders, an
administrator's for the org tree, the 110 partner's for the bridge) and a live Open311
``api_key``. Path ids are swapped for real seeded objects, and an action name for one of
the workflow's, so the generated bodies reach the code behind them. Checks: no 5xx ever,
and a response conforms to its declared schema where the schema declares one.

The objects are made once per module in a ``Sandbox``; each operation runs in a savepoint
of it, rolled back afterwards.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine

from tests.conftest import unit_id
from tests.sandbox import Sandbox
from zhengshu.app import create_app
from zhengshu.casework.definitions import load_workflow
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.settings import Settings
from zhengshu.org import repository as org_repository
from zhengshu.org.auth import issue_login_token
from zhengshu.org.roles import Role
from zhengshu.org.service import issue_partner_token

schemathesis = pytest.importorskip("schemathesis")

MAX_EXAMPLES = 20
BASE_URL = "http://testserver"
DONGCHENG = "441900003000"
POLICE = "D009"
CITY = "441900000000"
ACTIONS = [*sorted(load_workflow("hotline").actions), "callback"]


def _openapi() -> dict[str, Any]:
    """The schema as the app publishes it (an app on a scratch folder; no database)."""
    with tempfile.TemporaryDirectory(prefix="zs-fuzz-") as scratch:
        folder = Path(scratch)
        app = create_app(
            Settings(
                data_dir=folder,
                database_url=f"sqlite:///{folder / 'unused.sqlite3'}",
                secret_key="fuzz",
                audit_key="fuzz",
            )
        )
        schema: dict[str, Any] = app.openapi()
        app.state.engine.dispose()
    return schema


# The coverage phase (boundary values of every parameter: where the 64-bit ``offset`` bug
# was) keeps to valid values, and leaves out probes of methods an operation does not have
# (the router answers them all alike, 405): invalid inputs still come from the fuzzing
# phase, and the whole run stays well under two minutes.
CONFIG = schemathesis.Config.from_dict(
    {"phases": {"coverage": {"unexpected-methods": [], "generation": {"mode": "positive"}}}}
)
schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG).include(
    path_regex=r"^/(api/v1|open311/v2)/"
)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
]


class World:
    """Real objects and credentials for the generated requests, made once per module."""

    def __init__(self, sandbox: Sandbox) -> None:
        with sandbox.session() as db:
            self.bearer = {}
            for who in ("dispatcher", "calltaker", "admin", "dc.handler"):
                person = org_repository.person_by_username(db, who)
                assert person is not None
                token, _ = issue_login_token(db, sandbox.settings, person=person, ip="127.0.0.1")
                self.bearer[who] = f"Bearer {token}"
            partner, _ = issue_partner_token(
                db,
                system_principal("测试"),
                name="110",
                kind="partner",
                unit_id=unit_id(db, POLICE),
                roles=[Role.PARTNER],
            )
            self.open311, _ = issue_partner_token(
                db,
                system_principal("测试"),
                name="市民App",
                kind="open311",
                unit_id=unit_id(db, CITY),
                roles=[Role.PARTNER],
            )
            self.bearer["partner"] = f"Bearer {partner}"
            self.unit_id = str(unit_id(db, DONGCHENG))
            person = org_repository.person_by_username(db, "dc.handler")
            assert person is not None
            self.person_id = str(person.id)
            db.commit()
        calltaker = self.client(sandbox, "calltaker")
        order = calltaker.post(
            "/api/v1/orders",
            json={
                "requester_name": "陈先生",
                "requester_phone": "13800138000",
                "content": "楼道电动车充电，存在消防隐患。",
                "category": "urban",
            },
        ).json()
        self.order_id, self.number = order["id"], order["number"]
        attachment = calltaker.post(
            f"/api/v1/orders/{self.order_id}/attachments",
            files={"file": ("说明.txt", "现场照片稍后补充。".encode(), "text/plain")},
        ).json()
        self.attachment_id = attachment["id"]
        pushed = self.client(sandbox, "partner").post(
            "/api/v1/partner/110/orders",
            json={
                "incident_number": "J4419002026000001",
                "caller_phone": "13900139000",
                "content": "噪音扰民，已告知由 12345 跟进。",
            },
        )
        self.partner_number = pushed.json()["number"]

    def client(self, sandbox: Sandbox, who: str) -> TestClient:
        return TestClient(
            sandbox.app, base_url=BASE_URL, headers={"Authorization": self.bearer[who]}
        )

    def credentials(self, path: str, method: str) -> dict[str, str]:
        if path.startswith("/open311/"):
            return {}
        if path.startswith("/api/v1/partner/"):
            who = "partner"
        elif path.startswith(("/api/v1/units", "/api/v1/people", "/api/v1/tokens")):
            who = "admin"
        elif path == "/api/v1/orders" and method == "POST":
            who = "calltaker"
        else:
            who = "dispatcher"
        return {"Authorization": self.bearer[who]}

    def aim(self, case: Any) -> None:
        """Real ids instead of random ones, a workflow action, a live Open311 key."""
        params = case.path_parameters or {}
        real = {
            "order_id": self.order_id,
            "attachment_id": self.attachment_id,
            "unit_id": self.unit_id,
            "person_id": self.person_id,
            "number": self.partner_number,
        }
        for name, value in real.items():
            if name in params:
                params[name] = value
        if "action" in params and params["action"] not in ACTIONS:
            raw = str(params["action"]).encode()
            params["action"] = ACTIONS[zlib.crc32(raw) % len(ACTIONS)]
        if "fmt" in params and params["fmt"] not in ("json", "xml"):
            params["fmt"] = "json"
        if case.path.startswith("/open311/") and isinstance(case.body, dict):
            case.body["api_key"] = self.open311


@pytest.fixture(scope="module")
def sandbox(engine: Engine, settings: Settings) -> Iterator[Sandbox]:
    box = Sandbox(engine, settings)
    yield box
    box.close()


@pytest.fixture(scope="module")
def world(sandbox: Sandbox) -> World:
    return World(sandbox)


@pytest.fixture
def isolated(sandbox: Sandbox, world: World) -> Iterator[Sandbox]:
    """Each operation starts from the module's objects; what it changed is undone."""
    with sandbox.savepoint():
        yield sandbox


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_no_server_error_and_declared_schemas_hold(
    case: Any, isolated: Sandbox, world: World
) -> None:
    world.aim(case)
    case.call_and_validate(
        app=isolated.app,
        base_url=BASE_URL,
        headers=world.credentials(case.path, case.method),
        checks=CHECKS,
    )


def test_the_fuzzed_operations_cover_the_api() -> None:
    """The run covers every operation of the two prefixes (a filter typo would silently
    fuzz nothing)."""
    operations = [r.ok() for r in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert "/api/v1/orders/{order_id}/actions/{action}" in paths
    assert "/open311/v2/requests.{fmt}" in paths
    assert len(operations) >= 30
