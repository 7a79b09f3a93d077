"""The FastAPI application, built from a runtime by the entry point (nothing at import)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from services.broker import limits, problems, ratelimit, transport, web
from services.broker.routes import (
    asks,
    catalogue,
    extracts,
    health,
    notifications,
    organisations,
    reports,
    requests,
    spc,
    submissions,
)
from services.catalogue.runtime import Runtime

DESCRIPTION = """
The data request broker puts one shared catalogue between oversight bodies and NHS trusts:
requests are checked against data already held, scheduled or derivable; trusts are asked
only for the gap and submit each return once.

Every call except `GET /v1/health` needs `Authorization: Bearer <token>`. Errors are
RFC 9457 problem details.
"""


def create_app(runtime: Runtime, *, on_shutdown: Sequence[Callable[[], None]] = ()) -> FastAPI:
    """The HTTP API over ``runtime``'s database and queue; ``on_shutdown`` runs as it stops."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for hook in on_shutdown:
            hook()

    app = FastAPI(
        lifespan=lifespan,
        title="Data request broker",
        version="1",
        description=DESCRIPTION,
        license_info={"name": "MIT"},
        docs_url=None,  # /docs and /redoc are the web package's: no CDN (web/api_docs.py)
        redoc_url=None,
    )
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(health.router)
    app.include_router(organisations.router)
    app.include_router(catalogue.router)
    app.include_router(requests.router)
    app.include_router(asks.router)
    app.include_router(submissions.router)
    app.include_router(extracts.router)
    app.include_router(notifications.router)
    app.include_router(reports.router)
    app.include_router(spc.router)
    web.install(app)  # the pages, /docs and /redoc, and their assets
    # Bodies: the token checked before a byte is read (under /v1/), every body size-limited.
    app.add_middleware(limits.BodyLimits, runtime=runtime)
    # 429 before a body is read or a token looked up (per token; per address without one).
    ratelimit.install(app, runtime.settings)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/docs")

    # Keep last (outermost): trusted proxies' X-Forwarded-Proto/-For, then HSTS over https.
    transport.install(app, runtime.settings)
    return app
