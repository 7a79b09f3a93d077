"""Builders of submitted files, good and bad, written to disk as a trust would send them."""

from __future__ import annotations

import struct
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter  # type: ignore[import-untyped]

from schemas import get_dataset

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def write_csv(frame: pl.DataFrame, path: Path, *, bom: bool = False, crlf: bool = False) -> Path:
    """The frame as CSV UTF-8, times written YYYY-MM-DD HH:MM:SS."""
    text = frame.write_csv(
        datetime_format=DATETIME_FORMAT, line_terminator="\r\n" if crlf else "\n"
    )
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def write_text(path: Path, lines: list[str], *, encoding: str = "utf-8") -> Path:
    """Lines of CSV text as they are, each ended by a newline."""
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return path


def csv_lines(frame: pl.DataFrame) -> list[str]:
    """The frame as CSV lines, header first, to be edited by a test."""
    return frame.write_csv(datetime_format=DATETIME_FORMAT).splitlines()


def write_parquet(frame: pl.DataFrame | pa.Table, path: Path) -> Path:
    """The frame as a Parquet file, with the types it has."""
    table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    pq.write_table(table, path)
    return path


def write_xlsx(frame: pl.DataFrame, path: Path, *, period_as_date: bool = False) -> Path:
    """The frame as the first sheet of a workbook, with native Excel cells (numbers, dates)."""
    workbook = xlsxwriter.Workbook(path)
    sheet = workbook.add_worksheet("Return")
    stamp = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, frame.columns)
    for r, row in enumerate(frame.iter_rows(), start=1):
        for c, (name, value) in enumerate(zip(frame.columns, row, strict=True)):
            _write_cell(sheet, r, c, value, name, stamp, day, period_as_date=period_as_date)
    workbook.close()
    return path


def _write_cell(
    sheet: Any,
    row: int,
    column: int,
    value: Any,
    name: str,
    stamp: Any,
    day: Any,
    *,
    period_as_date: bool,
) -> None:
    if value is None:
        return
    if name == "period" and period_as_date:
        sheet.write_datetime(row, column, datetime.strptime(value[:7] + "-01", "%Y-%m-%d"), day)
    elif isinstance(value, bool):
        sheet.write_boolean(row, column, value)
    elif isinstance(value, datetime):
        sheet.write_datetime(row, column, value, stamp)
    elif isinstance(value, date):
        sheet.write_datetime(row, column, value, day)
    elif isinstance(value, int | float):
        sheet.write_number(row, column, value)
    else:
        sheet.write_string(row, column, value)


def normalised(frame: pl.DataFrame) -> pl.DataFrame:
    """What the validator writes for a valid frame: period as YYYY-MM."""
    if "period" in frame.columns:
        return frame.with_columns(pl.col("period").str.slice(0, 7))
    return frame


def with_cell(frame: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    """The frame with one cell (0-based row) replaced, keeping the column's type."""
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text, so that a test can put any text in any cell."""
    return frame.with_columns(
        pl.col(pl.Datetime).dt.to_string(DATETIME_FORMAT),
        pl.col(pl.Boolean).replace_strict({True: "true", False: "false"}, return_dtype=pl.String),
    ).cast(pl.String)


# ---------------------------------------------------------------------------
# Damaged and hostile files
# ---------------------------------------------------------------------------


def truncated_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """A Parquet file cut off halfway: it starts like Parquet but has no footer."""
    write_parquet(frame, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _xlsx_skeleton(archive: zipfile.ZipFile) -> None:
    """The parts that make a ZIP look like an XLSX workbook."""
    archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
    archive.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook/>')


def zip_bomb(path: Path, *, mebibytes: int = 64) -> Path:
    """An XLSX-looking ZIP whose sheet is that many MiB of zeros (about 1,000:1), streamed."""
    block = b"0" * 2**20
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _xlsx_skeleton(archive)
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            for _ in range(mebibytes):
                member.write(block)
    return path


def lying_zip(path: Path, *, declared: int = 1_000, actual: int = 4 * 2**20) -> Path:
    """An XLSX-looking ZIP whose sheet claims ``declared`` bytes but inflates to ``actual``."""
    name = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _xlsx_skeleton(archive)
        archive.writestr(name, b"<" * actual)
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    # Uncompressed size: offset 22 in the local header, 24 in the central directory entry.
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at : start + name_at + len(encoded)] == encoded:
                struct.pack_into("<I", data, start + size_at, declared)
            start += 4
    path.write_bytes(bytes(data))
    return path


def ecds_frame(rows: int, *, org_code: str = "RJ1", period: str = "2025-01") -> pl.DataFrame:
    """A valid ecds_attendance return of that many rows (distinct ids, arrivals in the period)."""
    start = datetime.strptime(period + "-01", "%Y-%m-%d")
    arrival = pl.datetime_range(
        start, start.replace(day=28), interval="7m", eager=True, time_unit="us"
    ).head(rows)
    assert len(arrival) == rows, "too many rows for one month at 7-minute steps"
    minutes = pl.int_range(rows, eager=True) % 600
    frame = pl.DataFrame(
        {
            "attendance_id": pl.int_range(1, rows + 1, eager=True),
            "org_code": [org_code] * rows,
            "site_code": [org_code + "01"] * rows,
            "arrival_time": arrival,
            "departure_time": pl.select(arrival + pl.duration(minutes=pl.lit(minutes))).to_series(),
            "age": pl.int_range(rows, eager=True) % 121,
            "sex": pl.Series(["0", "1", "2", "9"] * rows).head(rows),
            "arrival_mode": pl.Series(["ambulance", "walk-in", "other"] * rows).head(rows),
            "acuity": pl.int_range(rows, eager=True) % 5 + 1,
            "department_type": pl.Series(["1", "2", "other"] * rows).head(rows),
            "admitted": pl.int_range(rows, eager=True) % 3 == 0,
            "minutes_in_department": minutes,
        }
    )
    return frame.cast(get_dataset("ecds_attendance").polars_schema())  # type: ignore[arg-type]
