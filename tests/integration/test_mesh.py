"""Extracts sent by MESH to a real mesh-sandbox: delivered once per local id, whatever happens.

The sandbox and its mailboxes: tests/mesh_sandbox.py.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from mesh_client import MeshClient

from services.catalogue.channels import (
    ChannelMisconfigured,
    DeliveryFailed,
    MeshChannel,
    channel_for,
    delivery_local_id,
)
from services.catalogue.settings import Settings
from tests.mesh_sandbox import BROKER, CQC, NHSE, PASSWORD, SHARED_KEY, client
from tests.processes import free_port
from tests.service_urls import require_services

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def mesh(mesh_url: str) -> str:
    """The sandbox, with the mailboxes used here emptied first."""
    for mailbox in (BROKER, CQC, NHSE):
        httpx.delete(f"{mesh_url}/admin/reset/{mailbox}", timeout=10).raise_for_status()
    return mesh_url


def channel(url: str, recipient: str = CQC, **options: Any) -> MeshChannel:
    return MeshChannel(
        url=url,
        mailbox=BROKER,
        password=options.pop("password", PASSWORD),
        shared_key=SHARED_KEY,
        recipient=recipient,
        **options,
    )


def parquet_extract(path: Path) -> Path:
    table = pa.table(
        {
            "org_code": ["RJ1", "R0A"],
            "period": ["2025-01", "2025-01"],
            "ae_attendances": [12_345, 23_456],
            "source_submission_id": ["s1", "s2"],
            "derived": [False, False],
        }
    )
    pq.write_table(table, path)
    return path


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        while size > 0:
            out.write(os.urandom(min(size, MiB)))
            size -= MiB
    return path


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inbox(url: str, mailbox: str = CQC) -> list[str]:
    with client(url, mailbox) as body:
        return body.list_messages()


def test_an_extract_goes_to_the_body_once_and_is_acknowledged(mesh: str, tmp_path: Path) -> None:
    source = parquet_extract(tmp_path / "extract.parquet")
    settings = Settings(
        data_dir=tmp_path / "var",
        mesh_url=mesh,
        mesh_mailbox=BROKER,
        mesh_password=PASSWORD,
        mesh_shared_key=SHARED_KEY,
    )
    delivery: dict[str, object] = {"channel": "mesh", "mailbox": CQC, "workflow_id": "DRB_EXTRACT"}
    to_cqc = channel_for(delivery, settings=settings, body_code="CQC")
    assert isinstance(to_cqc, MeshChannel)
    local_id = delivery_local_id(uuid.uuid4().hex, 1)

    def deliver() -> Any:
        return to_cqc.deliver(
            source=source, filename="cqc-2025-01-r1.parquet", local_id=local_id, subject="A&E"
        )

    sent = deliver()
    assert (sent.status, sent.already) == ("sent", False)
    assert to_cqc.status(sent.message_id) == "sent"

    # The process dies before recording the send; the next attempt sends nothing.
    again = deliver()
    assert (again.message_id, again.status, again.already) == (sent.message_id, "sent", True)
    assert inbox(mesh) == [sent.message_id]

    with client(mesh, CQC) as body:
        message = body.retrieve_message(sent.message_id)
        assert message.read() == source.read_bytes()
        assert (message.filename, message.local_id, message.subject, message.workflow_id) == (
            "cqc-2025-01-r1.parquet",
            local_id,
            "A&E",
            "DRB_EXTRACT",
        )
        assert message.sender == BROKER
        message.close()
        message.acknowledge()

    assert to_cqc.status(sent.message_id) == "acknowledged"
    late = deliver()
    assert (late.message_id, late.status, late.already) == (sent.message_id, "acknowledged", True)
    assert inbox(mesh) == []


def test_a_large_extract_goes_in_chunks_intact(mesh: str, tmp_path: Path) -> None:
    source = random_file(tmp_path / "big.parquet", 20 * MiB + 123)
    to_cqc = channel(mesh, max_chunk_size=5 * MiB)
    sent = to_cqc.deliver(
        source=source, filename="big.parquet", local_id=f"big-{uuid.uuid4().hex}", subject="big"
    )
    with client(mesh, CQC) as body:
        message = body.retrieve_message(sent.message_id)
        assert message.mex_header("chunk-range") == "1:5"
        received = hashlib.sha256()
        while chunk := message.read(MiB):
            received.update(chunk)
        message.close()
    assert received.hexdigest() == digest(source.read_bytes())


def test_an_upload_that_stopped_part_way_is_finished_not_sent_again(
    mesh: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "big.parquet", 12 * MiB)
    local_id = f"partial-{uuid.uuid4().hex}"
    to_cqc = channel(mesh, max_chunk_size=5 * MiB)
    send_chunk = MeshClient.send_chunk

    def dies_at_chunk_3(self: MeshClient, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("chunk_num") == 3:
            raise requests.ConnectionError("connection reset (simulated)")
        return send_chunk(self, *args, **kwargs)

    monkeypatch.setattr(MeshClient, "send_chunk", dies_at_chunk_3)
    with pytest.raises(DeliveryFailed, match=r"did not answer .*simulated"):
        to_cqc.deliver(source=source, filename="big.parquet", local_id=local_id, subject="s")
    assert inbox(mesh) == []  # MESH holds an unfinished message, which nobody can download
    with client(mesh, BROKER) as broker:
        tracked = broker._session.get(f"{broker.mailbox_url}/outbox/tracking/{local_id}").json()
    assert (tracked["status"], tracked["chunkCount"]) == ("Uploading", 3)

    monkeypatch.setattr(MeshClient, "send_chunk", send_chunk)
    sent = to_cqc.deliver(source=source, filename="big.parquet", local_id=local_id, subject="s")
    assert (sent.message_id, sent.already) == (tracked["messageId"], False)
    assert inbox(mesh) == [sent.message_id]
    with client(mesh, CQC) as body:
        message = body.retrieve_message(sent.message_id)
        assert digest(message.read()) == digest(source.read_bytes())
        message.close()
    assert to_cqc.deliver(
        source=source, filename="big.parquet", local_id=local_id, subject="s"
    ).already


def test_the_same_local_id_to_another_mailbox_is_a_new_delivery(mesh: str, tmp_path: Path) -> None:
    """The body's mailbox changed: the revision is sent to the new one, once; MESH then holds
    two messages with that local id (its tracking answers 300) and the outbox tells them apart."""
    source = parquet_extract(tmp_path / "extract.parquet")
    local_id = f"moved-{uuid.uuid4().hex}"

    def deliver(recipient: str) -> Any:
        return channel(mesh, recipient).deliver(
            source=source, filename="e.parquet", local_id=local_id, subject="s"
        )

    to_nhse = deliver(NHSE)
    to_cqc = deliver(CQC)
    assert not to_cqc.already
    assert to_cqc.message_id != to_nhse.message_id
    assert deliver(CQC).message_id == to_cqc.message_id
    assert deliver(CQC).already
    assert deliver(NHSE).message_id == to_nhse.message_id
    assert inbox(mesh, CQC) == [to_cqc.message_id]
    assert inbox(mesh, NHSE) == [to_nhse.message_id]


def test_mesh_down_is_a_delivery_failure(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    source = parquet_extract(tmp_path / "extract.parquet")
    with pytest.raises(DeliveryFailed) as caught:
        channel(url).deliver(source=source, filename="e.parquet", local_id="down-1", subject="s")
    assert f"MESH at {url} (mailbox {BROKER}) did not answer" in str(caught.value)


def test_a_wrong_password_is_misconfiguration(mesh: str, tmp_path: Path) -> None:
    """Not retryable: a person must fix DRB_MESH_PASSWORD (or the mailbox, or the key)."""
    with client(mesh, BROKER, "wrong-password") as wrong:
        try:
            wrong.handshake()
        except requests.HTTPError:
            pass
        else:
            reason = f"the mesh-sandbox at {mesh} accepts any password (AUTH_MODE=none)"
            if require_services():
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
    source = parquet_extract(tmp_path / "extract.parquet")
    with pytest.raises(ChannelMisconfigured, match=r"refused the credentials.*HTTP 403"):
        channel(mesh, password="wrong-password").deliver(
            source=source, filename="e.parquet", local_id="wrong-1", subject="s"
        )
    assert inbox(mesh) == []


def test_an_unknown_recipient_or_message_is_misconfiguration(mesh: str, tmp_path: Path) -> None:
    source = parquet_extract(tmp_path / "extract.parquet")
    with pytest.raises(ChannelMisconfigured, match=r"refused to send e\.parquet .* Unregistered"):
        channel(mesh, "X26NOBODY").deliver(
            source=source, filename="e.parquet", local_id="nobody-1", subject="s"
        )
    with pytest.raises(ChannelMisconfigured, match="has no message"):
        channel(mesh).status("20260101000000000000_ABCDEF")
