"""What smart dispatch proposes for one order, and whether it may dispatch by itself.

At intake the order's text is normalized (the original is kept on the order), its place
is resolved from the address (or, failing that, from the text; or from a lat/long), the
active model predicts the category and the lead unit, and the dispatch catalogue turns
category x town into the units. The proposal is stored with the order
(``DispatchSuggestion``); when every part of it is confident enough it is carried out at
once, otherwise a dispatcher sees it beside the dispatch form, with the reason it was
held.

Confidence of the whole is the weakest link: the category's (1.0 when a person chose
it), the unit's (the catalogue follows the category; the unit model has its own), and the
address's when the lead is "the order's own town".
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.kernel import clock
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.dispatch import catalogue
from zhengshu.modules.hotline.dispatch.models import (
    TOWN,
    DispatchModel,
    DispatchRule,
    DispatchSuggestion,
)
from zhengshu.org import repository as org_repository
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, VILLAGE_LEVEL, UnitKind

if TYPE_CHECKING:  # loaded on first use: scikit-learn and jieba take a second to import
    from zhengshu.modules.hotline.dispatch.classifier import Prediction, TextClassifier
    from zhengshu.modules.hotline.dispatch.geo import Gazetteer, Resolution


@dataclass(frozen=True)
class DispatchPolicy:
    """When smart dispatch may act alone (configured by ``ZHENGSHU_DISPATCH_*``)."""

    auto: bool = True
    threshold: float = 0.9
    geo_threshold: float = 0.8


@dataclass
class LoadedModel:
    id: uuid.UUID
    version: int
    category: TextClassifier | None
    unit: TextClassifier | None
    # Category labels of a model trained elsewhere -> the city's category codes.
    label_map: dict[str, str] = field(default_factory=dict)

    def code(self, label: str) -> str:
        return self.label_map.get(label, label)


@dataclass
class Proposal:
    """A suggestion before it is stored; the units are loaded rows."""

    normalized_text: str
    model_version: int | None = None
    catalogue_version: int | None = None
    category: str | None = None
    category_source: str = "none"  # human | model | none
    category_confidence: float | None = None
    category_top: list[tuple[str, float]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    lead: Unit | None = None
    co_units: list[Unit] = field(default_factory=list)
    unit_source: str = "none"  # catalogue | model | category | none
    unit_confidence: float | None = None
    town: Unit | None = None
    village: Unit | None = None
    geo_confidence: float | None = None
    geo_matched: list[str] = field(default_factory=list)
    auto: bool = False
    held_reason: str | None = None

    @property
    def location(self) -> Unit | None:
        return self.village or self.town

    def explanation(self) -> dict[str, Any]:
        """What the timeline records of an automatic dispatch."""
        return {
            "model_version": self.model_version,
            "catalogue_version": self.catalogue_version,
            "category": self.category,
            "category_confidence": _round(self.category_confidence),
            "unit_source": self.unit_source,
            "unit_confidence": _round(self.unit_confidence),
            "geo_confidence": _round(self.geo_confidence),
            "reasons": self.reasons,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the active model and the gazetteer, loaded once per process -------------------------

_lock = threading.Lock()
_models: dict[uuid.UUID, LoadedModel] = {}
_gazetteers: dict[tuple[int, str], Gazetteer] = {}


def active_model(session: Session) -> LoadedModel | None:
    row = session.execute(
        select(DispatchModel.id, DispatchModel.version).where(DispatchModel.status == "active")
    ).first()
    if row is None:
        return None
    with _lock:
        cached = _models.get(row.id)
    if cached is not None:
        return cached
    from zhengshu.modules.hotline.dispatch.classifier import TextClassifier

    stored = session.get(DispatchModel, row.id)
    if stored is None:
        return None
    loaded = LoadedModel(
        id=stored.id,
        version=stored.version,
        category=TextClassifier.from_bytes(stored.category_model)
        if stored.category_model
        else None,
        unit=TextClassifier.from_bytes(stored.unit_model) if stored.unit_model else None,
        label_map=dict((stored.metrics or {}).get("label_map") or {}),
    )
    with _lock:
        _models.clear()  # one active model at a time; the old one is let go
        _models[row.id] = loaded
    return loaded


def gazetteer(session: Session) -> Gazetteer:
    """The place index of the city's units, rebuilt when the units change."""
    count, changed = session.execute(select(func.count(Unit.id), func.max(Unit.updated_at))).one()
    key = (int(count), str(changed))
    with _lock:
        cached = _gazetteers.get(key)
    if cached is not None:
        return cached
    from zhengshu.modules.hotline.dispatch.geo import Gazetteer

    built = Gazetteer.from_session(session)
    with _lock:
        _gazetteers.clear()
        _gazetteers[key] = built
    return built


# -- the proposal ------------------------------------------------------------------------


def _town_of(session: Session, unit: Unit) -> tuple[Unit | None, Unit | None]:
    kind = UnitKind(unit.kind)
    if kind in TOWN_LEVEL:
        return unit, None
    if kind in VILLAGE_LEVEL and unit.parent_id is not None:
        return session.get(Unit, unit.parent_id), unit
    return None, None


def _place(
    session: Session,
    proposal: Proposal,
    resolution: Resolution,
) -> None:
    town = (
        org_repository.unit_by_code(session, resolution.town_code) if resolution.town_code else None
    )
    village = (
        org_repository.unit_by_code(session, resolution.village_code)
        if resolution.village_code
        else None
    )
    if town is None:
        return
    proposal.town, proposal.village = town, village
    proposal.geo_confidence = resolution.confidence
    proposal.geo_matched = list(resolution.matched)


def _locate(
    session: Session,
    proposal: Proposal,
    *,
    text: str,
    address: str | None,
    location_unit_id: uuid.UUID | None,
    lat: float | None,
    lon: float | None,
) -> None:
    if location_unit_id is not None:
        unit = session.get(Unit, location_unit_id)
        if unit is not None:
            proposal.town, proposal.village = _town_of(session, unit)
            proposal.geo_confidence = 1.0
            proposal.geo_matched = ["受理人员选择"]
            return
    places = gazetteer(session)
    tries: list[Resolution] = []
    if address:
        tries.append(places.resolve(address))
    if lat is not None and lon is not None:
        tries.append(places.resolve_point(lat, lon))
    if not any(r.town for r in tries):
        # Callers often say where only in what they tell: "东城街道XX小区门口……".
        tries.append(places.resolve(text[:300]))
    best = max((r for r in tries if r.town), key=lambda r: r.confidence, default=None)
    if best is not None:
        _place(session, proposal, best)


def _threshold(policy: DispatchPolicy, rule: DispatchRule | None) -> float:
    if rule is not None and rule.auto_threshold is not None:
        return rule.auto_threshold
    return policy.threshold


def _route_by_rule(session: Session, proposal: Proposal, rule: DispatchRule) -> None:
    proposal.catalogue_version = rule.catalogue_version
    proposal.unit_source = "catalogue"
    proposal.unit_confidence = proposal.category_confidence
    if rule.lead_is_town:
        proposal.lead = proposal.town
        if proposal.town is not None and proposal.unit_confidence is not None:
            proposal.unit_confidence = min(proposal.unit_confidence, proposal.geo_confidence or 0)
    elif rule.lead_unit_id is not None:
        proposal.lead = session.get(Unit, rule.lead_unit_id)
    co = [session.get(Unit, uuid.UUID(str(u))) for u in rule.co_unit_ids]
    proposal.co_units = [u for u in co if u is not None and u.active and u is not proposal.lead]


def _route_by_model(session: Session, proposal: Proposal, prediction: Prediction) -> None:
    proposal.unit_source = "model"
    if prediction.label == TOWN:
        proposal.lead = proposal.town
        geo = proposal.geo_confidence or 0.0
        proposal.unit_confidence = min(prediction.confidence, geo)
    else:
        unit = org_repository.unit_by_code(session, prediction.label)
        proposal.lead = unit if unit is not None and unit.active else None
        proposal.unit_confidence = prediction.confidence


def propose(
    session: Session,
    *,
    policy: DispatchPolicy,
    title: str,
    content: str,
    category: str | None,
    urgency: str,
    address: str | None = None,
    location_unit_id: uuid.UUID | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> Proposal:
    """Everything smart dispatch can say about a new order. ``category`` is the one a
    person chose, or None to let the model choose."""
    from zhengshu.modules.hotline.dispatch.text import normalize

    text = f"{title}\n{content}"
    proposal = Proposal(normalized_text=normalize(content))
    _locate(
        session,
        proposal,
        text=normalize(text),
        address=address,
        location_unit_id=location_unit_id,
        lat=lat,
        lon=lon,
    )
    model = active_model(session)
    if model is not None:
        proposal.model_version = model.version
    if model is not None and model.category is not None:
        guess = model.category.predict_one(text)
        proposal.category_top = [(model.code(label), p) for label, p in guess.top]
        proposal.reasons = list(guess.reasons)
        predicted = model.code(guess.label)
        if category is None and predicted in categories():
            proposal.category, proposal.category_source = predicted, "model"
            proposal.category_confidence = guess.confidence
    if category is not None:
        proposal.category, proposal.category_source = category, "human"
        proposal.category_confidence = 1.0

    rule = (
        catalogue.lookup(session, proposal.category, proposal.town.id if proposal.town else None)
        if proposal.category
        else None
    )
    if rule is not None:
        _route_by_rule(session, proposal, rule)
    elif model is not None and model.unit is not None:
        unit_guess = model.unit.predict_one(text)
        _route_by_model(session, proposal, unit_guess)
        if not proposal.reasons:
            proposal.reasons = list(unit_guess.reasons)
    elif proposal.category is not None:
        info = categories().get(proposal.category)
        if info is not None and info.unit_code is not None:
            proposal.lead = org_repository.unit_by_code(session, info.unit_code)
            proposal.unit_source = "category"
    proposal.auto, proposal.held_reason = _decide(policy, proposal, urgency, rule)
    return proposal


def _decide(
    policy: DispatchPolicy, proposal: Proposal, urgency: str, rule: DispatchRule | None
) -> tuple[bool, str | None]:
    """Dispatch without a person only when every part is sure; else say what was missing."""
    if not policy.auto:
        return False, "未开启自动派单"
    if urgency == "emergency":
        return False, "紧急工单由派单员人工派单"
    if proposal.model_version is None and proposal.category_source != "human":
        return False, "尚无启用的派单模型"
    if proposal.category is None or proposal.category == "other":
        return False, "未能判定诉求类别"
    if proposal.lead is None:
        if proposal.town is None:
            return False, "未能识别诉求所在镇街"
        return False, "派单目录和模型均未给出承办单位"
    if proposal.unit_source == "category":
        return False, "仅有类别默认单位，需人工确认"
    threshold = _threshold(policy, rule)
    confidence = proposal.unit_confidence or 0.0
    if proposal.category_source == "model":
        confidence = min(confidence, proposal.category_confidence or 0.0)
    if confidence < threshold:
        return False, f"置信度 {confidence:.2f} 低于自动派单阈值 {threshold:.2f}"
    if proposal.lead is proposal.town and (proposal.geo_confidence or 0) < policy.geo_threshold:
        return False, "诉求地址识别不够确定"
    return True, None


def store(session: Session, case_id: uuid.UUID, proposal: Proposal) -> DispatchSuggestion:
    row = DispatchSuggestion(
        case_id=case_id,
        created_at=clock.now(),
        normalized_text=proposal.normalized_text,
        model_version=proposal.model_version,
        catalogue_version=proposal.catalogue_version,
        category=proposal.category,
        category_source=proposal.category_source,
        category_confidence=proposal.category_confidence,
        category_top=[[label, round(p, 4)] for label, p in proposal.category_top],
        reasons=list(proposal.reasons),
        lead_unit_id=proposal.lead.id if proposal.lead else None,
        co_unit_ids=[str(u.id) for u in proposal.co_units],
        unit_source=proposal.unit_source,
        unit_confidence=proposal.unit_confidence,
        town_unit_id=proposal.town.id if proposal.town else None,
        village_unit_id=proposal.village.id if proposal.village else None,
        geo_confidence=proposal.geo_confidence,
        geo_matched=list(proposal.geo_matched),
        auto=proposal.auto,
        held_reason=proposal.held_reason,
    )
    session.add(row)
    return row


def record_outcome(session: Session, case_id: uuid.UUID, lead_unit_id: uuid.UUID) -> None:
    """A person dispatched (or re-dispatched): did they follow the suggestion? Once
    corrected, an order stays corrected (a return after an automatic dispatch counts)."""
    row = session.get(DispatchSuggestion, case_id)
    if row is None:
        return
    if row.outcome is None:
        row.outcome = "accepted" if row.lead_unit_id == lead_unit_id else "corrected"
    elif row.lead_unit_id != lead_unit_id:
        row.outcome = "corrected"
    row.final_unit_id = lead_unit_id
