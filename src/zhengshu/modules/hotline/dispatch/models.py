"""Tables of smart dispatch: the dispatch catalogue, the trained models, the suggestions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.kernel.db import Base, new_id

# A rule or model label meaning "the town / street where the order happened", resolved
# per order from its address: local matters go to the town, not to a fixed unit.
TOWN = "@town"


class DispatchRule(Base):
    """One line of the dispatch catalogue (派单目录): orders of ``category`` in the town
    ``town_unit_id`` (any town when null) go to ``lead_unit_id`` (or, with
    ``lead_is_town``, to the order's own town), with ``co_unit_ids`` as co-handlers.

    Rules are never edited in place: a change retires the row (``retired_at``) and adds a
    new one, and every change raises the catalogue's version, so any past dispatch can be
    explained by the catalogue as it stood. ``auto_threshold`` overrides the city-wide
    confidence above which orders of this category are dispatched without a person."""

    __tablename__ = "dispatch_rules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    category: Mapped[str] = mapped_column(String(60), index=True)
    town_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT"), index=True
    )
    lead_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="RESTRICT")
    )
    lead_is_town: Mapped[bool] = mapped_column(Boolean, default=False)
    co_unit_ids: Mapped[list[Any]]
    auto_threshold: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(String(500))
    catalogue_version: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    retired_at: Mapped[datetime | None] = mapped_column(index=True)
    retired_by: Mapped[str | None] = mapped_column(String(200))


class DispatchModel(Base):
    """A trained pair of text classifiers: order text -> category, and order text ->
    lead unit (a department's code, or ``TOWN``). Only one is ``active``; a retrained
    candidate replaces it only when it scores better on the held-back recent orders.
    ``metrics`` keeps both scores, so the decision can be checked later."""

    __tablename__ = "dispatch_models"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # active|retired|rejected
    source: Mapped[str] = mapped_column(String(200))
    n_train: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    category_model: Mapped[bytes | None] = mapped_column(LargeBinary)
    unit_model: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    promoted_at: Mapped[datetime | None]


class DispatchSuggestion(Base):
    """What smart dispatch proposed for an order at intake, and what became of it.

    ``outcome`` is filled when a person dispatches: ``accepted`` (the suggested lead unit)
    or ``corrected`` (another one); a later return and re-dispatch marks it ``corrected``.
    The final handling unit of closed orders is what the next training learns from."""

    __tablename__ = "dispatch_suggestions"

    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime]
    normalized_text: Mapped[str] = mapped_column(Text)
    model_version: Mapped[int | None] = mapped_column(Integer)
    catalogue_version: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(60))
    category_source: Mapped[str] = mapped_column(String(20))  # human | model | none
    category_confidence: Mapped[float | None] = mapped_column(Float)
    category_top: Mapped[list[Any]]
    reasons: Mapped[list[Any]]
    lead_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL")
    )
    co_unit_ids: Mapped[list[Any]]
    unit_source: Mapped[str] = mapped_column(String(20))  # catalogue | model | category | none
    unit_confidence: Mapped[float | None] = mapped_column(Float)
    town_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL")
    )
    village_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL")
    )
    geo_confidence: Mapped[float | None] = mapped_column(Float)
    geo_matched: Mapped[list[Any]]
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    held_reason: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(20), index=True)
    final_unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL")
    )
