"""The pages for the people who ask: a body's requests, one request in full, and a form that
registers a request after showing, as it is filled in, what the catalogue already holds.

- ``/requests``: the body's requests (an auditor: every body's), with coverage and burden;
- ``/requests/{id}``: coverage per item, the burden imposed and avoided (hours and money), the
  asks' completeness per period, and the extracts with their delivery and a download link;
- ``/requests/new``: the form. Its "Check coverage" button (and, with JavaScript, every change,
  through ``POST /requests/preview``) runs the API's dry run; "Register request" registers. Its
  item search ranks the catalogue as ``GET /v1/items/search`` does (``/requests/items`` as JSON
  for the script);
- ``/extracts/{id}.parquet``: the body's extract, as ``GET /v1/extracts/{id}/download`` (audited).

Who: oversight bodies (the form and downloads are theirs alone) and auditors (read only), signed
in here or sending their bearer token, as every page. Each POST from a session carries the
session's form token (CSRF); a bearer client needs none, as no browser sends its header by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

import schemas
from services.broker.dependencies import RuntimeDep, SessionDep
from services.broker.responses import ExtractOut, RequestOut
from services.broker.routes.extracts import parquet_file
from services.broker.web import report_view as view
from services.broker.web.pages import (
    Viewer,
    _page,
    _problem_page,
    _same,
    _viewer,
)
from services.catalogue import data_requests, extracts, request_overview
from services.catalogue.errors import Forbidden, Invalid, NotFound
from services.catalogue.regions import REGIONS
from services.catalogue.runtime import Runtime
from services.catalogue.states import OrgKind

router = APIRouter(include_in_schema=False)

READERS = frozenset(request_overview.VIEWER_KINDS)
BODIES = frozenset({OrgKind.OVERSIGHT_BODY})
READ_REFUSED = (
    "Request pages are for oversight bodies and auditors",
    "A trust's asks are on its own page.",
)
FORM_REFUSED = (
    "Only oversight bodies can register requests",
    "Requests are registered by the body that needs the data.",
)
DOWNLOAD_REFUSED = (
    "Only the body that asked can download an extract",
    "Auditors see extracts listed, with their delivery, on the request's page.",
)
POPULATIONS = {
    "all": "Every registered NHS trust",
    "region": "The trusts of one region",
    "list": "A list of trusts",
}
PERIOD_TYPES = {"month": "Month", "quarter": "Quarter", "year": "Year"}
ORG_LEVELS = {
    "trust": "By trust",
    "region": "By region (one figure per region)",
    "national": "For England (one figure for the nation)",
}
FIELDS = (
    "title",
    "purpose",
    "legal_basis",
    "items",
    "population",
    "region",
    "org_codes",
    "period_start",
    "period_end",
    "period_type",
    "org_level",
    "due_days",
)
LIMITS = {"title": 200, "purpose": 5000, "legal_basis": 2000, "org_codes": 200_000}
CODE = re.compile(r"[A-Z0-9]{2,16}")
SEARCH_LIMIT = len(schemas.ITEMS)
ITEM_NAMES = {code: item.name for code, item in schemas.ITEMS.items()}


@dataclass
class RequestForm:
    """The form as sent: every field as typed, so that it is shown again as it was."""

    values: dict[str, str] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    query: str = ""

    @classmethod
    async def read(cls, request: Request) -> tuple[RequestForm, str, str]:
        """The form, its action (preview, search or register) and its form token."""
        sent = await request.form()
        values = {name: str(sent.get(name, "")).strip() for name in FIELDS if name != "items"}
        values = {name: value[: LIMITS.get(name, 64)] for name, value in values.items()}
        items = [str(code) for code in sent.getlist("items")][: len(schemas.ITEMS) + 1]
        form = cls(values=values, items=items, query=str(sent.get("q", "")).strip()[:200])
        return form, str(sent.get("action", "preview")), str(sent.get("form_token", ""))

    @classmethod
    def blank(cls) -> RequestForm:
        return cls(
            values={
                "population": "list",
                "period_type": "month",
                "org_level": "trust",
                "due_days": "20",
            }
        )

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def spec(self) -> tuple[data_requests.RequestSpec | None, list[dict[str, object]]]:
        """The request these fields describe, or the errors in plain words (field, message)."""
        errors: list[dict[str, object]] = []

        def need(name: str, message: str) -> str:
            value = self.get(name)
            if not value:
                errors.append({"field": name, "message": message})
            return value

        title = need("title", "Enter a title for the request")
        purpose = need("purpose", "Enter what the data is for")
        legal_basis = need("legal_basis", "Enter the legal basis for asking for the data")
        if not self.items:
            errors.append({"field": "items", "message": "Choose at least one item"})
        population: list[str] | dict[str, str] = []
        match self.get("population"):
            case "all":
                population = {"kind": "trust"}
            case "region":
                region = need("region", "Choose a region")
                population = {"region": region}
            case "list":
                codes = [c.upper() for c in re.split(r"[\s,;]+", self.get("org_codes")) if c]
                bad = [c for c in codes if not CODE.fullmatch(c)]
                if not codes:
                    errors.append(
                        {
                            "field": "org_codes",
                            "message": "Enter the ODS codes of the trusts, like RJ1, R0A",
                        }
                    )
                elif bad:
                    errors.append(
                        {
                            "field": "org_codes",
                            "message": f"“{bad[0][:20]}” is not an ODS code: codes are letters "
                            "and numbers, like RJ1",
                        }
                    )
                population = list(dict.fromkeys(codes))
            case _:
                errors.append({"field": "population", "message": "Choose which trusts to ask"})
        period_start = need("period_start", "Enter the first period, like 2025-01")
        period_end = need("period_end", "Enter the last period, like 2025-06")
        period_type = self.get("period_type")
        if period_type not in PERIOD_TYPES:
            errors.append({"field": "period_type", "message": "Choose month, quarter or year"})
        org_level = self.get("org_level")
        if org_level not in ORG_LEVELS:
            errors.append(
                {"field": "org_level", "message": "Choose by trust, by region or for England"}
            )
        due_days = self.get("due_days")
        if not (due_days.isdigit() and int(due_days) <= 365):
            errors.append(
                {
                    "field": "due_days",
                    "message": "Enter the days trusts have after each period ends, "
                    "a whole number from 0 to 365",
                }
            )
        if errors:
            return None, errors
        return (
            data_requests.RequestSpec(
                title=title,
                purpose=purpose,
                legal_basis=legal_basis,
                items=tuple(self.items),
                organisations=population,
                period_start=period_start,
                period_end=period_end,
                period_type=period_type,
                org_level=org_level,
                due_days=int(due_days),
            ),
            [],
        )


def plain(error: dict[str, object]) -> dict[str, object]:
    """A domain error about a request in words for the form, anchored to the field at fault."""
    message = str(error.get("message", ""))
    name = str(error.get("field", ""))
    if name == "organisations.region":
        return {"field": "region", "message": f"There are no registered trusts in {message[-3:]}"}
    if name == "organisations":
        code = error.get("organisation")
        if code is not None and message.startswith("no organisation"):
            message = f"There is no organisation with the ODS code {code}"
        elif code is not None:
            message = f"{code} is not an NHS trust: ask trusts only"
        return {"field": "org_codes", "message": message}
    if name == "period_end" and "before" in message:
        return {"field": "period_end", "message": "The last period must be after the first"}
    if name == "period_end" and "10 years" in message:
        return {"field": "period_end", "message": "A request can cover at most 10 years"}
    if name in ("period_start", "period_end"):
        which = "first" if name == "period_start" else "last"
        return {
            "field": name,
            "message": f"Enter the {which} period as a month like 2025-01, a quarter like "
            "2025-Q1 or a year like 2025",
        }
    if name == "items":
        return {"field": "items", "message": "Choose items from the list"}
    return {"field": name, "message": message}


def _catalogue(runtime: Runtime, db: Session, query: str) -> list[dict[str, Any]]:
    """The items to offer, best first for ``query`` (all of them, in catalogue order, without)."""
    if not query:
        return [
            {"code": code, "name": item.name, "definition": item.definition, "score": None}
            for code, item in schemas.ITEMS.items()
        ]
    catalogue = runtime.coverage.snapshot(db).catalogue
    assert catalogue is not None
    return [
        {
            "code": match.code,
            "name": match.name,
            "definition": schemas.ITEMS[match.code].definition,
            "score": round(match.score),
        }
        for match in catalogue.search.search(query, limit=SEARCH_LIMIT)
        if match.code in schemas.ITEMS
    ]


def _first_message_per_field(errors: list[dict[str, object]]) -> dict[str, str]:
    messages: dict[str, str] = {}
    for error in errors:
        messages.setdefault(str(error["field"]), str(error["message"]))
    return messages


def _csrf_ok(viewer: Viewer, form_token: str) -> bool:
    return viewer.session is None or _same(form_token, viewer.session.csrf_token)


def _form_page(
    request: Request,
    viewer: Viewer,
    runtime: Runtime,
    db: Session,
    form: RequestForm,
    *,
    errors: list[dict[str, object]] | None = None,
    preview: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    offered = _catalogue(runtime, db, form.query)
    chosen = [code for code in form.items if code not in {i["code"] for i in offered}]
    offered += [  # ticked items stay on the page whatever the search
        {"code": code, "name": schemas.ITEMS[code].name, "definition": "", "score": None}
        for code in chosen
        if code in schemas.ITEMS
    ]
    return _page(
        request,
        "request_form.html",
        {
            "form": form,
            "errors": errors or [],
            "messages": _first_message_per_field(errors or []),
            "anchors": FIELDS,
            "item_names": ITEM_NAMES,
            "preview": preview,
            "offered": offered,
            "regions": REGIONS,
            "populations": POPULATIONS,
            "period_types": PERIOD_TYPES,
            "org_levels": ORG_LEVELS,
            "format": view.FORMATS,
            "hourly_rate": runtime.settings.hourly_rate_gbp,
        },
        status=status,
        viewer=viewer,
    )


def _dry_run(
    db: Session, runtime: Runtime, viewer: Viewer, form: RequestForm
) -> tuple[dict[str, Any] | None, list[dict[str, object]]]:
    """The dry run's coverage and burden, as ``POST /v1/requests?dry_run=true`` gives them."""
    spec, errors = form.spec()
    if spec is None:
        return None, errors
    try:
        outcome = data_requests.register(
            session=db,
            index=runtime.coverage,
            body_code=viewer.principal.org_code,
            spec=spec,
            dry_run=True,
        )
    except Invalid as invalid:
        return None, [plain(e) for e in invalid.errors] or [
            {"field": "title", "message": invalid.detail}
        ]
    burden = outcome.check.burden.figures()
    return {
        "org_count": len(outcome.org_codes),
        "coverage": outcome.check.coverage_dict(),
        "burden": burden,
        "cost_avoided_gbp": request_overview.cost_gbp(
            burden["hours_avoided"], runtime.settings.hourly_rate_gbp
        ),
    }, []


def shown_summary(summary: request_overview.Summary) -> dict[str, Any]:
    """A request as its pages show it: as ``GET /v1/requests/{id}`` shows it, and its money."""
    return {
        "request": RequestOut.of(
            summary.request, burden=summary.burden, asks=summary.asks
        ).model_dump(),
        "cost_avoided_gbp": summary.cost_avoided_gbp,
        "cost_imposed_gbp": summary.cost_imposed_gbp,
    }


@router.get("/requests")
def requests_page(request: Request, db: SessionDep, runtime: RuntimeDep) -> Response:
    """The requests the viewer may see, newest first."""
    viewer = _viewer(request, db, READERS, READ_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    found = request_overview.summaries(
        session=db,
        org_code=viewer.principal.org_code,
        kind=viewer.principal.kind,
        hourly_rate=runtime.settings.hourly_rate_gbp,
        today=date.today(),
    )
    return _page(
        request,
        "requests.html",
        {
            "summaries": [shown_summary(summary) for summary in found],
            "format": view.FORMATS,
            "created": request.query_params.get("new"),
        },
        viewer=viewer,
    )


@router.get("/requests/new")
def request_form(
    request: Request,
    db: SessionDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The form to register a request, empty (items ranked by ``q`` when given)."""
    viewer = _viewer(request, db, BODIES, FORM_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    form = RequestForm.blank()
    form.query = q.strip()
    return _form_page(request, viewer, runtime, db, form)


@router.post("/requests/new")
async def register_from_form(request: Request, db: SessionDep, runtime: RuntimeDep) -> Response:
    """ "Check coverage" (a dry run), "Search" (rank the items) or "Register request"."""
    viewer = _viewer(request, db, BODIES, FORM_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    form, action, form_token = await RequestForm.read(request)
    if not _csrf_ok(viewer, form_token):
        return _problem_page(
            request,
            403,
            "Your request has not been registered",
            "The form did not come from this service. Open the form again and send it from there.",
            viewer=viewer,
        )
    if action == "search":
        return _form_page(request, viewer, runtime, db, form)
    preview, errors = _dry_run(db, runtime, viewer, form)
    if errors:
        return _form_page(request, viewer, runtime, db, form, errors=errors, status=422)
    if action != "register":
        return _form_page(request, viewer, runtime, db, form, preview=preview)
    spec, _ = form.spec()
    assert spec is not None
    outcome = data_requests.register(
        session=db,
        index=runtime.coverage,
        body_code=viewer.principal.org_code,
        spec=spec,
        dry_run=False,
    )
    assert outcome.request is not None
    return RedirectResponse(f"/requests/{outcome.request.id}?registered=1", status_code=303)


@router.post("/requests/preview")
async def preview_fragment(request: Request, db: SessionDep, runtime: RuntimeDep) -> Response:
    """The form's coverage preview alone (HTML), for the form's script to show as fields change."""
    viewer = _viewer(request, db, BODIES, FORM_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    form, _action, form_token = await RequestForm.read(request)
    if not _csrf_ok(viewer, form_token):
        return _problem_page(request, 403, "Not checked", "The form did not come from here.")
    preview, errors = _dry_run(db, runtime, viewer, form)
    return _page(
        request,
        "request_preview.html",
        {"preview": preview, "errors": errors, "format": view.FORMATS, "item_names": ITEM_NAMES},
        viewer=viewer,
    )


@router.get("/requests/items")
def item_matches(
    request: Request,
    db: SessionDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The catalogue's items ranked for ``q`` (JSON: code, name, score), for the form's script."""
    viewer = _viewer(request, db, BODIES, FORM_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    matches = _catalogue(runtime, db, q.strip())
    return JSONResponse(
        [{k: m[k] for k in ("code", "name", "score")} for m in matches],
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/requests/{request_id}")
def request_page(
    request_id: str, request: Request, db: SessionDep, runtime: RuntimeDep
) -> Response:
    """One request: coverage, burden, completeness per period and extracts."""
    viewer = _viewer(request, db, READERS, READ_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    try:
        overview = request_overview.build(
            session=db,
            org_code=viewer.principal.org_code,
            kind=viewer.principal.kind,
            request_id=request_id,
            hourly_rate=runtime.settings.hourly_rate_gbp,
            today=date.today(),
        )
    except NotFound as missing:
        return _problem_page(request, 404, "Page not found", missing.detail, viewer=viewer)
    except Forbidden as refused:
        title = "You cannot see this request"
        return _problem_page(request, 403, title, refused.detail, viewer=viewer)
    return _page(
        request,
        "request.html",
        {
            "overview": {
                **shown_summary(overview),
                "periods": overview.periods,
                "extracts": [
                    ExtractOut.of(extract, delivery).model_dump(exclude_unset=True)
                    for extract, delivery in overview.extracts
                ],
            },
            "registered": request.query_params.get("registered") == "1",
            "item_names": ITEM_NAMES,
            "format": view.FORMATS,
        },
        viewer=viewer,
    )


@router.get("/extracts/{extract_id}.parquet")
def extract_download(
    extract_id: str, request: Request, db: SessionDep, runtime: RuntimeDep
) -> Response:
    """The body's extract as Parquet (the same file and audit as the API's download)."""
    viewer = _viewer(request, db, BODIES, DOWNLOAD_REFUSED)
    if isinstance(viewer, Response):
        return viewer
    try:
        extract = extracts.download(
            session=db, extract_id=extract_id, org_code=viewer.principal.org_code
        )
    except NotFound as missing:
        return _problem_page(request, 404, "Page not found", missing.detail, viewer=viewer)
    return parquet_file(runtime, extract)
