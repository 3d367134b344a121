"""The job registry: every bounded context's handlers and periodic tasks, in one place."""

from __future__ import annotations

from datetime import timedelta

from zhengshu.kernel.jobs import JobRegistry
from zhengshu.org.auth import purge_expired


def build_registry() -> JobRegistry:
    registry = JobRegistry()
    registry.every("org.purge_expired_logins", timedelta(minutes=10), purge_expired)
    return registry
