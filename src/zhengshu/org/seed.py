"""The demo city: Dongguan's real org tree and one account per role.

The tree (``data/dongguan_units.csv``) holds the city, its four streets, 28 towns and the
Songshan Lake park with their statistical division codes (国家统计局 2023 edition), real
villages and communities under each, the main city departments and a few town offices.
Demo passwords are random per installation and written to ``demo-accounts.txt`` in the
data directory (mode 0600), because only their hashes are kept in the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from sqlalchemy.orm import Session

from zhengshu.kernel.authz import Principal
from zhengshu.org import repository, service
from zhengshu.org.roles import ROLE_LABELS, Role
from zhengshu.org.schemas import PersonCreate

CITY = "441900000000"
BUREAU = "D020"  # 政数局: runs the 12345 hotline
HOUSING = "D001"  # 住建局
DONGCHENG = "441900003000"
SHIJIE = "441900101000"

# username, display name, unit code, scope code (None: the unit itself), roles
DEMO_PEOPLE: list[tuple[str, str, str, str | None, list[Role]]] = [
    ("admin", "系统管理员", CITY, None, [Role.ADMIN]),
    ("auditor", "安全审计员", CITY, None, [Role.AUDITOR]),
    ("calltaker", "话务员 陈小敏", BUREAU, CITY, [Role.CALL_TAKER]),
    ("dispatcher", "派单员 李志强", BUREAU, CITY, [Role.DISPATCHER]),
    ("callback", "回访员 王丽", BUREAU, CITY, [Role.CALLBACK_AGENT]),
    ("supervisor", "督办员 张建国", BUREAU, CITY, [Role.SUPERVISOR]),
    ("leader", "市领导 刘副市长", CITY, None, [Role.LEADER]),
    ("zjj.handler", "住建局承办人 黄伟", HOUSING, None, [Role.HANDLER]),
    ("dc.leader", "东城街道负责人 周敏", DONGCHENG, None, [Role.UNIT_LEADER]),
    ("dc.handler", "东城街道承办人 吴涛", DONGCHENG, None, [Role.HANDLER]),
    ("dc.admin", "东城街道管理员 郑洁", DONGCHENG, None, [Role.ADMIN]),
    ("sj.handler", "石碣镇承办人 何军", SHIJIE, None, [Role.HANDLER]),
    ("sj.admin", "石碣镇管理员 罗芳", SHIJIE, None, [Role.ADMIN]),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str | None  # None: the account existed already; its password was not changed
    display_name: str
    roles: str
    unit: str


def demo_units_csv() -> str:
    return resources.files("zhengshu.org").joinpath("data/dongguan_units.csv").read_text("utf-8")


def demo_password() -> str:
    """A random password that meets the strength rule (upper, lower, digits, symbol)."""
    return f"Zs{secrets.token_hex(4)}-{secrets.randbelow(9000) + 1000}"


def seed_demo(
    session: Session,
    actor: Principal,
    *,
    password: Callable[[], str] = demo_password,
) -> tuple[service.ImportReport, list[DemoAccount]]:
    """Load the Dongguan tree and the demo accounts; safe to run again (nothing doubles).
    ``password`` makes each new account's password (tests pass a fixed one)."""
    report = service.import_units(session, actor, rows=service.parse_units_csv(demo_units_csv()))
    accounts = []
    for username, name, unit_code, scope_code, roles in DEMO_PEOPLE:
        unit = repository.unit_by_code(session, unit_code)
        scope = repository.unit_by_code(session, scope_code) if scope_code else None
        assert unit is not None, unit_code
        labels = "、".join(ROLE_LABELS[r] for r in roles)
        existing = repository.person_by_username(session, username)
        if existing is not None:
            accounts.append(DemoAccount(username, None, existing.display_name, labels, unit.name))
            continue
        secret = password()
        service.create_person(
            session,
            actor,
            data=PersonCreate(
                username=username,
                display_name=name,
                unit_id=unit.id,
                scope_unit_id=scope.id if scope else None,
                roles=roles,
                password=secret,
            ),
        )
        accounts.append(DemoAccount(username, secret, name, labels, unit.name))
    return report, accounts
