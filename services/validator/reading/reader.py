"""The reader: a return's chunks, whatever its format, and where CSV rows went wrong."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa

from schemas.model import Dataset
from services.validator.reading.conversion import cast_table
from services.validator.reading.csv_source import CsvSource, locate_ragged
from services.validator.reading.header import match_header
from services.validator.reading.parquet_source import ParquetSource
from services.validator.reading.records import Chunk, FileError, Format, RaggedRow
from services.validator.reading.sources import Source
from services.validator.reading.xlsx_source import XlsxSource

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
            isinstance(self._source, ParquetSource)
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

    def _open(self, max_errors: int) -> Source:
        if self.format == "parquet":
            return ParquetSource(self._path)
        if self.format == "xlsx":
            return XlsxSource(self._path)
        return CsvSource(self._path, max_ragged=max_errors)

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
        return self._source.ragged if isinstance(self._source, CsvSource) else []

    @property
    def ragged_count(self) -> int:
        """How many CSV rows were left out for having the wrong number of fields."""
        return self._source.ragged_count if isinstance(self._source, CsvSource) else 0

    @property
    def header_width(self) -> int:
        """The number of columns in the file's header."""
        return len(self._source.header)

    def locate_ragged(self) -> list[RaggedRow]:
        """The ragged CSV rows with their rows and lines, by reading the file again."""
        return locate_ragged(self._path, width=self.header_width, count=self.ragged_count)
