"""The request's unit of work (services/broker/dependencies.get_session) under cancellation.

A request cancelled while it holds its session still rolls it back and returns the connection
to the pool: the clean-up is shielded. Unshielded, the clean-up's own await was cancelled at once
and the connection stayed checked out until garbage collection.
"""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.pool import QueuePool

from services.broker.dependencies import get_session
from services.catalogue.models import Organisation
from services.catalogue.runtime import Runtime
from tests.conftest import run_async


def _checked_out(runtime: Runtime) -> int:
    pool = runtime.engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


def test_a_cancelled_request_returns_its_connection(runtime: Runtime) -> None:
    seen: dict[str, int] = {}

    async def request() -> None:
        unit = get_session(runtime)
        session = await unit.__anext__()
        session.add(Organisation(code="RX9", name="never stored", kind="trust"))
        session.execute(select(Organisation.code))  # the connection is now checked out
        seen["during"] = _checked_out(runtime)
        with anyio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(anyio.get_cancelled_exc_class()):
                await unit.athrow(anyio.get_cancelled_exc_class()())
        seen["after"] = _checked_out(runtime)

    run_async(request)
    assert seen == {"during": 1, "after": 0}
    with runtime.factory() as session:
        assert session.get(Organisation, "RX9") is None  # rolled back


def test_a_request_that_ends_commits_and_returns_its_connection(runtime: Runtime) -> None:
    async def request() -> None:
        unit = get_session(runtime)
        session = await unit.__anext__()
        session.add(Organisation(code="RX8", name="stored", kind="trust"))
        with pytest.raises(StopAsyncIteration):
            await unit.__anext__()

    run_async(request)
    assert _checked_out(runtime) == 0
    with runtime.factory() as session:
        assert session.get(Organisation, "RX8") is not None
