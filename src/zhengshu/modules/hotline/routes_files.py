"""Files in and out of 12345 orders: Excel export of a list, attachments, and the import
of historical orders (web pages and JSON API).

Uploads are read by ``multipart_form`` *before* any other dependency: the declared
``Content-Length`` is checked first (no length, or more than the limit, is refused before
a byte is read; the server reads no further than that length), and the body is parsed
before the request's database transaction begins, so a slow upload never holds a
database connection, nor SQLite's write lock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from openpyxl.utils import get_column_letter
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from zhengshu.kernel import clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import DomainError, InvalidInput
from zhengshu.modules.hotline import attachments, excel, importer
from zhengshu.modules.hotline.attachments import AttachmentRead
from zhengshu.modules.hotline.deps import Config
from zhengshu.modules.hotline.schemas import OrderFilters
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.deps import DB, Actor, AppSettings
from zhengshu.org.routes_web import PageActor
from zhengshu.web import render

router = APIRouter()

# Room for the multipart framing and the small fields around the file.
MULTIPART_SLACK = 64 * 1024


class LengthRequired(DomainError):
    status_code = 411
    default_code = "length_required"


@dataclass(frozen=True)
class Received:
    """A multipart upload, read: its fields and the one file (None when absent)."""

    form: FormData
    filename: str | None
    data: bytes | None

    def file(self) -> tuple[str | None, bytes]:
        if self.data is None:
            raise InvalidInput("请选择要上传的文件", "the form has no file", code="file_required")
        return self.filename, self.data


def multipart_upload(limit: Callable[[], int]) -> Callable[[Request], AsyncIterator[Received]]:
    """A dependency that reads a multipart body whose ``file`` holds at most ``limit()``
    bytes. Declare it first, so it runs before the database and CSRF dependencies; the
    endpoints can then be plain functions (run in the thread pool, off the event loop)."""

    async def dependency(request: Request) -> AsyncIterator[Received]:
        most = limit()
        declared = request.headers.get("content-length", "")
        if "transfer-encoding" in request.headers or not declared.isdigit():
            raise LengthRequired(
                "上传须带 Content-Length（不支持分块传输）",
                "uploads need a Content-Length (chunked bodies are refused)",
            )
        if int(declared) > most + MULTIPART_SLACK:
            raise attachments.too_large(most)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise InvalidInput(
                "请以 multipart/form-data 表单上传文件",
                "send the file as multipart/form-data",
                code="not_multipart",
            )
        form = await request.form(max_files=1, max_fields=30)
        try:
            upload = form.get("file")
            if isinstance(upload, UploadFile):
                data = await upload.read(most + 1)
                if len(data) > most:
                    raise attachments.too_large(most)
                yield Received(form, upload.filename, data)
            else:
                yield Received(form, None, None)
        finally:
            await form.close()

    return dependency


AttachmentUpload = Annotated[Received, Depends(multipart_upload(lambda: attachments.MAX_BYTES))]
ImportUpload = Annotated[Received, Depends(multipart_upload(lambda: importer.MAX_BYTES))]


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]


def _event_seq(form: FormData) -> int | None:
    raw = form.get("event_seq")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str) or not raw.strip().isdigit():
        raise InvalidInput("event_seq 须为时间线序号（整数）", "event_seq must be an integer")
    return int(raw)


MULTIPART_FILE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "event_seq": {"type": "integer"},
                    },
                }
            }
        },
    }
}


# --- Excel export ----------------------------------------------------------------------


def _export(
    request: Request, db: Session, actor: Principal, cfg: HotlineConfig, filters: OrderFilters
) -> Response:
    result = excel.export_orders(db, actor, filters, workflow=cfg.workflow())
    excel.audit_export(request.app.state.sessionmaker, actor, filters, result.rows)
    return Response(
        result.content,
        media_type=excel.MEDIA_TYPE,
        headers={
            "Content-Disposition": attachments.content_disposition(excel.filename(clock.now())),
            "Cache-Control": "private, no-store",
            "X-Export-Rows": str(result.rows),
        },
    )


@router.get("/api/v1/orders/export.xlsx", tags=["12345 工单 orders"])
def api_export(
    request: Request,
    db: DB,
    actor: Actor,
    cfg: Config,
    filters: Annotated[OrderFilters, Query()],
) -> Response:
    """Every order the caller may see under the list's filters, as an Excel workbook
    (``hotline:order:read``; at most 50,000 rows; masked phones; audited)."""
    return _export(request, db, actor, cfg, filters)


def _beijing(value: str) -> str:
    """A date or time typed in a form carries no zone: people mean Beijing time."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return value  # left for the filter's own validation to refuse
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)).isoformat()


@router.get("/hotline/orders/export.xlsx", include_in_schema=False)
def web_export(request: Request, db: DB, actor: PageActor, cfg: Config) -> Response:
    # A GET form sends empty fields as "": they mean "no filter", not a bad value; the
    # list page's own parameters (page, limit...) are no filter either.
    params = {
        k: _beijing(v) if k in ("created_from", "created_to") else v
        for k, v in request.query_params.items()
        if v.strip() and k in OrderFilters.model_fields
    }
    try:
        filters = OrderFilters.model_validate(params)
    except ValidationError as exc:
        raise InvalidInput(
            "筛选条件有误，请检查后重试",
            "bad filters",
            code="validation_failed",
            details={
                "errors": [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            },
        ) from None
    return _export(request, db, actor, cfg, filters)


# --- attachments -----------------------------------------------------------------------


@router.post(
    "/api/v1/orders/{order_id}/attachments",
    response_model=AttachmentRead,
    status_code=201,
    tags=["12345 工单 orders"],
    openapi_extra=MULTIPART_FILE_DOC,
)
def api_upload(
    received: AttachmentUpload, order_id: uuid.UUID, db: DB, actor: Actor, settings: AppSettings
) -> AttachmentRead:
    """Attach a photo or document (multipart ``file``, optional ``event_seq``): at most
    10 MB; JPEG, PNG, GIF, WEBP, PDF, DOCX, XLSX or UTF-8 text, judged by content."""
    filename, data = received.file()
    event_seq = _event_seq(received.form)
    attachment = attachments.upload(
        db,
        actor,
        data_dir=settings.data_dir,
        order_id=order_id,
        filename=filename,
        data=data,
        event_seq=event_seq,
    )
    return attachments.read_model(attachment, event_seq)


@router.post("/hotline/orders/{order_id}/attachments", include_in_schema=False)
def web_upload(
    received: AttachmentUpload,
    order_id: uuid.UUID,
    db: DB,
    actor: PageActor,
    settings: AppSettings,
) -> Response:
    filename, data = received.file()
    attachment = attachments.upload(
        db,
        actor,
        data_dir=settings.data_dir,
        order_id=order_id,
        filename=filename,
        data=data,
        event_seq=_event_seq(received.form),
    )
    flash = quote(f"已上传附件 {attachment.filename}")
    return RedirectResponse(f"/hotline/orders/{order_id}?flash={flash}", status_code=303)


@router.get(
    "/api/v1/orders/{order_id}/attachments",
    response_model=list[AttachmentRead],
    tags=["12345 工单 orders"],
)
def api_list(order_id: uuid.UUID, db: DB, actor: Actor) -> list[AttachmentRead]:
    """The order's attachments, oldest first."""
    return [
        attachments.read_model(a, seq) for a, seq in attachments.list_for_order(db, actor, order_id)
    ]


def _download(db: Session, actor: Principal, data_dir: Any, attachment_id: uuid.UUID) -> Response:
    attachment, path = attachments.for_download(
        db, actor, data_dir=data_dir, attachment_id=attachment_id
    )
    return FileResponse(
        path,
        media_type=attachments.served_type(attachment),
        headers={
            "Content-Disposition": attachments.content_disposition(attachment.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/api/v1/attachments/{attachment_id}", tags=["12345 工单 orders"])
def api_download(attachment_id: uuid.UUID, db: DB, actor: Actor, settings: AppSettings) -> Response:
    """Download an attachment (always as a download, with its stored type)."""
    return _download(db, actor, settings.data_dir, attachment_id)


@router.get("/hotline/attachments/{attachment_id}", include_in_schema=False)
def web_download(
    attachment_id: uuid.UUID, db: DB, actor: PageActor, settings: AppSettings
) -> Response:
    return _download(db, actor, settings.data_dir, attachment_id)


# --- import of historical orders ------------------------------------------------------

STATUS_LABELS = {
    "queued": "排队中",
    "running": "导入中",
    "retrying": "出错，稍后自动重试",
    "done": "已完成",
    "failed": "失败",
}


def _columns(header: list[str]) -> list[tuple[int, str]]:
    return [
        (i, f"{get_column_letter(i + 1)} 列 · {name or '（无列名）'}")
        for i, name in enumerate(header)
    ]


@router.get("/hotline/import", include_in_schema=False)
def import_page(request: Request, db: DB, actor: PageActor) -> Response:
    actor.require(importer.PERMISSION)
    return render(
        request,
        "hotline/import.html",
        {
            "title": "历史工单导入",
            "step": "upload",
            "jobs": importer.recent_jobs(db, actor),
            "status_labels": STATUS_LABELS,
            "max_rows": importer.MAX_ROWS,
        },
    )


@router.post("/hotline/import", include_in_schema=False)
def import_upload(
    received: ImportUpload, request: Request, actor: PageActor, settings: AppSettings
) -> Response:
    actor.require(importer.PERMISSION)
    filename, data = received.file()
    upload = importer.inspect_upload(settings.data_dir, actor, filename=filename, data=data)
    preset, mapping = upload.preset()
    return render(
        request,
        "hotline/import.html",
        {
            "title": "历史工单导入",
            "step": "map",
            "upload": upload,
            "columns": _columns(upload.header),
            "fields": importer.FIELDS,
            "mapping": mapping,
            "preset": importer.PRESETS[preset][0] if preset else None,
        },
    )


@router.post("/hotline/import/start", include_in_schema=False)
def import_start(values: FormFields, db: DB, actor: PageActor, settings: AppSettings) -> Response:
    job = importer.start(
        db,
        actor,
        data_dir=settings.data_dir,
        token=values.get("token", ""),
        mapping={field: values.get(field) for field in importer.FIELD_NAMES},
    )
    return RedirectResponse(f"/hotline/import/{job.id}", status_code=303)


@router.get("/hotline/import/{job_id}.json", include_in_schema=False)
def import_progress(job_id: uuid.UUID, db: DB, actor: PageActor) -> Response:
    job = importer.get_job(db, actor, job_id)
    return JSONResponse(importer.progress(job), headers={"Cache-Control": "no-store"})


@router.get("/hotline/import/{job_id}", include_in_schema=False)
def import_job_page(request: Request, job_id: uuid.UUID, db: DB, actor: PageActor) -> Response:
    job = importer.get_job(db, actor, job_id)
    state = importer.progress(job)
    return render(
        request,
        "hotline/import_job.html",
        {
            "title": "历史工单导入进度",
            "job_id": job.id,
            "poll_url": f"/hotline/import/{job.id}.json",
            "p": state,
            "status_labels": STATUS_LABELS,
            "status_label": STATUS_LABELS.get(state["status"], state["status"]),
        },
    )
