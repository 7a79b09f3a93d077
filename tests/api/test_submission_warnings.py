"""Submission-time SPC warnings: a value far outside the trust's own history is flagged on the
accepted submission (never rejected), with the item, month, value, mean and process limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from services.validator import worker
from tests.api_calls import send_ae

Headers = dict[str, str]

# Thirteen months of ordinary returns (type 1 attendances round 9,100), then the month checked.
HISTORY = [f"2024-{m:02d}" for m in range(1, 13)] + ["2025-01"]
CHECKED = "2025-02"


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {"RJ1": make_org("RJ1", "trust", "Y56"), "NAO": make_org("NAO", "auditor")}


def _history(client: TestClient, trust: Headers, months: list[str]) -> None:
    for n, month in enumerate(months):
        send_ae(client, trust, "RJ1", month, attendances=9000 + (n % 2) * 200)


def _submission(client: TestClient, who: Headers, submission_id: str) -> dict[str, object]:
    response = client.get(f"/v1/submissions/{submission_id}", headers=who)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_an_extra_zero_is_accepted_with_a_warning(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    _history(client, orgs["RJ1"], HISTORY)
    typo = send_ae(client, orgs["RJ1"], "RJ1", CHECKED, attendances=91000)  # 9,100 + a zero
    body = _submission(client, orgs["RJ1"], typo)
    assert body["status"] == "accepted"
    warnings = body["warnings"]
    assert isinstance(warnings, list)
    assert [w["item"] for w in warnings] == ["ae_attendances"]  # breaches, admissions: as usual
    (warning,) = warnings
    assert warning["period"] == CHECKED
    assert warning["org_code"] == "RJ1"
    assert warning["value"] > warning["upl"] > warning["mean"] > warning["lpl"]
    # The trust's total over its departments: the typed 91,000 and the other two as ever.
    assert warning["value"] - 91000 == pytest.approx(warning["mean"] - 9100, abs=150)
    assert "above the upper process limit" in warning["message"]
    assert "13 earlier months" in warning["message"]
    # An auditor learns which item and month stand out, not the figures.
    (seen,) = _submission(client, orgs["NAO"], typo)["warnings"]  # type: ignore[misc]
    assert seen["item"] == "ae_attendances"
    assert (seen["value"], seen["mean"], seen["upl"], seen["lpl"]) == (None, None, None, None)
    assert "91" not in seen["message"]
    listed = client.get("/v1/submissions", params={"period": CHECKED}, headers=orgs["RJ1"])
    assert listed.json()[0]["warnings"] == warnings


def test_an_ordinary_month_has_no_warning(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    _history(client, orgs["RJ1"], HISTORY)
    usual = send_ae(client, orgs["RJ1"], "RJ1", CHECKED, attendances=9100)
    assert _submission(client, orgs["RJ1"], usual)["warnings"] == []


def test_a_fall_far_below_is_a_warning_too(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    _history(client, orgs["RJ1"], HISTORY)
    # Type 1 attendances 2,600 (admissions 2,561 fit): half the usual total.
    missing_digit = send_ae(client, orgs["RJ1"], "RJ1", CHECKED, attendances=2600)
    (warning,) = _submission(client, orgs["RJ1"], missing_digit)["warnings"]  # type: ignore[misc]
    assert warning["value"] < warning["lpl"]
    assert "below the lower process limit" in warning["message"]


def test_without_twelve_earlier_months_nothing_is_judged(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    _history(client, orgs["RJ1"], HISTORY[-11:])
    extreme = send_ae(client, orgs["RJ1"], "RJ1", CHECKED, attendances=910000)
    body = _submission(client, orgs["RJ1"], extreme)
    assert (body["status"], body["warnings"]) == ("accepted", [])
