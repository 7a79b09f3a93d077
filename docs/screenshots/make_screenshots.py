"""Full-page screenshots of the auditors' pages, for the README: sign-in.png and burden-report.png.

Run against a broker serving the demo (`make run` in another terminal), with Debian's Chromium
(`apt-get install -y chromium`; `fonts-liberation` gives Arial's metrics):

    .venv/bin/python docs/screenshots/make_screenshots.py [--url http://127.0.0.1:8000]
        [--tokens var/demo-tokens.json]

It signs in as the demo's auditor (NAO) through the form, as a person would.
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
    token = json.loads(args.tokens.read_text())["NAO"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=args.url)
        page.goto("/sign-in")
        page.screenshot(path=args.out / "sign-in.png", full_page=True)
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url("**/reports/burden")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=args.out / "burden-report.png", full_page=True)
        browser.close()
    print(f"wrote {args.out / 'sign-in.png'} and {args.out / 'burden-report.png'}")


if __name__ == "__main__":
    main()
