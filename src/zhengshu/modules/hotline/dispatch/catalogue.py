"""The dispatch catalogue (派单目录): category x jurisdiction -> lead and co-handling units.

Edited by administrators (``hotline:dispatch:configure``), versioned: a change never
overwrites a rule; it retires the old row and adds a new one, and each change moves the
catalogue version up by one. Lookups take the most specific live rule: the category in
the order's own town first, then the category anywhere in the city.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.errors import Conflict, InvalidInput, PermissionDenied, not_found
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.dispatch.models import DispatchRule
from zhengshu.org import repository as org_repository
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, UnitKind

MAX_CO_UNITS = 10


@dataclass(frozen=True)
class RuleInput:
    """A new catalogue line as an administrator enters it."""

    category: str
    town_unit_id: uuid.UUID | None = None
    lead_unit_id: uuid.UUID | None = None
    lead_is_town: bool = False
    co_unit_ids: tuple[uuid.UUID, ...] = ()
    auto_threshold: float | None = None
    note: str | None = None


def require_configure(session: Session, actor: Principal) -> None:
    """The catalogue and the model are the city's: ``hotline:dispatch:configure`` and a
    city-wide scope (a town's administrator has the permission for their town only)."""
    actor.require("hotline:dispatch:configure")
    root = org_repository.root_unit(session)
    # The platform itself (CLI, worker) covers everything, even before a tree is loaded.
    if not actor.covers(root.path if root is not None else None):
        raise PermissionDenied(
            "派单目录和派单模型由市级管理员维护", "city-wide administrators only"
        )


def can_configure(session: Session, actor: Principal) -> bool:
    try:
        require_configure(session, actor)
    except PermissionDenied:
        return False
    return True


def version(session: Session) -> int:
    """The catalogue's current version: 0 before the first rule."""
    return int(session.scalar(select(func.max(DispatchRule.catalogue_version))) or 0)


def live_rules(session: Session) -> list[DispatchRule]:
    return list(
        session.scalars(
            select(DispatchRule)
            .where(DispatchRule.retired_at.is_(None))
            .order_by(DispatchRule.category, DispatchRule.created_at)
        )
    )


def history(session: Session, limit: int = 200) -> list[DispatchRule]:
    return list(
        session.scalars(
            select(DispatchRule).order_by(DispatchRule.catalogue_version.desc()).limit(limit)
        )
    )


def lookup(session: Session, category: str, town_id: uuid.UUID | None) -> DispatchRule | None:
    """The live rule for a category in a town: the town's own line, else the city's."""
    rows = session.scalars(
        select(DispatchRule).where(
            DispatchRule.category == category, DispatchRule.retired_at.is_(None)
        )
    ).all()
    own = [r for r in rows if town_id is not None and r.town_unit_id == town_id]
    if own:
        return own[0]
    anywhere = [r for r in rows if r.town_unit_id is None]
    return anywhere[0] if anywhere else None


def _unit(session: Session, unit_id: uuid.UUID, what: str) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or not unit.active:
        raise InvalidInput(
            f"{what}不存在或已停用", f"unknown or inactive unit: {what}", code="bad_unit"
        )
    if UnitKind(unit.kind) is UnitKind.CITY:
        raise InvalidInput(
            "不能派给市本级，请选择部门或镇街", "dispatch to a department or town", code="bad_unit"
        )
    return unit


def _validate(session: Session, data: RuleInput) -> None:
    if data.category not in categories():
        raise InvalidInput(
            "未知的诉求类别", f"unknown category {data.category!r}", code="bad_category"
        )
    if data.town_unit_id is not None:
        town = _unit(session, data.town_unit_id, "镇街")
        if UnitKind(town.kind) not in TOWN_LEVEL:
            raise InvalidInput(
                "辖区必须是镇街或园区", "the jurisdiction must be a town", code="bad_unit"
            )
    if data.lead_is_town == (data.lead_unit_id is not None):
        raise InvalidInput(
            "请选择一个主办单位，或选择“由所在镇街主办”",
            "give either a lead unit or lead_is_town",
            code="lead_required",
        )
    if data.lead_unit_id is not None:
        _unit(session, data.lead_unit_id, "主办单位")
    if len(data.co_unit_ids) > MAX_CO_UNITS:
        raise InvalidInput("协办单位最多 10 个", "at most 10 co-handling units", code="too_many")
    for co in data.co_unit_ids:
        _unit(session, co, "协办单位")
        if co == data.lead_unit_id:
            raise InvalidInput(
                "协办单位不能与主办单位相同", "a co-unit cannot be the lead", code="bad_unit"
            )
    if data.auto_threshold is not None and not 0.5 <= data.auto_threshold <= 1.0:
        raise InvalidInput(
            "自动派单置信度阈值须在 0.5 到 1 之间",
            "auto_threshold must be between 0.5 and 1",
            code="bad_threshold",
        )


def _snapshot(rule: DispatchRule) -> dict[str, object]:
    return {
        "category": rule.category,
        "town_unit_id": str(rule.town_unit_id) if rule.town_unit_id else None,
        "lead_unit_id": str(rule.lead_unit_id) if rule.lead_unit_id else None,
        "lead_is_town": rule.lead_is_town,
        "co_unit_ids": list(rule.co_unit_ids),
        "auto_threshold": rule.auto_threshold,
        "catalogue_version": rule.catalogue_version,
    }


def add_rule(session: Session, actor: Principal, data: RuleInput) -> DispatchRule:
    """Add a line; a live line for the same category and town is retired by it."""
    require_configure(session, actor)
    _validate(session, data)
    now = clock.now()
    new_version = version(session) + 1
    replaced = session.scalars(
        select(DispatchRule).where(
            DispatchRule.category == data.category,
            DispatchRule.retired_at.is_(None),
            DispatchRule.town_unit_id.is_(None)
            if data.town_unit_id is None
            else DispatchRule.town_unit_id == data.town_unit_id,
        )
    ).all()
    for old in replaced:
        old.retired_at, old.retired_by = now, actor.name
    rule = DispatchRule(
        category=data.category,
        town_unit_id=data.town_unit_id,
        lead_unit_id=data.lead_unit_id,
        lead_is_town=data.lead_is_town,
        co_unit_ids=[str(u) for u in data.co_unit_ids],
        auto_threshold=data.auto_threshold,
        note=data.note,
        catalogue_version=new_version,
        created_at=now,
        created_by=actor.name,
    )
    session.add(rule)
    session.flush()
    audit.record(
        session,
        actor,
        "hotline.dispatch.rule.add",
        entity_type="dispatch_rule",
        entity_id=rule.id,
        before=_snapshot(replaced[0]) if replaced else None,
        after=_snapshot(rule),
    )
    return rule


def retire_rule(session: Session, actor: Principal, rule_id: uuid.UUID) -> DispatchRule:
    """Take a line out of the catalogue (kept in its history)."""
    require_configure(session, actor)
    rule = session.get(DispatchRule, rule_id)
    if rule is None:
        raise not_found("派单目录条目", "dispatch rule")
    if rule.retired_at is not None:
        raise Conflict("该条目已停用", "the rule is already retired", code="already_retired")
    rule.retired_at, rule.retired_by = clock.now(), actor.name
    # A removal is a change of the catalogue too: it gets a version of its own.
    marker = DispatchRule(
        category=rule.category,
        town_unit_id=rule.town_unit_id,
        lead_unit_id=rule.lead_unit_id,
        lead_is_town=rule.lead_is_town,
        co_unit_ids=list(rule.co_unit_ids),
        auto_threshold=rule.auto_threshold,
        note="停用",
        catalogue_version=version(session) + 1,
        created_at=rule.retired_at,
        created_by=actor.name,
        retired_at=rule.retired_at,
        retired_by=actor.name,
    )
    session.add(marker)
    session.flush()
    audit.record(
        session,
        actor,
        "hotline.dispatch.rule.retire",
        entity_type="dispatch_rule",
        entity_id=rule.id,
        before=_snapshot(rule),
    )
    return rule
