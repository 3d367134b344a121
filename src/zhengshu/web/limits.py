"""Request body size limit: an ASGI middleware that refuses oversized bodies early.

- A request that declares a ``Content-Length`` over the limit of its path is answered 413
  at once, before the application runs (no database transaction, no login lookup) and
  before a byte of the body is read.
- A body without a declared length (chunked) is counted as the application reads it; the
  read that crosses the limit raises ``RequestTooLarge`` (an ``HTTPException`` of 413, so
  FastAPI's body parsing passes it through to the app's error handler).

The limit of each path comes from ``limit_for(path)``: the app gives a small default and
the larger caps of its upload routes (which also check their own limits); None leaves the
body to a route that enforces its own, smaller cap in its own format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Refuse = Callable[[Scope, Receive, Send, int], Awaitable[None]]


def describe(size: int) -> str:
    """A byte count as people say it: 1 MB, 10.1 MB, 64 KB, 2000 B (never rounded up)."""
    mb, kb = 1024 * 1024, 1024
    if size >= mb:
        whole = size / mb
        return f"{size // mb} MB" if size % mb == 0 else f"{int(whole * 10) / 10} MB"
    if size >= kb and size % kb == 0:
        return f"{size // kb} KB"
    return f"{size} B"


class RequestTooLarge(HTTPException):
    """413: the request body is over the limit of its path."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message_zh = (
            f"提交的内容过大（上限 {describe(limit)}），请精简后重试；文件请通过附件上传"
        )
        self.message_en = f"request body larger than {describe(limit)}"
        super().__init__(413, detail=self.message_en)


class BodySizeLimit:
    """Refuse request bodies over ``limit_for(path)`` bytes with 413 (see the module)."""

    def __init__(
        self, app: ASGIApp, *, limit_for: Callable[[str], int | None], refuse: Refuse
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.refuse(scope, receive, send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or []
    for name, value in headers:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
