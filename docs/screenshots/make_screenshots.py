"""Full-page screenshots of the web pages, for the README: sign-in, burden report, trust pages.

Run against a broker serving the demo (`make run` in another terminal), with Debian's Chromium
(`apt-get install -y chromium`; `fonts-liberation` gives Arial's metrics):

    .venv/bin/python docs/screenshots/make_screenshots.py [--url http://127.0.0.1:8000]
        [--tokens var/demo-tokens.json]

It signs in through the form, as a person would: as the demo's auditor (NAO) for the burden
report, as a trust (RJ1) for its own page, and as a body (CQC) for the same trust's page.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--tokens", type=Path, default=Path("var/demo-tokens.json"))
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    tokens = json.loads(args.tokens.read_text())
    shots = [
        # (who signs in, the page, the file)
        ("NAO", "/reports/burden", "burden-report.png"),
        ("RJ1", "/trusts/RJ1", "trust-page.png"),
        ("CQC", "/trusts/RJ1", "trust-page-as-body.png"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n, (who, path, name) in enumerate(shots):
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
            page.screenshot(path=args.out / name, full_page=True)
            context.close()
            print(f"wrote {args.out / name}")
        browser.close()


if __name__ == "__main__":
    main()
