"""What reading a return yields: typed chunks, and errors at row or file level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

import polars as pl

Format: TypeAlias = Literal["csv", "parquet", "xlsx"]

# Values are quoted in error records up to this many characters.
VALUE_CHARS = 100


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


CAST_ERRORS_SCHEMA = {
    "index": pl.Int64,
    "column": pl.String,
    "value": pl.String,
    "message": pl.String,
}
