"""Backups: backup -> change -> restore gives back the same data, files and a verifying
audit chain, on the test database's kind (SQLite, or PostgreSQL when the suite runs on it:
``fresh_database`` makes and drops a database of its own); bad archives are refused before
anything is touched."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tests.conftest import PASSWORD, create_database, factory_for, make_settings
from zhengshu.app import create_app
from zhengshu.cli import app as cli_app
from zhengshu.kernel import audit, migrate
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.db import make_engine
from zhengshu.kernel.settings import Settings
from zhengshu.modules.hotline import attachments
from zhengshu.ops import backup as ops
from zhengshu.org.models import Unit
from zhengshu.org.seed import seed_demo

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)
DONGCHENG = "441900003000"


@pytest.fixture
def factory(fresh_database: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_database)
    yield factory_for(engine)
    engine.dispose()


@pytest.fixture
def installation(
    fresh_database: Settings, factory: sessionmaker[Session]
) -> Iterator[tuple[Settings, TestClient]]:
    """A seeded installation with two orders, an attachment and a workflow override,
    served by a real app (each request commits)."""
    with factory() as session:
        seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
        session.commit()
    application = create_app(fresh_database)
    client = TestClient(application, base_url="http://testserver")
    token = client.post(
        "/api/v1/auth/token", json={"username": "calltaker", "password": PASSWORD}
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    for content in ("楼道电动车充电，存在消防隐患。", "路灯不亮已一周。"):
        order = new_order(client, content)
    upload = client.post(
        f"/api/v1/orders/{order['id']}/attachments", files={"file": ("现场.png", PNG, "image/png")}
    )
    assert upload.status_code == 201, upload.text
    workflows = fresh_database.data_dir / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    packaged = Path(attachments.__file__).parents[2] / "casework/workflows/hotline.yaml"
    shutil.copy(packaged, workflows / "hotline.yaml")
    yield fresh_database, client
    application.state.engine.dispose()


def new_order(client: TestClient, content: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/orders",
        json={"requester_name": "陈先生", "requester_phone": "13800138000", "content": content},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        conn = session.connection()
        if conn.dialect.name == "sqlite":
            names = conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%'"
                )
            ).scalars()
        else:
            names = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
        quote = conn.dialect.identifier_preparer.quote
        return {
            name: conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one()
            for name in sorted(names)
        }


def dongcheng_name(factory: sessionmaker[Session]) -> str:
    with factory() as session:
        return session.execute(select(Unit.name).where(Unit.code == DONGCHENG)).scalar_one()


def rename_dongcheng(factory: sessionmaker[Session], name: str) -> None:
    with factory() as session:
        unit = session.execute(select(Unit).where(Unit.code == DONGCHENG)).scalar_one()
        unit.name = name
        audit.record(
            session,
            system_principal("测试"),
            "org.unit.update",
            entity_type="unit",
            entity_id=unit.id,
            after={"name": name},
        )
        session.commit()


def members(path: Path) -> list[str]:
    with tarfile.open(path, "r:gz") as tar:
        return tar.getnames()


def test_backup_change_restore_gives_the_same_data_back(
    installation: tuple[Settings, TestClient], factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings, client = installation
    before = counts(factory)
    blob = next((settings.data_dir / "attachments").rglob("*"))
    while blob.is_dir():
        blob = next(blob.iterdir())
    (tmp_path / "backups").mkdir()
    info = ops.backup(settings, tmp_path / "backups")

    kind = "sqlite" if settings.is_sqlite else "postgresql"
    assert info.database == kind
    assert info.path.parent == tmp_path / "backups"
    assert info.path.name.startswith("zhengshu-backup-")
    assert info.path.stat().st_mode & 0o077 == 0  # personal data: owner only
    assert info.tables == before
    assert info.files == 2  # the attachment and the workflow override
    names = members(info.path)
    assert names[-1] == "manifest.json"
    database = "database/zhengshu.sqlite3" if kind == "sqlite" else "database/zhengshu.pgdump"
    assert database in names
    assert "files/workflows/hotline.yaml" in names
    with tarfile.open(info.path, "r:gz") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["format"] == "zhengshu-backup"
    assert manifest["format_version"] == 1
    assert manifest["database"] == {"kind": kind, "member": database}
    assert manifest["alembic_revision"] == info.revision == head_revision()
    assert manifest["audit_head"]["seq"] == before["audit_log"] == info.audit_seq
    assert manifest["tables"] == before
    assert set(manifest["members"]) == set(names) - {"manifest.json"}
    assert all(len(m["sha256"]) == 64 for m in manifest["members"].values())

    # Everything changes: a new order, a renamed unit, a lost file, a stray file.
    new_order(client, "新的诉求：噪音扰民。")
    rename_dongcheng(factory, "改名后的街道")
    blob.unlink()
    (settings.data_dir / "attachments" / "stray").write_bytes(b"not from the backup")
    assert counts(factory) != before

    restored = ops.restore(settings, info.path)

    assert restored.ok, restored
    assert restored.audit.ok
    assert restored.audit.rows == before["audit_log"]
    assert restored.upgraded_to is None
    assert restored.tables == before
    assert counts(factory) == before
    assert dongcheng_name(factory) == "东城街道"
    assert blob.read_bytes() == PNG
    assert not (settings.data_dir / "attachments" / "stray").exists()
    assert (settings.data_dir / "workflows" / "hotline.yaml").is_file()
    # The restored installation works: the order with its attachment is served again.
    orders = client.get("/api/v1/orders").json()
    assert orders["total"] == 2
    with factory() as session:
        assert audit.verify(session).ok


def test_a_backup_taken_while_writers_commit_is_consistent(
    installation: tuple[Settings, TestClient], factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings, _ = installation
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            with factory() as session:
                audit.record(session, system_principal("测试"), "test.write", entity_type="t")
                session.commit()
            written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            threading.Event().wait(0.01)
        info = ops.backup(settings, tmp_path / "online.tar.gz")
        marks = len(written)
        while len(written) < marks + 5:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()
    restored = ops.restore(settings, info.path)
    # The chain of the snapshot is whole, its head is the manifest's, the counts agree.
    assert restored.ok, restored
    assert restored.audit.rows == info.audit_seq == info.tables["audit_log"]
    assert counts(factory)["audit_log"] == info.tables["audit_log"]


def rewrite(src: Path, dst: Path, change: Any) -> Path:
    """Copy an archive member by member, letting ``change(name, data)`` alter each one
    (return None to drop it, or a list of (name, data) to replace it)."""
    with tarfile.open(src, "r:gz") as old, tarfile.open(dst, "w:gz") as new:
        for member in old:
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            result = change(member.name, data)
            if result is None:
                continue
            for name, payload in result:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                new.addfile(info, io.BytesIO(payload))
    return dst


def manifest_edit(edit: Any) -> Any:
    def change(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name != "manifest.json":
            return [(name, data)]
        manifest = json.loads(data)
        edit(manifest)
        return [(name, json.dumps(manifest).encode())]

    return change


def flip_database_byte(name: str, data: bytes) -> list[tuple[str, bytes]]:
    if name.startswith("database/"):
        data = data[:-1] + bytes([data[-1] ^ 1])
    return [(name, data)]


def with_member(extra: str) -> Any:
    """Add a member named ``extra`` (just before the manifest)."""

    def change(name: str, data: bytes) -> list[tuple[str, bytes]]:
        return [(extra, b"x"), (name, data)] if name == "manifest.json" else [(name, data)]

    return change


BAD_ARCHIVES = [
    ("checksum", flip_database_byte, "bad_archive", "校验和不符"),
    (
        "newer revision",
        manifest_edit(lambda m: m.update(alembic_revision="9999")),
        "newer_revision",
        "请先升级 zhengshu",
    ),
    (
        "path traversal",
        with_member("files/attachments/../../../evil"),
        "bad_archive",
        "不允许",
    ),
    (
        "extra member",
        with_member("files/attachments/ab/extra"),
        "bad_archive",
        "manifest 未列出",
    ),
    (
        "missing member",
        lambda n, d: None if n.startswith("files/") else [(n, d)],
        "bad_archive",
        "缺少",
    ),
    (
        "no manifest",
        lambda n, d: None if n == "manifest.json" else [(n, d)],
        "bad_archive",
        "manifest",
    ),
    (
        "newer format",
        manifest_edit(lambda m: m.update(format_version=2)),
        "bad_archive",
        "格式",
    ),
    (
        "other database kind",
        manifest_edit(lambda m: m["database"].update(kind="oracle")),
        "wrong_database",
        "不能恢复到",
    ),
]


def test_bad_archives_are_refused_and_nothing_is_touched(
    installation: tuple[Settings, TestClient], factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Each kind of bad archive (one installation for all: each refusal leaves it as it
    was, which is the point)."""
    settings, client = installation
    good = ops.backup(settings, tmp_path / "good.tar.gz")
    new_order(client, "备份之后的新诉求。")
    before = counts(factory)
    for label, change, code, says in BAD_ARCHIVES:
        bad = rewrite(good.path, tmp_path / f"bad-{code}.tar.gz", change)
        with pytest.raises(ops.BackupError) as refused:
            ops.restore(settings, bad)
        assert refused.value.code == code, label
        assert says in refused.value.message_zh, (label, refused.value.message_zh)
        assert counts(factory) == before, label
        assert not (tmp_path / "evil").exists(), label
        assert not (settings.data_dir.parent / "evil").exists(), label
        assert not list(settings.data_dir.glob(".restore-*")), label  # scratch folder gone


def test_an_older_archive_is_migrated_after_the_restore(
    installation: tuple[Settings, TestClient], factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """An archive of the previous schema revision is restored into an installation at
    the current one (whose newer tables it lacks), then brought up to date."""
    settings, _ = installation
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    head = script.get_revision(head_revision())
    previous = head.down_revision
    assert isinstance(previous, str)
    old_db = create_database(tmp_path)
    try:
        old = make_settings(old_db.url, tmp_path / "old-data")
        engine = make_engine(old)
        migrate.upgrade(engine, previous)
        with factory_for(engine)() as session:
            seed_demo(session, system_principal("测试"), password=lambda: PASSWORD)
            session.commit()
        engine.dispose()
        info = ops.backup(old, tmp_path / "old.tar.gz")
    finally:
        old_db.drop()
    assert info.revision == previous
    restored = ops.restore(settings, info.path)
    assert restored.revision == previous
    assert restored.upgraded_to == head_revision()
    assert restored.ok, restored
    assert restored.audit.rows == info.tables["audit_log"]
    with factory() as session:
        version = session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == head_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config("")).get_current_head()


def test_missing_postgresql_tools_are_named(
    installation: tuple[Settings, TestClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ops.BackupError) as missing:
        ops._binary("pg_dump")
    assert missing.value.code == "tool_missing"
    assert "pg_dump" in missing.value.message_zh
    assert "postgresql-client" in missing.value.message_en


def test_every_stored_file_lives_in_a_backed_up_folder(tmp_path: Path) -> None:
    blob = attachments.blob_path(tmp_path, "a" * 64)
    assert blob.relative_to(tmp_path).parts[0] in ops.DATA_FOLDERS


def test_the_cli_backs_up_and_restores(
    installation: tuple[Settings, TestClient],
    factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, client = installation
    monkeypatch.setenv("ZHENGSHU_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ZHENGSHU_AUDIT_KEY", settings.audit_key)
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    target = tmp_path / "nightly.tar.gz"
    made = runner.invoke(cli_app, ["backup", "--out", str(target)])
    assert made.exit_code == 0, made.output
    assert f"已备份 / backed up: {target}" in made.output
    assert "审计链至第" in made.output
    before = counts(factory)
    new_order(client, "备份之后的新诉求。")
    # Without --yes it asks first; "no" leaves everything as it is.
    declined = runner.invoke(cli_app, ["restore", str(target)], input="n\n")
    assert declined.exit_code != 0
    assert counts(factory) != before
    done = runner.invoke(cli_app, ["restore", str(target), "--yes"])
    assert done.exit_code == 0, done.output
    assert "审计链校验通过" in done.output
    assert counts(factory) == before
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Unit)).scalar_one() > 0
    missing = runner.invoke(cli_app, ["restore", str(tmp_path / "nope.tar.gz"), "--yes"])
    assert missing.exit_code == 2
    assert "找不到备份文件" in missing.output


def test_a_restore_with_another_audit_key_says_the_chain_does_not_verify(
    installation: tuple[Settings, TestClient], tmp_path: Path
) -> None:
    settings, _ = installation
    info = ops.backup(settings, tmp_path / "b.tar.gz")
    elsewhere = settings.model_copy(update={"audit_key": "another-installation-key"})
    restored = ops.restore(elsewhere, info.path)
    assert not restored.ok
    assert restored.audit.problem is not None
    assert restored.tables == info.tables  # the data is back; only the proof fails
