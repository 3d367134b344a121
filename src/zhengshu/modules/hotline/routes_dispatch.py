"""Smart dispatch over HTTP: the catalogue and the models (API and pages), an order's
suggestion (API; the order page shows it beside the dispatch form)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from starlette.datastructures import FormData

from zhengshu.kernel import jobs
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.errors import InvalidInput, not_found
from zhengshu.modules.hotline import repository, views
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.dispatch import catalogue, training
from zhengshu.modules.hotline.dispatch.models import DispatchModel, DispatchRule, DispatchSuggestion
from zhengshu.modules.hotline.schemas import (
    ModelRead,
    NamedUnit,
    RetrainQueued,
    RuleCreate,
    RuleRead,
    SuggestionRead,
)
from zhengshu.org import repository as org_repository
from zhengshu.org.deps import DB, Actor
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, UnitKind
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

api = APIRouter(prefix="/api/v1", tags=["智能派单 smart dispatch"])
pages = APIRouter(include_in_schema=False)


def _named(db: DB, unit_id: object) -> NamedUnit | None:
    if not unit_id:
        return None
    unit = db.get(Unit, uuid.UUID(str(unit_id)))
    return NamedUnit(id=unit.id, name=unit.name) if unit is not None else None


def _rule_read(db: DB, rule: DispatchRule) -> RuleRead:
    info = categories().get(rule.category)
    return RuleRead(
        id=rule.id,
        category=rule.category,
        category_name=info.name if info else None,
        town_unit=_named(db, rule.town_unit_id),
        lead_unit=_named(db, rule.lead_unit_id),
        lead_is_town=rule.lead_is_town,
        co_units=[u for u in (_named(db, c) for c in rule.co_unit_ids) if u is not None],
        auto_threshold=rule.auto_threshold,
        note=rule.note,
        catalogue_version=rule.catalogue_version,
        created_at=rule.created_at,
        created_by=rule.created_by,
        retired_at=rule.retired_at,
    )


def _model_read(row: DispatchModel) -> ModelRead:
    return ModelRead(
        id=row.id,
        version=row.version,
        status=row.status,
        source=row.source,
        n_train=row.n_train,
        n_holdout=row.n_holdout,
        metrics=dict(row.metrics or {}),
        created_at=row.created_at,
        created_by=row.created_by,
        promoted_at=row.promoted_at,
    )


def _models(db: DB) -> list[DispatchModel]:
    return list(db.scalars(select(DispatchModel).order_by(DispatchModel.version.desc()).limit(50)))


def _queue_retrain(db: DB, actor: Principal) -> jobs.Job:
    catalogue.require_configure(db, actor)
    return jobs.enqueue(db, training.JOB, {"by": actor.name}, max_attempts=1)


# --- API ---------------------------------------------------------------------------------


@api.get("/orders/{order_id}/suggestion", response_model=SuggestionRead)
def order_suggestion(order_id: uuid.UUID, db: DB, actor: Actor) -> SuggestionRead:
    """Smart dispatch's proposal for an order (``hotline:order:read``, in jurisdiction)."""
    actor.require("hotline:order:read")
    case, _ = repository.get_order(db, actor, order_id)
    view = views.suggestion_view(db, case)
    if view is None:
        raise not_found("派单建议", "suggestion")
    return SuggestionRead.model_validate(view)


@api.get("/dispatch/rules", response_model=list[RuleRead])
def list_rules(db: DB, actor: Actor) -> list[RuleRead]:
    """The live dispatch catalogue (派单目录)."""
    actor.require("hotline:dispatch:read")
    return [_rule_read(db, r) for r in catalogue.live_rules(db)]


@api.post("/dispatch/rules", response_model=RuleRead, status_code=201)
def add_rule(body: RuleCreate, db: DB, actor: Actor) -> RuleRead:
    """Add a catalogue line (replaces the live line of the same category and town)."""
    rule = catalogue.add_rule(
        db,
        actor,
        catalogue.RuleInput(
            category=body.category,
            town_unit_id=body.town_unit_id,
            lead_unit_id=body.lead_unit_id,
            lead_is_town=body.lead_is_town,
            co_unit_ids=tuple(body.co_unit_ids),
            auto_threshold=body.auto_threshold,
            note=body.note,
        ),
    )
    return _rule_read(db, rule)


@api.delete("/dispatch/rules/{rule_id}", response_model=RuleRead)
def retire_rule(rule_id: uuid.UUID, db: DB, actor: Actor) -> RuleRead:
    """Take a line out of the catalogue (its history is kept)."""
    return _rule_read(db, catalogue.retire_rule(db, actor, rule_id))


@api.get("/dispatch/models", response_model=list[ModelRead])
def list_models(db: DB, actor: Actor) -> list[ModelRead]:
    """Trained models, newest first, with their held-back scores."""
    actor.require("hotline:dispatch:read")
    return [_model_read(m) for m in _models(db)]


@api.post("/dispatch/models/retrain", response_model=RetrainQueued, status_code=202)
def retrain(db: DB, actor: Actor) -> RetrainQueued:
    """Queue a retrain from closed orders; promoted only if it scores better."""
    job = _queue_retrain(db, actor)
    return RetrainQueued(job_id=job.id, status=job.status)


# --- pages -------------------------------------------------------------------------------


def _uuid_of(raw: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidInput("单位选择无效", f"bad {name}", code="bad_form") from exc


def _form_uuid(form: FormData, name: str) -> uuid.UUID | None:
    raw = str(form.get(name, "") or "").strip()
    return _uuid_of(raw, name) if raw else None


def _form_uuids(form: FormData, name: str) -> tuple[uuid.UUID, ...]:
    """Every non-empty value of a multi-select; a value that is not an id is refused."""
    values = (str(v).strip() for v in form.getlist(name))
    return tuple(_uuid_of(v, name) for v in values if v)


def _threshold(form: FormData) -> float | None:
    raw = str(form.get("auto_threshold", "") or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidInput(
            "自动派单阈值须为 0.5 到 1 之间的数", "auto_threshold must be a number", code="bad_form"
        ) from exc
    return value / 100 if value > 1 else value


def _outcomes(db: DB) -> dict[str, Any]:
    rows = db.execute(
        select(DispatchSuggestion.auto, DispatchSuggestion.outcome, func.count()).group_by(
            DispatchSuggestion.auto, DispatchSuggestion.outcome
        )
    ).all()
    total = sum(n for _, _, n in rows)
    auto = sum(n for a, _, n in rows if a)
    decided = {o: sum(n for _, oo, n in rows if oo == o) for o in ("accepted", "corrected")}
    auto_corrected = sum(n for a, o, n in rows if a and o == "corrected")
    return {"total": total, "auto": auto, "auto_corrected": auto_corrected, **decided}


@pages.get("/hotline/dispatch")
def dispatch_page(request: Request, db: DB, actor: PageActor, flash: str | None = None) -> Response:
    actor.require("hotline:dispatch:read")
    units = [u for u in org_repository.all_units(db, actor) if u.active]
    towns = [u for u in units if UnitKind(u.kind) in TOWN_LEVEL]
    leads = [u for u in units if UnitKind(u.kind) is not UnitKind.CITY and u.depth <= 1]
    return render(
        request,
        "hotline/dispatch.html",
        {
            "title": "智能派单",
            "rules": [_rule_read(db, r) for r in catalogue.live_rules(db)],
            "version": catalogue.version(db),
            "history": [_rule_read(db, r) for r in catalogue.history(db, 30)],
            "models": [_model_read(m) for m in _models(db)],
            "categories": list(categories().values()),
            "towns": towns,
            "leads": leads,
            "stats": _outcomes(db),
            "can_configure": catalogue.can_configure(db, actor),
            "flash": flash,
        },
    )


def _back(flash: str) -> Response:
    return RedirectResponse(f"/hotline/dispatch?flash={flash}", status_code=303)


@pages.post("/hotline/dispatch/rules")
async def dispatch_rule_add(request: Request, db: DB, actor: PageActor) -> Response:
    form = await request.form()
    lead_raw = str(form.get("lead", "") or "")
    catalogue.add_rule(
        db,
        actor,
        catalogue.RuleInput(
            category=str(form.get("category", "")),
            town_unit_id=_form_uuid(form, "town_unit_id"),
            lead_unit_id=None if lead_raw in {"", "town"} else _form_uuid(form, "lead"),
            lead_is_town=lead_raw == "town",
            co_unit_ids=_form_uuids(form, "co_unit_ids"),
            auto_threshold=_threshold(form),
            note=str(form.get("note", "") or "").strip()[:500] or None,
        ),
    )
    return _back("已加入派单目录")


@pages.post("/hotline/dispatch/rules/{rule_id:uuid}/retire")
def dispatch_rule_retire(rule_id: uuid.UUID, db: DB, actor: PageActor) -> Response:
    catalogue.retire_rule(db, actor, rule_id)
    return _back("已停用该条目")


@pages.post("/hotline/dispatch/retrain")
def dispatch_retrain(db: DB, actor: PageActor) -> Response:
    _queue_retrain(db, actor)
    return _back("已排队重新训练，完成后刷新本页查看结果")
