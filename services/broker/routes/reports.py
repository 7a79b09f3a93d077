"""Reports for auditors: the burden reduction report, its ledger, completeness, the audit log."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

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


def _csv(rows: Iterable[Iterable[object]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
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
        return _csv(report.csv_rows(), "burden-report.csv")
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


@router.get(
    "/v1/reports/burden/ledger",
    summary="Every requested and imposed return behind the burden figures",
    dependencies=[Depends(only("month_from", "month_to", "format", "request_id"))],
    response_model=list[LedgerEntry],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def burden_ledger(
    session: SessionDep,
    _auditor: AuditorDep,
    month_from: Month = None,
    month_to: Month = None,
    request_id: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> list[LedgerEntry] | Response:
    """One row per counterfactual return and per share of an ask, traceable to its request."""
    window = window_of(month_from, month_to)
    rows = [
        row
        for row in burden_report.ledger(session=session, window=window)
        if request_id is None or row.request_id == request_id
    ]
    entries = [LedgerEntry.of(row) for row in rows]
    if format == "csv":
        columns = tuple(LedgerEntry.model_fields)
        table = [columns, *([getattr(e, c) for c in columns] for e in entries)]
        return _csv(table, "burden-ledger.csv")
    return entries


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
