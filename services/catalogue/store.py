"""Where files live under the data dir: uploads being validated, and the Parquet store.

The store is partitioned by dataset and period, one file per trust and revision:
``store/dataset=<code>/period=<YYYY-MM>/org=<code>/rev=<n>.parquet``. Earlier revisions stay
for audit. Uploads are kept under ``uploads/`` until validated; a rejected upload is deleted,
so nothing of a rejected file remains.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.catalogue.settings import Settings


def staging_dir(settings: Settings) -> Path:
    """Where uploads are streamed before they become submissions."""
    path = settings.data_dir / "uploads" / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    """Move a finished file into place atomically (same filesystem), creating folders."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def relative(settings: Settings, path: Path) -> str:
    """A path as stored in the database: relative to the data dir."""
    return str(path.relative_to(settings.data_dir))


def absolute(settings: Settings, stored: str) -> Path:
    """A stored relative path made absolute again."""
    return settings.data_dir / stored
