"""Turning cases and orders into what the API and pages show (masking included)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from zhengshu.casework.definitions import Workflow
from zhengshu.casework.models import Case
from zhengshu.kernel.authz import Principal
from zhengshu.modules.hotline import repository, service
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.dispatch.models import DispatchSuggestion
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import (
    OrderListItem,
    OrderRead,
    TimelineItem,
    UnitRef,
)
from zhengshu.org.models import Unit


def mask_phone(phone: str) -> str:
    """138****5678: enough for the requester to recognise, not enough to call."""
    if len(phone) >= 7:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * len(phone)


def mask_id(number: str | None) -> str | None:
    if not number:
        return number
    return number[:6] + "********" + number[-4:]


def order_read(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    *,
    revealed: bool = False,
) -> OrderRead:
    parent = session.get(Case, case.parent_id) if case.parent_id else None
    category = categories().get(case.category or "")
    return OrderRead(
        id=case.id,
        number=case.number,
        status=case.status,
        status_label=workflow.state(case.status).label,
        channel=order.channel,
        request_type=case.request_type,
        category=case.category,
        category_name=category.name if category else None,
        urgency=case.urgency,
        title=case.title,
        content=order.content,
        requester_name=order.requester_name,
        requester_phone=order.requester_phone if revealed else mask_phone(order.requester_phone),
        requester_id_number=order.requester_id_number
        if revealed
        else mask_id(order.requester_id_number),
        address=order.address,
        location_unit_id=order.location_unit_id,
        external_ref=order.external_ref,
        lead_unit_id=case.lead_unit_id,
        units=[
            UnitRef(id=cu.unit_id, name=name, role=cu.role)
            for cu, name in repository.case_units(session, case.id)
        ],
        due_at=case.due_at,
        warn_at=case.warn_at,
        due_provisional=case.due_provisional,
        warning_level=case.warning_level,
        escalation_level=case.escalation_level,
        rework_count=case.rework_count,
        parent_number=parent.number if parent else None,
        answer=order.answer,
        reply_text=order.reply_text,
        solved=order.solved,
        satisfaction=order.satisfaction,
        created_at=case.created_at,
        closed_at=case.closed_at,
        version=case.version,
        actions=service.available_actions(session, actor, case, workflow),
        masked=not revealed,
    )


def list_item(case: Case, order: Order, lead_name: str | None, workflow: Workflow) -> OrderListItem:
    category = categories().get(case.category or "")
    return OrderListItem(
        id=case.id,
        number=case.number,
        status=case.status,
        status_label=workflow.state(case.status).label,
        title=case.title,
        category_name=category.name if category else None,
        urgency=case.urgency,
        requester_name=order.requester_name,
        requester_phone=mask_phone(order.requester_phone),
        lead_unit_name=lead_name,
        due_at=case.due_at,
        warning_level=case.warning_level,
        created_at=case.created_at,
    )


def timeline_items(session: Session, case: Case) -> list[TimelineItem]:
    return [
        TimelineItem(
            seq=e.seq,
            at=e.at,
            action=e.action,
            label=e.label,
            from_status=e.from_status,
            to_status=e.to_status,
            actor_name=e.actor_name,
            unit_name=unit_name,
            note=e.note,
            data=e.data,
        )
        for e, unit_name in repository.timeline(session, case.id)
    ]


UNIT_SOURCE_LABELS = {
    "catalogue": "派单目录",
    "model": "历史工单模型",
    "category": "类别默认单位",
    "none": "—",
}


def suggestion_view(session: Session, case: Case) -> dict[str, Any] | None:
    """Smart dispatch's proposal for an order, with names, for the order page and API."""
    row = session.get(DispatchSuggestion, case.id)
    if row is None:
        return None
    names = categories()

    def unit(unit_id: object) -> Unit | None:
        return session.get(Unit, uuid.UUID(str(unit_id))) if unit_id else None

    def category_name(code: str | None) -> str | None:
        info = names.get(code or "")
        return info.name if info else code

    co = [u for u in (unit(x) for x in row.co_unit_ids) if u is not None]
    lead, town, village = unit(row.lead_unit_id), unit(row.town_unit_id), unit(row.village_unit_id)
    return {
        "created_at": row.created_at,
        "model_version": row.model_version,
        "catalogue_version": row.catalogue_version,
        "category": row.category,
        "category_name": category_name(row.category),
        "category_source": row.category_source,
        "category_confidence": row.category_confidence,
        "category_top": [
            {"category": c, "name": category_name(str(c)), "probability": p}
            for c, p in row.category_top
        ],
        "reasons": list(row.reasons),
        "lead_unit": {"id": lead.id, "name": lead.name} if lead else None,
        "co_units": [{"id": u.id, "name": u.name} for u in co],
        "unit_source": row.unit_source,
        "unit_source_label": UNIT_SOURCE_LABELS.get(row.unit_source, row.unit_source),
        "unit_confidence": row.unit_confidence,
        "town": {"id": town.id, "name": town.name} if town else None,
        "village": {"id": village.id, "name": village.name} if village else None,
        "geo_confidence": row.geo_confidence,
        "geo_matched": list(row.geo_matched),
        "auto": row.auto,
        "held_reason": row.held_reason,
        "outcome": row.outcome,
    }
