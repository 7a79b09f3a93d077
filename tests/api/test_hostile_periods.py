"""Periods are ASCII: a year in other digits is refused at the door, never left `validating`.

Python's ``\\d`` (and pydantic's regex ``\\d``) match every Unicode digit, and ``int()`` reads them:
``٢٠١٨-04`` (Arabic-Indic digits) was taken as April 2018, the submission recorded with that
text, and the dataset's own check (ASCII) then failed inside the validation job at every retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalogue import periods
from services.catalogue.models import Job
from services.catalogue.runtime import Runtime
from services.validator import submissions as validation_job
from services.validator import worker
from tests.api_calls import ae_csv, send, settled

Headers = dict[str, str]

ARABIC_INDIC = "\u0662\u0660\u0661\u0668"  # 2018
FULLWIDTH = "\uff12\uff10\uff11\uff18"  # 2018
DEVANAGARI = "\u0968\u0966\u0967\u096e"  # 2018
NOT_ASCII = [
    f"{ARABIC_INDIC}-04",
    f"{FULLWIDTH}-04",
    f"{DEVANAGARI}-04",
    f"{ARABIC_INDIC}-\u0660\u0664",  # the month too
    "2018-\uff10\uff14",  # a fullwidth month
]


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "CQC": make_org("CQC", "oversight_body"),
        "NAO": make_org("NAO", "auditor"),
    }


def refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f.endswith(field) for f in fields), (field, fields)


@pytest.mark.parametrize("text", [*NOT_ASCII, "2018-04\n", "2018\n", "2018-Q1\n", "\u0662018"])
def test_periods_are_ascii_and_whole(text: str) -> None:
    with pytest.raises(periods.PeriodError):
        periods.parse_month(text)
    if not text.endswith("\n"):  # parse() strips the space around a period
        with pytest.raises(periods.PeriodError):
            periods.parse(text)
    assert periods.parse_month("2018-04") == periods.month_index(2018, 4)


def test_a_submission_for_a_period_in_other_digits_is_422(
    client: TestClient, orgs: dict[str, Headers], runtime: Runtime
) -> None:
    """Refused at once (it used to be 202, then `validating` for ever)."""
    for period in NOT_ASCII:
        response = send(client, orgs["RJ1"], ae_csv(period="2018-04"), period=period)
        refused(response, "period")  # type: ignore[arg-type]
    with runtime.factory() as session:
        assert session.scalars(select(Job).where(Job.kind == "validate_submission")).all() == []


def test_every_period_parameter_refuses_other_digits(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    bad = f"{ARABIC_INDIC}-04"
    trust, body, auditor = orgs["RJ1"], orgs["CQC"], orgs["NAO"]
    refused(client.get("/v1/asks", params={"period": bad}, headers=trust), "period")
    refused(client.get("/v1/submissions", params={"period": bad}, headers=trust), "period")
    for path in ("/v1/reports/burden", "/v1/reports/burden/ledger", "/v1/reports/completeness"):
        for name in ("month_from", "month_to"):
            refused(client.get(path, params={name: bad}, headers=auditor), name)
    chart = "/v1/indicators/ae_attendances/spc"
    for name, others in (("period_start", "period_end"), ("period_end", "period_start")):
        params = {"org_code": "RJ1", name: bad, others: "2018-06"}
        refused(client.get(chart, params=params, headers=trust), name)
    points = [{"period": f"2018-{n:02d}", "value": n} for n in range(1, 13)]
    refused(
        client.post(
            "/v1/spc", json={"points": [*points, {"period": bad, "value": 1}]}, headers=trust
        ),
        "period",
    )
    refused(client.post("/v1/spc", json={"points": points, "rebase": [bad]}, headers=trust), "0]")
    request = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
        "period_start": "2018-01",
        "period_end": "2018-06",
    }
    for name in ("period_start", "period_end"):
        refused(client.post("/v1/requests", json={**request, name: bad}, headers=body), name)
        refused(
            client.post("/v1/requests", json={**request, name: f"{FULLWIDTH}-Q1"}, headers=body),
            name,
        )
    page = client.get("/reports/burden", params={"month_from": bad}, headers=auditor)
    assert page.status_code == 422


def test_an_unexpected_error_in_validation_rejects_the_submission(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    running_worker: worker.WorkerHandle,
) -> None:
    """Whatever goes wrong inside validation, the submission ends rejected, with plain words."""

    def broken(**_kwargs: object) -> object:
        raise ValueError("period '\u0662\u0660\u0661\u0668-04' is not YYYY-MM: row value 987654")

    monkeypatch.setattr(validation_job, "validate_file", broken)
    sent = send(client, orgs["RJ1"], ae_csv(period="2018-04"), period="2018-04").json()  # type: ignore[attr-defined]
    done = settled(client, orgs["RJ1"], sent["id"])
    assert (done["status"], done["rows"], done["error_count"]) == ("rejected", None, 1)
    errors = client.get(f"/v1/submissions/{sent['id']}/errors", headers=orgs["RJ1"]).json()
    assert errors == [
        {
            "row": None,
            "column": None,
            "check": "internal",
            "value": None,
            "message": validation_job.FAILED_MESSAGE,
        }
    ]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with runtime.factory() as session:
            job = session.scalars(select(Job).where(Job.subject_id == sent["id"])).one()
            if job.status == "done":
                break
        time.sleep(0.05)
    assert (job.status, job.attempts) == ("done", 1)
    asks = client.get("/v1/asks", headers=orgs["RJ1"]).json()
    assert all(ask["status"] != "submitted" for ask in asks)


@pytest.mark.parametrize("text", ["0000-01", "1899-12", "3000-01", "9999-12", "0000", "9999-Q4"])
def test_years_out_of_range_are_refused(text: str) -> None:
    with pytest.raises(periods.PeriodError, match="the year must be 1900 to 2999"):
        periods.parse(text)


def test_a_year_without_dates_is_422_not_500(client: TestClient, orgs: dict[str, Headers]) -> None:
    """Year 0 has no last day, and 9999-12 no due date after it: both were 500s."""
    request = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
    }
    for start, end in (("0000-01", "0000-03"), ("9999-10", "9999-12")):
        response = client.post(
            "/v1/requests",
            json={**request, "period_start": start, "period_end": end},
            headers=orgs["CQC"],
        )
        refused(response, "period_start")
    refused(send(client, orgs["RJ1"], ae_csv(period="0000-01"), period="0000-01"), "period")  # type: ignore[arg-type]
