"""Photos and documents on 12345 orders.

- The type is read from the bytes (magic numbers), never from the name or the client's
  content type: JPEG, PNG, GIF, WEBP, PDF, DOCX / XLSX (a zip holding
  ``[Content_Types].xml`` with the document's main part; macro-enabled files refused) and
  plain UTF-8 text (markup such as HTML is not plain text and is refused).
- At most ``MAX_BYTES``; empty files are refused.
- Stored once per content under ``<data_dir>/attachments/<sha256[:2]>/<sha256>``.
- Only someone who can see the order (``repository.get_order``) may upload or download;
  anyone else reads "not found". Each upload is a timeline note and an audit row.
- Downloads carry the stored type (text as ``text/plain``), never HTML; the route adds
  ``Content-Disposition: attachment`` and ``nosniff``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import unicodedata
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.casework.models import CaseEvent
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal
from zhengshu.kernel.errors import DomainError, InvalidInput, NotFound, not_found
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.models import Attachment

MAX_BYTES = 10 * 1024 * 1024
MAX_FILENAME = 200  # the column's size

TEXT_TYPE = "text/plain; charset=utf-8"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class FileType:
    content_type: str
    extension: str  # what a name of this type ends with, by default
    extensions: frozenset[str]  # any of these is kept as it is

    @property
    def label(self) -> str:
        return self.extension.lstrip(".").upper()


JPEG = FileType("image/jpeg", ".jpg", frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}))
PNG = FileType("image/png", ".png", frozenset({".png"}))
GIF = FileType("image/gif", ".gif", frozenset({".gif"}))
WEBP = FileType("image/webp", ".webp", frozenset({".webp"}))
PDF = FileType("application/pdf", ".pdf", frozenset({".pdf"}))
DOCX = FileType(DOCX_TYPE, ".docx", frozenset({".docx"}))
XLSX = FileType(XLSX_TYPE, ".xlsx", frozenset({".xlsx"}))
TEXT = FileType(TEXT_TYPE, ".txt", frozenset({".txt", ".csv", ".log", ".md"}))

ALLOWED: dict[str, FileType] = {
    t.content_type: t for t in (JPEG, PNG, GIF, WEBP, PDF, DOCX, XLSX, TEXT)
}
ACCEPTED_LABEL = "JPEG、PNG、GIF、WEBP、PDF、DOCX、XLSX、纯文本（UTF-8）"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Control characters other than tab, line feed, form feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# What a browser would take for markup at the start of a "text" file (the HTML
# sniffing patterns, plus XML and SVG): such a file is a web page, not plain text.
_MARKUP = re.compile(
    r"^\s*<(!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body"
    r"|br|p|svg|object|embed|meta|link|form|img)[\s/>]|^\s*<(!--|\?xml)",
    re.IGNORECASE,
)
_MAX_CONTENT_TYPES_XML = 1024 * 1024


class PayloadTooLarge(DomainError):
    status_code = 413
    default_code = "too_large"


def too_large(limit: int) -> PayloadTooLarge:
    mb = limit // (1024 * 1024)
    return PayloadTooLarge(
        f"文件超过 {mb} MB，请压缩或拆分后再上传",
        f"the file is larger than {mb} MB",
        details={"max_bytes": limit},
    )


def detect_type(data: bytes) -> FileType | None:
    """The type of ``data`` by its content, or None when it is not one we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return _office(data)
    if _plain_text(data):
        return TEXT
    return None


def _office(data: bytes) -> FileType | None:
    """DOCX or XLSX: an OOXML package whose ``[Content_Types].xml`` names the main part.
    Reads only the directory and that small part: nothing else is decompressed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            names = set(package.namelist())
            if "[Content_Types].xml" not in names:
                return None
            if any(name.lower().endswith("vbaproject.bin") for name in names):
                return None  # macros
            info = package.getinfo("[Content_Types].xml")
            if info.file_size > _MAX_CONTENT_TYPES_XML:
                return None
            types = package.read(info).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, RuntimeError):
        return None
    lowered = types.lower()
    if "macroenabled" in lowered:
        return None
    if "wordprocessingml.document.main+xml" in lowered:
        return DOCX
    if "spreadsheetml.sheet.main+xml" in lowered:
        return XLSX
    return None


def _plain_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and not _CONTROL.search(text) and not _MARKUP.match(text)


def safe_filename(name: str | None, kind: FileType) -> str:
    """The last path segment, without control or bidi-override characters, at most
    ``MAX_FILENAME`` characters, ending with an extension that fits the detected type."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf"))
    base = base.strip().strip(".").strip() or "附件"
    stem, dot, suffix = base.rpartition(".")
    if not dot or f".{suffix.lower()}" not in kind.extensions:
        stem, suffix = base, kind.extension.lstrip(".")
    suffix = f".{suffix}"
    return stem[: MAX_FILENAME - len(suffix)] + suffix


def blob_path(data_dir: Path, sha256: str) -> Path:
    if not _SHA256.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return data_dir / "attachments" / sha256[:2] / sha256


def store_blob(data_dir: Path, data: bytes) -> str:
    """Write ``data`` once under its hash (atomic rename); returns the hash."""
    digest = hashlib.sha256(data).hexdigest()
    path = blob_path(data_dir, digest)
    if path.is_file() and path.stat().st_size == len(data):
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


class AttachmentRead(BaseModel):
    id: uuid.UUID
    order_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    event_seq: int | None
    uploaded_by: str
    uploaded_at: datetime
    download_url: str


def read_model(attachment: Attachment, event_seq: int | None) -> AttachmentRead:
    return AttachmentRead(
        id=attachment.id,
        order_id=attachment.case_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        event_seq=event_seq,
        uploaded_by=attachment.uploaded_by,
        uploaded_at=attachment.uploaded_at,
        download_url=f"/api/v1/attachments/{attachment.id}",
    )


def upload(
    session: Session,
    actor: Principal,
    *,
    data_dir: Path,
    order_id: uuid.UUID,
    filename: str | None,
    data: bytes,
    event_seq: int | None = None,
) -> Attachment:
    """Attach a file to an order the actor can see (``hotline:order:read``): checked,
    stored by hash, recorded, noted on the timeline and audited. Never commits."""
    actor.require("hotline:order:read")
    case, _ = repository.get_order(session, actor, order_id)
    if len(data) > MAX_BYTES:
        raise too_large(MAX_BYTES)
    if not data:
        raise InvalidInput("文件为空", "the file is empty", code="empty_file")
    kind = detect_type(data)
    if kind is None:
        raise InvalidInput(
            f"不支持的文件类型（按文件内容识别），仅支持 {ACCEPTED_LABEL}",
            "unsupported file type (detected from its content); accepted: JPEG, PNG, GIF, "
            "WEBP, PDF, DOCX, XLSX, plain UTF-8 text",
            code="bad_file_type",
        )
    event_id = None
    if event_seq is not None:
        event_id = session.execute(
            select(CaseEvent.id).where(CaseEvent.case_id == case.id, CaseEvent.seq == event_seq)
        ).scalar_one_or_none()
        if event_id is None:
            raise InvalidInput(
                f"时间线上没有第 {event_seq} 条记录",
                f"no timeline entry {event_seq}",
                code="bad_event",
            )
    name = safe_filename(filename, kind)
    digest = store_blob(data_dir, data)
    attachment = Attachment(
        id=uuid.uuid4(),
        case_id=case.id,
        event_id=event_id,
        filename=name,
        content_type=kind.content_type,
        size=len(data),
        sha256=digest,
        uploaded_by=actor.name[:200],
        uploaded_at=clock.now(),
    )
    session.add(attachment)
    facts = {
        "attachment_id": attachment.id,
        "filename": name,
        "content_type": kind.content_type,
        "size": len(data),
        "sha256": digest,
        "event_seq": event_seq,
    }
    engine.add_note(session, actor, case, action="attach", label="上传附件", note=name, data=facts)
    audit.record(
        session,
        actor,
        "hotline.attachment.upload",
        entity_type="case",
        entity_id=case.id,
        after=facts,
    )
    session.flush()
    return attachment


def list_for_order(
    session: Session, actor: Principal, order_id: uuid.UUID
) -> list[tuple[Attachment, int | None]]:
    """The order's attachments, oldest first, each with the timeline entry it belongs to."""
    actor.require("hotline:order:read")
    case, _ = repository.get_order(session, actor, order_id)
    return [
        (attachment, seq)
        for attachment, seq in session.execute(
            select(Attachment, CaseEvent.seq)
            .outerjoin(CaseEvent, CaseEvent.id == Attachment.event_id)
            .where(Attachment.case_id == case.id)
            .order_by(Attachment.uploaded_at, Attachment.id)
        ).all()
    ]


def for_download(
    session: Session, actor: Principal, *, data_dir: Path, attachment_id: uuid.UUID
) -> tuple[Attachment, Path]:
    """The attachment and its file, if the actor can see its order; else not found."""
    actor.require("hotline:order:read")
    attachment = session.get(Attachment, attachment_id)
    if attachment is None:
        raise not_found("附件", "attachment")
    try:
        repository.get_order(session, actor, attachment.case_id)
    except NotFound:
        raise not_found("附件", "attachment") from None
    try:
        path = blob_path(data_dir, attachment.sha256)
    except ValueError:
        path = None
    if path is None or not path.is_file():
        raise NotFound("附件文件已丢失，请联系管理员", "the attachment's file is missing")
    return attachment, path


def served_type(attachment: Attachment) -> str:
    """What a download is served as: the stored type if it is one we accept (never HTML),
    else an opaque byte stream."""
    return (
        attachment.content_type
        if attachment.content_type in ALLOWED
        else "application/octet-stream"
    )


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name as RFC 5987
    ``filename*`` (Chinese names survive every current browser)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
