"""KPIs over HTTP (指标): the report by unit, town, category, channel or period,
with its formulas and drill-down."""

from __future__ import annotations

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1", tags=["指标 KPIs"])
pages = APIRouter(include_in_schema=False)
