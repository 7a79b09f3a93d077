"""The burden reduction report: what bodies asked, what trusts were asked, what was avoided.

Counterfactual (the Standard Cost Model's "without the broker"): every active request sent
separately, one return per (primary dataset of its items, trust, month) with that request's
items. Imposed: the asks actually made, with the minutes each request bears for them (the
request that created an ask bears its base minutes and items; later ones the items they added).
Avoided = counterfactual - imposed. Every figure can be traced in the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

import schemas
from services.catalogue.burden import ReturnCost, Tally
from services.catalogue.periods import month_label, parse_month, periods_between
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.states import AskStatus

FIGURES = (
    "returns_requested",
    "returns_imposed",
    "returns_avoided",
    "hours_requested",
    "hours_imposed",
    "hours_avoided",
    "cost_avoided_gbp",
)
BREAKDOWNS = {"body": "by_body", "trust": "by_trust", "dataset": "by_dataset", "month": "by_month"}


@dataclass(frozen=True)
class LedgerRow:
    """One traceable line: a request's counterfactual return, or its share of an ask."""

    request_id: str
    body: str
    entry: str  # requested | imposed
    dataset: str
    org_code: str
    period: str
    returns: int
    minutes: float
    ask_id: str | None = None


@dataclass(frozen=True)
class Window:
    """The months the report covers (inclusive), or everything."""

    first: int | None = None
    last: int | None = None

    def holds(self, month: int) -> bool:
        """Whether a month is inside the window."""
        return (self.first is None or month >= self.first) and (
            self.last is None or month <= self.last
        )


def ledger(*, session: Session, window: Window) -> Iterator[LedgerRow]:
    """Every requested and imposed return behind the report's figures."""
    for request in request_repo.active(session=session):
        by_primary: dict[str, int] = defaultdict(int)
        for item in request.items:
            by_primary[schemas.ITEMS[item].primary_dataset] += 1
        months = [
            m
            for p in periods_between(request.period_start, request.period_end, request.period_type)
            for m in range(p.first_month, p.end_month)
            if window.holds(m)
        ]
        for dataset, count in sorted(by_primary.items()):
            minutes = ReturnCost.of(schemas.get_dataset(dataset).burden).minutes(items=count)
            for org_code in request.org_codes:
                for month in months:
                    yield LedgerRow(
                        request.id,
                        request.body_code,
                        "requested",
                        dataset,
                        org_code,
                        month_label(month),
                        1,
                        minutes,
                    )
    for link, ask, body in ask_repo.active_links(session=session):
        if not window.holds(parse_month(ask.period)):
            continue
        if link.imposer or link.minutes_imposed:
            yield LedgerRow(
                link.request_id,
                body,
                "imposed",
                ask.dataset_code,
                ask.org_code,
                ask.period,
                1 if link.imposer else 0,
                link.minutes_imposed,
                ask.id,
            )


@dataclass
class Report:
    """Totals and breakdowns."""

    totals: Tally = field(default_factory=Tally)
    by: dict[str, dict[str, Tally]] = field(
        default_factory=lambda: {name: defaultdict(Tally) for name in BREAKDOWNS}
    )

    def add(self, row: LedgerRow) -> None:
        """Count one ledger row everywhere it belongs."""
        keys = {
            "body": row.body,
            "trust": row.org_code,
            "dataset": row.dataset,
            "month": row.period,
        }
        for tally in (self.totals, *(self.by[name][key] for name, key in keys.items())):
            if row.entry == "requested":
                tally.returns_requested += row.returns
                tally.minutes_requested += row.minutes
            else:
                tally.returns_imposed += row.returns
                tally.minutes_imposed += row.minutes


def build(*, session: Session, window: Window) -> Report:
    """The report over a window of months."""
    report = Report()
    for row in ledger(session=session, window=window):
        report.add(row)
    return report


@dataclass
class Completion:
    """How complete and how timely one trust's (or one dataset's) returns are."""

    asks: int = 0
    due: int = 0
    returned: int = 0
    on_time: int = 0
    late: int = 0
    outstanding: int = 0
    overdue: int = 0

    def add(self, *, due: bool, returned: bool, on_time: bool) -> None:
        """Count one ask in."""
        self.asks += 1
        self.due += due
        self.returned += returned
        self.on_time += on_time
        self.late += returned and not on_time
        self.outstanding += not returned
        self.overdue += due and not returned

    @property
    def reporting_rate(self) -> float | None:
        """Returned, as a share of the asks (to 4 places); None without asks."""
        return round(self.returned / self.asks, 4) if self.asks else None

    @property
    def on_time_rate(self) -> float | None:
        """On time, as a share of the asks due (to 4 places); None with none due."""
        return round(self.on_time / self.due, 4) if self.due else None


def completeness(
    *, session: Session, window: Window, today: date
) -> dict[str, dict[str, Completion]]:
    """Asks due, returned, on time, late and outstanding, per trust and per dataset (``"trust"``
    and ``"dataset"``, each by its code)."""
    first_accepted = submission_repo.first_accepted_received(session=session)
    per: dict[str, dict[str, Completion]] = {"trust": {}, "dataset": {}}
    for ask in ask_repo.not_cancelled(session=session):
        if not window.holds(parse_month(ask.period)):
            continue
        received = first_accepted.get((ask.org_code, ask.dataset_code, ask.period))
        returned = ask.status == AskStatus.ACCEPTED and received is not None
        on_time = returned and received is not None and received.date() <= ask.due_date
        for name, key in (("trust", ask.org_code), ("dataset", ask.dataset_code)):
            per[name].setdefault(key, Completion()).add(
                due=ask.due_date <= today, returned=returned, on_time=on_time
            )
    return per
