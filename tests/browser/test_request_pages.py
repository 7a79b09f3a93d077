"""The bodies' pages in a real browser over the demo: a body lands on its requests, a request's
figures are the API's and its extract downloads; the form previews coverage as it is filled in
(by mouse or keyboard alone) and registers; axe-core finds no WCAG 2.2 AA violation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Console, Demo, axe_violations, sign_in

# A request the demo already holds in full (CQC's London trusts send April to September 2018),
# so registering it asks nothing more of any trust and leaves the other tests' figures as they
# are.
HELD_MONTHS = ("2018-04", "2018-09")


def totals(page: Any) -> dict[str, float]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-total]')]
            .map(e => [e.dataset.total, Number(e.dataset.value)]))"""
    )


def first_request(demo: Demo, who: str) -> dict[str, Any]:
    requests = demo.api("/v1/requests", demo.tokens[who]).json()
    with_extracts = [
        r for r in requests if demo.api("/v1/extracts", demo.tokens[who], request_id=r["id"]).json()
    ]
    assert with_extracts, f"{who} has no request with an extract in the demo"
    request: dict[str, Any] = with_extracts[0]
    return request


def test_a_body_lands_on_its_requests_and_downloads_an_extract(
    page: Any, console: Console, demo: Demo
) -> None:
    posted = sign_in(page, demo.tokens["CQC"])
    assert posted.status == 303
    assert page.url == f"{demo.base}/requests"
    rows = page.locator("#requests tbody tr")
    assert rows.count() == len(demo.api("/v1/requests", demo.tokens["CQC"]).json())
    request = first_request(demo, "CQC")
    page.locator(f"[data-request='{request['id']}'] a").click()
    page.wait_for_load_state()
    assert page.url == f"{demo.base}/requests/{request['id']}"
    shown = totals(page)
    api = demo.api(f"/v1/requests/{request['id']}", demo.tokens["CQC"]).json()
    assert shown["returns_requested"] == api["burden"]["returns_requested"]
    assert shown["hours_avoided"] == pytest.approx(api["burden"]["hours_avoided"])
    assert shown["asks_overdue"] == api["asks"]["overdue"]
    extracts = demo.api("/v1/extracts", demo.tokens["CQC"], request_id=request["id"]).json()
    assert page.locator("[data-extract]").count() == len(extracts)
    with page.expect_download() as downloading:
        page.locator(f"[data-extract='{extracts[0]['id']}'] a[download]").click()
    download = downloading.value
    with open(download.path(), "rb") as got:
        content = got.read()
    expected = demo.api(f"/v1/extracts/{extracts[0]['id']}/download", demo.tokens["CQC"])
    assert content == expected.content
    assert download.suggested_filename.endswith(".parquet")
    assert console.errors == []


def fill_form(page: Any) -> None:
    page.fill("#title", "Four-hour performance, London")
    page.fill("#purpose", "Inspection planning")
    page.fill("#legal_basis", "Health and Social Care Act 2008, section 64")
    page.check("#items-list input[value=ae_breaches]")
    page.fill("#org_codes", "RJ1, R1K")
    page.fill("#period_start", HELD_MONTHS[0])
    page.fill("#period_end", HELD_MONTHS[1])


def test_the_form_previews_coverage_as_it_is_filled_in_then_registers(
    page: Any, console: Console, demo: Demo
) -> None:
    sign_in(page, demo.tokens["CQC"])
    page.goto("/requests/new")
    assert page.locator("#preview [data-preview=empty]").count() == 1
    # The search ranks the catalogue as the analyst types: the near-duplicate comes first.
    page.fill("#q", "four hour waits")
    page.wait_for_selector("#q-status:has-text('closest first')")
    visible = page.locator("#items-list .nhsuk-checkboxes__item:visible")
    assert visible.first.get_attribute("data-item") == "ae_breaches"
    assert visible.count() < page.locator("#items-list .nhsuk-checkboxes__item").count()
    fill_form(page)
    page.wait_for_selector("#preview [data-preview=ready]")  # no button pressed
    page.wait_for_function("!document.getElementById('preview').hasAttribute('aria-busy')")
    expected = demo.dry_run(
        "CQC",
        items=["ae_breaches"],
        organisations=["RJ1", "R1K"],
        period_start=HELD_MONTHS[0],
        period_end=HELD_MONTHS[1],
    )
    preview = page.locator("#preview")
    cells_new = preview.locator("[data-preview-total=cells_new]").get_attribute("data-value")
    assert int(cells_new) == expected["coverage"]["cells_new"] == 0
    hours = preview.locator("[data-preview-total=hours_avoided]").get_attribute("data-value")
    assert float(hours) == pytest.approx(expected["burden"]["hours_avoided"])
    before = len(demo.api("/v1/requests", demo.tokens["CQC"]).json())
    page.get_by_role("button", name="Register request").click()
    page.wait_for_url("**/requests/*?registered=1")
    assert "Your request has been registered" in page.locator("main").inner_text()
    assert len(demo.api("/v1/requests", demo.tokens["CQC"]).json()) == before + 1
    assert console.errors == []


def test_the_form_works_with_the_keyboard_alone(page: Any, demo: Demo) -> None:
    sign_in(page, demo.tokens["CQC"])
    page.goto("/requests/new")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to main content"
    page.keyboard.press("Enter")

    def tab_to(element_id: str) -> None:
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    tab_to("title")
    page.keyboard.type("Keyboard request")
    tab_to("purpose")
    page.keyboard.type("Checking the form without a mouse")
    tab_to("legal_basis")
    page.keyboard.type("HSCA 2008 s64")
    tab_to("q")
    page.keyboard.type("over 4 hours")
    page.keyboard.press("Enter")  # searches; never sends the form
    page.wait_for_selector("#q-status:has-text('closest first')")
    assert page.url.endswith("/requests/new#maincontent")  # still the empty form
    tab_to("items-ae_breaches")
    page.keyboard.press("Space")
    tab_to("population-list")  # the checked radio of the group takes the focus
    tab_to("org_codes")
    page.keyboard.type("RJ1")
    tab_to("period_start")
    page.keyboard.type(HELD_MONTHS[0])
    tab_to("period_end")
    page.keyboard.type(HELD_MONTHS[1])
    page.wait_for_selector("#preview [data-preview=ready]")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Register request":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/requests/*?registered=1")
    assert page.locator("h1").inner_text() == "Keyboard request"


@pytest.mark.parametrize(
    ("who", "path", "action"),
    [
        ("CQC", "/requests", None),
        ("CQC", "first", None),
        ("NAO", "/requests", None),
        ("NAO", "first", None),
        ("CQC", "/requests/new", None),
        ("CQC", "/requests/new", "preview"),
        ("CQC", "/requests/new", "errors"),
    ],
    ids=[
        "body-list",
        "body-request",
        "auditor-list",
        "auditor-request",
        "form",
        "preview",
        "errors",
    ],
)
def test_request_pages_have_no_accessibility_violations(
    axe_page: Any, demo: Demo, who: str, path: str, action: str | None
) -> None:
    sign_in(axe_page, demo.tokens[who])
    if path == "first":
        path = f"/requests/{first_request(demo, 'CQC')['id']}"
    axe_page.goto(path)
    if action == "preview":
        fill_form(axe_page)
        axe_page.get_by_role("button", name="Check coverage").click()
        axe_page.wait_for_selector("#preview [data-preview=ready]")
    elif action == "errors":
        axe_page.get_by_role("button", name="Register request").click()
        axe_page.wait_for_selector(".nhsuk-error-summary")
    axe_page.wait_for_load_state("networkidle")
    assert axe_violations(axe_page) == []
