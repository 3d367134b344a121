"""Roles and the permissions they grant; unit kinds and where each may sit in the tree.

Permissions are named ``scope:resource:action``. Roles follow the 12345 hotline's jobs
(see the glossary), plus the classic separation of duties in Chinese government systems
(三员分立): the administrator manages people and units but cannot read the audit log; the
auditor reads and verifies the audit log but changes nothing.
"""

from __future__ import annotations

from enum import StrEnum


class UnitKind(StrEnum):
    CITY = "city"
    STREET = "street"  # 街道
    TOWN = "town"  # 镇
    PARK = "park"  # 园区
    VILLAGE = "village"  # 村
    COMMUNITY = "community"  # 社区
    DEPARTMENT = "department"  # 市直职能部门
    OFFICE = "office"  # 镇街内设机构

    @property
    def label(self) -> str:
        return UNIT_KIND_LABELS[self]


UNIT_KIND_LABELS = {
    UnitKind.CITY: "市",
    UnitKind.STREET: "街道",
    UnitKind.TOWN: "镇",
    UnitKind.PARK: "园区",
    UnitKind.VILLAGE: "村",
    UnitKind.COMMUNITY: "社区",
    UnitKind.DEPARTMENT: "职能部门",
    UnitKind.OFFICE: "镇街内设机构",
}

TOWN_LEVEL = frozenset({UnitKind.STREET, UnitKind.TOWN, UnitKind.PARK})
VILLAGE_LEVEL = frozenset({UnitKind.VILLAGE, UnitKind.COMMUNITY})

# Which kinds of unit may hang under which: the shape of a prefecture-level city without
# counties (Dongguan, Zhongshan, Danzhou...). A city with districts adds a level here.
ALLOWED_PARENTS: dict[UnitKind, frozenset[UnitKind | None]] = {
    UnitKind.CITY: frozenset({None}),
    UnitKind.STREET: frozenset({UnitKind.CITY}),
    UnitKind.TOWN: frozenset({UnitKind.CITY}),
    UnitKind.PARK: frozenset({UnitKind.CITY}),
    UnitKind.VILLAGE: TOWN_LEVEL,
    UnitKind.COMMUNITY: TOWN_LEVEL,
    UnitKind.DEPARTMENT: frozenset({UnitKind.CITY}),
    UnitKind.OFFICE: TOWN_LEVEL | {UnitKind.DEPARTMENT},
}


class Role(StrEnum):
    CALL_TAKER = "call_taker"
    DISPATCHER = "dispatcher"
    HANDLER = "handler"
    UNIT_LEADER = "unit_leader"
    CALLBACK_AGENT = "callback_agent"
    SUPERVISOR = "supervisor"
    LEADER = "leader"
    ADMIN = "admin"
    AUDITOR = "auditor"
    PARTNER = "partner"  # a partner system's token (e.g. the 110 platform)

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.CALL_TAKER: "话务员",
    Role.DISPATCHER: "派单员",
    Role.HANDLER: "承办人",
    Role.UNIT_LEADER: "单位负责人",
    Role.CALLBACK_AGENT: "回访员",
    Role.SUPERVISOR: "督办员",
    Role.LEADER: "领导",
    Role.ADMIN: "系统管理员",
    Role.AUDITOR: "安全审计员",
    Role.PARTNER: "对接系统",
}

_READ_ORG = {"org:unit:read", "org:person:read", "kernel:calendar:read"}

_HANDLE = {
    "hotline:order:read",
    "hotline:order:sign_for",
    "hotline:order:return",
    "hotline:order:handle",
    "hotline:order:reply",
    "hotline:extension:request",
    "hotline:requester:reveal",
}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.CALL_TAKER: frozenset(
        _READ_ORG
        | {
            "hotline:order:register",
            "hotline:order:read",
            "hotline:order:answer",
            "hotline:order:transfer",
            "hotline:order:merge",
            "hotline:requester:reveal",
        }
    ),
    Role.DISPATCHER: frozenset(
        _READ_ORG
        | {
            "hotline:order:read",
            "hotline:order:dispatch",
            "hotline:order:review_return",
            "hotline:extension:decide",
            "hotline:order:merge",
            "hotline:order:transfer",
            "hotline:order:suspend",
            "hotline:requester:reveal",
            "hotline:dispatch:read",
            "hotline:hot:read",
        }
    ),
    Role.HANDLER: frozenset(_READ_ORG | _HANDLE),
    Role.UNIT_LEADER: frozenset(
        _READ_ORG
        | _HANDLE
        | {
            "hotline:order:assign",
            "hotline:report:read",
            "hotline:weekly:report",
            # A town's leader hears of the warnings and hot issues of the town.
            "hotline:alert:read",
            "hotline:hot:read",
        }
    ),
    Role.CALLBACK_AGENT: frozenset(
        _READ_ORG
        | {
            "hotline:order:read",
            "hotline:order:callback",
            "hotline:requester:reveal",
        }
    ),
    Role.SUPERVISOR: frozenset(
        _READ_ORG
        | {
            "hotline:order:read",
            "hotline:order:supervise",
            "hotline:order:urge",
            "hotline:report:read",
            # Insight: warnings, hot issues, 每周一题, 难题清单.
            "hotline:alert:read",
            "hotline:alert:handle",
            "hotline:hot:read",
            "hotline:hot:manage",
            "hotline:weekly:manage",
            "hotline:hard:manage",
        }
    ),
    Role.LEADER: frozenset(
        _READ_ORG
        | {
            "hotline:order:read",
            "hotline:report:read",
            "hotline:alert:read",
            "hotline:hot:read",
        }
    ),
    Role.ADMIN: frozenset(
        _READ_ORG
        | {
            "org:unit:write",
            "org:person:write",
            "org:token:write",
            "kernel:calendar:write",
            "kernel:jobs:read",
            "hotline:dispatch:read",
            "hotline:dispatch:configure",
        }
    ),
    Role.AUDITOR: frozenset(_READ_ORG | {"kernel:audit:read", "kernel:audit:verify"}),
    Role.PARTNER: frozenset({"hotline:order:push", "hotline:order:read"}),
}


def permissions_for(roles: frozenset[Role] | set[Role]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)


def parse_role(value: str) -> Role:
    """A role by identifier or by its Chinese label."""
    value = value.strip()
    for role in Role:
        if value in (role.value, role.label):
            return role
    raise ValueError(value)
