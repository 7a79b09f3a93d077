"""A job goes through Redis to a real `drb worker` process, and lost work is swept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import update

from services.catalogue import jobs
from services.catalogue.db import session_scope
from services.catalogue.models import Job, utcnow
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
from tests.databases import migrate_database
from tests.processes import drb_env, start_drb, stop, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def distributed(fresh_postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime of the distributed mode: PostgreSQL and a Redis queue, no in-process worker."""
    Redis.from_url(redis_url).flushdb()
    migrate_database(fresh_postgres_url)
    runtime = boot(
        Settings(data_dir=tmp_path / "var", database_url=fresh_postgres_url, redis_url=redis_url)
    )
    try:
        yield runtime
    finally:
        runtime.close()


def job_status(runtime: Runtime, job_id: str) -> str:
    with runtime.factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status


def test_a_job_runs_in_a_real_worker_process(distributed: Runtime, tmp_path: Path) -> None:
    settings = distributed.settings
    assert settings.redis_url
    assert settings.database_url
    log = tmp_path / "worker.log"
    worker = start_drb(
        "worker",
        "--threads",
        "2",
        env=drb_env(
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            data_dir=str(settings.data_dir),
            sweep_interval_seconds="0.5",
        ),
        log=log,
    )
    try:
        # Sent through the outbox relay to Redis; only the worker process consumes it.
        with session_scope(distributed.factory) as session:
            sent = jobs.enqueue(session=session, kind="probe").id
        distributed.relay([sent])
        assert job_status(distributed, sent) == "sent"
        wait_until(
            lambda: job_status(distributed, sent) == "done",
            timeout=30,
            what="the worker to run the job",
            log=log,
        )

        # Committed but never sent (a crash before the relay): the worker's sweep sends it.
        with session_scope(distributed.factory) as session:
            lost = jobs.enqueue(session=session, kind="probe").id
            session.execute(
                update(Job).where(Job.id == lost).values(created_at=utcnow() - timedelta(minutes=1))
            )
        wait_until(
            lambda: job_status(distributed, lost) == "done",
            timeout=30,
            what="the sweep to re-send the lost job",
            log=log,
        )
    finally:
        code = stop(worker)
    assert code == 0, log.read_text()
    assert "validator worker running" in log.read_text()


def test_worker_exits_when_redis_is_unreachable(distributed: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    settings = distributed.settings
    assert settings.database_url
    worker = start_drb(
        "worker",
        env=drb_env(database_url=settings.database_url, redis_url="redis://127.0.0.1:9/0"),
        log=log,
    )
    deadline = time.monotonic() + 30
    while worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stop(worker) == 1
    assert "DRB_REDIS_URL" in log.read_text()
