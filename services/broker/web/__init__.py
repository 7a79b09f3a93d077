"""The web pages (``/sign-in``, ``/reports/burden``, ``/trusts``) in the NHS.UK design system, and
the API's documentation (``/docs``, ``/redoc``).

Server-rendered with Jinja2 (autoescaped). Everything a page loads comes from the broker itself:
``/assets/nhsuk``, ``/assets/chart.js``, ``/assets/swagger-ui`` and ``/assets/redoc`` serve the
few files the pages need (``assets.PACKAGES``) from ``node_modules`` (installed from
``package-lock.json`` by ``npm ci``, see the Makefile), ``/assets/web`` this package's
``static/``, where ``build/app.css`` is the NHS.UK stylesheet compiled by ``make`` from
``scss/app.scss`` (the package's precompiled CSS loads its font from a CDN); all of them under
the pages' security headers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2
from fastapi import FastAPI
from fastapi.templating import Jinja2Templates

from services.broker.web import api_docs, request_pages
from services.broker.web.assets import PACKAGES, Assets
from services.broker.web.pages import router
from services.broker.web.sessions import SessionStore
from services.catalogue.states import (
    AskStatus,
    DeliveryStatus,
    NotificationStatus,
    OrgKind,
    RequestStatus,
    SubmissionStatus,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE.parents[2] / "node_modules"  # the repository root's, next to package.json
STATIC = HERE / "static"
STYLESHEET = STATIC / "build" / "app.css"

__all__ = ["install", "router"]


def install(app: FastAPI, *, node_modules: Path = NODE_MODULES) -> None:
    """Add the pages, their session store and their static assets to ``app``."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Templates compare kinds and statuses with the enums, never with text (a misspelt member
    # raises under StrictUndefined; tests/unit/test_enum_literals.py checks the templates).
    for enum in (
        OrgKind,
        AskStatus,
        SubmissionStatus,
        RequestStatus,
        NotificationStatus,
        DeliveryStatus,
    ):
        environment.globals[enum.__name__] = enum
    app.state.web_templates = Jinja2Templates(env=environment)
    app.state.web_sessions = SessionStore()
    app.include_router(router)
    app.include_router(api_docs.router)
    app.include_router(request_pages.router)
    needed = [*(node_modules / directory for directory, _ in PACKAGES.values()), STYLESHEET]
    missing = [path for path in needed if not path.exists()]
    if missing:
        log.warning(
            "web assets missing (%s): the pages will be unstyled; run `make assets`",
            ", ".join(str(p) for p in missing),
        )
    for prefix, (directory, files) in PACKAGES.items():
        app.mount(prefix, Assets(node_modules / directory, files))
    app.mount("/assets/web", Assets(STATIC), name="web-assets")
