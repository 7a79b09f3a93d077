"""GET /v1/indicators/{item}/spc shows only what the caller is entitled to, and audits each read.

A body may chart only the cells its *active* requests cover: their items, organisations, months
and grain (a region-level request gives region figures, a national one national figures, never
a trust's rows). Trusts chart their own values, auditors anything, stewards nothing. Every read,
and every read refused to a body, is in the audit log. The data are real returns, validated and
accepted by the running worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.catalogue import indicators
from services.catalogue.periods import parse_month
from services.catalogue.runtime import Runtime
from services.validator import worker
from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]

# Three London trusts and one in the North West, a body, an auditor, a steward.
ROLES: dict[str, tuple[str, ...]] = {
    "RJ1": ("trust", "Y56"),
    "RJZ": ("trust", "Y56"),
    "RYJ": ("trust", "Y56"),
    "R0A": ("trust", "Y62"),
    "CQC": ("oversight_body",),
    "NAO": ("auditor",),
    "DRB": ("steward",),
}
TRUSTS = ("RJ1", "RJZ", "RYJ", "R0A")
LONDON = ("RJ1", "RJZ", "RYJ")
MONTHS = ("2025-01", "2025-02", "2025-03")
# Added to each department type's attendances, so that every (trust, month) differs.
EXTRA = {"RJ1": 0, "RJZ": 100, "RYJ": 300, "R0A": 200}


def attendances(org_code: str, month: str) -> int:
    """The trust's A&E attendances of the month: the sample's three department types, summed."""
    return 13442 + 3 * (EXTRA[org_code] + 10 * MONTHS.index(month))


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {code: make_org(code, *role) for code, role in ROLES.items()}


@pytest.fixture
def held(client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle) -> None:
    """Every trust's ae_monthly for January to March 2025, accepted."""
    sent: list[tuple[str, str]] = []
    for org_code in TRUSTS:
        for month in MONTHS:
            frame = ae_monthly_sample(org_code=org_code, period=month)
            more = EXTRA[org_code] + 10 * MONTHS.index(month)
            frame = frame.with_columns(attendances=frame["attendances"] + more)
            answer = client.post(
                "/v1/submissions",
                headers=orgs[org_code],
                data={"dataset": "ae_monthly", "period": month},
                files={"file": ("r.csv", frame.write_csv().encode(), "text/csv")},
            )
            assert answer.status_code == 202, answer.text
            sent.append((org_code, answer.json()["id"]))
    deadline = time.monotonic() + 60
    for org_code, submission in sent:
        while True:
            status = client.get(f"/v1/submissions/{submission}", headers=orgs[org_code]).json()
            if status["status"] == "accepted":
                break
            assert status["status"] in ("received", "validating"), status
            assert time.monotonic() < deadline, "the returns were not accepted"
            time.sleep(0.05)


def ask(client: TestClient, body: Headers, **changes: Any) -> str:
    """Register a request (RJ1's monthly A&E attendances, January to March 2025 by default)."""
    spec: dict[str, Any] = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "due_days": 20,
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
        "period_start": "2025-01",
        "period_end": "2025-03",
        "period_type": "month",
        "org_level": "trust",
        **changes,
    }
    answer = client.post("/v1/requests", headers=body, json=spec)
    assert answer.status_code == 201, answer.text
    request_id: str = answer.json()["id"]
    return request_id


def chart(
    client: TestClient,
    who: Headers,
    org_code: str,
    *,
    item: str = "ae_attendances",
    start: str = "2025-01",
    end: str = "2025-03",
) -> Any:
    """The chart as answered (status and body)."""
    query = {"org_code": org_code, "period_start": start, "period_end": end}
    return client.get(f"/v1/indicators/{item}/spc", headers=who, params=query)


def values(answer: Any) -> list[tuple[str, float]]:
    assert answer.status_code == 200, answer.text
    return [(p["period"], p["value"]) for p in answer.json()["points"]]


def refused(answer: Any, *phrases: str) -> str:
    """The 403's detail, checked to say each phrase and to hold no value of the data."""
    assert answer.status_code == 403, answer.text
    detail: str = answer.json()["detail"]
    for phrase in phrases:
        assert phrase in detail, detail
    for org_code in TRUSTS:
        for month in MONTHS:
            assert str(attendances(org_code, month)) not in answer.text
    return detail


def of(*trusts: str) -> list[tuple[str, float]]:
    """The expected points: the trusts' attendances added up, month by month."""
    return [(month, float(sum(attendances(t, month) for t in trusts))) for month in MONTHS]


# ---------------------------------------------------------------------------
# Each way the old rule leaked (any trust named in any request of the body)
# ---------------------------------------------------------------------------


def test_a_withdrawn_request_entitles_nothing(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    request_id = ask(client, orgs["CQC"])
    assert values(chart(client, orgs["CQC"], "RJ1")) == of("RJ1")
    withdrawn = client.post(f"/v1/requests/{request_id}/withdraw", headers=orgs["CQC"])
    assert withdrawn.status_code == 200, withdrawn.text
    refused(chart(client, orgs["CQC"], "RJ1"), "active requests", "ae_attendances")


def test_a_request_for_another_item_entitles_nothing(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    ask(client, orgs["CQC"], items=["ae_breaches"])
    refused(chart(client, orgs["CQC"], "RJ1"), "ae_attendances")
    assert chart(client, orgs["CQC"], "RJ1", item="ae_breaches").status_code == 200


def test_a_national_request_gives_national_figures_not_trust_rows(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    request_id = ask(client, orgs["CQC"], organisations=list(TRUSTS), org_level="national")
    refused(chart(client, orgs["CQC"], "RJ1"), request_id, "national level", "org_code=national")
    refused(chart(client, orgs["CQC"], "Y56"), "national")
    answer = chart(client, orgs["CQC"], "national")
    assert values(answer) == of(*TRUSTS)
    result = answer.json()
    assert (result["org_code"], result["org_level"]) == ("national", "national")
    assert result["missing"] == []
    assert len(result["sources"]) == len(TRUSTS) * len(MONTHS)


def test_months_outside_the_active_requests_are_refused(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    ask(client, orgs["CQC"], period_end="2025-02")
    refused(chart(client, orgs["CQC"], "RJ1"), "2025-01 to 2025-02")
    refused(chart(client, orgs["CQC"], "RJ1", start="2024-12", end="2025-02"), "2025-01")
    assert values(chart(client, orgs["CQC"], "RJ1", end="2025-02")) == of("RJ1")[:2]
    # A second request for March makes the whole quarter chartable.
    ask(client, orgs["CQC"], period_start="2025-03", period_end="2025-03")
    assert values(chart(client, orgs["CQC"], "RJ1")) == of("RJ1")


def test_a_quarterly_request_does_not_entitle_monthly_figures(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    ask(client, orgs["CQC"], period_start="2025-Q1", period_end="2025-Q1", period_type="quarter")
    refused(chart(client, orgs["CQC"], "RJ1"), "quarterly", "monthly")


# ---------------------------------------------------------------------------
# What is allowed
# ---------------------------------------------------------------------------


def test_a_trust_level_request_charts_its_trusts_only(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    ask(client, orgs["CQC"], organisations=["RJ1", "RJZ"])
    for org_code in ("RJ1", "RJZ"):
        answer = chart(client, orgs["CQC"], org_code)
        assert values(answer) == of(org_code)
        assert answer.json()["org_level"] == "trust"
    refused(chart(client, orgs["CQC"], "R0A"), "R0A")
    refused(chart(client, orgs["CQC"], "Y56"), "trust level")
    refused(chart(client, orgs["CQC"], "national"), "trust level")


def test_a_region_level_request_gives_its_regions_figures(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    request_id = ask(client, orgs["CQC"], organisations=list(TRUSTS), org_level="region")
    london = chart(client, orgs["CQC"], "Y56")
    assert values(london) == of(*LONDON)
    # The region's figure is the sum of its trusts' values, as their own trusts chart them.
    own = [values(chart(client, orgs[t], t)) for t in LONDON]
    totals = [sum(v for _, v in row) for row in zip(*own, strict=True)]
    assert [v for _, v in values(london)] == totals
    assert london.json()["org_level"] == "region"
    assert (london.json()["min_trusts"], london.json()["suppressed"]) == (3, [])
    # The North West has one trust: its "region" would be R0A's own figures.
    refused(chart(client, orgs["CQC"], "Y62"), "at least 3 trusts", "1 trust(s)")
    refused(chart(client, orgs["CQC"], "RJ1"), request_id, "region level", "org_code=Y56")
    refused(chart(client, orgs["CQC"], "R0A"), "org_code=Y62")
    refused(chart(client, orgs["CQC"], "RYJ"), "org_code=Y56")
    refused(chart(client, orgs["CQC"], "Y58"), "Y58")
    refused(chart(client, orgs["CQC"], "national"), "region level")


def test_a_region_level_request_covers_only_its_own_trusts_of_the_region(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    ask(client, orgs["CQC"], organisations=["RJ1", "RJZ", "R0A"], org_level="region")
    # RYJ is in London too, but not in the request: London would be RJ1 and RJZ alone.
    refused(chart(client, orgs["CQC"], "Y56"), "at least 3 trusts", "2 trust(s) at Y56")
    refused(chart(client, orgs["CQC"], "Y56", end="2025-01"), "disclosure")


@pytest.mark.parametrize("trusts", [1, 2])
def test_a_national_request_of_too_few_trusts_charts_nothing(
    client: TestClient, orgs: dict[str, Headers], held: None, trusts: int
) -> None:
    ask(client, orgs["CQC"], organisations=list(LONDON[:trusts]), org_level="national")
    refused(chart(client, orgs["CQC"], "national"), "at least 3 trusts", f"{trusts} trust(s)")


def test_trusts_auditors_and_stewards(
    client: TestClient,
    orgs: dict[str, Headers],
    make_org: Callable[..., Headers],
    held: None,
) -> None:
    answer = chart(client, orgs["RJ1"], "RJ1")
    assert values(answer) == of("RJ1")
    assert answer.json()["org_level"] == "trust"
    for other in ("RJZ", "Y56", "national"):
        refused(chart(client, orgs["RJ1"], other), "its own")
    assert values(chart(client, orgs["NAO"], "RJZ")) == of("RJZ")
    assert values(chart(client, orgs["NAO"], "Y56")) == of(*LONDON)
    # Auditors may chart any trust: no minimum of trusts applies to them.
    assert values(chart(client, orgs["NAO"], "Y62")) == of("R0A")
    assert chart(client, orgs["NAO"], "Y62").json()["min_trusts"] is None
    assert values(chart(client, orgs["NAO"], "national")) == of(*TRUSTS)
    refused(chart(client, orgs["DRB"], "RJ1"), "steward")
    # A region's month is charted only when every trust of it is held.
    make_org("RQM", "trust", "Y56")
    nothing = chart(client, orgs["NAO"], "Y56")
    assert nothing.status_code == 422, nothing.text
    assert chart(client, orgs["NAO"], "nowhere").status_code == 404


@pytest.mark.parametrize("minimum", [3, 4])
def test_a_month_from_fewer_trusts_than_the_minimum_is_suppressed(
    runtime: Runtime, held: None, minimum: int
) -> None:
    """Each month counts the trusts with a value in it: below the minimum it is not shown."""
    scope = indicators.Scope(org_level="region", org_codes=LONDON, min_trusts=minimum)
    with runtime.factory() as session:
        series = indicators.monthly_series(
            session=session,
            settings=runtime.settings,
            item="ae_attendances",
            scope=scope,
            first=parse_month(MONTHS[0]),
            last=parse_month(MONTHS[-1]),
        )
    shown = minimum <= len(LONDON)
    assert [(p.period, p.value) for p in series.points] == (of(*LONDON) if shown else [])
    assert series.suppressed == ([] if shown else list(MONTHS))
    assert series.missing == []
    assert len(series.sources) == (len(LONDON) * len(MONTHS) if shown else 0)


# ---------------------------------------------------------------------------
# The audit log
# ---------------------------------------------------------------------------


def test_every_read_and_every_refused_body_read_is_audited(
    client: TestClient, orgs: dict[str, Headers], held: None
) -> None:
    ask(client, orgs["CQC"], organisations=list(TRUSTS), org_level="region")
    reads = [
        ("CQC", "Y56", 200),
        ("CQC", "RJ1", 403),
        ("CQC", "national", 403),
        ("RJ1", "RJ1", 200),
        ("NAO", "national", 200),
        ("NAO", "R0A", 200),
    ]
    for who, org_code, status in reads:
        answer = chart(client, orgs[who], org_code, end="2025-02")
        assert answer.status_code == status, answer.text
    events = client.get("/v1/audit-events", headers=orgs["NAO"], params={"limit": 10_000})
    assert events.status_code == 200, events.text
    logged = [e for e in events.json() if e["subject_type"] == "indicator"]
    assert [
        (e["actor"], e["action"], e["subject_id"], e["detail"]["org_code"]) for e in logged
    ] == [
        (who, "indicator.read" if status == 200 else "indicator.refused", "ae_attendances", code)
        for who, code, status in reads
    ]
    for event in logged:
        assert (event["detail"]["period_start"], event["detail"]["period_end"]) == (
            "2025-01",
            "2025-02",
        )
    assert "org_code=Y56" in logged[1]["detail"]["reason"]
    verified = client.get("/v1/audit-events/verify", headers=orgs["NAO"])
    assert verified.json()["valid"] is True, verified.text
