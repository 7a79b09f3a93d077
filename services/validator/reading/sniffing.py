"""A file's format from its content, never from its name."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal, TypeAlias

from services.validator.reading.records import Format, file_error

# What the content was found to be; only the first three can be read.
_Kind: TypeAlias = Literal["csv", "parquet", "xlsx", "xls", "zip", "binary", "utf16", "empty"]

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
