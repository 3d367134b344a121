"""Every query of the organisation, narrowed by the caller's jurisdiction scope.

A record outside the principal's scope is reported as not found, exactly like a missing
one, so no one can probe another town's records by id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from zhengshu.kernel.authz import Principal, PrincipalKind
from zhengshu.kernel.errors import not_found
from zhengshu.org.models import ApiToken, LoginAttempt, Person, PersonRole, Unit, WebSession


def _scoped_units(principal: Principal, query: Select[Unit]) -> Select[Unit]:
    if principal.kind is PrincipalKind.SYSTEM:
        return query
    if principal.scope_path is None:
        return query.where(Unit.id.is_(None))
    return query.where(Unit.path.startswith(principal.scope_path))


def get_unit(session: Session, principal: Principal, unit_id: uuid.UUID) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or not principal.covers(unit.path):
        raise not_found("单位", "unit")
    return unit


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.execute(select(Unit).where(Unit.code == code)).scalar_one_or_none()


def root_unit(session: Session) -> Unit | None:
    return session.execute(select(Unit).where(Unit.parent_id.is_(None))).scalars().first()


def list_units(
    session: Session,
    principal: Principal,
    *,
    kinds: Sequence[str] = (),
    parent_id: uuid.UUID | None = None,
    q: str | None = None,
    include_inactive: bool = True,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Unit], int]:
    query = _scoped_units(principal, select(Unit))
    if kinds:
        query = query.where(Unit.kind.in_(kinds))
    if parent_id is not None:
        query = query.where(Unit.parent_id == parent_id)
    if q and q.strip():
        text = q.strip()
        query = query.where(
            or_(
                Unit.name.contains(text, autoescape=True),
                Unit.short_name.contains(text, autoescape=True),
                Unit.code.contains(text, autoescape=True),
            )
        )
    if not include_inactive:
        query = query.where(Unit.active.is_(True))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = (
        session.execute(
            query.order_by(Unit.depth, Unit.sort_order, Unit.code).limit(limit).offset(offset)
        )
        .scalars()
        .all()
    )
    return list(rows), total


def all_units(session: Session, principal: Principal) -> list[Unit]:
    """The whole tree in scope, parents before children (for the tree page and export)."""
    query = _scoped_units(principal, select(Unit)).order_by(Unit.depth, Unit.sort_order, Unit.code)
    return list(session.execute(query).scalars())


def children(session: Session, unit: Unit) -> list[Unit]:
    return list(session.execute(select(Unit).where(Unit.parent_id == unit.id)).scalars())


def subtree(session: Session, unit: Unit) -> list[Unit]:
    query = select(Unit).where(Unit.path.startswith(unit.path)).order_by(Unit.depth)
    return list(session.execute(query).scalars())


def get_person(session: Session, principal: Principal, person_id: uuid.UUID) -> Person:
    row = session.execute(
        select(Person, Unit.path)
        .join(Unit, Person.unit_id == Unit.id)
        .where(Person.id == person_id)
    ).first()
    if row is None or not principal.covers(row[1]):
        raise not_found("人员", "person")
    return row[0]


def person_by_username(session: Session, username: str) -> Person | None:
    return session.execute(
        select(Person).where(Person.username == username.strip().lower())
    ).scalar_one_or_none()


def list_people(
    session: Session,
    principal: Principal,
    *,
    unit_id: uuid.UUID | None = None,
    role: str | None = None,
    q: str | None = None,
    active: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[Person, Unit]], int]:
    """People in scope with their units, newest first; two queries whatever the page size
    (count and page), roles come in one more ``selectin`` query."""
    query = select(Person, Unit).join(Unit, Person.unit_id == Unit.id)
    if principal.kind is not PrincipalKind.SYSTEM:
        if principal.scope_path is None:
            query = query.where(Person.id.is_(None))
        else:
            query = query.where(Unit.path.startswith(principal.scope_path))
    if unit_id is not None:
        query = query.where(Person.unit_id == unit_id)
    if role:
        query = query.where(
            Person.id.in_(select(PersonRole.person_id).where(PersonRole.role == role))
        )
    if q and q.strip():
        text = q.strip()
        query = query.where(
            or_(
                Person.username.contains(text, autoescape=True),
                Person.display_name.contains(text, autoescape=True),
                Person.phone.contains(text, autoescape=True),
            )
        )
    if active is not None:
        query = query.where(Person.active.is_(active))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Unit.depth, Unit.code, Person.username).limit(limit).offset(offset)
    ).all()
    return [(row[0], row[1]) for row in rows], total


def token_by_prefix(session: Session, prefix: str) -> ApiToken | None:
    return session.execute(select(ApiToken).where(ApiToken.prefix == prefix)).scalar_one_or_none()


def web_session(session: Session, session_id: str) -> WebSession | None:
    return session.get(WebSession, session_id)


def recent_failures(
    session: Session, *, since: datetime, username: str | None = None, ip: str | None = None
) -> int:
    query = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.at >= since, LoginAttempt.success.is_(False))
    )
    if username is not None:
        query = query.where(LoginAttempt.username == username)
    if ip is not None:
        query = query.where(LoginAttempt.ip == ip)
    return session.execute(query).scalar_one()


def last_success(session: Session, *, username: str) -> datetime | None:
    return session.execute(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, LoginAttempt.success.is_(True)
        )
    ).scalar_one()
