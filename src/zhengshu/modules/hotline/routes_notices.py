"""Handling notices (办理情况通报) over HTTP: web page, Excel and PDF."""

from __future__ import annotations

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1", tags=["通报 notices"])
pages = APIRouter(include_in_schema=False)
