"""The mesh-sandbox the MESH tests talk to (tests/service_urls.py::mesh_url): its mailboxes, their
password and shared key, and a client for one mailbox.

The sandbox holds the broker's mailbox X26DRB001 and the demo bodies' (X26CQC001, X26NHSE01,
X26UKHSA1), and checks passwords (AUTH_MODE=full).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mesh_client import MeshClient

BROKER = "X26DRB001"
CQC = "X26CQC001"
NHSE = "X26NHSE01"
PASSWORD = "password"
SHARED_KEY = os.environ.get("DRB_TEST_MESH_SHARED_KEY", "drb-sandbox-key")


@contextlib.contextmanager
def client(url: str, mailbox: str, password: str = PASSWORD) -> Iterator[MeshClient]:
    """A MESH client signed in to ``mailbox`` of the sandbox at ``url``."""
    mesh_client = MeshClient(url, mailbox, password, shared_key=SHARED_KEY.encode(), max_retries=0)
    with contextlib.closing(mesh_client):
        yield mesh_client
