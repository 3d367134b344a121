"""FastAPI dependencies: the request's transaction and who is asking.

One transaction per request: the session opens for writing on unsafe methods (on SQLite
that is ``BEGIN IMMEDIATE``), and commits when the endpoint returns, before the response
is sent (``scope="function"``), so a client never sees success for a change that did not
commit. Any exception rolls it back.

Identity: ``Authorization: Bearer`` first (API clients, partner systems), else the session
cookie (browsers). Cookie-authenticated unsafe requests must carry the session's CSRF
token in the ``X-CSRF-Token`` header or a ``csrf_token`` form field. An Open311 key (a
token of kind ``open311``, shipped inside citizens' apps) is good only as the ``api_key``
of the Open311 endpoints, which check it themselves: as a bearer token it is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from zhengshu.kernel.authz import Principal
from zhengshu.kernel.db import open_session
from zhengshu.kernel.errors import NotAuthenticated, PermissionDenied
from zhengshu.kernel.settings import Settings
from zhengshu.org.auth import (
    LoginOutcome,
    WebIdentity,
    resolve_bearer_token,
    resolve_web_session,
)

SESSION_COOKIE = "zhengshu_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Token kinds that are no bearer credential anywhere (see the module docstring).
NOT_BEARER_KINDS = frozenset({"open311"})


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _db(request: Request) -> Iterator[Session]:
    session = open_session(request.app.state.sessionmaker, write=request.method not in SAFE_METHODS)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DB = Annotated[Session, Depends(_db, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings)]


def client_ip(request: Request) -> str | None:
    # Behind a reverse proxy, run uvicorn with --proxy-headers so this is the real client.
    return request.client.host if request.client else None


async def _csrf_ok(request: Request, identity: WebIdentity) -> bool:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # Starlette caches it for the endpoint
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    return bool(sent) and hmac.compare_digest(sent or "", identity.csrf_token)


async def optional_identity(request: Request, db: DB) -> Principal | None:
    """Who is asking, if anyone; records it on ``request.state`` for pages and audit."""
    ip = client_ip(request)
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        bearer = resolve_bearer_token(db, auth[7:].strip(), ip=ip)
        if bearer is None:
            raise NotAuthenticated("令牌无效或已过期", "invalid or expired token", code="bad_token")
        principal = bearer.principal
        if bearer.kind in NOT_BEARER_KINDS:
            raise PermissionDenied(
                "Open311 密钥只能作为 Open311 接口（/open311/v2/）的 api_key 使用",
                "an Open311 key is only an api_key of /open311/v2/, not a bearer token",
                code="open311_key_only",
            )
        request.state.principal = principal
        return principal
    identity = resolve_web_session(db, request.cookies.get(SESSION_COOKIE), ip=ip)
    if identity is None:
        return None
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, identity):
        raise PermissionDenied(
            "页面已过期，请刷新后重试（CSRF 校验失败）", "CSRF check failed", code="csrf"
        )
    request.state.identity = identity
    request.state.principal = identity.principal
    return identity.principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_identity)],
) -> Principal:
    if principal is None:
        raise NotAuthenticated("请先登录", "login required")
    return principal


Actor = Annotated[Principal, Depends(current_principal)]
MaybeActor = Annotated[Principal | None, Depends(optional_identity)]


def count_login(request: Request, outcome: LoginOutcome) -> None:
    """Feed the ``zhengshu_logins`` metric: ok, bad_credentials or rate_limited."""
    label = "ok" if outcome.error is None else outcome.error.code
    request.app.state.metrics.logins.labels(label).inc()
