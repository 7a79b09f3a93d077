"""`GET /v1/extracts` shows a delivery's channel and a plain status, never the server's folders
or the raw error of a failed delivery (those stay in the database and the log, for operators)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalogue import extracts, store
from services.catalogue.models import Extract, ExtractDelivery
from services.catalogue.runtime import Runtime
from tests.api_calls import MONTH, ae_csv, ask_for
from tests.conftest import run_pending

Headers = dict[str, str]


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "CQC": make_org("CQC", "oversight_body"),
        "NAO": make_org("NAO", "auditor"),
    }


def extract_built(client: TestClient, orgs: dict[str, Headers], runtime: Runtime) -> None:
    ask_for(client, orgs["CQC"], organisations=["RJ1"])
    sent = client.post(
        "/v1/submissions",
        headers=orgs["RJ1"],
        data={"dataset": "ae_monthly", "period": MONTH},
        files={"file": ("r.csv", ae_csv("RJ1", MONTH), "text/csv")},
    )
    assert sent.status_code == 202, sent.text
    assert run_pending(runtime, "validate_submission") == ["done"]
    assert run_pending(runtime, "refresh_extracts") == ["done"]


def delivery_row(runtime: Runtime) -> ExtractDelivery:
    with runtime.factory() as session:
        return session.scalars(select(ExtractDelivery)).one()


def listings(client: TestClient, orgs: dict[str, Headers]) -> list[str]:
    """The extract listing as the body and as an auditor see it, as text."""
    shown = []
    for who in ("CQC", "NAO"):
        response = client.get("/v1/extracts", headers=orgs[who])
        assert response.status_code == 200, response.text
        shown.append(response.text)
    return shown


def test_a_failed_delivery_shows_neither_the_folder_nor_the_error(
    client: TestClient,
    orgs: dict[str, Headers],
    admin: Headers,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    blocker = runtime.settings.outbox_dir / "delivery-blocker"  # where deliveries may write
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the body's folder should be")
    folder = blocker / "CQC"
    channel = {"channel": "files", "uri": folder.as_uri()}
    assert client.put("/v1/organisations/CQC/delivery", json=channel, headers=admin).is_success
    extract_built(client, orgs, runtime)

    assert run_pending(runtime, "deliver_extract") == ["DeliveryFailed"]
    row = delivery_row(runtime)
    assert row.last_error is not None  # the operators' record keeps the error...
    assert str(blocker) in row.last_error
    for text in listings(client, orgs):
        [extract] = json.loads(text)
        assert extract["delivery"] == {
            "channel": "files",
            "status": "pending",
            "message_id": None,
            "message": extracts.DELIVERY_RETRYING,
        }
        # ... and the bodies' listing shows none of it.
        for secret in (str(tmp_path), "delivery-blocker", row.last_error, "could not write"):
            assert secret not in text
        assert "target" not in text
        assert "last_error" not in text
        assert "Errno" not in text

    # The extract's file is gone from the store: a failure retrying cannot mend.
    with runtime.factory() as session:
        extract = session.scalars(select(Extract)).one()
        stored = store.absolute(runtime.settings, extract.path)
    stored.unlink()
    assert run_pending(runtime, "deliver_extract") == ["done"]
    row = delivery_row(runtime)
    assert row.status == "failed"
    assert row.last_error is not None
    assert str(stored) in row.last_error
    for text in listings(client, orgs):
        [extract] = json.loads(text)
        assert extract["delivery"]["status"] == "failed"
        assert extract["delivery"]["message"] == extracts.DELIVERY_FAILED
        for secret in (str(tmp_path), str(runtime.settings.data_dir), row.last_error):
            assert secret not in text
        manifest = client.get(f"/v1/extracts/{extract['id']}/manifest", headers=orgs["CQC"])
        assert str(tmp_path) not in manifest.text


def test_a_delivered_file_is_named_by_its_file_name_alone(
    client: TestClient, orgs: dict[str, Headers], runtime: Runtime, tmp_path: Path
) -> None:
    extract_built(client, orgs, runtime)  # no channel set: the default outbox folder
    assert run_pending(runtime, "deliver_extract") == ["done"]
    row = delivery_row(runtime)
    assert row.message_id is not None
    assert row.message_id.startswith("file://")  # the server knows where it wrote it
    for text in listings(client, orgs):
        [extract] = json.loads(text)
        delivery = extract["delivery"]
        assert delivery["channel"] == "files"
        assert delivery["status"] == "delivered"
        assert delivery["message_id"] == row.message_id.rsplit("/", 1)[-1]
        assert delivery["message_id"].startswith(f"drb-{extract['request_id']}-")
        assert "updated_at" in delivery
        assert "message" not in delivery
        assert str(tmp_path) not in text
        assert "outbox" not in text
