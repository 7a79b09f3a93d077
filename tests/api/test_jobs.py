"""The outbox: jobs are sent after commit, swept when lost, and run once however often sent."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.catalogue import jobs, queue
from services.catalogue.db import (
    UnitOfWork,
    note_new_job,
    on_rollback,
    session_scope,
    take_new_job_ids,
)
from services.catalogue.models import Job, utcnow
from services.catalogue.repositories import jobs as job_repo
from services.catalogue.runtime import Runtime
from services.validator import worker
from tests.schema_samples import ae_monthly_sample


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
    """A committed probe job, not relayed (the unit of work handed it over once committed)."""
    handed: list[str] = []
    with session_scope(runtime.factory, relay=handed.extend) as session:
        job = jobs.enqueue(session=session, kind="probe")
        assert handed == []  # not before the commit
    assert handed == [job.id]
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
    handed: list[str] = []
    undone: list[str] = []

    def failing_request() -> None:
        with session_scope(runtime.factory, relay=handed.extend) as session:
            jobs.enqueue(session=session, kind="probe")
            on_rollback(session, lambda: undone.append("file removed"))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError, match="the request failed"):
        failing_request()
    with runtime.factory() as session:
        assert session.query(Job).count() == 0
    assert handed == []
    assert undone == ["file removed"]


def test_a_commit_that_fails_rolls_back_undoes_and_relays_nothing(runtime: Runtime) -> None:
    """The API's way (commit, then relay, each in its own thread call), with a failing commit:
    a second submission of a unique key."""
    first = UnitOfWork(runtime.factory)
    jobs.enqueue(session=first.session, kind="probe")
    (job_id,) = first.commit()
    second = UnitOfWork(runtime.factory)
    # The same id again, inserted only by the commit's flush: the commit fails.
    second.session.add(
        Job(id=job_id, kind="probe", status="pending", attempts=0, created_at=utcnow())
    )
    note_new_job(second.session, job_id)
    undone: list[str] = []
    on_rollback(second.session, lambda: undone.append("undone"))
    with pytest.raises(IntegrityError):
        second.commit()
    assert undone == ["undone"]
    assert take_new_job_ids(second.session) == []  # forgotten: nothing to relay
    with runtime.factory() as session:
        assert session.scalars(select(Job.id)).all() == [job_id]


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


# Leases and queue identity (issue 11): lost work is found in seconds, live work is left alone.


def job_row(runtime: Runtime, job_id: str) -> Job:
    with runtime.factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def set_job(runtime: Runtime, job_id: str, **values: object) -> None:
    with session_scope(runtime.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def claim(runtime: Runtime, job_id: str, worker_id: str, *, lease: float = 30) -> bool:
    now = utcnow()
    with session_scope(runtime.factory) as session:
        return job_repo.claim(
            session=session,
            job_id=job_id,
            now=now,
            worker_id=worker_id,
            lease_before=now - timedelta(seconds=lease),
            stale_before=now - runtime.stale_after,
        )


def test_a_claim_records_its_worker_and_only_one_worker_wins(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)
    assert claim(runtime, job_id, "host:1:a")
    assert not claim(runtime, job_id, "host:2:b")  # the lease is fresh: a duplicate message
    job = job_row(runtime, job_id)
    assert (job.status, job.claimed_by, job.attempts) == ("running", "host:1:a", 1)
    assert job.heartbeat_at is not None


def test_a_job_whose_heartbeat_stopped_is_taken_over(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)
    assert claim(runtime, job_id, "host:1:a")
    set_job(runtime, job_id, heartbeat_at=utcnow() - timedelta(seconds=31))
    sent: list[str] = []
    swept = jobs.sweep(
        factory=runtime.factory,
        send=sent.append,
        stale_after=runtime.stale_after,
        lease=timedelta(seconds=30),
    )
    assert (swept, sent) == (1, [job_id])
    assert claim(runtime, job_id, "host:2:b")
    job = job_row(runtime, job_id)
    assert (job.claimed_by, job.attempts) == ("host:2:b", 2)


def die_running(runtime: Runtime, job_id: str, worker_id: str) -> None:
    """A worker claims the job, then its process dies: its lease is left to expire."""
    assert claim(runtime, job_id, worker_id)
    set_job(runtime, job_id, heartbeat_at=utcnow() - timedelta(minutes=5))


def sweep_after_lease(runtime: Runtime, sent: list[str] | None = None) -> int:
    return jobs.sweep(
        factory=runtime.factory,
        send=(sent if sent is not None else []).append,
        stale_after=runtime.stale_after,
        lease=timedelta(seconds=30),
        on_give_up=runtime._give_up,
    )


def test_a_job_whose_worker_died_records_it_and_counts_the_attempt(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)
    die_running(runtime, job_id, "host:1:dead")
    sent: list[str] = []
    assert sweep_after_lease(runtime, sent) == 1
    job = job_row(runtime, job_id)
    assert (job.status, job.attempts, job.deaths, sent) == ("sent", 1, 1, [job_id])
    assert job.last_error == (
        "the worker (host:1:dead) stopped while running it (1 of 3 process deaths allowed)"
    )
    # A run that ends, however it ends, starts the count again.
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
    job = job_row(runtime, job_id)
    assert (job.last_error, job.deaths) == (None, 0)


def test_a_job_whose_process_dies_each_time_is_given_up_after_max_deaths(
    runtime: Runtime,
) -> None:
    job_id = enqueue_probe(runtime)
    for death in range(1, jobs.MAX_DEATHS + 1):
        die_running(runtime, job_id, f"host:{death}:dead")
        sweep_after_lease(runtime)
        job = job_row(runtime, job_id)
        assert (job.attempts, job.deaths) == (death, death)
        if death < jobs.MAX_DEATHS:
            assert job.status == "sent"
            assert f"({death} of {jobs.MAX_DEATHS} process deaths allowed)" in str(job.last_error)
    assert jobs.MAX_DEATHS < jobs.MAX_ATTEMPTS
    assert job.status == "failed"
    assert str(job.last_error).startswith(
        f"the worker (host:{jobs.MAX_DEATHS}:dead) stopped while running it"
    )
    assert str(job.last_error).endswith(f"gave up after {jobs.MAX_DEATHS} attempts")


def test_a_takeover_of_a_dead_workers_job_counts_the_death_too(runtime: Runtime) -> None:
    """The other way a dead worker's job comes back: its message is delivered again and another
    worker claims it directly, before any sweep."""
    ran: list[str] = []

    def run_as(job_id: str, worker_id: str) -> str:
        return jobs.run(
            factory=runtime.factory,
            job_id=job_id,
            handlers={"probe": lambda _context: ran.append(job_id)},
            stale_after=runtime.stale_after,
            settings=runtime.settings,
            leases=jobs.Leases(worker_id),
        )

    def died_before(job_id: str, times: int) -> None:
        die_running(runtime, job_id, "host:1:dead")
        set_job(runtime, job_id, deaths=times, last_error="the worker (host:0:dead) stopped")

    # Below the limit: taken over and run.
    below, at = enqueue_probe(runtime), enqueue_probe(runtime)
    died_before(below, jobs.MAX_DEATHS - 2)
    assert run_as(below, "host:2:b") == "done"
    # At the limit: the death is counted, the job is not run again, and the sweep gives it up.
    died_before(at, jobs.MAX_DEATHS - 1)
    assert run_as(at, "host:2:b") == "pending"
    assert ran == [below]
    set_job(runtime, at, created_at=utcnow() - timedelta(minutes=1))  # as any such job is
    assert sweep_after_lease(runtime) == 0
    job = job_row(runtime, at)
    assert (job.status, job.attempts, job.deaths) == ("failed", 2, jobs.MAX_DEATHS)
    assert str(job.last_error).startswith(
        "the worker (host:1:dead) stopped while running it"
        f" ({jobs.MAX_DEATHS} of {jobs.MAX_DEATHS} process deaths allowed)"
    )


def test_a_long_job_with_a_live_heartbeat_is_never_resent(runtime: Runtime) -> None:
    # Running for an hour (far past the 600 s timeout), heartbeat a second ago: left alone.
    job_id = enqueue_probe(runtime)
    assert claim(runtime, job_id, "host:1:a")
    set_job(
        runtime,
        job_id,
        sent_at=utcnow() - timedelta(hours=1),
        heartbeat_at=utcnow() - timedelta(seconds=1),
    )
    sent: list[str] = []
    assert (
        jobs.sweep(
            factory=runtime.factory,
            send=sent.append,
            stale_after=runtime.stale_after,
            lease=timedelta(seconds=30),
        )
        == 0
    )
    assert not claim(runtime, job_id, "host:2:b")


def test_the_heartbeat_keeps_a_slow_job_from_being_taken_over(runtime: Runtime) -> None:
    lease = 1.0
    settings = runtime.settings.model_copy(update={"job_lease_seconds": lease})
    started = threading.Event()
    calls: list[str] = []

    def slow(_context: jobs.JobContext) -> None:
        calls.append("run")
        started.set()
        time.sleep(3 * lease)

    job_id = enqueue_probe(runtime)
    stop = threading.Event()
    # The worker's heartbeat thread, renewing the process's leases (jobs.LEASES).
    beating = threading.Thread(target=worker._heartbeat_forever, args=(0.2, stop), daemon=True)
    outcome: list[str] = []
    running = threading.Thread(
        target=lambda: outcome.append(
            jobs.run(
                factory=runtime.factory,
                job_id=job_id,
                handlers={"probe": slow},
                stale_after=runtime.stale_after,
                settings=settings,
            )
        )
    )
    beating.start()
    running.start()
    try:
        assert started.wait(10)
        resent = 0
        while running.is_alive():
            resent += jobs.sweep(
                factory=runtime.factory,
                send=lambda _id: None,
                stale_after=runtime.stale_after,
                lease=timedelta(seconds=lease),
            )
            # A duplicate message meanwhile is refused: the job is held.
            assert jobs.run(
                factory=runtime.factory,
                job_id=job_id,
                handlers={"probe": slow},
                stale_after=runtime.stale_after,
                settings=settings,
                leases=jobs.Leases("host:2:b"),
            ) in ("running", "done")
            time.sleep(0.1)
    finally:
        running.join(30)
        stop.set()
    assert (resent, outcome, calls) == (0, ["done"], ["run"])
    job = job_row(runtime, job_id)
    assert (job.status, job.attempts) == ("done", 1)


def test_without_a_heartbeat_the_lease_expires(runtime: Runtime) -> None:
    # The same slow job with nobody renewing: the sweep finds it dead after the lease.
    job_id = enqueue_probe(runtime)
    assert claim(runtime, job_id, "host:1:a", lease=1)
    time.sleep(1.2)
    sent: list[str] = []
    jobs.sweep(
        factory=runtime.factory,
        send=sent.append,
        stale_after=runtime.stale_after,
        lease=timedelta(seconds=1),
    )
    assert sent == [job_id]


def test_renewing_reports_a_lease_taken_over(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)
    leases = jobs.Leases("host:1:a")
    assert claim(runtime, job_id, "host:1:a")
    leases.hold(job_id, runtime.factory)
    before = job_row(runtime, job_id).heartbeat_at
    time.sleep(0.05)
    assert leases.renew() == 1
    after = job_row(runtime, job_id).heartbeat_at
    assert before is not None
    assert after is not None
    assert after > before
    set_job(runtime, job_id, claimed_by="host:2:b")  # taken over after a stall
    assert leases.renew() == 0
    assert leases.held() == []


def test_a_worker_that_lost_its_job_does_not_overwrite_the_outcome(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)
    assert claim(runtime, job_id, "host:1:a")
    set_job(runtime, job_id, claimed_by="host:2:b")
    with session_scope(runtime.factory) as session:
        assert not job_repo.finish(
            session=session,
            job_id=job_id,
            worker_id="host:1:a",
            status="sent",
            error="boom",
            when=utcnow(),
        )
    assert job_row(runtime, job_id).status == "running"


def test_the_relay_records_the_queue_and_a_new_queue_gets_the_job_at_once(
    runtime: Runtime,
) -> None:
    job_id = enqueue_probe(runtime)
    sent: list[str] = []
    jobs.relay(
        factory=runtime.factory, job_ids=[job_id], send=sent.append, identify=lambda: "redis:one"
    )
    job = job_row(runtime, job_id)
    assert (job.status, job.sent_to, sent) == ("sent", "redis:one", [job_id])

    def sweep(queue_id: str) -> list[str]:
        resent: list[str] = []
        jobs.sweep(
            factory=runtime.factory,
            send=resent.append,
            stale_after=runtime.stale_after,
            identify=lambda: queue_id,
        )
        return resent

    assert sweep("redis:one") == []  # the same queue: the message is there
    assert sweep("redis:two") == [job_id]  # restarted empty: sent again, seconds after
    assert job_row(runtime, job_id).sent_to == "redis:two"
    assert sweep("redis:two") == []
    set_job(runtime, job_id, sent_to=None)  # sent before the upgrade: sent once more
    assert sweep("redis:two") == [job_id]


def test_a_job_a_handler_adds_is_recorded_against_the_queue_and_not_swept_again(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's handlers relay as the API does: a follow-up job (an extract rebuilt after a
    validation) names the queue it went to, so the next sweep leaves it alone. Sent with no
    queue recorded, every sweep until a worker claimed it would send it a second time."""
    added: list[str] = []

    def adds_a_job(context: jobs.JobContext) -> None:
        with context.session() as session:
            added.append(jobs.enqueue(session=session, kind="probe").id)

    parent = enqueue_probe(runtime)
    sent: list[str] = []
    runtime.send_job = sent.append  # type: ignore[method-assign]
    status = jobs.run(
        factory=runtime.factory,
        job_id=parent,
        handlers={"probe": adds_a_job},
        stale_after=runtime.stale_after,
        settings=runtime.settings,
        relay=runtime.relay,
    )
    assert status == "done"
    (child,) = added
    assert sent == [child]
    row = job_row(runtime, child)
    assert (row.status, row.sent_to) == ("sent", runtime.queue_identity())
    with caplog.at_level("INFO", logger="services.catalogue.jobs"):
        assert runtime.sweep() == 0
    assert sent == [child]
    assert "again" not in caplog.text


def test_the_sweep_logs_each_job_it_sends_again_and_why(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    lost, dead = enqueue_probe(runtime), enqueue_probe(runtime)
    jobs.relay(factory=runtime.factory, job_ids=[lost], send=lambda _id: None, identify=lambda: "a")
    assert claim(runtime, dead, "host:9:dead", lease=30)
    set_job(runtime, dead, heartbeat_at=utcnow() - timedelta(minutes=5))
    with caplog.at_level("INFO", logger="services.catalogue.jobs"):
        jobs.sweep(
            factory=runtime.factory,
            send=lambda _id: None,
            stale_after=runtime.stale_after,
            lease=timedelta(seconds=30),
            identify=lambda: "b",
        )
    lines = {record.job_id: record.getMessage() for record in caplog.records}  # type: ignore[attr-defined]
    assert "sent to a queue no longer answering (a)" in lines[lost]
    assert "its worker (host:9:dead) stopped renewing its lease" in lines[dead]


def test_the_embedded_queue_has_an_identity_per_broker(runtime: Runtime) -> None:
    from dramatiq.brokers.stub import StubBroker

    first = runtime.queue_identity()
    assert first.startswith("stub:")
    assert runtime.queue_identity() == first
    assert queue.identity(StubBroker()) != first  # the next process's queue


def test_a_queue_that_does_not_answer_leaves_jobs_pending(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)

    def down() -> str:
        raise RedisConnectionError("Connection refused")

    jobs.relay(factory=runtime.factory, job_ids=[job_id], send=lambda _id: None, identify=down)
    assert job_row(runtime, job_id).status == "pending"
    set_job(runtime, job_id, created_at=utcnow() - timedelta(minutes=1))
    with pytest.raises(RedisConnectionError):
        jobs.sweep(
            factory=runtime.factory,
            send=lambda _id: None,
            stale_after=runtime.stale_after,
            identify=down,
        )
    assert job_row(runtime, job_id).status == "pending"


def test_a_send_failing_mid_sweep_leaves_the_rest_pending(runtime: Runtime) -> None:
    ids = [enqueue_probe(runtime) for _ in range(3)]
    for index, job_id in enumerate(ids):
        set_job(runtime, job_id, created_at=utcnow() - timedelta(minutes=3 - index))
    sent: list[str] = []

    def flaky(job_id: str) -> None:
        if sent:
            raise RedisConnectionError("Connection refused")
        sent.append(job_id)

    assert jobs.sweep(factory=runtime.factory, send=flaky, stale_after=runtime.stale_after) == 1
    assert [job_row(runtime, job_id).status for job_id in ids] == ["sent", "pending", "pending"]
    # The next sweep sends them (not in 600 s, when 'sent' would have gone stale).
    again: list[str] = []
    assert (
        jobs.sweep(factory=runtime.factory, send=again.append, stale_after=runtime.stale_after) == 2
    )
    assert again == ids[1:]


def test_a_run_failed_by_its_surroundings_uses_up_no_attempt(runtime: Runtime) -> None:
    # A full disk or a database that does not answer is not the job's fault: a disk full for
    # hours must leave the job retried, never given up.
    def disk_full(_context: jobs.JobContext) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def bug(_context: jobs.JobContext) -> None:
        raise ValueError("a bug")

    job_id = enqueue_probe(runtime)
    for handler, error in ((disk_full, OSError), (disk_full, OSError), (bug, ValueError)):
        with pytest.raises(error):
            jobs.run(
                factory=runtime.factory,
                job_id=job_id,
                handlers={"probe": handler},
                stale_after=runtime.stale_after,
                settings=runtime.settings,
            )
    assert wait_for_status(runtime, job_id, "sent").attempts == 1  # only the bug counted


def test_a_validation_given_up_rejects_its_submission(
    client: TestClient, make_org: Callable[..., dict[str, str]], runtime: Runtime
) -> None:
    # No worker runs: the submission waits, its job is made to fail MAX_ATTEMPTS times.
    trust = make_org("RJ1", "trust", "Y56")
    auditor = make_org("NAO", "auditor")
    content = ae_monthly_sample(org_code="RJ1", period="2025-01").write_csv().encode()
    sent = client.post(
        "/v1/submissions",
        headers=trust,
        data={"dataset": "ae_monthly", "period": "2025-01"},
        files={"file": ("ae.csv", content, "text/csv")},
    )
    assert sent.status_code == 202, sent.text
    submission_id = sent.json()["id"]
    with session_scope(runtime.factory) as session:
        session.execute(
            update(Job)
            .where(Job.subject_id == submission_id)
            .values(
                status="sent",
                attempts=jobs.MAX_ATTEMPTS,
                last_error="RuntimeError: the worker crashed",
                sent_at=utcnow() - runtime.stale_after - timedelta(seconds=1),
            )
        )
    assert runtime.sweep() == 0
    shown = client.get(f"/v1/submissions/{submission_id}", headers=trust).json()
    assert shown["status"] == "rejected"
    errors = client.get(f"/v1/submissions/{submission_id}/errors", headers=trust).json()
    assert [(e["row"], e["check"]) for e in errors] == [(None, "internal")]
    assert f"tried {jobs.MAX_ATTEMPTS} times" in errors[0]["message"]
    events = client.get("/v1/audit-events", headers=auditor).json()
    assert [e["subject_id"] for e in events if e["action"] == "submission.rejected"] == [
        submission_id
    ]
    # Sweeping again decides nothing twice.
    assert runtime.sweep() == 0
    events = client.get("/v1/audit-events", headers=auditor).json()
    assert sum(e["action"] == "submission.rejected" for e in events) == 1


def test_a_validation_whose_process_keeps_dying_rejects_its_submission(
    client: TestClient, make_org: Callable[..., dict[str, str]], runtime: Runtime
) -> None:
    trust = make_org("RJ1", "trust", "Y56")
    content = ae_monthly_sample(org_code="RJ1", period="2025-01").write_csv().encode()
    sent = client.post(
        "/v1/submissions",
        headers=trust,
        data={"dataset": "ae_monthly", "period": "2025-01"},
        files={"file": ("ae.csv", content, "text/csv")},
    )
    assert sent.status_code == 202, sent.text
    submission_id = sent.json()["id"]
    with runtime.factory() as session:
        job_id = session.scalars(select(Job.id).where(Job.subject_id == submission_id)).one()
    for death in range(jobs.MAX_DEATHS):
        die_running(runtime, job_id, f"host:{death}:dead")
        sweep_after_lease(runtime)
    shown = client.get(f"/v1/submissions/{submission_id}", headers=trust).json()
    assert (shown["status"], shown["rows"], shown["error_count"]) == ("rejected", None, 1)
    errors = client.get(f"/v1/submissions/{submission_id}/errors", headers=trust).json()
    assert [(e["row"], e["check"]) for e in errors] == [(None, "internal")]
    assert errors[0]["message"].startswith(
        f"the file could not be validated: the process validating it stopped {jobs.MAX_DEATHS}"
        " times while reading it"
    )


# ---------------------------------------------------------------------------
# The background relayer of `drb serve`
# ---------------------------------------------------------------------------


def test_the_relayer_sends_in_the_background_and_marks_a_batch_sent(runtime: Runtime) -> None:
    sent: list[str] = []
    release = threading.Event()

    def slow_send(job_id: str) -> None:
        release.wait(10)  # the queue is slow: submit must not wait for it
        sent.append(job_id)

    relayer = jobs.Relayer(factory=runtime.factory, send=slow_send, identify=lambda: "redis:one")
    try:
        ids = [enqueue_probe(runtime) for _ in range(5)]
        started = time.monotonic()
        relayer.submit(ids)
        assert time.monotonic() - started < 0.5
        assert {job_row(runtime, job_id).status for job_id in ids} == {"pending"}
        release.set()
        for job_id in ids:
            job = wait_for_status(runtime, job_id, "sent")
            assert job.sent_to == "redis:one"
        assert sorted(sent) == sorted(ids)
    finally:
        release.set()
        relayer.close()


def test_closing_the_relayer_sends_what_waits(runtime: Runtime) -> None:
    sent: list[str] = []
    relayer = jobs.Relayer(factory=runtime.factory, send=sent.append, identify=None)
    ids = [enqueue_probe(runtime) for _ in range(3)]
    relayer.submit(ids)
    relayer.close()
    assert sorted(sent) == sorted(ids)
    assert {job_row(runtime, job_id).status for job_id in ids} == {"sent"}


def test_a_relayer_whose_queue_fails_leaves_jobs_pending_and_keeps_going(
    runtime: Runtime,
) -> None:
    failing = True
    sent: list[str] = []

    def send(job_id: str) -> None:
        if failing:
            raise RedisConnectionError("Redis is restarting")
        sent.append(job_id)

    relayer = jobs.Relayer(factory=runtime.factory, send=send, identify=None)
    try:
        lost = enqueue_probe(runtime)
        relayer.submit([lost])
        time.sleep(0.3)
        assert job_row(runtime, lost).status == "pending"  # left for the sweep
        failing = False
        later = enqueue_probe(runtime)
        relayer.submit([later])
        wait_for_status(runtime, later, "sent")  # the thread survived the failure
        assert sent == [later]
    finally:
        relayer.close()


def test_a_job_the_worker_ran_first_is_not_marked_sent(runtime: Runtime) -> None:
    job_id = enqueue_probe(runtime)

    def send(job_id: str) -> None:
        # The worker took the message and finished before the relay marked it.
        with session_scope(runtime.factory) as session:
            session.execute(update(Job).where(Job.id == job_id).values(status="done"))

    jobs.relay(factory=runtime.factory, job_ids=[job_id], send=send)
    assert job_row(runtime, job_id).status == "done"


def test_drb_serve_relays_in_the_background(runtime: Runtime) -> None:
    runtime.start_relayer()
    assert runtime.relayer is not None
    job_id = enqueue_probe(runtime)
    runtime.relay([job_id])
    wait_for_status(runtime, job_id, "sent")
    runtime.close()
    assert runtime.relayer is None
