"""Import of historical orders: upload, column mapping, the batched job, progress, errors."""

from __future__ import annotations

import csv
import io
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import frozen_at
from tests.web.helpers import Page, login
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.clock import FrozenClock
from zhengshu.kernel.jobs import Job, run_due_jobs
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import importer
from zhengshu.modules.hotline.models import Order
from zhengshu.tasks import build_registry

START = datetime(2026, 9, 30, 1, 0, tzinfo=UTC)
TEDDY = Path("/work/shared/data/teddy2020c/messages_replies.csv")
COLUMNS = ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "答复意见", "答复时间"]
LONG_REPLY = "经核查，" + "相关部门已安排整改。" * 250  # 2,504 characters

ROWS = [
    [
        "2549",
        "A00045581",
        "A2区景蓉华苑物业管理有问题",
        "2019/4/25 9:32:09",
        "\n\t\t小区物业公司扬言要退出小区，\n业委会制定高昂收费方案。\n",
        "您好，已责成街道调查处理。",
        "2019/5/10 14:56:53",
    ],
    [
        "2554",
        "A00023583",
        "A3区潇楚南路洋湖段怎么还没修好",
        "2019/4/24 16:03:40",
        "道路坑洼。",
        "",
        "",
    ],
    ["2555", "A00031618", "时间写错了", "昨天下午", "内容。", "答复。", "2019/5/9 9:49:14"],
    ["2557", "A000110735", "", "2019/4/24 15:07:30", "   ", "答复。", "2019/5/9 9:49:42"],
    [
        "2558",
        "A0009233",
        "长答复",
        "2019-04-23 17:03:19",
        "内容",
        LONG_REPLY,
        "2019-05-09 09:51:30",
    ],
]


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    yield from frozen_at(START)


def csv_bytes(rows: list[list[str]], header: list[str] = COLUMNS) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def upload(client: TestClient, csrf: str, name: str, data: bytes) -> Any:
    return client.post(
        "/hotline/import",
        data={"csrf_token": csrf},
        files={"file": (name, data, "text/csv")},
        follow_redirects=False,
    )


def chosen_mapping(page: Page) -> dict[str, str]:
    """The form of the mapping page as the browser would send it."""
    values = {}
    for select_node in page.dom.find_all("select"):
        picked = [o for o in select_node.find_all("option") if "selected" in o.attrs]
        values[select_node.attrs["name"]] = picked[0].attrs["value"] if picked else ""
    return values


def start(client: TestClient, csrf: str, data: bytes, name: str = "留言.csv") -> uuid.UUID:
    response = upload(client, csrf, name, data)
    assert response.status_code == 200, response.text
    page = Page.of(response)
    form = {n.attrs["name"]: n.attrs["value"] for n in page.dom.find_all("input", type="hidden")}
    response = client.post(
        "/hotline/import/start", data={**form, **chosen_mapping(page)}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/hotline/import/")
    return uuid.UUID(location.rsplit("/", 1)[1])


def progress(client: TestClient, job_id: uuid.UUID) -> dict[str, Any]:
    response = client.get(f"/hotline/import/{job_id}.json")
    assert response.status_code == 200, response.text
    return response.json()


def imported(db: Session) -> list[tuple[Case, Order]]:
    return [
        (c, o)
        for c, o in db.execute(
            select(Case, Order)
            .join(Order, Order.id == Case.id)
            .where(Order.channel == "message_board")
            .order_by(Case.number)
        ).all()
    ]


def test_a_csv_imports_through_the_page_and_the_job(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    checkpoints: list[int] = []
    real_checkpoint = importer._checkpoint

    def watch(session: Session) -> None:
        jobs = session.execute(select(Job).where(Job.name == importer.JOB_NAME)).scalars()
        checkpoints.extend(job.payload["done"] for job in jobs)
        real_checkpoint(session)

    monkeypatch.setattr(importer, "_checkpoint", watch)
    csrf = login(client, "dispatcher")
    page = Page.of(client.get("/hotline/import"))
    assert page.h1 == "历史工单导入"
    response = upload(client, csrf, "留言.csv", csv_bytes(ROWS))
    mapping_page = Page.of(response)
    assert mapping_page.dom.one("p", "preset").text == (
        "已按“网络问政留言板（留言编号、留言主题、留言详情、答复意见…）”格式自动选好各列，请核对。"
    )
    assert {
        name: mapping_page.selected(name)
        for name in ("ref", "title", "content", "time", "requester", "phone", "reply", "reply_time")
    } == {
        "ref": ["A 列 · 留言编号"],
        "title": ["C 列 · 留言主题"],
        "content": ["E 列 · 留言详情"],
        "time": ["D 列 · 留言时间"],
        "requester": ["B 列 · 留言用户"],
        "phone": [],
        "reply": ["F 列 · 答复意见"],
        "reply_time": ["G 列 · 答复时间"],
    }
    job_id = start(client, csrf, csv_bytes(ROWS))
    assert progress(client, job_id) == {
        "status": "queued",
        "filename": "留言.csv",
        "total": 5,
        "done": 0,
        "created": 0,
        "answered": 0,
        "error_count": 0,
        "errors": [],
        "finished": False,
    }
    page = Page.of(client.get(f"/hotline/import/{job_id}"))
    bar = page.dom.one("progress")
    assert (bar.attrs["max"], bar.attrs["value"]) == ("5", "0")
    assert f'"/hotline/import/{job_id}.json"' in page.response.text  # the polling script

    assert run_due_jobs(factory, build_registry(settings), worker_id="t") == 1

    assert checkpoints == [2, 4]  # progress committed after each batch of two rows
    errors = [
        {"row": 4, "error": "诉求时间无法识别：昨天下午"},
        {"row": 5, "error": "诉求内容为空"},
    ]
    assert progress(client, job_id) == {
        "status": "done",
        "filename": "留言.csv",
        "total": 5,
        "done": 5,
        "created": 3,
        "answered": 2,
        "error_count": 2,
        "errors": errors,
        "finished": True,
    }
    job = db.get(Job, job_id)
    assert job is not None
    db.refresh(job)
    assert {k: job.payload[k] for k in ("done", "total", "errors")} == {
        "done": 5,
        "total": 5,
        "errors": errors,
    }
    orders = imported(db)
    assert [(c.number, c.status, c.title, o.external_ref) for c, o in orders] == [
        ("GD20260930000001", "answered", "A2区景蓉华苑物业管理有问题", "2549"),
        ("GD20260930000002", "registered", "A3区潇楚南路洋湖段怎么还没修好", "2554"),
        ("GD20260930000003", "answered", "长答复", "2558"),
    ]
    first_case, first = orders[0]
    assert first.content == "小区物业公司扬言要退出小区，\n业委会制定高昂收费方案。"
    assert (first.requester_name, first.requester_phone) == ("A00045581", "")
    assert first.answer == "您好，已责成街道调查处理。"
    assert first_case.created_by == "历史数据导入（派单员 李志强(dispatcher)）"
    events = db.execute(
        select(CaseEvent).where(CaseEvent.case_id == first_case.id).order_by(CaseEvent.seq)
    ).scalars()
    assert [(e.action, e.label, e.note, e.data) for e in events] == [
        ("register", "受理", None, {"channel": "message_board", "external_ref": "2549"}),
        (
            "import",
            "历史数据导入",
            None,
            {
                "job": str(job_id),
                "file": "留言.csv",
                "row": 2,
                "ref": "2549",
                "submitted_at": "2019-04-25 09:32:09+08:00",
                "replied_at": "2019-05-10 14:56:53+08:00",
            },
        ),
        ("answer_directly", "直接答复", "您好，已责成街道调查处理。", None),
    ]
    long_case, long_order = orders[2]
    assert long_order.answer == LONG_REPLY  # kept whole on the order
    note = db.execute(
        select(CaseEvent.note).where(
            CaseEvent.case_id == long_case.id, CaseEvent.action == "answer_directly"
        )
    ).scalar_one()
    assert note is not None
    assert len(note) == 2000
    assert note.endswith("…")
    audits = db.execute(
        select(AuditEntry.action, AuditEntry.after)
        .where(AuditEntry.action.like("hotline.import.%"))
        .order_by(AuditEntry.seq)
    ).all()
    assert [a for a, _ in audits] == ["hotline.import.start", "hotline.import.finish"]
    assert audits[1][1] == {
        "filename": "留言.csv",
        "total": 5,
        "created": 3,
        "answered": 2,
        "errors": 2,
    }
    # The finished page lists the bad rows and polls no more; the upload is gone.
    page = Page.of(client.get(f"/hotline/import/{job_id}"))
    assert page.dom.one("table", "import-errors").texts("td") == [
        "4",
        "诉求时间无法识别：昨天下午",
        "5",
        "诉求内容为空",
    ]
    assert "<script>" not in page.response.text
    assert list((settings.data_dir / "imports").glob(f"{job.payload['file']}*")) == []


def test_a_failed_job_resumes_after_the_last_committed_batch(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    real_import_row = importer.import_row
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the disk fell over")
        return real_import_row(*args, **kwargs)

    monkeypatch.setattr(importer, "import_row", flaky)
    rows = [[str(i), f"U{i}", f"主题{i}", "2019/4/1 8:00:00", f"内容{i}", "", ""] for i in range(5)]
    csrf = login(client, "dispatcher")
    job_id = start(client, csrf, csv_bytes(rows))
    registry = build_registry(settings)
    assert run_due_jobs(factory, registry, worker_id="t") == 1
    state = progress(client, job_id)
    assert (state["status"], state["done"], state["created"]) == ("retrying", 2, 2)
    frozen.advance(timedelta(minutes=1))
    assert run_due_jobs(factory, registry, worker_id="t") == 1
    state = progress(client, job_id)
    assert (state["status"], state["done"], state["created"], state["errors"]) == (
        "done",
        5,
        5,
        [],
    )
    assert [c.title for c, _ in imported(db)] == [f"主题{i}" for i in range(5)]


def test_an_xlsx_imports_with_a_chosen_mapping(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["标题", "内容", "时间", "电话", "回复"])
    # Excel keeps no time zone: a time in a workbook is read as Beijing time.
    local = datetime(2020, 1, 7, 9, 33, 24)  # noqa: DTZ001
    sheet.append(["噪音扰民", "夜间施工噪音", local, "13800138000", None])
    sheet.append([None, None, None, None, None])
    sheet.append(["路灯不亮", "路灯坏了", "2020-01-08 20:00", "123", "已修复"])
    buffer = io.BytesIO()
    book.save(buffer)
    csrf = login(client, "dispatcher")
    response = upload(client, csrf, "历史.xlsx", buffer.getvalue())
    page = Page.of(response)
    assert page.dom.find_all("p", "preset") == []
    token = page.dom.one("input", name="token").attrs["value"]
    response = client.post(
        "/hotline/import/start",
        data={
            "csrf_token": csrf,
            "token": token,
            "title": "0",
            "content": "1",
            "time": "2",
            "phone": "3",
            "reply": "4",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    job_id = uuid.UUID(response.headers["location"].rsplit("/", 1)[1])
    run_due_jobs(factory, build_registry(settings), worker_id="t")
    state = progress(client, job_id)
    assert (state["total"], state["done"], state["created"], state["errors"]) == (
        2,
        2,
        1,
        [{"row": 4, "error": "联系电话格式有误：123"}],
    )
    ((case, order),) = imported(db)
    assert (case.title, case.status, order.requester_name, order.requester_phone) == (
        "噪音扰民",
        "registered",
        "（未留名）",
        "13800138000",
    )
    note = db.execute(
        select(CaseEvent.data).where(CaseEvent.case_id == case.id, CaseEvent.action == "import")
    ).scalar_one()
    assert note is not None
    assert note["submitted_at"] == "2020-01-07 09:33:24+08:00"
    # The same upload cannot be started twice.
    again = client.post(
        "/hotline/import/start",
        data={"csrf_token": csrf, "token": token, "content": "1"},
        follow_redirects=False,
    )
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "留言编号,留言详情\n1,中文内容\n".encode("gbk"),
            "文件须为 UTF-8 编码的 CSV 或 Excel（.xlsx）文件（Excel 中可“另存为 CSV UTF-8”）",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00",
            "文件须为 UTF-8 编码的 CSV 或 Excel（.xlsx）文件（Excel 中可“另存为 CSV UTF-8”）",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
            "不支持旧版 Excel（.xls），请另存为 .xlsx 或 CSV UTF-8 后再导入",
        ),
        ("留言编号,留言详情\n".encode(), "文件中没有数据行"),
        (b"a,b\n1,2\n3,4\n5,6\n", "超过 2 行，请拆分后再导入"),
    ],
)
def test_files_that_are_not_utf8_tables_are_refused_at_upload(
    client: TestClient,
    db: Session,
    settings: Settings,
    frozen: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    data: bytes,
    message: str,
) -> None:
    monkeypatch.setattr(importer, "MAX_ROWS", 2)
    csrf = login(client, "dispatcher")
    before = set((settings.data_dir / "imports").glob("*"))
    response = upload(client, csrf, "x.csv", data)
    assert response.status_code == 400
    assert Page.of(response).error_message == message
    assert set((settings.data_dir / "imports").glob("*")) == before
    assert db.execute(select(func.count()).select_from(Job)).scalar_one() == 0


def test_the_import_is_for_dispatchers_only(
    client: TestClient, db: Session, frozen: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_BYTES", 100)
    csrf = login(client, "dispatcher")
    response = upload(client, csrf, "big.csv", csv_bytes(ROWS))
    assert response.status_code == 413
    monkeypatch.undo()
    for username in ("calltaker", "dc.handler", "admin"):
        csrf = login(client, username)
        assert client.get("/hotline/import").status_code == 403
        assert upload(client, csrf, "x.csv", csv_bytes(ROWS[:1])).status_code == 403
        response = client.get(f"/hotline/import/{uuid.uuid4()}.json")
        assert response.status_code == 403


def test_uploads_never_started_are_deleted_after_a_day(
    client: TestClient, settings: Settings, frozen: FrozenClock
) -> None:
    folder = settings.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    old, recent = "a" * 32, "b" * 32
    for token in (old, recent):
        (folder / f"{token}.csv").write_text("x", "utf-8")
        (folder / f"{token}.json").write_text("{}", "utf-8")
    day_ago = time.time() - importer.STALE_UPLOAD_SECONDS - 60
    for suffix in ("csv", "json"):
        os.utime(folder / f"{old}.{suffix}", (day_ago, day_ago))
    csrf = login(client, "dispatcher")
    assert upload(client, csrf, "x.csv", csv_bytes(ROWS[:1])).status_code == 200
    names = {p.name for p in folder.iterdir()}
    assert {f"{old}.csv", f"{old}.json"} & names == set()
    assert {f"{recent}.csv", f"{recent}.json"} <= names


@pytest.mark.skipif(not TEDDY.exists(), reason="shared teddy2020c data not present")
def test_the_first_fifty_board_messages_import(
    client: TestClient,
    db: Session,
    factory: sessionmaker[Session],
    settings: Settings,
    frozen: FrozenClock,
) -> None:
    with TEDDY.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [next(reader) for _ in range(50)]
    assert header == COLUMNS
    csrf = login(client, "dispatcher")
    job_id = start(client, csrf, csv_bytes(rows), name="messages_replies.csv")
    run_due_jobs(factory, build_registry(settings), worker_id="t")
    state = progress(client, job_id)
    replied = sum(1 for r in rows if r[5].strip())
    assert (state["status"], state["total"], state["done"], state["created"]) == (
        "done",
        50,
        50,
        50,
    )
    assert (state["answered"], state["errors"]) == (replied, [])
    orders = imported(db)
    assert [o.external_ref for _, o in orders] == [r[0] for r in rows]
    assert [c.title for c, _ in orders] == [r[2] for r in rows]
    assert sum(1 for c, _ in orders if c.status == "answered") == replied


def test_the_delimiter_is_sniffed_from_the_first_line() -> None:
    assert importer.sniff_delimiter("留言编号,留言详情\n1,a;b".encode()) == ","
    assert importer.sniff_delimiter("留言编号\t留言详情\n".encode()) == "\t"
    assert importer.sniff_delimiter(b"a;b;c\n") == ";"
    assert importer.sniff_delimiter(b"only\n") == ","


def test_rows_read_as_beijing_time() -> None:
    assert importer.parse_time("2019/4/25 9:32:09") == datetime(2019, 4, 25, 1, 32, 9, tzinfo=UTC)
    assert importer.parse_time(" 2019-04-25 ") == datetime(2019, 4, 24, 16, 0, tzinfo=UTC)
    assert importer.parse_time("2019年4月25日 09:32") == datetime(2019, 4, 25, 1, 32, tzinfo=UTC)
    assert importer.parse_time("") is None
    with pytest.raises(importer.RowError):
        importer.parse_time("25/4/2019")
