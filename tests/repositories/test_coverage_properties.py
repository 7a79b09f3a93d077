"""Properties of the coverage check over any sequence of overlapping requests (hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import schemas
from services.catalogue import coverage, coverage_index, data_requests
from services.catalogue.db import session_scope
from services.catalogue.models import (
    Ask,
    AskLink,
    DataRequest,
    Organisation,
)
from services.catalogue.periods import month_label, parse_month
from tests.databases import rolled_back

TRUSTS = {"RJ1": "Y56", "R1K": "Y56", "R0A": "Y62", "RRK": "Y60"}
BODIES = ("CQC", "NHSE", "UKHSA")
ITEMS = sorted(schemas.ITEMS)
FIRST = parse_month("2025-01")


@contextmanager
def broker_state(
    engine: Engine,
) -> Iterator[tuple[sessionmaker[Session], coverage_index.CoverageIndex]]:
    """The trusts and bodies, in a transaction rolled back afterwards, and a coverage index
    of its own (its cache is keyed by epochs, which the rollback takes back)."""
    with rolled_back(engine) as factory:
        with session_scope(factory) as session:
            for code, region in TRUSTS.items():
                session.add(Organisation(code=code, name=code, kind="trust", region=region))
            for code in BODIES:
                session.add(Organisation(code=code, name=code, kind="oversight_body"))
            coverage_index.bump(session=session, key=coverage_index.ORGANISATIONS_KEY)
        yield factory, coverage_index.CoverageIndex()


months = st.integers(min_value=0, max_value=11)
request_specs = st.builds(
    lambda body, items, trusts, a, b, period_type, org_level: (
        body,
        data_requests.RequestSpec(
            title="t",
            purpose="p",
            legal_basis="l",
            items=tuple(items),
            organisations=sorted(trusts),
            period_start=month_label(FIRST + min(a, b)),
            period_end=month_label(FIRST + max(a, b)),
            period_type=period_type,
            org_level=org_level,
        ),
    ),
    st.sampled_from(BODIES),
    st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4, unique=True),
    st.sets(st.sampled_from(sorted(TRUSTS)), min_size=1),
    months,
    months,
    st.sampled_from(["month", "month", "quarter", "year"]),
    st.sampled_from(["trust", "trust", "region", "national"]),
)
held_cells = st.lists(
    st.tuples(st.sampled_from(sorted(schemas.DATASETS)), st.sampled_from(sorted(TRUSTS)), months),
    max_size=12,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("register"), request_specs),
        st.tuples(st.just("dry_run"), request_specs),
        st.tuples(st.just("withdraw"), st.integers(min_value=0, max_value=20)),
    ),
    min_size=1,
    max_size=8,
)


def open_asks_per_key(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        counts = (
            session.execute(
                select(func.count())
                .select_from(Ask)
                .group_by(Ask.dataset_code, Ask.org_code, Ask.period)
            )
            .scalars()
            .all()
        )
    return max(counts, default=0)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(held=held_cells, plan=steps)
def test_any_sequence_of_requests(
    db_engine: Engine, held: list[tuple[str, str, int]], plan: list[tuple[str, object]]
) -> None:
    with broker_state(db_engine) as (factory, index):
        run_plan(factory, index, held, plan)


def run_plan(
    factory: sessionmaker[Session],
    index: coverage_index.CoverageIndex,
    held: list[tuple[str, str, int]],
    plan: list[tuple[str, object]],
) -> None:
    with session_scope(factory) as session:
        for dataset, trust, month in held:
            coverage_index.mark_held(
                session=session, dataset_code=dataset, org_code=trust, month=FIRST + month
            )
    registered: list[tuple[str, str]] = []
    for action, argument in plan:
        if action == "withdraw":
            if registered:
                assert isinstance(argument, int)
                request_id, body = registered[argument % len(registered)]
                with session_scope(factory) as session:
                    data_requests.withdraw(session=session, request_id=request_id, body_code=body)
            continue
        body, spec = argument  # type: ignore[misc]
        with session_scope(factory) as session:
            outcome = data_requests.register(
                session=session,
                index=index,
                body_code=body,
                spec=spec,
                dry_run=action == "dry_run",
            )
            if outcome.request is not None:
                registered.append((outcome.request.id, body))
        if action == "dry_run":
            # The dry run's shortcut (counts from runs) agrees with the cell-by-cell check.
            with factory() as session:
                snapshot = index.snapshot(session)
            exact = coverage.check(snapshot, outcome.check.scope, cells=True)
            assert exact.coverage_dict() == outcome.check.coverage_dict()
            assert exact.burden.figures() == outcome.check.burden.figures()
        # Every cell is in exactly one state.
        for item in outcome.check.items:
            assert (
                item.cells_held + item.cells_scheduled + item.cells_derivable + item.cells_new
                == item.cells_requested
            ), item
            assert item.cells_requested > 0
        assert outcome.check.burden.returns_imposed <= outcome.check.burden.returns_requested
        # No (dataset, trust, period) is ever asked twice.
        assert open_asks_per_key(factory) <= 1
        assert_every_active_request_is_served(factory, index)

    # Withdrawing every request leaves every ask cancelled and no link active.
    with session_scope(factory) as session:
        for request_id, body in registered:
            data_requests.withdraw(session=session, request_id=request_id, body_code=body)
    with factory() as session:
        statuses = set(session.scalars(select(Ask.status)).all())
        active_links = session.scalar(select(func.count()).where(AskLink.active.is_(True)))
    assert statuses <= {"cancelled"}
    assert active_links == 0


def assert_every_active_request_is_served(
    factory: sessionmaker[Session], index: coverage_index.CoverageIndex
) -> None:
    """Each open ask is needed by an active request; each active request's new cells are asked."""
    with factory() as session:
        open_asks = session.scalars(select(Ask).where(Ask.status == "outstanding")).all()
        for ask in open_asks:
            links = session.scalars(
                select(AskLink).where(AskLink.ask_id == ask.id, AskLink.active.is_(True))
            ).all()
            assert links, f"open ask {ask.dataset_code} {ask.org_code} {ask.period} is unneeded"
            assert sum(link.imposer for link in links) == 1
        snapshot = index.snapshot(session)
        for request in session.scalars(select(DataRequest).where(DataRequest.status == "active")):
            spec = data_requests.RequestSpec(
                title="",
                purpose="",
                legal_basis="",
                items=tuple(request.items),
                organisations=request.org_codes,
                period_start=request.period_start,
                period_end=request.period_end,
                period_type=request.period_type,
                org_level=request.org_level,
            )
            scope, _codes = data_requests.scope_of(spec, snapshot)
            again = coverage.check(snapshot, scope)
            assert all(i.cells_new == 0 for i in again.items), again.coverage_dict()
