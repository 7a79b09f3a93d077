"""A body's requests at a glance, for its pages: how each was covered, the burden it imposed and
avoided, how complete its returns are period by period, and its extracts with their delivery.

What each viewer may see (the same entitlements as ``GET /v1/requests`` and ``/v1/extracts``):
an oversight body its own requests; an auditor every request. Trusts have their own page.

Completeness per period counts the request's asks (the returns it needs that were not already
held when it was registered) by their status today, as ``GET /v1/requests/{id}`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from services.catalogue import asks, data_requests, extracts
from services.catalogue.errors import Forbidden, NotFound
from services.catalogue.models import DataRequest, Extract, ExtractDelivery
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.states import AskStatus, OrgKind

VIEWER_KINDS = (OrgKind.OVERSIGHT_BODY, OrgKind.AUDITOR)


@dataclass(frozen=True)
class PeriodProgress:
    """The request's asks of one period, by status."""

    period: str
    due_date: date
    counts: dict[str, int]

    @property
    def asked(self) -> int:
        """Asks still wanted (a cancelled ask is no longer asked for)."""
        return sum(n for status, n in self.counts.items() if status != AskStatus.CANCELLED)

    @property
    def percent(self) -> float | None:
        """Accepted, as a percentage of the asks still wanted."""
        return 100 * self.counts[AskStatus.ACCEPTED] / self.asked if self.asked else None


@dataclass(frozen=True)
class Summary:
    """One request as its list shows it: the request, its burden and asks now, and its money."""

    request: DataRequest
    burden: dict[str, float | int]
    asks: dict[str, int]
    cost_avoided_gbp: float
    cost_imposed_gbp: float


@dataclass(frozen=True)
class RequestOverview(Summary):
    """One request in full: its summary, its periods and its extracts (newest first), each
    with its delivery."""

    periods: list[PeriodProgress]
    extracts: list[tuple[Extract, ExtractDelivery | None]]


def _summary(session: Session, request: DataRequest, *, hourly_rate: float, today: date) -> Summary:
    burden = data_requests.burden_now(session=session, request=request)
    return Summary(
        request=request,
        burden=burden,
        asks=data_requests.ask_counts(session=session, request_id=request.id, today=today),
        cost_avoided_gbp=cost_gbp(burden["hours_avoided"], hourly_rate),
        cost_imposed_gbp=cost_gbp(burden["hours_imposed"], hourly_rate),
    )


def cost_gbp(hours: float, hourly_rate: float) -> float:
    """Hours of staff time in pounds at the report's hourly rate (as the burden report)."""
    return round(hours * hourly_rate, 2)


def summaries(
    *, session: Session, org_code: str, kind: str, hourly_rate: float, today: date
) -> list[Summary]:
    """The requests the viewer may see, newest first."""
    if kind not in VIEWER_KINDS:
        raise Forbidden("Request pages are for oversight bodies and auditors.")
    body = org_code if kind == OrgKind.OVERSIGHT_BODY else None
    return [
        _summary(session, request, hourly_rate=hourly_rate, today=today)
        for request in request_repo.list_all(session=session, body_code=body)
    ]


def periods_of(*, session: Session, request_id: str, today: date) -> list[PeriodProgress]:
    """The request's asks by period (oldest first) and status, with each period's earliest due
    date."""
    counts: dict[str, dict[str, int]] = {}
    due: dict[str, date] = {}
    for ask in ask_repo.of_request(session=session, request_id=request_id):
        per = counts.setdefault(ask.period, dict.fromkeys(asks.ASK_STATUSES, 0))
        per[asks.shown_status(ask, today=today)] += 1
        due[ask.period] = min(due.get(ask.period, ask.due_date), ask.due_date)
    return [PeriodProgress(period, due[period], counts[period]) for period in sorted(counts)]


def build(
    *,
    session: Session,
    org_code: str,
    kind: str,
    request_id: str,
    hourly_rate: float,
    today: date,
) -> RequestOverview:
    """One request for a viewer allowed to read it (its body, or an auditor)."""
    if kind not in VIEWER_KINDS:
        raise Forbidden("Request pages are for oversight bodies and auditors.")
    request = request_repo.get(session=session, request_id=request_id)
    if request is None:
        raise NotFound(f"No request has the id {request_id!r}.")
    if kind == OrgKind.OVERSIGHT_BODY and request.body_code != org_code:
        raise Forbidden(f"This request is {request.body_code}'s, not {org_code}'s.")
    summary = _summary(session, request, hourly_rate=hourly_rate, today=today)
    return RequestOverview(
        **vars(summary),
        periods=periods_of(session=session, request_id=request.id, today=today),
        extracts=extracts.visible(
            session=session, org_code=org_code, kind=kind, request_id=request.id
        ),
    )
