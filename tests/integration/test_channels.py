"""Delivery channels without services: the file channel, channel_for, and MESH unreachable."""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest
import trustme

from services.catalogue import channels
from services.catalogue.channels import (
    ChannelMisconfigured,
    DeliveryFailed,
    FileChannel,
    MeshChannel,
    Sent,
    channel_for,
    delivery_local_id,
)
from services.catalogue.settings import Settings
from tests.processes import free_port

NO_MESH = {"mesh_url": None, "mesh_mailbox": None, "mesh_password": None, "mesh_shared_key": None}


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox" / "CQC"


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    return write(tmp_path / "extract.parquet", b"PAR1" + os.urandom(100_000) + b"PAR1")


def deliver(channel: FileChannel, source: Path, name: str = "e1-r1.parquet") -> Sent:
    return channel.deliver(
        source=source, filename=name, local_id=delivery_local_id("e1", 1), subject="extract"
    )


def test_writes_the_file_and_a_checksum_beside_it(outbox: Path, extract: Path) -> None:
    channel = FileChannel(outbox.as_uri())
    sent = deliver(channel, extract)
    assert sent == Sent(
        message_id=f"{outbox.as_uri()}/e1-r1.parquet", status="delivered", already=False
    )
    assert (outbox / "e1-r1.parquet").read_bytes() == extract.read_bytes()
    sidecar = (outbox / "e1-r1.parquet.sha256").read_text()
    assert sidecar == f"{sha256(extract)}  e1-r1.parquet\n"  # the format of `sha256sum -c`
    assert channel.status(sent.message_id) == "delivered"
    name = "drb-r1-2025-01-org_code+department_type-rev2.parquet"  # as extracts name them
    assert deliver(channel, extract, name).message_id == f"{outbox.as_uri()}/{name}"


def test_delivering_again_writes_nothing(outbox: Path, extract: Path) -> None:
    channel = FileChannel(outbox.as_uri())
    first = deliver(channel, extract)
    written = (outbox / "e1-r1.parquet").stat().st_mtime_ns
    again = deliver(channel, extract)
    assert again == Sent(message_id=first.message_id, status="delivered", already=True)
    assert (outbox / "e1-r1.parquet").stat().st_mtime_ns == written
    assert sorted(p.name for p in outbox.iterdir()) == ["e1-r1.parquet", "e1-r1.parquet.sha256"]


def test_a_file_without_its_checksum_is_recognised_by_its_bytes(
    outbox: Path, extract: Path
) -> None:
    channel = FileChannel(outbox.as_uri())
    deliver(channel, extract)
    (outbox / "e1-r1.parquet.sha256").unlink()  # e.g. the process died between the two moves
    assert deliver(channel, extract).already is True
    assert (outbox / "e1-r1.parquet.sha256").read_text().startswith(sha256(extract))


def test_other_bytes_under_the_same_name_are_replaced(
    outbox: Path, extract: Path, tmp_path: Path
) -> None:
    channel = FileChannel(outbox.as_uri())
    deliver(channel, extract)
    same_size = write(tmp_path / "other.parquet", b"X" * extract.stat().st_size)
    sent = deliver(channel, same_size)
    assert sent.already is False
    assert (outbox / "e1-r1.parquet").read_bytes() == same_size.read_bytes()
    assert (outbox / "e1-r1.parquet.sha256").read_text().startswith(sha256(same_size))


def failing_after_first_chunk(stream: IO[bytes], size: int = 1024) -> Iterator[bytes]:
    yield stream.read(size)
    raise OSError(28, "No space left on device")


def test_a_copy_that_fails_midway_leaves_nothing_under_the_name(
    outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = FileChannel(outbox.as_uri())
    earlier = write(tmp_path / "earlier.parquet", b"earlier revision")
    deliver(channel, earlier, "kept.parquet")
    big = write(tmp_path / "big.parquet", os.urandom(200_000))
    monkeypatch.setattr(channels, "_read_chunks", failing_after_first_chunk)

    with pytest.raises(DeliveryFailed, match="No space left on device"):
        deliver(channel, big, "new.parquet")
    with pytest.raises(DeliveryFailed):
        deliver(channel, big, "kept.parquet")  # replacing a file that is there

    assert sorted(p.name for p in outbox.iterdir()) == ["kept.parquet", "kept.parquet.sha256"]
    assert (outbox / "kept.parquet").read_bytes() == b"earlier revision"
    assert (outbox / "kept.parquet.sha256").read_text().startswith(sha256(earlier))


def test_a_large_file_is_streamed_in_chunks(
    outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.parquet"
    with big.open("wb") as out:
        for _ in range(50):
            out.write(os.urandom(1 << 20))
    reads: list[int] = []
    original = channels._read_chunks

    def counting(stream: IO[bytes], size: int = channels.COPY_CHUNK_BYTES) -> Iterator[bytes]:
        for chunk in original(stream, size):
            reads.append(len(chunk))
            yield chunk

    monkeypatch.setattr(channels, "_read_chunks", counting)
    tracemalloc.start()
    try:
        sent = deliver(FileChannel(outbox.as_uri()), big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sent.already is False
    assert sha256(outbox / "e1-r1.parquet") == sha256(big)
    assert sum(reads) == 50 << 20
    assert max(reads) <= channels.COPY_CHUNK_BYTES < 50 << 20
    assert peak < 4 * channels.COPY_CHUNK_BYTES  # a few chunks at most, never the whole file


def test_the_caller_s_mistakes_are_not_delivery_failures(outbox: Path, extract: Path) -> None:
    channel = FileChannel(outbox.as_uri())
    for bad in ("../escape.parquet", ".hidden", "a/b.parquet", "x.parquet.sha256", ""):
        with pytest.raises(ValueError, match="filename"):
            deliver(channel, extract, bad)
    with pytest.raises(ValueError, match="local_id"):
        channel.deliver(source=extract, filename="a.parquet", local_id="has space", subject="")
    with pytest.raises(FileNotFoundError):
        deliver(channel, extract.with_name("missing.parquet"))


def test_an_unwritable_folder_is_a_delivery_failure(tmp_path: Path, extract: Path) -> None:
    blocker = write(tmp_path / "blocker", b"a file where a folder should be")
    with pytest.raises(DeliveryFailed, match="could not write"):
        deliver(FileChannel((blocker / "CQC").as_uri()), extract)


def test_no_setting_means_the_default_outbox_folder(tmp_path: Path, extract: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", **NO_MESH)
    channel = channel_for(None, settings=settings, body_code="CQC")
    assert isinstance(channel, FileChannel)
    expected = (tmp_path / "var" / "outbox" / "CQC").resolve()
    assert channel.uri == expected.as_uri()
    deliver(channel, extract)
    assert (expected / "e1-r1.parquet").read_bytes() == extract.read_bytes()


def test_channel_for_each_setting(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        delivery_file_roots="/srv/outbox",
        mesh_url="http://127.0.0.1:9",
        mesh_mailbox="X26DRB001",
        mesh_password="secret-password",
        mesh_shared_key="secret-key",
    )
    assert channel_for({"channel": "api"}, settings=settings, body_code="CQC") is None

    files = channel_for(
        {"channel": "files", "uri": "file:///srv/outbox/CQC/"}, settings=settings, body_code="CQC"
    )
    assert isinstance(files, FileChannel)
    assert files.uri == "file:///srv/outbox/CQC"
    assert isinstance(
        channel_for(
            {"channel": "files", "uri": "s3://bucket/cqc"}, settings=settings, body_code="X"
        ),
        FileChannel,
    )

    mesh = channel_for(
        {"channel": "mesh", "mailbox": "x26cqc001", "workflow_id": "DRB_EXTRACT"},
        settings=settings,
        body_code="CQC",
    )
    assert isinstance(mesh, MeshChannel)
    assert (mesh.name, mesh.mailbox, mesh.recipient, mesh.workflow_id) == (
        "mesh",
        "X26DRB001",
        "X26CQC001",
        "DRB_EXTRACT",
    )
    assert "secret" not in repr(mesh)
    default_workflow = channel_for(
        {"channel": "mesh", "mailbox": "X26CQC001"}, settings=settings, body_code="CQC"
    )
    assert isinstance(default_workflow, MeshChannel)
    assert default_workflow.workflow_id == channels.DEFAULT_WORKFLOW_ID


@pytest.mark.parametrize(
    ("delivery", "message"),
    [
        ({"channel": "ftp", "uri": "ftp://x"}, "unknown channel 'ftp'"),
        ({}, "unknown channel None"),
        ({"channel": "files"}, "has no 'uri'"),
        ({"channel": "files", "uri": "outbox/CQC"}, "expected file://"),
        ({"channel": "files", "uri": "ftp://host/outbox"}, "expected file://"),
        ({"channel": "files", "uri": "file://host/outbox"}, "file:///absolute/path"),
        ({"channel": "mesh"}, "has no 'mailbox'"),
        ({"channel": "mesh", "mailbox": "X26CQC001", "workflow_id": ""}, "bad workflow_id"),
    ],
)
def test_misconfigured_settings(tmp_path: Path, delivery: dict[str, object], message: str) -> None:
    settings = Settings(
        data_dir=tmp_path,
        mesh_url="http://127.0.0.1:9",
        mesh_mailbox="X26DRB001",
        mesh_password="p",
        mesh_shared_key="k",
    )
    with pytest.raises(ChannelMisconfigured, match=message):
        channel_for(delivery, settings=settings, body_code="CQC")


def test_mesh_without_the_broker_s_mesh_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **{**NO_MESH, "mesh_url": "http://127.0.0.1:9"})
    with pytest.raises(ChannelMisconfigured) as caught:
        channel_for({"channel": "mesh", "mailbox": "X26CQC001"}, settings=settings, body_code="CQC")
    assert str(caught.value) == (
        "CQC receives extracts by MESH, but DRB_MESH_MAILBOX, DRB_MESH_PASSWORD, "
        "DRB_MESH_SHARED_KEY are not set"
    )


def test_bad_body_code_and_bad_mesh_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **NO_MESH)
    with pytest.raises(ChannelMisconfigured, match="cannot name an outbox folder"):
        channel_for(None, settings=settings, body_code="../CQC")
    with pytest.raises(ChannelMisconfigured, match="not an http"):
        MeshChannel(url="mesh.example", mailbox="A", password="p", shared_key="k", recipient="B")


def test_mesh_not_answering_is_a_delivery_failure(extract: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    channel = MeshChannel(
        url=url,
        mailbox="X26DRB001",
        password="password",
        shared_key="k",
        recipient="X26CQC001",
        max_retries=0,
        timeout=5,
    )
    with pytest.raises(DeliveryFailed, match=f"MESH at {url} .* did not answer"):
        channel.deliver(source=extract, filename="a.parquet", local_id="l-1", subject="s")
    with pytest.raises(DeliveryFailed, match="did not answer"):
        channel.status("20260101000000000000_ABCDEF")


class Busy(BaseHTTPRequestHandler):
    """A MESH that answers every request with 503."""

    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"detail": [{"msg": "Service Unavailable"}]}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_mesh() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("retries", [0, 1])
def test_mesh_answering_5xx_is_a_delivery_failure(
    busy_mesh: str, extract: Path, retries: int
) -> None:
    channel = MeshChannel(
        url=busy_mesh,
        mailbox="X26DRB001",
        password="password",
        shared_key="k",
        recipient="X26CQC001",
        max_retries=retries,
    )
    with pytest.raises(DeliveryFailed, match="503"):
        channel.deliver(source=extract, filename="a.parquet", local_id="l-1", subject="s")


def test_local_ids_are_stable_per_revision() -> None:
    assert delivery_local_id("e1", 2) == delivery_local_id("e1", 2) == "drb-extract-e1-r2"
    assert delivery_local_id("e1", 2) != delivery_local_id("e1", 3)


# ---------------------------------------------------------------------------
# MESH over mutual TLS: client certificate and CA bundle from the settings
# ---------------------------------------------------------------------------


class Seen(Busy):
    """A TLS MESH stand-in: records the client certificate of each request, answers 503."""

    peers: list[dict[str, object]]

    def do_GET(self) -> None:
        type(self).peers.append(self.connection.getpeercert())  # type: ignore[attr-defined]
        super().do_GET()


@dataclass
class TlsMesh:
    url: str
    ca: trustme.CA
    peers: list[dict[str, object]]


@pytest.fixture
def tls_mesh() -> Iterator[TlsMesh]:
    """An HTTPS server on 127.0.0.1 that demands a client certificate signed by its CA."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    handler = type("SeenHere", (Seen,), {"peers": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda *args: None  # type: ignore[method-assign]  # failed handshakes
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsMesh(f"https://127.0.0.1:{server.server_address[1]}", ca, handler.peers)
    finally:
        server.shutdown()
        server.server_close()


def mesh_settings(tmp_path: Path, url: str, **tls: Path | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        mesh_url=url,
        mesh_mailbox="X26DRB001",
        mesh_password="password",
        mesh_shared_key="key",
        **tls,
    )


def client_files(tmp_path: Path, ca: trustme.CA) -> dict[str, Path]:
    """The broker's client certificate and key, and the CA bundle, as PEM files."""
    issued = ca.issue_cert("drb-broker.example")
    cert, key, bundle = tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return {"mesh_client_cert": cert, "mesh_client_key": key, "mesh_ca_bundle": bundle}


def tracked_through(settings: Settings) -> None:
    channel = channel_for(
        {"channel": "mesh", "mailbox": "X26CQC001"}, settings=settings, body_code="CQC"
    )
    assert isinstance(channel, MeshChannel)
    channel.status("20260101000000000000_ABCDEF")


def test_mesh_presents_the_client_certificate_of_the_settings(
    tmp_path: Path, tls_mesh: TlsMesh
) -> None:
    settings = mesh_settings(tmp_path, tls_mesh.url, **client_files(tmp_path, tls_mesh.ca))
    with pytest.raises(DeliveryFailed, match="503"):  # through TLS to the server's answer
        tracked_through(settings)
    assert tls_mesh.peers, "the request did not reach the server"
    names = {value for kind, value in tls_mesh.peers[0]["subjectAltName"]}  # type: ignore[attr-defined]
    assert names == {"drb-broker.example"}


def test_mesh_without_a_client_certificate_is_refused_by_the_server(
    tmp_path: Path, tls_mesh: TlsMesh
) -> None:
    files = client_files(tmp_path, tls_mesh.ca)
    settings = mesh_settings(tmp_path, tls_mesh.url, mesh_ca_bundle=files["mesh_ca_bundle"])
    with pytest.raises(DeliveryFailed):
        tracked_through(settings)
    assert tls_mesh.peers == []


def test_mesh_with_a_server_the_ca_bundle_does_not_vouch_for(
    tmp_path: Path, tls_mesh: TlsMesh
) -> None:
    files = client_files(tmp_path, tls_mesh.ca)
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    settings = mesh_settings(tmp_path, tls_mesh.url, **{**files, "mesh_ca_bundle": other})
    with pytest.raises(DeliveryFailed, match=r"(?i)certificate"):
        tracked_through(settings)
    assert tls_mesh.peers == []


def test_mesh_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="DRB_MESH_CLIENT_CERT and DRB_MESH_CLIENT_KEY go together"
    ):
        mesh_settings(tmp_path, "https://mesh.example", mesh_client_cert=tmp_path / "c.pem")
    missing = mesh_settings(
        tmp_path,
        "https://mesh.example",
        mesh_client_cert=tmp_path / "nowhere.pem",
        mesh_client_key=tmp_path / "nowhere.key",
    )
    with pytest.raises(ChannelMisconfigured, match=r"DRB_MESH_CLIENT_CERT .*nowhere\.pem is not"):
        tracked_through(missing)
    blank = Settings(data_dir=tmp_path, mesh_client_cert="", mesh_client_key="")
    assert blank.mesh_client_cert is None
    assert blank.mesh_client_key is None


# -- what a delivery setting may reach -------------------------------------------------------


def _allowing(tmp_path: Path, **overrides: str) -> Settings:
    """Settings whose file deliveries may write under tmp_path/allowed, and S3 endpoints."""
    (tmp_path / "allowed" / "CQC").mkdir(parents=True, exist_ok=True)
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    values = {
        "delivery_file_roots": str(tmp_path / "allowed"),
        "delivery_s3_endpoints": "minio.internal:9000, http://127.0.0.1:9001",
        **overrides,
    }
    return Settings(data_dir=tmp_path / "var", **NO_MESH, **values)


REFUSED_URIS = {
    # Credentials, in the user part or as options: the broker uses its own.
    "s3://AKIAABCDEFGHIJKLMNOP:wJalrXUtnFEMI@bucket/cqc": "credentials",
    "s3://AKIAABCDEFGHIJKLMNOP@bucket/cqc": "credentials",
    "s3://bucket/cqc?access_key=AKIAABCDEFGHIJKLMNOP&secret_key=s3cr3t": "credentials",
    "s3://bucket/cqc?session_token=abc": "credentials",
    "s3://bucket/cqc?role_arn=arn:aws:iam::1:role/x": "credentials",
    "gs://bucket/cqc?credentials=x": "credentials",
    # Endpoints and options the operator did not allow.
    "s3://bucket/cqc?endpoint_override=169.254.169.254:80&scheme=http": "not an endpoint",
    "s3://bucket/cqc?endpoint_override=evil.example:443": "not an endpoint",
    "s3://bucket/cqc?endpoint_override=127.0.0.1:9001": "not an endpoint",  # https: not listed
    "s3://bucket/cqc?endpoint_override=minio.internal:9000&scheme=http": "not an endpoint",
    "s3://bucket/cqc?scheme=http": "only with an allowed endpoint_override",
    "s3://bucket/cqc?proxy_options=http://proxy.example:3128": "not allowed",
    "s3://bucket/cqc?allow_bucket_creation=true": "not allowed",
    "s3://bucket/cqc?region=eu-west-2&region=us-east-1": "not allowed",
    # Folders outside the allowed roots, however spelt.
    "file:///etc/cron.d": "outside the folders",
    "/etc/cron.d": "outside the folders",
    "file://{tmp}/elsewhere": "outside the folders",
    "file://{tmp}/allowed/../elsewhere": "outside the folders",
    "file://{tmp}/allowed/%2E%2E/elsewhere": "outside the folders",
    "file://{tmp}/allowed-not": "outside the folders",
    "file://{tmp}/allowed/link-out": "outside the folders",  # a symbolic link out of the root
    "file://{tmp}/allowed/CQC?x=1": "takes no options",
}


@pytest.mark.parametrize("uri", sorted(REFUSED_URIS))
def test_a_delivery_uri_the_operator_did_not_allow_is_refused(tmp_path: Path, uri: str) -> None:
    settings = _allowing(tmp_path)
    link = tmp_path / "allowed" / "link-out"
    if not link.exists():
        link.symlink_to(tmp_path / "elsewhere")
    text = uri.replace("{tmp}", str(tmp_path))
    with pytest.raises(channels.DeliveryRefused, match=REFUSED_URIS[uri]) as refused:
        channels.checked_file_uri(text, settings=settings)
    # The message names no secret, and channel_for refuses a setting stored before the rule.
    assert "s3cr3t" not in str(refused.value)
    assert "wJalrXUtnFEMI" not in str(refused.value)
    with pytest.raises(channels.DeliveryRefused):
        channel_for({"channel": "files", "uri": text}, settings=settings, body_code="CQC")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file://{tmp}/allowed/CQC/", "file://{tmp}/allowed/CQC"),
        ("file://{tmp}/allowed", "file://{tmp}/allowed"),
        ("{tmp}/allowed/CQC", "file://{tmp}/allowed/CQC"),
        ("s3://bucket/cqc", "s3://bucket/cqc"),
        ("s3://bucket/cqc?region=eu-west-2", "s3://bucket/cqc?region=eu-west-2"),
        (
            "s3://bucket/cqc?endpoint_override=MINIO.internal:9000",
            "s3://bucket/cqc?endpoint_override=MINIO.internal:9000",
        ),
        (
            "s3://bucket/cqc?endpoint_override=127.0.0.1:9001&scheme=http",
            "s3://bucket/cqc?endpoint_override=127.0.0.1:9001&scheme=http",
        ),
    ],
)
def test_a_delivery_uri_the_operator_allowed_is_taken(
    tmp_path: Path, uri: str, expected: str
) -> None:
    settings = _allowing(tmp_path)
    text, wanted = (value.replace("{tmp}", str(tmp_path)) for value in (uri, expected))
    assert channels.checked_file_uri(text, settings=settings) == wanted
    channel = channel_for({"channel": "files", "uri": text}, settings=settings, body_code="CQC")
    assert isinstance(channel, FileChannel)


def test_file_deliveries_default_to_the_outbox_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", **NO_MESH)
    inside = (tmp_path / "var" / "outbox" / "CQC").as_uri()
    assert channels.checked_file_uri(inside, settings=settings) == inside
    with pytest.raises(channels.DeliveryRefused, match="outside the folders"):
        channels.checked_file_uri((tmp_path / "var" / "store").as_uri(), settings=settings)
    with pytest.raises(channels.DeliveryRefused, match="not an endpoint"):
        channels.checked_file_uri("s3://b/p?endpoint_override=minio:9000", settings=settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("delivery_file_roots", "relative/folder"), ("delivery_s3_endpoints", "ftp://host:21")],
)
def test_delivery_allow_lists_are_checked_at_start(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"DRB_{name.upper()}"):
        Settings(**{name: value})
