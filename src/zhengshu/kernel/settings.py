"""Settings: one pydantic-settings class, read from ``ZHENGSHU_*`` environment variables.

``create_app(settings)`` and every CLI command receive a ``Settings``; nothing else in the
code reads ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration of one zhengshu installation."""

    model_config = SettingsConfigDict(env_prefix="ZHENGSHU_", extra="ignore")

    data_dir: Path = Field(default=Path("zhengshu-data"))
    # uvicorn's access log, one line per request on standard output. Behind a reverse
    # proxy that logs requests itself (nginx) it may be turned off: about a tenth of the
    # CPU of a small API request; the request metrics (/metrics) are kept either way.
    access_log: bool = True
    # Empty means: the embedded SQLite database inside data_dir.
    database_url: str = ""
    # Signs nothing by itself; keys the audit chain's HMAC when audit_key is unset and is
    # persisted in data_dir so that restarts keep verifying the same chain.
    secret_key: str = ""
    audit_key: str = ""
    city_name: str = "东莞市"
    # Business-number prefix of the city (e.g. GD for 东莞 work orders).
    city_prefix: str = "GD"
    host: str = "127.0.0.1"
    port: int = 8000
    # Cookies get the Secure flag behind HTTPS (set true in production behind a proxy).
    cookie_secure: bool = False
    session_hours: int = 12
    # Office hours for limits counted in working hours (Asia/Shanghai local time).
    work_periods: str = "08:30-12:00,14:00-17:30"
    login_max_failures_per_user: int = 5
    login_max_failures_per_ip: int = 30
    login_window_minutes: int = 15
    # Public submissions (Open311 POST requests): at most this many per client address and
    # per callback phone number in the window (each server process counts its own).
    submit_max_per_ip: int = 30
    submit_max_per_phone: int = 5
    submit_window_minutes: int = 60
    # Request bodies over this size are refused (413) before they are read; the upload
    # routes (attachments, imports) have their own, larger caps.
    max_body_bytes: int = 1024 * 1024
    db_pool_size: int = 10
    sqlite_busy_timeout_ms: int = 10_000
    # Smart dispatch: carry out a proposal without a person when the weakest of its
    # confidences (category, unit, address) reaches the threshold (per-category
    # thresholds in the dispatch catalogue override it).
    dispatch_auto: bool = True
    dispatch_auto_threshold: float = Field(default=0.9, ge=0.5, le=1.0)
    dispatch_geo_threshold: float = Field(default=0.8, ge=0.0, le=1.0)

    @field_validator("work_periods")
    @classmethod
    def _periods_parse(cls, value: str) -> str:
        parse_work_periods(value)
        return value

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'zhengshu.sqlite3').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The installation secret: configured, or kept in ``data_dir/secret_key``."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        # Created 0600 from the start: never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key)
        return key

    def resolved_audit_key(self) -> bytes:
        return (self.audit_key or self.resolved_secret_key()).encode("utf-8")


def parse_work_periods(value: str) -> list[tuple[int, int]]:
    """Parse ``"08:30-12:00,14:00-17:30"`` into minute offsets ``[(510, 720), ...]``."""
    periods: list[tuple[int, int]] = []
    for part in value.split(","):
        start_s, sep, end_s = part.strip().partition("-")
        if not sep:
            raise ValueError(f"工作时段格式应为 HH:MM-HH:MM / bad work period: {part!r}")
        start, end = _minutes(start_s), _minutes(end_s)
        if end <= start or (periods and start < periods[-1][1]):
            raise ValueError(f"工作时段须递增且不重叠 / periods must ascend: {value!r}")
        periods.append((start, end))
    return periods


def _minutes(text: str) -> int:
    hours_s, _, minutes_s = text.strip().partition(":")
    try:
        hours, minutes = int(hours_s), int(minutes_s or 0)
    except ValueError as exc:
        raise ValueError(f"时间应为 HH:MM / bad time: {text!r}") from exc
    value = hours * 60 + minutes
    if not (0 <= minutes < 60 and hours >= 0 and value <= 24 * 60):
        raise ValueError(f"时间超出范围 / time out of range: {text!r}")
    return value
