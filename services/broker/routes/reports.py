"""Reports for auditors: the burden reduction report, its ledger, completeness, the audit log."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from services.broker.dependencies import RuntimeDep, SessionDep, require
from services.broker.responses import (
    AuditCheck,
    AuditEventOut,
    AuditHeadOut,
    BurdenBreakdowns,
    BurdenParameters,
    BurdenReport,
    Completeness,
    LedgerEntry,
)
from services.catalogue import audit, auth, burden_report
from services.catalogue.db import session_scope
from services.catalogue.errors import Invalid
from services.catalogue.periods import PeriodError, parse_month
from services.catalogue.states import OrgKind

router = APIRouter(tags=["reports"])

AuditorDep = Annotated[auth.Principal, Depends(require(OrgKind.AUDITOR))]
Month = Annotated[str | None, Query(description="YYYY-MM, inclusive")]


def only(*names: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters other than ``names`` (422 naming them)."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            raise Invalid(
                f"Unknown query parameter(s): {', '.join(unknown)}; this report takes "
                f"{', '.join(names)}.",
                [{"field": name, "message": "unknown query parameter"} for name in unknown],
            )

    return check


def window_of(month_from: str | None, month_to: str | None) -> burden_report.Window:
    """The month range, validated (422 on a bad month or an inverted range)."""
    errors: list[dict[str, object]] = []
    parsed: dict[str, int | None] = {}
    for name, value in (("month_from", month_from), ("month_to", month_to)):
        try:
            parsed[name] = parse_month(value) if value else None
        except PeriodError as error:
            errors.append({"field": name, "message": str(error)})
    first, last = parsed.get("month_from"), parsed.get("month_to")
    if not errors and first is not None and last is not None and last < first:
        errors.append({"field": "month_to", "message": "month_to is before month_from"})
    if errors:
        raise Invalid("The month range is not valid.", errors)
    return burden_report.Window(first=parsed["month_from"], last=parsed["month_to"])


CSV_CHUNK_ROWS = 1000
LEDGER_LIMIT, LEDGER_MAX_LIMIT = 1000, 10_000
MAX_CURSOR = 400  # characters: a cursor this API gives is under 150


def csv_response(
    rows: Iterable[Iterable[object]], filename: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
    """``rows`` as a CSV attachment, streamed ``CSV_CHUNK_ROWS`` at a time as they come."""

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        remaining = iter(rows)
        while batch := list(itertools.islice(remaining, CSV_CHUNK_ROWS)):
            writer.writerows(batch)
            yield out.getvalue()
            out.seek(0)
            out.truncate()

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


def cursor_text(after: burden_report.Position | None, before: burden_report.Position | None) -> str:
    """A page's ``cursor`` parameter: the position it starts after, or ends before (opaque)."""
    position = after or before
    assert position is not None
    place: list[object] = (
        ["r", position.requested] if position.imposed is None else ["i", *position.imposed]
    )
    data = json.dumps(["a" if after else "b", *place], separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def cursor_of(
    text: str | None,
) -> tuple[burden_report.Position | None, burden_report.Position | None]:
    """``(after, before)`` of a ``cursor`` parameter (422 for one this API did not give)."""
    if text is None:
        return None, None
    try:
        if len(text) > MAX_CURSOR:
            raise ValueError(text)
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        match data:
            case [("a" | "b") as side, "r", int(index)] if 0 <= index < 2**53:
                position = burden_report.Position(requested=index)
            case [("a" | "b") as side, "i", str(period), str(dataset), str(org), int(seq)] if (
                0 <= seq < 2**31 and max(len(period), len(dataset), len(org)) <= 64
            ):
                position = burden_report.Position(imposed=(period, dataset, org, seq))
            case _:
                raise ValueError(text)
    except (ValueError, RecursionError):  # bad base64, UTF-8, JSON or shape
        raise Invalid(
            "The cursor is not one this API gave; follow the links of a page.",
            [{"field": "cursor", "message": "not a cursor of this ledger"}],
        ) from None
    return (position, None) if side == "a" else (None, position)


def ledger_links(
    path: str, query: Mapping[str, str], page: burden_report.LedgerPage
) -> dict[str, str]:
    """The first, next and previous pages' addresses (relative), as ``rel: address``."""
    kept = {name: value for name, value in query.items() if name != "cursor"}

    def address(**cursor: str) -> str:
        return f"{path}?{urlencode({**kept, **cursor})}" if kept or cursor else path

    links = {"first": address()}
    if page.next is not None:
        links["next"] = address(cursor=cursor_text(page.next, None))
    if page.previous is not None:
        links["prev"] = address(cursor=cursor_text(None, page.previous))
    return links


def ledger_page(
    *,
    session: Session,
    window: burden_report.Window,
    request_id: str | None,
    limit: int,
    cursor: str | None,
) -> burden_report.LedgerPage:
    """One page of the ledger, for the API and the ledger page alike."""
    after, before = cursor_of(cursor)
    return burden_report.ledger_page(
        session=session,
        window=window,
        limit=limit,
        request_id=request_id,
        after=after,
        before=before,
    )


@router.get(
    "/v1/reports/burden",
    summary="Burden requested, imposed and avoided (JSON, or ?format=csv)",
    dependencies=[Depends(only("month_from", "month_to", "format"))],
    response_model=BurdenReport,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def burden(
    session: SessionDep,
    runtime: RuntimeDep,
    _auditor: AuditorDep,
    month_from: Month = None,
    month_to: Month = None,
    format: Literal["json", "csv"] = "json",
) -> BurdenReport | Response:
    """Totals and breakdowns by body, trust, dataset and month."""
    window = window_of(month_from, month_to)
    rate = runtime.settings.hourly_rate_gbp
    report = BurdenBreakdowns.of(burden_report.build(session=session, window=window), rate)
    if format == "csv":
        return csv_response(report.csv_rows(), "burden-report.csv")
    return BurdenReport(**dict(report), parameters=burden_parameters(rate))


def burden_parameters(rate: float) -> BurdenParameters:
    """The burden model's parameters, with their sources (for the report's reader)."""
    import schemas

    return BurdenParameters.model_validate(
        {
            "hourly_rate_gbp": rate,
            "hourly_rate_source": (
                "NHS Agenda for Change 2025/26 Band 6 entry point (38,682 GBP a year, 37.5 hours a"
                " week) plus 30% employer on-costs; set DRB_HOURLY_RATE_GBP to change it"
            ),
            "datasets": {
                code: {
                    "base_minutes": d.burden.base_minutes,
                    "minutes_per_item": d.burden.minutes_per_item,
                    "source": d.burden.source,
                }
                for code, d in schemas.DATASETS.items()
            },
        }
    )


LedgerLimit = Annotated[
    int,
    Query(
        ge=1,
        le=LEDGER_MAX_LIMIT,
        description=f"Rows a page (default {LEDGER_LIMIT}, at most {LEDGER_MAX_LIMIT}).",
    ),
]
LedgerCursor = Annotated[
    str | None,
    Query(description="Where the page starts or ends: from a `next` or `prev` link."),
]


@router.get(
    "/v1/reports/burden/ledger",
    summary="Every requested and imposed return behind the burden figures, a page at a time",
    dependencies=[
        Depends(only("month_from", "month_to", "format", "request_id", "limit", "cursor"))
    ],
    response_model=list[LedgerEntry],
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "X-Total-Count": {
                    "description": "Rows of the whole ledger (this window and request)",
                    "schema": {"type": "integer"},
                },
                "Link": {
                    "description": 'The first, next and previous pages (rel="first", "next",'
                    ' "prev"), RFC 8288',
                    "schema": {"type": "string"},
                },
            },
        }
    },
)
def burden_ledger(
    request: Request,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    _auditor: AuditorDep,
    month_from: Month = None,
    month_to: Month = None,
    request_id: str | None = None,
    format: Literal["json", "csv"] = "json",
    limit: LedgerLimit = LEDGER_LIMIT,
    cursor: LedgerCursor = None,
) -> list[LedgerEntry] | Response:
    """One row per counterfactual return and per share of an ask, traceable to its request:
    requested returns first (by request, oldest first), then imposed shares (by month, dataset
    and trust). JSON a page at a time (``limit``, ``cursor``; ``Link`` and ``X-Total-Count``
    headers); ``?format=csv`` the whole ledger, streamed."""
    window = window_of(month_from, month_to)
    if format == "csv":
        paged = sorted({"limit", "cursor"} & set(request.query_params))
        if paged:
            raise Invalid(
                "The CSV is the whole ledger; leave out limit and cursor.",
                [{"field": name, "message": "not with format=csv"} for name in paged],
            )
        columns = tuple(LedgerEntry.model_fields)
        entries = (
            LedgerEntry.of(row)
            for row in ledger_rows(runtime.factory, window=window, request_id=request_id)
        )
        rows = itertools.chain([columns], ([getattr(e, c) for c in columns] for e in entries))
        return csv_response(rows, "burden-ledger.csv")
    page = ledger_page(
        session=session, window=window, request_id=request_id, limit=limit, cursor=cursor
    )
    links = ledger_links(request.url.path, request.query_params, page)
    response.headers["X-Total-Count"] = str(page.total)
    response.headers["Link"] = ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())
    return [LedgerEntry.of(row) for row in page.rows]


def ledger_rows(
    factory: sessionmaker[Session],
    *,
    window: burden_report.Window,
    request_id: str | None,
    chunk: int = LEDGER_MAX_LIMIT,
) -> Iterator[burden_report.LedgerRow]:
    """Every row of the ledger, a page at a time, each page read in its own unit of work (so a
    slow reader of the stream holds no connection)."""
    after = None
    while True:
        with session_scope(factory) as session:
            page = burden_report.ledger_page(
                session=session,
                window=window,
                limit=chunk,
                request_id=request_id,
                after=after,
                counted=False,
            )
        yield from page.rows
        if page.next is None:
            return
        after = page.next


@router.get(
    "/v1/reports/completeness",
    summary="Asks due, returned, on time, late and outstanding, by trust and dataset",
    dependencies=[Depends(only("month_from", "month_to"))],
)
def completeness(
    session: SessionDep, _auditor: AuditorDep, month_from: Month = None, month_to: Month = None
) -> Completeness:
    """The reporting-rate view: how complete and how timely the returns are."""
    window = window_of(month_from, month_to)
    return Completeness.of(
        burden_report.completeness(session=session, window=window, today=date.today())
    )


@router.get(
    "/v1/audit-events",
    summary="The audit log (hash-chained), oldest first",
    dependencies=[Depends(only("since", "limit"))],
)
def audit_events(
    session: SessionDep,
    _auditor: AuditorDep,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AuditEventOut]:
    """Every state change and data access since a timestamp (a value that cannot be read is
    shown as stored: ``verify`` names such an event)."""
    if since is not None and since.tzinfo is None:
        raise Invalid(
            "Give `since` with a UTC offset, e.g. 2026-01-01T00:00:00Z.",
            [{"field": "since", "message": "needs a UTC offset"}],
        )
    return [
        AuditEventOut.of(e) for e in audit.stored_events(session=session, since=since, limit=limit)
    ]


@router.get(
    "/v1/audit-events/verify",
    summary="Check the audit log's hash chain, its head and an optional anchor",
    dependencies=[Depends(only("anchor_id", "anchor_hash"))],
    response_model_exclude_unset=True,
)
def verify_audit(
    session: SessionDep,
    _auditor: AuditorDep,
    anchor_id: Annotated[
        int | None, Query(ge=1, description="The last_id of a head exported earlier.")
    ] = None,
    anchor_hash: Annotated[
        str | None,
        Query(pattern="^[0-9a-f]{64}$", description="The last_hash of the same head."),
    ] = None,
) -> AuditCheck:
    """``{valid, events, first_bad_event, first_invalid_id, breaks, bad_events}``; never an
    error for what is found.

    ``first_bad_event`` is ``{id, at?, action?, reason}``: the first event that does not match
    its hash or the one before it, or cannot be read; a chain that ends before its head (newest
    events deleted); or, given ``anchor_id`` and ``anchor_hash`` (a head exported earlier), an
    anchored event that is gone or changed. Every break is counted (``breaks``), not only the
    first, and the first ten are listed (``bad_events``): an edit made after a first break is
    still seen.
    """
    if (anchor_id is None) != (anchor_hash is None):
        raise Invalid(
            "Give anchor_id and anchor_hash together (the last_id and last_hash of a head).",
            [
                {"field": name, "message": "needed with the other anchor parameter"}
                for name, value in (("anchor_id", anchor_id), ("anchor_hash", anchor_hash))
                if value is None
            ],
        )
    anchor = None
    if anchor_id is not None and anchor_hash is not None:
        anchor = audit.Anchor(id=anchor_id, hash=anchor_hash)
    return AuditCheck.of(audit.verify(session=session, anchor=anchor))


@router.get(
    "/v1/audit-events/head",
    summary="The audit chain's head, signed, to keep outside the database",
)
def audit_head(session: SessionDep, runtime: RuntimeDep, _auditor: AuditorDep) -> AuditHeadOut:
    """``{events, last_id, last_hash, at, signature}``: export it daily (or sign it with
    DRB_AUDIT_SIGNING_KEY) and verify against it later with ``?anchor_id=&anchor_hash=``."""
    return AuditHeadOut.model_validate(
        audit.current_head(session=session, key=audit.signing_key(runtime.settings))
    )
