"""Every query of 12345 orders, narrowed to what the principal may see.

- A city-wide principal (the hotline centre, city leaders) sees every order.
- A unit sees the orders on which it, or a unit below it, is the lead or a co-handling
  unit right now (an order re-dispatched elsewhere leaves its inbox).
- A partner system's token sees the orders it pushed itself.
Anything else reads as not found.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session

from zhengshu.casework.models import Case, CaseEvent, CaseUnit
from zhengshu.kernel.authz import Principal, PrincipalKind
from zhengshu.kernel.errors import not_found
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import OrderFilters
from zhengshu.org.models import Unit


def is_city_wide(principal: Principal) -> bool:
    if principal.kind is PrincipalKind.SYSTEM:
        return True
    # A root path is "/<hex>/": two slashes.
    return principal.scope_path is not None and principal.scope_path.count("/") == 2


def visible(principal: Principal) -> ColumnElement[bool] | None:
    """The WHERE clause of what ``principal`` may see; None means everything."""
    if is_city_wide(principal) and not (
        principal.kind is PrincipalKind.TOKEN and principal.id is None
    ):
        return None
    if principal.kind is PrincipalKind.TOKEN and principal.id is None:
        return Order.source_token_id == principal.token_id
    if principal.scope_path is None:
        return false()
    return exists().where(
        CaseUnit.case_id == Case.id,
        CaseUnit.active.is_(True),
        CaseUnit.unit_path.startswith(principal.scope_path),
    )


def _base(principal: Principal) -> Any:
    query = select(Case, Order).join(Order, Order.id == Case.id)
    clause = visible(principal)
    return query if clause is None else query.where(clause)


def get_order(session: Session, principal: Principal, order_id: uuid.UUID) -> tuple[Case, Order]:
    row = session.execute(_base(principal).where(Case.id == order_id)).first()
    if row is None:
        raise not_found("工单", "order")
    return row[0], row[1]


def get_by_number(session: Session, principal: Principal, number: str) -> tuple[Case, Order]:
    row = session.execute(_base(principal).where(Case.number == number.strip())).first()
    if row is None:
        raise not_found("工单", "order")
    return row[0], row[1]


def case_by_number(session: Session, number: str) -> Case | None:
    return session.execute(select(Case).where(Case.number == number.strip())).scalar_one_or_none()


def by_external_ref(session: Session, token_id: uuid.UUID, ref: str) -> tuple[Case, Order] | None:
    row = session.execute(
        select(Case, Order)
        .join(Order, Order.id == Case.id)
        .where(Order.source_token_id == token_id, Order.external_ref == ref)
    ).first()
    return (row[0], row[1]) if row else None


def list_orders(
    session: Session,
    principal: Principal,
    filters: OrderFilters,
    *,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[Case, Order, str | None]], int]:
    """A page of orders, newest first, with the lead unit's name; three statements."""
    query = _base(principal)
    if filters.number:
        query = query.where(Case.number == filters.number.strip())
    if filters.phone:
        query = query.where(Order.requester_phone == filters.phone.strip())
    if filters.text:
        text = filters.text.strip()
        query = query.where(
            or_(
                Case.title.contains(text, autoescape=True),
                Order.content.contains(text, autoescape=True),
                Order.address.contains(text, autoescape=True),
            )
        )
    if filters.category:
        query = query.where(Case.category == filters.category)
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.warning_level:
        query = query.where(Case.warning_level == filters.warning_level)
    if filters.unit_id:
        query = query.where(Case.lead_unit_id == filters.unit_id)
    if filters.town_id:
        town = session.get(Unit, filters.town_id)
        if town is None:
            query = query.where(false())
        else:
            query = query.where(
                exists().where(Unit.id == Order.location_unit_id, Unit.path.startswith(town.path))
            )
    if filters.created_from:
        query = query.where(Case.created_at >= filters.created_from)
    if filters.created_to:
        query = query.where(Case.created_at < filters.created_to)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Case.created_at.desc(), Case.number.desc()).limit(limit).offset(offset)
    ).all()
    lead_ids = {row[0].lead_unit_id for row in rows if row[0].lead_unit_id}
    names = (
        dict(session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(lead_ids))).all())
        if lead_ids
        else {}
    )
    return [(c, o, names.get(c.lead_unit_id)) for c, o in rows], total


def case_units(session: Session, case_id: uuid.UUID) -> list[tuple[CaseUnit, str]]:
    return [
        (cu, name)
        for cu, name in session.execute(
            select(CaseUnit, Unit.name)
            .join(Unit, Unit.id == CaseUnit.unit_id)
            .where(CaseUnit.case_id == case_id, CaseUnit.active.is_(True))
            .order_by(CaseUnit.role.desc(), CaseUnit.assigned_at, Unit.code)
        ).all()
    ]


def timeline(session: Session, case_id: uuid.UUID) -> list[tuple[CaseEvent, str | None]]:
    return [
        (event, name)
        for event, name in session.execute(
            select(CaseEvent, Unit.name)
            .outerjoin(Unit, Unit.id == CaseEvent.unit_id)
            .where(CaseEvent.case_id == case_id)
            .order_by(CaseEvent.seq)
        ).all()
    ]


def recent_from_phone(
    session: Session, principal: Principal, phone: str, since: datetime, limit: int = 5
) -> list[tuple[Case, Order]]:
    """Possible duplicates: the same phone in the last days, among the orders the
    principal may see."""
    query = _base(principal).where(and_(Order.requester_phone == phone, Case.created_at >= since))
    return [
        (c, o)
        for c, o in session.execute(query.order_by(Case.created_at.desc()).limit(limit)).all()
    ]
