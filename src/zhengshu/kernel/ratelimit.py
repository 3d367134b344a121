"""Sliding-window rate limits kept in the process, for public submissions.

The login limit counts failed attempts in the database (``org.auth``): it must hold across
every worker and survive restarts, and each failure is an audited row anyway. A public
submission (an Open311 POST) is counted here instead, in memory, against several quotas at
once (per client address, per callback phone number): it is admitted only if every quota
has room, and then counts against all of them. Each server process keeps its own windows,
so N processes admit at most N times a quota: a bound on abuse, not an exact allowance.
Refusals are ``TooManyRequests`` (429) saying which quota is full and when to retry.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from zhengshu.kernel import clock
from zhengshu.kernel.errors import TooManyRequests

# Keys remembered at most (addresses, phone numbers); beyond it the stalest are dropped.
MAX_KEYS = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` events per ``window`` for one ``key`` of one ``bucket``."""

    bucket: str  # e.g. "open311.ip"
    key: str
    limit: int
    window: timedelta
    label_zh: str  # who is limited, in words: 同一网络地址
    label_en: str  # this address


class RateLimiter:
    """Thread-safe sliding windows: one deque of event times per (bucket, key)."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._events: dict[tuple[str, str], deque[datetime]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def take(self, quotas: Sequence[Quota]) -> None:
        """Count one event against every quota, or none of them and raise
        ``TooManyRequests`` for the first one that is full."""
        now = clock.now()
        with self._lock:
            for quota in quotas:
                if quota.limit <= 0:
                    continue
                events = self._window(quota, now)
                if len(events) >= quota.limit:
                    raise _refusal(quota, events[0] + quota.window - now)
            for quota in quotas:
                if quota.limit > 0:
                    self._events.setdefault((quota.bucket, quota.key), deque()).append(now)
            if len(self._events) > self._max_keys:
                self._shrink()

    def _window(self, quota: Quota, now: datetime) -> deque[datetime]:
        events = self._events.get((quota.bucket, quota.key), deque())
        while events and events[0] <= now - quota.window:
            events.popleft()
        return events

    def _shrink(self) -> None:
        """Drop the keys whose latest event is oldest until a tenth of the room is free."""
        by_age = sorted(self._events, key=self._latest)
        for key in by_age[: len(self._events) - self._max_keys * 9 // 10]:
            del self._events[key]

    def _latest(self, key: tuple[str, str]) -> datetime:
        events = self._events[key]
        return events[-1] if events else _EPOCH

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


def _refusal(quota: Quota, wait: timedelta) -> TooManyRequests:
    minutes = max(1, math.ceil(quota.window.total_seconds() / 60))
    retry = max(1, math.ceil(wait.total_seconds() / 60))
    return TooManyRequests(
        f"提交过于频繁：{quota.label_zh}在 {minutes} 分钟内最多提交 {quota.limit} 次，"
        f"请 {retry} 分钟后再试",
        f"too many submissions from {quota.label_en}: at most {quota.limit} in {minutes} "
        f"minutes; retry in {retry} minutes",
        details={
            "quota": quota.bucket,
            "limit": quota.limit,
            "window_minutes": minutes,
            "retry_after_seconds": max(1, math.ceil(wait.total_seconds())),
        },
    )
