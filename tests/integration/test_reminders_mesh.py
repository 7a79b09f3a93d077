"""A trust's deadline reminder by MESH: it arrives in the trust's mailbox of a real mesh-sandbox,
once, under the reminders' workflow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.catalogue import reminders
from services.catalogue.runtime import Runtime
from tests.api_calls import ask_for
from tests.mesh_sandbox import BROKER, PASSWORD, SHARED_KEY
from tests.mesh_sandbox import client as mesh_client

pytestmark = pytest.mark.integration
Headers = dict[str, str]
# The sandbox's mailboxes are the broker's and the demo bodies'; UKHSA's stands in for a trust's.
TRUST_MAILBOX = "X26UKHSA1"
# April 2018's A&E return was due on 20 May: two days overdue.
TODAY = date(2018, 5, 22)


def run(runtime: Runtime) -> list[dict[str, Any]]:
    """Today's reminders pass; the reminders it handled."""
    return reminders.run_pass(factory=runtime.factory, settings=runtime.settings, today=TODAY)


def test_a_reminder_arrives_in_the_trusts_mesh_mailbox_once(
    mesh_url: str,
    runtime: Runtime,
    client: TestClient,
    make_org: Callable[..., Headers],
    admin: Headers,
) -> None:
    httpx.delete(f"{mesh_url}/admin/reset/{TRUST_MAILBOX}", timeout=10).raise_for_status()
    trust = make_org("RJ1", "trust", "Y56")
    body = make_org("CQC", "oversight_body")
    put = client.put(
        "/v1/organisations/RJ1/delivery",
        json={"channel": "mesh", "mailbox": TRUST_MAILBOX},
        headers=admin,
    )
    assert put.status_code == 200, put.text
    settings = runtime.settings
    settings.mesh_url = mesh_url
    settings.mesh_mailbox = BROKER
    settings.mesh_password = SecretStr(PASSWORD)
    settings.mesh_shared_key = SecretStr(SHARED_KEY)
    ask_for(
        client,
        body,
        items=["ae_attendances"],
        organisations=["RJ1"],
        period_start="2018-04",
        period_end="2018-04",
    )

    handled = {n["org_code"]: n for n in run(runtime)}
    reminder = handled["RJ1"]
    assert (reminder["channel"], reminder["target"], reminder["status"]) == (
        "mesh",
        TRUST_MAILBOX,
        "sent",
    )
    assert run(runtime) == []  # once a day
    with mesh_client(mesh_url, TRUST_MAILBOX) as inbox:
        assert inbox.list_messages() == [reminder["message_id"]]
        message = inbox.retrieve_message(reminder["message_id"])
        assert message.workflow_id == reminders.MESH_WORKFLOW_ID
        assert message.subject == reminder["subject"]
        assert message.filename == f"drb-reminder-RJ1-{TODAY.isoformat()}.txt"
        text = message.read().decode()
        assert "- ae_monthly 2018-04: due 2018-05-20, 2 days overdue (asked by CQC)" in text
        message.acknowledge()
    shown = client.get("/v1/notifications", headers=trust).json()
    assert [(n["channel"], n["message_id"]) for n in shown] == [("mesh", reminder["message_id"])]
