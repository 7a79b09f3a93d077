"""Returns and requests sent through the HTTP API: the calls that tests of several areas share
(api, integration, faults), written once (they were copies in two test modules)."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import httpx
import polars as pl
from fastapi.testclient import TestClient

from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]
Http = TestClient | httpx.Client
# Periods whose due date has not passed: their extracts wait until every trust has sent.
YEAR = date.today().year + 1
MONTH = f"{YEAR}-01"


def bearer(token: str) -> Headers:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def issue_token(http: Http, code: str, issuer: Headers, **body: Any) -> dict[str, Any]:
    """POST /v1/organisations/{code}/tokens as ``issuer`` (a steward for the organisation's first
    token, its admin's; that admin for the others), with ``body``'s options: the 201's body."""
    issued = http.post(f"/v1/organisations/{code}/tokens", headers=issuer, json=body or None)
    assert issued.status_code == 201, issued.text
    answer: dict[str, Any] = issued.json()
    return answer


def register_organisation(
    http: Http, steward: Headers, code: str, kind: str, region: str | None = None
) -> Headers:
    """Register an organisation as ``steward`` and issue its first token (its admin's, which
    issues its other tokens): that token's headers."""
    body = {"code": code, "name": f"{code} test organisation", "kind": kind, "region": region}
    created = http.post("/v1/organisations", json=body, headers=steward)
    assert created.status_code == 201, created.text
    return bearer(issue_token(http, code, steward)["token"])


def ae_csv(org_code: str = "RJ1", period: str = "2025-01", attendances: int = 9120) -> bytes:
    """A valid A&E monthly return, its type 1 attendances set to ``attendances``."""
    frame = ae_monthly_sample(org_code=org_code, period=period).with_columns(
        pl.when(pl.col("department_type") == "1")
        .then(pl.lit(attendances))
        .otherwise(pl.col("attendances"))
        .alias("attendances")
    )
    return frame.write_csv().encode()


def send(
    client: TestClient,
    headers: Headers,
    content: bytes,
    *,
    filename: str = "return.csv",
    dataset: str = "ae_monthly",
    period: str = "2025-01",
    key: str | None = None,
) -> httpx.Response:
    """POST /v1/submissions, with an Idempotency-Key if given."""
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/v1/submissions",
        headers={**headers, **extra},
        files={"file": (filename, content, "application/octet-stream")},
        data={"dataset": dataset, "period": period},
    )


def settled(client: TestClient, headers: Headers, submission_id: str) -> dict[str, object]:
    """The submission once the worker has accepted or rejected it (within 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body: dict[str, object] = client.get(
            f"/v1/submissions/{submission_id}", headers=headers
        ).json()
        if body["status"] in ("accepted", "rejected"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"submission {submission_id} was not validated in time")


def send_accepted(
    client: TestClient, trust: Headers, content: bytes, dataset: str, period: str
) -> str:
    """Send a return that must be accepted; its id once it is."""
    response = send(client, trust, content, dataset=dataset, period=period)
    assert response.status_code == 202, response.text
    submission_id = str(response.json()["id"])
    outcome = settled(client, trust, submission_id)
    assert outcome["status"] == "accepted", outcome
    return submission_id


def send_ae(
    client: TestClient, trust: Headers, org_code: str, period: str, attendances: int = 9120
) -> str:
    """Send an A&E return that must be accepted; its id."""
    content = ae_csv(org_code, period, attendances)
    return send_accepted(client, trust, content, "ae_monthly", period)


def ask_for(client: TestClient, body: Headers, **overrides: object) -> str:
    """Register a request of A&E attendances and breaches (RJ1, R0A, MONTH); its id."""
    request: dict[str, object] = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_attendances", "ae_breaches"],
        "organisations": ["RJ1", "R0A"],
        "period_start": MONTH,
        "period_end": MONTH,
        "due_days": 20,
    }
    request.update(overrides)
    response = client.post("/v1/requests", json=request, headers=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
