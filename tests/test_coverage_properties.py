"""Properties of the coverage check over any sequence of overlapping requests (hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

import schemas
from services.catalogue import coverage, coverage_index, data_requests
from services.catalogue.db import session_scope
from services.catalogue.models import (
    Ask,
    AskLink,
    CoverageEpoch,
    DataRequest,
    HeldRun,
    Organisation,
)
from services.catalogue.periods import month_label, parse_month
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
from tests.databases import migrate_database

TRUSTS = {"RJ1": "Y56", "R1K": "Y56", "R0A": "Y62", "RRK": "Y60"}
BODIES = ("CQC", "NHSE", "UKHSA")
ITEMS = sorted(schemas.ITEMS)
FIRST = parse_month("2025-01")


@pytest.fixture(scope="module")
def shared_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One migrated SQLite database for the module; each example starts from no requests."""
    data_dir: Path = tmp_path_factory.mktemp("props")
    settings_ = Settings(data_dir=data_dir, database_url=None, redis_url=None)
    migrate_database(settings_.sqlalchemy_url)
    runtime = boot(settings_)
    with session_scope(runtime.factory) as session:
        for code, region in TRUSTS.items():
            session.add(Organisation(code=code, name=code, kind="trust", region=region))
        for code in BODIES:
            session.add(Organisation(code=code, name=code, kind="oversight_body"))
        coverage_index.bump(session=session, key=coverage_index.ORGANISATIONS_KEY)
    yield runtime
    runtime.close()


def reset(runtime: Runtime) -> None:
    with session_scope(runtime.factory) as session:
        for table in (AskLink, Ask, DataRequest, HeldRun):
            session.execute(delete(table))
        session.execute(
            CoverageEpoch.__table__.update().values(epoch=CoverageEpoch.epoch + 1)  # type: ignore[attr-defined]
        )


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


def open_asks_per_key(runtime: Runtime) -> int:
    with runtime.factory() as session:
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
    shared_runtime: Runtime, held: list[tuple[str, str, int]], plan: list[tuple[str, object]]
) -> None:
    runtime = shared_runtime
    reset(runtime)
    with session_scope(runtime.factory) as session:
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
                with session_scope(runtime.factory) as session:
                    data_requests.withdraw(session=session, request_id=request_id, body_code=body)
            continue
        body, spec = argument  # type: ignore[misc]
        with session_scope(runtime.factory) as session:
            outcome = data_requests.register(
                session=session,
                index=runtime.coverage,
                body_code=body,
                spec=spec,
                dry_run=action == "dry_run",
            )
            if outcome.request is not None:
                registered.append((outcome.request.id, body))
        if action == "dry_run":
            # The dry run's shortcut (counts from runs) agrees with the cell-by-cell check.
            with runtime.factory() as session:
                snapshot = runtime.coverage.snapshot(session)
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
        assert open_asks_per_key(runtime) <= 1
        assert_every_active_request_is_served(runtime)

    # Withdrawing every request leaves every ask cancelled and no link active.
    with session_scope(runtime.factory) as session:
        for request_id, body in registered:
            data_requests.withdraw(session=session, request_id=request_id, body_code=body)
    with runtime.factory() as session:
        statuses = set(session.scalars(select(Ask.status)).all())
        active_links = session.scalar(select(func.count()).where(AskLink.active.is_(True)))
    assert statuses <= {"cancelled"}
    assert active_links == 0


def assert_every_active_request_is_served(runtime: Runtime) -> None:
    """Each open ask is needed by an active request; each active request's new cells are asked."""
    with runtime.factory() as session:
        open_asks = session.scalars(select(Ask).where(Ask.status == "outstanding")).all()
        for ask in open_asks:
            links = session.scalars(
                select(AskLink).where(AskLink.ask_id == ask.id, AskLink.active.is_(True))
            ).all()
            assert links, f"open ask {ask.dataset_code} {ask.org_code} {ask.period} is unneeded"
            assert sum(link.imposer for link in links) == 1
        snapshot = runtime.coverage.snapshot(session)
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
