"""The API's documentation pages, served entirely by the broker: ``/docs`` and ``/redoc``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and start them with an inline script,
so on a machine without internet (an NHS network, this project's CI) they are blank. Here both
come from npm (``swagger-ui-dist`` and ``redoc``, locked in ``package-lock.json``) under
``/assets/swagger-ui`` and ``/assets/redoc``, and are started by a script file of ours, under the
pages' Content-Security-Policy with the few additions each needs and nothing from another origin:
images from ``data:`` URLs (both draw their icons that way), and for ReDoc the ``<style>``
elements it injects, allowed by a fresh nonce per response rather than by ``'unsafe-inline'``,
and its search index's web worker, which it starts from a ``blob:`` URL. The one thing either
tries to load from elsewhere, ReDoc's footer logo, is blocked by that policy (ReDoc then hides it).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from services.broker.web.pages import PAGE_HEADERS

router = APIRouter(include_in_schema=False)

DOCS_POLICY = f"{PAGE_HEADERS['Content-Security-Policy']}; img-src 'self' data:"
# The one <style> ReDoc's bundle inserts as it loads, before it knows the nonce (perfect-scrollbar's
# stylesheet, redoc 2.5.4), first empty then filled: allowed by the hashes of both contents. A
# newer redoc that changes it fails tests/browser/test_api_docs.py with the new hash to put here.
REDOC_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty string
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # .ps{overflow:hidden!important;...
)


def _render(request: Request, policy: str, **context: object) -> Response:
    templates: Jinja2Templates = request.app.state.web_templates
    return templates.TemplateResponse(
        request,
        "api_docs.html",
        {"openapi_url": request.app.openapi_url, "title": request.app.title, "nonce": None}
        | context,
        headers={**PAGE_HEADERS, "Content-Security-Policy": policy},
    )


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    """Swagger UI over ``/openapi.json``: every route, tried out with "Authorize" and a token."""
    return _render(
        request,
        DOCS_POLICY,
        heading="API documentation",
        root_id="swagger-ui",
        stylesheets=["/assets/swagger-ui/swagger-ui.css"],
        scripts=["/assets/swagger-ui/swagger-ui-bundle.js", "/assets/web/swagger-init.js"],
    )


@router.get("/redoc")
def redoc(request: Request) -> Response:
    """ReDoc over ``/openapi.json``, its injected styles allowed by this response's nonce."""
    nonce = secrets.token_urlsafe(18)
    styles = " ".join(("'self'", f"'nonce-{nonce}'", *REDOC_STYLE_HASHES))
    return _render(
        request,
        f"{DOCS_POLICY}; style-src {styles}; worker-src 'self' blob:",
        heading="API reference",
        root_id="redoc",
        nonce=nonce,
        stylesheets=[],
        scripts=["/assets/redoc/redoc.standalone.js", "/assets/web/redoc-init.js"],
    )
