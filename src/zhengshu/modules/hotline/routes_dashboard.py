"""The leaders' dashboard (领导驾驶舱): live counts, trends, mix, rankings, hot issues."""

from __future__ import annotations

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1", tags=["驾驶舱 dashboard"])
pages = APIRouter(include_in_schema=False)
