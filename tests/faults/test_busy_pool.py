"""Deadline-day polling: far more requests at once than database connections or threads.

Each request's session lives across several worker-thread calls and holds its pooled connection
in between. Without a bound, a burst deadlocks: every thread waits for a connection while every
connection waits for a thread, until the pool's 30 s timeout answers 503 (seen in
bench/deadline_day.py: a third of the polls took 30 s, then 503). The API now admits only as many
request-long sessions as leave the pool room for the rest (services/broker/dependencies
.SessionSlots); here a real `drb serve` on PostgreSQL answers a burst of 240 polls, all 200.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.api_calls import ae_csv
from tests.faults.conftest import DedicatedPostgres, DrbProcesses
from tests.faults.returns import trust_token

BURST = 240  # six times the API's 40 worker threads, twelve times its 20 connections


def test_a_burst_of_polls_is_answered_without_deadlock(
    dedicated_postgres: DedicatedPostgres, drb_processes: DrbProcesses, tmp_path: Path
) -> None:
    drb_processes.settings.update(
        database_url=dedicated_postgres.url,
        data_dir=str(tmp_path / "var"),
        rate_limit_per_minute="0",
        upload_rate_limit_per_minute="0",
    )
    served = drb_processes.serve()
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    with httpx.Client(base_url=served.base, timeout=60, limits=limits) as http:
        token = trust_token(http)
        trust = {"Authorization": f"Bearer {token}"}
        sent = http.post(
            "/v1/submissions",
            headers=trust,
            files={"file": ("return.csv", ae_csv(org_code="RJ1", period="2024-01"), "text/csv")},
            data={"dataset": "ae_monthly", "period": "2024-01"},
        )
        assert sent.status_code == 202, sent.text
        location = sent.headers["Location"]

        def poll(_: int) -> tuple[int, float]:
            started = time.monotonic()
            response = http.get(location, headers=trust)
            return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(BURST) as pool:
            answers = list(pool.map(poll, range(BURST)))
    statuses = sorted({status for status, _ in answers})
    slowest = max(seconds for _, seconds in answers)
    assert statuses == [200], f"statuses {statuses}; slowest {slowest:.1f} s"
    # Well inside the pool's 30 s timeout: nothing waited for a connection that never came.
    assert slowest < 15, f"slowest poll {slowest:.1f} s"
