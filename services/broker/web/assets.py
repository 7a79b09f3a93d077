"""The static files the pages load, and nothing else, each under the pages' security headers.

The npm packages' dist folders hold much more than the pages use: swagger-ui-dist's own
``index.html`` (which fetches a petstore from another origin), its OAuth redirect page, Nunjucks
templates, source maps. Served as folders, any of those would be a page of this origin without
our Content-Security-Policy. So each prefix serves only the files named here (a whole folder
only for our own ``static/``), and every response carries ``PAGE_HEADERS``: a stock HTML file is
404, and a stray one could fetch nothing from elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from services.broker.web.pages import PAGE_HEADERS

# URL prefix -> (folder under node_modules, the files the pages and the docs load from it).
PACKAGES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "/assets/nhsuk": (
        Path("nhsuk-frontend/dist/nhsuk"),
        ("nhsuk-frontend.min.js", "assets/images/*.svg", "assets/images/*.ico"),
    ),
    "/assets/chart.js": (Path("chart.js/dist"), ("chart.umd.min.js",)),
    "/assets/swagger-ui": (Path("swagger-ui-dist"), ("swagger-ui.css", "swagger-ui-bundle.js")),
    "/assets/redoc": (Path("redoc/bundles"), ("redoc.standalone.js",)),
}
# Static files may be cached, but checked again: a redeploy changes them under the same name.
ASSET_HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-cache"}


class Assets(StaticFiles):
    """Static files from ``directory``: only those matching ``patterns`` (all of them when
    None), each with the pages' headers; anything else is 404."""

    def __init__(self, directory: Path, patterns: Iterable[str] | None = None) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.root = directory
        self.patterns = None if patterns is None else tuple(patterns)

    def served(self) -> list[str]:
        """The paths (under the prefix) this serves, as found on disk now."""
        found = (
            (p for pattern in self.patterns for p in self.root.glob(pattern))
            if self.patterns is not None
            else self.root.rglob("*")
        )
        return sorted({p.relative_to(self.root).as_posix() for p in found if p.is_file()})

    async def get_response(self, path: str, scope: Scope) -> Response:
        wanted = Path(path).as_posix()
        if self.patterns is not None and not any(_match(wanted, p) for p in self.patterns):
            return Response("Not Found", status_code=404, headers=ASSET_HEADERS)
        response = await super().get_response(path, scope)
        response.headers.update(ASSET_HEADERS)
        return response


def _match(path: str, pattern: str) -> bool:
    """Whether ``path`` is ``pattern`` (``*`` within one folder only, as ``Path.glob``)."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        Path(part).match(glob) for part, glob in zip(parts, wanted, strict=True)
    )
