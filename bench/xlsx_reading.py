"""What reading an XLSX return costs, with its declared sizes checked and its reader in a child.

For one synthetic ecds_attendance return of ``--rows`` written twice by xlsxwriter (as Excel
writes it, text in a shared-strings table; and with text inline in each cell, as streaming
writers do), and one small ae_monthly workbook, each timed ``--repeat``
times and the median shown:

- ``zip checks and declared sizes``: ``check_xlsx_limits`` (the zip directory, the inflated
  sizes, then every part's XML streamed through expat: xlsx_declared);
- ``read in this process`` (the peer: how the sheet was read before, fastexcel in the caller);
- ``read in a child``: ``read_first_sheet`` (a child Python with a memory limit writes Arrow IPC,
  which this process maps);
- ``validate_file``: the whole validation, as the worker runs it.

    .venv/bin/python bench/xlsx_reading.py --rows 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fastexcel
import polars as pl
import xlsxwriter  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._ecds import blocks
from schemas import get_dataset
from services.validator.reading.xlsx_source import (
    check_xlsx_limits,
    read_first_sheet,
)
from services.validator.validation import validate_file


def write_workbook(frame: pl.DataFrame, path: Path, *, inline: bool = False) -> None:
    """As Excel writes it (text in a shared-strings table), or with text inline in the cells
    (``inline``: xlsxwriter's constant-memory mode, as streaming writers do)."""
    book = xlsxwriter.Workbook(path, {"constant_memory": inline})
    sheet = book.add_worksheet("Return")
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write_row(0, 0, frame.columns)
    for r, row in enumerate(frame.iter_rows(), start=1):
        for c, value in enumerate(row):
            if hasattr(value, "year") and hasattr(value, "hour"):
                sheet.write_datetime(r, c, value, stamp)
            elif value is not None:
                sheet.write(r, c, value)
    book.close()


def median_seconds(step: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def in_process(path: Path) -> object:
    sheet = fastexcel.read_excel(path).load_sheet(
        0, header_row=None, dtypes="string", skip_whitespace_tail_rows=True
    )
    return sheet.to_arrow()


def steps(path: Path, code: str) -> dict[str, Callable[[], object]]:
    return {
        "zip checks and declared sizes": lambda: check_xlsx_limits(path),
        "read in this process (before)": lambda: in_process(path),
        "read in a child (now)": lambda: read_first_sheet(path),
        "validate_file (now)": lambda: validate_file(
            path=path,
            filename=path.name,
            dataset=get_dataset(code),
            org_code="RJ1",
            period="2025-01",
            write_to=path.with_suffix(".out"),
            chunk_rows=100_000,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        shared, inline = Path(directory) / "shared.xlsx", Path(directory) / "inline.xlsx"
        frame = pl.concat(list(blocks(options.rows, period="2025-01")))
        write_workbook(frame, shared)
        write_workbook(frame, inline, inline=True)
        small = Path(directory) / "ae.xlsx"
        write_workbook(
            pl.DataFrame(
                {
                    "period": ["2025-01"] * 3,
                    "org_code": ["RJ1"] * 3,
                    "department_type": ["1", "2", "other"],
                    "attendances": [9120, 310, 4012],
                    "breaches": [2104, 0, 37],
                    "admissions": [2561, 4, 12],
                }
            ),
            small,
        )
        print(f"| workbook | size | step | median of {options.repeat} |")
        print("|---|---|---|---|")
        for path, code, label in (
            (shared, "ecds_attendance", f"{options.rows:,} rows, shared strings"),
            (inline, "ecds_attendance", f"{options.rows:,} rows, inline strings"),
            (small, "ae_monthly", "3 rows"),
        ):
            size = f"{path.stat().st_size / 2**20:.1f} MiB"
            for step, run in steps(path, code).items():
                seconds = median_seconds(run, options.repeat)
                print(f"| {label} | {size} | {step} | {seconds:.2f} s |")


if __name__ == "__main__":
    main()
