"""The job registry: every bounded context's handlers and periodic tasks, in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from zhengshu import __version__
from zhengshu.casework import engine
from zhengshu.kernel import idempotency
from zhengshu.kernel.authz import system_principal
from zhengshu.kernel.calendar_store import load_calendar
from zhengshu.kernel.jobs import JobRegistry
from zhengshu.kernel.settings import Settings, parse_work_periods
from zhengshu.modules.hotline import events, intake, notify
from zhengshu.modules.hotline import importer as hotline_importer
from zhengshu.modules.hotline.dispatch import training as dispatch_training
from zhengshu.modules.hotline.insight import alert_scan, alerts
from zhengshu.modules.hotline.insight import issues as hot_issues
from zhengshu.modules.hotline.reports import facts as report_facts
from zhengshu.modules.hotline.reports import kpi
from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.auth import purge_expired


def build_registry(settings: Settings) -> JobRegistry:
    """Handlers and periodic tasks of every bounded context."""
    registry = JobRegistry()
    kpi.use_city_file(settings.data_dir / "kpis.yaml")  # the facts read its satisfied levels
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
    # Requests accepted on the fast lane (Prefer: respond-async), registered right behind.
    hotline_config = HotlineConfig.from_settings(settings)
    registry.every_with_own_transactions(
        "hotline.intake.drain",
        timedelta(seconds=1),
        lambda factory: intake.drain(factory, hotline_config),
    )
    registry.every("hotline.intake.purge", timedelta(hours=1), intake.purge_finished)
    registry.register(hotline_importer.JOB_NAME, hotline_importer.job_handler(settings))
    registry.register(dispatch_training.JOB, dispatch_training.job_handler)
    # Weekly: returns and re-dispatches of the week are learnt; promoted only if better.
    registry.every("hotline.dispatch.retrain", timedelta(days=7), dispatch_training.scheduled)
    # KPI facts: orders changed since the last run, and the rollup days they touch.
    registry.every("hotline.reports.facts", timedelta(minutes=1), report_facts.refresh_job)
    # Early warning: spikes per category x town every 5 minutes; warnings sent on to the
    # police / cyberspace office go out as signed webhooks, like order events.
    registry.every("hotline.alerts.spikes", timedelta(minutes=5), alert_scan.scheduled)
    registry.register(alerts.FORWARD_JOB, alerts.forward_job(_post_alert))
    # Hourly: hot issues of the last 30 days (hand moves are kept; see insight/issues.py).
    # The clustering only reads; the worker runs it outside the write transaction.
    registry.every_in_two_steps(
        "hotline.hot_issues.rescan",
        timedelta(hours=1),
        hot_issues.scheduled_read,
        hot_issues.scheduled_write,
    )
    return registry


def _post_alert(url: str, secret: str, body: dict[str, Any], delivery: str) -> None:
    """A forwarded warning, signed and posted as every webhook is (``events``)."""
    raw = events.encode(body)
    events.post(
        url,
        raw,
        {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"zhengshu-webhook/{__version__}",
            events.EVENT_HEADER: alerts.FORWARD_EVENT,
            events.DELIVERY_HEADER: delivery,
            events.SIGNATURE_HEADER: events.sign(secret, raw),
        },
    )
