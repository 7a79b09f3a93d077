"""PostgreSQL stopped and started again while a real `drb serve` receives uploads.

While the database does not answer, every call that needs it is a 503 problem with Retry-After
(the health check says 503 too); once it answers again, the same process serves again. A client
that sends each return until it gets a 2xx, always with the same Idempotency-Key, ends with one
submission per return, each accepted once: no duplicates, no half-recorded upload left on disk.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text

from services.catalogue.models import AuditEvent, Submission
from tests.api_calls import ae_csv
from tests.faults.conftest import DedicatedPostgres, DrbProcesses, wait_for
from tests.faults.returns import trust_token
from tests.processes import healthy

PERIODS = [f"2024-{month:02d}" for month in range(1, 13)]


def _post(http: httpx.Client, token: str, period: str) -> httpx.Response:
    return http.post(
        "/v1/submissions",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"return-{period}"},
        files={"file": ("return.csv", ae_csv(org_code="RJ1", period=period), "text/csv")},
        data={"dataset": "ae_monthly", "period": period},
    )


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["type"].endswith("/unavailable")


def test_uploads_survive_a_postgres_restart(
    dedicated_postgres: DedicatedPostgres, drb_processes: DrbProcesses, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    drb_processes.settings.update(
        database_url=dedicated_postgres.url,
        data_dir=str(data_dir),
        sweep_interval_seconds="0.5",
        job_timeout_seconds="5",
        rate_limit_per_minute="0",
        upload_rate_limit_per_minute="0",
    )
    served = drb_processes.serve()
    http = httpx.Client(base_url=served.base, timeout=30)
    token = trust_token(http)

    answers: dict[str, list[int]] = {period: [] for period in PERIODS}
    unavailable: list[httpx.Response] = []
    sent_some = threading.Event()
    failures: list[str] = []

    def client() -> None:
        """Each return until it is taken, with its Idempotency-Key, as a careful trust would."""
        with httpx.Client(base_url=served.base, timeout=30) as own:
            for n, period in enumerate(PERIODS):
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    try:
                        response = _post(own, token, period)
                    except httpx.TransportError:
                        time.sleep(0.2)
                        continue
                    answers[period].append(response.status_code)
                    if response.status_code in (200, 202):
                        break
                    if response.status_code != 503:
                        failures.append(f"{period}: {response.status_code} {response.text}")
                        return
                    unavailable.append(response)
                    # Retry-After says 5 s; sooner here, to keep the test short.
                    time.sleep(0.3)
                else:
                    failures.append(f"{period}: never taken")
                    return
                if n == 2:
                    sent_some.set()
                time.sleep(0.3)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert sent_some.wait(60), failures
        dedicated_postgres.stop()
        try:
            health = http.get("/v1/health")
            assert health.status_code == 503
            assert health.json()["database"] == "unavailable"
            _assert_unavailable(_post(http, token, "2023-01"))  # authenticated before the body
            _assert_unavailable(
                http.get("/v1/submissions", headers={"Authorization": f"Bearer {token}"})
            )
            wait_for(lambda: len(unavailable) >= 2, timeout=30, what="the client to meet 503s")
        finally:
            dedicated_postgres.start()
        wait_for(lambda: healthy(served.base), timeout=30, what="drb serve to recover")
        thread.join(120)
    finally:
        thread.join(120)
    assert not failures, failures
    assert served.process.poll() is None  # recovered without a restart
    for response in unavailable:
        _assert_unavailable(response)

    listed = http.get(
        "/v1/submissions", headers={"Authorization": f"Bearer {token}"}, params={"limit": 100}
    ).json()
    assert sorted(s["period"] for s in listed) == PERIODS  # one submission per return

    def all_accepted() -> bool:
        rows = http.get(
            "/v1/submissions", headers={"Authorization": f"Bearer {token}"}, params={"limit": 100}
        ).json()
        return all(row["status"] == "accepted" for row in rows)

    wait_for(all_accepted, timeout=60, what="every return to be accepted")
    for period in PERIODS:  # sent again: the same submission, nothing new
        again = _post(http, token, period)
        assert again.status_code == 200, again.text

    engine = create_engine(dedicated_postgres.url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.connect() as connection:
            submissions = connection.execute(
                select(Submission.id, Submission.revision, Submission.status)
            ).all()
            received = connection.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "submission.received")
            )
            accepted = connection.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "submission.accepted")
            )
    finally:
        engine.dispose()
    assert len(submissions) == len(PERIODS)
    assert {(revision, status) for _id, revision, status in submissions} == {(1, "accepted")}
    assert received == accepted == len(PERIODS)
    # No upload outlived a transaction that failed, none is left half-way in staging.
    ids = {row[0] for row in submissions}
    kept = {path.name for path in (data_dir / "uploads").iterdir() if path.is_file()}
    assert kept <= ids, kept - ids
    assert not list((data_dir / "uploads" / "incoming").iterdir())
