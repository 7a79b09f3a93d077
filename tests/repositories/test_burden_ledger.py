"""The auditors' ledger a page at a time, and the report's reads at scale (issue 22).

The report, completeness and every ledger page read a few rows whatever the number of asks (the
database sums and pages), and the ledger's pages, read forwards or backwards, hold every row
once and add up to the report's figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from services.catalogue import burden_report, coverage_index, data_requests
from services.catalogue.db import session_scope
from services.catalogue.models import Ask, Organisation, Submission
from services.catalogue.periods import parse_month
from services.catalogue.states import AskStatus, OrgKind, SubmissionStatus
from tests.databases import rolled_back

BODIES = ("CQC", "NHSE", "UKHSA")
REGIONS = ("Y56", "Y62")


@contextmanager
def broker(engine: Engine, trusts: int) -> Iterator[tuple[sessionmaker[Session], Any]]:
    """``trusts`` trusts and the bodies, rolled back afterwards, and a coverage index."""
    with rolled_back(engine) as factory:
        with session_scope(factory) as session:
            for n in range(trusts):
                session.add(
                    Organisation(
                        code=f"T{n:03d}",
                        name=f"T{n:03d}",
                        kind=OrgKind.TRUST,
                        region=REGIONS[n % 2],
                    )
                )
            for code in BODIES:
                session.add(Organisation(code=code, name=code, kind=OrgKind.OVERSIGHT_BODY))
            coverage_index.bump(session=session, key=coverage_index.ORGANISATIONS_KEY)
        yield factory, coverage_index.CoverageIndex()


def register(
    factory: sessionmaker[Session],
    index: Any,
    body: str,
    items: tuple[str, ...],
    organisations: list[str] | dict[str, str],
    start: str,
    end: str,
    period_type: str = "month",
) -> str:
    spec = data_requests.RequestSpec(
        title="t",
        purpose="p",
        legal_basis="l",
        items=items,
        organisations=organisations,
        period_start=start,
        period_end=end,
        period_type=period_type,
    )
    with session_scope(factory) as session:
        outcome = data_requests.register(
            session=session, index=index, body_code=body, spec=spec, dry_run=False
        )
        assert outcome.request is not None
        return outcome.request.id


def overlapping_requests(factory: sessionmaker[Session], index: Any) -> list[str]:
    """Four requests sharing asks (and one withdrawn), over three datasets and quarters."""
    ids = [
        register(factory, index, "CQC", ("ae_attendances", "ae_breaches"), {"kind": "trust"},
                 "2025-01", "2025-06"),
        register(factory, index, "NHSE", ("ae_attendances", "ae_admissions", "beds_ga_available"),
                 {"region": "Y56"}, "2025-04", "2025-09"),
        register(factory, index, "UKHSA", ("rtt_over_18_weeks",), ["T000", "T001"], "2025-Q2",
                 "2025-Q3", period_type="quarter"),
        register(factory, index, "NHSE", ("ae_breaches",), ["T002"], "2025-02", "2025-03"),
    ]  # fmt: skip
    gone = register(factory, index, "CQC", ("beds_ga_occupied",), ["T001"], "2025-01", "2025-02")
    with session_scope(factory) as session:
        data_requests.withdraw(session=session, request_id=gone, body_code="CQC")
    return ids


def walk(
    session: Session, window: burden_report.Window, limit: int, request_id: str | None = None
) -> list[burden_report.LedgerPage]:
    """Every page from the first, through the ``next`` positions."""
    pages = [
        burden_report.ledger_page(
            session=session, window=window, limit=limit, request_id=request_id
        )
    ]
    while pages[-1].next is not None:
        pages.append(
            burden_report.ledger_page(
                session=session,
                window=window,
                limit=limit,
                request_id=request_id,
                after=pages[-1].next,
            )
        )
    return pages


def figures(report: burden_report.Report) -> dict[str, Any]:
    return {
        "totals": report.totals.figures(),
        **{
            name: {key: tally.figures() for key, tally in sorted(by.items())}
            for name, by in report.by.items()
        },
    }


WINDOWS = [
    burden_report.Window(),
    burden_report.Window(first=parse_month("2025-05"), last=parse_month("2025-08")),
    burden_report.Window(first=parse_month("2025-07")),
]


@pytest.mark.parametrize("limit", [1, 7, 10_000])
def test_the_ledgers_pages_hold_every_row_once_and_add_up_to_the_report(
    db_engine: Engine, limit: int
) -> None:
    with broker(db_engine, 6) as (factory, index):
        ids = overlapping_requests(factory, index)
        with factory() as session:
            for window in WINDOWS:
                pages = walk(session, window, limit)
                rows = [row for page in pages for row in page.rows]
                assert all(0 < len(page.rows) <= limit for page in pages) or rows == []
                assert {page.total for page in pages} == {len(rows)}
                assert len(set(rows)) == len(rows)  # each row once (ask and seq tell shares apart)
                # Requested rows first, then the imposed ones in month, dataset, trust order.
                entries = [row.entry for row in rows]
                assert entries == sorted(entries, key=("requested", "imposed").index)
                imposed = [(r.period, r.dataset, r.org_code) for r in rows if r.entry == "imposed"]
                assert imposed == sorted(imposed)
                assert pages[0].previous is None
                assert pages[-1].next is None

                # Backwards from the last page, through the ``previous`` positions: the same pages.
                back = [pages[-1]]
                while back[-1].previous is not None:
                    back.append(
                        burden_report.ledger_page(
                            session=session, window=window, limit=limit, before=back[-1].previous
                        )
                    )
                assert [p.rows for p in reversed(back)][-len(pages) :] == [p.rows for p in pages]
                assert [row for page in reversed(back) for row in page.rows] == rows

                # Every figure of the report is the sum of its ledger rows.
                summed = burden_report.Report()
                for row in rows:
                    summed.add(row)
                report = burden_report.build(session=session, window=window)
                assert figures(report) == figures(summed)

                # One request's ledger is its rows of the whole ledger.
                for request_id in ids:
                    own = [r for p in walk(session, window, limit, request_id) for r in p.rows]
                    assert own == [row for row in rows if row.request_id == request_id]
            assert (
                figures(burden_report.build(session=session, window=WINDOWS[0]))["totals"][
                    "returns_imposed"
                ]
                > 0
            )


@dataclass
class Reads:
    statements: int = 0
    rows: int = 0


class _CountedCursor:
    """A DBAPI cursor that counts the rows fetched through it."""

    def __init__(self, cursor: Any, reads: Reads) -> None:
        self._cursor, self._reads = cursor, reads

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        self._reads.rows += row is not None
        return row

    def fetchmany(self, *size: int) -> list[Any]:
        rows: list[Any] = self._cursor.fetchmany(*size)
        self._reads.rows += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._cursor.fetchall()
        self._reads.rows += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@contextmanager
def counting(session: Session) -> Iterator[Reads]:
    """Statements run and rows fetched by ``session`` meanwhile."""
    reads = Reads()
    engine = session.get_bind()

    def after(_conn: Any, cursor: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
        reads.statements += 1
        if context is not None and cursor.description is not None:
            context.cursor = _CountedCursor(cursor, reads)

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield reads
    finally:
        event.remove(engine, "after_cursor_execute", after)


def report_reads(factory: sessionmaker[Session], window: burden_report.Window) -> dict[str, Any]:
    """Statements and rows of the report, completeness and a middle ledger page."""
    found: dict[str, Any] = {}
    with factory() as session:
        middle = walk(session, window, 50)[1].next
        for name, call in {
            "report": lambda: burden_report.build(session=session, window=window),
            "completeness": lambda: burden_report.completeness(
                session=session, window=window, today=date(2025, 8, 1)
            ),
            "ledger page": lambda: burden_report.ledger_page(
                session=session, window=window, limit=50, after=middle
            ),
        }.items():
            with counting(session) as reads:
                call()
            found[name] = (reads.statements, reads.rows)
    return found


def test_the_report_reads_a_few_rows_however_many_asks(db_engine: Engine) -> None:
    """Ten times the asks (the same trusts, bodies, datasets and months, more requests sharing
    them and requests for every trust): the same statements, and no more rows than the
    report's keys."""
    window = burden_report.Window()
    trusts, months = 20, ("2025-01", "2025-06")
    keys = len(BODIES) + trusts + 3 + 6  # bodies, trusts, datasets, months
    measured = []
    for requests in (1, 10):
        with broker(db_engine, trusts) as (factory, index):
            # The same trusts, datasets and months; more requests, and so more shares of asks.
            register(factory, index, "CQC", ("ae_attendances", "beds_ga_available",
                     "rtt_over_18_weeks"), {"kind": "trust"}, *months)  # fmt: skip
            for n in range(requests - 1):
                register(factory, index, BODIES[n % 3], ("ae_breaches", "beds_ga_occupied"),
                         {"region": REGIONS[n % 2]}, *months)  # fmt: skip
            measured.append(report_reads(factory, window))
    few, many = measured
    assert {name: statements for name, (statements, _) in few.items()} == {
        name: statements for name, (statements, _) in many.items()
    }
    # Rows: a row per key of each breakdown, the requests' terms, and the page itself.
    assert many["report"][1] <= 2 * keys + 10
    assert many["completeness"][1] <= trusts + 3
    assert many["ledger page"][1] <= 50 + 1 + 10 + 1


@pytest.mark.parametrize(
    ("received", "on_time"),
    [(time(23, 59, 59), True), (time(0, 0, 1), False)],
    ids=["last-second-of-the-due-day", "first-second-after"],
)
def test_on_time_is_by_the_utc_day_of_receipt_whatever_the_sessions_time_zone(
    db_engine: Engine, received: time, on_time: bool
) -> None:
    with broker(db_engine, 1) as (factory, index):
        register(factory, index, "CQC", ("ae_attendances",), ["T000"], "2025-01", "2025-01")
        with session_scope(factory) as session:
            [ask] = session.scalars(select(Ask)).all()
            ask.status = AskStatus.ACCEPTED
            day = ask.due_date if on_time else ask.due_date + timedelta(days=1)
            session.add(
                Submission(
                    org_code="T000",
                    dataset_code="ae_monthly",
                    dataset_version=1,
                    period="2025-01",
                    status=SubmissionStatus.ACCEPTED,
                    filename="r.csv",
                    size_bytes=1,
                    sha256="0" * 64,
                    revision=1,
                    received_at=datetime.combine(day, received, UTC),
                )
            )
        with factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                # A day ahead of UTC: 23:59:59 UTC is already tomorrow there.
                session.execute(text("SET TIME ZONE 'Pacific/Kiritimati'"))
            per = burden_report.completeness(
                session=session, window=burden_report.Window(), today=date(2026, 1, 1)
            )
        counts = per["trust"]["T000"]
        assert (counts.returned, counts.on_time, counts.late) == (1, int(on_time), int(not on_time))
