"""The burden report page in a real browser: signing in, figures, sorting, CSV, accessibility."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalogue.burden_report import FIGURES
from tests.browser.conftest import Console, Demo, axe_violations, sign_in


def figures_shown(page: Any) -> dict[str, float]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-total]')]
            .map(e => [e.dataset.total, Number(e.dataset.value)]))"""
    )


def table_rows(page: Any, table: str) -> list[list[str]]:
    """Each row's key, then each cell's sort value, in the order shown."""
    return page.evaluate(
        """id => [...document.querySelectorAll(`#${id} tbody tr`)].map(tr => [
            tr.dataset.key, ...[...tr.querySelectorAll('td')].map(td => td.dataset.sortValue)])""",
        table,
    )


def test_an_auditor_signs_in_and_sees_the_apis_figures(
    page: Any, console: Console, demo: Demo
) -> None:
    posted = sign_in(page, demo.auditor)
    assert posted.status == 303
    assert page.url == f"{demo.base}/reports/burden"
    api = demo.api("/v1/reports/burden", demo.auditor)
    assert api.status_code == 200
    report = api.json()

    shown = figures_shown(page)
    assert shown == {f: pytest.approx(report["totals"][f]) for f in FIGURES}
    assert shown["hours_avoided"] > 0  # the demo's requests overlap, so something is avoided
    text = page.locator("[data-total=cost_avoided_gbp]").inner_text()
    assert text == f"£{report['totals']['cost_avoided_gbp']:,.2f}"

    # Every breakdown row, figure by figure (the tables sort by label; compare by key).
    for kind, key in (("body", "body"), ("trust", "org_code"), ("dataset", "dataset")):
        rows = {r[0]: [float(v) for v in r[1:]] for r in table_rows(page, f"burden-by-{kind}")}
        assert rows == {
            row[key]: [pytest.approx(row[f]) for f in FIGURES] for row in report[f"by_{kind}"]
        }
    months = table_rows(page, "burden-by-month")
    assert [r[0] for r in months] == [row["period"] for row in report["by_month"]]

    completeness = demo.api("/v1/reports/completeness", demo.auditor).json()
    shown_completeness = {r[0]: r[1:7] for r in table_rows(page, "completeness-by-dataset")}
    assert shown_completeness == {
        row["dataset"]: [
            str(row[f]) for f in ("asks", "due", "returned", "on_time", "late", "outstanding")
        ]
        for row in completeness["by_dataset"]
    }

    # The charts are drawn by Chart.js, each with a text alternative.
    for chart in ("chart-by-month", "chart-by-body"):
        canvas = page.locator(f"#{chart}")
        assert canvas.get_attribute("role") == "img"
        assert "Bar chart" in canvas.get_attribute("aria-label")
        assert page.evaluate("id => Chart.getChart(id) !== undefined", chart)
    assert "NHS England" in page.locator("#chart-by-body").get_attribute("aria-label")

    assert page.locator("script:not([src])").count() == 0
    assert console.errors == []


def test_the_session_cookie_is_http_only_and_same_site_strict(page: Any, demo: Demo) -> None:
    sign_in(page, demo.auditor)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["drb_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["secure"] is False  # served over http here; Secure when over https
    assert session["path"] == "/"
    assert demo.auditor not in session["value"]
    assert "drb_session" not in page.evaluate("document.cookie")


def test_a_steward_cannot_sign_in(page: Any, console: Console, demo: Demo) -> None:
    posted = sign_in(page, demo.tokens["DRB-DEMO"])
    assert posted.status == 403
    assert page.url == f"{demo.base}/sign-in"
    summary = page.locator(".nhsuk-error-summary")
    assert "Only trusts, oversight bodies and auditors can sign in" in summary.inner_text()
    assert page.title().startswith("Error: ")
    assert "drb_session" not in {c["name"] for c in page.context.cookies()}
    page.goto("/reports/burden")
    assert page.url == f"{demo.base}/sign-in"
    assert console.besides(403) == []


def test_a_browser_without_a_session_is_sent_to_sign_in(page: Any, demo: Demo) -> None:
    page.goto("/reports/burden")
    assert page.url == f"{demo.base}/sign-in"


def test_signing_out_ends_the_session(page: Any, demo: Demo) -> None:
    sign_in(page, demo.auditor)
    page.click("text=Sign out")
    page.wait_for_url(f"{demo.base}/sign-in")
    page.goto("/reports/burden")
    assert page.url == f"{demo.base}/sign-in"


def test_clicking_a_header_sorts_the_table(page: Any, console: Console, demo: Demo) -> None:
    sign_in(page, demo.auditor)
    table = "burden-by-month"
    headers = page.locator(f"#{table} thead th")
    assert headers.nth(0).get_attribute("aria-sort") == "ascending"  # the server's order
    before = table_rows(page, table)
    hours_avoided = 1 + FIGURES.index("hours_avoided")

    headers.nth(hours_avoided).locator("button").click()
    after = table_rows(page, table)
    assert headers.nth(hours_avoided).get_attribute("aria-sort") == "descending"
    assert headers.nth(0).get_attribute("aria-sort") is None
    assert after != before
    values = [float(r[hours_avoided]) for r in after]
    assert values == sorted(values, reverse=True)
    status = page.locator(f"#{table} >> xpath=preceding-sibling::*[@role='status']")
    assert status.inner_text() == "Sorted by Hours avoided, descending"

    headers.nth(hours_avoided).locator("button").click()
    assert headers.nth(hours_avoided).get_attribute("aria-sort") == "ascending"
    values = [float(r[hours_avoided]) for r in table_rows(page, table)]
    assert values == sorted(values)

    headers.nth(0).locator("button").click()  # months sort by date, not by name
    assert headers.nth(0).get_attribute("aria-sort") == "ascending"
    assert table_rows(page, table) == before
    headers.nth(0).locator("button").click()
    assert headers.nth(0).get_attribute("aria-sort") == "descending"
    assert table_rows(page, table) == before[::-1]
    assert console.errors == []


def test_the_csv_link_downloads_the_apis_csv(page: Any, demo: Demo) -> None:
    sign_in(page, demo.auditor)
    page.fill("#month_from", "2018-10")
    page.fill("#month_to", "2019-03")
    page.click("text=Show these months")
    page.wait_for_url("**/reports/burden?month_from=2018-10&month_to=2019-03")
    with page.expect_download() as download:
        page.click("text=Download this report as CSV")
    body = download.value.path().read_bytes()
    assert download.value.suggested_filename == "burden-report.csv"
    api = demo.api(
        "/v1/reports/burden", demo.auditor, format="csv", month_from="2018-10", month_to="2019-03"
    )
    assert body == api.content
    everything = demo.api("/v1/reports/burden", demo.auditor, format="csv")
    assert body != everything.content  # the months chosen on the page were applied
    assert body.decode().splitlines()[0].startswith("breakdown,key,returns_requested")


def test_a_bad_month_shows_an_error_summary(page: Any, console: Console, demo: Demo) -> None:
    sign_in(page, demo.auditor)
    response = page.goto("/reports/burden?month_from=2018-13")
    assert response.status == 422
    summary = page.locator(".nhsuk-error-summary")
    assert summary.is_visible()
    assert summary.locator("a").get_attribute("href") == "#month_from"
    assert "nhsuk-input--error" in page.locator("#month_from").get_attribute("class")
    assert page.locator("[data-total]").count() == 0
    assert console.besides(422) == []


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [
        ("/sign-in", False),
        ("/reports/burden", True),
        ("/reports/burden?month_from=2019-01&month_to=2018-01", True),
        ("/reports/burden/ledger?limit=50", True),
        ("/reports/burden/ledger?limit=0", True),
    ],
    ids=["sign-in", "report", "report-with-errors", "ledger", "ledger-with-errors"],
)
def test_pages_have_no_accessibility_violations(
    axe_page: Any, demo: Demo, path: str, signed_in: bool
) -> None:
    if signed_in:
        sign_in(axe_page, demo.auditor)
    axe_page.goto(path)
    axe_page.wait_for_load_state("networkidle")
    assert axe_violations(axe_page) == []


def test_a_failed_sign_in_has_no_accessibility_violations(axe_page: Any, demo: Demo) -> None:
    sign_in(axe_page, "drb_not-a-real-token")
    assert axe_page.locator(".nhsuk-error-summary").is_visible()
    assert axe_violations(axe_page) == []
