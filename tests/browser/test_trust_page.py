"""The page per trust in a real browser, over the demo: each viewer signs in and lands where it
should, the figures are the API's, the charts are drawn with their icons, and axe-core finds no
WCAG 2.2 AA violation on any of the pages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Console, Demo, axe_violations, sign_in


def totals(page: Any) -> dict[str, int]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-total]')]
            .map(e => [e.dataset.total, Number(e.dataset.value)]))"""
    )


def count(demo: Demo, who: str, path: str, **params: str) -> int:
    response = demo.api(path, demo.tokens[who], **params)
    assert response.status_code == 200, response.text
    return len(response.json())


def test_a_trust_signs_in_and_sees_its_own_page(page: Any, console: Console, demo: Demo) -> None:
    posted = sign_in(page, demo.tokens["RJ1"])
    assert posted.status == 303
    assert page.url == f"{demo.base}/trusts/RJ1"
    assert "(trust)" in page.locator(".nhsuk-header__account").inner_text()
    shown = totals(page)
    assert shown["overdue"] == count(demo, "RJ1", "/v1/asks", status="overdue")
    assert shown["outstanding"] == count(demo, "RJ1", "/v1/asks", status="outstanding")
    assert shown["accepted"] == count(demo, "RJ1", "/v1/submissions", status="accepted")
    assert shown["rejected"] == count(demo, "RJ1", "/v1/submissions", status="rejected") == 1
    assert shown["accepted"] >= 21  # a year of history, then April to December 2018
    # The demo's history is enough for every A&E item to be charted with its icons.
    sections = page.locator("section.app-indicator")
    assert sections.count() == 3
    for n in range(3):
        section = sections.nth(n)
        assert section.locator("svg.app-spc circle").count() >= 15
        assert section.locator("svg.app-spc title").text_content().startswith("SPC chart of")
        assert section.locator("[data-icon=variation] svg[role=img]").count() == 1
        assert section.locator("[data-icon=assurance] svg[role=img]").count() == 1
    # The rejected first attempt shows its errors; the API has the same first ones.
    rejected = page.locator(".app-submission", has=page.locator(".nhsuk-tag--red"))
    assert rejected.count() >= 1
    assert "department_type" in rejected.first.inner_text()
    assert page.locator("script:not([src])").count() == 0
    assert console.errors == []


def test_a_target_typed_in_gives_the_assurance_icon(page: Any, demo: Demo) -> None:
    sign_in(page, demo.tokens["RJ1"])
    page.fill("#target_ae_breaches", "100000")
    page.locator("#chart-ae_breaches button[type=submit]").click()
    page.wait_for_load_state()
    assert "target_ae_breaches=100000" in page.url
    icon = page.locator("#chart-ae_breaches [data-icon=assurance]")
    assert icon.get_attribute("data-value") == "pass"
    assert "the target is met every month" in icon.inner_text()


def test_a_body_sees_only_the_trusts_its_requests_name(
    page: Any, console: Console, demo: Demo
) -> None:
    posted = sign_in(page, demo.tokens["UKHSA"])
    assert posted.status == 303
    assert page.url == f"{demo.base}/requests"  # a body lands on its requests
    page.get_by_role("link", name="Trusts", exact=True).click()
    page.wait_for_load_state()
    listed = page.locator("#trusts tbody tr").count()
    requests = demo.api("/v1/requests", demo.tokens["UKHSA"]).json()
    (active,) = [r for r in requests if r["status"] == "active"]
    assert listed == active["org_count"] > 0
    # UKHSA's request is by region and quarter: it may never chart one trust.
    page.locator("#trusts tbody a").first.click()
    page.wait_for_load_state()
    assert page.locator("section.app-indicator").count() == 0
    assert page.locator("[data-not-charted=ae_admissions]").is_visible()
    assert page.locator("#submissions").count() == 0  # returns are not a body's to see
    page.goto("/trusts/RJ1")  # a London trust: not in UKHSA's North West request
    assert "None of UKHSA" in page.locator("main").inner_text()
    assert console.besides(403) == []


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("RJ1", "/trusts/RJ1"),
        ("RJ1", "/trusts/RJ1?target_ae_breaches=lots"),
        ("CQC", "/trusts"),
        ("CQC", "/trusts/RJ1"),
        ("NAO", "/trusts/R0A"),
        ("RJ1", "/trusts/R1K"),
    ],
    ids=["trust", "trust-with-error", "body-trusts", "body-trust", "auditor-trust", "refused"],
)
def test_trust_pages_have_no_accessibility_violations(
    axe_page: Any, demo: Demo, who: str, path: str
) -> None:
    sign_in(axe_page, demo.tokens[who])
    axe_page.goto(path)
    axe_page.wait_for_load_state("networkidle")
    # Open every table of points, so that axe checks them too.
    for summary in axe_page.locator("details summary").all():
        summary.click()
    assert axe_violations(axe_page) == []


def test_the_trust_page_works_with_the_keyboard_alone(page: Any, demo: Demo) -> None:
    sign_in(page, demo.tokens["RJ1"])
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to main content"
    page.keyboard.press("Enter")
    focused: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
        if focused[-1] == "target_ae_breaches":
            break
    assert focused[-1] == "target_ae_breaches"
    # Attendances: neither way is better, so no target to set (no field before breaches').
    assert "target_ae_attendances" not in focused
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    page.wait_for_url("**/trusts/RJ1?target_ae_breaches=1#chart-ae_breaches")
    icon = page.locator("#chart-ae_breaches [data-icon=assurance]")
    assert icon.get_attribute("data-value") == "fail"  # one breach a month: never met
