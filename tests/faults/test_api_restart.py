"""`drb serve` killed (SIGKILL) with an upload half received, then started again.

The partial file in the staging area is never a submission, and the next start removes it; an
upload still streaming into another live process sharing the data dir is left alone.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.databases import migrate_database
from tests.faults.conftest import DrbProcesses, Served, wait_for
from tests.faults.returns import trust_token

BOUNDARY = "drbfaultboundary"


def _start_upload(served: Served, token: str, *, size: int) -> socket.socket:
    """Send the headers and the start of a multipart upload of ``size`` bytes; keep it open."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="dataset"\r\n\r\nae_monthly\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="period"\r\n\r\n2025-01\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    address = urlsplit(served.base)
    connection = socket.create_connection((address.hostname, address.port))
    request = (
        "POST /v1/submissions HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Idempotency-Key: big-return\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(head) + size + len(tail)}\r\n\r\n"
    ).encode()
    connection.sendall(request + head + b"org_code,period\n" + b"x" * 256 * 1024)
    return connection


def _staged(data_dir: Path) -> set[Path]:
    incoming = data_dir / "uploads" / "incoming"
    return set(incoming.iterdir()) if incoming.exists() else set()


def test_a_killed_api_process_leaves_no_submission_and_its_partial_file_is_removed(
    drb_processes: DrbProcesses, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"  # embedded mode: SQLite and the store under it, shared
    database = f"sqlite:///{data_dir / 'broker.sqlite3'}"
    migrate_database(database)
    drb_processes.settings.update(
        data_dir=str(data_dir), database_url=database, upload_rate_limit_per_minute="0"
    )
    doomed = drb_processes.serve()
    survivor = drb_processes.serve()
    http = httpx.Client(base_url=doomed.base, timeout=30)
    token = trust_token(http)

    cut = _start_upload(doomed, token, size=50 * 1024 * 1024)
    wait_for(lambda: len(_staged(data_dir)) == 1, timeout=30, what="the upload to be staged")
    (partial,) = _staged(data_dir)
    streaming = _start_upload(survivor, token, size=50 * 1024 * 1024)
    wait_for(lambda: len(_staged(data_dir)) == 2, timeout=30, what="the second upload")
    (in_flight,) = _staged(data_dir) - {partial}
    try:
        time.sleep(0.2)
        assert partial.stat().st_size > 0
        drb_processes.kill(doomed.process)
        cut.close()
        assert partial.exists()  # SIGKILL: nobody cleaned up

        restarted = drb_processes.serve()
        assert not partial.exists()  # its process is gone: removed at start
        assert in_flight.exists()  # a live process's upload is left alone
        listed = httpx.get(
            f"{restarted.base}/v1/submissions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert listed.status_code == 200
        assert listed.json() == []  # the partial file never became a submission
    finally:
        streaming.close()
    # The live process drops its own partial file once its client goes away.
    wait_for(lambda: not in_flight.exists(), timeout=30, what="the cut-off upload to be removed")
    assert not [p for p in (data_dir / "uploads").iterdir() if p.is_file()]
