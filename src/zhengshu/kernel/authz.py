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
from typing import Any

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

    def to_record(self) -> dict[str, Any]:
        """The principal as JSON, to act in its name later (``from_record``)."""
        return {
            "kind": self.kind.value,
            "name": self.name,
            "id": str(self.id) if self.id else None,
            "roles": sorted(self.roles),
            "permissions": sorted(self.permissions),
            "unit_id": str(self.unit_id) if self.unit_id else None,
            "scope_path": self.scope_path,
            "ip": self.ip,
            "token_id": str(self.token_id) if self.token_id else None,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Principal:
        def as_id(value: str | None) -> uuid.UUID | None:
            return uuid.UUID(value) if value else None

        return cls(
            kind=PrincipalKind(record["kind"]),
            name=record["name"],
            id=as_id(record.get("id")),
            roles=frozenset(record.get("roles", [])),
            permissions=frozenset(record.get("permissions", [])),
            unit_id=as_id(record.get("unit_id")),
            scope_path=record.get("scope_path"),
            ip=record.get("ip"),
            token_id=as_id(record.get("token_id")),
        )

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
