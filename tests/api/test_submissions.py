"""Submissions over HTTP: sent once, validated by the worker, held or rejected with errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalogue import jobs, store, submissions
from services.catalogue.models import Ask, Job, Submission
from services.catalogue.runtime import Runtime
from services.validator import handlers, worker
from tests.api_calls import Headers, ae_csv, send, settled


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "R0A": make_org("R0A", "trust", "Y62"),
        "CQC": make_org("CQC", "oversight_body"),
        "NAO": make_org("NAO", "auditor"),
    }


def test_an_accepted_return_is_held_and_fulfils_its_ask(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    running_worker: worker.WorkerHandle,
) -> None:
    request = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
        "period_start": "2025-01",
        "period_end": "2025-02",
    }
    assert client.post("/v1/requests", json=request, headers=orgs["CQC"]).status_code == 201
    response = send(client, orgs["RJ1"], ae_csv())
    assert response.status_code == 202, response.text  # type: ignore[attr-defined]
    first = response.json()  # type: ignore[attr-defined]
    assert first["status"] == "received"
    done = settled(client, orgs["RJ1"], first["id"])
    assert (done["status"], done["rows"], done["revision"], done["error_count"]) == (
        "accepted",
        3,
        1,
        0,
    )
    held = runtime.settings.store_dir / "dataset=ae_monthly/period=2025-01/org=RJ1/rev=1.parquet"
    assert pq.read_table(held).num_rows == 3
    asks = {a["period"]: a["status"] for a in client.get("/v1/asks", headers=orgs["RJ1"]).json()}
    assert asks == {"2025-01": "accepted", "2025-02": "overdue"}
    dry = client.post("/v1/requests?dry_run=true", json=request, headers=orgs["CQC"]).json()
    assert dry["coverage"]["items"][0]["cells_held"] == 1
    # The raw upload is kept for audit; nothing is left in the staging folders.
    assert store.upload_path(runtime.settings, first["id"]).exists()
    assert list(store.staging_dir(runtime.settings).iterdir()) == []


def test_the_same_file_is_one_submission(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    first = send(client, orgs["RJ1"], ae_csv(), key="k-1").json()  # type: ignore[attr-defined]
    again = send(client, orgs["RJ1"], ae_csv())
    assert again.status_code == 200  # type: ignore[attr-defined]
    assert again.json()["id"] == first["id"]  # type: ignore[attr-defined]
    retried = send(client, orgs["RJ1"], ae_csv(), filename="renamed.csv", key="k-1")
    assert retried.status_code == 200  # type: ignore[attr-defined]
    assert retried.json()["id"] == first["id"]  # type: ignore[attr-defined]
    conflict = send(client, orgs["RJ1"], ae_csv(attendances=9999), key="k-1")
    assert conflict.status_code == 409  # type: ignore[attr-defined]
    listed = client.get("/v1/submissions", headers=orgs["RJ1"]).json()
    assert [s["id"] for s in listed] == [first["id"]]
    # Another trust's identical-looking key is its own.
    other = send(client, orgs["R0A"], ae_csv(org_code="R0A"), key="k-1")
    assert other.status_code == 202  # type: ignore[attr-defined]


def test_a_different_file_is_a_revision(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    running_worker: worker.WorkerHandle,
) -> None:
    first = send(client, orgs["RJ1"], ae_csv()).json()  # type: ignore[attr-defined]
    assert settled(client, orgs["RJ1"], first["id"])["revision"] == 1
    rejected = send(client, orgs["RJ1"], ae_csv(attendances=-5)).json()  # type: ignore[attr-defined]
    assert settled(client, orgs["RJ1"], rejected["id"])["revision"] is None
    second = send(client, orgs["RJ1"], ae_csv(attendances=9200)).json()  # type: ignore[attr-defined]
    done = settled(client, orgs["RJ1"], second["id"])
    assert done["revision"] == 2
    assert done["supersedes"] == first["id"]
    partition = runtime.settings.store_dir / "dataset=ae_monthly/period=2025-01/org=RJ1"
    assert sorted(p.name for p in partition.iterdir()) == ["rev=1.parquet", "rev=2.parquet"]
    old = client.get(f"/v1/submissions/{first['id']}", headers=orgs["RJ1"]).json()
    assert old["superseded_by"] == second["id"]


def test_a_rejected_file_leaves_nothing_and_explains_itself(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    running_worker: worker.WorkerHandle,
) -> None:
    bad = ae_csv().replace(b"RJ1,1,9120", b'=HYPERLINK("x"),1,9120')
    sent = send(client, orgs["RJ1"], bad).json()  # type: ignore[attr-defined]
    done = settled(client, orgs["RJ1"], sent["id"])
    assert done["status"] == "rejected"
    assert done["error_count"] >= 1
    errors = client.get(f"/v1/submissions/{sent['id']}/errors", headers=orgs["RJ1"]).json()
    assert any(e["row"] == 1 and e["column"] == "org_code" for e in errors), errors
    as_csv = client.get(f"/v1/submissions/{sent['id']}/errors?format=csv", headers=orgs["RJ1"])
    assert as_csv.headers["content-type"].startswith("text/csv")
    cells = [cell for row in csv.reader(io.StringIO(as_csv.text)) for cell in row]
    assert '\'=HYPERLINK("x")' in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    # Auditors see the errors but not the values.
    audited = client.get(f"/v1/submissions/{sent['id']}/errors", headers=orgs["NAO"]).json()
    assert [e["value"] for e in audited] == [None] * len(audited)
    assert not runtime.settings.store_dir.exists() or not any(
        runtime.settings.store_dir.rglob("*.parquet")
    )
    assert not store.upload_path(runtime.settings, sent["id"]).exists()


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"dataset": "ae_weekly", "period": "2025-01"}, 422, "dataset"),
        ({"dataset": "ae_monthly", "period": "January"}, 422, "period"),
        ({"dataset": "ae_monthly"}, 422, "period"),
    ],
)
def test_bad_forms_are_refused(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    fields: dict[str, str],
    status: int,
    field: str,
) -> None:
    response = client.post(
        "/v1/submissions",
        headers=orgs["RJ1"],
        data=fields,
        files={"file": ("r.csv", ae_csv(), "text/csv")},
    )
    assert response.status_code == status, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert list(store.staging_dir(runtime.settings).iterdir()) == []


def test_a_form_without_a_file_or_not_multipart(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    no_file = client.post(
        "/v1/submissions",
        headers=orgs["RJ1"],
        files={"dataset": (None, "ae_monthly"), "period": (None, "2025-01")},
    )
    assert no_file.status_code == 422
    assert "file" in no_file.json()["detail"]
    as_json = client.post("/v1/submissions", headers=orgs["RJ1"], json={"dataset": "ae_monthly"})
    assert as_json.status_code == 415


def test_only_trusts_submit(client: TestClient, orgs: dict[str, Headers]) -> None:
    for caller in ("CQC", "NAO"):
        assert send(client, orgs[caller], ae_csv()).status_code == 403  # type: ignore[attr-defined]


def test_a_trust_cannot_see_another_trusts_submission(
    client: TestClient, orgs: dict[str, Headers]
) -> None:
    sent = send(client, orgs["RJ1"], ae_csv()).json()  # type: ignore[attr-defined]
    assert client.get(f"/v1/submissions/{sent['id']}", headers=orgs["R0A"]).status_code == 404
    assert (
        client.get(f"/v1/submissions/{sent['id']}/errors", headers=orgs["R0A"]).status_code == 404
    )
    assert client.get("/v1/submissions?org_code=RJ1", headers=orgs["R0A"]).status_code == 403
    assert client.get(f"/v1/submissions/{sent['id']}", headers=orgs["NAO"]).status_code == 200
    assert client.get("/v1/submissions", headers=orgs["CQC"]).status_code == 403


def test_over_the_size_limit_is_413_and_nothing_is_kept(
    tmp_path: Path, runtime: Runtime, orgs: dict[str, Headers], client: TestClient
) -> None:
    runtime.settings.max_upload_bytes = 1000
    response = send(client, orgs["RJ1"], b"period,org_code\n" + b"2025-01,RJ1\n" * 200)
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert "DRB_MAX_UPLOAD_BYTES" in response.json()["detail"]  # type: ignore[attr-defined]
    assert list(store.staging_dir(runtime.settings).iterdir()) == []
    with runtime.factory() as session:
        assert session.scalars(select(Submission)).all() == []


def test_the_ask_is_submitted_while_validating_and_crash_safe(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker runs here: the job is run by hand, crashing once before it commits."""
    request = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_breaches"],
        "organisations": ["RJ1"],
        "period_start": "2025-01",
        "period_end": "2025-01",
    }
    client.post("/v1/requests", json=request, headers=orgs["CQC"])
    sent = send(client, orgs["RJ1"], ae_csv()).json()  # type: ignore[attr-defined]
    with runtime.factory() as session:
        assert session.scalars(select(Ask.status)).all() == ["submitted"]
        job_id = session.scalars(select(Job.id).where(Job.subject_id == sent["id"])).one()

    real_accept = submissions.accept
    calls = {"n": 0}

    def crash_once(**kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("the worker died before committing")
        return real_accept(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(submissions, "accept", crash_once)
    run = {
        "factory": runtime.factory,
        "job_id": job_id,
        "handlers": handlers.HANDLERS,
        "stale_after": runtime.stale_after,
        "settings": runtime.settings,
    }
    with pytest.raises(OSError, match="died"):
        jobs.run(**run)  # type: ignore[arg-type]
    assert jobs.run(**run) == "done"  # type: ignore[arg-type]
    assert jobs.run(**run) == "done"  # a third delivery changes nothing
    done = client.get(f"/v1/submissions/{sent['id']}", headers=orgs["RJ1"]).json()
    assert (done["status"], done["revision"]) == ("accepted", 1)
    with runtime.factory() as session:
        assert session.scalars(select(Ask.status)).all() == ["accepted"]
        assert len(session.scalars(select(Submission)).all()) == 1
