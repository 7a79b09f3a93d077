"""Reading a submitted return: its format, its header, then its rows as typed chunks.

Formats are recognised by content, never by name: Parquet (``PAR1`` at both ends), XLSX (a ZIP
holding ``[Content_Types].xml`` and ``xl/workbook.xml``), otherwise CSV text. Every format is
read in chunks of ``chunk_rows`` rows and every value is converted with polars, column by column:

- whole numbers: digits with an optional sign (``12``, ``-3``, ``+7``; ``12.0`` too, as Excel and
  pandas write whole numbers); not ``1.5``, ``1e3`` or ``12,345``; at most 2^63 - 1;
- true or false: ``true``/``false``, ``1``/``0``, ``yes``/``no`` in any letter case;
- dates and times: ``YYYY-MM-DD HH:MM``, ``YYYY-MM-DD HH:MM:SS`` or with a fraction of a second,
  with a space or ``T`` between date and time, local time with no time zone;
- ``period``: ``YYYY-MM``, ``YYYY-MM-01`` or the first of the month as a date (an Excel date
  cell, a Parquet date or midnight timestamp) becomes ``YYYY-MM``; anything else is left as it is
  for the schema's pattern and period checks to report;
- an empty cell is null (the schema then says the value must not be empty).

Parquet columns of other types are converted where the meaning is certain (any integer type to
whole numbers, integral floats, 0/1 to booleans, dates to timestamps, anything to text). Times
with a time zone are refused: the datasets hold local clock times, and turning an aware time into
naive UTC would move summer times by an hour and could move an arrival into another month.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeAlias

import fastexcel
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from schemas.model import Column, Dataset

Format: TypeAlias = Literal["csv", "parquet", "xlsx"]
# What the content was found to be; only the first three can be read.
_Kind: TypeAlias = Literal["csv", "parquet", "xlsx", "xls", "zip", "binary", "utf16", "empty"]

# XLSX is read whole into memory by its reader, so its size is bounded here; big returns come as
# CSV or Parquet, which are streamed. A 200,000-row patient-level sheet is about 11 MiB zipped
# and 110 MiB of XML, and took 260 MB of memory to read.
XLSX_MAX_BYTES = 50 * 1024 * 1024
# Zip bomb defence, checked on the central directory before the reader sees the file and then on
# the actual inflated bytes (a directory can lie about sizes).
XLSX_MAX_UNCOMPRESSED = 256 * 1024 * 1024
XLSX_MAX_TOTAL_RATIO = 100
XLSX_MAX_MEMBER_RATIO = 100
XLSX_RATIO_FLOOR = 1024 * 1024  # members smaller than this may compress as well as they like
XLSX_MAX_MEMBERS = 1_000
# More columns than this cannot be a return of any dataset; it bounds the CSV reader's type map.
MAX_COLUMNS = 1_000
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
# Values are quoted in error records up to this many characters.
VALUE_CHARS = 100

# pyarrow's streaming CSV reader keeps dozens of blocks in flight (about 40 MiB of memory with
# 1 MiB blocks, 100 MiB with 4 MiB). With 256 KiB blocks the validator's stage takes as long on
# 2 cores (the reader is not its slowest part) and peaks 50 MiB lower on 1M ECDS rows.
_CSV_BLOCK_BYTES = 256 * 1024
_SNIFF_BYTES = 64 * 1024
_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
    ".xls": "xls",
}
_CONTENT_WORDS: dict[str, str] = {
    "csv": "CSV text",
    "parquet": "Parquet",
    "xlsx": "an XLSX workbook",
    "xls": "an Excel 97-2003 workbook (.xls)",
    "zip": "a ZIP archive that is not an XLSX workbook",
}
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_UTF8_BOM = b"\xef\xbb\xbf"

_WHOLE = r"^[+-]?[0-9]+(\.0*)?$"
_THOUSANDS = r"^[+-]?[0-9]{1,3}(,[0-9]{3})+$"
_SCIENTIFIC = r"^[+-]?[0-9.]+[eE][+-]?[0-9]+$"
_TRUTH: dict[str, bool] = {"true": True, "false": False, "1": True, "0": False}
_TRUTH |= {"yes": True, "no": False}
# The forms written by most exports, tried first; the lenient forms only on what they miss.
_TRUTH_FAST = _TRUTH | {k.upper(): v for k, v in _TRUTH.items()} | {"True": True, "False": False}
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
)
_TIME_ZONE = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
# The first of a month, as text, an Excel date cell or a midnight timestamp.
_FIRST_OF_MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])(-01([ T]00:00(:00(\.0+)?)?)?)?$"
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One problem with a submitted file: row is the 1-based data row, None for the whole file."""

    row: int | None
    column: str | None
    check: str
    value: str | None
    message: str


class FileError(Exception):
    """The file cannot be read as a return of the dataset; ``errors`` say why."""

    def __init__(self, *errors: ErrorRecord) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors
        # The data rows counted, where the file could be read but not taken as the dataset
        # (a wrong header or column type); None where it could not be read at all.
        self.rows: int | None = None


def file_error(check: str, message: str, *, column: str | None = None) -> FileError:
    """A FileError with one file-level record."""
    return FileError(ErrorRecord(row=None, column=column, check=check, value=None, message=message))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows of the file converted to the dataset's columns and types.

    ``offset`` is the number of data rows before the chunk. ``cast_errors`` has one row per cell
    that would not convert (then null in ``frame``): ``index`` (0-based in the chunk), ``column``,
    ``value`` (the original text) and ``message``.
    """

    offset: int
    frame: pl.DataFrame
    cast_errors: pl.DataFrame
    # True when ``frame`` holds exactly the file's own rows, nothing converted (asked of a
    # Parquet file stored as the dataset is: see ReturnReader.compare_with_file).
    as_stored: bool = False


@dataclass(frozen=True, slots=True)
class RaggedRow:
    """A CSV row with more or fewer fields than the header, left out of the chunks."""

    fields: int
    text: str
    # Where it is (1-based), once located by a second read: pyarrow does not say.
    row: int | None = None
    line: int | None = None


_CAST_ERRORS_SCHEMA = {
    "index": pl.Int64,
    "column": pl.String,
    "value": pl.String,
    "message": pl.String,
}


# ---------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------


def detect_format(path: Path, *, filename: str) -> Format:
    """The file's format from its content; FileError if unreadable or its name says otherwise."""
    kind = _sniff(path)
    if kind == "empty":
        raise file_error("empty_file", "the file is empty")
    named = _EXTENSIONS.get(Path(filename).suffix.lower())
    if kind == "utf16":
        raise file_error("encoding", "the file is UTF-16 text; save it as CSV UTF-8")
    if kind == "binary":
        if named in (None, "csv"):
            raise file_error(
                "format", "the file is not a CSV text file: it holds binary data of an unknown kind"
            )
        raise file_error(
            "format",
            f"the file is named {filename} but its content is not {_CONTENT_WORDS[named]}:"
            " it holds binary data of an unknown kind",
        )
    if named is not None and named != kind:
        raise file_error(
            "format", f"the file is named {filename} but its content is {_CONTENT_WORDS[kind]}"
        )
    if kind == "xls":
        raise file_error(
            "format",
            "the file is an Excel 97-2003 workbook (.xls), which is not accepted;"
            " save it as an Excel workbook (.xlsx) or as CSV UTF-8",
        )
    if kind == "zip":
        raise file_error(
            "format",
            "the file is a ZIP archive but not an XLSX workbook; send CSV, Parquet or XLSX",
        )
    return kind


def _sniff(path: Path) -> _Kind:
    """What the content is, from its first bytes (and last bytes for Parquet)."""
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
        if not head:
            return "empty"
        if head.startswith(b"PAR1"):
            # Truncated Parquet still starts with its magic; the reader reports the damage.
            return "parquet"
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _sniff_zip(path)
        if head.startswith(_OLE2_MAGIC):
            return "xls"
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "utf16"
        text = head.removeprefix(_UTF8_BOM)
        if not text.strip():
            # Whitespace (or a BOM) so far: empty unless something follows further on.
            while block := file.read(1024 * 1024):
                if block.strip():
                    text = block
                    break
            else:
                return "empty"
    if b"\x00" in text:
        return "binary"
    controls = sum(text.count(bytes([code])) for code in range(32) if code not in (9, 10, 12, 13))
    return "binary" if controls > len(text) // 100 else "csv"


def _sniff_zip(path: Path) -> _Kind:
    """xlsx for a ZIP holding a workbook, otherwise zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return "zip"
    return "xlsx" if {"[Content_Types].xml", "xl/workbook.xml"} <= names else "zip"


# ---------------------------------------------------------------------------
# Sources: a header and raw Arrow batches, one per format
# ---------------------------------------------------------------------------


_COUNT_ROWS = 65_536  # rows a table when a refused file's rows are counted


class _Source:
    """A file's header names and its data rows as Arrow tables, in file column order."""

    header: list[str]

    def tables(self, rows: int) -> Iterator[pa.Table]:
        """Data rows in tables of ``rows`` rows (the last may be shorter)."""
        raise NotImplementedError

    def check_types(self, positions: Sequence[int], columns: Sequence[Column]) -> None:
        """FileError if a column's stored type cannot hold the dataset's type."""

    def count_rows(self) -> int:
        """The data rows (read through to the end: only for a file that is refused)."""
        return sum(table.num_rows for table in self.tables(_COUNT_ROWS))

    def close(self) -> None:
        """Release the file."""


class _CsvSource(_Source):
    """CSV through pyarrow's streaming reader, every cell as text."""

    def __init__(self, path: Path, *, max_ragged: int) -> None:
        self._path = path
        self._max_ragged = max_ragged
        self.ragged: list[RaggedRow] = []
        self.ragged_count = 0
        # Column names are taken as the first data row, so the header is parsed by the same
        # rules as the rows (quotes, BOM) and every column is read as text whatever its name.
        self._reader = self._guard(
            lambda: pa_csv.open_csv(
                path,
                read_options=pa_csv.ReadOptions(
                    autogenerate_column_names=True, block_size=_CSV_BLOCK_BYTES
                ),
                parse_options=pa_csv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=self._on_ragged
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={f"f{i}": pa.string() for i in range(MAX_COLUMNS + 1)},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        )
        try:
            first = self._next_batch()
            if first is None:
                raise file_error("empty_file", "the file is empty")
            if first.num_columns > MAX_COLUMNS:
                raise file_error("extra_column", f"the header has {first.num_columns} columns")
        except FileError:
            self._reader.close()
            raise
        self.header = [column[0].as_py() for column in first.columns]
        self._first = first.slice(1)

    def _on_ragged(self, row: pa_csv.InvalidRow) -> str:
        """Skip a row with the wrong number of fields, remembering the first few."""
        # Reading goes on so that the other errors are found too; the rows are located later.
        self.ragged_count += 1
        if len(self.ragged) < self._max_ragged:
            self.ragged.append(RaggedRow(fields=row.actual_columns, text=row.text))
        return "skip"

    def _next_batch(self) -> pa.RecordBatch | None:
        """The next batch from the reader, with read errors turned into FileErrors."""
        try:
            return self._guard(self._reader.read_next_batch)
        except StopIteration:
            return None

    def _guard(self, read: Callable[[], pa.RecordBatch]) -> pa.RecordBatch:
        """Run a pyarrow read, turning its errors into one file-level error."""
        try:
            return read()
        except pa.ArrowInvalid as error:
            if "UTF8" in str(error) or "UTF-8" in str(error):
                raise self._encoding_error() from error
            raise file_error("csv", f"the file could not be read as CSV: {error}") from error

    def _encoding_error(self) -> FileError:
        """The error for text that is not UTF-8, naming the first bad byte and its line."""
        found = first_invalid_utf8(self._path)
        if found is None:
            return file_error("encoding", "the file is not UTF-8 text; save it as CSV UTF-8")
        byte, line = found
        return file_error(
            "encoding",
            f"the file is not UTF-8 text: byte 0x{byte:02X} at line {line}; save it as CSV UTF-8",
        )

    def tables(self, rows: int) -> Iterator[pa.Table]:
        """Data rows in tables of ``rows`` rows."""
        return _rebatch(self._batches(), rows)

    def count_rows(self) -> int:
        """The data rows, those with the wrong number of fields too."""
        return super().count_rows() + self.ragged_count

    def _batches(self) -> Iterator[pa.RecordBatch]:
        yield self._first
        while (batch := self._next_batch()) is not None:
            yield batch

    def close(self) -> None:
        """Release the file."""
        self._reader.close()


class _ParquetSource(_Source):
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
            if (problem := _type_problem(schema.field(position).type, column)) is not None
        ]
        if problems:
            raise FileError(*problems)

    def tables(self, rows: int) -> Iterator[pa.Table]:
        """Data rows in tables of ``rows`` rows."""
        return _rebatch(self._batches(rows), rows)

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


class _XlsxSource(_Source):
    """The first sheet of an XLSX workbook, through fastexcel (calamine), every cell as text."""

    def __init__(self, path: Path) -> None:
        check_xlsx_limits(path)
        try:
            sheet = fastexcel.read_excel(path).load_sheet(
                0, header_row=None, dtypes="string", skip_whitespace_tail_rows=True
            )
            table = sheet.to_arrow()
        except Exception as error:  # fastexcel raises its own error types for damaged workbooks
            raise file_error("format", f"the XLSX workbook could not be read: {error}") from error
        if table.num_rows == 0:
            raise file_error("empty_file", "the file is empty: its first sheet has no cells")
        header = [table.column(i)[0].as_py() or "" for i in range(table.num_columns)]
        data = table.slice(1)
        # Cells formatted but left empty to the right of the table come back as unnamed, empty
        # columns; they are not the trust's data.
        while (
            header
            and not header[-1].strip()
            and data.column(len(header) - 1).null_count == data.num_rows
        ):
            header.pop()
        self.header = header
        self._data = data.select(list(range(len(header))))

    def tables(self, rows: int) -> Iterator[pa.Table]:
        """Data rows in tables of ``rows`` rows."""
        for start in range(0, self._data.num_rows, rows):
            yield self._data.slice(start, rows)


def check_xlsx_limits(path: Path) -> None:
    """FileError if the workbook is too big or could be a zip bomb; nothing is extracted."""
    size = path.stat().st_size
    if size > XLSX_MAX_BYTES:
        raise file_error(
            "too_large",
            f"the XLSX workbook is {size / 2**20:.0f} MiB; the limit is"
            f" {XLSX_MAX_BYTES // 2**20} MiB: send large returns as CSV or Parquet",
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise file_error("format", f"the XLSX workbook is damaged: {error}") from error
    unsafe = "the XLSX workbook was refused as unsafe to open (a possible zip bomb): "
    if len(members) > XLSX_MAX_MEMBERS:
        raise file_error("unsafe_zip", unsafe + f"it has {len(members)} parts")
    total = sum(member.file_size for member in members)
    limit = min(XLSX_MAX_UNCOMPRESSED, XLSX_MAX_TOTAL_RATIO * size)
    if total > limit:
        raise file_error(
            "unsafe_zip", unsafe + f"it would expand to {total:,} bytes (limit {limit:,})"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > XLSX_RATIO_FLOOR and ratio > XLSX_MAX_MEMBER_RATIO:
            raise file_error(
                "unsafe_zip", unsafe + f"{member.filename} is compressed {ratio:,.0f} to 1"
            )
    with path.open("rb") as file:
        for member in members:
            if not _inflates_within(file, member):
                raise file_error(
                    "unsafe_zip",
                    unsafe + f"{member.filename} expands to more than its declared size",
                )


def _inflates_within(file: io.BufferedReader, member: zipfile.ZipInfo) -> bool:
    """Whether the member's data inflates to no more than its declared size (nothing is kept)."""
    file.seek(member.header_offset)
    local = file.read(30)
    if len(local) < 30 or not local.startswith(b"PK\x03\x04"):
        return False
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    file.seek(member.header_offset + 30 + name_length + extra_length)
    if member.compress_type == zipfile.ZIP_STORED:
        return member.compress_size <= member.file_size
    if member.compress_type != zipfile.ZIP_DEFLATED:
        return False
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    left, produced = member.compress_size, 0
    try:
        while left > 0 and not inflater.eof:
            data = file.read(min(left, 1024 * 1024))
            if not data:
                break
            left -= len(data)
            while data and not inflater.eof:
                # Inflate in bounded steps, so a bomb is caught before it uses memory.
                produced += len(inflater.decompress(data, 1024 * 1024))
                if produced > member.file_size:
                    return False
                data = inflater.unconsumed_tail
    except zlib.error:
        return False
    return True


def _rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The same rows regrouped into tables of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


# ---------------------------------------------------------------------------
# The header
# ---------------------------------------------------------------------------


def match_header(names: Sequence[str | None], dataset: Dataset) -> list[int]:
    """The file position of each dataset column; FileError naming every mismatch."""
    cleaned = [(name or "").replace("\ufeff", "").strip() for name in names]
    errors: list[ErrorRecord] = []
    seen: dict[str, int] = {}
    for name in cleaned:
        seen[name] = seen.get(name, 0) + 1
    wanted = [column.name for column in dataset.columns]
    missing = [name for name in wanted if name not in seen]
    extra = [name for name in dict.fromkeys(cleaned) if name not in wanted]
    # A header name that is the start or end of exactly one missing column's name, and the only
    # such name for it (NHS England's published A&E data calls department_type "type").
    shortened = {
        short: fits[0]
        for short in extra
        if len(fits := [name for name in missing if _part_of(short, name)]) == 1
        and sum(_part_of(other, fits[0]) for other in extra) == 1
    }
    for name in missing:
        message = f"the column {name} is missing"
        near = [other for other in extra if _loose(other) == _loose(name)]
        part = [short for short, full in shortened.items() if full == name]
        if near:
            message += f" (the file has {near[0]!r}: column names must match exactly)"
        elif part:
            message += f" (the file has {part[0]!r}: if that is it, rename it {name})"
        errors.append(_header_error(name, "missing_column", message))
    for position, name in enumerate(cleaned):
        if name in extra and cleaned.index(name) == position:
            if not name:
                message = f"column {position + 1} of the header has no name"
                errors.append(_header_error(None, "extra_column", message))
                continue
            message = f"{name} is not a column of {dataset.code}"
            near = [other for other in missing if _loose(other) == _loose(name)]
            near = near or ([shortened[name]] if name in shortened else [])
            separator = next((s for s in (";", "\t", "|") if s in name), None)
            if near:
                message += f"; did you mean {near[0]}?"
            elif separator is not None and len(cleaned) == 1:
                # A semicolon-separated export (common where a comma is the decimal mark).
                message += f"; the file seems to separate values by {separator!r}: use commas"
            else:
                message += f"; its columns are {_names(wanted)}"
            errors.append(_header_error(name, "extra_column", message))
    for name, count in seen.items():
        if count > 1 and name in wanted:
            message = f"the column {name} appears {count} times in the header"
            errors.append(_header_error(name, "duplicate_column", message))
    if errors:
        raise FileError(*errors)
    return [cleaned.index(name) for name in wanted]


def _part_of(short: str, name: str) -> bool:
    """Whether a header name is the start or end of a column's name (type: department_type)."""
    short, name = _loose(short), _loose(name)
    return len(short) >= 3 and short != name and (name.startswith(short) or name.endswith(short))


def _loose(name: str) -> str:
    """A column name compared without letter case, spaces or underscores, to suggest a fix."""
    return re.sub(r"[\s_-]+", "", name).lower()


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _header_error(column: str | None, check: str, message: str) -> ErrorRecord:
    return ErrorRecord(row=None, column=column, check=check, value=None, message=message)


# ---------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------


class ReturnReader:
    """A file of a known format (see detect_format) opened as a return of one dataset."""

    def __init__(
        self,
        path: Path,
        *,
        file_format: Format,
        dataset: Dataset,
        chunk_rows: int,
        max_errors: int,
    ) -> None:
        self.format = file_format
        self._path = path
        self._dataset = dataset
        self._chunk_rows = max(chunk_rows, 1)
        self._source = self._open(max_errors)
        try:
            self._positions = match_header(self._source.header, dataset)
            self._source.check_types(self._positions, dataset.columns)
        except FileError as error:
            error.rows = self._count_rows()
            self._source.close()
            raise
        self.rows_read = 0
        self.compare_with_file = False

    def stored_as(self, schema: pa.Schema) -> bool:
        """True if the file is Parquet whose columns, in order, read as ``schema`` (so that,
        if no value needs converting, the file itself is what the store would hold)."""
        return (
            isinstance(self._source, _ParquetSource)
            and self._positions == list(range(len(self._positions)))
            and self._source.arrow_schema.equals(schema)
        )

    def _count_rows(self) -> int | None:
        """The data rows of a file refused for its header or types, as API.md reports them;
        None if the rest of the file cannot be read either."""
        try:
            return self._source.count_rows()
        except FileError:
            return None

    def _open(self, max_errors: int) -> _Source:
        if self.format == "parquet":
            return _ParquetSource(self._path)
        if self.format == "xlsx":
            return _XlsxSource(self._path)
        return _CsvSource(self._path, max_ragged=max_errors)

    def __enter__(self) -> ReturnReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._source.close()

    def chunks(self) -> Iterator[Chunk]:
        """The data rows as typed chunks; FileError if the file turns out to be unreadable."""
        return self.converted(self.tables())

    def tables(self) -> Iterator[pa.Table]:
        """The data rows as text (or as stored), ``chunk_rows`` at a time, in the dataset's order.

        With ``converted`` it is ``chunks`` in two steps, which may run on two threads.
        """
        names = [column.name for column in self._dataset.columns]
        for table in self._source.tables(self._chunk_rows):
            yield table.select(self._positions).rename_columns(names)

    def converted(self, tables: Iterable[pa.Table]) -> Iterator[Chunk]:
        """Tables from ``tables`` converted to the dataset's types, in order."""
        for table in tables:
            frame, cast_errors = cast_table(table, self._dataset)
            as_stored = (
                self.compare_with_file
                and cast_errors.is_empty()
                and frame.equals(pl.from_arrow(table))  # type: ignore[arg-type]
            )
            chunk = Chunk(
                offset=self.rows_read, frame=frame, cast_errors=cast_errors, as_stored=as_stored
            )
            self.rows_read += frame.height
            yield chunk

    @property
    def ragged(self) -> list[RaggedRow]:
        """The first CSV rows left out for having the wrong number of fields."""
        return self._source.ragged if isinstance(self._source, _CsvSource) else []

    @property
    def ragged_count(self) -> int:
        """How many CSV rows were left out for having the wrong number of fields."""
        return self._source.ragged_count if isinstance(self._source, _CsvSource) else 0

    @property
    def header_width(self) -> int:
        """The number of columns in the file's header."""
        return len(self._source.header)

    def locate_ragged(self) -> list[RaggedRow]:
        """The ragged CSV rows with their rows and lines, by reading the file again."""
        return locate_ragged(self._path, width=self.header_width, count=self.ragged_count)


def locate_ragged(path: Path, *, width: int, count: int) -> list[RaggedRow]:
    """The first ``count`` records without ``width`` fields, with their data rows and lines."""
    # pyarrow does not say where a skipped row was once values may hold newlines, so the rows are
    # found by a second, slower read; it only happens for a file that is rejected anyway.
    found: list[RaggedRow] = []
    with path.open(encoding="utf-8-sig", newline="") as text:
        records = csv.reader(text)
        row, line = 0, 1
        try:
            for fields in records:
                if fields and row > 0 and len(fields) != width:
                    preview = ",".join(fields)[:VALUE_CHARS]
                    found.append(RaggedRow(fields=len(fields), text=preview, row=row, line=line))
                    if len(found) >= count:
                        break
                if fields:
                    row += 1
                line = records.line_num + 1
        except (csv.Error, UnicodeDecodeError):
            pass  # a field beyond csv's size limit: the rows found so far are still right
    return found


def first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(byte, 1-based line) of the first byte that is not UTF-8, reading in blocks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with path.open("rb") as file:
        while True:
            block = file.read(1024 * 1024)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                # error.object is the bytes held over from the last block and then this block.
                held = len(error.object) - len(block)
                position = error.start - held
                bad = error.object[error.start]
                line = lines + block[: max(position, 0)].count(b"\n") + 1
                return bad, line
            if not block:
                return None
            lines += block.count(b"\n")


# ---------------------------------------------------------------------------
# Conversion to the dataset's types
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Converted:
    values: pl.Series
    # Positions (0-based) that would not convert, with what to say about each.
    bad_index: pl.Series | None = None
    bad_message: pl.Series | None = None


def cast_table(table: pa.Table, dataset: Dataset) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The table's columns in the dataset's order and types, and the cells that would not convert.

    The table's columns are named as the dataset's. They are converted one at a time, so that
    only one column's polars copy of the text is alive at once, next to the Arrow chunk.
    """
    columns: list[pl.Series] = []
    errors: list[pl.DataFrame] = []
    for column in dataset.columns:
        parsed = _parsed_by_arrow(table.column(column.name), column)
        if parsed is not None:
            columns.append(parsed)
            continue
        source = pl.Series(column.name, table.column(column.name))
        converted = convert(source, column, period=column.name == "period")
        columns.append(converted.values.alias(column.name))
        if converted.bad_index is not None and converted.bad_message is not None:
            errors.append(
                pl.DataFrame(
                    {
                        "index": converted.bad_index.cast(pl.Int64),
                        "column": pl.repeat(column.name, len(converted.bad_index), eager=True),
                        "value": _as_text(source.gather(converted.bad_index)).str.slice(
                            0, VALUE_CHARS
                        ),
                        "message": converted.bad_message,
                    },
                    schema=_CAST_ERRORS_SCHEMA,
                )
            )
    frame = pl.DataFrame(columns)
    if not errors:
        return frame, pl.DataFrame(schema=_CAST_ERRORS_SCHEMA)
    cast_errors = pl.concat(errors).with_columns(
        message=pl.concat_str("column", pl.lit(" "), "message")
    )
    return frame, cast_errors


# Arrow parses text in the common forms of whole numbers, times and true/false three to four times
# faster than polars converts and parses it. It is used where it accepts nothing that the rules
# above refuse: whole numbers with no x or X (Arrow reads 0x1F as hex), times when every one has
# exactly 19 characters (YYYY-MM-DD HH:MM:SS or with a T; Arrow also reads a date alone as
# midnight, 10 characters), and true/false (Arrow takes true, false, 1, 0 in any letter case, a
# subset of the rules). A chunk Arrow cannot parse whole (an empty cell, 12.0, yes, a space)
# goes the polars way, which explains every cell that fails.
_ARROW_TARGETS: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "datetime": pa.timestamp("us"),
    "boolean": pa.bool_(),
}
_COMMON_DATETIME_CHARS = 19


def _parsed_by_arrow(array: pa.Array | pa.ChunkedArray, column: Column) -> pl.Series | None:
    """The text column parsed by Arrow, or None where the polars way must take it."""
    target = _ARROW_TARGETS.get(column.dtype)
    text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    if target is None or not text:
        return None
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    if column.dtype == "integer" and any(_holds_x(chunk) for chunk in chunks):
        return None
    if column.dtype == "datetime" and len(array):
        lengths = pc.min_max(pc.utf8_length(array))
        if lengths["min"].as_py() != _COMMON_DATETIME_CHARS or lengths["max"].as_py() != (
            _COMMON_DATETIME_CHARS
        ):
            return None
    try:
        parsed = pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pl.Series(column.name, parsed)


def _holds_x(chunk: pa.Array) -> bool:
    """Whether the string array's character data holds an x or an X (bytes beyond a slice too)."""
    data = chunk.buffers()[2]
    if data is None:
        return False
    return bool(np.any((np.frombuffer(data, dtype=np.uint8) | 0x20) == ord("x")))


def convert(source: pl.Series, column: Column, *, period: bool = False) -> _Converted:
    """One column converted to the column's type, with the positions that would not convert."""
    if _is_text(source.dtype):
        text = _missing_if_empty(source.cast(pl.String))
        values = text.to_frame().select(_strict(column, pl.first(), period=period)).to_series()
        if column.dtype == "string":
            return _Converted(values)
        return _retry(text, values, column)
    if source.dtype == pl.Null:
        return _Converted(pl.Series(source.name, [None] * len(source), dtype=column.polars_dtype))
    return _from_typed(source, column, period=period)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical, pl.Enum)


def _missing_if_empty(text: pl.Series) -> pl.Series:
    """An empty cell is a missing value, whatever the format wrote for it."""
    return pl.select(pl.when(text == "").then(None).otherwise(text)).to_series()


def _strict(column: Column, text: pl.Expr, *, period: bool) -> pl.Expr:
    """Text in the common form of the column's type, parsed (null where it does not parse)."""
    if column.dtype == "integer":
        return text.str.to_integer(strict=False)
    if column.dtype == "boolean":
        return text.replace_strict(_TRUTH_FAST, default=None, return_dtype=pl.Boolean)
    if column.dtype == "datetime":
        # The common form alone: polars parses it on a fast path, many times faster than a
        # format with an optional fraction (and a cache of repeated values only slows it down).
        return text.str.strptime(
            pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False, exact=True, cache=False
        )
    if column.dtype == "date":
        return text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, exact=True, cache=False)
    if period:
        return (
            pl.when(text.str.contains(_FIRST_OF_MONTH)).then(text.str.slice(0, 7)).otherwise(text)
        )
    return text


def _retry(text: pl.Series, values: pl.Series, column: Column) -> _Converted:
    """Retry the cells that failed the common form with the lenient forms; explain the rest."""
    failed = values.is_null() & text.is_not_null()
    if not failed.any():
        return _Converted(values)
    # Only the few cells that failed pay for the lenient forms (surrounding spaces and so on).
    index = failed.arg_true()
    stripped = text.gather(index).str.strip_chars()
    lenient, explain = _LENIENT[column.dtype]
    retried = lenient(stripped)
    values = values.scatter(index, retried)
    still = retried.is_null() & (stripped != "")
    bad = stripped.filter(still)
    return _Converted(values, bad_index=index.filter(still), bad_message=explain(bad))


def _lenient_integer(text: pl.Series) -> pl.Series:
    # Whole numbers written with a zero fraction (12.0), as Excel and pandas often do.
    whole = text.str.replace(r"^([+-]?[0-9]+)\.0*$", "$1")
    return whole.str.to_integer(strict=False)


def _integer_message(bad: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(bad.str.contains(_WHOLE))
        .then(
            pl.format("'{}' is too large for a whole number (the largest is {})", bad, _INT64_MAX)
        )
        .when(bad.str.contains(_THOUSANDS))
        .then(pl.format("'{}' is not a whole number: write it without thousands separators", bad))
        .when(bad.str.contains(_SCIENTIFIC))
        .then(pl.format("'{}' is not a whole number: write it out in digits", bad))
        .otherwise(pl.format("'{}' is not a whole number", bad))
    ).to_series()


def _lenient_boolean(text: pl.Series) -> pl.Series:
    return text.str.to_lowercase().replace_strict(_TRUTH, default=None, return_dtype=pl.Boolean)


def _boolean_message(bad: pl.Series) -> pl.Series:
    return pl.select(
        pl.format("'{}' is not true or false (write true or false, 1 or 0, yes or no)", bad)
    ).to_series()


def _lenient_datetime(text: pl.Series) -> pl.Series:
    parsed = [
        text.str.strptime(pl.Datetime("us"), form, strict=False, exact=True, cache=False)
        for form in _DATETIME_FORMATS
    ]
    return pl.select(pl.coalesce(parsed)).to_series()


def _datetime_message(bad: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(bad.str.contains(_TIME_ZONE))
        .then(pl.format("'{}' has a time zone: write the local date and time without one", bad))
        .otherwise(
            pl.format(
                "'{}' is not a date and time: write YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS", bad
            )
        )
    ).to_series()


def _lenient_date(text: pl.Series) -> pl.Series:
    return text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, exact=True, cache=False)


def _date_message(bad: pl.Series) -> pl.Series:
    return pl.select(pl.format("'{}' is not a date: write YYYY-MM-DD", bad)).to_series()


# For each type: the lenient parse of text that failed the common form, and what to say.
_LENIENT: dict[str, tuple[Callable[[pl.Series], pl.Series], Callable[[pl.Series], pl.Series]]] = {
    "integer": (_lenient_integer, _integer_message),
    "boolean": (_lenient_boolean, _boolean_message),
    "datetime": (_lenient_datetime, _datetime_message),
    "date": (_lenient_date, _date_message),
}


def _from_typed(source: pl.Series, column: Column, *, period: bool) -> _Converted:
    """A typed (Parquet) column converted to the column's type; _type_problem vetted the pair."""
    dtype = source.dtype
    if column.dtype == "string":
        if period and dtype.is_temporal():
            first = (source.dt.day() == 1) & (source.cast(pl.Datetime("us")).dt.time() == time())
            month = source.dt.strftime("%Y-%m")
            text = pl.select(pl.when(first).then(month).otherwise(_as_text(source))).to_series()
            return _Converted(text)
        return _Converted(_as_text(source))
    if column.dtype == "integer":
        if dtype.is_integer():
            values = source.cast(pl.Int64, strict=False)
            bad = values.is_null() & source.is_not_null()
            return _typed_failures(values, source, bad, "'{}' is too large for a whole number")
        if dtype.is_float():
            whole = source.is_finite() & (source == source.round(0)) & (source.abs() < 2.0**63)
            values = pl.select(pl.when(whole).then(source.cast(pl.Int64, strict=False))).to_series()
            bad = source.is_not_null() & ~whole
            return _typed_failures(values, source, bad, "'{}' is not a whole number")
        return convert(source.cast(pl.String), column)  # decimals, as text
    if column.dtype == "boolean":
        if dtype == pl.Boolean:
            return _Converted(source)
        values = pl.select(
            pl.when(source == 1).then(True).when(source == 0).then(False)
        ).to_series()
        bad = source.is_not_null() & values.is_null()
        return _typed_failures(values, source, bad, "'{}' is not true or false (1 or 0)")
    if column.dtype == "datetime":
        return _Converted(source.cast(pl.Datetime("us")))
    if dtype == pl.Date:
        return _Converted(source)
    midnight = source.dt.time() == time()
    values = pl.select(pl.when(midnight).then(source.dt.date())).to_series()
    bad = source.is_not_null() & ~midnight
    return _typed_failures(values, source, bad, "'{}' is not a date: it has a time of day")


def _typed_failures(values: pl.Series, source: pl.Series, bad: pl.Series, form: str) -> _Converted:
    if not bad.any():
        return _Converted(values)
    index = bad.arg_true()
    text = _as_text(source.gather(index))
    return _Converted(
        values, bad_index=index, bad_message=pl.select(pl.format(form, text)).to_series()
    )


def _type_problem(arrow_type: pa.DataType, column: Column) -> str | None:
    """Why a Parquet column of that type cannot hold the column, or None if it can."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_null(arrow_type):
        return None
    nested = pa.types.is_nested(arrow_type) or pa.types.is_map(arrow_type)
    if nested:
        return f"{column.name} holds lists or records ({arrow_type}); it must hold single values"
    temporal = pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
    aware = pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None
    if aware and column.dtype in ("datetime", "date"):
        return (
            f"{column.name} holds times with a time zone ({arrow_type.tz}); the dataset"
            " holds local clock times: send them without a time zone"
        )
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    text = text or pa.types.is_string_view(arrow_type)
    number = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
    accepted = {
        "string": True,
        "integer": text or number or pa.types.is_decimal(arrow_type),
        "boolean": text or pa.types.is_boolean(arrow_type) or pa.types.is_integer(arrow_type),
        "datetime": text or temporal,
        "date": text or temporal,
    }[column.dtype]
    if accepted:
        return None
    wanted = {
        "integer": "whole numbers",
        "boolean": "true or false",
        "datetime": "dates and times",
        "date": "dates",
    }[column.dtype]
    return f"{column.name} is stored as {arrow_type} in the Parquet file; it must hold {wanted}"


def _as_text(values: pl.Series) -> pl.Series:
    """Values as the text a person would write (times without trailing zero microseconds)."""
    if values.dtype == pl.String:
        return values
    if isinstance(values.dtype, pl.Datetime):
        return values.dt.to_string("%Y-%m-%d %H:%M:%S")
    if values.dtype == pl.Boolean:
        words = pl.when(values).then(pl.lit("true")).when(~values).then(pl.lit("false"))
        return pl.select(words).to_series()
    return values.cast(pl.String)
