"""The web shell: the Jinja environment, the base layout, static assets, shared pieces.

Pages of every bounded context render through ``render``; templates live beside their
package (``org/templates/org/...``) and are found through one loader. Nothing is fetched
from a CDN: the stylesheet is ours and ships in this package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Stored times are UTC; people read Beijing time."""
    if value is None:
        return ""
    return value.astimezone(SHANGHAI).strftime(fmt)


def make_environment(packages: list[str]) -> Environment:
    env = Environment(
        loader=ChoiceLoader([PackageLoader(name, "templates") for name in packages]),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = local_time
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the shell's context: the identity, its CSRF token, the nav."""
    env: Environment = request.app.state.jinja
    identity = getattr(request.state, "identity", None)
    page = {
        "request": request,
        "identity": identity,
        "csrf_token": getattr(identity, "csrf_token", ""),
        "nav": getattr(request.state, "nav", []),
        "settings": request.app.state.settings,
        **(context or {}),
    }
    return HTMLResponse(env.get_template(template).render(page), status_code=status_code)
