"""Who may do what to which organisation record.

Reading needs ``org:unit:read`` / ``org:person:read``; changing needs the ``write``
permission. Either way the record, and every unit a change points at (a new parent, a
person's unit or scope), must lie inside the actor's jurisdiction: a town's administrator
manages that town's subtree and nothing beyond it.
"""

from __future__ import annotations

from collections.abc import Iterable

from zhengshu.kernel.authz import Principal
from zhengshu.kernel.errors import InvalidInput, PermissionDenied
from zhengshu.org.roles import Role


def check_in_scope(actor: Principal, paths: Iterable[str]) -> None:
    for path in paths:
        if not actor.covers(path):
            raise PermissionDenied(
                "目标单位不在您的管辖范围内", "target unit is outside your jurisdiction"
            )


def check_unit_write(actor: Principal, *paths: str) -> None:
    actor.require("org:unit:write")
    check_in_scope(actor, paths)


def check_person_write(actor: Principal, *paths: str) -> None:
    actor.require("org:person:write")
    check_in_scope(actor, paths)


# Roles whose reach is the whole city whatever unit they sit in: the auditor reads the
# city's whole audit log, which is not divided by jurisdiction.
CITY_ONLY_ROLES = frozenset({Role.AUDITOR})
TOKEN_ROLES = frozenset({Role.PARTNER})


def check_grantable(root_path: str | None, actor: Principal, roles: Iterable[Role]) -> None:
    """Partner is a role for machines' tokens, never for a person; city-only roles need a
    city-wide grantor."""
    wanted = set(roles)
    if Role.PARTNER in wanted:
        raise InvalidInput(
            "“对接系统”角色只能授予 API 令牌", "the partner role is for API tokens only"
        )
    if wanted & CITY_ONLY_ROLES and not actor.covers(root_path):
        raise PermissionDenied(
            "只有市级管理员可以授予安全审计员角色",
            "only a city-wide admin may grant the auditor role",
        )


def check_token_roles(roles: Iterable[Role]) -> None:
    """Tokens are for partner systems; people's roles are never handed to a machine key."""
    extra = set(roles) - TOKEN_ROLES
    if extra:
        raise InvalidInput(
            "接口令牌只能授予“对接系统”角色",
            "tokens may carry the partner role only",
            details={"roles": sorted(r.value for r in extra)},
        )


def check_not_self_lockout(
    actor: Principal, person_id: object, *, active: bool | None, roles: Iterable[Role] | None
) -> None:
    """An administrator cannot deactivate themself or drop their own admin role: the city
    would be left without anyone able to undo it."""
    if actor.id != person_id:
        return
    if active is False:
        raise InvalidInput("不能停用自己的账号", "you cannot deactivate your own account")
    if roles is not None and Role.ADMIN not in set(roles) and Role.ADMIN.value in actor.roles:
        raise InvalidInput("不能取消自己的管理员角色", "you cannot remove your own admin role")
