"""Streaming a multipart upload to disk, hashing it on the way, never holding it in memory.

The file is staged under ``uploads/incoming/`` in a file named after this process
(:func:`services.catalogue.store.staged_prefix`): removed here when the request fails or is cut
off, moved away when the submission is recorded, and removed at the next start of ``drb serve``
if the process was killed meanwhile (:func:`services.catalogue.store.remove_abandoned_uploads`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from services.broker.limits import MULTIPART_OVERHEAD
from services.broker.problems import Problem
from services.catalogue import store
from services.catalogue.submissions import Upload

# The form has three parts (file, dataset, period); these bound what a hostile one may hold.
MAX_FIELD_BYTES = 10_000  # one text field
MAX_PARTS = 16
MAX_FIELDS_BYTES = 64 * 1024  # every text field together
MAX_PART_HEADERS = 8  # header lines of one part
MAX_PART_HEADER_BYTES = 2048  # one header line (name and value)
STORAGE_RETRY_AFTER = 60  # seconds, when the staging area's disk is full
# A file past THREAD_FROM_BYTES is hashed and written by a thread of its own, each piece as it
# arrives, while the event loop goes on parsing (sha256 and write() release the GIL): on two cores
# the two overlap. When MAX_PENDING pieces wait for that thread, the upload waits for it
# (back-pressure without blocking the loop). A small file is written at its end, with no thread.
THREAD_FROM_BYTES = 64 * 1024
MAX_PENDING = 16


class _StagedFile:
    """The file part, staged on disk and hashed on the way; off the event loop once large."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._writer: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()

    def add(self, chunk: bytes) -> None:
        """Take bytes from the parser (synchronous: it is called from a parser callback)."""
        if self._writer is not None:
            self._pending.append(self._writer.submit(self._write, chunk))
            return
        self._buffer += chunk
        if len(self._buffer) >= THREAD_FROM_BYTES:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="drb-upload")
            self._pending.append(self._writer.submit(self._write, bytes(self._buffer)))
            self._buffer.clear()

    def _write(self, block: bytes) -> None:
        self._digest.update(block)
        self._handle.write(block)

    async def keep_up(self) -> None:
        """Raise a write's error (a full disk) early, and wait while too many pieces queue."""
        while self._pending and (self._pending[0].done() or len(self._pending) > MAX_PENDING):
            await asyncio.wrap_future(self._pending.popleft())

    async def finish(self) -> str:
        """Write what is left, close the file, and return its sha256 (hex)."""
        if self._writer is None:
            self._write(bytes(self._buffer))  # small: inline, no thread
        else:  # everything went to the thread
            while self._pending:
                await asyncio.wrap_future(self._pending.popleft())
            self._writer.shutdown()
        self._buffer.clear()
        self._handle.close()
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """Stop writing (queued pieces are dropped) and close the file; the caller removes it."""
        if self._writer is not None:
            self._writer.shutdown(wait=True, cancel_futures=True)  # at most one piece in flight
        self._handle.close()


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    value: bytearray = field(default_factory=bytearray)
    staged: _StagedFile | None = None
    path: Path | None = None
    size: int = 0
    ended: bool = False


@dataclass
class Form:
    """The small text fields of the form, and the one file (staged on disk)."""

    fields: dict[str, str]
    upload: Upload | None


async def receive_form(
    request: Request, *, staging: Path, max_bytes: int, file_field: str = "file"
) -> Form:
    """Parse ``multipart/form-data`` from the request stream; 413 past ``max_bytes``."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(
            415,
            "Send the return as multipart/form-data with the fields file, dataset and period.",
            type_="unsupported-media-type",
        )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise _too_large(max_bytes)

    parts: list[_Part] = []
    current = _Part()
    header_field = bytearray()
    header_value = bytearray()
    fields: dict[str, str] = {}
    upload: Upload | None = None
    failure: list[Problem] = []
    field_bytes = 0  # of every text field so far

    # The limits on the form's shape raise at once, from inside the parser: a body that arrives
    # in one piece must not make it create part after part before the check.
    def on_part_begin() -> None:
        nonlocal current
        if len(parts) >= MAX_PARTS:
            raise Problem(
                413,
                f"The form has more than {MAX_PARTS} parts; send the fields file, dataset and"
                " period only.",
                type_="too-large",
            )
        current = _Part()
        parts.append(current)

    def header_line_fits() -> None:
        if len(header_field) + len(header_value) > MAX_PART_HEADER_BYTES:
            raise Problem(
                413,
                f"A part of the form has a header line longer than {MAX_PART_HEADER_BYTES:,}"
                " bytes.",
                type_="too-large",
            )

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])
        header_line_fits()

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])
        header_line_fits()

    def on_header_end() -> None:
        if len(current.headers) >= MAX_PART_HEADERS:
            raise Problem(
                413,
                f"A part of the form has more than {MAX_PART_HEADERS} header lines.",
                type_="too-large",
            )
        current.headers[header_field.decode("latin-1").lower()] = header_value.decode("latin-1")
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _kind, params = parse_options_header(current.headers.get("content-disposition", ""))
        current.name = params.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = params.get(b"filename")
        if current.name == file_field:
            current.filename = (raw_filename or b"upload").decode("utf-8", "replace")
            # Closed in on_part_end (or _discard); it outlives this callback by design.
            descriptor, name = tempfile.mkstemp(dir=staging, prefix=store.staged_prefix())
            current.staged = _StagedFile(os.fdopen(descriptor, "wb"))
            current.path = Path(name)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal field_bytes
        chunk = data[start:end]
        current.size += len(chunk)
        if current.staged is not None:
            if current.size > max_bytes:
                raise _too_large(max_bytes)
            current.staged.add(chunk)
            return
        field_bytes += len(chunk)
        if field_bytes > MAX_FIELDS_BYTES:
            raise Problem(
                413,
                f"The form's text fields hold more than {MAX_FIELDS_BYTES:,} bytes together;"
                " send the fields file, dataset and period only.",
                type_="too-large",
            )
        if len(current.value) + len(chunk) > MAX_FIELD_BYTES:
            raise Problem(
                422,
                f"The form field {current.name[:64]!r} is longer than {MAX_FIELD_BYTES:,} bytes.",
                type_="invalid",
            )
        current.value.extend(chunk)

    def on_part_end() -> None:
        current.ended = True
        if current.staged is not None:
            if sum(part.staged is not None for part in parts) > 1:
                failure.append(Problem(422, "Send one file per submission.", type_="invalid"))
        else:
            fields[current.name] = current.value.decode("utf-8", "replace").strip()

    parser = MultipartParser(
        boundary,
        max_header_count=MAX_PART_HEADERS + 1,  # backstops: the callbacks say it first
        max_header_size=4 * MAX_PART_HEADER_BYTES,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if failure:
                raise failure[0]
            if current.staged is not None:
                await current.staged.keep_up()
        parser.finalize()
        if failure:
            raise failure[0]
        for part in parts:
            if part.staged is None or part.path is None:
                continue
            if not part.ended:  # the body stopped inside the file: no file, nothing kept
                part.staged.abandon()
                part.staged = None
                part.path.unlink(missing_ok=True)
                continue
            upload = Upload(
                path=part.path,
                filename=part.filename or "upload",
                size=part.size,
                sha256=await part.staged.finish(),
            )
            part.staged = None  # finished and closed
    except Problem:
        _discard(parts)
        raise
    except Exception as error:
        _discard(parts)
        if store.is_storage_full(error):
            # The broker's disk, not the client's body: worth sending again later.
            raise Problem(
                503,
                "The broker cannot store uploads at the moment (its disk is full); send the"
                " return again later.",
                type_="unavailable",
                headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
            ) from error
        raise Problem(
            400, f"The multipart body could not be read: {error}", type_="bad-multipart"
        ) from error
    return Form(fields=fields, upload=upload)


def _too_large(max_bytes: int) -> Problem:
    return Problem(
        413,
        f"The file is larger than this broker accepts ({max_bytes:,} bytes, "
        "DRB_MAX_UPLOAD_BYTES). Split the return or ask the broker's stewards.",
        type_="too-large",
    )


def _discard(parts: list[_Part]) -> None:
    for part in parts:
        if part.staged is not None:
            part.staged.abandon()
        if part.path is not None:
            part.path.unlink(missing_ok=True)
