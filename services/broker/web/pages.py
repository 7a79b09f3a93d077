"""The web pages: sign in with a token; the burden report (auditors); a page per trust.

Who may see a page: an organisation signed in here (a session cookie), or any client sending
its ``Authorization: Bearer`` header (API.md), when its kind may see that page: the burden report
and its CSV are for auditors; ``/trusts`` and ``/trusts/{code}`` for trusts (their own),
oversight bodies (the trusts their active requests name) and auditors (all). A browser with
neither is sent to ``/sign-in``; a token of the wrong kind gets a 403 page. Stewards use the
API. The CSV is served at ``/reports/burden.csv`` (the same bytes as
``GET /v1/reports/burden?format=csv``) so that the JSON API stays bearer-only and never accepts
ambient cookies.

CSRF: the cookies are SameSite=Strict, and every POST form carries a form token: the session's
for sign-out, and for sign-in (before there is a session) one also set in a short-lived cookie
that the posted form must match.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

import schemas
from services.broker.dependencies import RuntimeDep, SessionDep
from services.broker.responses import (
    AskOut,
    BurdenBreakdowns,
    Completeness,
    LedgerEntry,
    SubmissionOut,
)
from services.broker.routes import reports
from services.broker.routes.reports import burden_parameters, window_of
from services.broker.web import report_view as view
from services.broker.web import spc_view
from services.broker.web.sessions import SessionStore, WebSession
from services.catalogue import (
    audit,
    auth,
    burden_report,
    organisations,
    submissions,
    trust_overview,
)
from services.catalogue.errors import Forbidden, Invalid, NotFound
from services.catalogue.periods import month_label
from services.catalogue.states import OrgKind

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "drb_session"
SIGN_IN_COOKIE = "drb_sign_in"  # the sign-in form's token, until the form is posted
SIGN_IN_FORM_SECONDS = 3600
REPORT_PARAMETERS = ("month_from", "month_to")
AUDITORS = frozenset({OrgKind.AUDITOR})
SIGN_IN_KINDS = frozenset({OrgKind.TRUST, OrgKind.OVERSIGHT_BODY, OrgKind.AUDITOR})
KIND_NAMES: dict[str, str] = {
    OrgKind.TRUST: "an NHS trust",
    OrgKind.OVERSIGHT_BODY: "an oversight body",
    OrgKind.AUDITOR: "an auditor",
    OrgKind.STEWARD: "the broker's stewards",
}
ROLE_WORDS: dict[str, str] = {
    OrgKind.TRUST: "trust",
    OrgKind.OVERSIGHT_BODY: "oversight body",
    OrgKind.AUDITOR: "auditor",
}

# Every page: nothing from another origin, no inline script or style, never framed or cached.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, and their session when they signed in here."""

    principal: auth.Principal
    session: WebSession | None
    name: str

    @property
    def role(self) -> str:
        return ROLE_WORDS.get(self.principal.kind, self.principal.kind)

    @property
    def home(self) -> str:
        return home_of(self.principal.kind, self.principal.org_code)

    @property
    def links(self) -> list[tuple[str, str]]:
        """The header's navigation: (text, href)."""
        kind = self.principal.kind
        if kind == OrgKind.TRUST:
            return [("Your trust", self.home)]
        if kind == OrgKind.OVERSIGHT_BODY:
            return [
                ("Your requests", "/requests"),
                ("New request", "/requests/new"),
                ("Trusts", "/trusts"),
            ]
        return [
            ("Trusts", "/trusts"),
            ("Requests", "/requests"),
            ("Burden report", "/reports/burden"),
        ]

    def navigation(self, path: str) -> list[tuple[str, str, str | None]]:
        """The header's links with each one's ``aria-current``: "page" for the page itself,
        "true" for the section it is in (``/trusts`` for ``/trusts/RJ1``), else None."""
        hrefs = [href for _, href in self.links]
        shown: list[tuple[str, str, str | None]] = []
        for text, href in self.links:
            current = None
            if path == href:
                current = "page"
            elif path.startswith(href + "/") and path not in hrefs:
                current = "true"
            shown.append((text, href, current))
        return shown


def home_of(kind: str, org_code: str) -> str:
    """Where a viewer lands after signing in."""
    if kind == OrgKind.AUDITOR:
        return "/reports/burden"
    if kind == OrgKind.TRUST:
        return f"/trusts/{org_code}"
    return "/requests"


def _templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.web_templates
    return templates


def _sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.web_sessions
    return store


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    viewer: Viewer | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return _templates(request).TemplateResponse(
        request,
        template,
        {"viewer": viewer, **context},
        status_code=status,
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def _set_cookie(response: Response, request: Request, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        **kw,
    )


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def _problem_page(
    request: Request, status: int, title: str, message: str, *, viewer: Viewer | None = None
) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="drb"'} if status == 401 else None
    return _page(
        request,
        "problem.html",
        {"title": title, "message": message},
        status=status,
        viewer=viewer,
        headers=headers,
    )


def _viewer(
    request: Request, db: Session, allowed: frozenset[OrgKind], refused: tuple[str, str]
) -> Viewer | Response:
    """Who is looking at the page, if of an ``allowed`` kind; else the response to send instead
    (the sign-in redirect, a 401 page, or ``refused``'s (title, message) as a 403 page)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        principal = (
            auth.authenticate(session=db, token=token.strip())
            if scheme.lower() == "bearer"
            else None
        )
        if principal is None and auth.expired_at(session=db, token=token.strip()) is not None:
            return _problem_page(
                request,
                401,
                "Your token has expired",
                "Ask your organisation's admin for a new token.",
            )
        if principal is None:
            return _problem_page(
                request,
                401,
                "Your token was not accepted",
                "Send your token as 'Authorization: Bearer <token>', or sign in.",
            )
        if principal.kind not in allowed:
            return _forbidden(request, principal.kind, refused)
        auth.acting(db, principal)
        return Viewer(principal, None, organisations.name_of(session=db, code=principal.org_code))
    store = _sessions(request)
    session = store.get(request.cookies.get(SESSION_COOKIE))
    stored = auth.live_token(session=db, token_id=session.token_id) if session else None
    # The token is checked on every page: revoking it, or its expiry, ends the session.
    if session is None or stored is None:
        store.delete(session.id if session else None)
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    principal = auth.acting(
        db,
        auth.Principal(
            org_code=session.org_code,
            kind=session.kind,
            token_id=stored.id,
            roles=tuple(stored.roles or ()),
        ),
    )
    viewer = Viewer(principal, session, organisations.name_of(session=db, code=session.org_code))
    if principal.kind not in allowed:
        return _forbidden(request, principal.kind, refused, viewer=viewer)
    return viewer


REPORT_REFUSED = (
    "Only auditors can see this report",
    "Ask the broker's stewards for an auditor's token if you need the report.",
)


def _forbidden(
    request: Request, kind: str, refused: tuple[str, str], *, viewer: Viewer | None = None
) -> Response:
    title, message = refused
    belongs = f"The token you used belongs to {KIND_NAMES.get(kind, kind)}. {message}"
    return _problem_page(request, 403, title, belongs, viewer=viewer)


# -- signing in and out ---------------------------------------------------------------------


def _sign_in_form(request: Request, *, status: int = 200, error: str | None = None) -> Response:
    form_token = secrets.token_urlsafe(32)
    response = _page(
        request, "sign_in.html", {"form_token": form_token, "error": error}, status=status
    )
    _set_cookie(response, request, SIGN_IN_COOKIE, form_token, max_age=SIGN_IN_FORM_SECONDS)
    return response


@router.get("/sign-in")
def sign_in_page(request: Request) -> Response:
    """The sign-in form (or, when already signed in, the report)."""
    session = _sessions(request).get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        return RedirectResponse(home_of(session.kind, session.org_code), status_code=303)
    return _sign_in_form(request)


@router.post("/sign-in")
def sign_in(
    request: Request,
    db: SessionDep,
    token: Annotated[str, Form()] = "",
    form_token: Annotated[str, Form()] = "",
) -> Response:
    """Check the pasted token: a trust's, a body's or an auditor's starts a session (and goes
    to its first page); anything else shows the form again."""
    if not _same(form_token, request.cookies.get(SIGN_IN_COOKIE)):
        return _sign_in_form(
            request, status=400, error="The sign-in form had expired. Paste your token again."
        )
    token = token.strip()
    if not token:
        return _sign_in_form(request, status=422, error="Enter your token")
    principal = auth.authenticate(session=db, token=token)
    if principal is None and auth.expired_at(session=db, token=token) is not None:
        return _sign_in_form(
            request,
            status=401,
            error="This token has expired. Ask your organisation's admin for a new one",
        )
    if principal is None:
        return _sign_in_form(
            request,
            status=401,
            error="The token was not recognised. Check you copied all of it, "
            "or ask your organisation's admin for a new one",
        )
    if principal.kind not in SIGN_IN_KINDS:
        # A real token used where it is not allowed is worth an auditor's attention; an unknown
        # one is not recorded (anyone could fill the log with them).
        _audit_web(db, principal, "web.sign_in_refused", detail={"kind": principal.kind})
        return _sign_in_form(
            request,
            status=403,
            error="Only trusts, oversight bodies and auditors can sign in here. This token "
            f"belongs to {KIND_NAMES.get(principal.kind, principal.kind)}: use the API",
        )
    store = _sessions(request)
    store.delete(request.cookies.get(SESSION_COOKIE))  # a new id at every sign-in
    session = store.create(
        org_code=principal.org_code, kind=principal.kind, token_id=principal.token_id
    )
    _audit_web(db, principal, "web.signed_in")
    response = RedirectResponse(home_of(principal.kind, principal.org_code), status_code=303)
    _set_cookie(response, request, SESSION_COOKIE, session.id)
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


def _audit_web(
    db: Session, principal: auth.Principal, action: str, *, detail: dict[str, Any] | None = None
) -> None:
    """Record a sign-in or sign-out against the token used (never the token itself)."""
    audit.record(
        session=db,
        actor=principal.org_code,
        action=action,
        subject_type="token",
        subject_id=principal.token_id,
        detail=detail,
        token_id=principal.token_id,
    )


@router.post("/sign-out")
def sign_out(request: Request, db: SessionDep, form_token: Annotated[str, Form()] = "") -> Response:
    """End the session (the form carries the session's form token)."""
    store = _sessions(request)
    session = store.get(request.cookies.get(SESSION_COOKIE))
    if session is not None and not _same(form_token, session.csrf_token):
        return _problem_page(
            request,
            403,
            "You have not been signed out",
            "The sign-out form did not come from this service. Go back to the page you were "
            "on and use its 'Sign out' button.",
        )
    store.delete(session.id if session else None)
    if session is not None:
        signed_out = auth.Principal(
            org_code=session.org_code, kind=session.kind, token_id=session.token_id
        )
        _audit_web(db, signed_out, "web.signed_out")
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- the report -----------------------------------------------------------------------------


def _window(request: Request) -> tuple[burden_report.Window | None, list[dict[str, object]]]:
    """The report's months from the query, validated as the API does, or the errors."""
    query = request.query_params
    unknown = sorted(set(query) - set(REPORT_PARAMETERS))
    if unknown:
        return None, [
            {"field": name, "message": f"“{name}” is not something this report can filter by"}
            for name in unknown
        ]
    return _window_of_query(query)


def _window_of_query(
    query: Mapping[str, str],
) -> tuple[burden_report.Window | None, list[dict[str, object]]]:
    """The months of ``month_from`` and ``month_to``, validated as the API does, or the errors."""
    try:
        return window_of(query.get("month_from") or None, query.get("month_to") or None), []
    except Invalid as error:
        return None, list(error.errors)


def _form(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "") for name in REPORT_PARAMETERS}


def _invalid_query(request: Request, viewer: Viewer, errors: list[dict[str, object]]) -> Response:
    """The report's month form with an error summary, and no figures (422)."""
    context = {"form": _form(request), "errors": errors, "report": None}
    return _page(request, "burden.html", context, status=422, viewer=viewer)


# A breakdown of the report: the field holding its key, and its name in headers and captions.
_BREAKDOWNS: dict[str, tuple[str, str]] = {
    "body": ("body", "Oversight body"),
    "dataset": ("dataset", "Dataset"),
    "month": ("period", "Month"),
    "trust": ("org_code", "Trust"),
}


def _report_request(
    request: Request, db: Session
) -> tuple[Viewer, burden_report.Window] | Response:
    """Who asks for the report and for which months; else the sign-in redirect or error page."""
    viewer = _viewer(request, db, AUDITORS, REPORT_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    window, errors = _window(request)
    if window is None:
        return _invalid_query(request, viewer, errors)
    return viewer, window


@router.get("/reports/burden")
def burden_page(request: Request, db: SessionDep, runtime: RuntimeDep) -> Response:
    """The burden reduction report, with completeness and timeliness, as a web page."""
    checked = _report_request(request, db)
    if isinstance(checked, Response):
        return checked
    viewer, window = checked
    form = _form(request)
    rate = runtime.settings.hourly_rate_gbp
    report = BurdenBreakdowns.of(burden_report.build(session=db, window=window), rate).model_dump()
    completeness = Completeness.of(
        burden_report.completeness(session=db, window=window, today=date.today())
    ).model_dump()
    names = organisations.names(session=db)
    parameters = burden_parameters(rate)
    dataset_names = {code: d.title for code, d in schemas.DATASETS.items()}
    first = month_label(window.first) if window.first is not None else None
    last = month_label(window.last) if window.last is not None else None

    def tables(
        prefix: str,
        source: dict[str, Any],
        columns: tuple[view.Column, ...],
        kinds: tuple[str, ...],
    ) -> list[view.Table]:
        """One sortable table per breakdown of ``source`` (``by_<kind>`` rows)."""
        return [
            view.table(
                id=f"{prefix}-by-{kind}",
                caption=f"{prefix.capitalize()} by {_BREAKDOWNS[kind][1].lower()}",
                kind=kind,
                key_field=_BREAKDOWNS[kind][0],
                key_header=_BREAKDOWNS[kind][1],
                rows=source[f"by_{kind}"],
                columns=columns,
                names=dataset_names if kind == "dataset" else names,
            )
            for kind in kinds
        ]

    breakdowns = tables(
        "burden", report, view.BURDEN_COLUMNS, ("body", "dataset", "month", "trust")
    )
    timeliness = tables(
        "completeness", completeness, view.COMPLETENESS_COLUMNS, ("dataset", "trust")
    )
    query = urlencode({k: v for k, v in form.items() if v})
    return _page(
        request,
        "burden.html",
        {
            "form": form,
            "errors": [],
            "report": report,
            "window_text": view.window_text(first, last),
            "totals": report["totals"],
            "breakdowns": breakdowns,
            "timeliness": timeliness,
            "charts": [
                view.month_chart(report["by_month"]),
                view.body_chart(report["by_body"], names),
            ],
            "parameters": parameters,
            "datasets": [
                (code, dataset_names[code], spec) for code, spec in parameters.datasets.items()
            ],
            "csv_href": "/reports/burden.csv" + (f"?{query}" if query else ""),
            "ledger_href": "/reports/burden/ledger" + (f"?{query}" if query else ""),
            "format": view.FORMATS,
        },
        viewer=viewer,
    )


@router.get("/reports/burden.csv")
def burden_csv(request: Request, db: SessionDep, runtime: RuntimeDep) -> Response:
    """The report as CSV: the same rows as ``GET /v1/reports/burden?format=csv``."""
    checked = _report_request(request, db)
    if isinstance(checked, Response):
        return checked
    _viewer_of_csv, window = checked
    report = BurdenBreakdowns.of(
        burden_report.build(session=db, window=window), runtime.settings.hourly_rate_gbp
    )
    return reports.csv_response(
        report.csv_rows(),
        "burden-report.csv",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


LEDGER_PARAMETERS = (*REPORT_PARAMETERS, "request_id", "limit", "cursor")
LEDGER_ENTRIES = {"requested": "Requested", "imposed": "Imposed"}


def _ledger_query(request: Request) -> tuple[dict[str, Any], list[dict[str, object]]]:
    """The ledger page's window, request, limit and cursor from the query, or the errors."""
    query = request.query_params
    errors: list[dict[str, object]] = [
        {"field": name, "message": f"“{name}” is not something the ledger can filter by"}
        for name in sorted(set(query) - set(LEDGER_PARAMETERS))
    ]
    limit_text = query.get("limit") or str(reports.LEDGER_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= reports.LEDGER_MAX_LIMIT:
        errors.append(
            {"field": "limit", "message": f"Rows a page: 1 to {reports.LEDGER_MAX_LIMIT:,}"}
        )
    window, window_errors = _window_of_query(query)
    errors += window_errors
    if errors or window is None:
        return {}, errors
    return {
        "window": window,
        "request_id": query.get("request_id") or None,
        "limit": int(limit_text),
        "cursor": query.get("cursor") or None,
    }, []


@router.get("/reports/burden/ledger")
def ledger_page(request: Request, db: SessionDep) -> Response:
    """The ledger behind the report's figures, a page at a time, with links to the pages
    before and after and the number of entries in all."""
    viewer = _viewer(request, db, AUDITORS, REPORT_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    asked, errors = _ledger_query(request)
    page = None
    if not errors:
        try:
            page = reports.ledger_page(session=db, **asked)
        except Invalid as error:
            errors = list(error.errors)
    if page is None:
        context = {"errors": errors, "page": None, "form": _form(request)}
        return _page(request, "ledger.html", context, status=422, viewer=viewer)
    window = asked["window"]
    first = month_label(window.first) if window.first is not None else None
    last = month_label(window.last) if window.last is not None else None
    links = reports.ledger_links(request.url.path, request.query_params, page)
    form = _form(request)
    report_query = urlencode({k: v for k, v in form.items() if v})
    return _page(
        request,
        "ledger.html",
        {
            "errors": [],
            "form": form,
            "page": page,
            "entries": [LedgerEntry.of(row) for row in page.rows],
            "entry_names": LEDGER_ENTRIES,
            "names": organisations.names(session=db),
            "request_id": asked["request_id"],
            "window_text": view.window_text(first, last),
            "links": links,
            "report_href": "/reports/burden" + (f"?{report_query}" if report_query else ""),
            "format": view.FORMATS,
        },
        viewer=viewer,
    )


# -- trusts ---------------------------------------------------------------------------------

TRUSTS_REFUSED = (
    "Trust pages are for trusts, oversight bodies and auditors",
    "Stewards manage organisations and tokens through the API.",
)
TARGET_PREFIX = "target_"


@router.get("/trusts")
def trusts_page(request: Request, db: SessionDep) -> Response:
    """The trusts the viewer may open (a trust: its own)."""
    viewer = _viewer(request, db, SIGN_IN_KINDS, TRUSTS_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    trusts = trust_overview.visible_trusts(
        session=db, kind=viewer.principal.kind, org_code=viewer.principal.org_code
    )
    return _page(request, "trusts.html", {"trusts": trusts}, viewer=viewer)


def _targets(request: Request) -> tuple[dict[str, float], list[dict[str, object]]]:
    """``target_<item>=<number>`` from the query, or the errors (field, message)."""
    targets: dict[str, float] = {}
    errors: list[dict[str, object]] = []
    for name, raw in request.query_params.items():
        item = name.removeprefix(TARGET_PREFIX)
        if not name.startswith(TARGET_PREFIX) or item not in schemas.ITEMS:
            errors.append(
                {"field": name, "message": f"“{name}” is not something this page can show"}
            )
            continue
        if not raw.strip():
            continue
        try:
            value = float(raw.replace(",", ""))
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            errors.append(
                {
                    "field": name,
                    "message": f"Enter the target for {schemas.ITEMS[item].name} as a number, "
                    "like 2500",
                }
            )
            continue
        targets[item] = value
    return targets, errors


@router.get("/trusts/{code}")
def trust_page(code: str, request: Request, db: SessionDep, runtime: RuntimeDep) -> Response:
    """One trust: its open asks, its recent returns, its indicators as SPC charts."""
    viewer = _viewer(request, db, SIGN_IN_KINDS, TRUSTS_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    targets, errors = _targets(request)
    try:
        overview = trust_overview.build(
            session=db,
            settings=runtime.settings,
            kind=viewer.principal.kind,
            viewer=viewer.principal.org_code,
            code=code,
            today=date.today(),
            targets=targets,
        )
    except NotFound as missing:
        return _problem_page(request, 404, "Page not found", missing.detail, viewer=viewer)
    except Forbidden as refused:
        # The refusal is traced, as the API's refused indicator reads are.
        audit.record(
            session=db,
            actor=viewer.principal.org_code,
            action="web.trust_page_refused",
            subject_type="organisation",
            subject_id=code[:64],
            detail={"reason": refused.detail},
        )
        title = "You cannot see this trust's page"
        return _problem_page(request, 403, title, refused.detail, viewer=viewer)
    names = organisations.names(session=db, kind=OrgKind.OVERSIGHT_BODY)
    charts = [spc_view.view(chart) for chart in overview.charts]
    with_values = submissions.shows_values(overview.viewer_kind)
    return _page(
        request,
        "trust.html",
        {
            "overview": overview,
            "asks": [AskOut.of(ask).model_dump() for ask in overview.asks],
            "submissions": [
                {
                    **SubmissionOut.of(sent.submission, with_values=with_values).model_dump(),
                    "errors": sent.errors,
                }
                for sent in overview.submissions or []
            ],
            "charts": charts,
            "target_fields": [TARGET_PREFIX + c.item for c in charts if c.takes_target],
            "errors": errors,
            "targets": {
                item: request.query_params.get(TARGET_PREFIX + item, "") for item in schemas.ITEMS
            },
            "body_names": names,
            "dataset_names": {code: d.title for code, d in schemas.DATASETS.items()},
            "item_names": {code: item.name for code, item in schemas.ITEMS.items()},
            "format": view.FORMATS,
        },
        status=422 if errors else 200,
        viewer=viewer,
    )
