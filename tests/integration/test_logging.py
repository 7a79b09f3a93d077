"""Logs are JSON lines and never hold a return's values, tokens or query strings: read from a
real `drb serve` that rejects an upload, and checked piece by piece."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.catalogue import logs
from services.catalogue.db import build_engine
from tests.processes import DRB, drb_env, free_port, healthy, run_drb, stop, wait_until

ADMIN = "drb_log-test-admin-token-0123456789abcdef"
# Values no log line may hold: they are a return's cells.
ATTENDANCES, BREACHES, BAD_PERIOD = "987654", "987655", "2097-03"


def rejected_return() -> bytes:
    """An ae_monthly return for RJ1, 2025-01, whose values break two rules: more breaches than
    attendances, and a row of another period."""
    return (
        "period,org_code,department_type,attendances,breaches,admissions\r\n"
        f"2025-01,RJ1,1,{ATTENDANCES},{BREACHES},2561\r\n"
        "2025-01,RJ1,2,310,0,4\r\n"
        f"{BAD_PERIOD},RJ1,other,4012,37,12\r\n"
    ).encode()


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        assert entry["time"].endswith("+00:00"), line
        parsed.append(entry)
    return parsed


def test_the_log_of_a_rejected_upload_holds_no_values_nor_tokens(
    database_url: str, tmp_path: Path
) -> None:
    env = drb_env(data_dir=str(tmp_path / "var"), admin_token=ADMIN, database_url=database_url)
    migrated = run_drb("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file, out_file = tmp_path / "serve.log", tmp_path / "serve.out"
    with log_file.open("wb") as log_handle, out_file.open("wb") as out_handle:
        server = subprocess.Popen(
            [DRB, "serve", "--port", str(port)], env=env, stdout=out_handle, stderr=log_handle
        )
    try:
        wait_until(
            lambda: healthy(base), timeout=60, what="drb serve", log=log_file, process=server
        )
        admin = {"Authorization": f"Bearer {ADMIN}"}
        organisation = {"code": "RJ1", "name": "RJ1 trust", "kind": "trust", "region": "Y56"}
        assert httpx.post(f"{base}/v1/organisations", json=organisation, headers=admin).is_success
        issued = httpx.post(f"{base}/v1/organisations/RJ1/tokens", headers=admin)
        token = issued.json()["token"]
        trust = {"Authorization": f"Bearer {token}"}
        sent = httpx.post(
            f"{base}/v1/submissions",
            headers=trust,
            data={"dataset": "ae_monthly", "period": "2025-01"},
            files={"file": ("return.csv", rejected_return(), "text/csv")},
            timeout=30,
        )
        assert sent.status_code == 202, sent.text
        submission_id = sent.json()["id"]
        deadline = time.monotonic() + 60
        status = "received"
        while status not in ("accepted", "rejected") and time.monotonic() < deadline:
            time.sleep(0.1)
            status = httpx.get(f"{base}/v1/submissions/{submission_id}", headers=trust).json()[
                "status"
            ]
        assert status == "rejected"
        # The values did reach the broker: the trust is told of them.
        errors = httpx.get(f"{base}/v1/submissions/{submission_id}/errors", headers=trust).text
        assert BREACHES in errors
        assert BAD_PERIOD in errors
        # A secret in a query string, and a guessed token.
        in_query = "drb_in-a-query-string-abcdefghijklmnop"
        assert httpx.get(f"{base}/v1/datasets?token={in_query}", headers=trust).is_success
        guess = "drb_a-guessed-token-abcdefghijklmnopqrstu"
        guessed = httpx.get(f"{base}/v1/datasets", headers={"Authorization": f"Bearer {guess}"})
        assert guessed.status_code == 401
    finally:
        stop(server)

    entries = json_lines(log_file)
    raw = log_file.read_text()
    for secret in (ATTENDANCES, BREACHES, BAD_PERIOD, token, ADMIN, guess, in_query, "?token"):
        assert secret not in raw, f"{secret!r} is in the log"
    decided = [e for e in entries if e.get("submission_id") == submission_id]
    assert decided, "the submission's decision is logged, by id"
    assert decided[-1]["status"] == "rejected"
    assert decided[-1]["org_code"] == "RJ1"
    assert decided[-1]["error_count"] >= 2
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert {"method": "POST", "path": "/v1/submissions", "status": 202}.items() <= next(
        e for e in access if e.get("path") == "/v1/submissions"
    ).items()
    assert any(e.get("path") == "/v1/datasets" and e.get("status") == 401 for e in access)
    assert any(e["message"] == "Application shutdown complete." for e in entries)


def record(message: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("drb.test", logging.WARNING, __file__, 1, message, args, None)


def formatted(record: logging.LogRecord) -> dict[str, Any]:
    logs.RedactSecrets().filter(record)
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_tokens_and_passwords_are_masked_wherever_they_appear() -> None:
    token = "drb_" + "Ab3-_" * 9
    entry = formatted(
        record(
            "token %s, header %s, url %s, query %s",
            token,
            "Authorization: Bearer not-even-ours.abc",
            "postgresql+psycopg://drb:hunter2@db:5432/drb",
            "/x?password=hunter3&page=2",
        )
    )
    message = entry["message"]
    assert token not in message
    assert "drb_***" in message
    assert "not-even-ours" not in message
    assert "hunter2" not in message
    assert "postgresql+psycopg://drb:***@db:5432/drb" in message
    assert "hunter3" not in message
    assert "page=2" in message


def test_credentials_in_delivery_uris_are_masked_and_the_rest_kept() -> None:
    """A delivery's error names its URI (for operators): credentials in any spelling are masked,
    the bucket, folder, region and endpoint kept."""
    uris = [
        "s3://AKIAABCDEFGHIJKLMNOP:wJalrXUtnFEMIK7MDENG@bucket/cqc",
        "s3://AKIAABCDEFGHIJKLMNOP@bucket/cqc",
        "s3://bucket/cqc?region=eu-west-2&access_key=AKIAABCDEFGHIJKLMNOP"
        "&secret_key=wJalrXUtnFEMIK7MDENG&session_token=FQoGZXIvYXdzEXAMPLE"
        "&endpoint_override=minio.internal:9000",
        "gs://bucket/cqc?credentials=ya29.EXAMPLE",
    ]
    entry = formatted(record("could not write %s; %s; %s; %s", *uris))
    message = entry["message"]
    for secret in ("AKIAABCDEFGHIJKLMNOP", "wJalrXUtnFEMIK7MDENG", "FQoGZXIvYXdz", "ya29."):
        assert secret not in message
    for kept in ("@bucket/cqc", "region=eu-west-2", "endpoint_override=minio.internal:9000"):
        assert kept in message
    plain = "file:///srv/outbox/CQC/extract-r1.parquet"
    assert formatted(record("could not write %s", plain))["message"] == f"could not write {plain}"


def test_fields_and_exceptions_are_json_fields() -> None:
    try:
        raise ValueError("the token drb_ThisMustNotBeLogged123 broke it")
    except ValueError:
        failure = record("it failed for submission %s", "s-1")
        failure.exc_info = sys.exc_info()
    for name, value in logs.fields(submission_id="s-1", org_code="RJ1", rows=3).items():
        setattr(failure, name, value)
    entry = formatted(failure)
    assert entry["message"] == "it failed for submission s-1"
    assert (entry["submission_id"], entry["org_code"], entry["rows"]) == ("s-1", "RJ1", 3)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "drb.test"
    assert "ValueError" in entry["exception"]
    assert "ThisMustNotBeLogged" not in entry["exception"]
    assert "exception_text" not in entry


def test_an_exception_that_may_quote_a_file_is_logged_without_its_text() -> None:
    try:
        raise ValueError(f"could not parse {ATTENDANCES}x as an integer")
    except ValueError:
        failure = record("submission s-1 could not be validated")
        failure.exc_info = sys.exc_info()
    for name, value in logs.fields(submission_id="s-1", exception_text=False).items():
        setattr(failure, name, value)
    entry = formatted(failure)
    assert "ValueError" in entry["exception"]
    assert "test_an_exception_that_may_quote_a_file" in entry["exception"]  # its frames
    assert ATTENDANCES not in json.dumps(entry)


def test_the_access_log_keeps_the_path_and_drops_the_query() -> None:
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.1:5000", "GET", "/v1/asks?status=overdue&token=x", "1.1", 200),
        None,
    )
    logs.AccessLogFields().filter(access)
    entry = formatted(access)
    assert entry["message"] == '10.0.0.1:5000 - "GET /v1/asks HTTP/1.1" 200'
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/v1/asks", 200)
    assert "overdue" not in json.dumps(entry)


def test_database_errors_do_not_quote_the_statement_s_values(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)"))
            connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": int(ATTENDANCES)})
        with pytest.raises(IntegrityError) as raised, engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": int(ATTENDANCES)})
        assert ATTENDANCES not in str(raised.value)
    finally:
        engine.dispose()


def test_warnings_are_json_lines_too(tmp_path: Path) -> None:
    script = (
        "import logging, warnings\n"
        "from services.catalogue import logs\n"
        "logs.configure()\n"
        "warnings.warn('an old API', DeprecationWarning, stacklevel=1)\n"
        "logging.getLogger('x').info('done', extra={'job_id': 'j-1'})\n"
    )
    ran = subprocess.run(
        [sys.executable, "-W", "always", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=drb_env(),
        cwd=Path(__file__).resolve().parents[2],
    )
    lines = [json.loads(line) for line in ran.stderr.splitlines()]
    assert [entry["logger"] for entry in lines] == ["py.warnings", "x"]
    assert lines[1]["job_id"] == "j-1"
