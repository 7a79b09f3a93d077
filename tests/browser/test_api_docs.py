"""/docs (Swagger UI) and /redoc (ReDoc) in a real browser with no way out: everything they load
comes from the broker, they list every operation in /openapi.json, and Swagger UI's "Authorize"
sends the token with "Try it out"."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import Console, Demo

METHODS = ("get", "post", "put", "patch", "delete")
# ReDoc's footer shows Redocly's logo from its CDN; the page's policy blocks it (and ReDoc then
# hides it). Nothing else may be refused.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def operations(demo: Demo) -> set[tuple[str, str]]:
    spec = httpx.get(f"{demo.base}/openapi.json", timeout=30).json()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def open_docs(page: Any, base: str, path: str, ready: str) -> tuple[str, list[str]]:
    """Open ``path`` and wait for ``ready``: its Content-Security-Policy (checked strict), and
    every request the page made to anywhere but the broker (blob: and data: URLs are local)."""
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: r.url.startswith((base, "blob:", "data:")) or elsewhere.append(r.url),
    )
    response = page.goto(path)
    assert response.status == 200
    policy: str = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe" not in policy
    page.wait_for_selector(ready)
    assert page.locator("script:not([src])").count() == 0
    return policy, elsewhere


def test_swagger_ui_lists_every_operation_from_the_broker_alone(
    page: Any, console: Console, demo: Demo
) -> None:
    _, elsewhere = open_docs(page, demo.base, "/docs", ".opblock")
    shown = page.locator(".opblock-summary").evaluate_all(
        """els => els.map(e => [
            e.querySelector('.opblock-summary-method').textContent,
            e.querySelector('.opblock-summary-path').dataset.path])"""
    )
    expected = operations(demo)
    assert len(expected) >= 30
    assert {(method, path) for method, path in shown} == expected
    assert len(shown) == len(expected)
    assert elsewhere == []
    assert console.errors == []


def test_authorize_in_swagger_ui_sends_the_token(page: Any, console: Console, demo: Demo) -> None:
    page.goto("/docs")
    page.wait_for_selector(".opblock")
    path = page.locator(".opblock-summary-path[data-path='/v1/asks']")
    block = page.locator(".opblock", has=path)
    block = block.filter(has=page.locator(".opblock-summary-method", has_text="GET"))

    def execute() -> Any:
        """Open the operation and "Try it out" if not yet done, then "Execute"."""
        if not block.locator(".try-out").count():
            block.locator(".opblock-summary").first.click()
        if block.locator("button.try-out__btn", has_text="Try it out").count():
            block.locator("button.try-out__btn").click()
        with page.expect_response(lambda r: "/v1/asks" in r.url) as answered:
            block.locator("button.execute").click()
        return answered.value

    # Before "Authorize" the API refuses, and the page shows the problem.
    refused = execute()
    assert refused.status == 401
    assert "authorization" not in refused.request.headers
    # "Authorize" with RJ1's token: the same call now carries it and gets RJ1's asks.
    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").fill(demo.tokens["RJ1"])
    dialog.locator("button.authorize[type=submit]").click()
    assert dialog.locator("button", has_text="Logout").count() == 1
    dialog.locator("button.close-modal").click()
    block.locator("button.btn-clear").click()
    answered = execute()
    assert answered.status == 200
    assert answered.request.headers["authorization"] == f"Bearer {demo.tokens['RJ1']}"
    asks = answered.json()
    assert asks
    assert {ask["org_code"] for ask in asks} == {"RJ1"}
    status = block.locator(".live-responses-table tr.response td.response-col_status")
    assert status.inner_text().startswith("200")
    assert console.besides(401) == []


def test_redoc_renders_every_operation_from_the_broker_alone(
    page: Any, console: Console, demo: Demo
) -> None:
    policy, elsewhere = open_docs(page, demo.base, "/redoc", "[data-section-id^='operation/']")
    rendered = page.locator("[data-section-id^='operation/']").count()
    assert rendered == len(operations(demo))
    # Its styles applied (a nonce per response): the sidebar is laid out beside the content.
    menu = page.locator(".menu-content").bounding_box()
    assert menu is not None
    assert menu["width"] > 150
    assert elsewhere in ([], [REDOC_LOGO])
    assert [e for e in console.errors if REDOC_LOGO not in e] == []
    # A second load gets a fresh nonce.
    again = httpx.get(f"{demo.base}/redoc", timeout=30).headers["content-security-policy"]
    assert again != policy
