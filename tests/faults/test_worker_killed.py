"""A worker killed -9 mid-validation: another takes its jobs over; a live slow one keeps them."""

from __future__ import annotations

import functools
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, select

from services.catalogue.jobs import MAX_DEATHS
from services.catalogue.models import Job
from services.catalogue.queue import QUEUE_NAME
from tests.faults.conftest import DedicatedPostgres, DedicatedRedis, DrbProcesses
from tests.faults.returns import (
    Outcome,
    assert_each_exactly_once,
    finished,
    outcome,
    register,
    submit,
)
from tests.processes import wait_until

pytestmark = pytest.mark.integration


def holds(database_url: str, pid: int) -> bool:
    """Whether the worker process ``pid`` holds a running validation."""
    return any(f":{pid}:" in holder for holder in holders(database_url))


def holders(database_url: str) -> list[str]:
    """The workers (host:pid:random) holding running validations."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                str(holder)
                for holder in connection.execute(
                    select(Job.claimed_by).where(
                        Job.kind == "validate_submission", Job.status == "running"
                    )
                ).scalars()
            ]
    finally:
        engine.dispose()


def finished_within_a_minute(
    database_url: str,
    data_dir: Path,
    ids: list[str],
    codes: list[str],
    *,
    worker: subprocess.Popen[bytes],
    log: Path,
) -> Outcome:
    """Wait (60 s at most, from a kill just before) for every submission to end exactly once."""
    killed = time.monotonic()
    wait_until(
        lambda: finished(database_url, data_dir, ids),
        timeout=60,
        what="the other worker to finish every validation within 60 s",
        log=log,
        process=worker,
    )
    assert time.monotonic() - killed < 60
    result = outcome(database_url, data_dir)
    assert_each_exactly_once(result, ids, codes)
    return result


def distributed(
    processes: DrbProcesses, postgres: DedicatedPostgres, redis: DedicatedRedis, data_dir: Path
) -> None:
    # A short lease and sweep keep the test quick; the defaults (30 s lease, 10 s sweep) take
    # a dead worker's job over within 40 s (README, "Work that is not finished in time").
    processes.settings.update(
        database_url=postgres.url,
        redis_url=redis.url,
        data_dir=str(data_dir),
        job_lease_seconds="3",
        job_heartbeat_seconds="0.5",
        sweep_interval_seconds="1",
    )


def test_a_killed_workers_validation_is_finished_by_another(
    dedicated_redis: DedicatedRedis,
    dedicated_postgres: DedicatedPostgres,
    drb_processes: DrbProcesses,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    distributed(drb_processes, dedicated_postgres, dedicated_redis, data_dir)
    api = drb_processes.serve()
    tokens = register(api.base, 3)
    first, first_log = drb_processes.worker(threads=1, slow_validation=8)
    second, second_log = drb_processes.worker(threads=1, slow_validation=8)
    ids = [submit(api.base, token, code) for code, token in tokens.items()]
    wait_until(
        lambda: any(f":{first.pid}:" in holder for holder in holders(dedicated_postgres.url)),
        timeout=30,
        what="the first worker to be validating",
        log=first_log,
    )
    drb_processes.kill(first)
    result = finished_within_a_minute(
        dedicated_postgres.url, data_dir, ids, list(tokens), worker=second, log=second_log
    )
    # The killed worker's job ran twice (killed, then taken over); none ran more.
    assert max(result.attempts.values()) == 2
    assert all(attempts in (1, 2) for attempts in result.attempts.values())


def test_a_long_validation_on_a_live_worker_is_not_sent_again(
    dedicated_redis: DedicatedRedis,
    dedicated_postgres: DedicatedPostgres,
    drb_processes: DrbProcesses,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    distributed(drb_processes, dedicated_postgres, dedicated_redis, data_dir)
    api = drb_processes.serve()
    tokens = register(api.base, 1)
    # A validation of 10 s, three times the lease: the heartbeat keeps it.
    _worker, log = drb_processes.worker(threads=2, slow_validation=10)
    ((code, token),) = tokens.items()
    ids = [submit(api.base, token, code)]
    wait_until(
        lambda: finished(dedicated_postgres.url, data_dir, ids),
        timeout=60,
        what="the slow validation to finish",
        log=log,
    )
    result = outcome(dedicated_postgres.url, data_dir)
    assert_each_exactly_once(result, ids, [code])
    assert list(result.attempts.values()) == [1]  # one attempt: never re-sent, never taken over
    assert "re-sent" not in log.read_text()


def fetched_by_workers(redis_client: redis.Redis) -> int:
    """Messages workers have taken off the validator queue and not yet acknowledged.

    dramatiq keeps them in one set per worker, ``dramatiq:__acks__.<worker id>.validator``:
    the running message and those prefetched behind it.
    """
    return sum(
        int(redis_client.scard(key))
        for key in redis_client.scan_iter(match=f"dramatiq:__acks__.*.{QUEUE_NAME}")
    )


def test_messages_a_killed_worker_had_prefetched_are_run_by_another(
    dedicated_redis: DedicatedRedis,
    dedicated_postgres: DedicatedPostgres,
    drb_processes: DrbProcesses,
    tmp_path: Path,
) -> None:
    """A job whose message sat prefetched in a killed worker is `sent`, never claimed: no
    lease covers it. dramatiq puts the dead worker's messages back on the queue (15 s without
    a heartbeat, REDIS_HEARTBEAT_TIMEOUT_MS), and the other worker runs them once."""
    data_dir = tmp_path / "var"
    distributed(drb_processes, dedicated_postgres, dedicated_redis, data_dir)
    api = drb_processes.serve()
    tokens = register(api.base, 3)
    # Every message is queued before any worker runs, so the first one takes two (one thread:
    # one running, one prefetched) and the queue keeps the third.
    ids = [submit(api.base, token, code) for code, token in tokens.items()]
    queue = dedicated_redis.client()
    wait_until(
        lambda: queue.hlen(f"dramatiq:{QUEUE_NAME}.msgs") == len(ids),
        timeout=30,
        what="every validation to be queued in Redis",
    )
    first, first_log = drb_processes.worker(threads=1, slow_validation=30)
    wait_until(
        lambda: (
            any(f":{first.pid}:" in holder for holder in holders(dedicated_postgres.url))
            and fetched_by_workers(queue) == 2
        ),
        timeout=30,
        what="the first worker to be validating one return with another prefetched",
        log=first_log,
    )
    assert len(_job_ids(dedicated_postgres.url, status="running")) == 1
    drb_processes.kill(first)
    second, second_log = drb_processes.worker(threads=2)
    result = finished_within_a_minute(
        dedicated_postgres.url, data_dir, ids, list(tokens), worker=second, log=second_log
    )
    # The running job was taken over (two attempts); the prefetched one and the one left on
    # the queue were never started by the killed worker, so each ran once.
    assert sorted(result.attempts.values()) == [1, 1, 2]
    # Every message is acknowledged in the end, the dead worker's included (the ack follows
    # the job's commit, and a message sent twice is dropped by the job's state).
    wait_until(
        lambda: fetched_by_workers(queue) == 0 and queue.hlen(f"dramatiq:{QUEUE_NAME}.msgs") == 0,
        timeout=30,
        what="every message to be acknowledged",
        log=second_log,
    )


def _job_ids(database_url: str, *, status: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                str(job_id)
                for job_id in connection.execute(
                    select(Job.id).where(Job.kind == "validate_submission", Job.status == status)
                ).scalars()
            ]
    finally:
        engine.dispose()


def test_a_return_whose_worker_dies_each_time_is_rejected_after_max_deaths(
    dedicated_redis: DedicatedRedis,
    dedicated_postgres: DedicatedPostgres,
    drb_processes: DrbProcesses,
    tmp_path: Path,
) -> None:
    """A poison file, as the broker sees one: each worker that validates it dies (killed -9 here,
    as an abort or the OOM killer would end it). Each death is recorded and counted; after
    MAX_DEATHS the return is rejected with one plain error, and no worker runs it again."""
    data_dir = tmp_path / "var"
    distributed(drb_processes, dedicated_postgres, dedicated_redis, data_dir)
    api = drb_processes.serve()
    ((code, token),) = register(api.base, 1).items()
    (submission_id,) = ids = [submit(api.base, token, code)]
    for death in range(1, MAX_DEATHS + 1):
        worker, log = drb_processes.worker(threads=1, slow_validation=60)
        wait_until(
            functools.partial(holds, dedicated_postgres.url, worker.pid),
            timeout=60,
            what=f"worker {death} to be validating",
            log=log,
        )
        drb_processes.kill(worker)
    # The next worker's sweep finds the last death, and gives the job up.
    last, log = drb_processes.worker(threads=1, slow_validation=60)
    wait_until(
        lambda: finished(dedicated_postgres.url, data_dir, ids),
        timeout=60,
        what="a decision",
        log=log,
    )
    result = outcome(dedicated_postgres.url, data_dir)
    assert result.statuses == {submission_id: "rejected"}
    assert result.attempts == {submission_id: MAX_DEATHS}
    assert result.store_files == []
    errors = httpx.get(
        f"{api.base}/v1/submissions/{submission_id}/errors",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert [(e["row"], e["check"]) for e in errors] == [(None, "internal")]
    assert errors[0]["message"].startswith(
        f"the file could not be validated: the process validating it stopped {MAX_DEATHS} times"
    )
    assert last.poll() is None
    assert holders(dedicated_postgres.url) == []
