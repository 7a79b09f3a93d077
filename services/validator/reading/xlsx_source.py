"""XLSX: bounded in size and checked for zip bombs before its reader sees it."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import fastexcel
import pyarrow as pa

from services.validator.reading.records import file_error
from services.validator.reading.sources import Source

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


class XlsxSource(Source):
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
