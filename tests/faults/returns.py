"""Returns for the fault tests: trusts, a request, uploads over HTTP, and the outcome checks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select

from services.catalogue.models import AuditEvent, Job, Submission
from tests.faults.conftest import ADMIN

PERIOD = "2024-01"
BODY = "NHSE"


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 300, f"{response.request.url}: {response.text[:500]}"
    return response


def trust_token(http: httpx.Client, code: str = "RJ1") -> str:
    """Register one trust through ``http`` (a client of a `drb serve`) and issue it a token."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"code": code, "name": f"{code} trust", "kind": "trust", "region": "Y56"}
    _ok(http.post("/v1/organisations", json=body, headers=admin))
    token: str = _ok(http.post(f"/v1/organisations/{code}/tokens", headers=admin)).json()["token"]
    return token


def register(base: str, count: int) -> dict[str, str]:
    """``count`` trusts (RA0, RA1, ...) asked for A&E figures of PERIOD; code -> token."""
    tokens: dict[str, str] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        client.timeout = httpx.Timeout(30)
        _ok(
            client.post(
                "/v1/organisations",
                json={"code": BODY, "name": "NHS England", "kind": "oversight_body"},
            )
        )
        body_token = _ok(client.post(f"/v1/organisations/{BODY}/tokens")).json()["token"]
        for index in range(count):
            code = f"R{chr(ord('A') + index // 10)}{index % 10}"
            _ok(
                client.post(
                    "/v1/organisations",
                    json={"code": code, "name": f"Trust {code}", "kind": "trust", "region": "Y56"},
                )
            )
            tokens[code] = _ok(client.post(f"/v1/organisations/{code}/tokens")).json()["token"]
        _ok(
            client.post(
                "/v1/requests",
                headers={"Authorization": f"Bearer {body_token}"},
                json={
                    "title": "A&E activity, fault test",
                    "purpose": "Monthly A&E attendances, four-hour breaches and admissions.",
                    "legal_basis": "Health and Social Care Act 2012, section 259",
                    "items": ["ae_attendances", "ae_breaches", "ae_admissions"],
                    "organisations": {"kind": "trust"},
                    "period_start": PERIOD,
                    "period_end": PERIOD,
                    "due_days": 20,
                },
            )
        )
    return tokens


def return_csv(code: str) -> bytes:
    rows = ["period,org_code,department_type,attendances,breaches,admissions"]
    for kind, values in (("1", "9120,2104,2561"), ("2", "310,0,4"), ("other", "4012,37,12")):
        rows.append(f"{PERIOD}-01,{code},{kind},{values}")
    return ("\r\n".join(rows) + "\r\n").encode()


def submit(base: str, token: str, code: str) -> str:
    """Upload one trust's return; the submission's id (202: validated later)."""
    response = httpx.post(
        f"{base}/v1/submissions",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"fault-{code}"},
        data={"dataset": "ae_monthly", "period": PERIOD},
        files={"file": (f"{code}.csv", return_csv(code), "text/csv")},
        timeout=60,
    )
    assert response.status_code in (200, 202), response.text[:500]
    submission_id: str = response.json()["id"]
    return submission_id


@dataclass
class Outcome:
    """What the database and the store say about the submissions."""

    statuses: dict[str, str]
    revisions: dict[str, int | None]
    finished_events: Counter[str]
    attempts: dict[str, int]
    store_files: list[Path]


def outcome(database_url: str, data_dir: Path) -> Outcome:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            submissions = connection.execute(
                select(Submission.id, Submission.status, Submission.revision)
            ).all()
            events = connection.execute(
                select(AuditEvent.subject_id).where(
                    AuditEvent.action.in_(("submission.accepted", "submission.rejected"))
                )
            ).scalars()
            attempts = connection.execute(
                select(Job.subject_id, Job.attempts).where(Job.kind == "validate_submission")
            ).all()
            return Outcome(
                statuses={row.id: row.status for row in submissions},
                revisions={row.id: row.revision for row in submissions},
                finished_events=Counter(events),
                attempts={str(row.subject_id): row.attempts for row in attempts},
                store_files=sorted((data_dir / "store").glob("dataset=*/*/*/*.parquet")),
            )
    finally:
        engine.dispose()


def finished(database_url: str, data_dir: Path, ids: list[str]) -> bool:
    statuses = outcome(database_url, data_dir).statuses
    return all(statuses.get(i) in ("accepted", "rejected") for i in ids)


def assert_each_exactly_once(result: Outcome, ids: list[str], codes: list[str]) -> None:
    """Every submission accepted once: revision 1, one audit event, one store file a trust."""
    assert {result.statuses[i] for i in ids} == {"accepted"}, result.statuses
    assert {result.revisions[i] for i in ids} == {1}
    assert {i: result.finished_events[i] for i in ids} == dict.fromkeys(ids, 1)
    names = sorted(str(path.relative_to(path.parents[3])) for path in result.store_files)
    assert names == sorted(
        f"dataset=ae_monthly/period={PERIOD}/org={code}/rev=1.parquet" for code in codes
    ), names
