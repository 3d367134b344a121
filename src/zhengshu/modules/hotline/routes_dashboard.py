"""The leaders' dashboard (领导驾驶舱) over HTTP: the page, its JSON (polled by the page
every minute), and plotly.js served from the installed ``plotly`` package (no CDN)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhengshu.kernel import clock
from zhengshu.kernel.errors import not_found
from zhengshu.modules.hotline.reports import dashboard
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.deps import DB, Actor, AppSettings
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

api = APIRouter(prefix="/api/v1", tags=["驾驶舱 dashboard"])
pages = APIRouter(include_in_schema=False)


def _snapshot(db: DB, actor: Any, settings: AppSettings) -> dashboard.Dashboard:
    workflow = HotlineConfig.from_settings(settings).workflow()
    open_states = [s.name for s in workflow.states.values() if not s.final]
    return dashboard.snapshot(db, actor, open_states=open_states, now=clock.now())


@api.get("/dashboard", summary="领导驾驶舱数据 the leaders' dashboard")
def dashboard_data(db: DB, actor: Actor, settings: AppSettings) -> dict[str, Any]:
    return _snapshot(db, actor, settings).as_json()


@pages.get("/hotline/dashboard")
def dashboard_page(request: Request, db: DB, actor: PageActor, settings: AppSettings) -> Response:
    board = _snapshot(db, actor, settings)
    return render(
        request,
        "hotline/dashboard.html",
        {"title": "领导驾驶舱", "board": board, "data": board.as_json()},
    )


@cache
def _plotly_js() -> bytes:
    try:
        return resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:  # pragma: no cover - packaging
        raise not_found("图表脚本", "plotly.js") from exc


@pages.get("/vendor/plotly.min.js")
def plotly_js() -> Response:
    """The plotly.js bundled in the installed plotly package: public, cached a day."""
    return Response(
        _plotly_js(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )
