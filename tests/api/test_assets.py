"""/assets serves the files the pages load and nothing else, each under the pages' headers.

The npm packages' folders hold stock pages (swagger-ui-dist's index.html fetches a petstore from
another origin), templates and source maps: none may be served, and every file that is carries
the Content-Security-Policy and the other headers of the pages.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from services.broker.web import NODE_MODULES
from services.broker.web.assets import Assets
from services.broker.web.pages import PAGE_HEADERS

# Files on disk, not rows: one database is enough.
pytestmark = pytest.mark.parametrize("catalogue_url", ["sqlite"], indirect=True)

# Stock files that exist in the packages and must not be served: (URL, file under node_modules).
STOCK = [
    ("/assets/swagger-ui/index.html", "swagger-ui-dist/index.html"),
    ("/assets/swagger-ui/oauth2-redirect.html", "swagger-ui-dist/oauth2-redirect.html"),
    ("/assets/swagger-ui/swagger-initializer.js", "swagger-ui-dist/swagger-initializer.js"),
    ("/assets/swagger-ui/package.json", "swagger-ui-dist/package.json"),
    ("/assets/swagger-ui/swagger-ui-bundle.js.map", "swagger-ui-dist/swagger-ui-bundle.js.map"),
    ("/assets/nhsuk/template.njk", "nhsuk-frontend/dist/nhsuk/template.njk"),
    (
        "/assets/nhsuk/assets/images/../../template.njk",
        "nhsuk-frontend/dist/nhsuk/template.njk",
    ),
    (
        "/assets/nhsuk/assets/images/nhsuk-opengraph-image.png",
        "nhsuk-frontend/dist/nhsuk/assets/images/nhsuk-opengraph-image.png",
    ),
    ("/assets/chart.js/chart.js", "chart.js/dist/chart.js"),
]


def served(client: TestClient) -> list[str]:
    """Every URL the app's asset mounts serve, from their own lists."""
    mounts = [r for r in client.app.routes if isinstance(r, Mount) and isinstance(r.app, Assets)]  # type: ignore[attr-defined]
    assert {m.path for m in mounts} >= {"/assets/web", "/assets/swagger-ui", "/assets/nhsuk"}
    return [f"{m.path}/{path}" for m in mounts for path in m.app.served()]


def test_every_served_asset_carries_the_pages_headers(client: TestClient) -> None:
    urls = served(client)
    # What the pages and the docs load is among them.
    assert {
        "/assets/swagger-ui/swagger-ui-bundle.js",
        "/assets/swagger-ui/swagger-ui.css",
        "/assets/redoc/redoc.standalone.js",
        "/assets/nhsuk/nhsuk-frontend.min.js",
        "/assets/nhsuk/assets/images/favicon.svg",
        "/assets/chart.js/chart.umd.min.js",
        "/assets/web/build/app.css",
        "/assets/web/swagger-init.js",
    } <= set(urls)
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
            assert answer.headers[name] == PAGE_HEADERS[name], (url, name)


@pytest.mark.parametrize(("url", "on_disk"), STOCK)
def test_stock_files_are_not_served(client: TestClient, url: str, on_disk: str) -> None:
    assert (NODE_MODULES / on_disk).is_file(), f"{on_disk} is not in node_modules: run make assets"
    answer = client.get(url)
    assert answer.status_code == 404, url
    assert answer.headers["Content-Security-Policy"] == PAGE_HEADERS["Content-Security-Policy"]
