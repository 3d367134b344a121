"""Attachments of orders: type from the bytes, size limit, storage by hash, jurisdiction,
safe downloads."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import frozen_at, unit_id
from tests.web.helpers import login
from zhengshu.casework.models import CaseEvent
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import attachments
from zhengshu.modules.hotline.models import Attachment

Api = Callable[[str], TestClient]

START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
DONGCHENG = "441900003000"
MB = 1024 * 1024


def png_bytes(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PNG = png_bytes()
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


@pytest.fixture
def order(api: Api, db: Session, frozen: FrozenClock) -> dict[str, Any]:
    """An order dispatched to Dongcheng (so dc.handler sees it and sj.handler does not)."""
    body = {
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "content": "楼道堆放杂物。",
        "category": "urban",
    }
    created = api("calltaker").post("/api/v1/orders", json=body).json()
    response = api("dispatcher").post(
        f"/api/v1/orders/{created['id']}/actions/dispatch",
        json={"unit_id": str(unit_id(db, DONGCHENG))},
    )
    assert response.status_code == 200, response.text
    return created


def attachment_count(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Attachment)).scalar_one()


def upload(client: TestClient, order_id: str, name: str, data: bytes, **form: str) -> Any:
    return client.post(
        f"/api/v1/orders/{order_id}/attachments",
        files={"file": (name, data, "image/png")},
        data=form,
    )


def test_a_png_is_stored_listed_and_downloaded_unchanged(
    api: Api, db: Session, settings: Settings, order: dict[str, Any]
) -> None:
    digest = hashlib.sha256(PNG).hexdigest()
    response = upload(api("dc.handler"), order["id"], "现场照片.png", PNG)
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k not in ("id",)} == {
        "order_id": order["id"],
        "filename": "现场照片.png",
        "content_type": "image/png",
        "size": len(PNG),
        "sha256": digest,
        "event_seq": None,
        "uploaded_by": "东城街道承办人 吴涛(dc.handler)",
        "uploaded_at": "2026-09-30T01:00:00Z",
        "download_url": f"/api/v1/attachments/{body['id']}",
    }
    stored = settings.data_dir / "attachments" / digest[:2] / digest
    assert stored.read_bytes() == PNG
    listed = api("dispatcher").get(f"/api/v1/orders/{order['id']}/attachments")
    assert listed.status_code == 200
    assert listed.json() == [body]
    download = api("dispatcher").get(body["download_url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"] == (
        'attachment; filename="____.png"; '
        "filename*=UTF-8''%E7%8E%B0%E5%9C%BA%E7%85%A7%E7%89%87.png"
    )
    assert download.headers["x-content-type-options"] == "nosniff"
    timeline = api("dc.handler").get(f"/api/v1/orders/{order['id']}/timeline").json()
    assert [(t["action"], t["label"], t["note"]) for t in timeline][-1] == (
        "attach",
        "上传附件",
        "现场照片.png",
    )
    (entry,) = db.execute(
        select(AuditEntry).where(AuditEntry.action == "hotline.attachment.upload")
    ).scalars()
    assert entry.entity_id == order["id"]
    assert entry.after == {
        "attachment_id": body["id"],
        "filename": "现场照片.png",
        "content_type": "image/png",
        "size": len(PNG),
        "sha256": digest,
        "event_seq": None,
    }
    # The same bytes again: a second record, one stored file.
    again = upload(api("dc.handler"), order["id"], "again.png", PNG, event_seq="1")
    assert again.status_code == 201
    assert again.json()["event_seq"] == 1
    assert attachment_count(db) == 2
    assert sorted(p.name for p in stored.parent.iterdir()) == [digest]


def test_html_disguised_as_png_is_refused(api: Api, db: Session, order: dict[str, Any]) -> None:
    response = upload(api("dc.handler"), order["id"], "photo.png", HTML)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_file_type"
    assert error["message"] == (
        "不支持的文件类型（按文件内容识别），仅支持 JPEG、PNG、GIF、WEBP、PDF、DOCX、XLSX、"
        "纯文本（UTF-8）"
    )
    assert error["message_en"].startswith("unsupported file type (detected from its content)")
    assert attachment_count(db) == 0


def test_more_than_ten_megabytes_is_refused_without_a_row(
    api: Api, db: Session, order: dict[str, Any]
) -> None:
    too_big = PNG + b"\x00" * (10 * MB + 1 - len(PNG))
    response = upload(api("dc.handler"), order["id"], "big.png", too_big)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "文件超过 10 MB，请压缩或拆分后再上传"
    # Far beyond the limit: refused on the declared length, before the body is parsed.
    response = upload(api("dc.handler"), order["id"], "huge.png", too_big + b"\x00" * MB)
    assert response.status_code == 413
    exactly = PNG + b"\x00" * (10 * MB - len(PNG))
    assert upload(api("dc.handler"), order["id"], "max.png", exactly).status_code == 201
    assert attachment_count(db) == 1


def test_another_town_gets_not_found(api: Api, db: Session, order: dict[str, Any]) -> None:
    stranger = api("sj.handler")
    response = upload(stranger, order["id"], "photo.png", PNG)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "工单不存在或无权查看"
    assert stranger.get(f"/api/v1/orders/{order['id']}/attachments").status_code == 404
    mine = upload(api("dc.handler"), order["id"], "photo.png", PNG).json()
    response = stranger.get(mine["download_url"])
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "附件不存在或无权查看"
    assert attachment_count(db) == 1


def test_text_is_served_as_plain_text_never_html(
    api: Api, db: Session, order: dict[str, Any]
) -> None:
    text = "现场情况说明：\n楼道已清理。\n".encode()
    response = upload(api("dc.handler"), order["id"], "说明.html", text)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "说明.html.txt"
    assert body["content_type"] == "text/plain; charset=utf-8"
    download = api("dc.handler").get(body["download_url"])
    assert download.content == text
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment; ")
    assert download.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_the_web_form_uploads_with_its_csrf_token(
    client: TestClient, db: Session, order: dict[str, Any]
) -> None:
    csrf = login(client, "dc.handler")
    path = f"/hotline/orders/{order['id']}/attachments"
    files = {"file": ("照片.png", PNG, "image/png")}
    assert client.post(path, files=files, follow_redirects=False).status_code == 403
    # The size guard runs before anything else, the CSRF check included.
    huge = {"file": ("大.png", PNG + b"\x00" * (11 * MB), "image/png")}
    assert client.post(path, files=huge, follow_redirects=False).status_code == 413
    no_file = client.post(path, data={"csrf_token": csrf}, files={"other": ("x", b"x")})
    assert no_file.status_code == 400
    response = client.post(path, data={"csrf_token": csrf}, files=files, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == (
        f"/hotline/orders/{order['id']}?flash=%E5%B7%B2%E4%B8%8A%E4%BC%A0%E9%99%84%E4%BB%B6"
        "%20%E7%85%A7%E7%89%87.png"
    )
    (stored,) = db.execute(select(Attachment)).scalars()
    download = client.get(f"/hotline/attachments/{stored.id}")
    assert download.status_code == 200
    assert download.content == PNG
    login(client, "sj.handler")
    assert client.get(f"/hotline/attachments/{stored.id}").status_code == 404


def test_a_timeline_entry_must_exist(api: Api, db: Session, order: dict[str, Any]) -> None:
    response = upload(api("dc.handler"), order["id"], "a.png", PNG, event_seq="99")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "时间线上没有第 99 条记录"
    ok = upload(api("dc.handler"), order["id"], "a.png", PNG, event_seq="2")
    assert ok.status_code == 201
    (stored,) = db.execute(select(Attachment)).scalars()
    event = db.get(CaseEvent, stored.event_id)
    assert event is not None
    assert (event.seq, event.action) == (2, "dispatch")


def _zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, text in entries.items():
            package.writestr(name, text)
    return buffer.getvalue()


def _xlsx() -> bytes:
    book = Workbook()
    book.active.append(["a", 1])  # type: ignore[union-attr]
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


DOCX_TYPES = (
    '<Types><Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
DOCM_TYPES = DOCX_TYPES.replace("document.main+xml", "document.macroEnabled.main+xml")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (PNG, "image/png"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (
            _zip({"[Content_Types].xml": DOCX_TYPES, "word/document.xml": "<w/>"}),
            attachments.DOCX_TYPE,
        ),
        (_xlsx(), attachments.XLSX_TYPE),
        ("纯文本\t说明\r\n".encode(), "text/plain; charset=utf-8"),
        (b"\xef\xbb\xbfBOM text", "text/plain; charset=utf-8"),
        (HTML, None),
        (b"  <svg onload=alert(1)>", None),
        (b"<?xml version='1.0'?><x/>", None),
        (b"\n<script>alert(1)</script>", None),
        ("中文".encode("gbk"), None),
        (b"MZ\x90\x00\x03\x00\x00\x00", None),
        (b"text with a NUL \x00 byte", None),
        (_zip({"a.txt": "x"}), None),
        (_zip({"[Content_Types].xml": DOCM_TYPES, "word/document.xml": "<w/>"}), None),
        (_zip({"[Content_Types].xml": DOCX_TYPES, "word/vbaProject.bin": "x"}), None),
        (b"PK\x03\x04 not really a zip", None),
        (b"   \n", None),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str | None) -> None:
    kind = attachments.detect_type(data)
    assert (kind.content_type if kind else None) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("C:\\Users\\陈\\照片.PNG", "照片.PNG"),
        ("photo", "photo.png"),
        ("invoice.pdf", "invoice.pdf.png"),
        ("evil\u202egnp.exe", "evilgnp.exe.png"),
        ("", "附件.png"),
        ("..", "附件.png"),
        ("长" * 300 + ".png", "长" * 196 + ".png"),
    ],
)
def test_file_names_are_made_safe(name: str, expected: str) -> None:
    assert attachments.safe_filename(name, attachments.PNG) == expected
