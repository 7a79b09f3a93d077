"""Requests over HTTP: coverage, asks, burden, withdrawal and who may see what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient

import schemas
from services.catalogue import coverage_index
from services.catalogue.db import session_scope
from services.catalogue.periods import parse_month
from services.catalogue.runtime import Runtime

Headers = dict[str, str]
AE = schemas.DATASETS["ae_monthly"].burden


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "R1K": make_org("R1K", "trust", "Y56"),
        "R0A": make_org("R0A", "trust", "Y62"),
        "RRK": make_org("RRK", "trust", "Y60"),
        "CQC": make_org("CQC", "oversight_body"),
        "NHSE": make_org("NHSE", "oversight_body"),
        "NAO": make_org("NAO", "auditor"),
    }


def request_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "A&E performance",
        "purpose": "Monitor four-hour performance.",
        "legal_basis": "Health and Social Care Act 2008, section 64",
        "items": ["ae_attendances", "ae_breaches"],
        "organisations": ["RJ1", "R0A"],
        "period_start": "2025-01",
        "period_end": "2025-06",
        "period_type": "month",
        "org_level": "trust",
        "due_days": 20,
    }
    body.update(overrides)
    return body


def hours(returns: int, items: int) -> float:
    return returns * (AE.base_minutes + AE.minutes_per_item * items) / 60


def item(coverage: dict[str, object], code: str) -> dict[str, object]:
    items = coverage["items"]
    assert isinstance(items, list)
    return next(i for i in items if i["item"] == code)


def test_dry_run_reports_everything_new_and_registers_nothing(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    response = client.post("/v1/requests?dry_run=true", json=request_body(), headers=orgs["CQC"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] is None
    for code in ("ae_attendances", "ae_breaches"):
        assert item(body["coverage"], code) == {
            "item": code,
            "cells_requested": 12,
            "cells_held": 0,
            "cells_scheduled": 0,
            "cells_derivable": 0,
            "cells_new": 12,
            "status": "new",
        }
    assert body["coverage"]["cells_requested"] == 24
    assert body["coverage"]["cells_new"] == 24
    assert body["burden"]["returns_requested"] == 12
    assert body["burden"]["returns_imposed"] == 12
    assert body["burden"]["hours_requested"] == pytest.approx(hours(12, 2), abs=0.01)
    assert body["burden"]["hours_avoided"] == 0
    assert client.get("/v1/requests", headers=orgs["CQC"]).json() == []
    assert client.get("/v1/asks", headers=orgs["RJ1"]).json() == []


def test_overlapping_requests_share_asks(client: TestClient, orgs: dict[str, Headers]) -> None:
    first = client.post("/v1/requests", json=request_body(), headers=orgs["CQC"])
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/v1/requests/{first.json()['id']}"
    assert first.json()["asks"] == {"created": 12, "joined": 0}

    second = client.post(
        "/v1/requests",
        json=request_body(
            items=["ae_attendances", "ae_admissions"],
            organisations=["RJ1", "R0A", "RRK"],
            period_start="2025-04",
            period_end="2025-09",
            due_days=10,
        ),
        headers=orgs["NHSE"],
    )
    assert second.status_code == 201, second.text
    body = second.json()
    # RJ1 and R0A for April to June are already asked for by CQC: scheduled, not asked again.
    for code in ("ae_attendances", "ae_admissions"):
        assert item(body["coverage"], code)["cells_scheduled"] == 6
        assert item(body["coverage"], code)["cells_new"] == 12
        assert item(body["coverage"], code)["status"] == "partial"
    assert body["asks"] == {"created": 12, "joined": 6}
    burden = body["burden"]
    assert burden["returns_requested"] == 18
    assert burden["returns_imposed"] == 12
    # Joining adds ae_admissions to six returns: one item's minutes each.
    expected = hours(12, 2) + 6 * AE.minutes_per_item / 60
    assert burden["hours_imposed"] == pytest.approx(expected, abs=0.01)
    assert burden["hours_avoided"] == pytest.approx(hours(18, 2) - expected, abs=0.02)

    asks = client.get("/v1/asks", headers=orgs["RJ1"]).json()
    assert [a["period"] for a in asks] == [f"2025-0{m}" for m in range(1, 10)]
    assert len({(a["dataset"], a["period"]) for a in asks}) == len(asks)
    april = next(a for a in asks if a["period"] == "2025-04")
    assert april["requested_by"] == ["CQC", "NHSE"]
    assert april["items"] == ["ae_admissions", "ae_attendances", "ae_breaches"]
    # Where requests differ, the earliest due date wins: April ends on the 30th, +10 days.
    assert april["due_date"] == "2025-05-10"
    january = next(a for a in asks if a["period"] == "2025-01")
    assert january["requested_by"] == ["CQC"]
    assert january["due_date"] == "2025-02-20"
    assert {a["status"] for a in asks} == {"overdue"}  # 2025 is past


def test_withdrawal_cancels_only_what_no_one_else_needs(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    first = client.post("/v1/requests", json=request_body(), headers=orgs["CQC"]).json()
    second = client.post(
        "/v1/requests",
        json=request_body(period_start="2025-04", period_end="2025-09"),
        headers=orgs["NHSE"],
    ).json()
    assert second["burden"]["returns_imposed"] == 6

    withdrawn = client.post(f"/v1/requests/{first['id']}/withdraw", headers=orgs["CQC"])
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn"
    assert withdrawn.json()["asks"]["cancelled"] == 6

    asks = {a["period"]: a for a in client.get("/v1/asks", headers=orgs["RJ1"]).json()}
    assert {p for p, a in asks.items() if a["status"] == "cancelled"} == {
        "2025-01",
        "2025-02",
        "2025-03",
    }
    assert asks["2025-04"]["requested_by"] == ["NHSE"]
    # The shared asks pass to the remaining request: its imposed burden grows.
    now = client.get(f"/v1/requests/{second['id']}", headers=orgs["NHSE"]).json()
    assert now["burden"]["returns_imposed"] == 12

    again = client.post(f"/v1/requests/{first['id']}/withdraw", headers=orgs["CQC"])
    assert again.status_code == 200  # idempotent
    client.post(f"/v1/requests/{second['id']}/withdraw", headers=orgs["NHSE"])
    statuses = {a["status"] for a in client.get("/v1/asks", headers=orgs["NAO"]).json()}
    assert statuses == {"cancelled"}


def test_a_cancelled_ask_needed_again_is_reopened_not_duplicated(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    first = client.post("/v1/requests", json=request_body(), headers=orgs["CQC"]).json()
    client.post(f"/v1/requests/{first['id']}/withdraw", headers=orgs["CQC"])
    again = client.post("/v1/requests", json=request_body(), headers=orgs["NHSE"]).json()
    assert again["asks"]["created"] == 12
    asks = client.get("/v1/asks", headers=orgs["NAO"]).json()
    assert len(asks) == 12
    assert {a["requested_by"][0] for a in asks} == {"NHSE"}


def test_quarters_and_regions_are_derived_from_months_and_trusts(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    monthly = request_body(organisations={"region": "Y56"}, period_end="2025-06")
    client.post("/v1/requests", json=monthly, headers=orgs["CQC"])
    quarterly = request_body(
        organisations={"region": "Y56"},
        period_start="2025-Q1",
        period_end="2025-Q3",
        period_type="quarter",
        org_level="region",
    )
    body = client.post("/v1/requests?dry_run=true", json=quarterly, headers=orgs["NHSE"]).json()
    cell = item(body["coverage"], "ae_attendances")
    # One region, three quarters: Q1 and Q2 come from the monthly asks, Q3 is new.
    assert cell["cells_requested"] == 3
    assert cell["cells_derivable"] == 2
    assert cell["cells_new"] == 1
    # A new quarter asks for the monthly returns of each trust in the region.
    assert body["burden"]["returns_imposed"] == 2 * 3
    yearly = request_body(
        organisations={"kind": "trust"},
        period_start="2025",
        period_end="2025",
        period_type="year",
        org_level="national",
    )
    body = client.post("/v1/requests?dry_run=true", json=yearly, headers=orgs["NHSE"]).json()
    assert item(body["coverage"], "ae_attendances")["cells_requested"] == 1
    assert body["org_count"] == 4


def test_held_and_derivable_cells(
    client: TestClient, orgs: dict[str, Headers], runtime: Runtime
) -> None:
    with session_scope(runtime.factory) as session:
        for month in ("2025-01", "2025-02", "2025-03"):
            coverage_index.mark_held(
                session=session, dataset_code="ae_monthly", org_code="RJ1", month=parse_month(month)
            )
        # Patient-level ECDS for R0A in January: the A&E counts can be computed from it.
        coverage_index.mark_held(
            session=session,
            dataset_code="ecds_attendance",
            org_code="R0A",
            month=parse_month("2025-01"),
        )
    body = client.post("/v1/requests?dry_run=true", json=request_body(), headers=orgs["CQC"]).json()
    cell = item(body["coverage"], "ae_breaches")
    assert (cell["cells_held"], cell["cells_derivable"], cell["cells_new"]) == (3, 1, 8)
    assert body["burden"]["returns_imposed"] == 8
    registered = client.post("/v1/requests", json=request_body(), headers=orgs["CQC"]).json()
    periods = {a["period"] for a in client.get("/v1/asks", headers=orgs["RJ1"]).json()}
    assert periods == {"2025-04", "2025-05", "2025-06"}
    assert registered["asks"]["created"] == 8


def test_rtt_and_beds_are_separate_returns(client: TestClient, orgs: dict[str, Headers]) -> None:
    body = request_body(
        items=["rtt_over_52_weeks", "beds_ga_occupied", "ae_attendances"],
        organisations=["RJ1"],
        period_start="2025-01",
        period_end="2025-01",
    )
    created = client.post("/v1/requests", json=body, headers=orgs["CQC"]).json()
    assert created["burden"]["returns_requested"] == 3
    datasets = sorted(a["dataset"] for a in client.get("/v1/asks", headers=orgs["RJ1"]).json())
    assert datasets == ["ae_monthly", "beds_monthly", "rtt_monthly"]


def problem(response: object, status: int) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


def test_unknown_item_is_refused_with_suggestions(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    body = request_body(items=["ae_attendences", "ae_breaches", "bed_occupancy"])
    refused = problem(client.post("/v1/requests", json=body, headers=orgs["CQC"]), 422)
    named = {e["item"] for e in refused["errors"]}  # type: ignore[union-attr]
    assert named == {"ae_attendences", "bed_occupancy"}
    suggestions = refused["suggestions"]
    assert isinstance(suggestions, dict)
    assert suggestions["ae_attendences"][0] == "ae_attendances"
    assert "beds_ga_occupied" in suggestions["bed_occupancy"]
    assert "ae_attendences" in str(refused["detail"])


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"organisations": ["RJ1", "XXX", "YYY"]}, "organisations", "XXX"),
        ({"organisations": ["CQC"]}, "organisations", "not a trust"),
        ({"organisations": {"region": "Y99"}}, "organisations.region", "Y99"),
        ({"organisations": []}, "organisations", "at least one"),
        ({"period_start": "2025-06", "period_end": "2025-01"}, "period_end", "before"),
        ({"period_start": "2015-01", "period_end": "2025-06"}, "period_end", "10 years"),
        ({"period_start": "2025-13"}, "period_start", "2025-13"),
        ({"period_end": "June 2025"}, "period_end", "June 2025"),
        ({"period_type": "week"}, "period_type", ""),
        ({"due_days": -1}, "due_days", ""),
        ({"items": []}, "items", ""),
    ],
)
def test_bad_requests_are_422_naming_the_field(
    client: TestClient,
    orgs: dict[str, Headers],
    overrides: dict[str, object],
    field: str,
    text: str,
) -> None:
    refused = problem(
        client.post("/v1/requests", json=request_body(**overrides), headers=orgs["CQC"]), 422
    )
    errors = refused["errors"]
    assert isinstance(errors, list)
    assert field in [e["field"] for e in errors]
    assert text in str(errors)


def test_unknown_organisations_are_each_named(client: TestClient, orgs: dict[str, Headers]) -> None:
    body = request_body(organisations=["RJ1", "XXX", "YYY"])
    refused = problem(client.post("/v1/requests", json=body, headers=orgs["CQC"]), 422)
    assert [e.get("organisation") for e in refused["errors"]] == ["XXX", "YYY"]  # type: ignore[union-attr]


def test_who_may_do_what(client: TestClient, orgs: dict[str, Headers], admin: Headers) -> None:
    problem(client.post("/v1/requests", json=request_body(), headers=orgs["RJ1"]), 403)
    problem(client.post("/v1/requests", json=request_body(), headers=orgs["NAO"]), 403)
    problem(client.post("/v1/requests", json=request_body(), headers=admin), 403)
    created = client.post("/v1/requests", json=request_body(), headers=orgs["CQC"]).json()
    path = f"/v1/requests/{created['id']}"
    assert client.get(path, headers=orgs["CQC"]).status_code == 200
    assert client.get(path, headers=orgs["NAO"]).status_code == 200
    # Transparency: a trust in the population sees who asks and why; one outside does not.
    seen = client.get(path, headers=orgs["RJ1"]).json()
    assert (seen["body"], seen["purpose"]) == ("CQC", "Monitor four-hour performance.")
    problem(client.get(path, headers=orgs["RRK"]), 403)
    problem(client.get(path, headers=orgs["NHSE"]), 403)
    problem(client.get(path, headers=admin), 403)
    problem(client.post(f"{path}/withdraw", headers=orgs["NHSE"]), 403)
    problem(client.post(f"{path}/withdraw", headers=orgs["RJ1"]), 403)
    problem(client.get("/v1/requests/no-such-id", headers=orgs["CQC"]), 404)
    assert [r["id"] for r in client.get("/v1/requests", headers=orgs["RJ1"]).json()] == [
        created["id"]
    ]
    assert client.get("/v1/requests", headers=orgs["RRK"]).json() == []
    assert client.get("/v1/requests", headers=orgs["NHSE"]).json() == []
    assert len(client.get("/v1/requests", headers=orgs["NAO"]).json()) == 1
    problem(client.get("/v1/asks", headers=admin), 403)
    problem(client.get("/v1/asks?org_code=R0A", headers=orgs["RJ1"]), 403)
    assert {
        a["org_code"] for a in client.get("/v1/asks?org_code=R0A", headers=orgs["NAO"]).json()
    } == {"R0A"}
    assert len(client.get("/v1/asks", headers=orgs["CQC"]).json()) == 12
    assert client.get("/v1/asks", headers=orgs["NHSE"]).json() == []


def test_ask_status_filter(client: TestClient, orgs: dict[str, Headers]) -> None:
    future = f"{date.today().year + 1}-01"
    body = request_body(period_start="2024-01", period_end=future)
    client.post("/v1/requests", json=body, headers=orgs["CQC"])
    overdue = [
        a["period"] for a in client.get("/v1/asks?status=overdue", headers=orgs["RJ1"]).json()
    ]
    outstanding = [
        a["period"] for a in client.get("/v1/asks?status=outstanding", headers=orgs["RJ1"]).json()
    ]
    assert "2024-01" in overdue
    assert future not in overdue
    assert future in outstanding
    assert "2024-01" not in outstanding
    assert len(overdue) + len(outstanding) == len(
        client.get("/v1/asks", headers=orgs["RJ1"]).json()
    )
    problem(client.get("/v1/asks?status=lost", headers=orgs["RJ1"]), 422)


def test_item_search_ranks_what_analysts_type(client: TestClient, orgs: dict[str, Headers]) -> None:
    for query, expected in [
        ("A&E attendences", "ae_attendances"),
        ("emergency department attendances", "ae_attendances"),
        ("4 hour breaches", "ae_breaches"),
        ("bed occupancy", "beds_ga_occupied"),
    ]:
        response = client.get("/v1/items/search", params={"q": query}, headers=orgs["CQC"])
        assert response.status_code == 200
        ranked = response.json()
        assert ranked[0]["code"] == expected, (query, ranked[:3])
        assert 0 < ranked[0]["score"] <= 100
    problem(client.get("/v1/items/search", params={"q": " "}, headers=orgs["CQC"]), 422)
