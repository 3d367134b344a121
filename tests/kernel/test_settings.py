"""Settings: work periods, the default database URL, and the persisted installation secret."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhengshu.kernel.settings import Settings, parse_work_periods


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ZHENGSHU_DATABASE_URL",
        "ZHENGSHU_DATA_DIR",
        "ZHENGSHU_SECRET_KEY",
        "ZHENGSHU_AUDIT_KEY",
        "ZHENGSHU_WORK_PERIODS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:30-12:00,14:00-17:30", [(510, 720), (840, 1050)]),
        ("08:30-12:00", [(510, 720)]),
        (" 08:30 - 12:00 , 14:00 - 17:30 ", [(510, 720), (840, 1050)]),
        ("8-12,14-18", [(480, 720), (840, 1080)]),
        ("00:00-24:00", [(0, 1440)]),
        ("09:00-12:00,12:00-13:00", [(540, 720), (720, 780)]),
    ],
)
def test_parse_work_periods_good(text: str, expected: list[tuple[int, int]]) -> None:
    assert parse_work_periods(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad work period: ''"),
        ("08:30", "bad work period: '08:30'"),
        ("08:30-12:00,", "bad work period: ''"),
        ("08:30-12:00;14:00-17:30", "bad time: '12:00;14:00-17:30'"),
        ("12:00-08:30", "periods must ascend: '12:00-08:30'"),
        ("09:00-09:00", "periods must ascend"),
        ("14:00-17:30,08:30-12:00", "periods must ascend"),
        ("08:30-12:00,11:00-13:00", "periods must ascend"),
        ("08:30-24:30", "time out of range: '24:30'"),
        ("25:00-26:00", "time out of range: '25:00'"),
        ("ab:cd-12:00", "bad time: 'ab:cd'"),
    ],
)
def test_parse_work_periods_bad(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_work_periods(text)


def test_bad_work_periods_message_is_bilingual() -> None:
    with pytest.raises(ValueError, match=r"^工作时段格式应为 HH:MM-HH:MM / bad work period: 'x'$"):
        parse_work_periods("x")


@pytest.mark.parametrize("text", ["08:75-12:00", "08:60-12:00", "08:30-12:99"])
def test_parse_work_periods_refuses_minutes_past_59(text: str) -> None:
    # Once a bug: "08:75" was read as 09:15.
    with pytest.raises(ValueError, match="time out of range"):
        parse_work_periods(text)


def test_settings_validate_work_periods(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="periods must ascend"):
        Settings(data_dir=tmp_path, work_periods="12:00-08:00")
    assert Settings(data_dir=tmp_path, work_periods="09:00-17:00").work_periods == "09:00-17:00"


def test_work_periods_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHENGSHU_WORK_PERIODS", "09:00-12:00")
    assert Settings(data_dir=tmp_path).work_periods == "09:00-12:00"
    monkeypatch.setenv("ZHENGSHU_WORK_PERIODS", "bad")
    with pytest.raises(ValidationError, match="bad work period"):
        Settings(data_dir=tmp_path)


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.database_url == ""
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'data' / 'zhengshu.sqlite3'}"
    assert settings.is_sqlite is True


def test_relative_data_dir_resolves_to_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path("rel"))
    assert (
        settings.resolved_database_url() == f"sqlite:///{tmp_path.resolve()}/rel/zhengshu.sqlite3"
    )


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path("zhengshu-data")
    assert settings.resolved_database_url() == (
        f"sqlite:///{tmp_path.resolve()}/zhengshu-data/zhengshu.sqlite3"
    )


def test_configured_database_url_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://zs@db.example:5432/zhengshu"
    assert Settings(data_dir=tmp_path, database_url=url).resolved_database_url() == url
    assert Settings(data_dir=tmp_path, database_url=url).is_sqlite is False
    monkeypatch.setenv("ZHENGSHU_DATABASE_URL", url)
    assert Settings(data_dir=tmp_path).resolved_database_url() == url


def test_generated_secret_key_is_persisted_privately(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet"
    settings = Settings(data_dir=data_dir)
    key = settings.resolved_secret_key()
    path = data_dir / "secret_key"
    assert path.read_text(encoding="utf-8") == key
    assert len(key) == 64  # token_urlsafe(48)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.resolved_secret_key() == key
    assert Settings(data_dir=data_dir).resolved_secret_key() == key
    assert Settings(data_dir=tmp_path / "other").resolved_secret_key() != key


def test_configured_secret_key_is_not_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="configured")
    assert settings.resolved_secret_key() == "configured"
    assert not (tmp_path / "secret_key").exists()


def test_existing_secret_key_file_is_read_stripped(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("from-file\n", encoding="utf-8")
    assert Settings(data_dir=tmp_path).resolved_secret_key() == "from-file"


def test_audit_key_falls_back_to_the_secret(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, secret_key="s").resolved_audit_key() == b"s"
    assert Settings(data_dir=tmp_path, secret_key="s", audit_key="a").resolved_audit_key() == b"a"
    generated = Settings(data_dir=tmp_path).resolved_audit_key()
    assert generated == (tmp_path / "secret_key").read_text(encoding="utf-8").encode()
