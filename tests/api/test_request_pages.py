"""The pages for the bodies that ask (/requests, /requests/{id}, /requests/new, the extract
download): who sees what, every figure as the API gives it, and the form that registers a
request after its dry run. Run on SQLite and PostgreSQL, through the app as a browser or script
reaches it: with a bearer header, or signed in with a session cookie and its form token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api_calls import send_ae
from tests.conftest import module_broker, organisations

Headers = dict[str, str]
HELD = [f"2024-{m:02d}" for m in range(7, 13)]  # RJ1 and R0A send July to December 2024
ITEMS = ["ae_attendances", "ae_breaches"]


@dataclass
class World:
    client: TestClient
    orgs: dict[str, Headers]
    request_id: str  # CQC's request: RJ1 and R0A, 2024-07 to 2025-03
    other_id: str  # NHSE's request


def _register(client: TestClient, body: Headers, **spec: object) -> str:
    request = {"title": "t", "purpose": "p", "legal_basis": "l", "due_days": 20, **spec}
    response = client.post("/v1/requests", json=request, headers=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One broker per database for the module; tests that register add requests of their own
    (CQC's and NHSE's below are never changed)."""
    root = tmp_path_factory.mktemp("request-pages")
    with module_broker(request, root) as client:
        orgs = organisations(
            client,
            [
                ("RJ1", "trust", "Y56"),
                ("R0A", "trust", "Y62"),
                ("CQC", "oversight_body", None),
                ("NHSE", "oversight_body", None),
                ("NAO", "auditor", None),
            ],
        )
        # CQC asks first: every month is new; then the trusts send July to December (the
        # extracts follow), and January to March 2025 stay overdue or due.
        request_id = _register(
            client,
            orgs["CQC"],
            items=ITEMS,
            organisations=["RJ1", "R0A"],
            period_start=HELD[0],
            period_end="2025-03",
        )
        for month in HELD:
            send_ae(client, orgs["RJ1"], "RJ1", month)
            send_ae(client, orgs["R0A"], "R0A", month)
        other_id = _register(
            client,
            orgs["NHSE"],
            items=["ae_admissions"],
            organisations={"kind": "trust"},
            period_start=HELD[0],
            period_end=HELD[-1],
        )
        _wait_for_extracts(client, orgs["CQC"], request_id, len(HELD))
        yield World(client, orgs, request_id, other_id)


def _wait_for_extracts(client: TestClient, body: Headers, request_id: str, count: int) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while datetime.now(UTC) < deadline:
        found = client.get("/v1/extracts", headers=body, params={"request_id": request_id})
        if len(found.json()) >= count:
            return
    raise AssertionError("the extracts were not built in time")


def get(world: World, who: str, path: str, **params: str) -> tuple[int, str]:
    response = world.client.get(path, headers=world.orgs[who], params=params)
    return response.status_code, response.text


def api(world: World, who: str, path: str, **params: str) -> Any:
    response = world.client.get(path, headers=world.orgs[who], params=params)
    assert response.status_code == 200, response.text
    return response.json()


def totals(html: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r'data-total="(\w+)" data-value="([^"]+)"', html)}


def cells(html: str, table: str) -> dict[str, dict[str, int]]:
    """Coverage per item from a coverage table: {item: {requested, held, ..., new}}."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    found: dict[str, dict[str, int]] = {}
    for item, row in re.findall(r'data-item="(\w+)">(.*?)</tr>', body, flags=re.S):
        found[item] = {
            kind: int(value.replace(",", ""))
            for kind, value in re.findall(r'data-cells="(\w+)">([\d,]+)<', row)
        }
    return found


def audit_events(world: World, action: str, since: datetime) -> list[dict[str, Any]]:
    events = api(world, "NAO", "/v1/audit-events", limit="10000", since=since.isoformat())
    return [e for e in events if e["action"] == action]


@contextmanager
def signed_in(world: World, who: str) -> Iterator[tuple[TestClient, str]]:
    """The module's client signed in through the form as ``who``; the session's form token."""
    client = world.client
    client.cookies.clear()
    form = client.get("/sign-in")
    form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    assert form_token is not None
    token = world.orgs[who]["Authorization"].removeprefix("Bearer ")
    posted = client.post(
        "/sign-in", data={"token": token, "form_token": form_token[1]}, follow_redirects=False
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == ("/requests" if who != "RJ1" else "/trusts/RJ1")
    page = client.get("/requests/new")
    session_token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    try:
        yield client, session_token[1] if session_token else ""
    finally:
        client.cookies.clear()  # the module's other tests send bearer tokens only


FORM = {
    "title": "Four-hour performance",
    "purpose": "Inspections",
    "legal_basis": "Health and Social Care Act 2008, section 64",
    "items": ITEMS,
    "population": "list",
    "org_codes": "rj1, R0A",
    "period_start": "2024-10",
    "period_end": "2025-06",
    "period_type": "month",
    "org_level": "trust",
    "due_days": "20",
}


def dry_run(world: World, who: str, **spec: object) -> dict[str, Any]:
    request = {"title": "t", "purpose": "p", "legal_basis": "l", "due_days": 20, **spec}
    response = world.client.post(
        "/v1/requests", json=request, headers=world.orgs[who], params={"dry_run": "true"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# -- the list and one request --------------------------------------------------------------


def test_a_body_lists_its_own_requests_and_an_auditor_every_one(world: World) -> None:
    status, html = get(world, "CQC", "/requests")
    assert status == 200
    listed = re.findall(r'data-request="([\w-]+)"', html)
    assert world.request_id in listed
    assert world.other_id not in listed
    assert listed == [r["id"] for r in api(world, "CQC", "/v1/requests")]
    status, html = get(world, "NAO", "/requests")
    assert status == 200
    assert {world.request_id, world.other_id} <= set(re.findall(r'data-request="([\w-]+)"', html))
    status, html = get(world, "RJ1", "/requests")
    assert status == 403
    assert "Request pages are for oversight bodies and auditors" in html


def test_a_request_page_shows_the_apis_figures(world: World) -> None:
    status, html = get(world, "CQC", f"/requests/{world.request_id}")
    assert status == 200
    registered = api(world, "CQC", f"/v1/requests/{world.request_id}")
    shown = totals(html)
    for key in ("returns_requested", "returns_imposed", "hours_avoided", "hours_imposed"):
        assert shown[key] == pytest.approx(registered["burden"][key]), key
    for status_name in ("accepted", "submitted", "outstanding", "overdue"):
        assert shown[f"asks_{status_name}"] == registered["asks"][status_name]
    assert registered["asks"]["accepted"] == 2 * len(HELD)
    assert shown["cost_avoided_gbp"] == pytest.approx(0.0)  # every month was new
    assert cells(html, "coverage-table") == {
        i["item"]: {
            "requested": i["cells_requested"],
            "held": i["cells_held"],
            "scheduled": i["cells_scheduled"],
            "derivable": i["cells_derivable"],
            "new": i["cells_new"],
        }
        for i in registered["coverage"]["items"]
    }
    # One row per month asked, oldest first: July to December complete, then nothing yet.
    periods = re.findall(r'<tr class="nhsuk-table__row" data-period="([\w-]+)"', html)
    assert periods == [*HELD, "2025-01", "2025-02", "2025-03"]
    assert "100.0%" in html.split('data-period="2024-07"', 1)[1].split("</tr>", 1)[0]
    # The extracts are the API's, newest first, each with its delivery and a download link.
    listed = api(world, "CQC", "/v1/extracts", request_id=world.request_id)
    assert re.findall(r'data-extract="([\w-]+)"', html) == [e["id"] for e in listed]
    for extract in listed:
        assert f'href="/extracts/{extract["id"]}.parquet"' in html


@pytest.mark.parametrize("population", ["named trusts", "every trust", "a region"])
def test_a_request_page_says_whom_it_asks(world: World, population: str) -> None:
    """Each way a request names its trusts (a list, {"kind": "trust"}, {"region": ...})."""
    if population == "named trusts":
        body, request_id, words = "CQC", world.request_id, "2 trusts, figures by trust"
    elif population == "every trust":
        body, request_id, words = "NHSE", world.other_id, "2 trusts: every registered trust"
    else:
        body, words = "NHSE", "1 trust of region Y62"
        request_id = _register(
            world.client,
            world.orgs[body],
            items=["ae_admissions"],
            organisations={"region": "Y62"},
            period_start=HELD[0],
            period_end=HELD[-1],
        )
    for who in (body, "NAO"):
        status, html = get(world, who, f"/requests/{request_id}")
        assert status == 200, html
        assert words in html


def test_the_download_link_is_the_apis_file_and_is_audited(world: World) -> None:
    extract = api(world, "CQC", "/v1/extracts", request_id=world.request_id)[0]
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    page = world.client.get(f"/extracts/{extract['id']}.parquet", headers=world.orgs["CQC"])
    assert page.status_code == 200
    assert page.headers["content-type"] == "application/vnd.apache.parquet"
    from_api = world.client.get(f"/v1/extracts/{extract['id']}/download", headers=world.orgs["CQC"])
    assert page.content == from_api.content
    assert page.content[:4] == b"PAR1"
    events = audit_events(world, "extract.downloaded", since)
    assert [(e["actor"], e["subject_id"]) for e in events] == [("CQC", extract["id"])] * 2


def test_other_bodies_auditors_and_trusts_cannot_download(world: World) -> None:
    extract = api(world, "CQC", "/v1/extracts", request_id=world.request_id)[0]
    path = f"/extracts/{extract['id']}.parquet"
    status, html = get(world, "NHSE", path)
    assert status == 404  # another body's extract: its existence is not revealed
    assert b"PAR1" not in html.encode()
    status, html = get(world, "NAO", path)
    assert status == 403
    assert "Only the body that asked can download an extract" in html
    assert get(world, "RJ1", path)[0] == 403
    signing_in = world.client.get(path, follow_redirects=False)
    assert signing_in.status_code == 303  # a browser without a session is sent to sign in
    # The auditor sees the request and its extracts listed, with no download link.
    status, html = get(world, "NAO", f"/requests/{world.request_id}")
    assert status == 200
    assert f'data-extract="{extract["id"]}"' in html
    assert "/extracts/" not in html


def test_another_bodys_request_is_refused_and_an_unknown_one_is_404(world: World) -> None:
    status, html = get(world, "NHSE", f"/requests/{world.request_id}")
    assert status == 403
    assert "This request is CQC&#39;s, not NHSE&#39;s" in html
    assert "data-extract" not in html
    assert "Inspections" not in html
    assert get(world, "CQC", "/requests/no-such-request")[0] == 404
    assert get(world, "RJ1", f"/requests/{world.request_id}")[0] == 403


# -- the form ------------------------------------------------------------------------------


def test_only_a_body_gets_the_form(world: World) -> None:
    status, html = get(world, "CQC", "/requests/new")
    assert status == 200
    assert 'name="items"' in html
    for who in ("NAO", "RJ1"):
        status, html = get(world, who, "/requests/new")
        assert status == 403
        assert "Only oversight bodies can register requests" in html
    response = world.client.post("/requests/new", headers=world.orgs["NAO"], data=FORM)
    assert response.status_code == 403


def test_check_coverage_shows_the_dry_run_and_registers_nothing(world: World) -> None:
    before = len(api(world, "CQC", "/v1/requests"))
    response = world.client.post(
        "/requests/new", headers=world.orgs["CQC"], data={**FORM, "action": "preview"}
    )
    assert response.status_code == 200
    expected = dry_run(
        world,
        "CQC",
        items=ITEMS,
        organisations=["RJ1", "R0A"],
        period_start="2024-10",
        period_end="2025-06",
    )
    html = response.text
    shown = {
        k: float(v) for k, v in re.findall(r'data-preview-total="(\w+)" data-value="([^"]+)"', html)
    }
    assert shown == {
        "cells_requested": expected["coverage"]["cells_requested"],
        "cells_new": expected["coverage"]["cells_new"],
        "returns_imposed": expected["burden"]["returns_imposed"],
        "hours_avoided": pytest.approx(expected["burden"]["hours_avoided"]),
    }
    assert shown["cells_new"] < shown["cells_requested"]  # October to December are held
    assert cells(html, "preview-table")["ae_breaches"]["held"] == 2 * 3
    assert 'value="Four-hour performance"' in html  # the form keeps what was typed
    assert len(api(world, "CQC", "/v1/requests")) == before
    # The script's fragment is the same preview.
    fragment = world.client.post("/requests/preview", headers=world.orgs["CQC"], data=FORM)
    assert fragment.status_code == 200
    assert 'data-preview="ready"' in fragment.text
    assert "<html" not in fragment.text


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"title": ""}, "title", "Enter a title for the request"),
        ({"items": []}, "items", "Choose at least one item"),
        ({"org_codes": "RJ1, ZZZ"}, "org_codes", "There is no organisation with the ODS code ZZZ"),
        ({"org_codes": "CQC"}, "org_codes", "CQC is not an NHS trust"),
        ({"org_codes": "RJ1; <b>"}, "org_codes", "is not an ODS code"),
        ({"population": "region", "region": ""}, "region", "Choose a region"),
        ({"period_end": "2024-01"}, "period_end", "The last period must be after the first"),
        ({"period_start": "October"}, "period_start", "Enter the first period as a month"),
        ({"due_days": "soon"}, "due_days", "a whole number from 0 to 365"),
        ({"items": ["ae_attendances", "made_up"]}, "items", "Choose items from the list"),
    ],
)
def test_a_form_with_a_mistake_says_what_to_fix(
    world: World, change: dict[str, object], field: str, message: str
) -> None:
    before = len(api(world, "CQC", "/v1/requests"))
    response = world.client.post(
        "/requests/new", headers=world.orgs["CQC"], data={**FORM, **change, "action": "register"}
    )
    assert response.status_code == 422
    html = response.text
    summary = html.split('class="nhsuk-error-summary"', 1)[1].split("</div>", 1)[0]
    assert f'href="#{field}"' in summary
    assert message in html
    assert f'id="{field}"' in html  # the summary's link has somewhere to go
    assert "<b>" not in html  # what was typed comes back escaped
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>Error: New request" in html
    assert len(api(world, "CQC", "/v1/requests")) == before


def test_a_signed_in_body_registers_with_the_forms_token(world: World) -> None:
    with signed_in(world, "NHSE") as (client, form_token):
        assert form_token
        before = len(api(world, "NHSE", "/v1/requests"))
        refused = client.post("/requests/new", data={**FORM, "action": "register"})
        assert refused.status_code == 403  # no form token: not from this service's form
        forged = client.post(
            "/requests/new", data={**FORM, "action": "register", "form_token": "x" * 43}
        )
        assert forged.status_code == 403
        assert len(api(world, "NHSE", "/v1/requests")) == before
        posted = client.post(
            "/requests/new",
            data={**FORM, "action": "register", "form_token": form_token},
            follow_redirects=False,
        )
        assert posted.status_code == 303, posted.text
        request_id = posted.headers["location"].removeprefix("/requests/").split("?")[0]
        page = client.get(posted.headers["location"])
        assert page.status_code == 200
        assert "Your request has been registered" in page.text
    registered = api(world, "NHSE", f"/v1/requests/{request_id}")
    assert registered["body"] == "NHSE"
    assert registered["items"] == ITEMS
    assert registered["organisations"] == ["RJ1", "R0A"]
    assert (registered["period_start"], registered["period_end"]) == ("2024-10", "2025-06")
    assert registered["legal_basis"] == FORM["legal_basis"]
    assert len(api(world, "NHSE", "/v1/requests")) == before + 1


def test_a_region_or_every_trust_can_be_asked(world: World) -> None:
    for change, count in (
        ({"population": "region", "region": "Y62"}, 1),
        ({"population": "all"}, 2),
    ):
        response = world.client.post(
            "/requests/preview", headers=world.orgs["CQC"], data={**FORM, **change}
        )
        assert response.status_code == 200
        assert 'data-preview="ready"' in response.text
        assert f"across {count} trust" in response.text


def test_the_item_search_ranks_the_catalogue(world: World) -> None:
    status, html = get(world, "CQC", "/requests/new", q="four hour waits")
    assert status == 200
    ranked = re.findall(r'class="nhsuk-checkboxes__item" data-item="(\w+)"', html)
    assert ranked[0] == "ae_breaches"
    matches = api(world, "CQC", "/requests/items", q="four hour waits")
    assert matches[0]["code"] == "ae_breaches"
    assert [m["code"] for m in matches] == ranked[: len(matches)]
    # Searching from the form keeps what was typed and ticked.
    response = world.client.post(
        "/requests/new",
        headers=world.orgs["CQC"],
        data={**FORM, "items": ["rtt_over_52_weeks"], "q": "beds", "action": "search"},
    )
    assert response.status_code == 200
    html = response.text
    assert re.search(r'value="rtt_over_52_weeks" checked', html)
    assert 'value="Four-hour performance"' in html
    assert "There is a problem" not in html
