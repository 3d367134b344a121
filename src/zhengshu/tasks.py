"""The job registry: every bounded context's handlers and periodic tasks, in one place."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.kernel import idempotency
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar_store import load_calendar
from zhengshu.kernel.jobs import JobRegistry
from zhengshu.kernel.settings import Settings, parse_work_periods
from zhengshu.modules.hotline import events, notify
from zhengshu.modules.hotline import importer as hotline_importer
from zhengshu.modules.hotline.dispatch import training as dispatch_training
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.auth import purge_expired


def build_registry(settings: Settings) -> JobRegistry:
    """Handlers and periodic tasks of every bounded context."""
    registry = JobRegistry()
    registry.every("org.purge_expired_logins", timedelta(minutes=10), purge_expired)
    periods = parse_work_periods(settings.work_periods)

    def sweep_clocks(session: Session) -> None:
        engine.sweep(
            session, system_principal("时限巡检"), calendar=load_calendar(session, periods)
        )

    registry.every("casework.sweep", timedelta(minutes=1), sweep_clocks)
    registry.every("kernel.idempotency.purge", timedelta(hours=1), idempotency.purge_expired)
    registry.register(
        events.JOB, events.delivery_job(HotlineConfig.from_settings(settings).workflow)
    )
    registry.register(notify.JOB, notify.send_job)
    registry.register(hotline_importer.JOB_NAME, hotline_importer.job_handler(settings))
    registry.register(dispatch_training.JOB, dispatch_training.job_handler)
    # Weekly: returns and re-dispatches of the week are learnt; promoted only if better.
    registry.every("hotline.dispatch.retrain", timedelta(days=7), dispatch_training.scheduled)
    return registry
