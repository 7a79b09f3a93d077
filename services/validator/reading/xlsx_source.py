"""XLSX: bounded in size, checked for zip bombs and declared sizes, read in a child process.

Before its reader sees the workbook, its size, its zip directory, what its parts inflate to and
every size its XML declares (``xlsx_declared``) are checked. The reader (fastexcel, calamine)
then runs in a child process with a memory limit (``xlsx_child``): a reader that aborts on a
workbook nobody foresaw ends that process, and the return is refused with one plain error.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from services.validator.reading import xlsx_child
from services.validator.reading.records import file_error
from services.validator.reading.sources import Source
from services.validator.reading.xlsx_declared import check_declared_sizes

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
# The reader's process may use this much address space (pyarrow's and calamine's arenas, mostly
# reserved rather than used, and the grid of cells). A 200,000-row return (2.4M cells) peaks at
# 580 MB of it (230 MB resident); about the largest sheet the limits above let through, 7.7M
# cells of shared strings in 256 MiB of XML, at 1.98 GB (650 MB resident).
XLSX_READER_MEMORY = 4 * 1024**3
XLSX_READER_SECONDS = 300
_CHILD = Path(xlsx_child.__file__)
# How a reader out of memory ends: a MemoryError, the Rust allocator's abort, or the kernel's
# OOM killer.
_OUT_OF_MEMORY = {xlsx_child.EXIT_MEMORY, -signal.SIGABRT, -signal.SIGKILL}
_SEND_AS = "send large returns as CSV or Parquet"

log = logging.getLogger(__name__)


class XlsxSource(Source):
    """The first sheet of an XLSX workbook, through fastexcel (calamine), every cell as text."""

    def __init__(self, path: Path) -> None:
        check_xlsx_limits(path)
        table = read_first_sheet(path)
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


def read_first_sheet(path: Path) -> pa.Table:
    """The first sheet, every cell as text, read by fastexcel in a child process (xlsx_child)
    within XLSX_READER_MEMORY: if the reader aborts, that process ends, not this one."""
    with tempfile.TemporaryDirectory(prefix="drb-xlsx-") as directory:
        arrow_file = Path(directory) / "sheet.arrow"
        command = [sys.executable, "-I", str(_CHILD), str(path), str(arrow_file)]
        try:
            done = subprocess.run(  # noqa: S603 (our own script, the paths as arguments)
                [*command, str(XLSX_READER_MEMORY)],
                capture_output=True,
                timeout=XLSX_READER_SECONDS,
                # None of the broker's settings (database URL, tokens): it parses hostile input.
                env={"PATH": os.environ.get("PATH", ""), "RUST_BACKTRACE": "0"},
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise file_error(
                "too_large",
                f"the XLSX workbook could not be read within {XLSX_READER_SECONDS} seconds:"
                f" {_SEND_AS}",
            ) from error
        if done.returncode == xlsx_child.EXIT_READ:
            # Mapped, not copied: the table's buffers keep the mapping once the file is gone.
            return pa.ipc.open_file(pa.memory_map(str(arrow_file))).read_all()
    if done.returncode == xlsx_child.EXIT_UNREADABLE:
        message = done.stdout.decode(errors="replace")
        raise file_error("format", f"the XLSX workbook could not be read: {message}")
    log.warning(
        "the XLSX reader's process ended with %s; the workbook is refused", _ending(done.returncode)
    )
    if done.returncode in _OUT_OF_MEMORY:
        raise file_error(
            "too_large",
            f"the XLSX workbook could not be read within {XLSX_READER_MEMORY // 2**20:,} MiB of"
            f" memory: {_SEND_AS}",
        )
    ending = _ending(done.returncode)
    raise file_error("format", f"the XLSX workbook could not be read: its reader failed ({ending})")


def _ending(code: int) -> str:
    """How a process ended, in words: its exit code or the signal that ended it."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def check_xlsx_limits(path: Path) -> None:
    """FileError if the workbook is too big, could be a zip bomb, or declares sizes its reader
    cannot hold (xlsx_declared); nothing is extracted, the parts are streamed."""
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
    with zipfile.ZipFile(path) as archive:
        check_declared_sizes(archive, members)


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
