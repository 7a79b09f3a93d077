"""Serve mesh-sandbox (NHS England's MESH API for local testing) with our own mailboxes.

Run it with the sandbox's own venv (`make .venv-mesh/bin/uvicorn`), never the broker's:

    .venv-mesh/bin/python infra/mesh/launch.py --host 127.0.0.1 --port 8701

mesh-sandbox reads its mailboxes and workflows from its package data
(`mesh_sandbox/store/data/*.jsonl`) and no setting moves them, so this launcher points the store's
loader at `infra/mesh/data/` (or `--data-dir`) before the app is built: the broker's mailbox
`X26DRB001`, one per demo oversight body (`X26CQC001`, `X26NHSE01`, `X26UKHSA1`) and the
workflow `DRB_EXTRACT`. The built-in test mailboxes (X26ABC1...) are not loaded.

The sandbox's own environment variables apply; this launcher only sets defaults:
- `STORE_MODE`: `memory` (default here) or `file` (under `MAILBOXES_DATA_DIR`); `canned` is refused,
  as its messages belong to the built-in mailboxes and it accepts no new ones.
- `AUTH_MODE`: `none` (default here: any password of a known mailbox) or any other value, e.g.
  `full`, for real HMAC checking of the password with `SHARED_KEY` (infra/services/mesh-sandbox.sh
  runs it that way, so that tests see a wrong password refused).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"


def _use_data_dir(data_dir: Path) -> None:
    """Make every mesh-sandbox store load mailboxes and workflows from ``data_dir``."""
    from mesh_sandbox.store import canned_store

    original = canned_store.CannedStore.initialise

    def initialise(self: Any) -> None:
        # CannedStore.__init__ sets the package folder, then calls initialise() (so does reset()).
        self._canned_data_dir = str(data_dir)
        self._mailboxes_data_dir = self.get_mailboxes_data_dir()
        original(self)

    canned_store.CannedStore.initialise = initialise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    data_dir: Path = args.data_dir.resolve()
    for name in ("mailboxes.jsonl", "workflows.jsonl"):
        if not (data_dir / name).is_file():
            parser.error(f"no {name} in {data_dir}")
    os.environ.setdefault("STORE_MODE", "memory")
    os.environ.setdefault("AUTH_MODE", "none")
    if os.environ["STORE_MODE"] not in ("memory", "file"):
        parser.error(f"STORE_MODE must be memory or file, not {os.environ['STORE_MODE']!r}")

    # mesh-sandbox's routes use FastAPI's deprecated `example=`: one warning per parameter.
    warnings.filterwarnings("ignore", message="`example` has been deprecated")
    _use_data_dir(data_dir)
    import uvicorn
    from mesh_sandbox.api import app
    from mesh_sandbox.dependencies import get_store

    mailboxes = sorted(get_store().mailboxes)  # built now, so that bad data fails at start-up
    print(
        f"mesh-sandbox: mailboxes {', '.join(mailboxes)} from {data_dir}; "
        f"STORE_MODE={os.environ['STORE_MODE']} AUTH_MODE={os.environ['AUTH_MODE']}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
