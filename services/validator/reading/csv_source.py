"""CSV: pyarrow's streaming reader, every cell as text; ragged rows set aside."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from services.validator.reading.records import VALUE_CHARS, FileError, RaggedRow, file_error
from services.validator.reading.sources import MAX_COLUMNS, Source, rebatch

# pyarrow's streaming CSV reader keeps dozens of blocks in flight (about 40 MiB of memory with
# 1 MiB blocks, 100 MiB with 4 MiB). With 256 KiB blocks the validator's stage takes as long on
# 2 cores (the reader is not its slowest part) and peaks 50 MiB lower on 1M ECDS rows.
_CSV_BLOCK_BYTES = 256 * 1024


class CsvSource(Source):
    """CSV through pyarrow's streaming reader, every cell as text."""

    def __init__(self, path: Path, *, max_ragged: int) -> None:
        self._path = path
        self._max_ragged = max_ragged
        self.ragged: list[RaggedRow] = []
        self.ragged_count = 0
        nul = first_nul(path)
        if nul is not None:
            # pyarrow would read it into a value, which no database column can then hold.
            raise file_error(
                "encoding",
                f"the file holds a NUL byte (0x00) at line {nul}: it is not CSV text;"
                " save it as CSV UTF-8",
            )
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
            # Only the start is ever shown: a row may be hundreds of kilobytes long.
            text = row.text[:VALUE_CHARS]
            self.ragged.append(RaggedRow(fields=row.actual_columns, text=text))
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
            problem = str(error)
        # Raised outside the except block, so that no traceback keeps the half-open reader (and
        # its row handler) in a cycle: destroyed at interpreter exit, it aborts the process.
        if "UTF8" in problem or "UTF-8" in problem:
            raise self._encoding_error()
        if "straddling object straddles two block boundaries" in problem:
            raise file_error(
                "csv",
                f"the file could not be read as CSV: a row is longer than"
                f" {_CSV_BLOCK_BYTES // 1024} KiB (a quote that is never closed, or a line that"
                " never ends?)",
            )
        raise file_error("csv", f"the file could not be read as CSV: {problem}")

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
        return rebatch(self._batches(), rows)

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


def first_nul(path: Path) -> int | None:
    """The 1-based line of the first NUL byte, reading in blocks; None if there is none."""
    lines = 0
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            found = block.find(b"\0")
            if found >= 0:
                return lines + block.count(b"\n", 0, found) + 1
            lines += block.count(b"\n")
    return None


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
