"""Jobs queued on commit, and the worker that runs them.

``enqueue`` writes a row to ``jobs`` in the caller's transaction: the job exists only if
the transaction commits (a transactional outbox), and a rolled-back request leaves nothing
behind. ``after_commit`` registers an in-process callback released only after a
successful commit (e.g. to wake the in-process worker).

The worker claims due jobs: on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so any number of
workers share the queue; on SQLite (one worker) with a compare-and-set on ``status``.
Each job runs in its own transaction; a failure is recorded and retried with backoff up to
``max_attempts``. Periodic jobs are declared with ``JobRegistry.every``.
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Integer, String, Text, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from zhengshu.kernel import clock
from zhengshu.kernel.db import Base, new_id, transaction

T = TypeVar("T")
log = logging.getLogger(__name__)

_AFTER_COMMIT = "zhengshu_after_commit"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # gave up after max_attempts


class Job(Base):
    """A unit of background work; ``name`` selects the handler, ``payload`` holds IDs."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    run_at: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


def enqueue(
    session: Session,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    max_attempts: int = 5,
) -> Job:
    """Queue a job in the caller's transaction; it becomes visible when that commits."""
    now = clock.now()
    job = Job(
        id=new_id(),
        name=name,
        payload=payload or {},
        status=JobStatus.QUEUED,
        run_at=run_at or now,
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
    )
    session.add(job)
    return job


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once this session's transaction has committed (never on rollback)."""
    if not session.in_transaction():
        # Without a transaction a rollback fires no event and could not drop the callback.
        session.begin()
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _release(session: Session) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, previous_transaction: Any) -> None:
    # after_soft_rollback fires even when the rollback needed no SQL (after_rollback does
    # not); a rolled-back savepoint leaves the outer transaction's callbacks in place.
    if not previous_transaction.nested:
        session.info.pop(_AFTER_COMMIT, None)


Handler = Callable[[Session, dict[str, Any]], None]


@dataclass
class Periodic:
    name: str
    every: timedelta
    handler: Callable[[Session], None] | None
    next_run: datetime | None = None
    # A task in two steps: ``read`` in a read-only transaction (long computations that
    # must not hold SQLite's write lock), then ``handler`` writes what it returned.
    read: Callable[[Session], Any] | None = None
    write: Callable[[Session, Any], None] | None = None
    # A task that opens its own transactions (one per item of a queue, say).
    own: Callable[[sessionmaker[Session]], Any] | None = None


@dataclass
class JobRegistry:
    """Handlers by job name, and periodic tasks the worker runs on a schedule."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)

    def register(self, name: str, handler: Handler) -> None:
        if name in self.handlers:
            raise ValueError(f"job {name!r} registered twice")
        self.handlers[name] = handler

    def every(self, name: str, interval: timedelta, handler: Callable[[Session], None]) -> None:
        self.periodic.append(Periodic(name=name, every=interval, handler=handler))

    def every_in_two_steps(
        self,
        name: str,
        interval: timedelta,
        read: Callable[[Session], T],
        write: Callable[[Session, T], None],
    ) -> None:
        """A periodic task whose heavy part only reads: ``read`` runs in a read-only
        transaction, ``write`` gets its result in a short writing one."""

        def handler(session: Session) -> None:  # both steps in one transaction (tests)
            write(session, read(session))

        self.periodic.append(
            Periodic(name=name, every=interval, handler=handler, read=read, write=write)
        )

    def every_with_own_transactions(
        self, name: str, interval: timedelta, run: Callable[[sessionmaker[Session]], Any]
    ) -> None:
        """A periodic task given the session factory, to commit item by item."""
        self.periodic.append(Periodic(name=name, every=interval, handler=None, own=run))


def _claim(session: Session, worker_id: str, limit: int) -> list[uuid.UUID]:
    now = clock.now()
    due = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED, Job.run_at <= now)
        .order_by(Job.run_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.execute(due.with_for_update(skip_locked=True)).scalars())
        if ids:
            session.execute(
                update(Job)
                .where(Job.id.in_(ids))
                .values(status=JobStatus.RUNNING, locked_by=worker_id)
            )
        return ids
    claimed = []
    for job_id in session.execute(due).scalars().all():
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, locked_by=worker_id)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(job_id)
    return claimed


def run_due_jobs(
    factory: sessionmaker[Session], registry: JobRegistry, *, worker_id: str, limit: int = 50
) -> int:
    """Claim and run the due jobs once; returns how many ran (succeeded or not)."""
    with transaction(factory) as session:
        ids = _claim(session, worker_id, limit)
    for job_id in ids:
        _run_one(factory, registry, job_id)
    return len(ids)


def _run_one(factory: sessionmaker[Session], registry: JobRegistry, job_id: uuid.UUID) -> None:
    error: str | None = None
    try:
        with transaction(factory) as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            handler = registry.handlers.get(job.name)
            if handler is None:
                raise LookupError(f"no handler for job {job.name!r}")
            handler(session, dict(job.payload))
            job.status = JobStatus.DONE
            job.attempts += 1
            job.finished_at = clock.now()
    except Exception:
        error = traceback.format_exc(limit=5)
        log.exception("job %s failed", job_id)
    if error is None:
        return
    with transaction(factory) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        job.attempts += 1
        job.last_error = error[-4000:]
        if job.attempts >= job.max_attempts:
            job.status = JobStatus.FAILED
            job.finished_at = clock.now()
        else:
            job.status = JobStatus.QUEUED
            job.run_at = clock.now() + timedelta(seconds=min(3600, 5 * 2**job.attempts))


def run_periodic(factory: sessionmaker[Session], registry: JobRegistry) -> int:
    """Run each periodic task whose time has come; returns how many ran."""
    ran = 0
    now = clock.now()
    for task in registry.periodic:
        if task.next_run is not None and task.next_run > now:
            continue
        task.next_run = now + task.every
        try:
            if task.own is not None:
                task.own(factory)
            elif task.read is not None and task.write is not None:
                with transaction(factory, write=False) as session:
                    found = task.read(session)
                with transaction(factory) as session:
                    task.write(session, found)
            elif task.handler is not None:
                with transaction(factory) as session:
                    task.handler(session)
            ran += 1
        except Exception:
            log.exception("periodic task %s failed", task.name)
    return ran


class Worker:
    """The loop behind ``zhengshu worker`` (and the in-process worker of ``zhengshu up``)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        registry: JobRegistry,
        *,
        worker_id: str | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.factory = factory
        self.registry = registry
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run_forever(self) -> None:
        log.info("worker %s started", self.worker_id)
        while not self._stop.is_set():
            try:
                run_periodic(self.factory, self.registry)
                ran = run_due_jobs(self.factory, self.registry, worker_id=self.worker_id)
            except Exception:
                log.exception("worker loop error")
                ran = 0
            if not ran:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
        log.info("worker %s stopped", self.worker_id)
