"""Locust users for bench/deadline_day.py: each is one trust sending its monthly return once.

Not run on its own: ``deadline_day.py`` writes the run's configuration (API addresses, the
trusts with their tokens and CSV returns) to a JSON file and starts

    locust -f bench/locustfile_deadline.py --headless -u N -r N ...

with ``DRB_DEADLINE_CONFIG`` naming that file and ``DRB_DEADLINE_RESULTS`` the file this writes
at the end: one record per trust (times to 202 and to ``accepted``, attempts, final status).

Each user takes the next trust, sends ``POST /v1/submissions`` (multipart, with an
Idempotency-Key, to one of the API processes in turn), retries a 429/5xx or a broken connection
after ``Retry-After`` (a real client would; every such answer is counted as an error), then polls
``GET /v1/submissions/{id}`` every ``poll_interval`` seconds until the submission is
``accepted`` or ``rejected``. The time to ``accepted`` is also fired as a locust request event
(type ``FLOW``) so that it appears in locust's own table. When every trust is done, the run quits.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import HttpUser, events, task
from locust.exception import StopUser

CONFIG: dict[str, Any] = json.loads(Path(os.environ["DRB_DEADLINE_CONFIG"]).read_text())
RESULTS = Path(os.environ["DRB_DEADLINE_RESULTS"])
TRUSTS: list[dict[str, str]] = CONFIG["trusts"]
HOSTS: list[str] = CONFIG["hosts"]
POLL_INTERVAL: float = CONFIG["poll_interval"]
MAX_ATTEMPTS = 20
NEXT_TRUST = itertools.count()
RECORDS: list[dict[str, Any]] = []


def _retry_after(response: Any) -> float:
    try:
        return max(0.1, float(response.headers.get("Retry-After", "1")))
    except (TypeError, ValueError):
        return 1.0


class Trust(HttpUser):
    """One trust on deadline day: one upload, then polling until validated."""

    host = HOSTS[0]
    wait_time = staticmethod(lambda: 0)

    @task
    def submit_return(self) -> None:
        index = next(NEXT_TRUST)
        if index >= len(TRUSTS):
            raise StopUser()
        trust = TRUSTS[index]
        base = HOSTS[index % len(HOSTS)]
        headers = {
            "Authorization": f"Bearer {trust['token']}",
            "Idempotency-Key": f"deadline-{trust['code']}-{CONFIG['period']}",
        }
        record: dict[str, Any] = {
            "org_code": trust["code"],
            "host": base,
            "attempts": 0,
            "errors": [],
            "status": None,
            "id": None,
        }
        RECORDS.append(record)
        started = time.time()
        record["started"] = started
        while record["attempts"] < MAX_ATTEMPTS:
            record["attempts"] += 1
            with self.client.post(
                f"{base}/v1/submissions",
                name="POST /v1/submissions",
                headers=headers,
                data={"dataset": "ae_monthly", "period": CONFIG["period"]},
                files={"file": (trust["filename"], trust["csv"].encode(), "text/csv")},
                catch_response=True,
            ) as response:
                if response.status_code in (200, 202):
                    response.success()
                    record["id"] = response.json()["id"]
                    record["to_202"] = time.time() - started
                    record["upload_status"] = response.status_code
                    break
                record["errors"].append(f"POST {response.status_code}")
                response.failure(f"{response.status_code}: {response.text[:200]}")
                pause = _retry_after(response) if response.status_code else 1.0
            time.sleep(pause)
        if record["id"] is None:
            self._finish(record, "never received")
            return
        url = f"{base}/v1/submissions/{record['id']}"
        while True:
            time.sleep(POLL_INTERVAL)
            with self.client.get(
                url, name="GET /v1/submissions/{id}", headers=headers, catch_response=True
            ) as response:
                if response.status_code != 200:
                    record["errors"].append(f"GET {response.status_code}")
                    response.failure(f"{response.status_code}: {response.text[:200]}")
                    time.sleep(_retry_after(response) if response.status_code else 1.0)
                    continue
                response.success()
                status = response.json()["status"]
            if status in ("accepted", "rejected"):
                elapsed = time.time() - started
                record["to_done"] = elapsed
                events.request.fire(
                    request_type="FLOW",
                    name=f"upload to {status}",
                    response_time=elapsed * 1000,
                    response_length=0,
                    exception=None,
                    context={},
                )
                self._finish(record, status)
                return

    def _finish(self, record: dict[str, Any], status: str) -> None:
        record["status"] = status
        record["finished"] = time.time()
        if sum(1 for r in RECORDS if r["status"] is not None) >= len(TRUSTS):
            RESULTS.write_text(json.dumps(RECORDS))
            gevent.spawn_later(0.1, self.environment.runner.quit)  # type: ignore[union-attr]
        raise StopUser()


@events.quitting.add_listener
def _write_results(environment: Any, **_: Any) -> None:
    """Also on a time-out (--run-time): what every trust got to."""
    RESULTS.write_text(json.dumps(RECORDS))
