"""Data requests: checked against the catalogue, registered, withdrawn; asks for the gap only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from services.catalogue import asks, audit, coverage, coverage_index
from services.catalogue.burden import ReturnCost, Tally
from services.catalogue.coverage_index import CoverageIndex, Snapshot
from services.catalogue.errors import Conflict, Forbidden, Invalid, NotFound
from services.catalogue.models import DataRequest, new_id, utcnow
from services.catalogue.periods import (
    MAX_MONTHS,
    Period,
    PeriodError,
    last_day,
    month_label,
    parse,
    periods_between,
)
from services.catalogue.regions import REGIONS
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import catalogue as catalogue_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.states import AskStatus, OrgKind, RequestStatus

# Serialises registrations and withdrawals (every database), so two requests never ask twice.
_ADVISORY_LOCK = 727_271


@dataclass(frozen=True)
class RequestSpec:
    """What a body asks for, as sent."""

    title: str
    purpose: str
    legal_basis: str
    items: tuple[str, ...]
    organisations: list[str] | dict[str, str]
    period_start: str
    period_end: str
    period_type: str = "month"
    org_level: str = "trust"
    due_days: int = 20


@dataclass
class Outcome:
    """A checked (and, unless a dry run, registered) request."""

    request: DataRequest | None
    check: coverage.Check
    spec: RequestSpec
    org_codes: list[str]
    asks_created: int = 0
    asks_joined: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _lock(session: Session) -> None:
    request_repo.serialise_registrations(session=session, key=_ADVISORY_LOCK)


def scope_of(spec: RequestSpec, snapshot: Snapshot) -> tuple[coverage.Scope, list[str]]:
    """Validate a spec against the catalogue; the scope and the trust codes, or Invalid."""
    catalogue = snapshot.catalogue
    organisations = snapshot.organisations
    assert catalogue is not None
    assert organisations is not None
    errors: list[dict[str, object]] = []
    suggestions: dict[str, list[str]] = {}
    items = tuple(dict.fromkeys(spec.items))
    for code in items:
        if code not in catalogue.primary:
            nearest = [m.code for m in catalogue.search.suggest(code, limit=3)]
            suggestions[code] = nearest
            hint = f"; did you mean {', '.join(nearest)}?" if nearest else ""
            errors.append(
                {
                    "field": "items",
                    "item": code,
                    "message": f"unknown item {code!r}{hint}",
                    "suggestions": nearest,
                }
            )

    trusts = _population(spec.organisations, organisations, errors)

    periods: list[Period] = []
    try:
        start, end = parse(spec.period_start), parse(spec.period_end)
    except PeriodError as error:
        field_name = "period_start"
        try:
            parse(spec.period_start)
        except PeriodError:
            pass
        else:
            field_name = "period_end"
        errors.append({"field": field_name, "message": str(error)})
    else:
        if end.end_month <= start.first_month:
            errors.append({"field": "period_end", "message": "period_end is before period_start"})
        elif end.end_month - start.first_month > MAX_MONTHS:
            errors.append(
                {"field": "period_end", "message": "a request spans at most 10 years (120 months)"}
            )
        else:
            periods = periods_between(spec.period_start, spec.period_end, spec.period_type)

    if errors:
        fields = ", ".join(dict.fromkeys(str(e["field"]) for e in errors))
        unknown = [str(e["item"]) for e in errors if "item" in e]
        detail = (
            f"Unknown item(s): {', '.join(unknown)}."
            if unknown and fields == "items"
            else f"The request is not valid: check {fields}."
        )
        extra = {"suggestions": suggestions} if suggestions else {}
        raise Invalid(detail, errors, **extra)
    scope = coverage.Scope(
        items=items,
        trusts=np.array(sorted(organisations.index[c] for c in trusts), dtype=np.int32),
        periods=tuple(periods),
        period_type=spec.period_type,
        org_level=spec.org_level,
    )
    return scope, sorted(trusts)


def _population(
    selector: list[str] | dict[str, str],
    organisations: coverage_index.Organisations,
    errors: list[dict[str, object]],
) -> list[str]:
    """The trust codes a population selects (and errors for what is wrong with it)."""

    def is_trust(code: str) -> bool:
        return organisations.kinds[organisations.index[code]] == OrgKind.TRUST

    if isinstance(selector, dict):
        if set(selector) == {"kind"} and selector["kind"] == OrgKind.TRUST:
            return [c for c in organisations.codes if is_trust(c)]
        if set(selector) == {"region"}:
            region = selector["region"]
            if region not in REGIONS:
                errors.append(
                    {
                        "field": "organisations.region",
                        "message": f"unknown region {region!r}; known: {', '.join(REGIONS)}",
                    }
                )
                return []
            found = [
                c
                for n, c in enumerate(organisations.codes)
                if organisations.kinds[n] == OrgKind.TRUST and organisations.regions[n] == region
            ]
            if not found:
                errors.append(
                    {
                        "field": "organisations.region",
                        "message": f"no registered trusts in region {region}",
                    }
                )
            return found
        errors.append(
            {
                "field": "organisations",
                "message": 'use a list of ODS codes, {"kind": "trust"} or {"region": CODE}',
            }
        )
        return []
    codes = list(dict.fromkeys(selector))
    if not codes:
        errors.append({"field": "organisations", "message": "name at least one trust"})
    for code in codes:
        if code not in organisations.index:
            errors.append(
                {
                    "field": "organisations",
                    "organisation": code,
                    "message": f"no organisation has the code {code!r}",
                }
            )
        elif not is_trust(code):
            kind = organisations.kinds[organisations.index[code]]
            errors.append(
                {
                    "field": "organisations",
                    "organisation": code,
                    "message": f"{code} is an {kind}, not a trust",
                }
            )
    return codes


def register(
    *,
    session: Session,
    index: CoverageIndex,
    body_code: str,
    spec: RequestSpec,
    dry_run: bool,
) -> Outcome:
    """Check a request against the catalogue and, unless ``dry_run``, register it and its asks."""
    if not dry_run:
        # Before the snapshot is read: two registrations that read it unlocked both impose the
        # cells neither saw scheduled.
        _lock(session)
    snapshot = index.snapshot(session)
    scope, org_codes = scope_of(spec, snapshot)
    result = coverage.check(snapshot, scope, cells=not dry_run)
    outcome = Outcome(request=None, check=result, spec=spec, org_codes=org_codes)
    if dry_run:
        return outcome

    request = DataRequest(
        id=new_id(),
        body_code=body_code,
        title=spec.title,
        purpose=spec.purpose,
        legal_basis=spec.legal_basis,
        items=list(scope.items),
        population=spec.organisations,
        org_codes=org_codes,
        period_start=scope.periods[0].label,
        period_end=scope.periods[-1].label,
        period_type=spec.period_type,
        org_level=spec.org_level,
        due_days=spec.due_days,
        status=RequestStatus.ACTIVE,
        coverage=result.coverage_dict(),
        returns_requested=result.burden.returns_requested,
        minutes_requested=result.burden.minutes_requested,
        created_at=utcnow(),
    )
    session.add(request)
    session.flush()
    outcome.request = request
    touched: set[str] = set()
    catalogue = snapshot.catalogue
    organisations = snapshot.organisations
    assert catalogue is not None
    assert organisations is not None

    def due(month: int) -> date:
        return last_day(month) + timedelta(days=spec.due_days)

    def item_codes(dataset: str, mask: int) -> list[str]:
        names = catalogue.dataset_items[dataset]
        return [name for bit, name in enumerate(names) if mask >> bit & 1]

    def wanted(
        dataset: str, cells: coverage.Cells, items: list[str] | None = None
    ) -> list[asks.Wanted]:
        """The returns of ``cells``: each cell's items of the dataset, or ``items`` for all."""
        return [
            asks.Wanted(
                org_code=organisations.codes[t],
                period=month_label(int(m)),
                items=item_codes(dataset, int(mask)) if items is None else items,
                due_date=due(int(m)),
            )
            for t, m, mask in zip(
                cells.trusts.tolist(), cells.months.tolist(), cells.items.tolist(), strict=True
            )
        ]

    now = utcnow()
    for dataset, cells in result.new.items():
        outcome.asks_created += asks.impose(
            session=session,
            request_id=request.id,
            dataset=dataset,
            wanted=wanted(dataset, cells),
            cost=catalogue.costs[dataset],
            now=now,
        )
        touched.add(dataset)
    for role, by_dataset in (("collects", result.collects), ("derives", result.derives)):
        for dataset, cells in by_dataset.items():
            derived = list(result.derived_items[dataset]) if role == "derives" else None
            outcome.asks_joined += asks.join(
                session=session,
                request_id=request.id,
                dataset=dataset,
                role=role,
                wanted=wanted(dataset, cells, derived),
                cost=catalogue.costs[dataset],
                now=now,
            )
            touched.add(dataset)
    session.flush()
    for dataset in sorted(touched):
        coverage_index.bump(session=session, key=dataset)
    audit.record(
        session=session,
        actor=body_code,
        action="request.registered",
        subject_type="request",
        subject_id=request.id,
        detail={
            "asks_created": outcome.asks_created,
            "asks_joined": outcome.asks_joined,
            "cells_new": result.coverage_dict()["cells_new"],
        },
    )
    return outcome


def _found(*, session: Session, request_id: str) -> DataRequest:
    request = request_repo.get(session=session, request_id=request_id)
    if request is None:
        raise NotFound(f"No request has the id {request_id!r}.")
    return request


def withdraw(*, session: Session, request_id: str, body_code: str) -> DataRequest:
    """Withdraw a body's own request; asks no other active request needs are cancelled."""
    _lock(session)
    request = _found(session=session, request_id=request_id)
    if request.body_code != body_code:
        raise Forbidden("Only the body that registered a request may withdraw it.")
    if request.status == RequestStatus.WITHDRAWN:
        return request
    if request.status != RequestStatus.ACTIVE:
        raise Conflict(f"The request is {request.status}; only an active one can be withdrawn.")
    own = ask_repo.links_of_request(session=session, request_id=request_id)
    ask_ids = [link.ask_id for link in own if link.active]
    all_links = ask_repo.links_of(session=session, ask_ids=ask_ids)
    touched: set[str] = set()
    cancelled = 0
    for ask_id, links in all_links.items():
        for link in links:
            if link.request_id == request_id:
                link.active = False
        ask = ask_repo.get(session=session, ask_id=ask_id)
        assert ask is not None
        dataset = catalogue_repo.dataset(session=session, code=ask.dataset_code)
        assert dataset is not None
        asks.attribute(ask, links, cost=ReturnCost.of(dataset))
        cancelled += ask.status == AskStatus.CANCELLED
        touched.add(ask.dataset_code)
    request.status = RequestStatus.WITHDRAWN
    request.withdrawn_at = utcnow()
    session.flush()
    for dataset_code in sorted(touched):
        coverage_index.bump(session=session, key=dataset_code)
    audit.record(
        session=session,
        actor=body_code,
        action="request.withdrawn",
        subject_type="request",
        subject_id=request_id,
        detail={"asks_released": len(ask_ids), "asks_cancelled": cancelled},
    )
    return request


def may_read(request: DataRequest, *, org_code: str, kind: str) -> bool:
    """Bodies read their own requests, auditors all, trusts those whose population holds them."""
    if kind == OrgKind.AUDITOR:
        return True
    if kind == OrgKind.OVERSIGHT_BODY:
        return request.body_code == org_code
    if kind == OrgKind.TRUST:
        return org_code in request.org_codes
    return False


def readable(*, session: Session, request_id: str, org_code: str, kind: str) -> DataRequest:
    """A request the caller may read (see ``may_read``); Forbidden otherwise."""
    request = _found(session=session, request_id=request_id)
    if not may_read(request, org_code=org_code, kind=kind):
        raise Forbidden("This request belongs to another body and does not include you.")
    return request


def visible(*, session: Session, org_code: str, kind: str) -> list[DataRequest]:
    """The requests a caller may read, newest first."""
    if kind == OrgKind.OVERSIGHT_BODY:
        return list(request_repo.list_all(session=session, body_code=org_code))
    return [
        r
        for r in request_repo.list_all(session=session)
        if may_read(r, org_code=org_code, kind=kind)
    ]


def burden_now(*, session: Session, request: DataRequest) -> dict[str, float | int]:
    """The request's burden figures as they stand (asks may have passed to it since)."""
    links = ask_repo.links_of_request(session=session, request_id=request.id)
    active = [link for link in links if link.active]
    return Tally(
        returns_requested=request.returns_requested,
        minutes_requested=request.minutes_requested,
        returns_imposed=sum(1 for link in active if link.imposer),
        minutes_imposed=sum(link.minutes_imposed for link in active),
    ).figures()


def ask_counts(*, session: Session, request_id: str, today: date) -> dict[str, int]:
    """How many of the request's asks are in each status now."""
    counts: dict[str, int] = dict.fromkeys(asks.ASK_STATUSES, 0)
    for ask in ask_repo.of_request(session=session, request_id=request_id):
        counts[asks.shown_status(ask, today=today)] += 1
    return counts
