"""Hot issues (热点问题),
the weekly top problem (每周一题) and the hard-problem list (难题清单) over HTTP."""

from __future__ import annotations

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1", tags=["热点 hot issues"])
pages = APIRouter(include_in_schema=False)
