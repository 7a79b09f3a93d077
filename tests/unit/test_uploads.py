"""Streaming an upload to the staging area: every byte kept, hashed right, nothing left behind.

``receive_form`` is fed real ASGI messages, cut wherever the network might cut them: a large
file goes to its writer thread piece by piece while the loop parses on, a small one is written at
its end. A full disk is a real one (a tmpfs mounted for the test).
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from services.broker import uploads
from services.broker.problems import Problem
from tests.conftest import run_async
from tests.tmpfs import fill, mounted_tmpfs

BOUNDARY = "drbtestboundary"


def _body(content: bytes, *, files: int = 1, end: bool = True) -> bytes:
    fields = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("dataset", "ae_monthly"), ("period", "2025-01"))
    )
    parts = b"".join(
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="r{n}.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
        for n in range(files)
    )
    return fields + parts + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


def _request(body: bytes, cuts: list[int]) -> Request:
    """A request whose body arrives in the pieces ``cuts`` makes (offsets into the body)."""
    edges = [0, *sorted({c for c in cuts if 0 < c < len(body)}), len(body)]
    pieces = [body[a:b] for a, b in itertools.pairwise(edges)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/submissions",
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return Request(scope, receive)


def _receive(
    staging: Path, body: bytes, cuts: list[int], *, max_bytes: int = 2**26
) -> uploads.Form:
    """receive_form on its own event loop (run_async: the browser tests hold the main thread's)."""
    request = _request(body, cuts)
    return run_async(partial(uploads.receive_form, request, staging=staging, max_bytes=max_bytes))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.one_of(
        st.integers(0, 2 * uploads.THREAD_FROM_BYTES),  # either side of the writer thread
        st.integers(1_000_000, 3_000_000),
    ),
    cuts=st.lists(st.integers(0, 3_100_000), max_size=40),
    seed=st.integers(0, 255),
)
def test_the_staged_file_is_the_sent_file_however_the_body_is_cut(
    tmp_path: Path, size: int, cuts: list[int], seed: int
) -> None:
    # Bytes that look like a boundary's start, so the parser's look-behind is exercised too.
    content = (bytes([seed]) + b"\r\n--drb" + bytes(range(256))) * (size // 264 + 1)
    content = content[:size]
    staging = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    form = _receive(staging, _body(content), cuts)
    assert form.fields == {"dataset": "ae_monthly", "period": "2025-01"}
    assert form.upload is not None
    assert form.upload.size == size
    assert form.upload.sha256 == hashlib.sha256(content).hexdigest()
    assert form.upload.path.read_bytes() == content
    assert list(staging.iterdir()) == [form.upload.path]


@pytest.mark.parametrize("size", [10, 3_000_000])
def test_a_body_that_stops_inside_the_file_leaves_no_file(tmp_path: Path, size: int) -> None:
    body = _body(b"x" * size, end=False)[: -len("\r\n") - size // 2]  # half the file sent
    form = _receive(tmp_path, body, list(range(0, len(body), 100_000)))
    assert form.upload is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [10, 3_000_000])
def test_two_files_are_refused_and_neither_is_kept(tmp_path: Path, size: int) -> None:
    body = _body(b"y" * size, files=2)
    with pytest.raises(Problem) as refused:
        _receive(tmp_path, body, list(range(0, len(body), 65_536)))
    assert refused.value.status == 422
    assert "one file" in refused.value.detail
    assert list(tmp_path.iterdir()) == []


def test_a_file_past_the_limit_is_cut_off_and_removed(tmp_path: Path) -> None:
    body = _body(b"z" * 3_000_000)
    with pytest.raises(Problem) as refused:
        _receive(tmp_path, body, list(range(0, len(body), 65_536)), max_bytes=1_000_000)
    assert refused.value.status == 413
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def full_staging(tmp_path: Path) -> Iterator[Path]:
    """A staging directory on a 1 MiB tmpfs."""
    with mounted_tmpfs(tmp_path / "incoming") as staging:
        yield staging


@pytest.mark.parametrize(
    ("size", "filled"),
    [(3_000_000, False), (20_000, True)],  # through the writer thread; written at the end
    ids=["large-file", "small-file-on-a-full-disk"],
)
def test_a_full_staging_disk_answers_503_and_keeps_nothing(
    full_staging: Path, size: int, filled: bool
) -> None:
    if filled:
        fill(full_staging / "filler")
    body = _body(b"w" * size)
    with pytest.raises(Problem) as refused:
        _receive(full_staging, body, list(range(0, len(body), 65_536)))
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": str(uploads.STORAGE_RETRY_AFTER)}
    assert "disk is full" in refused.value.detail
    assert [p.name for p in full_staging.iterdir()] == (["filler"] if filled else [])
