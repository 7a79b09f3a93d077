"""Parquet: read in batches, after its footer is checked for what it declares."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.model import Column
from services.validator.reading.conversion import type_problem
from services.validator.reading.records import ErrorRecord, FileError, file_error
from services.validator.reading.sources import MAX_COLUMNS, Source, rebatch

# Parquet is read in batches, but a small file can declare, and decode to, far more than it
# holds: a million repeats of one value are a few bytes of run-length encoding, and zstd shrinks
# a page of repeated text a thousandfold. The footer is checked before any page is read. A
# 1M-row ECDS return is 15-24 MB on disk, 28 MB of column data (ratio 1.2-1.8) and about one
# cell (row x column) per byte; a 50M-row return would be 1-2 GB of Parquet.
PARQUET_MAX_FOOTER_BYTES = 8 * 1024 * 1024
PARQUET_MAX_ROWS = 50_000_000
PARQUET_MAX_ROW_GROUPS = 10_000
PARQUET_MAX_UNCOMPRESSED = 4 * 1024**3
PARQUET_MAX_RATIO = 100  # declared column data to the file's size
PARQUET_RATIO_FLOOR = 16 * 1024 * 1024  # less column data than this may compress as it likes
PARQUET_MAX_CELLS_PER_BYTE = 100  # rows x columns declared per byte of the file
PARQUET_CELLS_FLOOR = 1_000_000  # fewer cells than this may be encoded as tightly as they like


class ParquetSource(Source):
    """Parquet through pyarrow, in batches."""

    def __init__(self, path: Path) -> None:
        check_parquet_footer(path)
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise _damaged_parquet(error) from error
        try:
            check_parquet_limits(self._file.metadata, size=path.stat().st_size)
        except FileError:
            self._file.close()
            raise
        self.header = list(self._file.schema_arrow.names)
        if self._file.metadata.num_columns != len(self.header):
            self._file.close()
            raise file_error("format", "the Parquet file has nested columns; send flat columns")

    def count_rows(self) -> int:
        """The data rows, from the footer."""
        return int(self._file.metadata.num_rows)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The file's columns as pyarrow reads them, without metadata."""
        return self._file.schema_arrow.remove_metadata()

    def check_types(self, positions: Sequence[int], columns: Sequence[Column]) -> None:
        """FileError naming each column whose Parquet type cannot hold the dataset's type."""
        schema = self._file.schema_arrow
        problems = [
            ErrorRecord(row=None, column=column.name, check="dtype", value=None, message=problem)
            for position, column in zip(positions, columns, strict=True)
            if (problem := type_problem(schema.field(position).type, column)) is not None
        ]
        if problems:
            raise FileError(*problems)

    def tables(self, rows: int) -> Iterator[pa.Table]:
        """Data rows in tables of ``rows`` rows."""
        return rebatch(self._batches(rows), rows)

    def _batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        batches = self._file.iter_batches(batch_size=rows, use_pandas_metadata=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as error:
                raise _damaged_parquet(error) from error
            yield batch

    def close(self) -> None:
        """Release the file."""
        self._file.close()


def _damaged_parquet(error: BaseException) -> FileError:
    return file_error("format", f"the Parquet file is damaged or truncated: {error}")


_UNSAFE_PARQUET = "the Parquet file was refused as unsafe to read (a possible decompression bomb): "


def check_parquet_footer(path: Path) -> None:
    """FileError if the footer (the file's metadata) is too big to parse; nothing is read."""
    size = path.stat().st_size
    with path.open("rb") as file:
        if size < 12:
            raise file_error("format", "the Parquet file is damaged or truncated: it is too short")
        file.seek(size - 8)
        tail = file.read(8)
    footer = struct.unpack("<I", tail[:4])[0]
    if tail[4:] != b"PAR1" or footer > size - 12:
        raise file_error(
            "format", "the Parquet file is damaged or truncated: its footer is missing"
        )
    if footer > PARQUET_MAX_FOOTER_BYTES:
        raise file_error(
            "unsafe_parquet",
            _UNSAFE_PARQUET + f"its metadata is {footer:,} bytes"
            f" (limit {PARQUET_MAX_FOOTER_BYTES:,})",
        )


def check_parquet_limits(metadata: pq.FileMetaData, *, size: int) -> None:
    """FileError if the footer declares more than a return of ``size`` bytes can hold.

    Only the metadata is read: the counts of rows, columns and row groups, and the uncompressed
    size of the column data, each against an absolute limit and against the file's size.
    """
    columns, groups = metadata.num_columns, metadata.num_row_groups
    if columns > MAX_COLUMNS:
        raise file_error("extra_column", f"the Parquet file has {columns:,} columns")
    if groups > PARQUET_MAX_ROW_GROUPS:
        raise file_error(
            "unsafe_parquet",
            _UNSAFE_PARQUET + f"it has {groups:,} row groups (limit {PARQUET_MAX_ROW_GROUPS:,})",
        )
    row_groups = [metadata.row_group(n) for n in range(groups)]
    rows = max(metadata.num_rows, sum(max(group.num_rows, 0) for group in row_groups))
    if rows > PARQUET_MAX_ROWS:
        raise file_error(
            "unsafe_parquet",
            _UNSAFE_PARQUET + f"it declares {rows:,} rows (limit {PARQUET_MAX_ROWS:,});"
            " send a return of one trust for one period",
        )
    cells = rows * columns
    if cells > PARQUET_CELLS_FLOOR and cells > PARQUET_MAX_CELLS_PER_BYTE * size:
        raise file_error(
            "unsafe_parquet",
            _UNSAFE_PARQUET + f"it declares {rows:,} rows of {columns:,} column(s) in {size:,}"
            f" bytes (more than {PARQUET_MAX_CELLS_PER_BYTE} values a byte)",
        )
    data = sum(
        max(
            group.total_byte_size,
            sum(group.column(n).total_uncompressed_size for n in range(group.num_columns)),
            0,
        )
        for group in row_groups
    )
    limit = min(PARQUET_MAX_UNCOMPRESSED, max(PARQUET_MAX_RATIO * size, PARQUET_RATIO_FLOOR))
    if data > limit:
        raise file_error(
            "unsafe_parquet",
            _UNSAFE_PARQUET + f"it would expand to {data:,} bytes (limit {limit:,})",
        )
