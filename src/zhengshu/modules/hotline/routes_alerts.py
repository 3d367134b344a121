"""Early warnings (舆情预警) over HTTP: list, acknowledge, handle, dismiss, send on."""

from __future__ import annotations

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1", tags=["预警 alerts"])
pages = APIRouter(include_in_schema=False)
