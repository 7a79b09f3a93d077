"""XLSX: the sizes a workbook's XML declares, checked in bounded memory before it is read.

calamine (fastexcel's reader) sizes its buffers from what the XML says, not from what it holds:
a sheet holding a cell at XFD1048576 makes it allocate a grid of every cell up to there (16,384
columns by 1,048,576 rows at 32 bytes a cell: 512 GiB), and a shared-strings table declaring
four billion strings a vector of 96 GB. The allocation fails and the Rust allocator aborts the
whole process, which no ``except`` can catch. So every part of the workbook is streamed through
expat here, a megabyte at a time, and each declared size is checked against a limit first:

- the bounding box of the cells (explicit ``r`` references, and the implicit positions calamine
  gives cells and rows without one), the ``<dimension>``, and every reference within the format's
  own last cell, XFD1048576;
- every ``count`` and ``uniqueCount`` (shared strings, merged cells, ...), and the stricter
  counts of the styles part.

A part that is not XML (an image) is skipped; a part that starts as XML and then is not well
formed, or that has a DOCTYPE (no workbook writer makes one: entities could make expat and
calamine see different text), is refused.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Sequence
from typing import NoReturn
from xml.parsers import expat

import polars as pl

from services.validator.reading.records import file_error

# The largest sheet a return may span, in cells (rows x columns of the cells' bounding box).
# calamine keeps 32 bytes a cell of that box before a value is converted: 10M cells are 320 MB.
# A 200,000-row patient-level return is 2.4M cells (12 columns, 88 MB of XML); the 256 MiB of
# XML a workbook may hold (xlsx_source.XLSX_MAX_UNCOMPRESSED) fits at most about 7M such cells.
XLSX_MAX_CELLS = 10_000_000
# Counts in the styles part (fonts, fills, cell formats): Excel itself allows 64,000 formats.
XLSX_MAX_STYLES = 65_536
# The last cell of any sheet (XFD1048576), from the format.
SHEET_ROWS = 1_048_576
SHEET_COLUMNS = 16_384

_BLOCK = 1024 * 1024
# What a cell holds (its value, formula, inline string and its runs): nothing declared there.
_WITHIN_CELLS = frozenset({"v", "f", "is", "t", "r", "rPr"})
_CELL_BYTES = 32  # calamine's grid, per cell (measured from its failed allocations)
_REFERENCE = re.compile(r"^\s*\$?([A-Za-z]{1,3})\$?([0-9]{1,7})\s*$")
_UNSAFE = "the XLSX workbook was refused as unsafe to read: "
_SEND_AS = "send large returns as CSV or Parquet"


def check_declared_sizes(archive: zipfile.ZipFile, members: Sequence[zipfile.ZipInfo]) -> None:
    """FileError if any part of the workbook declares more than the limits allow."""
    for member in members:
        if not member.is_dir():
            _PartScan(member.filename).scan(archive, member)


def cell_name(column: int, row: int) -> str:
    """The A1 name of a cell (1-based column and row)."""
    letters = ""
    while column > 0:
        column, digit = divmod(column - 1, 26)
        letters = chr(ord("A") + digit) + letters
    return f"{letters}{row}"


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


class _PartScan:
    """One part's elements, in order: the cells' positions as calamine would give them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root: str | None = None
        self.row = 0  # the current row (1-based; 0 before the first)
        self.column = 0  # the last cell's column in the current row
        self.max_row = 0
        self.max_column = 0
        self._local: dict[str, str] = {}
        # References of the cells met since the last flush, placed together (_flush), and
        # where the current row's start among them.
        self._references: list[str] = []
        self._row_start = 0

    def scan(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
        parser = expat.ParserCreate()
        handler = self._handler()

        def first(name: str, attributes: dict[str, str]) -> None:
            self.root = name.rpartition(":")[2]
            parser.StartElementHandler = handler
            handler(name, attributes)

        parser.StartElementHandler = first
        parser.StartDoctypeDeclHandler = self._doctype
        try:
            with archive.open(member) as part:
                while block := part.read(_BLOCK):
                    parser.Parse(block, False)
                    self._flush()
                parser.Parse(b"", True)
                self._flush()
        except expat.ExpatError as error:
            if self.root is None:
                return  # not XML (an image, a binary part): calamine does not parse it either
            raise file_error(
                "format",
                f"the XLSX workbook is damaged: {self.name} is not well-formed XML"
                f" (line {error.lineno})",
            ) from error
        except (zipfile.BadZipFile, OSError) as error:
            raise file_error("format", f"the XLSX workbook is damaged: {error}") from error
        self._check_box()

    def _doctype(self, *_args: object) -> None:
        raise file_error("unsafe_xlsx", _UNSAFE + f"{self.name} has a DOCTYPE")

    def _handler(self) -> Callable[[str, dict[str, str]], None]:
        """expat's handler of start tags. It is called for each of millions of elements, so what
        a cell holds returns at once, a plain row number is taken here, and a cell's reference
        is only kept, to be placed with the others of its block by polars (_flush); the rest
        goes to ``_start``."""
        references = self._references
        keep = references.append
        start = self._start

        def handler(name: str, attributes: dict[str, str]) -> None:
            if name in _WITHIN_CELLS:
                return
            if name == "c":
                reference = attributes.get("r")
                if reference is not None:
                    keep(reference)
                    return
            elif name == "row":
                number = attributes.get("r", "")
                if number.isdecimal() and 0 < len(number) <= 7 and int(number) <= SHEET_ROWS:
                    self.row, self.column, self._row_start = int(number), 0, len(references)
                    return
            start(name, attributes)

        return handler

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        local = self._local.get(name)
        if local is None:
            local = self._local[name] = name.rpartition(":")[2]
        if local == "c":
            reference = attributes.get("r")
            if reference is None:
                self._implicit_cell()
            else:
                self._references.append(reference)
        elif local == "row":
            self._row(attributes.get("r"))
        elif local == "dimension":
            self._dimension(attributes.get("ref", ""))
        if "count" in attributes or "uniqueCount" in attributes:
            self._counts(local, attributes)

    def _row(self, reference: str | None) -> None:
        if reference is None:
            self.row += 1
        else:
            self.row = self._number(reference, f"a row numbered {reference[:20]!r}")
        self.column = 0
        self._row_start = len(self._references)
        if self.row > SHEET_ROWS:
            self._refuse(f"{self.name} has a row {self.row:,}, beyond the last of a sheet")

    def _flush(self) -> None:
        """Place the cells whose references were kept: the box grows to hold them, and the
        column of the last is where a next cell without a reference goes."""
        if not self._references:
            return
        references = pl.Series(self._references, dtype=pl.String)
        self._references.clear()  # (the row's start is used, then reset, below)
        parts = references.str.extract_groups(_REFERENCE.pattern).struct.unnest()
        letters, rows = parts.get_column("1"), parts.get_column("2").cast(pl.Int64)
        bad = letters.is_null()
        if bad.any():
            self._reference(references.filter(bad)[0])  # refused, naming it
        columns = {text: _column_number(text) for text in letters.unique().to_list()}
        row = rows.max()
        assert isinstance(row, int)
        column = max(columns.values())
        if column > SHEET_COLUMNS or row > SHEET_ROWS:
            far = (letters.replace_strict(columns, return_dtype=pl.Int64) > SHEET_COLUMNS) | (
                rows > SHEET_ROWS
            )
            self._place(*self._reference(references.filter(far)[0]))
        self._place(column, row)
        if len(references) > self._row_start:  # the last cell is in the current row
            self.column = columns[letters[-1]]
        self._row_start = 0

    def _implicit_cell(self) -> None:
        self._flush()  # the cell before it may be one whose reference was kept
        self.column += 1
        self._place(self.column, max(self.row, 1))

    def _place(self, column: int, row: int) -> None:
        if column > SHEET_COLUMNS or row > SHEET_ROWS:
            self._refuse(
                f"{self.name} has a cell at {cell_name(column, row)}, beyond the last cell"
                f" of a sheet ({cell_name(SHEET_COLUMNS, SHEET_ROWS)})"
            )
        if row > self.max_row:
            self.max_row = row
        if column > self.max_column:
            self.max_column = column

    def _dimension(self, reference: str) -> None:
        corners = [self._reference(corner) for corner in reference.split(":")[:2]]
        columns = max(column for column, _ in corners) - min(column for column, _ in corners) + 1
        rows = max(row for _, row in corners) - min(row for _, row in corners) + 1
        if rows * columns > XLSX_MAX_CELLS:
            self._refuse(
                f"{self.name} declares its dimension as {reference[:40]}"
                f" ({rows:,} rows by {columns:,} columns, {rows * columns:,} cells)"
                + self._cells_limit()
            )

    def _check_box(self) -> None:
        cells = self.max_row * self.max_column
        if cells > XLSX_MAX_CELLS:
            self._refuse(
                f"{self.name} has cells from A1 to {cell_name(self.max_column, self.max_row)}"
                f" ({self.max_row:,} rows by {self.max_column:,} columns, {cells:,} cells)"
                + self._cells_limit()
            )

    def _counts(self, element: str, attributes: dict[str, str]) -> None:
        styles = self.root == "styleSheet"
        limit = XLSX_MAX_STYLES if styles else XLSX_MAX_CELLS
        for attribute in ("count", "uniqueCount"):
            value = attributes.get(attribute, "").strip()
            # Not a number: the reader ignores it. Very long: far over any limit.
            if not value.isdigit():
                continue
            count = int(value) if len(value) <= 20 else 10**20
            if count > limit:
                what = "styles" if styles else "items"
                self._refuse(
                    f"{self.name} declares {count:,} {what} in its {element} ({attribute});"
                    f" the limit is {limit:,}"
                )

    def _reference(self, reference: str) -> tuple[int, int]:
        """(column, row) of an A1 reference; refused if it is not one."""
        found = _REFERENCE.match(reference)
        if found is None:
            self._refuse(f"{self.name} has a cell reference {reference[:20]!r} that is not A1")
        return _column_number(found.group(1)), int(found.group(2))

    def _number(self, text: str, what: str) -> int:
        if not text.strip().isdigit() or len(text.strip()) > 9:
            self._refuse(f"{self.name} has {what}")
        return int(text)

    @staticmethod
    def _cells_limit() -> str:
        grid = XLSX_MAX_CELLS * _CELL_BYTES // 10**6
        return (
            f"; the limit is {XLSX_MAX_CELLS:,} cells (its reader holds {_CELL_BYTES} bytes for"
            f" each cell of that box: {grid:,} MB at the limit): {_SEND_AS}"
        )

    def _refuse(self, reason: str) -> NoReturn:
        raise file_error("unsafe_xlsx", _UNSAFE + reason)
