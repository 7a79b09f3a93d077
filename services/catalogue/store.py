"""Where files live under the data dir: uploads being validated, and the Parquet store.

The store is partitioned by dataset and period, one file per trust and revision:
``store/dataset=<code>/period=<YYYY-MM>/org=<code>/rev=<n>.parquet``. Earlier revisions stay
for audit. Uploads are kept under ``uploads/`` until validated; a rejected upload is deleted,
so nothing of a rejected file remains.

Uploads stream into ``uploads/incoming/`` first, each file named after the process receiving it
(``upload-<boot id>-<pid>-<process start time>-<random>``). A file there is never a submission:
it becomes one only when it is moved to ``uploads/<submission id>`` in the transaction that
records the submission. A process killed mid-upload leaves its partial file behind;
:func:`remove_abandoned_uploads` (run by ``drb serve`` as it starts) removes the files of
processes no longer alive. Several API processes may share the data dir: a file of this machine's
boot is removed only once its process is gone (pid and start time, so a reused pid does not keep
it); a file of another boot or machine, or named otherwise, only once nothing has written to it
for :data:`ABANDONED_AFTER` (an upload in flight writes every few milliseconds).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import TypeGuard

from services.catalogue.settings import Settings

log = logging.getLogger(__name__)

STAGED_PREFIX = "upload-"
# A staged file nobody has written to for this long, whose writer cannot be checked, is abandoned.
ABANDONED_AFTER = 3600.0
_STAGED_NAME = re.compile(r"upload-([0-9a-f]{32})-([0-9]+)-([0-9]+)-")


class StoreWriteFailed(OSError):
    """A file could not be written under the data dir (disk full, read-only, ...).

    Not the file's fault, and cured by time or a steward: the job that met it is retried, and the
    submission stays ``validating`` with this message as its ``status_detail``.
    """


def write_failure(error: OSError) -> StoreWriteFailed:
    """``error`` worded for the trust (no path, no server detail)."""
    reason = {
        errno.ENOSPC: "disk full",
        errno.EDQUOT: "disk quota reached",
        errno.EROFS: "storage read-only",
    }.get(error.errno or 0, "storage error")
    failure = StoreWriteFailed(
        f"The broker could not store the return ({reason}); it retries automatically."
    )
    failure.errno = error.errno
    return failure


def is_storage_full(error: BaseException) -> TypeGuard[OSError]:
    """True when ``error`` says the filesystem cannot take more (or any) writes."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def staging_dir(settings: Settings) -> Path:
    """Where uploads are streamed before they become submissions."""
    path = settings.data_dir / "uploads" / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def staged_prefix() -> str:
    """The start of the name of a file this process stages (see the module)."""
    return f"{STAGED_PREFIX}{_boot_id()}-{os.getpid()}-{_start_time(os.getpid())}-"


def remove_abandoned_uploads(settings: Settings, *, now: float | None = None) -> int:
    """Remove staged uploads whose process is gone (see the module); how many were removed."""
    now = time.time() if now is None else now
    boot = _boot_id()
    removed = 0
    for path in staging_dir(settings).iterdir():
        try:
            if not path.is_file() or not _abandoned(path, boot=boot, now=now):
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # its own process finished with it meanwhile
        removed += 1
    if removed:
        log.info(
            "removed %s partial upload(s) left by stopped processes",
            removed,
            extra={"count": removed},
        )
    return removed


def _abandoned(path: Path, *, boot: str, now: float) -> bool:
    match = _STAGED_NAME.match(path.name)
    if match is not None and match.group(1) == boot:
        pid, started = int(match.group(2)), int(match.group(3))
        return _start_time(pid) != started  # gone, or the pid now names another process
    return now - path.stat().st_mtime > ABANDONED_AFTER


@cache
def _boot_id() -> str:
    try:
        text = Path("/proc/sys/kernel/random/boot_id").read_text()
    except OSError:
        return "0" * 32  # no /proc: every staged file is judged by its age
    return text.strip().replace("-", "")[:32].ljust(32, "0")


def _start_time(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot); 0 when it does not exist.

    Without /proc, 1 for any live process (a reused pid then keeps a file until a later start).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        except PermissionError:
            return 1
        return 1
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return int(stat.rpartition(")")[2].split()[19])


def upload_path(settings: Settings, submission_id: str) -> Path:
    """The raw bytes of one submission."""
    return settings.data_dir / "uploads" / submission_id


def validated_path(settings: Settings, submission_id: str) -> Path:
    """Where the validator writes a submission's rows before they enter the store."""
    path = settings.data_dir / "uploads" / "validated"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{submission_id}.parquet"


def partition_path(
    settings: Settings, *, dataset: str, period: str, org_code: str, revision: int
) -> Path:
    """The store file of one accepted revision of a return."""
    return (
        settings.store_dir
        / f"dataset={dataset}"
        / f"period={period}"
        / f"org={org_code}"
        / f"rev={revision}.parquet"
    )


def place(source: Path, target: Path) -> None:
    """Move a finished file into place atomically, creating folders.

    On the same filesystem a rename; onto another (a store on its own volume) a copy next to
    the target renamed over it, so that the target is whole or absent, never partial. A write
    that fails (disk full) leaves the source where it was and nothing at the target: raised as
    :class:`StoreWriteFailed` when it is the filesystem's condition, else as it came.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
            return
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        partial = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as out, source.open("rb") as data:
                shutil.copyfileobj(data, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    except OSError as error:
        if is_storage_full(error):
            raise write_failure(error) from error
        raise
    source.unlink()


def relative(settings: Settings, path: Path) -> str:
    """A path as stored in the database: relative to the data dir."""
    return str(path.relative_to(settings.data_dir))


def absolute(settings: Settings, stored: str) -> Path:
    """A stored relative path made absolute again."""
    return settings.data_dir / stored
