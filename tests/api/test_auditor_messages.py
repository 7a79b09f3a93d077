"""Auditors see what was wrong with a rejected return, never a value of its file.

Real files are sent by a trust and rejected by the validator; for each, the auditor's errors (JSON
and CSV) hold no cell value of the file in ``value`` or ``message``, while the trust's errors are
the validator's, unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

import schemas
from services.catalogue import auditor_messages
from services.validator import worker
from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]
DATASET = schemas.get_dataset("ae_monthly")


def base() -> pl.DataFrame:
    """A valid ae_monthly return of RJ1 for 2025-01 (three rows)."""
    return ae_monthly_sample(org_code="RJ1", period="2025-01")


def as_csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


def set_cell(frame: pl.DataFrame, row: int, column: str, value: Any) -> pl.DataFrame:
    """The frame with one cell replaced (as text, so that any value can be written)."""
    text = frame.with_columns(pl.all().cast(pl.String))
    values = text.get_column(column).to_list()
    values[row] = value
    return text.with_columns(pl.Series(column, values, dtype=pl.String))


@dataclass(frozen=True)
class Case:
    """A file a trust sends, the value planted in it, and what the trust must still be told."""

    content: bytes
    # The cell value that makes the file fail (it must reach the trust, never the auditor).
    planted: str | None
    # One of the trust's messages, exactly as the validator words it (None: not pinned here).
    trust_message: str | None
    # The check the auditor must still see, and their message for it.
    check: str
    auditor_message: str
    filename: str = "return.csv"


CASES: dict[str, Case] = {
    "cross-field rule": Case(
        as_csv(set_cell(base(), 0, "breaches", "987654")),
        "987654",
        "breaches 987654 is more than attendances 9120",
        "not_greater_than",
        "breaches must not be more than attendances",
    ),
    "bad type": Case(
        as_csv(set_cell(base(), 1, "attendances", "31x7")),
        "31x7",
        "attendances '31x7' is not a whole number",
        "dtype",
        "attendances must be a whole number",
    ),
    "out of range": Case(
        as_csv(set_cell(base(), 2, "admissions", "-4242")),
        "-4242",
        "admissions -4242 must be between 0 and 1000000000",
        "in_range",
        "admissions must be between 0 and 1000000000",
    ),
    "not in the code list": Case(
        as_csv(set_cell(base(), 1, "department_type", "9z")),
        "9z",
        "department_type '9z' must be one of 1, 2, other",
        "one_of",
        "department_type must be one of 1, 2, other",
    ),
    "empty cell": Case(
        as_csv(set_cell(base(), 0, "attendances", None)),
        None,
        "attendances is empty: it must have a value",
        "not_nullable",
        "attendances must not be empty",
    ),
    "duplicate key": Case(
        as_csv(
            pl.concat(
                [base(), set_cell(base(), 0, "attendances", "5551").head(1).cast(base().schema)]
            )
        ),
        "RJ1",
        "period 2025-01, org_code RJ1, department_type 1 appears 2 times: rows 1 and 4",
        "unique_key",
        "the row's key appears in an earlier row: each period, org_code, department_type must"
        " appear only once",
    ),
    "missing row of a group": Case(
        as_csv(base().filter(pl.col("department_type") != "2")),
        None,
        "there is no row with department_type 2 for period 2025-01 and org_code RJ1:"
        " department_type must have a row for each of 1, 2, other for every period and org_code",
        "all_values_present",
        "department_type must have a row for each of 1, 2, other for every period and org_code",
    ),
    "bad period": Case(
        as_csv(set_cell(base(), 0, "period", "2024-11")),
        "2024-11",
        "period '2024-11' is not in the submission's period 2025-01",
        "in_period",
        "period must be in the month of the submission's period",
    ),
    "period not a month": Case(
        as_csv(set_cell(base(), 0, "period", "2024-13")),
        "2024-13",
        "period '2024-13' must be a month written YYYY-MM or YYYY-MM-01",
        "pattern",
        "period must be a month written YYYY-MM or YYYY-MM-01",
    ),
    "wrong org_code": Case(
        as_csv(set_cell(base(), 0, "org_code", "RXX9")),
        "RXX9",
        "org_code 'RXX9' is not the submitting organisation's own code RJ1",
        "submitting_org",
        "org_code must be the submitting organisation's own code",
    ),
    "row with too many fields": Case(
        as_csv(base()) + b"2025-01,RJ1,other,1,2,3,SECRET-EXTRA\n",
        "SECRET-EXTRA",
        None,
        "field_count",
        "a row of the file has a different number of fields from its header",
    ),
    "not UTF-8": Case(
        as_csv(base()).replace(b"RJ1,2,", "RJ1,2\xe9z,".encode("latin-1"), 1),
        None,
        "the file is not UTF-8 text: byte 0xE9 at line 3; save it as CSV UTF-8",
        "encoding",
        "the file is not UTF-8 text: it must be saved as CSV UTF-8",
    ),
    "unreadable file": Case(
        b"\x00\x01\x02 patient 4471 \x00" * 20,
        None,
        None,
        "format",
        "the file is not in an accepted format or is damaged: returns are sent as CSV, Parquet"
        " or XLSX",
        filename="smith_4471.csv",
    ),
    "header missing": Case(
        as_csv(base()).split(b"\n", 1)[1],
        "9120",
        None,
        "extra_column",
        "the header has a column that is not a column of ae_monthly",
    ),
    "header misspelt": Case(
        as_csv(base()).replace(b"attendances", b"Attendances", 1),
        None,
        "the column attendances is missing (the file has 'Attendances': column names must match"
        " exactly)",
        "missing_column",
        "the column attendances is missing",
    ),
    "header repeats a column": Case(
        as_csv(base().with_columns(pl.col("breaches").alias("extra"))).replace(
            b",extra", b",breaches", 1
        ),
        None,
        "the column breaches appears 2 times in the header",
        "duplicate_column",
        "the column breaches appears more than once in the header",
    ),
}


def cells(content: bytes) -> set[str]:
    """Every cell of the file as text (the header too: without one, it is a row of data)."""
    text = content.decode("utf-8", errors="replace")
    found = {cell for row in csv.reader(io.StringIO(text)) for cell in row}
    return {cell for cell in found if cell.strip()}


def schema_words() -> set[str]:
    """Words of the dataset's own definition (its rules' statements, column names, codes)."""
    statements = [DATASET.code, *(c.name for c in DATASET.columns)]
    for column in DATASET.columns:
        statements += [check.describe() for check in column.checks]
    statements += [rule.describe() for rule in DATASET.rules]
    return set(re.findall(r"[\w-]+", " ".join(statements)))


def holds(text: str, value: str) -> bool:
    """Whether the value appears in the text as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text) is not None


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {"RJ1": make_org("RJ1", "trust", "Y56"), "NAO": make_org("NAO", "auditor")}


def send(client: TestClient, trust: Headers, case: Case) -> str:
    """Send the file as RJ1's ae_monthly return for 2025-01; its id once it is rejected."""
    response = client.post(
        "/v1/submissions",
        headers=trust,
        files={"file": (case.filename, case.content, "application/octet-stream")},
        data={"dataset": "ae_monthly", "period": "2025-01"},
    )
    assert response.status_code == 202, response.text
    submission_id: str = response.json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(f"/v1/submissions/{submission_id}", headers=trust).json()["status"]
        if status in ("accepted", "rejected"):
            assert status == "rejected"
            return submission_id
        time.sleep(0.05)
    raise AssertionError(f"submission {submission_id} was not validated in time")


def test_auditors_see_no_value_of_a_rejected_file_and_trusts_see_theirs(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    vocabulary = schema_words()
    for name, case in CASES.items():
        submission_id = send(client, orgs["RJ1"], case)
        url = f"/v1/submissions/{submission_id}/errors"
        trust = client.get(url, headers=orgs["RJ1"]).json()
        auditor = client.get(url, headers=orgs["NAO"]).json()
        assert len(auditor) == len(trust) > 0, name
        # The same errors, in the same places, for the same checks.
        assert [(e["row"], e["check"]) for e in auditor] == [
            (e["row"], e["check"]) for e in trust
        ], name
        assert case.check in [e["check"] for e in trust], (name, trust)
        # The trust is told what it was before: the planted value, the validator's wording.
        trust_text = " ".join(f"{e['value']} {e['message']}" for e in trust)
        if case.planted is not None:
            assert case.planted in trust_text, (name, trust)
        if case.trust_message is not None:
            assert case.trust_message in [e["message"] for e in trust], (name, trust)
        # The auditor is told which check failed, in words with no value of the file.
        assert case.auditor_message in [e["message"] for e in auditor], (name, auditor)
        secret = {cell for cell in cells(case.content) if cell not in vocabulary}
        if case.planted is not None:
            assert case.planted in secret, name
        as_text = client.get(url, params={"format": "csv"}, headers=orgs["NAO"]).text
        rows = list(csv.DictReader(io.StringIO(as_text)))
        assert [r["message"] for r in rows] == [e["message"] for e in auditor], name
        for error in [*auditor, *rows]:
            assert error["value"] in (None, ""), (name, error)
            shown = " ".join(str(error[k]) for k in ("column", "message") if error[k])
            leaked = sorted(value for value in secret if holds(shown, value))
            assert not leaked, (name, leaked, error)
        assert "4471" not in str(auditor), name
        assert "smith" not in str(auditor), name
        assert all(
            e["column"] is None
            or e["column"] in {*DATASET.key, *(c.name for c in DATASET.columns)}
            or e["column"] == ",".join(DATASET.key)
            for e in auditor
        ), (name, auditor)


def test_auditors_see_neither_the_files_name_nor_its_hash(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    """A name can say whose file it is, and a tiny file's hash gives its values to whoever
    tries them: the trust sees both, an auditor neither (API, audit log, the trust's page)."""
    case = CASES["unreadable file"]
    submission_id = send(client, orgs["RJ1"], case)
    digest = hashlib.sha256(case.content).hexdigest()
    own = client.get(f"/v1/submissions/{submission_id}", headers=orgs["RJ1"]).json()
    assert (own["filename"], own["sha256"]) == (case.filename, digest)
    one = client.get(f"/v1/submissions/{submission_id}", headers=orgs["NAO"])
    listed = client.get("/v1/submissions", headers=orgs["NAO"], params={"org_code": "RJ1"})
    assert (one.json()["filename"], one.json()["sha256"]) == (None, None)
    assert [(s["filename"], s["sha256"]) for s in listed.json()] == [(None, None)]
    for shown in (
        one,
        listed,
        client.get("/v1/audit-events", headers=orgs["NAO"], params={"limit": 10_000}),
        client.get("/trusts/RJ1", headers=orgs["NAO"]),
    ):
        assert shown.status_code == 200, shown.text
        assert digest not in shown.text, shown.url
        assert "smith" not in shown.text, shown.url


def test_every_check_of_every_dataset_has_a_value_free_wording() -> None:
    """No check falls back to a stored message: each is worded from the definition."""
    for dataset in schemas.DATASETS.values():
        for column in dataset.columns:
            for check in (
                "dtype",
                "not_nullable",
                *(c.name for c in column.checks),
                *(r.name for r in dataset.rules if r.column == column.name),
            ):
                shown = auditor_messages.value_free(
                    dataset=dataset, row=7, column=column.name, check=check
                )
                assert shown.column == column.name
                assert shown.message.startswith(column.name + " ")
                assert "fails the check" not in shown.message, (dataset.code, check)


def test_every_reading_of_a_submissions_errors_is_in_the_audit_log(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> None:
    submission_id = send(client, orgs["RJ1"], next(iter(CASES.values())))
    url = f"/v1/submissions/{submission_id}/errors"
    count = len(client.get(url, headers=orgs["RJ1"]).json())
    assert client.get(url, params={"format": "csv"}, headers=orgs["NAO"]).status_code == 200
    events = client.get("/v1/audit-events", headers=orgs["NAO"]).json()
    reads = [
        (e["actor"], e["subject_id"], e["detail"])
        for e in events
        if e["action"] == "submission.errors_read"
    ]
    assert reads == [
        ("RJ1", submission_id, {"with_values": True, "format": "json", "errors": count}),
        ("NAO", submission_id, {"with_values": False, "format": "csv", "errors": count}),
    ]
