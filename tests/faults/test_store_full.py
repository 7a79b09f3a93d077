"""The store's disk fills up: submissions wait, say why, are retried, and are accepted once.

The fault is real: the store (``DATA_DIR/store``) is a tmpfs of 1 MiB mounted for the test and
filled to the last byte, so writing a return into it fails with ENOSPC (moving it there is a
copy, the store being another filesystem). Mounting needs root (CAP_SYS_ADMIN); without it the
test is skipped (failed under CI / DRB_REQUIRE_SERVICES).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.catalogue.models import AuditEvent, Job, Submission
from services.catalogue.runtime import Runtime
from services.catalogue.settings import Settings
from services.validator import worker
from tests.api_calls import ae_csv, send
from tests.conftest import settings_for
from tests.tmpfs import fill, mounted_tmpfs

Headers = dict[str, str]


@pytest.fixture
def settings(tmp_path: Path, catalogue_url: str) -> Settings:
    """Settings whose failed jobs are sent again within a second (the default: the job timeout)."""
    return settings_for(tmp_path, catalogue_url, job_timeout_seconds=1.0)


@pytest.fixture
def full_store(settings: Settings) -> Iterator[Path]:
    """The store on a 1 MiB tmpfs, filled; yields the filler file (delete it to make room)."""
    with mounted_tmpfs(settings.store_dir) as store:
        yield fill(store / "filler")


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_full_store_keeps_the_submission_retriable_until_there_is_room(
    full_store: Path,
    runtime: Runtime,
    running_worker: worker.WorkerHandle,
    client: TestClient,
    make_org: Callable[..., Headers],
) -> None:
    trust = make_org("RJ1", "trust", "Y56")
    sent = send(client, trust, ae_csv(), key="deadline-day-1")
    assert sent.status_code == 202, sent.text
    submission_id = sent.json()["id"]

    def job() -> Job:
        with runtime.factory() as session:
            found = session.scalars(select(Job).where(Job.subject_id == submission_id)).one()
            session.expunge(found)
            return found

    # Tried, failed on the disk, and tried again by the sweep: never rejected meanwhile. Each
    # run claims the job afresh (a new sent_at); none uses up an attempt (the disk is not the
    # job's fault), so a disk full for hours never has the job given up.
    claims: set[object] = set()

    def retried() -> bool:
        current = job()
        if current.status == "running":
            claims.add(current.sent_at)
        return len(claims) >= 3

    wait_for(retried, timeout=30, what="the job to be retried")
    assert job().attempts <= 1  # at most the run in progress
    body = client.get(f"/v1/submissions/{submission_id}", headers=trust).json()
    assert body["status"] == "validating", body
    assert body["status_detail"] == (
        "The broker could not store the return (disk full); it retries automatically."
    )
    assert body["revision"] is None
    assert not list(full_store.parent.glob("dataset=*/**/*.parquet"))  # nothing partial left

    full_store.unlink()  # room again
    wait_for(
        lambda: (
            client.get(f"/v1/submissions/{submission_id}", headers=trust).json()["status"]
            != "validating"
        ),
        timeout=30,
        what="the submission to be decided",
    )
    body = client.get(f"/v1/submissions/{submission_id}", headers=trust).json()
    assert body["status"] == "accepted", body
    assert body["revision"] == 1
    assert body["status_detail"] is None
    stored = list(full_store.parent.glob("dataset=*/**/*.parquet"))
    assert [p.name for p in stored] == ["rev=1.parquet"]
    assert not list(full_store.parent.rglob(".rev=*"))  # no partial copy left behind
    with runtime.factory() as session:
        accepted = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.subject_id == submission_id,
                AuditEvent.action == "submission.accepted",
            )
        )
        rows = session.scalar(select(func.count()).select_from(Submission))
    assert accepted == 1
    assert rows == 1
