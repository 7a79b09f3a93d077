"""The page per trust (/trusts/{code}): who sees what, and every figure as the API gives it.

A trust sees its own page only; a body the trusts its active requests name, with the asks its
requests need, no returns, and charts of only the items and months its trust-level monthly
requests cover; an auditor every trust, with warnings but never their figures. Run on SQLite and
PostgreSQL (the ``client`` fixture), through the app as a browser or script reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from services.catalogue import reminders
from tests.api_calls import send_ae
from tests.conftest import ADMIN_TOKEN, bearer, module_broker, organisations

Headers = dict[str, str]

# RJ1 sends a year of returns, then January 2025 with an extra zero (a warning); R1K and R0A send
# December and January only, to rank RJ1 against.
YEAR_HELD = [f"2024-{m:02d}" for m in range(1, 13)]
LAST = "2024-12"
TYPO = "2025-01"
NEXT_YEAR = f"{date.today().year + 1}-01"  # a month whose ask is not yet due


@dataclass
class World:
    client: TestClient
    orgs: dict[str, Headers]
    admin: Headers
    typo_id: str


def _request(client: TestClient, body: Headers, **spec: object) -> None:
    request: dict[str, object] = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "due_days": 20,
        **spec,
    }
    response = client.post("/v1/requests", json=request, headers=body)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One broker per database for the whole module (the pages only read; the tests that sign
    in leave no session behind)."""
    root = tmp_path_factory.mktemp("trust-pages")
    with module_broker(request, root) as client:
        admin = bearer(ADMIN_TOKEN)
        orgs = organisations(
            client,
            [
                ("RJ1", "trust", "Y56"),
                ("R1K", "trust", "Y56"),
                ("R0A", "trust", "Y62"),
                ("CQC", "oversight_body", None),
                ("NHSE", "oversight_body", None),
                ("NAO", "auditor", None),
            ],
        )
        for n, month in enumerate(YEAR_HELD):
            send_ae(client, orgs["RJ1"], "RJ1", month, attendances=9000 + (n % 3) * 150)
        typo = send_ae(client, orgs["RJ1"], "RJ1", TYPO, attendances=91000)
        for month in (LAST, TYPO):
            send_ae(client, orgs["R1K"], "R1K", month, attendances=200000)
            send_ae(client, orgs["R0A"], "R0A", month, attendances=3000)
        # CQC: RJ1 and R0A by trust, the second half of 2024 (R0A's first five months are
        # overdue asks) and next January (outstanding for both).
        both = ["RJ1", "R0A"]
        items = ["ae_attendances", "ae_breaches"]
        _request(
            client,
            orgs["CQC"],
            items=items,
            organisations=both,
            period_start="2024-07",
            period_end=LAST,
        )
        _request(
            client,
            orgs["CQC"],
            items=items,
            organisations=both,
            period_start=NEXT_YEAR,
            period_end=NEXT_YEAR,
        )
        # NHSE: admissions for London by region: a grain that never charts one trust.
        _request(
            client,
            orgs["NHSE"],
            items=["ae_admissions"],
            organisations={"region": "Y56"},
            org_level="region",
            period_start="2024-07",
            period_end=LAST,
        )
        yield World(client, orgs, admin, typo)


def page(world: World, who: str, code: str, **params: str) -> tuple[int, str]:
    response = world.client.get(f"/trusts/{code}", headers=world.orgs[who], params=params)
    assert response.headers["content-type"].startswith("text/html")
    return response.status_code, response.text


def totals(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-total="(\w+)" data-value="(\d+)"', html)}


def charted(html: str) -> list[str]:
    return re.findall(r'<section class="app-indicator" id="chart-(\w+)"', html)


def points(html: str, item: str) -> list[tuple[str, float, str]]:
    table = html.split(f'data-points="{item}"', 1)[1].split("</table>", 1)[0]
    return [
        (period, float(value), point_type)
        for period, value, point_type in re.findall(
            r'data-period="([^"]+)" data-value="([^"]+)" data-point-type="([^"]+)"', table
        )
    ]


def icon(html: str, item: str, kind: str) -> str:
    section = html.split(f'id="chart-{item}"', 1)[1].split("</section>", 1)[0]
    found = re.search(rf'data-icon="{kind}" data-value="([^"]+)"', section)
    assert found is not None
    return found[1]


def standing(html: str, item: str) -> str:
    found = re.search(rf'data-standing="{item}">([^<]+)<', html)
    assert found is not None
    return found[1]


def audit_events(world: World, action: str, since: datetime) -> list[dict[str, Any]]:
    response = world.client.get(
        "/v1/audit-events",
        headers=world.orgs["NAO"],
        params={"limit": "10000", "since": since.isoformat()},
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["action"] == action]


def count_api(world: World, who: str, path: str, **params: str) -> int:
    response = world.client.get(path, headers=world.orgs[who], params=params)
    assert response.status_code == 200, response.text
    return len(response.json())


def test_a_trust_sees_its_own_page_with_the_apis_figures(world: World) -> None:
    status, html = page(world, "RJ1", "RJ1")
    assert status == 200
    shown = totals(html)
    assert shown["overdue"] == count_api(world, "RJ1", "/v1/asks", status="overdue")
    assert shown["outstanding"] == count_api(world, "RJ1", "/v1/asks", status="outstanding")
    assert shown["outstanding"] == 1  # next January, for CQC
    assert shown["accepted"] == count_api(world, "RJ1", "/v1/submissions", status="accepted")
    assert shown["accepted"] == len(YEAR_HELD) + 1  # and the January with an extra zero
    assert shown["rejected"] == 0
    assert charted(html) == ["ae_attendances", "ae_breaches", "ae_admissions"]
    # Each chart is the API's chart of the same months, in the item's direction.
    for item, direction in (("ae_attendances", "neutral"), ("ae_breaches", "decrease")):
        api = world.client.get(
            f"/v1/indicators/{item}/spc",
            headers=world.orgs["RJ1"],
            params={
                "org_code": "RJ1",
                "period_start": YEAR_HELD[0],
                "period_end": TYPO,
                "improvement_direction": direction,
            },
        ).json()
        assert points(html, item) == [
            (p["period"], pytest.approx(p["value"]), p["point_type"]) for p in api["points"]
        ]
        assert icon(html, item, "variation") == api["variation_icon"]
        assert icon(html, item, "assurance") == "none"
    # January: R1K 200,000 type 1 attendances, RJ1 91,000 (the typo), R0A 3,000.
    assert standing(html, "ae_attendances").startswith("2nd highest in 2025-01, of 3 trusts")
    # The same breaches everywhere: ties share the best rank.
    assert standing(html, "ae_breaches").startswith("1st lowest in 2025-01, of 3 trusts")
    assert "Recent returns" in html


@pytest.mark.parametrize("other", ["R1K", "R0A"])
def test_a_trust_cannot_open_another_trusts_page(world: World, other: str) -> None:
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    status, html = page(world, "RJ1", other)
    assert status == 403
    assert "A trust sees its own page only" in html
    assert "app-indicator" not in html
    assert "data-total" not in html
    events = audit_events(world, "web.trust_page_refused", since)
    assert [(e["actor"], e["subject_id"]) for e in events] == [("RJ1", other)]


def test_an_unknown_trust_is_404(world: World) -> None:
    status, html = page(world, "NAO", "ZZZ")
    assert status == 404
    assert "There is no NHS trust with the code" in html
    assert page(world, "NAO", "CQC")[0] == 404  # a body has no trust page


def test_a_body_sees_only_what_its_requests_cover(world: World) -> None:
    status, html = page(world, "CQC", "RJ1")
    assert status == 200
    # Its asks of RJ1: next January only (the second half of 2024 was already held).
    shown = totals(html)
    assert shown == {
        "overdue": count_api(world, "CQC", "/v1/asks", status="overdue", org_code="RJ1"),
        "outstanding": count_api(world, "CQC", "/v1/asks", status="outstanding", org_code="RJ1"),
    }
    assert shown["outstanding"] == 1
    assert "Recent returns" not in html  # the submissions API is not a body's
    assert charted(html) == ["ae_attendances", "ae_breaches"]  # not admissions: not asked
    assert [p[0] for p in points(html, "ae_attendances")] == YEAR_HELD[6:]  # its months only
    assert standing(html, "ae_attendances").startswith(
        "1st highest in 2024-12, of 2 trusts your requests name"
    )
    # R0A: five overdue asks, no chart yet (one month held).
    status, html = page(world, "CQC", "R0A")
    assert status == 200
    assert totals(html)["overdue"] == 5
    assert count_api(world, "CQC", "/v1/asks", status="overdue", org_code="R0A") == 5
    assert charted(html) == []
    assert 'data-not-charted="ae_attendances"' in html


def test_a_body_cannot_open_a_trust_its_requests_do_not_name(world: World) -> None:
    status, html = page(world, "CQC", "R1K")
    assert status == 403
    assert str(escape("None of CQC's active requests names R1K")) in html
    assert "app-indicator" not in html
    listed = world.client.get("/trusts", headers=world.orgs["CQC"]).text
    assert sorted(re.findall(r'href="/trusts/(\w+)"', listed)) == ["R0A", "RJ1"]


def test_a_region_level_request_never_charts_one_trust(world: World) -> None:
    status, html = page(world, "NHSE", "RJ1")
    assert status == 200
    assert charted(html) == []
    assert 'data-not-charted="ae_admissions"' in html
    assert "by region, for the nation" in html
    assert "data-points" not in html


def test_an_auditor_sees_every_trust_and_warnings_without_figures(world: World) -> None:
    client, rj1 = world.client, world.orgs["RJ1"]
    (warning,) = client.get(f"/v1/submissions/{world.typo_id}", headers=rj1).json()["warnings"]
    status, own = page(world, "RJ1", "RJ1")
    assert status == 200
    assert str(escape(warning["message"])) in own  # the trust sees its figures
    status, html = page(world, "NAO", "RJ1")
    assert status == 200
    assert "Check A&amp;E attendances, 2025-01" in html
    assert f"{warning['value']:,.0f}" not in html.split('id="indicators"')[0]
    assert totals(html)["accepted"] == 13
    listed = client.get("/trusts", headers=world.orgs["NAO"]).text
    assert sorted(re.findall(r'href="/trusts/(\w+)"', listed)) == ["R0A", "R1K", "RJ1"]


def test_every_chart_shown_is_an_audited_read(world: World) -> None:
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    page(world, "CQC", "RJ1")
    events = [e for e in audit_events(world, "indicator.read", since) if e["actor"] == "CQC"]
    assert sorted(e["subject_id"] for e in events) == ["ae_attendances", "ae_breaches"]
    assert {e["detail"]["org_code"] for e in events} == {"RJ1"}


def test_a_target_gives_the_assurance_icon(world: World) -> None:
    status, html = page(world, "RJ1", "RJ1", target_ae_breaches="100000")
    assert status == 200
    assert icon(html, "ae_breaches", "assurance") == "pass"  # fewer is better: always below
    status, html = page(world, "RJ1", "RJ1", target_ae_breaches="1")
    assert icon(html, "ae_breaches", "assurance") == "fail"
    status, html = page(world, "RJ1", "RJ1", target_ae_breaches="lots")
    assert status == 422
    assert "There is a problem" in html
    assert "Enter the target for A&amp;E attendances over 4 hours as a number" in html
    assert icon(html, "ae_breaches", "assurance") == "none"
    status, html = page(world, "RJ1", "RJ1", colour="red")
    assert status == 422
    assert "is not something this page can show" in html


def test_a_trust_signs_in_and_lands_on_its_page(world: World) -> None:
    client = world.client
    client.cookies.clear()
    token = world.orgs["RJ1"]["Authorization"].removeprefix("Bearer ")
    form = client.get("/sign-in")
    form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    assert form_token is not None
    posted = client.post(
        "/sign-in", data={"token": token, "form_token": form_token[1]}, follow_redirects=False
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == "/trusts/RJ1"
    assert client.get("/trusts/RJ1").status_code == 200
    assert client.get("/trusts/R1K").status_code == 403
    refused = client.get("/reports/burden")
    assert refused.status_code == 403
    assert "Only auditors can see this report" in refused.text
    listed = client.get("/trusts")
    assert set(re.findall(r'href="/trusts/(\w+)"', listed.text)) == {"RJ1"}
    client.cookies.clear()  # the module's other tests send bearer tokens only


def test_a_steward_cannot_sign_in(world: World) -> None:
    client = world.client
    form = client.get("/sign-in")
    form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    assert form_token is not None
    token = world.admin["Authorization"].removeprefix("Bearer ")
    posted = client.post("/sign-in", data={"token": token, "form_token": form_token[1]})
    assert posted.status_code == 403
    assert "Only trusts, oversight bodies and auditors can sign in here" in posted.text
    assert page(world, "NAO", "RJ1")[0] == 200
    refused = client.get("/trusts/RJ1", headers=world.admin)
    assert refused.status_code == 403


def test_the_trust_and_auditors_see_the_reminders_sent_and_bodies_do_not(world: World) -> None:
    runtime = world.client.app.state.runtime  # type: ignore[attr-defined]
    reminders.run_pass(factory=runtime.factory, settings=runtime.settings, today=date.today())
    sent = world.client.get(
        "/v1/notifications", headers=world.orgs["R0A"], params={"kind": "trust_reminder"}
    ).json()
    assert len(sent) == 1
    assert len(sent[0]["asks"]) == 5  # R0A's overdue months of CQC's request
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    for who in ("R0A", "NAO"):
        status, html = page(world, who, "R0A")
        assert status == 200
        assert re.findall(r'data-reminder="([\w-]+)"', html) == [sent[0]["id"]]
        assert str(escape(sent[0]["subject"])) in html
    reads = audit_events(world, "notifications.read", since)
    assert [(e["actor"], e["subject_id"]) for e in reads] == [("R0A", "R0A"), ("NAO", "R0A")]
    # RJ1 has sent everything due: no reminder. A body never sees a trust's reminders.
    status, html = page(world, "RJ1", "RJ1")
    assert "No reminder has been sent" in html
    status, html = page(world, "CQC", "R0A")
    assert status == 200
    assert 'id="reminders"' not in html
