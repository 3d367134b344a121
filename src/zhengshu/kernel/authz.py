"""Authorization primitives: permissions, principals and jurisdiction scopes.

A permission is named ``scope:resource:action`` (``org:person:write``,
``hotline:order:dispatch``); a role is a named set of permissions (defined by ``org``). A
``Principal`` is whoever acts: a person logged in on the web, a bearer token of a person or
a partner system, or the system itself (CLI, worker). It carries its roles, permissions
and its jurisdiction scope: the materialized path of the unit whose subtree it may see.
Repositories narrow every query by ``Principal.scope_path`` so a town sees only its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from zhengshu.kernel.errors import PermissionDenied


class PrincipalKind(StrEnum):
    PERSON = "person"
    TOKEN = "token"
    SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    """Who is acting, what they may do, and over which part of the org tree."""

    kind: PrincipalKind
    name: str
    id: uuid.UUID | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    unit_id: uuid.UUID | None = None
    # Materialized path of the jurisdiction root ("/<uuid>/<uuid>/"); None: no org data.
    scope_path: str | None = None
    ip: str | None = None
    token_id: uuid.UUID | None = None

    def can(self, permission: str) -> bool:
        if permission in self.permissions or "*:*:*" in self.permissions:
            return True
        scope, _, rest = permission.partition(":")
        resource, _, _action = rest.partition(":")
        return f"{scope}:{resource}:*" in self.permissions or f"{scope}:*:*" in self.permissions

    def require(self, permission: str) -> None:
        """Raise ``PermissionDenied`` unless the principal holds ``permission``."""
        if not self.can(permission):
            raise PermissionDenied(
                "您没有执行此操作的权限",
                f"missing permission {permission}",
                details={"permission": permission},
            )

    def covers(self, path: str | None) -> bool:
        """Whether a unit with materialized ``path`` lies inside this principal's scope."""
        if self.kind is PrincipalKind.SYSTEM:
            return True
        if self.scope_path is None or path is None:
            return False
        return path.startswith(self.scope_path)

    def with_ip(self, ip: str | None) -> Principal:
        return Principal(
            kind=self.kind,
            name=self.name,
            id=self.id,
            roles=self.roles,
            permissions=self.permissions,
            unit_id=self.unit_id,
            scope_path=self.scope_path,
            ip=ip,
            token_id=self.token_id,
        )


def system_principal(name: str = "system") -> Principal:
    """The platform itself (CLI commands run by an operator, the worker, migrations)."""
    return Principal(kind=PrincipalKind.SYSTEM, name=name, permissions=frozenset({"*:*:*"}))
