"""Backups of an installation: the database and the stored files, in one archive.

The archive is a gzip'd tar (mode 0600: it holds personal data) of

- ``database/zhengshu.sqlite3``: SQLite, an online copy made with SQLite's backup API
  (consistent while the server runs), or ``database/zhengshu.pgdump``: PostgreSQL,
  ``pg_dump -Fc`` of a snapshot exported by the transaction that also counts the rows,
  so the counts in the manifest are those of the dump;
- ``files/<folder>/…``: the data directory's stored files (``DATA_FOLDERS``), copied after
  the database, so every file the database refers to is there (files are written before
  the row that names them commits, and never changed);
- ``manifest.json`` (the last member): format and version, when, the database kind, the
  Alembic revision, the audit chain head, rows per table, and the SHA-256 and size of
  every other member.

Not in the archive: ``secret_key`` and ``demo-accounts.txt`` (secrets). Keep the audit key
(``ZHENGSHU_AUDIT_KEY``, else the data directory's ``secret_key``) backed up apart: the
restored audit chain verifies only with it.

``restore`` reads the whole archive into a scratch folder inside the data directory and
checks it before it touches anything: only plain files with safe names, every member in
the manifest with its size and checksum, nothing else; the database kind of this
installation; a revision this code knows (an archive of a newer version is refused).
Then it replaces the database (SQLite: the backup API again, into the live file;
PostgreSQL: ``pg_restore --clean --if-exists`` in one transaction, after dropping tables
the archive does not have), swaps the file folders in, migrates an older revision to the
current one, and verifies the audit chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, make_url, text

from zhengshu import __version__
from zhengshu.kernel import audit, clock, migrate
from zhengshu.kernel.db import make_engine, make_sessionmaker, transaction
from zhengshu.kernel.errors import DomainError
from zhengshu.kernel.settings import Settings

FORMAT = "zhengshu-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/zhengshu.sqlite3"
PG_MEMBER = "database/zhengshu.pgdump"
# Folders of the data directory that hold data (not secrets, not the SQLite file): the
# 12345 attachments (``hotline.attachments``), uploads waiting to be imported
# (``hotline.importer``) and the city's own workflow definitions (``HotlineConfig``).
DATA_FOLDERS = ("attachments", "imports", "workflows")
# Files being written at the time (an attachment's temporary name) are skipped.
PARTIAL_PREFIXES = (".upload-",)
CHUNK = 1024 * 1024


class BackupError(DomainError):
    status_code = 400
    default_code = "backup_failed"


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created_at: datetime
    database: str  # sqlite | postgresql
    revision: str | None
    audit_seq: int
    tables: dict[str, int]
    files: int
    size: int


@dataclass(frozen=True)
class RestoreInfo:
    path: Path
    created_at: str
    database: str
    revision: str | None
    upgraded_to: str | None
    tables: dict[str, int]
    files: int
    audit: audit.AuditReport
    # Tables whose row count differs from the manifest's: name -> (archive, restored).
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)
    head_matches: bool = True

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.mismatched and self.head_matches


@dataclass(frozen=True)
class _Snapshot:
    revision: str | None
    audit_seq: int
    audit_hash: str
    tables: dict[str, int]


# --- backup ------------------------------------------------------------------------------


def backup(settings: Settings, dest: Path) -> BackupInfo:
    """Write a backup archive to ``dest`` (a file, or a folder to put a dated file in)."""
    now = clock.now()
    if dest.is_dir():
        dest = dest / f"zhengshu-backup-{now:%Y%m%d-%H%M%S}.tar.gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    kind = _kind(settings)
    with tempfile.TemporaryDirectory(prefix=".zhengshu-backup-", dir=dest.parent) as scratch:
        work = Path(scratch)
        if kind == "sqlite":
            member, dump = SQLITE_MEMBER, work / "zhengshu.sqlite3"
            snapshot = _sqlite_backup(settings, dump)
        else:
            member, dump = PG_MEMBER, work / "zhengshu.pgdump"
            snapshot = _pg_backup(settings, dump)
        files = [(member, dump), *_data_files(settings.data_dir)]
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": now.isoformat(),
            "zhengshu_version": __version__,
            "database": {"kind": kind, "member": member},
            "alembic_revision": snapshot.revision,
            "audit_head": {"seq": snapshot.audit_seq, "hash": snapshot.audit_hash},
            "tables": snapshot.tables,
            "members": {},
        }
        _write_archive(dest, manifest, files)
    return BackupInfo(
        path=dest,
        created_at=now,
        database=kind,
        revision=snapshot.revision,
        audit_seq=snapshot.audit_seq,
        tables=snapshot.tables,
        files=len(manifest["members"]) - 1,
        size=dest.stat().st_size,
    )


def _kind(settings: Settings) -> str:
    backend = make_url(settings.resolved_database_url()).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(
            f"不支持备份此类数据库：{backend}", f"cannot back up a {backend} database"
        )
    return backend


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.resolved_database_url()).database
    if not database or database == ":memory:":
        raise BackupError("内存数据库无法备份或恢复", "an in-memory database has no backup")
    return Path(database)


def _sqlite_backup(settings: Settings, target: Path) -> _Snapshot:
    source_path = _sqlite_path(settings)
    if not source_path.is_file():
        raise BackupError(
            f"找不到数据库文件：{source_path}", f"database file not found: {source_path}"
        )
    source = sqlite3.connect(source_path, timeout=settings.sqlite_busy_timeout_ms / 1000)
    try:
        copy = sqlite3.connect(target)
        try:
            # One step under a read lock: a consistent snapshot, writers keep going (WAL).
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            return _sqlite_snapshot(copy)
        finally:
            copy.close()
    finally:
        source.close()


def _sqlite_snapshot(conn: sqlite3.Connection) -> _Snapshot:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    tables = {
        name: conn.execute(f"SELECT count(*) FROM {_sqlite_quote(name)}").fetchone()[0]
        for name in names
    }
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    seq, last = 0, audit.GENESIS
    if "audit_chain_head" in tables:
        head = conn.execute("SELECT seq, hash FROM audit_chain_head WHERE id = 1").fetchone()
        if head:
            seq, last = int(head[0]), str(head[1])
    return _Snapshot(revision, seq, last, tables)


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_backup(settings: Settings, target: Path) -> _Snapshot:
    pg_dump = _binary("pg_dump")
    conninfo, env = _libpq(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as plain:
            conn = plain.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                # pg_dump reads the snapshot this transaction holds: the dump and the
                # counts below are of the same instant.
                snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                snapshot = _pg_snapshot(conn)
                _run(
                    [
                        pg_dump,
                        "--format=custom",
                        f"--snapshot={snapshot_id}",
                        f"--file={target}",
                        f"--dbname={conninfo}",
                    ],
                    env,
                    "pg_dump",
                )
    finally:
        engine.dispose()
    return snapshot


def _pg_tables(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        ).scalars()
    )


def _pg_snapshot(conn: Connection) -> _Snapshot:
    quote = conn.dialect.identifier_preparer.quote
    tables = {
        name: int(conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one())
        for name in _pg_tables(conn)
    }
    revision = None
    if "alembic_version" in tables:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    seq, last = 0, audit.GENESIS
    if "audit_chain_head" in tables:
        head = conn.execute(text("SELECT seq, hash FROM audit_chain_head WHERE id = 1")).first()
        if head is not None:
            seq, last = int(head[0]), str(head[1])
    return _Snapshot(revision, seq, last, tables)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"找不到 {name}：请安装与数据库服务器同版本的 PostgreSQL 客户端工具"
            "（如 apt-get install postgresql-client），并确保它在 PATH 中",
            f"{name} not found on PATH: install the PostgreSQL client tools "
            "(e.g. apt-get install postgresql-client) of the server's version",
            code="tool_missing",
        )
    return found


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """A libpq connection string for the PostgreSQL tools (the password goes in the
    environment, never on the command line) and that environment."""
    url = make_url(settings.resolved_database_url())
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    parts: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "dbname": url.database,
    }
    for key, value in url.query.items():
        parts[key] = value if isinstance(value, str) else value[-1]
    conninfo = " ".join(f"{k}={_libpq_quote(str(v))}" for k, v in parts.items() if v)
    return conninfo, env


def _libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(command: list[str], env: dict[str, str], name: str) -> None:
    # A fixed argv (a tool found on PATH and our own arguments), no shell.
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise BackupError(
            f"{name} 执行失败（退出码 {result.returncode}）：{tail}",
            f"{name} failed with exit code {result.returncode}: {tail}",
            code="tool_failed",
        )


def _data_files(data_dir: Path) -> list[tuple[str, Path]]:
    files = []
    for folder in DATA_FOLDERS:
        root = data_dir / folder
        if not root.is_dir() or root.is_symlink():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            if path.name.startswith(PARTIAL_PREFIXES):
                continue
            files.append(("files/" + path.relative_to(data_dir).as_posix(), path))
    return files


class _Hashing:
    """A file object that hashes what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


def _write_archive(dest: Path, manifest: dict[str, Any], files: list[tuple[str, Path]]) -> None:
    """Stream every file into the archive (hashing as it goes), the manifest last; the
    archive appears under its name only when complete."""
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for arcname, path in files:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    continue  # removed meanwhile (an import that was just started)
                with handle:
                    info = tarfile.TarInfo(arcname)
                    info.size = os.fstat(handle.fileno()).st_size
                    info.mtime = int(os.fstat(handle.fileno()).st_mtime)
                    info.mode = 0o600
                    reader = _Hashing(handle)
                    tar.addfile(info, reader)
                    manifest["members"][arcname] = {
                        "sha256": reader.digest.hexdigest(),
                        "size": info.size,
                    }
            body = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(clock.now().timestamp()), 0o600
            tar.addfile(info, _Bytes(body))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at : end], min(end, len(self.data))
        return chunk


# --- restore -----------------------------------------------------------------------------


def restore(settings: Settings, src: Path) -> RestoreInfo:
    """Replace this installation's database and stored files with the archive's (stop the
    server and the worker first), then verify the audit chain; see the module."""
    if not src.is_file():
        raise BackupError(f"找不到备份文件：{src}", f"backup file not found: {src}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _scratch(settings.data_dir) as work:
        manifest = _unpack(src, work)
        kind = _kind(settings)
        archived = manifest["database"]["kind"]
        if archived != kind:
            raise BackupError(
                f"备份来自 {archived} 数据库，不能恢复到 {kind} 数据库",
                f"the archive holds a {archived} database; this installation uses {kind}",
                code="wrong_database",
            )
        revision = manifest.get("alembic_revision")
        head = _check_revision(revision)
        database = work / manifest["database"]["member"]
        if kind == "sqlite":
            _sqlite_restore(settings, database)
        else:
            _pg_restore(settings, database, set(manifest["tables"]))
        files = _swap_folders(settings.data_dir, work)
        upgraded = None
        if revision != head:
            engine = make_engine(settings)
            try:
                migrate.upgrade(engine)
            finally:
                engine.dispose()
            upgraded = head
        tables, report, head_row = _verify(settings)
    expected: dict[str, int] = manifest["tables"]
    mismatched = {
        name: (count, tables.get(name, 0))
        for name, count in expected.items()
        if tables.get(name, 0) != count
    }
    archived_head = manifest.get("audit_head") or {}
    return RestoreInfo(
        path=src,
        created_at=str(manifest.get("created_at")),
        database=kind,
        revision=revision,
        upgraded_to=upgraded,
        tables=tables,
        files=files,
        audit=report,
        mismatched=mismatched if upgraded is None else {},
        head_matches=head_row == (archived_head.get("seq"), archived_head.get("hash")),
    )


@contextmanager
def _scratch(data_dir: Path) -> Iterator[Path]:
    # Inside the data directory: the file folders are swapped in by renaming.
    work = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _refuse(zh: str, en: str) -> BackupError:
    return BackupError(
        f"备份文件校验失败：{zh}", f"backup archive rejected: {en}", code="bad_archive"
    )


def _safe_name(name: str) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or "\\" in name or any(p in ("", ".", "..") for p in path.parts):
        return None
    if name == MANIFEST:
        return name
    top = path.parts[0]
    if top == "database" and len(path.parts) == 2:
        return name
    if top == "files" and len(path.parts) >= 3 and path.parts[1] in DATA_FOLDERS:
        return name
    return None


def _unpack(src: Path, work: Path) -> dict[str, Any]:
    """Extract every member, hashing it; return the manifest once all of it checks out."""
    seen: dict[str, tuple[str, int]] = {}
    manifest_bytes = None
    try:
        with tarfile.open(src, mode="r:gz") as tar:
            for member in tar:
                name = _safe_name(member.name)
                if name is None or not member.isreg():
                    raise _refuse(
                        f"含有不允许的内容 {member.name[:200]!r}",
                        f"unexpected member {member.name[:200]!r}",
                    )
                if name in seen or (name == MANIFEST and manifest_bytes is not None):
                    raise _refuse(f"{name} 重复出现", f"{name} appears twice")
                handle = tar.extractfile(member)
                assert handle is not None
                if name == MANIFEST:
                    manifest_bytes = handle.read(10 * CHUNK)
                    continue
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                with target.open("wb") as out:
                    while chunk := handle.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                seen[name] = (digest.hexdigest(), size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _refuse(f"无法读取（{exc}）", f"unreadable ({exc})") from exc
    if manifest_bytes is None:
        raise _refuse("缺少 manifest.json", "manifest.json is missing")
    try:
        manifest = json.loads(manifest_bytes)
        members: dict[str, dict[str, Any]] = manifest["members"]
        fmt, version = manifest["format"], int(manifest["format_version"])
        member = manifest["database"]["member"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _refuse("manifest.json 格式不对", "manifest.json is malformed") from exc
    if fmt != FORMAT or version > FORMAT_VERSION:
        raise _refuse(
            f"不是本程序可读的备份格式（{fmt} 第 {version} 版）",
            f"not a backup format this code reads ({fmt} v{version})",
        )
    if member not in members:
        raise _refuse("manifest 未列出数据库文件", "the manifest lists no database")
    for name, facts in members.items():
        if name not in seen:
            raise _refuse(f"缺少 {name}", f"{name} is missing")
        if seen[name] != (facts.get("sha256"), facts.get("size")):
            raise _refuse(
                f"{name} 的校验和不符（文件已损坏或被改动）", f"{name}: checksum mismatch"
            )
    extra = sorted(set(seen) - set(members))
    if extra:
        raise _refuse(
            f"含有 manifest 未列出的文件 {extra[0]}", f"{extra[0]} is not in the manifest"
        )
    return dict(manifest)


def _check_revision(revision: str | None) -> str | None:
    """The code's head revision; refuses an archive from a newer (unknown) schema."""
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    if revision is not None and revision not in known:
        raise BackupError(
            f"备份的数据库版本 {revision} 比本程序新（本程序最高为 {head}），"
            "请先升级 zhengshu 再恢复",
            f"the archive's schema revision {revision} is newer than this code's ({head}); "
            "upgrade zhengshu first",
            code="newer_revision",
        )
    return head


def _sqlite_restore(settings: Settings, database: Path) -> None:
    target = _sqlite_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(database)
    try:
        live = sqlite3.connect(target, timeout=settings.sqlite_busy_timeout_ms / 1000)
        try:
            # Page by page into the live file, under its write lock: the whole database is
            # replaced at once (tables the archive lacks are gone too).
            source.backup(live)
        finally:
            live.close()
    finally:
        source.close()


def _pg_restore(settings: Settings, dump: Path, archived: set[str]) -> None:
    pg_restore = _binary("pg_restore")
    conninfo, env = _libpq(settings)
    engine: Engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            # Tables of a newer schema than the archive's would survive --clean and block
            # the migrations that bring the restored database up to date.
            quote = conn.dialect.identifier_preparer.quote
            for name in _pg_tables(conn):
                if name not in archived:
                    conn.execute(text(f"DROP TABLE IF EXISTS {quote(name)} CASCADE"))
    finally:
        engine.dispose()
    _run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={conninfo}",
            str(dump),
        ],
        env,
        "pg_restore",
    )


def _swap_folders(data_dir: Path, work: Path) -> int:
    """Put the archive's file folders in place of the current ones; returns the count."""
    incoming = work / "files"
    count = 0
    for folder in DATA_FOLDERS:
        current, new = data_dir / folder, incoming / folder
        if current.exists() or current.is_symlink():
            os.replace(current, work / f"previous-{folder}")
        if new.is_dir():
            os.replace(new, current)
            count += sum(1 for p in current.rglob("*") if p.is_file())
    return count


def _verify(settings: Settings) -> tuple[dict[str, int], audit.AuditReport, tuple[Any, Any]]:
    engine = make_engine(settings)
    try:
        factory = make_sessionmaker(engine)
        factory.kw["info"] = {audit.AUDIT_KEY: settings.resolved_audit_key()}
        with transaction(factory, write=False) as session:
            report = audit.verify(session)
            conn = session.connection()
            if conn.dialect.name == "sqlite":
                names = list(
                    conn.execute(
                        text(
                            "SELECT name FROM sqlite_master WHERE type = 'table' "
                            "AND name NOT LIKE 'sqlite_%'"
                        )
                    ).scalars()
                )
            else:
                names = _pg_tables(conn)
            quote = conn.dialect.identifier_preparer.quote
            tables = {
                name: int(conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one())
                for name in sorted(names)
            }
            head = session.get(audit.AuditChainHead, 1)
            head_row = (head.seq, head.hash) if head is not None else (0, audit.GENESIS)
    finally:
        engine.dispose()
    return tables, report, head_row


__all__ = ["DATA_FOLDERS", "BackupError", "BackupInfo", "RestoreInfo", "backup", "restore"]
