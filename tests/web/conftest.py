"""Fixtures of the web console tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from zhengshu.kernel import clock

# A Wednesday, the day before the National Day holiday (2026-10-01 .. 10-07; Saturday
# 10-10 is a make-up working day): a time limit counted from here crosses all of it.
FROZEN_AT = datetime(2026, 9, 30, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(FROZEN_AT)
    previous = clock.use_clock(frozen)
    yield frozen
    clock.use_clock(previous)


@pytest.fixture
def lenient_client(app: Any) -> Iterator[TestClient]:
    """A client that receives the 500 page instead of re-raising the server's exception."""
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        yield c
