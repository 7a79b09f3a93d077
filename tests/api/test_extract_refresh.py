"""A request's extracts are refreshed once for the returns accepted while a refresh waits.

On deadline day a request covering every trust has 220 returns accepted within a minute; one
refresh each (rebuilding the whole extract) was 175 rebuilds in bench/deadline_day.py. A refresh
that is waiting (pending, or sent and not yet claimed) reads every return accepted before it
runs, so later accepts join it; one that is running may have read its sources already, so an
accept after it has started queues the next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalogue import extracts
from services.catalogue.db import session_scope
from services.catalogue.models import DataRequest, Job
from services.catalogue.runtime import Runtime
from services.catalogue.states import JobKind
from tests.api_calls import MONTH, ae_csv, ask_for
from tests.conftest import run_pending

Headers = dict[str, str]


def _refreshes(runtime: Runtime) -> list[str]:
    with runtime.factory() as session:
        return list(
            session.scalars(
                select(Job.status)
                .where(Job.kind == JobKind.REFRESH_EXTRACTS)
                .order_by(Job.created_at)
            )
        )


def _accept(client: TestClient, runtime: Runtime, trust: Headers, org_code: str) -> None:
    sent = client.post(
        "/v1/submissions",
        headers=trust,
        data={"dataset": "ae_monthly", "period": MONTH},
        files={"file": ("r.csv", ae_csv(org_code, MONTH), "text/csv")},
    )
    assert sent.status_code == 202, sent.text
    assert run_pending(runtime, "validate_submission") == ["done"]


def test_accepts_join_a_waiting_refresh(
    client: TestClient, runtime: Runtime, make_org: Callable[..., Headers]
) -> None:
    trusts = {code: make_org(code, "trust", "Y56") for code in ("RJ1", "R1K", "RJZ")}
    ask_for(client, make_org("CQC", "oversight_body"), organisations=sorted(trusts))
    _accept(client, runtime, trusts["RJ1"], "RJ1")
    assert _refreshes(runtime) == ["pending"]
    with runtime.factory() as session:
        waiting = session.scalars(select(Job.id).where(Job.kind == JobKind.REFRESH_EXTRACTS)).all()
    runtime.relay(waiting)
    assert _refreshes(runtime) == ["sent"]  # on the queue, not yet claimed
    _accept(client, runtime, trusts["R1K"], "R1K")
    assert _refreshes(runtime) == ["sent"]  # joined the waiting one
    assert run_pending(runtime, "refresh_extracts") == ["done"]
    _accept(client, runtime, trusts["RJZ"], "RJZ")
    assert _refreshes(runtime) == ["done", "pending"]  # after it ran: a new one


@pytest.mark.parametrize("catalogue_url", ["postgres"], indirect=True)
def test_two_refreshes_of_one_request_run_one_after_the_other(
    client: TestClient, runtime: Runtime, make_org: Callable[..., Headers]
) -> None:
    """The first holds its unit of work open after building; the second, started meanwhile,
    waits for it and then finds the extract built (before: it built the same revision too and
    failed on uq_extracts_revision)."""
    trust = make_org("RJ1", "trust", "Y56")
    ask_for(client, make_org("CQC", "oversight_body"), organisations=["RJ1"])
    _accept(client, runtime, trust, "RJ1")
    first_built = threading.Event()
    results: dict[str, object] = {}

    def refresh(name: str, hold: float) -> None:
        try:
            with session_scope(runtime.factory) as session:
                if name == "second":
                    first_built.wait(10)
                built = extracts.refresh(
                    session=session,
                    settings=runtime.settings,
                    request_id=_request_id(runtime),
                    today=date.today(),
                )
                if name == "first":
                    first_built.set()
                    time.sleep(hold)  # still uncommitted while the second starts
                results[name] = len(built)
        except Exception as error:  # reported by the assertion below
            results[name] = error

    threads = [
        threading.Thread(target=refresh, args=("first", 1.5)),
        threading.Thread(target=refresh, args=("second", 0.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"first": 1, "second": 0}


def _request_id(runtime: Runtime) -> str:
    with runtime.factory() as session:
        return str(session.scalars(select(DataRequest.id)).one())
