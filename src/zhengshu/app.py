"""``create_app(settings)``: wires the database, routers, middleware and error handlers."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import DataError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhengshu import __version__
from zhengshu.admin import routes_api as admin_api
from zhengshu.admin import routes_web as admin_web
from zhengshu.kernel.audit import AUDIT_KEY
from zhengshu.kernel.db import make_engine, make_sessionmaker
from zhengshu.kernel.errors import DomainError, stale
from zhengshu.kernel.metrics import Metrics
from zhengshu.kernel.ratelimit import RateLimiter
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import attachments as hotline_attachments
from zhengshu.modules.hotline import bridge as hotline_bridge
from zhengshu.modules.hotline import importer as hotline_importer
from zhengshu.modules.hotline import intake as hotline_intake
from zhengshu.modules.hotline import open311 as hotline_open311
from zhengshu.modules.hotline import routes_alerts as hotline_alerts
from zhengshu.modules.hotline import routes_api as hotline_api
from zhengshu.modules.hotline import routes_dashboard as hotline_dashboard
from zhengshu.modules.hotline import routes_dispatch as hotline_dispatch
from zhengshu.modules.hotline import routes_files as hotline_files
from zhengshu.modules.hotline import routes_insight as hotline_insight
from zhengshu.modules.hotline import routes_notices as hotline_notices
from zhengshu.modules.hotline import routes_reports as hotline_reports
from zhengshu.modules.hotline import routes_web as hotline_web
from zhengshu.modules.hotline.reports import kpi
from zhengshu.org import routes_api as org_api
from zhengshu.org import routes_web as org_web
from zhengshu.web import make_environment, render
from zhengshu.web.limits import BodySizeLimit, RequestTooLarge
from zhengshu.web.observe import Observe

log = logging.getLogger(__name__)

TEMPLATE_PACKAGES = ["zhengshu.web", "zhengshu.org", "zhengshu.admin", "zhengshu.modules.hotline"]

HTTP_TITLES = {
    400: "请求有误",
    401: "需要登录",
    403: "没有权限",
    404: "找不到页面",
    405: "不支持的操作",
    409: "操作冲突",
    413: "内容过大",
    422: "填写有误",
    429: "操作过于频繁",
    500: "系统错误",
    503: "服务暂不可用",
}


# Routes that take files have their own caps (checked again by the routes themselves); every
# other body is held to ``Settings.max_body_bytes``. The CSV import of units takes 5 MB.
# Open311 refuses bodies over its own, smaller cap itself, in GeoReport's error format.
UNITS_CSV_MAX = 5_000_000
OWN_LIMIT = re.compile(r"^/open311/")
UPLOAD_LIMITS = [
    (
        re.compile(r"^/(api/v1|hotline)/orders/[^/]+/attachments$"),
        hotline_attachments.MAX_BYTES + hotline_files.MULTIPART_SLACK,
    ),
    (re.compile(r"^/hotline/import$"), hotline_importer.MAX_BYTES + hotline_files.MULTIPART_SLACK),
    (re.compile(r"^/(api/v1|admin)/units/import$"), UNITS_CSV_MAX + hotline_files.MULTIPART_SLACK),
]


def body_limit(settings: Settings, path: str) -> int | None:
    """How many bytes a request body to ``path`` may have (None: the route's own cap)."""
    if OWN_LIMIT.match(path):
        return None
    for pattern, limit in UPLOAD_LIMITS:
        if pattern.match(path):
            return max(limit, settings.max_body_bytes)
    return settings.max_body_bytes


# The JSON body of every refusal (``_error_response``), as the OpenAPI schema declares it.
ERROR_BODY: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "message_en", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string", "description": "中文说明"},
                "message_en": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
        or path in ("/healthz", "/metrics")
        or (
            "application/json" in request.headers.get("accept", "")
            and "text/html" not in request.headers.get("accept", "")
        )
    )


def _error_response(
    request: Request,
    status: int,
    code: str,
    message_zh: str,
    message_en: str,
    details: dict[str, Any] | None = None,
) -> Response:
    if _wants_json(request):
        body = {
            "error": {
                "code": code,
                "message": message_zh,
                "message_en": message_en,
                "details": details or {},
            }
        }
        return JSONResponse(body, status_code=status)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    if getattr(request.state, "identity", None) is None:
        # No route dependency ran (an unknown URL): find the login anyway, so the error
        # page keeps the signed-in shell (nav, name, 退出) instead of looking logged out.
        org_web.attach_shell(request)
    return render(
        request,
        "web/error.html",
        {
            "title": HTTP_TITLES.get(status, "出错了"),
            "error_title": HTTP_TITLES.get(status, "出错了"),
            "message": message_zh,
            "message_en": message_en,
            "code": code,
            "details": details,
        },
        status_code=status,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="政数平台 zhengshu API",
        version=__version__,
        description="政务服务和数据管理平台的开放接口。认证：`Authorization: Bearer <token>`。",
        docs_url="/api/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    # A city's own KPI definitions, when it has put them in its data directory.
    kpi.use_city_file(settings.data_dir / "kpis.yaml")
    engine = make_engine(settings)
    factory = make_sessionmaker(engine)
    factory.kw["info"] = {AUDIT_KEY: settings.resolved_audit_key()}
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.jinja = make_environment(TEMPLATE_PACKAGES)
    app.state.metrics = metrics = Metrics()
    metrics.add_computed(hotline_intake.metric_families(lambda: app.state.sessionmaker))
    app.state.rate_limiter = RateLimiter()

    async def _refuse_body(scope: Any, receive: Any, send: Any, limit: int) -> None:
        too_large = RequestTooLarge(limit)
        response = _error_response(
            Request(scope, receive),
            413,
            "body_too_large",
            too_large.message_zh,
            too_large.message_en,
            {"max_bytes": limit},
        )
        await response(scope, receive, send)

    app.add_middleware(
        BodySizeLimit, limit_for=lambda path: body_limit(settings, path), refuse=_refuse_body
    )

    app.add_middleware(Observe, requests=metrics.requests, latency=metrics.latency)

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        return _error_response(
            request, exc.status_code, exc.code, exc.message_zh, exc.message_en, exc.details
        )

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, _exc: StaleDataError) -> Response:
        err = stale("记录", "record")
        return _error_response(request, err.status_code, err.code, err.message_zh, err.message_en)

    @app.exception_handler(DataError)
    async def _bad_data(request: Request, exc: DataError) -> Response:
        # The database refused a value the schemas let through (e.g. a NUL character in
        # text on PostgreSQL): the transaction was rolled back, nothing was saved.
        if getattr(exc.orig, "sqlstate", None) == "22003":  # numeric_value_out_of_range
            return await _out_of_range(request, OverflowError(str(exc.orig)))
        return _error_response(
            request,
            400,
            "unstorable_input",
            "提交的内容含有无法保存的字符（如空字符），请修改后重试",
            "the request contains characters that cannot be stored",
        )

    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: OverflowError) -> Response:
        # A number too large for the database or the calendar (SQLite binds at most
        # 64-bit integers, e.g. ?offset=9223372036854775808): the input, not a fault.
        log.warning("out-of-range input on %s %s: %s", request.method, request.url.path, exc)
        return _error_response(
            request,
            400,
            "out_of_range",
            "提交的数值超出允许范围，请修改后重试",
            "a number in the request is out of range",
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body",
                "problem": e.get("msg"),
            }
            for e in exc.errors()
        ]
        return _error_response(
            request,
            422,
            "validation_failed",
            "提交的内容格式有误，请检查后重试",
            "the request is malformed",
            {"fields": problems, "errors": [f"{p['field']}: {p['problem']}" for p in problems]},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, RequestTooLarge):
            return _error_response(
                request,
                413,
                "body_too_large",
                exc.message_zh,
                exc.message_en,
                {"max_bytes": exc.limit},
            )
        messages = {
            404: ("找不到您要的页面或资源", "not found"),
            405: ("不支持此请求方法", "method not allowed"),
        }
        zh, en = messages.get(
            exc.status_code, (HTTP_TITLES.get(exc.status_code, "请求有误"), str(exc.detail))
        )
        return _error_response(request, exc.status_code, f"http_{exc.status_code}", zh, en)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(
            request,
            500,
            "internal_error",
            "系统内部错误，已记录，请稍后重试",
            "internal error (logged)",
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            metrics.db_up.set(1)
        except Exception:
            metrics.db_up.set(0)
            log.exception("health check failed")
            return JSONResponse(
                {"status": "error", "database": "unreachable", "version": __version__},
                status_code=503,
            )
        return JSONResponse(
            {"status": "ok", "database": engine.dialect.name, "version": __version__}
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics_page() -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    app.mount("/static", StaticFiles(packages=[("zhengshu.web", "static")]), name="static")
    app.include_router(org_api.router)
    # Files first: /api/v1/orders/export.xlsx must not be taken for an order id.
    app.include_router(hotline_files.router)
    app.include_router(hotline_api.router)
    app.include_router(hotline_api.receipts)
    app.include_router(hotline_bridge.router)
    app.include_router(hotline_open311.router)
    app.include_router(hotline_web.router)
    app.include_router(hotline_dispatch.api)
    app.include_router(hotline_dispatch.pages)
    app.include_router(hotline_reports.api)
    app.include_router(hotline_reports.pages)
    app.include_router(hotline_notices.api)
    app.include_router(hotline_notices.pages)
    app.include_router(hotline_alerts.api)
    app.include_router(hotline_alerts.pages)
    app.include_router(hotline_insight.api)
    app.include_router(hotline_insight.pages)
    app.include_router(hotline_dashboard.api)
    app.include_router(hotline_dashboard.pages)
    app.include_router(org_web.router)
    app.include_router(admin_api.router)
    app.include_router(admin_web.router)
    generate_openapi = app.openapi

    def _openapi() -> dict[str, Any]:
        # FastAPI documents a 422 as {"detail": [...]}; this app answers every refusal,
        # 422 included, in its own envelope (see ``_error_response``): say so.
        schema = generate_openapi()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = ERROR_BODY
        return schema

    app.openapi = _openapi  # type: ignore[method-assign]
    return app
