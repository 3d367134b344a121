"""Jobs: the transactional outbox, the worker's retries and backoff, after-commit callbacks
and periodic tasks. The worker opens its own transactions, so these tests run against
``fresh_database`` where commits are real."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import factory_for
from zhengshu.kernel.clock import FrozenClock, use_clock
from zhengshu.kernel.db import make_engine, transaction
from zhengshu.kernel.jobs import (
    Job,
    JobRegistry,
    JobStatus,
    after_commit,
    enqueue,
    run_due_jobs,
    run_periodic,
)
from zhengshu.kernel.settings import Settings

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(T0)
    previous = use_clock(frozen)
    yield frozen
    use_clock(previous)


@pytest.fixture
def fresh_engine(fresh_database: Settings) -> Iterator[Engine]:
    engine = make_engine(fresh_database)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(fresh_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the fresh database (shadows conftest's savepoint factory)."""
    return factory_for(fresh_engine)


class Recorder:
    """A handler that remembers its calls, and optionally fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def __call__(self, session: Session, payload: dict[str, Any]) -> None:
        self.calls.append(payload)
        if self.error is not None:
            raise self.error


def queue(factory: sessionmaker[Session], name: str, **kw: Any) -> Job:
    with transaction(factory) as session:
        return enqueue(session, name, **kw)


def job_of(factory: sessionmaker[Session], job: Job) -> Job:
    with factory() as session:
        stored = session.get(Job, job.id)
        assert stored is not None
        return stored


def job_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(Job)).scalar_one()


def run(factory: sessionmaker[Session], registry: JobRegistry, **kw: Any) -> int:
    return run_due_jobs(factory, registry, worker_id="w-test", **kw)


# --------------------------------------------------------------------------- the outbox


def test_enqueue_in_a_rolled_back_transaction_leaves_no_job(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    handler = Recorder()
    registry.register("test.echo", handler)

    def failing_request() -> None:
        with transaction(factory) as session:
            enqueue(session, "test.echo", {"k": 1})
            session.flush()
            raise RuntimeError("request failed")

    with pytest.raises(RuntimeError, match="request failed"):
        failing_request()
    assert job_count(factory) == 0
    assert run(factory, registry) == 0
    assert handler.calls == []


def test_enqueue_writes_a_queued_row(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    job = queue(factory, "test.echo", payload={"order": "GD1"}, max_attempts=7)
    stored = job_of(factory, job)
    assert stored.name == "test.echo"
    assert stored.payload == {"order": "GD1"}
    assert stored.status == JobStatus.QUEUED
    assert stored.run_at == T0
    assert stored.created_at == T0
    assert stored.attempts == 0
    assert stored.max_attempts == 7
    assert stored.last_error is None
    assert stored.locked_by is None
    assert stored.finished_at is None
    assert job_of(factory, queue(factory, "test.empty")).payload == {}


def test_committed_job_runs_once_and_is_done(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    handler = Recorder()
    registry.register("test.echo", handler)
    job = queue(factory, "test.echo", payload={"k": 1})
    clock.advance(timedelta(seconds=3))
    assert run(factory, registry) == 1
    assert handler.calls == [{"k": 1}]
    stored = job_of(factory, job)
    assert stored.status == JobStatus.DONE
    assert stored.attempts == 1
    assert stored.finished_at == T0 + timedelta(seconds=3)
    assert stored.locked_by == "w-test"
    assert stored.last_error is None
    assert run(factory, registry) == 0
    assert handler.calls == [{"k": 1}]


def test_handler_writes_commit_with_the_job(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    registry.register("test.chain", lambda session, payload: enqueue(session, "test.next"))
    queue(factory, "test.chain")
    assert run(factory, registry) == 1
    with factory() as session:
        names = sorted(session.execute(select(Job.name)).scalars())
    assert names == ["test.chain", "test.next"]


def test_a_failing_handlers_writes_roll_back(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    def handler(session: Session, payload: dict[str, Any]) -> None:
        enqueue(session, "test.next")
        session.flush()
        raise ValueError("half done")

    registry = JobRegistry()
    registry.register("test.half", handler)
    queue(factory, "test.half")
    assert run(factory, registry) == 1
    with factory() as session:
        assert list(session.execute(select(Job.name)).scalars()) == ["test.half"]


def test_failing_job_is_retried_with_backoff_then_failed(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    handler = Recorder(ValueError("boom 42"))
    registry.register("test.flaky", handler)
    job = queue(factory, "test.flaky", payload={"n": 1}, max_attempts=3)

    assert run(factory, registry) == 1
    stored = job_of(factory, job)
    assert stored.status == JobStatus.QUEUED
    assert stored.attempts == 1
    assert stored.run_at == T0 + timedelta(seconds=10)  # 5 * 2**1
    assert stored.last_error is not None
    assert "ValueError: boom 42" in stored.last_error
    assert stored.finished_at is None

    assert run(factory, registry) == 0  # not due yet
    clock.advance(timedelta(seconds=9))
    assert run(factory, registry) == 0
    clock.advance(timedelta(seconds=1))
    assert run(factory, registry) == 1
    stored = job_of(factory, job)
    assert (stored.status, stored.attempts) == (JobStatus.QUEUED, 2)
    assert stored.run_at == T0 + timedelta(seconds=10 + 20)  # 5 * 2**2

    clock.advance(timedelta(seconds=20))
    assert run(factory, registry) == 1
    stored = job_of(factory, job)
    assert stored.status == JobStatus.FAILED
    assert stored.attempts == 3
    assert stored.finished_at == T0 + timedelta(seconds=30)
    assert stored.last_error is not None
    assert "boom 42" in stored.last_error
    assert handler.calls == [{"n": 1}] * 3

    clock.advance(timedelta(days=1))
    assert run(factory, registry) == 0
    assert len(handler.calls) == 3


def test_backoff_is_capped_at_an_hour(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()
    registry.register("test.flaky", Recorder(ValueError("again")))
    job = queue(factory, "test.flaky", max_attempts=20)
    for _ in range(10):
        clock.advance(timedelta(hours=2))
        assert run(factory, registry) == 1
    stored = job_of(factory, job)
    assert stored.attempts == 10
    assert stored.run_at == clock.now() + timedelta(hours=1)


def test_job_waits_for_its_run_at(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()
    handler = Recorder()
    registry.register("test.later", handler)
    job = queue(factory, "test.later", run_at=T0 + timedelta(hours=1))
    assert run(factory, registry) == 0
    clock.advance(timedelta(minutes=59, seconds=59))
    assert run(factory, registry) == 0
    assert job_of(factory, job).status == JobStatus.QUEUED
    clock.advance(timedelta(seconds=1))
    assert run(factory, registry) == 1
    assert handler.calls == [{}]
    assert job_of(factory, job).status == JobStatus.DONE


def test_due_jobs_run_oldest_first_up_to_the_limit(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    handler = Recorder()
    registry.register("test.echo", handler)
    for minutes in (1, 3, 2):
        queue(factory, "test.echo", payload={"m": minutes}, run_at=T0 - timedelta(minutes=minutes))
    assert run(factory, registry, limit=2) == 2
    assert handler.calls == [{"m": 3}, {"m": 2}]
    assert run(factory, registry, limit=2) == 1
    assert handler.calls == [{"m": 3}, {"m": 2}, {"m": 1}]


def test_unknown_job_name_fails_with_no_handler(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    job = queue(factory, "nobody.home", max_attempts=2)
    assert run(factory, registry) == 1
    stored = job_of(factory, job)
    assert (stored.status, stored.attempts) == (JobStatus.QUEUED, 1)
    clock.advance(timedelta(seconds=10))
    assert run(factory, registry) == 1
    stored = job_of(factory, job)
    assert (stored.status, stored.attempts) == (JobStatus.FAILED, 2)
    assert stored.last_error is not None
    assert "no handler for job 'nobody.home'" in stored.last_error


def test_register_twice_is_refused() -> None:
    registry = JobRegistry()
    registry.register("test.echo", Recorder())
    with pytest.raises(ValueError, match=r"job 'test.echo' registered twice"):
        registry.register("test.echo", Recorder())


# --------------------------------------------------------------------------- after_commit


def test_after_commit_runs_only_after_commit(factory: sessionmaker[Session]) -> None:
    calls: list[str] = []
    with transaction(factory) as session:
        after_commit(session, lambda: calls.append("first"))
        after_commit(session, lambda: calls.append("second"))
        session.flush()
        assert calls == []
    assert calls == ["first", "second"]


def test_after_commit_never_runs_after_rollback(factory: sessionmaker[Session]) -> None:
    calls: list[str] = []

    def failing_request() -> None:
        with transaction(factory) as session:
            enqueue(session, "test.echo")
            after_commit(session, lambda: calls.append("woken"))
            session.flush()
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        failing_request()
    assert calls == []
    with transaction(factory) as session:
        enqueue(session, "test.other")
    assert calls == []


def test_after_commit_callbacks_belong_to_their_session(factory: sessionmaker[Session]) -> None:
    calls: list[str] = []
    with factory() as first, factory() as second:
        after_commit(first, lambda: calls.append("first"))
        second.execute(select(func.count()).select_from(Job))
        second.commit()
        assert calls == []
        first.execute(select(func.count()).select_from(Job))
        first.commit()
    assert calls == ["first"]


def test_a_failing_callback_does_not_stop_the_others(factory: sessionmaker[Session]) -> None:
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback broke")

    with transaction(factory) as session:
        enqueue(session, "test.echo")
        after_commit(session, broken)
        after_commit(session, lambda: calls.append("after"))
    assert calls == ["after"]
    assert job_count(factory) == 1


def test_after_commit_runs_once_per_commit(factory: sessionmaker[Session]) -> None:
    calls: list[str] = []
    with factory() as session:
        enqueue(session, "test.echo")
        after_commit(session, lambda: calls.append("once"))
        session.commit()
        enqueue(session, "test.echo")
        session.commit()
    assert calls == ["once"]


def test_after_commit_is_dropped_by_a_rollback_before_any_flush(
    factory: sessionmaker[Session],
) -> None:
    calls: list[str] = []
    with factory() as session:
        enqueue(session, "test.echo")
        after_commit(session, lambda: calls.append("woken"))
        session.rollback()
        session.commit()
    assert calls == []
    assert job_count(factory) == 0


def test_a_rolled_back_savepoint_keeps_the_outer_callbacks(
    factory: sessionmaker[Session],
) -> None:
    calls: list[str] = []
    with factory() as session:
        enqueue(session, "test.outer")
        after_commit(session, lambda: calls.append("outer"))
        savepoint = session.begin_nested()
        enqueue(session, "test.inner")
        savepoint.rollback()
        assert calls == []
        session.commit()
    assert calls == ["outer"]
    with factory() as session:
        assert list(session.execute(select(Job.name)).scalars()) == ["test.outer"]


def test_after_commit_is_dropped_by_a_rollback_before_any_sql(
    factory: sessionmaker[Session],
) -> None:
    calls: list[str] = []
    with factory() as session:
        after_commit(session, lambda: calls.append("woken"))
        session.rollback()
        session.commit()
    assert calls == []


# --------------------------------------------------------------------------- periodic


def test_periodic_task_runs_then_waits_for_its_interval(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    calls: list[datetime] = []

    def purge(session: Session) -> None:
        calls.append(clock.now())
        enqueue(session, "test.from_periodic")

    registry = JobRegistry()
    registry.every("test.purge", timedelta(minutes=10), purge)
    assert run_periodic(factory, registry) == 1
    assert calls == [T0]
    assert job_count(factory) == 1  # the task's transaction committed
    assert run_periodic(factory, registry) == 0
    clock.advance(timedelta(minutes=9, seconds=59))
    assert run_periodic(factory, registry) == 0
    clock.advance(timedelta(seconds=1))
    assert run_periodic(factory, registry) == 1
    assert calls == [T0, T0 + timedelta(minutes=10)]
    assert registry.periodic[0].next_run == T0 + timedelta(minutes=20)


def test_failing_periodic_task_waits_for_its_interval_too(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    calls: list[datetime] = []
    ran_other: list[datetime] = []

    def broken(session: Session) -> None:
        calls.append(clock.now())
        enqueue(session, "test.never")
        session.flush()
        raise RuntimeError("periodic broke")

    registry = JobRegistry()
    registry.every("test.broken", timedelta(minutes=5), broken)
    registry.every("test.fine", timedelta(minutes=5), lambda s: ran_other.append(clock.now()))
    assert run_periodic(factory, registry) == 1  # only the task that succeeded counts
    assert calls == [T0]
    assert ran_other == [T0]
    assert job_count(factory) == 0  # the broken task's writes rolled back
    clock.advance(timedelta(minutes=4))
    assert run_periodic(factory, registry) == 0
    assert calls == [T0]
    clock.advance(timedelta(minutes=1))
    assert run_periodic(factory, registry) == 1
    assert calls == [T0, T0 + timedelta(minutes=5)]


def test_a_two_step_periodic_task_reads_outside_the_write_transaction(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    """The long read runs in a read-only transaction (on SQLite: without the write lock);
    the write step gets its result in a transaction of its own that commits."""
    from zhengshu.kernel.db import WRITE_INTENT

    steps: list[tuple[str, bool]] = []

    def read(session: Session) -> int:
        steps.append(("read", session.info[WRITE_INTENT]))
        return 41

    def write(session: Session, found: int) -> None:
        steps.append(("write", session.info[WRITE_INTENT]))
        enqueue(session, "test.found", {"n": found + 1})

    registry = JobRegistry()
    registry.every_in_two_steps("test.two_steps", timedelta(hours=1), read, write)
    assert run_periodic(factory, registry) == 1
    assert steps == [("read", False), ("write", True)]
    assert job_count(factory) == 1
    # Called directly (a button, a test), both steps share the caller's transaction.
    with transaction(factory) as session:
        registry.periodic[0].handler(session)
    assert job_count(factory) == 2
