"""The outbox: jobs are sent after commit, swept when lost, and run once however often sent."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from services.catalogue import jobs
from services.catalogue.db import session_scope
from services.catalogue.models import Job, utcnow
from services.catalogue.runtime import Runtime
from services.validator import worker


def wait_for_status(runtime: Runtime, job_id: str, status: str, timeout: float = 10.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        with runtime.factory() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status == status or time.monotonic() > deadline:
                assert job.status == status, f"job stayed {job.status}: {job.last_error}"
                return job
        time.sleep(0.05)


def enqueue_probe(runtime: Runtime) -> str:
    with session_scope(runtime.factory) as session:
        job = jobs.enqueue(session=session, kind="probe")
        ids = jobs.take_new_job_ids(session)
    assert ids == [job.id]
    return job.id


def test_a_committed_job_is_relayed_and_run(
    runtime: Runtime, running_worker: worker.WorkerHandle
) -> None:
    job_id = enqueue_probe(runtime)
    runtime.relay([job_id])
    job = wait_for_status(runtime, job_id, "done")
    assert job.attempts == 1
    assert job.finished_at is not None


def test_a_rolled_back_job_is_never_sent(runtime: Runtime) -> None:
    def failing_request() -> None:
        with session_scope(runtime.factory) as session:
            jobs.enqueue(session=session, kind="probe")
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError, match="the request failed"):
        failing_request()
    with runtime.factory() as session:
        assert session.query(Job).count() == 0


def test_a_job_never_sent_is_swept(runtime: Runtime, running_worker: worker.WorkerHandle) -> None:
    # A crash between commit and send: the job is pending and nobody relays it.
    job_id = enqueue_probe(runtime)
    with session_scope(runtime.factory) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(minutes=1))
        )
    wait_for_status(runtime, job_id, "done", timeout=10)


def test_a_lost_message_is_sent_again(
    runtime: Runtime, running_worker: worker.WorkerHandle
) -> None:
    # Marked sent long ago but never run: the message was lost (a Redis restart).
    job_id = enqueue_probe(runtime)
    with session_scope(runtime.factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="sent", sent_at=utcnow() - runtime.stale_after - timedelta(seconds=1))
        )
    wait_for_status(runtime, job_id, "done", timeout=10)


def test_running_a_finished_job_again_changes_nothing(runtime: Runtime) -> None:
    calls: list[str | None] = []
    handlers: dict[str, jobs.Handler] = {"probe": lambda context: calls.append(context.subject_id)}
    job_id = enqueue_probe(runtime)
    for _ in range(3):
        jobs.run(
            factory=runtime.factory,
            job_id=job_id,
            handlers=handlers,
            stale_after=runtime.stale_after,
            settings=runtime.settings,
        )
    assert len(calls) == 1
    assert wait_for_status(runtime, job_id, "done").attempts == 1


def test_a_failing_job_is_kept_for_retry(runtime: Runtime) -> None:
    def boom(_context: jobs.JobContext) -> None:
        raise ValueError("disk full")

    job_id = enqueue_probe(runtime)
    with pytest.raises(ValueError, match="disk full"):
        jobs.run(
            factory=runtime.factory,
            job_id=job_id,
            handlers={"probe": boom},
            stale_after=runtime.stale_after,
            settings=runtime.settings,
        )
    job = wait_for_status(runtime, job_id, "sent")
    assert job.last_error == "ValueError: disk full"
    # The next delivery runs it.
    assert (
        jobs.run(
            factory=runtime.factory,
            job_id=job_id,
            handlers={"probe": lambda _context: None},
            stale_after=runtime.stale_after,
            settings=runtime.settings,
        )
        == "done"
    )


def test_a_job_that_keeps_failing_is_given_up(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)
    with session_scope(runtime.factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="sent",
                attempts=jobs.MAX_ATTEMPTS,
                sent_at=utcnow() - runtime.stale_after - timedelta(seconds=1),
            )
        )
    sent: list[str] = []
    assert (
        jobs.sweep(factory=runtime.factory, send=sent.append, stale_after=runtime.stale_after) == 0
    )
    assert sent == []
    assert wait_for_status(runtime, job_id, "failed").finished_at is not None


def test_a_message_for_an_unknown_job_is_dropped(runtime: Runtime) -> None:
    assert (
        jobs.run(
            factory=runtime.factory,
            job_id="no-such-job",
            handlers={},
            stale_after=runtime.stale_after,
            settings=runtime.settings,
        )
        == "missing"
    )
