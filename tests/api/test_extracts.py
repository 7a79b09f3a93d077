"""Extracts: built from held data when complete, partial after the due date, revised when a
source is, rolled up to quarters and regions, delivered, and seen only by their body."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from services.catalogue import extracts
from services.catalogue.db import session_scope
from services.catalogue.runtime import Runtime
from services.validator import worker
from tests.api_calls import MONTH, YEAR, Headers, ask_for, send_accepted, send_ae
from tests.schema_samples import ecds_attendance_sample


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "R1K": make_org("R1K", "trust", "Y56"),
        "R0A": make_org("R0A", "trust", "Y62"),
        "CQC": make_org("CQC", "oversight_body"),
        "NHSE": make_org("NHSE", "oversight_body"),
        "NAO": make_org("NAO", "auditor"),
    }


def extracts_of(client: TestClient, body: Headers, count: int) -> list[dict[str, object]]:
    """Wait for the body to have ``count`` extracts, each delivered (or API-only)."""
    deadline = time.monotonic() + 30
    listed: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        listed = client.get("/v1/extracts", headers=body).json()
        delivered = all(
            e["delivery"] is None or e["delivery"]["status"] == "delivered"  # type: ignore[index]
            for e in listed
        )
        if len(listed) >= count and delivered:
            return listed
        time.sleep(0.05)
    raise AssertionError(f"expected {count} delivered extracts, got {listed}")


def test_a_complete_extract_holds_exactly_what_was_asked(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    running_worker: worker.WorkerHandle,
) -> None:
    request_id = ask_for(client, orgs["CQC"])
    first = send_ae(client, orgs["RJ1"], "RJ1", MONTH)
    assert client.get("/v1/extracts", headers=orgs["CQC"]).json() == []  # R0A still missing
    second = send_ae(client, orgs["R0A"], "R0A", MONTH, attendances=5000)
    [extract] = extracts_of(client, orgs["CQC"], 1)
    assert (extract["request_id"], extract["period"], extract["revision"]) == (
        request_id,
        MONTH,
        1,
    )
    assert extract["complete"] is True
    assert extract["key"] == ["org_code", "period", "department_type"]

    download = client.get(f"/v1/extracts/{extract['id']}/download", headers=orgs["CQC"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(download.content))
    assert table.column_names == [
        "org_code",
        "period",
        "department_type",
        "ae_attendances",
        "ae_breaches",
        "source_submission_id",
        "derived",
    ]
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert frame.height == 6
    row = frame.filter(pl.col("org_code") == "R0A", pl.col("department_type") == "1")
    assert row["ae_attendances"].to_list() == [5000]
    assert set(frame["source_submission_id"]) == {first, second}
    assert not frame["derived"].any()
    metadata = pq.ParquetFile(io.BytesIO(download.content)).metadata.metadata
    assert metadata[b"drb.request_id"] == request_id.encode()
    assert metadata[b"drb.revision"] == b"1"

    manifest = client.get(f"/v1/extracts/{extract['id']}/manifest", headers=orgs["CQC"]).json()
    assert manifest["sources"] == sorted([first, second])
    assert manifest["missing"] == []
    assert manifest["rows"] == 6

    assert manifest["sha256"] == hashlib.sha256(download.content).hexdigest()
    # Delivered to the body's default file channel.
    outbox = list((runtime.settings.outbox_dir / "CQC").glob("*.parquet"))
    assert [p.read_bytes() for p in outbox] == [download.content]


def test_a_revised_source_gives_a_new_revision(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    ask_for(client, orgs["CQC"], organisations=["RJ1"])
    send_ae(client, orgs["RJ1"], "RJ1", MONTH)
    extracts_of(client, orgs["CQC"], 1)
    revised = send_ae(client, orgs["RJ1"], "RJ1", MONTH, attendances=9500)
    listed = extracts_of(client, orgs["CQC"], 2)
    assert [e["revision"] for e in listed] == [2, 1]
    manifest = client.get(f"/v1/extracts/{listed[0]['id']}/manifest", headers=orgs["CQC"]).json()
    assert manifest["sources"] == [revised]


def test_after_the_due_date_a_partial_extract_lists_the_missing(
    client: TestClient,
    orgs: dict[str, Headers],
    runtime: Runtime,
    running_worker: worker.WorkerHandle,
) -> None:
    request_id = ask_for(client, orgs["CQC"], period_start="2024-01", period_end="2024-01")
    send_ae(client, orgs["RJ1"], "RJ1", "2024-01")
    [partial] = extracts_of(client, orgs["CQC"], 1)
    assert partial["complete"] is False
    assert partial["missing"] == ["R0A"]
    # Asked again the same day with nothing new: no new revision.
    with session_scope(runtime.factory) as session:
        assert (
            extracts.refresh(
                session=session,
                settings=runtime.settings,
                request_id=request_id,
                today=date.today(),
            )
            == []
        )
    send_ae(client, orgs["R0A"], "R0A", "2024-01")
    listed = extracts_of(client, orgs["CQC"], 2)
    assert (listed[0]["revision"], listed[0]["complete"], listed[0]["missing"]) == (2, True, [])


def test_quarters_and_regions_are_rolled_up_and_ecds_is_derived(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    ask_for(
        client,
        orgs["NHSE"],
        items=["ae_attendances"],
        organisations={"region": "Y56"},
        period_start=f"{YEAR}-Q1",
        period_end=f"{YEAR}-Q1",
        period_type="quarter",
        org_level="region",
    )
    for org in ("RJ1", "R1K"):
        for month in (f"{YEAR}-01", f"{YEAR}-02"):
            send_ae(client, orgs[org], org, month, attendances=3000)
    # R1K's March comes as patient-level ECDS: the A&E counts are derived from it.
    ecds = ecds_attendance_sample(org_code="R1K", period=f"{YEAR}-03")
    send_accepted(client, orgs["R1K"], ecds.write_csv().encode(), "ecds_attendance", f"{YEAR}-03")
    send_ae(client, orgs["RJ1"], "RJ1", f"{YEAR}-03", attendances=3000)
    [extract] = extracts_of(client, orgs["NHSE"], 1)
    table = pq.read_table(
        io.BytesIO(
            client.get(f"/v1/extracts/{extract['id']}/download", headers=orgs["NHSE"]).content
        )
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert table.column_names[:3] == ["region", "period", "department_type"]
    assert "org_code" not in table.column_names
    type1 = frame.filter(pl.col("department_type") == "1")
    ecds_type1 = ecds.filter(pl.col("department_type") == "1").height
    # Five monthly returns with 3,000 type 1 attendances, plus R1K March from ECDS.
    assert type1["ae_attendances"].to_list() == [5 * 3000 + ecds_type1]
    assert type1["region"].to_list() == ["Y56"]
    assert type1["period"].to_list() == [f"{YEAR}-Q1"]
    assert frame["derived"].all()
    assert len(type1["source_submission_id"][0].split(",")) == 6


def test_extracts_are_seen_only_by_their_body(
    client: TestClient,
    orgs: dict[str, Headers],
    admin: Headers,
    running_worker: worker.WorkerHandle,
) -> None:
    assert (
        client.put(
            "/v1/organisations/CQC/delivery", json={"channel": "api"}, headers=admin
        ).status_code
        == 200
    )
    ask_for(client, orgs["CQC"], organisations=["RJ1"])
    send_ae(client, orgs["RJ1"], "RJ1", MONTH)
    [extract] = extracts_of(client, orgs["CQC"], 1)
    assert extract["delivery"] is None  # API only, still downloadable
    path = f"/v1/extracts/{extract['id']}"
    assert client.get(f"{path}/download", headers=orgs["CQC"]).status_code == 200
    assert client.get(f"{path}/manifest", headers=orgs["NHSE"]).status_code == 404
    assert client.get(f"{path}/download", headers=orgs["NHSE"]).status_code == 404
    assert client.get("/v1/extracts", headers=orgs["NHSE"]).json() == []
    assert len(client.get("/v1/extracts", headers=orgs["NAO"]).json()) == 1
    assert client.get(f"{path}/manifest", headers=orgs["NAO"]).status_code == 200
    assert client.get(f"{path}/download", headers=orgs["NAO"]).status_code == 403
    assert client.get("/v1/extracts", headers=orgs["RJ1"]).status_code == 403
    bad = client.put("/v1/organisations/CQC/delivery", json={"channel": "mesh"}, headers=admin)
    assert bad.status_code == 422
    assert (
        client.put(
            "/v1/organisations/NAO/delivery", json={"channel": "api"}, headers=admin
        ).status_code
        == 422  # auditors are sent nothing (trusts are: their reminders)
    )
