"""Full-page screenshots of the web pages, for the README: sign-in, burden report, trust pages,
a body's request and the request form.

Run against a broker serving the demo (`make run` in another terminal), with Debian's Chromium
(`apt-get install -y chromium`; `fonts-liberation` gives Arial's metrics):

    .venv/bin/python docs/screenshots/make_screenshots.py [--url http://127.0.0.1:8000]
        [--tokens var/demo-tokens.json]

It signs in through the form, as a person would: as the demo's auditor (NAO) for the burden
report, as a trust (RJ1) for its own page, and as a body (CQC) for the same trust's page, its
first request and the request form (filled in, with its coverage preview).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
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


def fill_request_form(page: Any) -> None:
    """The new-request form as an analyst fills it in, up to its coverage preview."""
    page.fill("#title", "A&E four-hour performance, London")
    page.fill("#purpose", "Inspection planning for London's emergency departments")
    page.fill("#legal_basis", "Health and Social Care Act 2008, section 64")
    page.fill("#q", "four hour waits")
    page.wait_for_selector("#q-status:has-text('closest first')")
    page.check("#items-list input[value=ae_breaches]")
    page.check("#population-region")
    page.select_option("#region", "Y56")
    page.fill("#period_start", "2018-10")
    page.fill("#period_end", "2019-03")
    page.wait_for_selector("#preview [data-preview=ready]")
    page.wait_for_function("!document.getElementById('preview').hasAttribute('aria-busy')")


def first_request(url: str, token: str) -> str:
    """The page of the body's newest request."""
    found = httpx.get(f"{url}/v1/requests", headers={"Authorization": f"Bearer {token}"})
    found.raise_for_status()
    return f"/requests/{found.json()[-1]['id']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--tokens", type=Path, default=Path("var/demo-tokens.json"))
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    tokens = json.loads(args.tokens.read_text())
    shots: list[tuple[str, str, str, Callable[[Any], None] | None]] = [
        # (who signs in, the page, the file, what they do there first)
        ("NAO", "/reports/burden", "burden-report.png", None),
        ("RJ1", "/trusts/RJ1", "trust-page.png", None),
        ("CQC", "/trusts/RJ1", "trust-page-as-body.png", None),
        ("CQC", first_request(args.url, tokens["CQC"]), "request-page.png", None),
        ("CQC", "/requests/new", "request-form.png", fill_request_form),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n, (who, path, name, action) in enumerate(shots):
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, base_url=args.url
            )
            page = context.new_page()
            page.goto("/sign-in")
            if n == 0:
                page.screenshot(path=args.out / "sign-in.png", full_page=True)
            page.fill("#token", tokens[who])
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if action is not None:
                action(page)
            page.screenshot(path=args.out / name, full_page=True)
            context.close()
            print(f"wrote {args.out / name}")
        browser.close()


if __name__ == "__main__":
    main()
