"""Redis restarted without its data while returns wait in it: all re-sent at once, run once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from services.catalogue.models import Job
from tests.faults.conftest import DedicatedPostgres, DedicatedRedis, DrbProcesses
from tests.faults.returns import assert_each_exactly_once, finished, outcome, register, submit
from tests.processes import wait_until

pytestmark = pytest.mark.integration
RETURNS = 6
QUEUE_KEY = "dramatiq:validator"  # dramatiq's Redis list of the validator's messages


def sent_jobs(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(
                select(func.count())
                .select_from(Job)
                .where(Job.kind == "validate_submission", Job.status == "sent")
            ).scalar_one()
            return int(count)
    finally:
        engine.dispose()


def test_messages_lost_with_redis_are_resent_within_a_minute(
    dedicated_redis: DedicatedRedis,
    dedicated_postgres: DedicatedPostgres,
    drb_processes: DrbProcesses,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    # The default sweep, lease and timeout: the claim must hold as shipped.
    drb_processes.settings.update(
        database_url=dedicated_postgres.url, redis_url=dedicated_redis.url, data_dir=str(data_dir)
    )
    api = drb_processes.serve()
    tokens = register(api.base, RETURNS)
    # No worker yet: the returns are received and their jobs wait in Redis.
    ids = [submit(api.base, token, code) for code, token in tokens.items()]
    wait_until(
        lambda: sent_jobs(dedicated_postgres.url) == RETURNS,
        timeout=30,
        what="every validation to be sent to Redis",
        log=api.log,
    )
    assert dedicated_redis.client().llen(QUEUE_KEY) == RETURNS
    old_run_id = dedicated_redis.run_id()

    dedicated_redis.restart_empty()
    answering = time.monotonic()
    assert dedicated_redis.run_id() != old_run_id
    assert dedicated_redis.client().llen(QUEUE_KEY) == 0  # the messages are gone

    worker, log = drb_processes.worker()
    wait_until(
        lambda: finished(dedicated_postgres.url, data_dir, ids),
        timeout=60 - (time.monotonic() - answering),
        what="every submission to be validated within 60 s of Redis answering again",
        log=log,
        process=worker,
    )
    result = outcome(dedicated_postgres.url, data_dir)
    assert_each_exactly_once(result, ids, list(tokens))
    # Each was run once: re-sent, never run twice.
    assert sorted(result.attempts.values()) == [1] * RETURNS
    # The API kept working across the restart: another return goes through.
    more = register_one_more(api.base)
    wait_until(
        lambda: finished(dedicated_postgres.url, data_dir, [more]),
        timeout=30,
        what="a return sent after the restart to be validated",
        log=log,
    )


def register_one_more(base: str) -> str:
    import httpx

    from tests.faults.conftest import ADMIN

    admin = {"Authorization": f"Bearer {ADMIN}"}
    httpx.post(
        f"{base}/v1/organisations",
        headers=admin,
        json={"code": "RZ9", "name": "Trust RZ9", "kind": "trust", "region": "Y56"},
        timeout=30,
    ).raise_for_status()
    token = httpx.post(f"{base}/v1/organisations/RZ9/tokens", headers=admin, timeout=30).json()[
        "token"
    ]
    return submit(base, token, "RZ9")
