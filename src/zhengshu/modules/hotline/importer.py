"""Import of historical orders (e.g. a message board's archive) from CSV or XLSX.

1. ``inspect_upload``: the file (UTF-8 CSV or XLSX, at most ``MAX_BYTES`` and
   ``MAX_ROWS`` rows) is checked, saved under ``<data_dir>/imports/`` and its header read.
2. ``start``: the person maps columns to fields (title, content, time, requester,
   reply, reply time...; presets for known shapes) and a ``hotline.import`` job is queued.
3. ``run_import`` (the job): ``BATCH_SIZE`` rows per transaction, each row in its own
   savepoint. A row becomes an order on channel message_board, registered through the
   workflow by a system principal, with a timeline note that keeps the original times and
   reference; a row with a reply is then closed with it as the direct answer
   (``answer_directly``); one without stays registered. Progress (``done``, ``total``,
   ``errors`` with row numbers) is written to the job's payload after every batch, so a
   retried job resumes where the last committed batch ended.

Row numbers are those a spreadsheet shows: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.calendar import SHANGHAI, WorkCalendar
from zhengshu.kernel.errors import DomainError, InvalidInput, NotFound, not_found
from zhengshu.kernel.jobs import Handler, Job, JobStatus, after_commit, enqueue
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.attachments import too_large
from zhengshu.modules.hotline.enums import Channel
from zhengshu.modules.hotline.schemas import (
    MAX_CONTENT,
    PHONE_PATTERN,
    ActionRequest,
    OrderCreate,
)
from zhengshu.modules.hotline.service import HotlineConfig

JOB_NAME = "hotline.import"
PERMISSION = "hotline:order:dispatch"
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
BATCH_SIZE = 200
MAX_ERRORS_KEPT = 1000  # the payload keeps the first ones; error_count counts them all
MAX_UNPACKED = 200 * 1024 * 1024  # an XLSX that inflates beyond this is refused
MAX_NOTE = 2000  # ActionRequest.note
MAX_TITLE = 200
NO_NAME = "（未留名）"

# (field, label, required)
FIELDS: list[tuple[str, str, bool]] = [
    ("ref", "原编号", False),
    ("title", "标题", False),
    ("content", "诉求内容", True),
    ("time", "诉求时间", False),
    ("requester", "诉求人", False),
    ("phone", "联系电话", False),
    ("reply", "答复内容", False),
    ("reply_time", "答复时间", False),
]
FIELD_NAMES = [f for f, _, _ in FIELDS]

# Presets: field -> the column's header. The teddy2020c message board's archive
# (messages_replies.csv): 留言编号, 留言用户, 留言主题, 留言时间, 留言详情, 答复意见, 答复时间.
PRESETS: dict[str, tuple[str, dict[str, str]]] = {
    "message_board": (
        "网络问政留言板（留言编号、留言主题、留言详情、答复意见…）",
        {
            "ref": "留言编号",
            "title": "留言主题",
            "content": "留言详情",
            "time": "留言时间",
            "requester": "留言用户",
            "reply": "答复意见",
            "reply_time": "答复时间",
        },
    ),
}

DELIMITERS = (",", "\t", ";")
STALE_UPLOAD_SECONDS = 24 * 3600  # an upload never started is deleted after this
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_PHONE = re.compile(PHONE_PATTERN)
_TIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y/%m/%d",
    "%Y-%m-%d",
    "%Y年%m月%d日",
)

NOT_A_TABLE = (
    "文件须为 UTF-8 编码的 CSV 或 Excel（.xlsx）文件（Excel 中可“另存为 CSV UTF-8”）",
    "the file must be a UTF-8 CSV or an XLSX workbook",
)


class RowError(ValueError):
    """A row that cannot become an order; the message is shown with its row number."""


# --- the uploaded file ---------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    token: str
    filename: str
    format: str  # csv | xlsx
    header: list[str]
    header_row: int
    rows: int
    delimiter: str = ","

    @property
    def file(self) -> str:
        return f"{self.token}.{self.format}"

    def preset(self) -> tuple[str | None, dict[str, int]]:
        """The preset whose columns this header has, and its mapping (else none)."""
        index = {name: i for i, name in reversed(list(enumerate(self.header)))}
        for key, (_, columns) in PRESETS.items():
            if all(column in index for column in columns.values()):
                return key, {field: index[column] for field, column in columns.items()}
        return None, {}


def _folder(data_dir: Path) -> Path:
    return data_dir / "imports"


def sniff_format(data: bytes) -> str:
    """``csv`` or ``xlsx`` by content; anything else is refused."""
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                names = set(package.namelist())
                unpacked = sum(info.file_size for info in package.infolist())
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
            raise InvalidInput(*NOT_A_TABLE, code="bad_file") from None
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise InvalidInput(*NOT_A_TABLE, code="bad_file")
        if unpacked > MAX_UNPACKED:
            raise InvalidInput(
                "Excel 文件解压后过大，请拆分后再导入", "the workbook inflates too much"
            )
        return "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidInput(
            "不支持旧版 Excel（.xls），请另存为 .xlsx 或 CSV UTF-8 后再导入",
            "legacy .xls is not supported; save as .xlsx or UTF-8 CSV",
            code="bad_file",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(*NOT_A_TABLE, code="bad_file") from None
    if "\x00" in text:
        raise InvalidInput(*NOT_A_TABLE, code="bad_file")
    return "csv"


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value).strip()


def sniff_delimiter(data: bytes) -> str:
    """Comma, unless the first line holds more tabs or semicolons (TSV, European CSV)."""
    first = data[:65536].decode("utf-8-sig", errors="ignore").split("\n", 1)[0]
    return max(DELIMITERS, key=lambda d: (first.count(d), d == ","))


def iter_rows(path: Path, fmt: str, delimiter: str = ",") -> Iterator[tuple[int, list[Any]]]:
    """Every record as (row number, cells), blank records left out; the first is the
    header. CSV cells are strings; XLSX cells keep their type (datetimes stay datetimes)."""
    if fmt == "csv":
        if delimiter not in DELIMITERS:
            raise ValueError(f"bad delimiter {delimiter!r}")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for number, record in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
                if any(cell.strip() for cell in record):
                    yield number, record
        return
    book = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if any(_cell_text(v) for v in values):
                yield number, list(values)
    finally:
        book.close()


def inspect_upload(
    data_dir: Path, actor: Principal, *, filename: str | None, data: bytes
) -> Upload:
    """Check the file, save it under the data directory and read its header.
    ``hotline:order:dispatch``. Refuses anything that is not UTF-8 CSV or XLSX, and files
    over ``MAX_BYTES`` or ``MAX_ROWS`` data rows, or with no data rows."""
    actor.require(PERMISSION)
    if len(data) > MAX_BYTES:
        raise too_large(MAX_BYTES)
    fmt = sniff_format(data)
    delimiter = sniff_delimiter(data) if fmt == "csv" else ","
    folder = _folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _sweep_stale(folder)
    token = secrets.token_hex(16)
    path = folder / f"{token}.{fmt}"
    path.write_bytes(data)
    try:
        header, header_row, count = _scan(path, fmt, delimiter)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload = Upload(
        token=token,
        filename=(filename or "import").replace("\\", "/").rsplit("/", 1)[-1][:200],
        format=fmt,
        header=header,
        header_row=header_row,
        rows=count,
        delimiter=delimiter,
    )
    meta = {**asdict(upload), "by_id": str(actor.id) if actor.id else None}
    (folder / f"{token}.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
    return upload


def _sweep_stale(folder: Path) -> None:
    """Uploads checked but never started hold personal data for nothing: after a day
    (file times, so the wall clock) they go."""
    cutoff = time.time() - STALE_UPLOAD_SECONDS
    for meta in folder.glob("*.json"):
        try:
            if not _TOKEN.match(meta.stem) or meta.stat().st_mtime >= cutoff:
                continue
            for fmt in ("csv", "xlsx"):
                (folder / f"{meta.stem}.{fmt}").unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
        except OSError:
            continue


def _scan(path: Path, fmt: str, delimiter: str) -> tuple[list[str], int, int]:
    header: list[str] | None = None
    header_row, count = 0, 0
    try:
        for number, cells in iter_rows(path, fmt, delimiter):
            if header is None:
                header, header_row = [_cell_text(c) for c in cells], number
                continue
            count += 1
            if count > MAX_ROWS:
                raise InvalidInput(
                    f"超过 {MAX_ROWS} 行，请拆分后再导入",
                    f"more than {MAX_ROWS} rows; split the file",
                    code="too_many_rows",
                )
    except (csv.Error, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InvalidInput(
            f"文件无法读取：{str(exc)[:200]}", f"unreadable file: {str(exc)[:200]}", code="bad_file"
        ) from exc
    if header is None or count == 0:
        raise InvalidInput("文件中没有数据行", "the file has no data rows", code="empty_file")
    return header, header_row, count


def load_upload(data_dir: Path, actor: Principal, token: str) -> Upload:
    """An upload this actor made and has not started yet."""
    actor.require(PERMISSION)
    if not _TOKEN.match(token):
        raise not_found("上传文件", "upload")
    meta_path = _folder(data_dir) / f"{token}.json"
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError):
        raise not_found("上传文件", "upload") from None
    if meta.get("by_id") != (str(actor.id) if actor.id else None):
        raise not_found("上传文件", "upload")
    upload = Upload(
        token=meta["token"],
        filename=meta["filename"],
        format=meta["format"],
        header=list(meta["header"]),
        header_row=int(meta["header_row"]),
        rows=int(meta["rows"]),
        delimiter=str(meta.get("delimiter", ",")),
    )
    if not (_folder(data_dir) / upload.file).is_file():
        raise not_found("上传文件", "upload")
    return upload


# --- starting the job -------------------------------------------------------------------


def clean_mapping(upload: Upload, raw: dict[str, str | None]) -> dict[str, int]:
    """Column indexes by field, from the form (empty: not mapped)."""
    mapping: dict[str, int] = {}
    for name, label, required in FIELDS:
        value = (raw.get(name) or "").strip()
        if not value:
            if required:
                raise InvalidInput(
                    f"请选择“{label}”对应的列", f"choose the column of {name}", code="mapping"
                )
            continue
        try:
            index = int(value)
        except ValueError:
            index = -1
        if not 0 <= index < len(upload.header):
            raise InvalidInput(f"“{label}”的列无效", f"bad column for {name}", code="mapping")
        mapping[name] = index
    return mapping


def start(
    session: Session,
    actor: Principal,
    *,
    data_dir: Path,
    token: str,
    mapping: dict[str, str | None],
) -> Job:
    """Queue the import of an inspected upload with the chosen columns (audited)."""
    upload = load_upload(data_dir, actor, token)
    columns = clean_mapping(upload, mapping)
    job = enqueue(session, JOB_NAME, {}, max_attempts=3)
    job.payload = {
        "job_id": str(job.id),
        "file": upload.file,
        "format": upload.format,
        "delimiter": upload.delimiter,
        "filename": upload.filename,
        "header": upload.header,
        "mapping": columns,
        "by": actor.name,
        "by_id": str(actor.id) if actor.id else None,
        "total": upload.rows,
        "done": 0,
        "created": 0,
        "answered": 0,
        "errors": [],
        "error_count": 0,
    }
    # Once the job is committed the upload cannot be started a second time.
    meta_path = _folder(data_dir) / f"{token}.json"
    after_commit(session, lambda: meta_path.unlink(missing_ok=True))
    audit.record(
        session,
        actor,
        "hotline.import.start",
        entity_type="job",
        entity_id=job.id,
        after={
            "filename": upload.filename,
            "format": upload.format,
            "rows": upload.rows,
            "mapping": {f: upload.header[i] for f, i in columns.items()},
        },
    )
    session.flush()
    return job


def get_job(session: Session, actor: Principal, job_id: uuid.UUID) -> Job:
    actor.require(PERMISSION)
    job = session.get(Job, job_id)
    if job is None or job.name != JOB_NAME:
        raise not_found("导入任务", "import job")
    return job


def recent_jobs(
    session: Session, actor: Principal, limit: int = 10
) -> list[tuple[Job, dict[str, Any]]]:
    """The latest imports, newest first, with their progress."""
    actor.require(PERMISSION)
    jobs = session.execute(
        select(Job).where(Job.name == JOB_NAME).order_by(Job.created_at.desc()).limit(limit)
    ).scalars()
    return [(job, progress(job)) for job in jobs]


def progress(job: Job) -> dict[str, Any]:
    """What the progress page shows (no file paths, no tracebacks)."""
    p = job.payload
    state = str(job.status)
    if state == JobStatus.QUEUED and job.attempts:
        state = "retrying"
    return {
        "status": state,
        "filename": p.get("filename"),
        "total": p.get("total", 0),
        "done": p.get("done", 0),
        "created": p.get("created", 0),
        "answered": p.get("answered", 0),
        "error_count": p.get("error_count", 0),
        "errors": p.get("errors", [])[:MAX_ERRORS_KEPT],
        "finished": job.status in (JobStatus.DONE, JobStatus.FAILED),
    }


# --- the job ---------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A cell as a Beijing-time instant (aware); blank is None; else ``RowError``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=SHANGHAI) if value.tzinfo is None else value
    text = " ".join(str(value).split())
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
    raise RowError(f"时间无法识别：{text[:40]}")


@dataclass(frozen=True)
class ImportRow:
    ref: str | None
    title: str | None
    content: str
    time: datetime | None
    requester: str
    phone: str | None
    reply: str | None
    reply_time: datetime | None


def read_row(cells: list[Any], mapping: dict[str, int]) -> ImportRow:
    """The mapped cells of one record, checked; ``RowError`` says what is wrong."""

    def cell(field: str) -> Any:
        index = mapping.get(field)
        return cells[index] if index is not None and index < len(cells) else None

    def text(field: str) -> str:
        return _cell_text(cell(field))

    title = text("title") or None
    content = text("content") or (title or "")
    if not content:
        raise RowError("诉求内容为空")
    if len(content) > MAX_CONTENT:
        raise RowError(f"诉求内容超过 {MAX_CONTENT} 字（{len(content)} 字）")
    if title and len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1] + "…"
    requester = text("requester") or NO_NAME
    if len(requester) > 100:
        raise RowError("诉求人超过 100 字")
    phone = text("phone") or None
    if phone is not None and not _PHONE.match(phone):
        raise RowError(f"联系电话格式有误：{phone[:20]}")
    try:
        submitted = parse_time(cell("time"))
    except RowError as exc:
        raise RowError(f"诉求{exc}") from None
    try:
        replied = parse_time(cell("reply_time"))
    except RowError as exc:
        raise RowError(f"答复{exc}") from None
    return ImportRow(
        ref=text("ref")[:64] or None,
        title=title,
        content=content,
        time=submitted,
        requester=requester,
        phone=phone,
        reply=text("reply") or None,
        reply_time=replied,
    )


def import_row(
    session: Session,
    actor: Principal,
    *,
    config: HotlineConfig,
    row: ImportRow,
    number: int,
    job_id: str,
    filename: str,
) -> bool:
    """One row as an order; True when it was closed with its reply."""
    case, order = service.register_order(
        session,
        actor,
        config=config,
        data=OrderCreate(
            channel=Channel.MESSAGE_BOARD,
            requester_name=row.requester,
            # The archive has no phone: a placeholder passes the intake check and is
            # cleared right after, so the order says "unknown", not a made-up number.
            requester_phone=row.phone or "00000",
            content=row.content,
            title=row.title,
            external_ref=row.ref,
        ),
        smart=False,  # history: what was done then is recorded, not re-decided
    )
    if row.phone is None:
        order.requester_phone = ""
    engine.add_note(
        session,
        actor,
        case,
        action="import",
        label="历史数据导入",
        data={
            "job": job_id,
            "file": filename,
            "row": number,
            "ref": row.ref,
            "submitted_at": row.time,
            "replied_at": row.reply_time,
        },
    )
    if not row.reply:
        session.flush()
        return False
    note = row.reply if len(row.reply) <= MAX_NOTE else row.reply[: MAX_NOTE - 1] + "…"
    service.act(
        session,
        actor,
        config=config,
        order_id=case.id,
        action="answer_directly",
        request=ActionRequest(note=note),
    )
    order.answer = row.reply  # the whole reply, even where the timeline note is cut
    session.flush()
    return True


def _error_text(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.message_zh
    if isinstance(exc, ValidationError):
        problems = "；".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
        )
        return f"内容不符合要求（{problems}）"
    if isinstance(exc, (DataError, IntegrityError)):
        return f"数据库拒绝了该行：{str(exc.orig)[:200]}"
    return str(exc)[:300]


@dataclass(frozen=True)
class _JobConfig(HotlineConfig):
    """The job's config: the work calendar is read once per run, not twice per row (the
    clocks it sets matter only to rows left registered, and a run is short)."""

    cache: dict[str, WorkCalendar] = field(default_factory=dict, compare=False)

    def calendar(self, session: Session) -> WorkCalendar:
        if "calendar" not in self.cache:
            self.cache["calendar"] = super().calendar(session)
        return self.cache["calendar"]


def _checkpoint(session: Session) -> None:
    """Commit the batch and open the next transaction for writing (on SQLite a
    ``BEGIN IMMEDIATE``, as ``kernel.db.open_session`` does)."""
    session.commit()
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_immediate": True})


def run_import(session: Session, payload: dict[str, Any], *, settings: Settings) -> None:
    """The ``hotline.import`` job: see the module docstring."""
    job = session.get(Job, uuid.UUID(str(payload["job_id"])))
    if job is None:
        raise NotFound("导入任务不存在", "import job not found")
    state = dict(job.payload)
    base = HotlineConfig.from_settings(settings)
    config = _JobConfig(base.number_prefix, base.work_periods, base.workflow_dir, base.dispatch)
    actor = system_principal(f"历史数据导入（{state.get('by', '')}）"[:200])
    mapping = {str(k): int(v) for k, v in state["mapping"].items()}
    path = _folder(settings.data_dir) / str(state["file"])
    if not _TOKEN.match(path.stem) or not path.is_file():
        raise NotFound("导入文件已不存在", "the import file is gone")
    errors: list[dict[str, Any]] = list(state.get("errors", []))
    skip = int(state.get("done", 0))
    seen = 0
    in_batch = 0
    rows = iter_rows(path, str(state["format"]), str(state.get("delimiter", ",")))
    next(rows, None)  # the header

    def save() -> None:
        job.payload = {**state, "errors": list(errors)}

    for number, cells in rows:
        seen += 1
        if seen <= skip:
            continue
        try:
            with session.begin_nested():
                row = read_row(cells, mapping)
                answered = import_row(
                    session,
                    actor,
                    config=config,
                    row=row,
                    number=number,
                    job_id=str(job.id),
                    filename=str(state.get("filename", "")),
                )
            state["created"] = int(state.get("created", 0)) + 1
            state["answered"] = int(state.get("answered", 0)) + int(answered)
        # Bad data skips the row; anything else (a lost connection, a bug) fails the job,
        # which is retried from the last committed batch.
        except (RowError, DomainError, ValidationError, DataError, IntegrityError) as exc:
            state["error_count"] = int(state.get("error_count", 0)) + 1
            if len(errors) < MAX_ERRORS_KEPT:
                errors.append({"row": number, "error": _error_text(exc)})
        state["done"] = seen
        in_batch += 1
        if in_batch >= BATCH_SIZE:
            save()
            _checkpoint(session)
            in_batch = 0
    state["total"] = max(int(state.get("total", 0)), seen)
    state["finished_at"] = clock.now().isoformat()
    save()
    audit.record(
        session,
        actor,
        "hotline.import.finish",
        entity_type="job",
        entity_id=job.id,
        after={
            "filename": state.get("filename"),
            "total": state["total"],
            "created": state.get("created", 0),
            "answered": state.get("answered", 0),
            "errors": state.get("error_count", 0),
        },
    )
    session.flush()
    # Once committed, the orders hold the data: the uploaded copy of it goes.
    after_commit(session, lambda: path.unlink(missing_ok=True))


def job_handler(settings: Settings) -> Handler:
    """The handler to register as ``hotline.import`` (``tasks.build_registry``)."""

    def handle(session: Session, payload: dict[str, Any]) -> None:
        run_import(session, payload, settings=settings)

    return handle
