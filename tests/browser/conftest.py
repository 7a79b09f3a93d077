"""The auditors' web pages against a real `drb serve` with the demo loaded, and a real Chromium.

One server for the session: `drb migrate` and `drb seed-demo` in a temporary DRB_DATA_DIR (about
40 s), then `drb serve`. The browser is Debian's Chromium (`apt-get install -y chromium`) driven by
Playwright; `playwright install` is never needed. Without /usr/bin/chromium the browser tests are
skipped with the reason, or fail where services are required (CI). The pages' front end comes
from node_modules (`make assets`); without it the tests skip (or fail in CI) the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.processes import drb_env, run_drb, serving
from tests.service_urls import require_services

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
WEB_ASSETS = [
    REPO / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk" / "nhsuk-frontend.min.js",
    REPO / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js",
    REPO / "node_modules" / "swagger-ui-dist" / "swagger-ui-bundle.js",
    REPO / "node_modules" / "redoc" / "bundles" / "redoc.standalone.js",
    REPO / "services" / "broker" / "web" / "static" / "build" / "app.css",
    AXE,
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
VIEWPORT = {"width": 1280, "height": 900}


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail where nothing may be skipped (CI)."""
    if require_services():
        pytest.fail(f"{reason} (DRB_REQUIRE_SERVICES or CI is set, so this fails)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Demo:
    """A running broker with the demo loaded."""

    base: str
    tokens: dict[str, str]

    def api(self, path: str, token: str, **params: str) -> httpx.Response:
        return httpx.get(
            f"{self.base}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def dry_run(self, who: str, **spec: object) -> dict[str, Any]:
        """``POST /v1/requests?dry_run=true`` as ``who``: what the request would cost."""
        response = httpx.post(
            f"{self.base}/v1/requests",
            params={"dry_run": "true"},
            json={"title": "t", "purpose": "p", "legal_basis": "l", **spec},
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    @property
    def auditor(self) -> str:
        return self.tokens["NAO"]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`drb serve` over a freshly seeded demo (the auditor is NAO)."""
    missing = [str(p.relative_to(REPO)) for p in WEB_ASSETS if not p.exists()]
    if missing:
        unavailable(
            f"the web pages' front end is not built ({', '.join(missing)}): run `make assets`"
        )
    root = tmp_path_factory.mktemp("web-demo")
    env = drb_env(data_dir=str(root / "var"))
    for command in ("migrate", "seed-demo"):
        done = run_drb(command, env=env, timeout=600)
        assert done.returncode == 0, f"drb {command} failed:\n{done.stderr[-3000:]}"
    tokens = json.loads((root / "var" / "demo-tokens.json").read_text())
    with serving(env, root / "serve.log") as (base, _server):
        yield Demo(base, tokens)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright."""
    if not CHROMIUM.exists():
        unavailable(
            f"needs Chromium at {CHROMIUM}: `apt-get update && apt-get install -y chromium` "
            "(never `playwright install`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Console:
    """Errors the page reported: console.error messages and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def besides(self, *statuses: int) -> list[str]:
        """The errors other than Chromium's note that a page came with one of ``statuses``."""
        expected = {
            f"Failed to load resource: the server responded with a status of {status} "
            for status in statuses
        }
        return [e for e in self.errors if not any(e.startswith(x) for x in expected)]


@pytest.fixture
def page(browser: Any, demo: Demo) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies), relative URLs against the demo."""
    context = browser.new_context(viewport=VIEWPORT, base_url=demo.base)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def console(page: Any) -> Console:
    """The errors ``page`` reports from now on."""
    watcher = Console()
    watcher.watch(page)
    return watcher


@pytest.fixture
def axe_page(browser: Any, demo: Demo) -> Iterator[Any]:
    """A page whose Content-Security-Policy is bypassed, so that axe-core can be injected."""
    context = browser.new_context(viewport=VIEWPORT, base_url=demo.base, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Any, token: str) -> Any:
    """Fill in and send the sign-in form; returns the response to the POST."""
    page.goto("/sign-in")
    page.fill("#token", token)
    with page.expect_response(
        lambda r: r.url.endswith("/sign-in") and r.request.method == "POST"
    ) as posted:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return posted.value


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page (WCAG 2.0, 2.1, 2.2 A and AA); the violations, printed."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    violations: list[dict[str, Any]] = result["violations"]
    for violation in violations:
        print(f"axe: {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            print(f"  {node['target']}: {node.get('failureSummary', '')}")
    return violations
