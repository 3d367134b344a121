"""What the HTTP benches share: a scratch installation, a server process, a login, a client.

``scratch_site`` makes a fresh data directory (and, on PostgreSQL, a fresh database on the
server it is given, dropped afterwards), migrates and seeds it with ``zhengshu seed demo``
and reads the call-taker's password. ``Server`` runs ``zhengshu serve`` in its own process
group, so ``kill9`` takes the uvicorn supervisor and every worker down at once, as a crash
of the machine's process would. ``RawClient`` is a small keep-alive HTTP/1.1 client on
asyncio streams: the benches share two cores with the server, so the client is kept cheap.

Run the scripts as ``python bench/<name>.py``; each moves ``bench/`` behind the standard
library on ``sys.path`` first (``bench/calendar.py`` would otherwise shadow ``calendar``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASES = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}


def zhengshu_command() -> list[str]:
    """The ``zhengshu`` script of the running interpreter's environment."""
    beside = Path(sys.executable).with_name("zhengshu")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("zhengshu")
    if found is None:
        raise SystemExit("zhengshu is not installed in this environment (pip install -e .)")
    return [found]


def which_databases(choice: str) -> list[str]:
    """``--db sqlite|postgres|both`` as a list of dialect names."""
    if choice == "both":
        return ["sqlite", "postgresql"]
    if choice not in DATABASES:
        raise SystemExit(f"--db must be sqlite, postgres or both, not {choice!r}")
    return [DATABASES[choice]]


@dataclass
class Site:
    """One scratch installation: its data directory, database URL and environment."""

    dialect: str
    data_dir: Path
    url: str
    env: dict[str, str]
    password: str = ""  # the demo call-taker's

    def engine(self, **kw: Any) -> Any:
        connect_args = {"timeout": 30} if self.dialect == "sqlite" else {}
        return create_engine(self.url, connect_args=connect_args, **kw)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*zhengshu_command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )


@contextmanager
def scratch_site(dialect: str, pg_server: str = DEFAULT_PG, *, seed: bool = True) -> Iterator[Site]:
    """A fresh installation, seeded with the demo city; removed (database dropped) after."""
    tmp = Path(tempfile.mkdtemp(prefix="zs-bench-"))
    admin = None
    name = f"zs_bench_{uuid.uuid4().hex[:10]}"
    if dialect == "postgresql":
        admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp / 'zhengshu.sqlite3'}"
    env = {
        **os.environ,
        "ZHENGSHU_DATA_DIR": str(tmp),
        "ZHENGSHU_DATABASE_URL": url,
        "PYTHONUNBUFFERED": "1",
    }
    site = Site(dialect=dialect, data_dir=tmp, url=url, env=env)
    try:
        if seed:
            site.cli("seed", "demo")
            site.password = demo_password(tmp, "calltaker")
        yield site
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def demo_password(data_dir: Path, username: str) -> str:
    for line in (data_dir / "demo-accounts.txt").read_text("utf-8").splitlines():
        parts = line.split("\t")
        if parts[0] == username:
            return parts[1]
    raise SystemExit(f"no demo account {username!r} in {data_dir}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """``zhengshu serve`` in its own process group."""

    site: Site
    workers: int = 1
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.site.data_dir / "server.log"

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *zhengshu_command(),
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env={**self.site.env, **self.extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill9 reaches every worker
        )
        log.close()
        deadline = time.monotonic() + timeout
        healthy = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    healthy += 1
                    # With several workers, give each a moment to come up behind the socket.
                    if healthy >= min(self.workers, 3):
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer /healthz in {timeout} s; see {self.log_path}")

    def kill9(self) -> None:
        """SIGKILL the whole process group: no shutdown hook, no rollback, no flush."""
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._wait_group_gone()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._wait_group_gone()

    def _wait_group_gone(self, timeout: float = 10) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.group_pids() and time.monotonic() < deadline:
            time.sleep(0.05)

    def logged_errors(self, limit: int = 5) -> list[str]:
        """The first server-side tracebacks' last lines (the exception) from its log."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text("utf-8", errors="replace").splitlines()
        found = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next(
                    (j for j in range(i + 1, len(lines)) if not lines[j].startswith((" ", "\t"))),
                    len(lines) - 1,
                )
                found.append(lines[end][:300])
                if len(found) >= limit:
                    break
        return found

    def group_pids(self) -> list[int]:
        """Live processes of the server's process group (supervisor and workers)."""
        if self.proc is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            # fields[0] is the state, fields[2] the process group.
            if fields[0] != "Z" and int(fields[2]) == self.proc.pid:
                pids.append(int(entry))
        return pids

    def rss_mib(self) -> float:
        """Resident memory of the server's processes together, in MiB."""
        total = 0
        for pid in self.group_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024


def login(base: str, password: str, username: str = "calltaker") -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/token",
        json={"username": username, "password": password},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def order_body(run: str, key: str) -> dict[str, Any]:
    """A phone request carrying its key as ``external_ref`` and in its content."""
    return {
        "requester_name": "压测市民",
        "requester_phone": "13800138000",
        "content": f"东城街道 路灯不亮，请尽快维修（压测 {run} {key}）",
        "external_ref": key,
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def uptime() -> str:
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return "unknown"
    return f"load average {', '.join(load)} on {os.cpu_count()} CPUs"


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams, for JSON requests.

    Enough for uvicorn's answers (always ``Content-Length``); reconnects on a closed
    connection. Far cheaper per request than a general client, which matters when the
    client shares two cores with the server it measures.
    """

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.fixed}"
            + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            + (
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                if body is not None
                else ""
            )
            + "\r\n"
        ).encode()
        for attempt in range(2):
            if self.writer is None:
                await self._connect()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(head + payload)
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("connection closed")
                status = int(status_line.split()[1])
                length, close = 0, False
                while True:
                    line = await self.reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    if lowered == b"content-length":
                        length = int(value)
                    elif lowered == b"connection" and value.strip().lower() == b"close":
                        close = True
                data = await self.reader.readexactly(length) if length else b""
                if close:
                    await self.close()
                return status, data
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


def start_worker(site: Site) -> subprocess.Popen[bytes]:
    """``zhengshu worker`` at a lower CPU priority (``nice 10``): under a burst the server's
    acceptance comes first and registration catches up behind it, as in production."""
    log = (site.data_dir / "worker.log").open("ab")
    proc = subprocess.Popen(
        ["nice", "-n", "10", *zhengshu_command(), "worker"],
        env=site.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    # With autogroup scheduling (the default on desktop and many server kernels) a new
    # session is a group of its own and ``nice`` only ranks tasks inside it: lower the
    # group's weight too, as a systemd unit's CPUWeight would.
    with suppress(OSError):
        Path(f"/proc/{proc.pid}/autogroup").write_text("10")
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
