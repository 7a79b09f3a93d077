"""A request's extracts are refreshed once for the returns accepted while a refresh waits.

On deadline day a request covering every trust has 220 returns accepted within a minute; one
refresh each (rebuilding the whole extract) was 175 rebuilds in bench/deadline_day.py. A refresh
that is waiting (pending, or sent and not yet claimed) reads every return accepted before it
runs, so later accepts join it; one that is running may have read its sources already, so an
accept after it has started queues the next.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalogue import extracts
from services.catalogue.models import Job
from services.catalogue.runtime import Runtime
from tests.test_extract_privacy import run_pending
from tests.test_extracts import MONTH, ask_for
from tests.test_submissions import ae_csv

Headers = dict[str, str]


def _refreshes(runtime: Runtime) -> list[str]:
    with runtime.factory() as session:
        return list(
            session.scalars(
                select(Job.status).where(Job.kind == extracts.REFRESH_JOB).order_by(Job.created_at)
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
        waiting = session.scalars(select(Job.id).where(Job.kind == extracts.REFRESH_JOB)).all()
    runtime.relay(waiting)
    assert _refreshes(runtime) == ["sent"]  # on the queue, not yet claimed
    _accept(client, runtime, trusts["R1K"], "R1K")
    assert _refreshes(runtime) == ["sent"]  # joined the waiting one
    assert run_pending(runtime, "refresh_extracts") == ["done"]
    _accept(client, runtime, trusts["RJZ"], "RJZ")
    assert _refreshes(runtime) == ["done", "pending"]  # after it ran: a new one
