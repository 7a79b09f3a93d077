"""Hostile Parquet files are refused from their footer, before a page is decompressed.

A Parquet file says in its footer how many rows, columns and row groups it holds and how big its
column data is once decompressed. A small file can declare (and decode to) vastly more than it
holds, as a zip bomb does for XLSX; those declarations are checked against absolute limits and
against the file's size before the reader touches the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from schemas import get_dataset
from services.validator import reading, worker
from services.validator.reading import ErrorRecord, check_parquet_limits, parquet_source
from services.validator.validation import Report, validate_file
from tests.unit.validator.files import ecds_frame

ORG_CODE, PERIOD = "RJ1", "2025-01"


@pytest.fixture(autouse=True)
def no_page_is_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any read of the data (not the footer) of a Parquet file."""
    reads: list[str] = []

    def reader(name: str) -> Callable[..., Any]:
        real = getattr(pq.ParquetFile, name)

        def recorded(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
            reads.append(name)
            return real(self, *args, **kwargs)

        return recorded

    for name in ("iter_batches", "read", "read_row_group", "read_row_groups"):
        monkeypatch.setattr(pq.ParquetFile, name, reader(name))
    return reads


def validate(path: Path, code: str = "ae_monthly") -> Report:
    return validate_file(
        path=path,
        filename=path.name,
        dataset=get_dataset(code),
        org_code=ORG_CODE,
        period=PERIOD,
        write_to=path.parent / "out.parquet",
    )


def refused(report: Report, check: str = "unsafe_parquet") -> ErrorRecord:
    """Rejected with one file-level error of ``check``, and nothing written."""
    assert report.status == "rejected"
    assert report.format == "parquet"
    assert [(e.row, e.column, e.check) for e in report.errors] == [(None, None, check)], (
        report.errors
    )
    assert report.rows is None
    return report.errors[0]


def ae_columns(rows: int, value: Any) -> pa.Table:
    """The columns of ae_monthly, every cell the same value."""
    names = ["period", "org_code", "department_type", "attendances", "breaches", "admissions"]
    return pa.table({name: pa.repeat(pa.scalar(value), rows) for name in names})


def test_a_repeated_value_is_refused_by_its_declared_rows(
    tmp_path: Path, no_page_is_read: list[str]
) -> None:
    """Two million rows of one value: a few kilobytes of run-length encoding."""
    path = tmp_path / "repeated.parquet"
    pq.write_table(ae_columns(2_000_000, "7"), path, compression="zstd")
    size = path.stat().st_size
    assert size < 100_000
    started = time.monotonic()
    error = refused(validate(path))
    assert time.monotonic() - started < 2
    assert error.message == (
        "the Parquet file was refused as unsafe to read (a possible decompression bomb):"
        f" it declares 2,000,000 rows of 6 column(s) in {size:,} bytes"
        " (more than 100 values a byte)"
    )
    assert no_page_is_read == []


def test_highly_compressed_text_is_refused_by_its_uncompressed_size(
    tmp_path: Path, no_page_is_read: list[str]
) -> None:
    """Text that zstd shrinks a thousandfold: 100 MB of column data in about 100 kB."""
    path = tmp_path / "text.parquet"
    table = pa.table({"org_code": pa.repeat(pa.scalar("R" * 1000), 100_000)})
    pq.write_table(table, path, compression="zstd", use_dictionary=False)
    assert path.stat().st_size < 1_000_000
    error = refused(validate(path))
    assert "it would expand to 100,500,009 bytes (limit 16,777,216)" in error.message
    assert no_page_is_read == []


def test_many_row_groups_are_refused(tmp_path: Path, no_page_is_read: list[str]) -> None:
    path = tmp_path / "groups.parquet"
    rows = reading.PARQUET_MAX_ROW_GROUPS + 1
    pq.write_table(pa.table({"attendances": pa.array(range(rows))}), path, row_group_size=1)
    assert pq.ParquetFile(path).metadata.num_row_groups == rows
    error = refused(validate(path))
    assert f"it has {rows:,} row groups (limit 10,000)" in error.message
    assert no_page_is_read == []


def test_many_columns_are_refused(tmp_path: Path, no_page_is_read: list[str]) -> None:
    path = tmp_path / "columns.parquet"
    columns = reading.MAX_COLUMNS + 1
    pq.write_table(pa.table({f"c{n}": [n] for n in range(columns)}), path)
    error = refused(validate(path), "extra_column")
    assert error.message == f"the Parquet file has {columns:,} columns"
    assert no_page_is_read == []


def test_a_huge_footer_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "footer.parquet"
    schema = pa.schema([("attendances", pa.int64())], metadata={"notes": "n" * (9 * 2**20)})
    pq.write_table(pa.table({"attendances": [1]}, schema=schema), path)

    def opened(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the footer was parsed")

    monkeypatch.setattr(pq, "ParquetFile", opened)
    error = refused(validate(path))
    assert "its metadata is" in error.message
    assert "(limit 8,388,608)" in error.message


def test_a_declared_row_count_over_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_page_is_read: list[str]
) -> None:
    """(The limit is lowered here: a real 50M-row file takes a while to write.)"""
    monkeypatch.setattr(parquet_source, "PARQUET_MAX_ROWS", 1_000)
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"attendances": pa.array(range(1_001))}), path)
    error = refused(validate(path))
    assert "it declares 1,001 rows (limit 1,000)" in error.message
    assert no_page_is_read == []


def test_a_missing_footer_is_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "short.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 20 + b"\xff\xff\xff\x7fPAR1")
    error = refused(validate(path), "format")
    assert error.message.startswith("the Parquet file is damaged or truncated: ")


def test_real_returns_pass_the_checks(tmp_path: Path) -> None:
    """Returns as writers make them: polars (zstd, several row groups), pyarrow (snappy).

    200,000 attendances that repeat 5,000 forty times (new ids): more compressible than real ones.
    """
    block = ecds_frame(5_000)
    frame = pl.concat([block] * 40).with_columns(
        pl.int_range(1, 200_001, dtype=block["attendance_id"].dtype).alias("attendance_id")
    )
    polars_file = tmp_path / "polars.parquet"
    frame.write_parquet(polars_file, row_group_size=25_000)
    arrow_file = tmp_path / "arrow.parquet"
    pq.write_table(frame.to_arrow(), arrow_file, compression="snappy")
    small = tmp_path / "small.parquet"
    pl.DataFrame({"attendances": [7] * 3}).write_parquet(small)
    for path in (polars_file, arrow_file, small):
        check_parquet_limits(pq.ParquetFile(path).metadata, size=path.stat().st_size)
    assert validate(polars_file, "ecds_attendance").status == "accepted"


def test_a_bomb_sent_over_http_is_rejected_with_one_error(
    client: TestClient,
    make_org: Callable[..., dict[str, str]],
    running_worker: worker.WorkerHandle,
    tmp_path: Path,
) -> None:
    trust = make_org("RJ1", "trust", "Y56")
    path = tmp_path / "return.parquet"
    pq.write_table(ae_columns(2_000_000, "7"), path, compression="zstd")
    sent = client.post(
        "/v1/submissions",
        headers=trust,
        files={"file": ("return.parquet", path.read_bytes(), "application/vnd.apache.parquet")},
        data={"dataset": "ae_monthly", "period": PERIOD},
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 30
    while (done := client.get(sent.headers["location"], headers=trust).json())["status"] not in (
        "accepted",
        "rejected",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (done["status"], done["rows"], done["error_count"]) == ("rejected", None, 1)
    errors = client.get(f"{sent.headers['location']}/errors", headers=trust).json()
    assert [(e["row"], e["check"]) for e in errors] == [(None, "unsafe_parquet")]
