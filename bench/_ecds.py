"""Synthetic, valid ecds_attendance returns of any size, for benchmarks (seeded, vectorised).

Every row passes the dataset's checks for the trust and month given: unique ``attendance_id``,
``org_code`` the trust's own code, five-character ``site_code``, arrivals within the month (to
the second), departure not before arrival, ``minutes_in_department`` the whole minutes between
them, codes from the dataset's lists and numbers in range. Rows are made in blocks of
``block_rows``, each block from its own seed, so a file of any size is written in bounded memory
and the same arguments always give the same bytes.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

BLOCK_ROWS = 1_000_000
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_FIRST_ID = 40_000_000


def blocks(
    rows: int,
    *,
    org_code: str = "RJ1",
    period: str = "2025-01",
    seed: int = 2025,
    block_rows: int = BLOCK_ROWS,
) -> Iterator[pl.DataFrame]:
    """The return's rows, ``block_rows`` at a time, in the dataset's column order and types."""
    year, month = (int(part) for part in period.split("-"))
    seconds_in_month = calendar.monthrange(year, month)[1] * 24 * 3600
    start = np.datetime64(f"{period}-01T00:00:00", "s")
    sites = [f"{org_code}{n:02d}"[:5].ljust(5, "0") for n in (1, 2, 22, 40)]
    for number, first in enumerate(range(0, rows, block_rows)):
        n = min(block_rows, rows - first)
        rng = np.random.default_rng([seed, number])
        arrival = start + rng.integers(0, seconds_in_month, n).astype("timedelta64[s]")
        # Minutes in the department: mostly 1 to 6 hours, a long tail up to 48 hours.
        minutes = np.minimum(rng.lognormal(5.0, 0.6, n), 2_880).astype(np.int64)
        stay = minutes * 60 + rng.integers(0, 60, n)
        departure = arrival + stay.astype("timedelta64[s]")
        acuity = rng.integers(1, 6, n)
        yield pl.DataFrame(
            {
                # Unique across blocks; shuffled within each block, as record numbers often are.
                "attendance_id": _FIRST_ID + first + rng.permutation(n).astype(np.int64),
                "org_code": pl.repeat(org_code, n, eager=True),
                "site_code": _pick(rng, sites, n, [0.6, 0.25, 0.1, 0.05]),
                "arrival_time": arrival.astype("datetime64[us]"),
                "departure_time": departure.astype("datetime64[us]"),
                "age": np.minimum(rng.gamma(2.0, 20.0, n), 120).astype(np.int64),
                "sex": _pick(rng, ["0", "1", "2", "9"], n, [0.01, 0.48, 0.5, 0.01]),
                "arrival_mode": _pick(rng, ["ambulance", "walk-in", "other"], n, [0.3, 0.6, 0.1]),
                "acuity": acuity,
                "department_type": _pick(rng, ["1", "2", "other"], n, [0.7, 0.05, 0.25]),
                "admitted": rng.random(n) < np.where(acuity <= 2, 0.6, 0.15),
                "minutes_in_department": minutes,
            }
        )


def _pick(rng: np.random.Generator, values: list[str], n: int, p: list[float]) -> pl.Series:
    """n codes drawn with probabilities p (gathered by index: numpy text is slow to convert)."""
    return pl.Series(values, dtype=pl.String).gather(rng.choice(len(values), n, p=p))


def write_csv(path: Path, rows: int, **options: object) -> int:
    """Write the return as CSV UTF-8 (header, ``true``/``false``, local times); its bytes."""
    with path.open("wb") as file:
        for index, block in enumerate(blocks(rows, **options)):  # type: ignore[arg-type]
            block.write_csv(file, include_header=index == 0, datetime_format=DATETIME_FORMAT)
    return path.stat().st_size


def write_parquet(path: Path, rows: int, **options: object) -> int:
    """Write the return as Parquet (snappy, a row group per block, as most tools do); its bytes."""
    writer: pq.ParquetWriter | None = None
    try:
        for block in blocks(rows, **options):  # type: ignore[arg-type]
            # Plain (32-bit offset) strings, as pandas and most tools write them.
            table = block.to_arrow(compat_level=pl.CompatLevel.oldest())
            table = table.cast(
                pa.schema(
                    pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
                    for f in table.schema
                )
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path.stat().st_size


def write_bad_csv(path: Path, rows: int, bad_rows: int, **options: object) -> int:
    """The same return with ``bad_rows`` rows broken, spread evenly through the file, a quarter
    each: an age out of range, an unknown sex code, a departure before the arrival and an
    unknown arrival mode (each a row-level error the validator must list); its bytes."""
    step = max(rows // max(bad_rows, 1), 1)
    with path.open("wb") as file:
        first = 0
        for index, block in enumerate(blocks(rows, **options)):  # type: ignore[arg-type]
            n = block.height
            position = pl.int_range(first, first + n, eager=True)
            bad = (position % step == step // 2) & (position // step < bad_rows)
            kind = (position // step) % 4
            block = block.with_columns(
                age=pl.when(bad & (kind == 0)).then(999).otherwise(pl.col("age")),
                sex=pl.when(bad & (kind == 1)).then(pl.lit("X")).otherwise(pl.col("sex")),
                departure_time=pl.when(bad & (kind == 2))
                .then(pl.col("arrival_time") - pl.duration(hours=1))
                .otherwise(pl.col("departure_time")),
                arrival_mode=pl.when(bad & (kind == 3))
                .then(pl.lit("helicopter"))
                .otherwise(pl.col("arrival_mode")),
            )
            block.write_csv(file, include_header=index == 0, datetime_format=DATETIME_FORMAT)
            first += n
    return path.stat().st_size
