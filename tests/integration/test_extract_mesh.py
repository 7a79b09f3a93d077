"""An extract delivered by MESH end to end: built, sent once, retried while MESH is down,
tracked to acknowledged once the body downloads it (real mesh-sandbox)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from services.catalogue import jobs
from services.catalogue.channels import delivery_local_id
from services.catalogue.models import ExtractDelivery
from services.catalogue.runtime import Runtime
from tests.api_calls import MONTH, ask_for
from tests.conftest import run_pending
from tests.mesh_sandbox import BROKER, CQC, PASSWORD, SHARED_KEY
from tests.mesh_sandbox import client as mesh_client
from tests.processes import free_port

pytestmark = pytest.mark.integration
Headers = dict[str, str]


def delivery(runtime: Runtime) -> ExtractDelivery:
    with runtime.factory() as session:
        return session.scalars(select(ExtractDelivery)).one()


def test_extract_by_mesh_once_despite_an_outage(
    mesh_url: str,
    runtime: Runtime,
    client: TestClient,
    make_org: Callable[..., Headers],
    admin: Headers,
) -> None:
    for mailbox in (BROKER, CQC):
        httpx.delete(f"{mesh_url}/admin/reset/{mailbox}", timeout=10).raise_for_status()
    http = client
    trust = make_org("RJ1", "trust", "Y56")
    body = make_org("CQC", "oversight_body")
    assert (
        http.put(
            "/v1/organisations/CQC/delivery",
            headers=admin,
            json={"channel": "mesh", "mailbox": CQC},
        ).status_code
        == 200
    )
    # MESH is down when the extract is first delivered.
    settings = runtime.settings
    settings.mesh_mailbox = BROKER
    settings.mesh_password = SecretStr(PASSWORD)
    settings.mesh_shared_key = SecretStr(SHARED_KEY)
    settings.mesh_url = f"http://127.0.0.1:{free_port()}"

    ask_for(http, body, organisations=["RJ1"])
    # No worker runs: submissions and extract jobs are run by hand, in order.
    response = http.post(
        "/v1/submissions",
        headers=trust,
        data={"dataset": "ae_monthly", "period": MONTH},
        files={"file": ("r.csv", _ae_csv(), "text/csv")},
    )
    assert response.status_code == 202
    assert run_pending(runtime, "validate_submission") == ["done"]
    assert run_pending(runtime, "refresh_extracts") == ["done"]
    assert run_pending(runtime, "deliver_extract") == ["DeliveryFailed"]
    down = delivery(runtime)
    assert (down.status, down.attempts) == ("pending", 1)
    assert down.last_error
    assert down.next_attempt_at is not None
    listed = http.get("/v1/extracts", headers=body).json()
    assert listed[0]["delivery"]["status"] == "pending"  # never lost: still to deliver

    settings.mesh_url = mesh_url  # MESH is back
    assert run_pending(runtime, "deliver_extract") == ["done"]
    assert run_pending(runtime, "deliver_extract") == []  # delivered: nothing left to run
    sent = delivery(runtime)
    assert sent.status == "sent"
    assert sent.message_id

    extract_id = listed[0]["id"]
    download = http.get(f"/v1/extracts/{extract_id}/download", headers=body).content
    with mesh_client(mesh_url, CQC) as inbox:
        messages = inbox.list_messages()
        assert messages == [sent.message_id]  # exactly once
        message = inbox.retrieve_message(messages[0])
        # The local id that the channel's "sent before?" look-up relies on (test_channels.py and
        # test_mesh.py, beside this file) is the one production sends.
        assert message.local_id == delivery_local_id(extract_id, listed[0]["revision"])
        assert message.read() == download
        message.acknowledge()
    with runtime.factory() as session:
        jobs.enqueue(session=session, kind="maintain_extracts")
        session.commit()
    run_pending(runtime, "maintain_extracts")
    assert delivery(runtime).status == "acknowledged"


def _ae_csv() -> bytes:
    from tests.schema_samples import ae_monthly_sample

    return ae_monthly_sample(org_code="RJ1", period=MONTH).write_csv().encode()
