"""Delivery channels: how an extract file reaches an oversight body.

Each body's delivery setting (JSON on the organisation) picks its channel:

- ``{"channel": "files", "uri": "file:///abs/path/outbox/CQC"}`` or ``"s3://bucket/prefix"``:
  :class:`FileChannel`, through ``pyarrow.fs``; no setting means the default file channel at
  ``settings.outbox_dir / <body code>``.
- ``{"channel": "mesh", "mailbox": "X26CQC001", "workflow_id": "DRB_EXTRACT"}``:
  :class:`MeshChannel`, NHS England's ``mesh-client`` sending from the broker's own mailbox
  (``DRB_MESH_URL``, ``DRB_MESH_MAILBOX``, ``DRB_MESH_PASSWORD``, ``DRB_MESH_SHARED_KEY``).
- ``{"channel": "api"}``: no channel; the body downloads extracts through the API.
- ``{"channel": "email", "address": "data@trust.nhs.uk"}``: notifications only
  (:class:`EmailChannel`, ``DRB_SMTP_*``); extracts are never e-mailed, so a body with it
  downloads them through the API.

A revision of an extract is never delivered twice to the same place, even if the process dies
between sending and recording the send: every delivery carries a ``local_id`` that is stable for
(extract id, revision) (:func:`delivery_local_id`), and a channel first looks for an earlier
delivery of it and, if there is one, answers ``Sent(..., already=True)`` instead of sending.

Errors: :class:`DeliveryFailed` is worth retrying later (MESH down or busy, timeouts, 5xx,
filesystem errors); :class:`ChannelMisconfigured` is not (unknown channel, missing settings, a
bad URI, credentials or recipient refused by MESH). A missing source file raises
``FileNotFoundError`` and a bad ``filename`` or ``local_id`` ``ValueError``: the caller's bugs.
Files are streamed in chunks, never read whole, whatever their size.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlparse, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import requests
import urllib3.exceptions
from mesh_client import MeshClient, MeshError

from services.catalogue.logs import redact
from services.catalogue.settings import Settings
from services.catalogue.states import DeliveryStatus

DEFAULT_WORKFLOW_ID = "DRB_EXTRACT"
COPY_CHUNK_BYTES = 8 * 1024 * 1024
# MESH takes chunks of up to 100 MB; mesh-client holds each chunk after the first in memory
# (to be able to retry it), so this is also the memory a send needs.
DEFAULT_MESH_CHUNK_BYTES = 20 * 1024 * 1024
FILE_SCHEMES = ("file", "s3", "gs")
SIDECAR_SUFFIX = ".sha256"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")
_SAFE_LOCAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")


@dataclass(frozen=True)
class Sent:
    """The result of a delivery."""

    message_id: str
    """The MESH message id, or the URI of the file written."""
    status: DeliveryStatus
    """``delivered`` (files: written); MESH: ``sent`` (accepted by MESH, not yet downloaded),
    or, when ``already``, the earlier message's status as :meth:`Channel.status` names it."""
    already: bool
    """True when this local_id had been delivered before, so nothing was sent now."""


class DeliveryFailed(Exception):
    """A delivery that may work later: try again (MESH down or busy, timeouts, I/O errors)."""


class ChannelMisconfigured(Exception):
    """A delivery that cannot work until a person changes a setting: do not retry."""


class DeliveryRefused(ChannelMisconfigured):
    """A delivery setting that would make the broker reach where its operator did not allow
    (:func:`checked_file_uri`): refused when it is set (422) and again when it is used."""


class Channel(Protocol):
    """Where one body's extracts go."""

    name: str

    def deliver(self, *, source: Path, filename: str, local_id: str, subject: str) -> Sent:
        """Deliver ``source`` as ``filename``, once per ``local_id``."""
        ...

    def status(self, message_id: str) -> DeliveryStatus:
        """MESH: ``sent`` | ``acknowledged`` | ``failed``; files: ``delivered``."""
        ...


def delivery_local_id(extract_id: str, revision: int) -> str:
    """The stable local id of one revision of one extract (the same on every attempt)."""
    return f"drb-extract-{extract_id}-r{revision}"


def channel_for(
    delivery: dict[str, object] | None, *, settings: Settings, body_code: str
) -> Channel | None:
    """The channel of a body's delivery setting; None for ``{"channel": "api"}`` (API only)."""
    if delivery is None:
        if not _SAFE_NAME.match(body_code):
            raise ChannelMisconfigured(f"body code {body_code!r} cannot name an outbox folder")
        return FileChannel((settings.outbox_dir / body_code).resolve().as_uri())
    if not isinstance(delivery, dict):
        raise ChannelMisconfigured(f"delivery setting of {body_code} is not an object")
    kind = delivery.get("channel")
    if kind in ("api", "email"):  # extracts are never e-mailed: the API is theirs
        return None
    if kind == "files":
        return FileChannel(checked_file_uri(_text(delivery, "uri", body_code), settings=settings))
    if kind == "mesh":
        workflow_id = delivery.get("workflow_id", DEFAULT_WORKFLOW_ID)
        if not isinstance(workflow_id, str) or not workflow_id.strip():
            raise ChannelMisconfigured(f"delivery setting of {body_code}: bad workflow_id")
        url, mailbox = settings.mesh_url, settings.mesh_mailbox
        password, shared_key = settings.mesh_password, settings.mesh_shared_key
        if not url or not mailbox or not password or not shared_key:
            missing = [
                f"DRB_{name.upper()}"
                for name in ("mesh_url", "mesh_mailbox", "mesh_password", "mesh_shared_key")
                if not getattr(settings, name)
            ]
            raise ChannelMisconfigured(
                f"{body_code} receives extracts by MESH, but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set"
            )
        return MeshChannel(
            url=url,
            mailbox=mailbox,
            password=password.get_secret_value(),
            shared_key=shared_key.get_secret_value(),
            recipient=_text(delivery, "mailbox", body_code),
            workflow_id=workflow_id.strip(),
            **_mesh_tls(settings),
        )
    raise ChannelMisconfigured(
        f"delivery setting of {body_code}: unknown channel {kind!r} (files, mesh, email or api)"
    )


# What an s3:// or gs:// URI may set (pyarrow takes many more options from a URI): the region,
# and an endpoint (with its scheme) from DRB_DELIVERY_S3_ENDPOINTS. Never credentials: the
# broker's own (its environment's) are used, so a setting cannot carry someone else's.
_STORE_OPTIONS = frozenset({"region", "endpoint_override", "scheme"})
_CREDENTIALS = re.compile(r"(?i)(key|secret|token|password|credential|role_arn|external_id)")


def checked_file_uri(uri: str, *, settings: Settings) -> str:
    """``uri`` as a file channel takes it (an absolute path as a file:// URI, no trailing
    slash), if the operator's settings let the broker write there; else why not.

    - ``file://``: only under DRB_DELIVERY_FILE_ROOTS (the broker's outbox unless set), after
      ``..`` and symbolic links are resolved, and with no options;
    - ``s3://`` and ``gs://``: no credentials (``user:secret@``, ``access_key=``,
      ``secret_key=``, ``session_token=`` ...), no options but ``region`` and an
      ``endpoint_override`` (with its ``scheme``) named in DRB_DELIVERY_S3_ENDPOINTS; plain http
      only to such an endpoint.

    ChannelMisconfigured for a URI no channel can use; DeliveryRefused for one it must not.
    """
    text = uri.strip()
    if text.startswith("/"):
        text = Path(text).as_uri()
    parsed = urlsplit(text)
    if parsed.scheme not in FILE_SCHEMES:
        raise ChannelMisconfigured(
            f"file channel URI {redact(text)!r}: expected "
            f"{', '.join(s + '://' for s in FILE_SCHEMES)}"
        )
    if "@" in parsed.netloc:
        raise DeliveryRefused(
            f"{parsed.scheme}:// URI with credentials: the broker uses its own, never a URI's"
        )
    if parsed.scheme == "file":
        return _checked_folder(text, parsed, settings)
    options = parse_qs(parsed.query, keep_blank_values=True)
    for name, values in options.items():
        if _CREDENTIALS.search(name):
            raise DeliveryRefused(
                f"{parsed.scheme}:// URI with credentials ({name}): the broker uses its own,"
                " never a URI's"
            )
        if name not in _STORE_OPTIONS or len(values) != 1:
            raise DeliveryRefused(
                f"{parsed.scheme}:// URI option {name!r} is not allowed: only region,"
                " endpoint_override and scheme, once each"
            )
    endpoint = options.get("endpoint_override", [None])[0]
    scheme = options.get("scheme", ["https"])[0].lower()
    if endpoint is None and scheme != "https":
        raise DeliveryRefused(f"scheme={scheme} is allowed only with an allowed endpoint_override")
    if endpoint is not None and (scheme, endpoint.lower()) not in settings.delivery_endpoints:
        allowed = settings.delivery_s3_endpoints or "none"
        raise DeliveryRefused(
            f"endpoint_override={endpoint} (over {scheme}) is not an endpoint the operator"
            f" allowed (DRB_DELIVERY_S3_ENDPOINTS: {allowed})"
        )
    return text.rstrip("/")


def _checked_folder(text: str, parsed: SplitResult, settings: Settings) -> str:
    if parsed.netloc not in ("", "localhost") or not parsed.path:
        raise ChannelMisconfigured(f"file channel URI {text!r}: expected file:///absolute/path")
    if parsed.query or parsed.fragment:
        raise DeliveryRefused(f"file channel URI {text!r}: a file:// URI takes no options")
    path = unquote(parsed.path)
    folder = Path(os.path.realpath(path)) if "\x00" not in path else None
    roots = settings.delivery_roots
    if folder is None or not any(folder == root or folder.is_relative_to(root) for root in roots):
        raise DeliveryRefused(
            f"{path} is outside the folders deliveries may write to (DRB_DELIVERY_FILE_ROOTS:"
            f" {', '.join(str(root) for root in roots)})"
        )
    return text.rstrip("/")


def _mesh_tls(settings: Settings) -> dict[str, Any]:
    """MeshChannel's ``cert`` and ``verify`` from the settings, each file checked readable."""
    files = {
        "DRB_MESH_CLIENT_CERT": settings.mesh_client_cert,
        "DRB_MESH_CLIENT_KEY": settings.mesh_client_key,
        "DRB_MESH_CA_BUNDLE": settings.mesh_ca_bundle,
    }
    for name, path in files.items():
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            raise ChannelMisconfigured(f"{name} {path} is not a file this process can read")
    cert, key, bundle = files.values()
    return {
        "cert": (str(cert), str(key)) if cert is not None and key is not None else None,
        "verify": str(bundle) if bundle is not None else None,
    }


def _text(delivery: dict[str, object], key: str, body_code: str) -> str:
    value = delivery.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ChannelMisconfigured(f"delivery setting of {body_code} has no {key!r}")
    return value.strip()


def _check_names(filename: str, local_id: str) -> None:
    if not _SAFE_NAME.match(filename) or filename.endswith(SIDECAR_SUFFIX):
        raise ValueError(
            f"filename {filename!r}: up to 200 letters, digits, '.', '_', '+', '=' or '-', "
            f"not starting with '.' and not ending in {SIDECAR_SUFFIX}"
        )
    if not _SAFE_LOCAL_ID.match(local_id):
        raise ValueError(f"local_id {local_id!r}: up to 255 letters, digits, '.', '_', ':', '-'")


def _read_chunks(stream: IO[bytes], size: int = COPY_CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of ``stream`` in chunks of at most ``size``."""
    while chunk := stream.read(size):
        yield chunk


def _sha256_of(stream: Any) -> str:
    digest = hashlib.sha256()
    for chunk in _read_chunks(stream):
        digest.update(chunk)
    return digest.hexdigest()


class FileChannel:
    """Writes ``<uri>/<filename>`` (and ``<filename>.sha256``) through ``pyarrow.fs``.

    The file is written under a hidden temporary name in the same folder and then moved to its
    name, so a reader never sees part of it; the sidecar (``sha256sum`` format, so that
    ``sha256sum -c`` checks it) is written after the file, and removed before a file is
    replaced, so that a sidecar always describes the file beside it. Delivering again a file
    that is there with the same size and SHA-256 writes nothing (``already=True``).
    """

    name = "files"

    def __init__(self, uri: str) -> None:
        parsed = urlparse(uri)
        if parsed.scheme not in FILE_SCHEMES:
            raise ChannelMisconfigured(
                f"file channel URI {uri!r}: expected {', '.join(s + '://' for s in FILE_SCHEMES)}"
            )
        if parsed.scheme == "file" and (parsed.netloc not in ("", "localhost") or not parsed.path):
            raise ChannelMisconfigured(f"file channel URI {uri!r}: expected file:///absolute/path")
        self.uri = uri.rstrip("/")

    def __repr__(self) -> str:
        return f"FileChannel({self.uri!r})"

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        try:
            filesystem, root = pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise ChannelMisconfigured(f"file channel URI {self.uri!r}: {exc}") from exc
        except OSError as exc:  # e.g. an S3 bucket's region could not be looked up
            raise DeliveryFailed(f"cannot reach {self.uri}: {exc}") from exc
        return filesystem, root.rstrip("/")

    def deliver(self, *, source: Path, filename: str, local_id: str, subject: str) -> Sent:
        """Write ``source`` as ``<uri>/<filename>``; ``local_id`` and ``subject`` are not needed:
        the name and content say whether it was delivered."""
        _check_names(filename, local_id)
        size = source.stat().st_size  # FileNotFoundError: the caller's to handle
        filesystem, root = self._filesystem()
        target, sidecar = f"{root}/{filename}", f"{root}/{filename}{SIDECAR_SUFFIX}"
        message_id = f"{self.uri}/{filename}"
        try:
            if self._holds(filesystem, target, sidecar, source, size):
                return Sent(message_id=message_id, status=DeliveryStatus.DELIVERED, already=True)
            filesystem.create_dir(root, recursive=True)
            digest = self._write(filesystem, root, target, sidecar, source)
            self._put_sidecar(filesystem, root, sidecar, f"{digest}  {filename}\n")
        except OSError as exc:  # pyarrow's I/O errors are OSErrors too
            raise DeliveryFailed(f"could not write {message_id}: {exc}") from exc
        return Sent(message_id=message_id, status=DeliveryStatus.DELIVERED, already=False)

    def status(self, message_id: str) -> DeliveryStatus:
        """A file written is delivered (the body may since have moved it away)."""
        return DeliveryStatus.DELIVERED

    def _holds(
        self, filesystem: pafs.FileSystem, target: str, sidecar: str, source: Path, size: int
    ) -> bool:
        """Whether ``target`` already holds exactly the bytes of ``source`` (a sidecar
        missing or out of date is rewritten from the file itself)."""
        info = filesystem.get_file_info(target)
        if info.type != pafs.FileType.File or info.size != size:
            return False
        with source.open("rb") as stream:
            wanted = _sha256_of(stream)
        recorded = ""
        if filesystem.get_file_info(sidecar).type == pafs.FileType.File:
            with filesystem.open_input_stream(sidecar) as stream:
                recorded = stream.read(200).decode("ascii", "replace").split(" ", 1)[0].strip()
        if recorded == wanted:
            return True
        with filesystem.open_input_stream(target) as stream:
            if _sha256_of(stream) != wanted:
                return False
        root, name = target.rsplit("/", 1)
        self._put_sidecar(filesystem, root, sidecar, f"{wanted}  {name}\n")
        return True

    @staticmethod
    def _temporary(root: str, name: str) -> str:
        return f"{root}/.{name}.{uuid.uuid4().hex}.part"

    def _write(
        self, filesystem: pafs.FileSystem, root: str, target: str, sidecar: str, source: Path
    ) -> str:
        """Copy ``source`` to ``target`` through a temporary file; its SHA-256."""
        temporary = self._temporary(root, target.rsplit("/", 1)[1])
        digest = hashlib.sha256()
        try:
            with source.open("rb") as reader, filesystem.open_output_stream(temporary) as out:
                for chunk in _read_chunks(reader):
                    digest.update(chunk)
                    out.write(chunk)
            if filesystem.get_file_info(sidecar).type == pafs.FileType.File:
                filesystem.delete_file(sidecar)  # it described the file being replaced
            filesystem.move(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                filesystem.delete_file(temporary)
            raise
        return digest.hexdigest()

    def _put_sidecar(self, filesystem: pafs.FileSystem, root: str, sidecar: str, text: str) -> None:
        temporary = self._temporary(root, sidecar.rsplit("/", 1)[1])
        try:
            with filesystem.open_output_stream(temporary) as out:
                out.write(text.encode("ascii"))
            filesystem.move(temporary, sidecar)
        except BaseException:
            with contextlib.suppress(OSError):
                filesystem.delete_file(temporary)
            raise


@dataclass(frozen=True)
class _Earlier:
    """A message found in the broker's MESH outbox with the same local id."""

    message_id: str
    status: str  # MESH's own word, lower case: uploading, accepted, acknowledged, ...
    chunks: int


# MESH's tracking statuses, as this module names them.
_MESH_STATUS = {
    "accepted": DeliveryStatus.SENT,
    "acknowledged": DeliveryStatus.ACKNOWLEDGED,
    "undeliverable": DeliveryStatus.FAILED,
    "error": DeliveryStatus.FAILED,
    "expired": DeliveryStatus.FAILED,
    # A chunked upload that never finished: MESH will not deliver it as it is (deliver() with
    # the same local_id finishes it).
    "uploading": DeliveryStatus.FAILED,
}
_RETRYABLE_HTTP = frozenset({408, 425, 429})


class MeshChannel:
    """Sends extracts from the broker's MESH mailbox to a body's, with NHS England's mesh-client.

    Before sending, it asks MESH for a message already sent from the broker's mailbox with the
    same ``local_id`` (``GET /messageexchange/{mailbox}/outbox/tracking/{local_id}``: MESH's
    tracking by local id, which mesh-client 5 has no method for, so it is called through the
    client's own authenticated session). Found and addressed to this recipient: that message is
    the answer (``already=True``), unless it is a chunked upload that never finished, whose
    missing chunks are then sent. Several found (MESH answers 300): the outbox listing
    (``outbox/rich``) picks the one to this recipient. The look-up and the send are not atomic:
    two processes delivering the same local_id at the same moment can both send, so callers
    run one delivery per extract revision at a time. An earlier message that MESH reports as
    failed (undeliverable, error) is returned as it is (``already=True``, status ``failed``):
    sending that revision again is the caller's decision, under a new local id.
    """

    name = "mesh"

    def __init__(
        self,
        *,
        url: str,
        mailbox: str,
        password: str,
        shared_key: str,
        recipient: str,
        workflow_id: str = DEFAULT_WORKFLOW_ID,
        max_chunk_size: int = DEFAULT_MESH_CHUNK_BYTES,
        timeout: float = 120.0,
        max_retries: int = 3,
        verify: str | bool | None = None,
        cert: tuple[str, str] | None = None,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ChannelMisconfigured(f"DRB_MESH_URL {url!r} is not an http(s) URL")
        if not mailbox.strip() or not recipient.strip():
            raise ChannelMisconfigured("a MESH mailbox id is empty")
        if max_chunk_size < 1024:
            raise ValueError("max_chunk_size is too small")
        self.url = url.rstrip("/")
        self.mailbox = mailbox.strip().upper()
        self.recipient = recipient.strip().upper()
        self.workflow_id = workflow_id
        self.max_chunk_size = max_chunk_size
        self._password = password
        self._shared_key = shared_key.encode()
        self._timeout = timeout
        self._max_retries = max_retries
        self._verify = verify
        self._cert = cert

    def __repr__(self) -> str:
        return (
            f"MeshChannel(url={self.url!r}, mailbox={self.mailbox!r}, "
            f"recipient={self.recipient!r}, workflow_id={self.workflow_id!r})"
        )

    def deliver(self, *, source: Path, filename: str, local_id: str, subject: str) -> Sent:
        _check_names(filename, local_id)
        size = source.stat().st_size  # FileNotFoundError: the caller's to handle
        if size == 0:
            raise ValueError(f"{source} is empty: MESH carries no empty message")
        chunks = max(1, math.ceil(size / self.max_chunk_size))
        with self._client() as client, self._errors(f"send {filename} ({local_id})"):
            earlier = self._earlier(client, local_id)
            if earlier is not None and earlier.status != "uploading":
                status = self._mapped(earlier.status, earlier.message_id)
                return Sent(message_id=earlier.message_id, status=status, already=True)
            with source.open("rb") as reader:
                if earlier is not None:
                    self._finish_upload(client, reader, earlier, chunks)
                    return Sent(
                        message_id=earlier.message_id, status=DeliveryStatus.SENT, already=False
                    )
                message_id = client.send_message(
                    self.recipient,
                    reader,  # a file: mesh-client streams it in chunks of max_chunk_size
                    max_chunk_size=self.max_chunk_size,
                    compress=False,  # Parquet is compressed already
                    workflow_id=self.workflow_id,
                    filename=filename,
                    subject=subject,
                    local_id=local_id,
                )
        return Sent(message_id=message_id, status=DeliveryStatus.SENT, already=False)

    def status(self, message_id: str) -> DeliveryStatus:
        with self._client() as client, self._errors(f"track {message_id}", tracking=message_id):
            tracked = client.track_message(message_id)
        return self._mapped(str(tracked.get("status") or ""), message_id)

    # --- MESH calls -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _client(self) -> Iterator[MeshClient]:
        client = MeshClient(
            self.url,
            self.mailbox,
            self._password,
            shared_key=self._shared_key,
            verify=self._verify,
            cert=self._cert,
            max_chunk_size=self.max_chunk_size,
            timeout=self._timeout,
            max_retries=self._max_retries,
            application_name="data-request-broker",
        )
        with contextlib.closing(client):
            yield client

    def _get(self, client: MeshClient, path_or_url: str) -> requests.Response:
        """GET with the client's session (its authentication, TLS, retries and headers)."""
        url = path_or_url if "://" in path_or_url else f"{self.url}{path_or_url}"
        response: requests.Response = client._session.get(url, timeout=self._timeout)
        return response

    def _earlier(self, client: MeshClient, local_id: str) -> _Earlier | None:
        """The message sent earlier to this recipient with ``local_id``, if any."""
        response = self._get(
            client, f"{client.mailbox_path}/outbox/tracking/{quote(local_id, safe='')}"
        )
        if response.status_code == 404:
            return None
        if response.status_code == 300:  # several messages have this local id
            return self._earlier_in_outbox(client, local_id)
        response.raise_for_status()
        found = response.json()
        if str(found.get("recipient") or "").upper() != self.recipient:
            return None  # sent to another mailbox (the body's mailbox changed since)
        return _Earlier(
            message_id=str(found.get("messageId") or found.get("dtsId")),
            status=str(found.get("status") or "").lower(),
            chunks=int(found.get("chunkCount") or 1),
        )

    def _earlier_in_outbox(self, client: MeshClient, local_id: str) -> _Earlier | None:
        """Several messages share ``local_id``: the best one to this recipient from the outbox
        listing (delivered or on its way, then an unfinished upload, then a failed one)."""
        found: list[_Earlier] = []
        page: str | None = f"{client.mailbox_path}/outbox/rich?max_results=100"
        while page:
            response = self._get(client, page)
            if response.status_code in (404, 405):
                raise ChannelMisconfigured(
                    f"MESH holds several messages from {self.mailbox} with local id {local_id} "
                    "and cannot list the outbox to pick one; decide by hand which was delivered"
                )
            response.raise_for_status()
            listing = response.json()
            found += [
                _Earlier(
                    message_id=str(message["message_id"]),
                    status=str(message.get("status") or "").lower(),
                    chunks=int(message.get("total_chunks") or 1),
                )
                for message in listing.get("messages", [])
                if message.get("local_id") == local_id
                and str(message.get("recipient") or "").upper() == self.recipient
            ]
            page = (listing.get("links") or {}).get("next")
        rank = {"acknowledged": 0, "accepted": 0, "uploading": 1}
        found.sort(key=lambda earlier: rank.get(earlier.status, 2))  # stable: newest first
        return found[0] if found else None

    def _finish_upload(
        self, client: MeshClient, reader: IO[bytes], earlier: _Earlier, chunks: int
    ) -> None:
        """Send chunks 2.. of a message whose upload stopped part way (MESH keeps chunk 1 and
        takes a chunk sent again); the file is the same, as the local id is."""
        if earlier.chunks != chunks:
            raise DeliveryFailed(
                f"message {earlier.message_id} (local id in MESH) stopped part way with "
                f"{earlier.chunks} chunks, but this channel would send {chunks}: set the chunk "
                "size it was sent with, or let that message expire"
            )
        for number in range(2, chunks + 1):
            reader.seek((number - 1) * self.max_chunk_size)
            client.send_chunk(
                recipient=self.recipient,
                chunk=reader.read(self.max_chunk_size),
                chunk_num=number,
                total_chunks=chunks,
                compress=False,
                message_id=earlier.message_id,
            )

    def _mapped(self, mesh_status: str, message_id: str) -> DeliveryStatus:
        mapped = _MESH_STATUS.get(mesh_status.lower())
        if mapped is None:
            raise DeliveryFailed(f"MESH message {message_id}: unknown status {mesh_status!r}")
        return mapped

    @contextlib.contextmanager
    def _errors(self, doing: str, *, tracking: str | None = None) -> Iterator[None]:
        """MESH's and the network's errors as DeliveryFailed or ChannelMisconfigured."""
        where = f"MESH at {self.url} (mailbox {self.mailbox})"
        try:
            yield
        except MeshError as exc:  # MESH refused the message itself: its words say why
            raise ChannelMisconfigured(
                f"{where} refused to {doing} to {self.recipient}: {_mesh_words(exc)}"
            ) from exc
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            words = _response_words(exc.response)
            if code >= 500 or code in _RETRYABLE_HTTP:
                raise DeliveryFailed(f"{where} failed to {doing}: HTTP {code} {words}") from exc
            if code in (401, 403):
                raise ChannelMisconfigured(
                    f"{where} refused the credentials (HTTP {code} {words}): check "
                    "DRB_MESH_MAILBOX, DRB_MESH_PASSWORD and DRB_MESH_SHARED_KEY"
                ) from exc
            if code == 404 and tracking:
                raise ChannelMisconfigured(
                    f"{where} has no message {tracking} in its outbox (HTTP 404)"
                ) from exc
            raise ChannelMisconfigured(f"{where} refused to {doing}: HTTP {code} {words}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DeliveryFailed(f"{where} did not answer ({doing}): {_first_line(exc)}") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # Retries used up, a bad answer; mesh-client lets urllib3's errors through where it
            # never retries (the first chunk of a message, so as not to send it twice).
            raise DeliveryFailed(f"{where}: could not {doing}: {_first_line(exc)}") from exc


class EmailChannel:
    """Sends a plain-text message to one address through the SMTP server of the settings.

    The ``Message-ID`` is made from the caller's ``local_id`` (one per notification), so a
    message sent again after a lost answer can be recognised as the same one by its reader;
    SMTP itself has no way to ask whether it was sent before.
    """

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipient: str,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not is_email_address(recipient.strip()):
            raise ChannelMisconfigured(f"e-mail address {recipient!r} is not valid")
        local, _at, domain = sender.strip().partition("@")
        if not local or not domain or any(c.isspace() or c in "<>,;" for c in sender.strip()):
            raise ChannelMisconfigured(f"DRB_SMTP_FROM {sender!r} is not an e-mail address")
        self.host, self.port = host, port
        self.sender, self.recipient = sender.strip(), recipient.strip()
        self._starttls = starttls
        self._login = (username, password) if username and password is not None else None
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"EmailChannel(host={self.host!r}, port={self.port}, recipient={self.recipient!r})"

    def send(self, *, subject: str, text: str, local_id: str) -> Sent:
        """Send ``text`` as the body of one message; its Message-ID is the answer."""
        if not _SAFE_LOCAL_ID.match(local_id):
            raise ValueError(
                f"local_id {local_id!r}: up to 255 letters, digits, '.', '_', ':', '-'"
            )
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.recipient
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message_id = f"<{local_id}@{self.sender.rsplit('@', 1)[1]}>"
        message["Message-ID"] = message_id
        message.set_content(text)
        where = f"SMTP server {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._login is not None:
                    smtp.login(*self._login)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelMisconfigured(
                f"{where} refused the recipient {self.recipient}: {exc.recipients}"
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelMisconfigured(
                f"{where} refused the login: check DRB_SMTP_USERNAME and DRB_SMTP_PASSWORD"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            words = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            if 400 <= exc.smtp_code < 500:
                raise DeliveryFailed(f"{where} is busy: {exc.smtp_code} {words}") from exc
            raise ChannelMisconfigured(f"{where} refused: {exc.smtp_code} {words}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, dropped
            raise DeliveryFailed(f"{where} did not take the message: {_first_line(exc)}") from exc
        return Sent(message_id=message_id, status=DeliveryStatus.SENT, already=False)


_ADDRESS = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")


def is_email_address(text: str) -> bool:
    """Whether ``text`` is one plain address (``local@domain.tld``, no name, no list)."""
    return bool(_ADDRESS.match(text)) and len(text) <= 254


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _mesh_words(exc: MeshError) -> str:
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return repr(exc.args)[:300]


def _response_words(response: requests.Response | None) -> str:
    """MESH's error message from an error response, if it has one."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict):
        details = body.get("detail")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            return str(details[0].get("msg") or "")
        if body.get("errorDescription"):
            return str(body["errorDescription"])
    return response.reason or ""
