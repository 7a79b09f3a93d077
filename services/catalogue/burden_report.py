"""The burden reduction report: what bodies asked, what trusts were asked, what was avoided.

Counterfactual (the Standard Cost Model's "without the broker"): every active request sent
separately, one return per (primary dataset of its items, trust, month) with that request's
items. Imposed: the asks actually made, with the minutes each request bears for them (the
request that created an ask bears its base minutes and items; later ones the items they added).
Avoided = counterfactual - imposed. Every figure can be traced in the ledger.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

import schemas
from services.catalogue.burden import ReturnCost, Tally
from services.catalogue.periods import month_label, periods_between
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import requests as request_repo

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

    def labels(self) -> tuple[str | None, str | None]:
        """The first and last month as ``YYYY-MM`` (as asks store their period), or None."""
        return (
            None if self.first is None else month_label(self.first),
            None if self.last is None else month_label(self.last),
        )


@dataclass(frozen=True)
class Requested:
    """What one active request would have cost sent alone, inside the window: a return per
    (primary dataset of its items, trust, month), each at ``minutes`` of its dataset."""

    id: str
    body: str
    org_codes: tuple[str, ...]
    months: tuple[int, ...]
    # (dataset, items of the request it carries, its cost), by dataset code.
    datasets: tuple[tuple[str, int, ReturnCost], ...]

    @property
    def rows(self) -> int:
        """How many requested returns (ledger rows) it counts."""
        return len(self.datasets) * len(self.org_codes) * len(self.months)

    def row(self, index: int) -> LedgerRow:
        """Its ``index``-th ledger row: by dataset, then trust (as listed), then month."""
        per_dataset = len(self.org_codes) * len(self.months)
        (dataset, items, cost), rest = self.datasets[index // per_dataset], index % per_dataset
        org_code, month = self.org_codes[rest // len(self.months)], rest % len(self.months)
        return LedgerRow(
            self.id,
            self.body,
            "requested",
            dataset,
            org_code,
            month_label(self.months[month]),
            1,
            cost.minutes(items=items),
        )

    def count_into(self, report: Report) -> None:
        """Add its returns and minutes to the report, the formula applied once per group."""

        def tally(returns: int) -> Tally:
            return Tally(
                returns_requested=returns * len(self.datasets),
                minutes_requested=sum(
                    cost.minutes(items=items * returns, returns=returns)
                    for _dataset, items, cost in self.datasets
                ),
            )

        if not self.rows:
            return
        every = len(self.org_codes) * len(self.months)
        report.totals.add(tally(every))
        report.by["body"][self.body].add(tally(every))
        for dataset, items, cost in self.datasets:
            report.by["dataset"][dataset].add(
                Tally(
                    returns_requested=every,
                    minutes_requested=cost.minutes(items=items * every, returns=every),
                )
            )
        for org_code in self.org_codes:
            report.by["trust"][org_code].add(tally(len(self.months)))
        for month in self.months:
            report.by["month"][month_label(month)].add(tally(len(self.org_codes)))


def requested(
    *, session: Session, window: Window, request_id: str | None = None
) -> list[Requested]:
    """Every active request's counterfactual (or one request's), oldest first."""
    found = []
    for row in request_repo.active_terms(session=session, request_id=request_id):
        by_primary: dict[str, int] = defaultdict(int)
        for item in row.items:
            by_primary[schemas.ITEMS[item].primary_dataset] += 1
        months = tuple(
            m
            for p in periods_between(row.period_start, row.period_end, row.period_type)
            for m in range(p.first_month, p.end_month)
            if window.holds(m)
        )
        datasets = tuple(
            (dataset, count, ReturnCost.of(schemas.get_dataset(dataset).burden))
            for dataset, count in sorted(by_primary.items())
        )
        found.append(Requested(row.id, row.body_code, tuple(row.org_codes), months, datasets))
    return found


@dataclass(frozen=True)
class Position:
    """Where a ledger row stands: the n-th requested return (all come first), or an imposed
    share's key (``ask_repo.ImposedKey``)."""

    requested: int | None = None
    imposed: ask_repo.ImposedKey | None = None


@dataclass(frozen=True)
class LedgerPage:
    """Some rows of the ledger, how many it has in all, and where the pages beside start:
    ``next`` is the position the next page comes after, ``previous`` the one the previous page
    comes before (None at either end)."""

    rows: list[LedgerRow]
    total: int | None  # None when not asked for (``counted=False``)
    next: Position | None
    previous: Position | None


def _imposed_rows(found: list[Any]) -> list[tuple[LedgerRow, Position]]:
    return [
        (
            LedgerRow(
                row.request_id,
                row.body_code,
                "imposed",
                row.dataset_code,
                row.org_code,
                row.period,
                1 if row.imposer else 0,
                row.minutes_imposed,
                row.id,
            ),
            Position(imposed=(row.period, row.dataset_code, row.org_code, row.seq)),
        )
        for row in found
    ]


def _requested_rows(
    terms: list[Requested], start: int, stop: int
) -> list[tuple[LedgerRow, Position]]:
    """The requested returns numbered ``start`` to ``stop`` (exclusive), computed, not read."""
    rows: list[tuple[LedgerRow, Position]] = []
    offset = 0
    for term in terms:
        low, high = max(start, offset), min(stop, offset + term.rows)
        rows.extend((term.row(n - offset), Position(requested=n)) for n in range(low, high))
        offset += term.rows
        if offset >= stop:
            break
    return rows


def ledger_page(
    *,
    session: Session,
    window: Window,
    limit: int,
    request_id: str | None = None,
    after: Position | None = None,
    before: Position | None = None,
    counted: bool = True,
) -> LedgerPage:
    """Up to ``limit`` ledger rows after ``after`` (from the start without it), or the last
    ``limit`` before ``before``: every requested return (by request, oldest first), then every
    imposed share (by month, dataset, trust, then the order the ask's burden was shared out).

    A few queries, however long the ledger: the requests' terms (the requested rows are
    computed from them), a count (unless not ``counted``) and a keyset page of the imposed
    shares.
    """
    terms = requested(session=session, window=window, request_id=request_id)
    in_requested = sum(term.rows for term in terms)
    first, last = window.labels()
    page_of = functools.partial(
        ask_repo.imposed_page, session=session, first=first, last=last, request_id=request_id
    )
    total = (
        in_requested
        + ask_repo.imposed_count(session=session, first=first, last=last, request_id=request_id)
        if counted
        else None
    )
    wanted = limit + 1  # one more than shown says whether there is more
    if before is None:
        rows: list[tuple[LedgerRow, Position]] = []
        if after is None or after.imposed is None:
            start = 0 if after is None else (after.requested or 0) + 1
            rows = _requested_rows(terms, start, start + wanted)
        if len(rows) < wanted:
            key = after.imposed if after is not None else None
            found = page_of(after=key, limit=wanted - len(rows))
            rows += _imposed_rows(found)
        more, rows = len(rows) > limit, rows[:limit]
        return LedgerPage(
            [row for row, _ in rows],
            total,
            next=rows[-1][1] if more else None,
            previous=rows[0][1] if rows and after is not None else None,
        )
    if before.imposed is not None:
        found = page_of(before=before.imposed, limit=wanted)
        rows = _imposed_rows(found[::-1])
        if len(rows) < wanted:
            rows = (
                _requested_rows(terms, max(0, in_requested - wanted + len(rows)), in_requested)
                + rows
            )
    else:
        end = before.requested or 0
        rows = _requested_rows(terms, max(0, end - wanted), end)
    more, rows = len(rows) > limit, rows[-limit:]
    return LedgerPage(
        [row for row, _ in rows],
        total,
        next=rows[-1][1] if rows else None,
        previous=rows[0][1] if more else None,
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
    """The report over a window of months: the requested returns counted per request, the
    imposed ones summed in the database (a handful of rows, however many asks)."""
    report = Report()
    for term in requested(session=session, window=window):
        term.count_into(report)
    first, last = window.labels()
    for breakdown, key, returns, minutes in ask_repo.imposed_by(
        session=session, first=first, last=last
    ):
        tally = Tally(returns_imposed=returns, minutes_imposed=minutes)
        report.by[breakdown][key].add(tally)
        if breakdown == "body":  # every share is some body's: the bodies add up to the total
            report.totals.add(tally)
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
    and ``"dataset"``, each by its code), counted in the database."""
    per: dict[str, dict[str, Completion]] = {"trust": {}, "dataset": {}}
    first, last = window.labels()
    for breakdown, key, asks, due, returned, on_time, overdue in ask_repo.completeness_by(
        session=session, first=first, last=last, today=today
    ):
        per[breakdown][key] = Completion(
            asks=asks,
            due=due,
            returned=returned,
            on_time=on_time,
            late=returned - on_time,
            outstanding=asks - returned,
            overdue=overdue,
        )
    return per
