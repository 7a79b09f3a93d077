"""The burden reduction report, its ledger, completeness and the audit log, for auditors."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

import schemas
from services.catalogue.runtime import Runtime
from services.validator import worker
from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]
AE = schemas.DATASETS["ae_monthly"].burden


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "R0A": make_org("R0A", "trust", "Y62"),
        "RRK": make_org("RRK", "trust", "Y60"),
        "CQC": make_org("CQC", "oversight_body"),
        "NHSE": make_org("NHSE", "oversight_body"),
        "NAO": make_org("NAO", "auditor"),
    }


@pytest.fixture
def two_requests(client: TestClient, orgs: dict[str, Headers]) -> list[dict[str, object]]:
    base = {"title": "t", "purpose": "p", "legal_basis": "l", "due_days": 20}
    first = client.post(
        "/v1/requests",
        headers=orgs["CQC"],
        json={
            **base,
            "items": ["ae_attendances", "ae_breaches"],
            "organisations": ["RJ1", "R0A"],
            "period_start": "2025-01",
            "period_end": "2025-06",
        },
    ).json()
    second = client.post(
        "/v1/requests",
        headers=orgs["NHSE"],
        json={
            **base,
            "items": ["ae_attendances", "ae_admissions"],
            "organisations": ["RJ1", "R0A", "RRK"],
            "period_start": "2025-04",
            "period_end": "2025-09",
        },
    ).json()
    return [first, second]


def test_totals_add_up_the_requests(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    two_requests: list[dict[str, object]],
) -> None:
    report = client.get("/v1/reports/burden", headers=orgs["NAO"])
    assert report.status_code == 200, report.text
    body = report.json()
    totals = body["totals"]
    burdens = [r["burden"] for r in two_requests]
    assert totals["returns_requested"] == 12 + 18
    assert totals["returns_imposed"] == 12 + 12
    assert totals["returns_avoided"] == 6
    assert totals["hours_requested"] == pytest.approx(
        sum(b["hours_requested"] for b in burdens), abs=0.02
    )  # type: ignore[index]
    assert totals["hours_imposed"] == pytest.approx(
        sum(b["hours_imposed"] for b in burdens), abs=0.02
    )  # type: ignore[index]
    rate = runtime.settings.hourly_rate_gbp
    assert totals["cost_avoided_gbp"] == pytest.approx(totals["hours_avoided"] * rate, abs=0.01)
    by_body = {row["body"]: row for row in body["by_body"]}
    assert by_body["CQC"]["returns_requested"] == 12
    assert by_body["NHSE"]["returns_imposed"] == 12
    by_month = {row["period"]: row for row in body["by_month"]}
    assert sorted(by_month) == [f"2025-0{m}" for m in range(1, 10)]
    # April to June: five returns asked for by two bodies' requests, two of them shared.
    assert by_month["2025-04"]["returns_requested"] == 2 + 3
    assert by_month["2025-04"]["returns_imposed"] == 3
    for breakdown in ("by_body", "by_trust", "by_dataset", "by_month"):
        assert sum(r["returns_requested"] for r in body[breakdown]) == totals["returns_requested"]
        assert sum(r["returns_imposed"] for r in body[breakdown]) == totals["returns_imposed"]
    assert body["parameters"]["datasets"]["ae_monthly"]["base_minutes"] == AE.base_minutes


def test_csv_and_ledger_trace_every_figure(
    client: TestClient, orgs: dict[str, Headers], two_requests: list[dict[str, object]]
) -> None:
    report = client.get("/v1/reports/burden", headers=orgs["NAO"]).json()
    as_csv = client.get("/v1/reports/burden?format=csv", headers=orgs["NAO"])
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == [
        "breakdown",
        "key",
        "returns_requested",
        "returns_imposed",
        "returns_avoided",
        "hours_requested",
        "hours_imposed",
        "hours_avoided",
        "cost_avoided_gbp",
    ]
    assert rows[1][:3] == ["totals", "", str(report["totals"]["returns_requested"])]
    assert {r[0] for r in rows[2:]} == {"body", "trust", "dataset", "month"}

    ledger = client.get("/v1/reports/burden/ledger", headers=orgs["NAO"]).json()
    requested = [r for r in ledger if r["entry"] == "requested"]
    imposed = [r for r in ledger if r["entry"] == "imposed"]
    assert len(requested) == report["totals"]["returns_requested"]
    assert sum(r["returns"] for r in imposed) == report["totals"]["returns_imposed"]
    assert sum(r["hours"] for r in imposed) == pytest.approx(
        report["totals"]["hours_imposed"], abs=0.02
    )
    assert {r["request_id"] for r in ledger} == {str(r["id"]) for r in two_requests}
    one = client.get(
        f"/v1/reports/burden/ledger?request_id={two_requests[0]['id']}", headers=orgs["NAO"]
    ).json()
    assert {r["body"] for r in one} == {"CQC"}
    ledger_csv = client.get("/v1/reports/burden/ledger?format=csv", headers=orgs["NAO"])
    assert ledger_csv.text.startswith("request_id,body,entry,dataset,org_code,period")


def test_month_window_and_bad_input(
    client: TestClient, orgs: dict[str, Headers], two_requests: list[dict[str, object]]
) -> None:
    window = client.get(
        "/v1/reports/burden?month_from=2025-07&month_to=2025-09", headers=orgs["NAO"]
    ).json()
    assert [r["period"] for r in window["by_month"]] == ["2025-07", "2025-08", "2025-09"]
    assert window["totals"]["returns_requested"] == 9
    for query, field in [
        ("month_from=2025-13", "month_from"),
        ("month_from=2025-06&month_to=2025-01", "month_to"),
        ("colour=blue", "colour"),
        ("month_to=June", "month_to"),
    ]:
        response = client.get(f"/v1/reports/burden?{query}", headers=orgs["NAO"])
        assert response.status_code == 422, query
        assert field in [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("caller", ["RJ1", "CQC"])
def test_only_auditors_read_reports(
    client: TestClient, orgs: dict[str, Headers], admin: Headers, caller: str
) -> None:
    for path in (
        "/v1/reports/burden",
        "/v1/reports/burden/ledger",
        "/v1/reports/completeness",
        "/v1/audit-events",
        "/v1/audit-events/verify",
    ):
        assert client.get(path, headers=orgs[caller]).status_code == 403
        assert client.get(path, headers=admin).status_code == 403
        assert client.get(path).status_code == 401


def test_completeness_and_timeliness(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    client.post(
        "/v1/requests",
        headers=orgs["CQC"],
        json={
            "title": "t",
            "purpose": "p",
            "legal_basis": "l",
            "items": ["ae_attendances"],
            "organisations": ["RJ1", "R0A"],
            "period_start": "2025-01",
            "period_end": "2025-02",
        },
    )
    sent = client.post(
        "/v1/submissions",
        headers=orgs["RJ1"],
        data={"dataset": "ae_monthly", "period": "2025-01"},
        files={
            "file": ("r.csv", ae_monthly_sample(org_code="RJ1").write_csv().encode(), "text/csv")
        },
    ).json()
    deadline = time.monotonic() + 30
    while (
        client.get(f"/v1/submissions/{sent['id']}", headers=orgs["RJ1"]).json()["status"]
        != "accepted"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = client.get("/v1/reports/completeness", headers=orgs["NAO"]).json()
    trusts = {row["org_code"]: row for row in result["by_trust"]}
    # 2025 is long past due: RJ1 sent January late, February is outstanding.
    assert (
        trusts["RJ1"]["asks"],
        trusts["RJ1"]["returned"],
        trusts["RJ1"]["late"],
        trusts["RJ1"]["on_time"],
        trusts["RJ1"]["overdue"],
    ) == (2, 1, 1, 0, 1)
    assert trusts["RJ1"]["reporting_rate"] == 0.5
    assert trusts["R0A"]["returned"] == 0
    [dataset] = result["by_dataset"]
    assert (dataset["dataset"], dataset["asks"], dataset["returned"]) == ("ae_monthly", 4, 1)


def test_audit_log_lists_and_verifies(
    client: TestClient, orgs: dict[str, Headers], two_requests: list[dict[str, object]]
) -> None:
    events = client.get("/v1/audit-events", headers=orgs["NAO"]).json()
    actions = [e["action"] for e in events]
    assert "request.registered" in actions
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    later = client.get(
        "/v1/audit-events", headers=orgs["NAO"], params={"since": events[-2]["at"]}
    ).json()
    assert [e["id"] for e in later] == [e["id"] for e in events if e["at"] > events[-2]["at"]]
    assert client.get("/v1/audit-events/verify", headers=orgs["NAO"]).json()["valid"] is True
    naive = client.get("/v1/audit-events?since=2026-01-01T00:00:00", headers=orgs["NAO"])
    assert naive.status_code == 422


def link_of(response: Any, rel: str) -> str | None:
    """The address of a page's ``Link: <...>; rel="..."`` (RFC 8288), or None."""
    for part in response.headers.get("link", "").split(","):
        found = re.fullmatch(r'\s*<([^>]+)>;\s*rel="(\w+)"\s*', part)
        if found and found[2] == rel:
            return found[1]
    return None


@pytest.mark.parametrize("limit", [1, 5, 17])
def test_the_ledger_comes_a_page_at_a_time_with_links_and_the_total(
    client: TestClient, orgs: dict[str, Headers], two_requests: list[dict[str, object]], limit: int
) -> None:
    whole = client.get("/v1/reports/burden/ledger", headers=orgs["NAO"])
    assert whole.status_code == 200
    everything = whole.json()  # the default page holds this small ledger
    assert whole.headers["x-total-count"] == str(len(everything))
    assert link_of(whole, "next") is None
    assert link_of(whole, "prev") is None

    pages = [client.get(f"/v1/reports/burden/ledger?limit={limit}", headers=orgs["NAO"])]
    while (following := link_of(pages[-1], "next")) is not None:
        assert "limit=" in following  # the links keep the page's parameters
        pages.append(client.get(following, headers=orgs["NAO"]))
    assert all(p.status_code == 200 for p in pages)
    assert all(len(p.json()) == limit for p in pages[:-1])
    assert 0 < len(pages[-1].json()) <= limit
    assert {p.headers["x-total-count"] for p in pages} == {str(len(everything))}
    assert [row for p in pages for row in p.json()] == everything
    assert link_of(pages[0], "prev") is None
    # Each page's previous link gives the page before it.
    for before, page in itertools.pairwise(pages):
        previous = link_of(page, "prev")
        assert previous is not None
        assert client.get(previous, headers=orgs["NAO"]).json() == before.json()
    assert link_of(pages[-1], "first") == f"/v1/reports/burden/ledger?limit={limit}"


def test_the_ledgers_limits_cursor_and_csv(
    client: TestClient, orgs: dict[str, Headers], two_requests: list[dict[str, object]]
) -> None:
    huge = base64.urlsafe_b64encode(json.dumps(["a", "i", "2025-01", "d", "o", 10**30]).encode())
    for query in (
        "limit=0",
        "limit=10001",
        "limit=ten",
        "cursor=abc",
        "cursor=WyJhIiwiciJd",  # ["a","r"]
        f"cursor={huge.decode()}",  # a seq no database column holds
        f"cursor={'x' * 1000}",
    ):
        response = client.get(f"/v1/reports/burden/ledger?{query}", headers=orgs["NAO"])
        assert response.status_code == 422, query
        fields = [e["field"].removeprefix("query.") for e in response.json()["errors"]]
        assert query.split("=")[0] in fields
    window = "month_from=2025-04&month_to=2025-06"
    first = client.get(f"/v1/reports/burden/ledger?{window}&limit=4", headers=orgs["NAO"])
    following = link_of(first, "next")
    assert following is not None
    assert "month_from=2025-04" in following
    assert "month_to=2025-06" in following
    assert all("2025-04" <= r["period"] <= "2025-06" for r in first.json())

    # The CSV is the whole ledger, streamed; not a page of it.
    pages = client.get("/v1/reports/burden/ledger?limit=10000", headers=orgs["NAO"]).json()
    as_csv = client.get("/v1/reports/burden/ledger?format=csv", headers=orgs["NAO"])
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "content-length" not in as_csv.headers  # streamed
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["ask_id"] or None for r in rows] == [r["ask_id"] for r in pages]
    assert [float(r["hours"]) for r in rows] == [r["hours"] for r in pages]
    refused = client.get("/v1/reports/burden/ledger?format=csv&limit=5", headers=orgs["NAO"])
    assert refused.status_code == 422
    report_csv = client.get("/v1/reports/burden?format=csv", headers=orgs["NAO"])
    assert "content-length" not in report_csv.headers
    assert report_csv.text.startswith("breakdown,key,")
