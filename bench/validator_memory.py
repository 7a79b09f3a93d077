"""Wall time and peak memory of the validator on large patient-level (ecds_attendance) CSV files.

Run: .venv/bin/python bench/validator_memory.py [--rows 1000000 --rows 20000000] [--chunk-rows N]

Writes each file in a temporary directory (valid rows from a fixed seed, generated with numpy and
written by polars), then runs in separate processes, so that each peak RSS is its own:
- ``validate_file`` (read, convert, validate, write Parquet), the validator's whole stage;
- the baseline it is compared with: pyarrow reads the CSV with typed columns, then one
  pandera-polars validation of the whole table (``--no-baseline`` skips it; it needs the whole
  table in memory).
Prints wall time, peak RSS (ru_maxrss of the child) and the size of the data as an Arrow table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

_DATASET = "ecds_attendance"
_ORG = "RJ1"
_PERIOD = "2025-01"
_GENERATE_ROWS = 2_000_000


def write_ecds_csv(path: Path, rows: int, *, seed: int = 7) -> None:
    """A valid ecds_attendance return of that many rows for RJ1, January 2025."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00")
    with path.open("wb") as file:
        for first in range(0, rows, _GENERATE_ROWS):
            n = min(_GENERATE_ROWS, rows - first)
            arrival = start + rng.integers(0, 31 * 24 * 60, n).astype("timedelta64[m]")
            minutes = rng.integers(0, 720, n)
            frame = pl.DataFrame(
                {
                    "attendance_id": np.arange(first, first + n, dtype=np.int64) + 10_000_000,
                    "org_code": _ORG,
                    "site_code": rng.choice(["RJ101", "RJ102", "RJ122"], n),
                    "arrival_time": arrival.astype("datetime64[us]"),
                    "departure_time": (arrival + minutes.astype("timedelta64[m]")).astype(
                        "datetime64[us]"
                    ),
                    "age": rng.integers(0, 121, n),
                    "sex": rng.choice(["0", "1", "2", "9"], n),
                    "arrival_mode": rng.choice(["ambulance", "walk-in", "other"], n),
                    "acuity": rng.integers(1, 6, n),
                    "department_type": rng.choice(["1", "2", "other"], n),
                    "admitted": rng.random(n) < 0.3,
                    "minutes_in_department": minutes,
                }
            )
            frame.write_csv(file, include_header=first == 0, datetime_format="%Y-%m-%d %H:%M:%S")


def _child_validate(path: Path, chunk_rows: int) -> dict[str, object]:
    """Run in the child: the validator's stage on the file."""
    from schemas import get_dataset
    from services.validator.validation import validate_file

    started = time.perf_counter()
    report = validate_file(
        path=path,
        filename=path.name,
        dataset=get_dataset(_DATASET),
        org_code=_ORG,
        period=_PERIOD,
        write_to=path.with_suffix(".parquet"),
        chunk_rows=chunk_rows,
    )
    seconds = time.perf_counter() - started
    assert report.status == "accepted", report.errors[:5]
    return {"seconds": seconds, "rows": report.rows}


def _child_baseline(path: Path) -> dict[str, object]:
    """Run in the child: pyarrow reads the CSV with types, then one pandera-polars validation."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from schemas import get_dataset

    dataset = get_dataset(_DATASET)
    started = time.perf_counter()
    types = {"arrival_time": pa.timestamp("us"), "departure_time": pa.timestamp("us")}
    types |= {c.name: pa.string() for c in dataset.columns if c.dtype == "string"}
    table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    dataset.pandera_schema(org_code=_ORG, period=_PERIOD).validate(frame, lazy=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": table.num_rows, "arrow_bytes": table.nbytes}


def _run_child(mode: str, path: Path, chunk_rows: int) -> dict[str, object]:
    """Run one mode in a fresh interpreter; its result plus its own peak RSS."""
    command = [sys.executable, __file__, "--child", mode, str(path), str(chunk_rows)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{mode} failed with exit code {process.returncode}")
    result: dict[str, object] = json.loads(output)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def _best_of(mode: str, path: Path, chunk_rows: int, repeat: int) -> dict[str, float]:
    """Run the mode ``repeat`` times, each in a fresh process: fastest wall, highest peak RSS."""
    runs = [_run_child(mode, path, chunk_rows) for _ in range(repeat)]
    best: dict[str, float] = {
        "seconds": min(float(str(run["seconds"])) for run in runs),
        "median": statistics.median(float(str(run["seconds"])) for run in runs),
        "peak_rss_mib": max(float(str(run["peak_rss_mib"])) for run in runs),
    }
    if "arrow_bytes" in runs[0]:
        best["arrow_mib"] = float(str(runs[0]["arrow_bytes"])) / 2**20
    return best


def main() -> None:
    """Generate the files, run each stage in a child process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each stage (best is kept)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        mode, path, chunk_rows = arguments.child
        if mode == "validate":
            result = _child_validate(Path(path), int(chunk_rows))
        else:
            result = _child_baseline(Path(path))
        print(json.dumps(result))
        return
    for rows in arguments.rows or [1_000_000]:
        repeat = arguments.repeat if rows <= 2_000_000 else 1
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / f"ecds_{rows}.csv"
            started = time.perf_counter()
            write_ecds_csv(path, rows)
            size = path.stat().st_size / 2**20
            took = time.perf_counter() - started
            print(f"{rows:,} rows: {size:,.0f} MiB CSV, written in {took:.1f} s; best of {repeat}")
            figures = _best_of("validate", path, arguments.chunk_rows, repeat)
            print(
                f"  validate_file (chunk_rows={arguments.chunk_rows:,}): {figures['seconds']:.2f} s"
                f" (median {figures['median']:.2f}), peak RSS {figures['peak_rss_mib']:,.0f} MiB"
            )
            if not arguments.no_baseline:
                base = _best_of("baseline", path, arguments.chunk_rows, repeat)
                print(
                    f"  baseline (pyarrow typed read + one pandera validation):"
                    f" {base['seconds']:.2f} s (median {base['median']:.2f}),"
                    f" peak RSS {base['peak_rss_mib']:,.0f} MiB;"
                    f" Arrow table {base['arrow_mib']:,.0f} MiB"
                )
                print(
                    f"  ratio validate_file / baseline: {figures['seconds'] / base['seconds']:.2f}"
                )


if __name__ == "__main__":
    main()
