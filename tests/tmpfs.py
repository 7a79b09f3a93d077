"""A real small filesystem for disk-full faults: a tmpfs mounted for one test, and filling it.

Mounting needs root (CAP_SYS_ADMIN); without it the test is skipped (failed under CI /
DRB_REQUIRE_SERVICES).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.service_urls import _unavailable


@contextlib.contextmanager
def mounted_tmpfs(where: Path, *, size: str = "1m") -> Iterator[Path]:
    """``where`` (created if missing) as a tmpfs of ``size`` until the block ends."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        _unavailable(f"cannot mount a tmpfs at {where} (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(filler: Path) -> Path:
    """Write ``filler`` until its filesystem is full (ENOSPC), to the last byte."""
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):  # ENOSPC
        while True:
            out.write(b"\0" * 4096)
    return filler
