"""A corpus of hostile returns, built by code at test time: none may end a process.

Each case is a small file (or one made big by streaming, as the CSV with a 100 MB line) that
once made a reader allocate without bound, or that probes a limit of the readers: XLSX
workbooks declaring huge sizes (dimension, coordinates, shared strings, styles), zip bombs,
Parquet footers that lie, CSV with a 100 MB line, NUL bytes or two encodings. ``CASES`` names
each with what the broker must answer: a rejection with one error of ``check`` (about the whole
file, or the data row ``row``), whose message holds ``says``.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PERIOD = "2024-01"
AE_HEADER = "period,org_code,department_type,attendances,breaches,admissions"

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PART_TYPES = {
    "/xl/workbook.xml": "sheet.main+xml",
    "/xl/worksheets/sheet1.xml": "worksheet+xml",
    "/xl/sharedStrings.xml": "sharedStrings+xml",
    "/xl/styles.xml": "styles+xml",
}


@dataclass(frozen=True)
class Case:
    """One hostile file: how to build it, and the one error it must be rejected with."""

    name: str
    filename: str
    build: Callable[[Path], None]
    check: str
    says: str
    # The data row the error names (None: the whole file).
    row: int | None = None


# ---------------------------------------------------------------------------
# XLSX
# ---------------------------------------------------------------------------


def workbook(
    path: Path,
    cells: str,
    *,
    dimension: str = "A1",
    strings: int = 1,
    styles: int = 1,
    head: str = "",
) -> None:
    """A minimal workbook: one sheet whose <sheetData> is ``cells``, a shared-strings table
    (the A&E header) declaring ``strings`` strings, and styles declaring ``styles`` of each."""
    names = AE_HEADER.split(",")
    shared = "".join(f"<si><t>{name}</t></si>" for name in names)
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package'
            '.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            + "".join(
                f'<Override PartName="{part}" ContentType="application/vnd.openxmlformats-'
                f'officedocument.spreadsheetml.{kind}"/>'
                for part, kind in _PART_TYPES.items()
            )
            + "</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1"'
            f' Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
            '<sheet name="Return" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{_RELS}">'
            f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/>'
            f'<Relationship Id="rId3" Type="{_DOC}/styles" Target="styles.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": (
            f'{head}<worksheet xmlns="{_MAIN}"><dimension ref="{dimension}"/>'
            f"<sheetData>{cells}</sheetData></worksheet>"
        ),
        "xl/sharedStrings.xml": (
            f'<sst xmlns="{_MAIN}" count="{strings}" uniqueCount="{strings}">{shared}</sst>'
        ),
        "xl/styles.xml": (
            f'<styleSheet xmlns="{_MAIN}"><fonts count="{styles}"><font/></fonts>'
            f'<cellXfs count="{styles}"><xf/></cellXfs></styleSheet>'
        ),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>\n' + text)


def header_row() -> str:
    """Row 1: the A&E header, as shared strings."""
    cells = "".join(
        f'<c r="{chr(ord("A") + index)}1" t="s"><v>{index}</v></c>' for index in range(6)
    )
    return f'<row r="1">{cells}</row>'


def _last_cell(path: Path) -> None:
    workbook(path, header_row() + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')


def _far_corners(path: Path) -> None:
    # Each cell is inside a sheet; together they span every cell of it.
    cells = '<row r="1"><c r="XFD1"><v>1</v></c></row>'
    workbook(path, cells + '<row r="1048576"><c r="A1048576"><v>1</v></c></row>')


def _implicit_cells(path: Path) -> None:
    # Cells without a reference are placed after the one before: 10,000 of them in the last row.
    workbook(path, header_row() + '<row r="1048576">' + "<c/>" * 10_000 + "</row>")


def _beyond_the_sheet(path: Path) -> None:
    workbook(path, header_row() + '<row r="2"><c r="ZZZZZ99999999"><v>1</v></c></row>')


def _huge_dimension(path: Path) -> None:
    workbook(path, header_row(), dimension="A1:XFD1048576")


def _billions_of_strings(path: Path) -> None:
    workbook(path, header_row(), strings=4_000_000_000)


def _billions_of_styles(path: Path) -> None:
    workbook(path, header_row(), styles=4_000_000_000)


def _entities(path: Path) -> None:
    laughs = "".join(
        f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' if n else '<!ENTITY l0 "lol">' for n in range(10)
    )
    workbook(path, header_row(), head=f"<!DOCTYPE worksheet [{laughs}]>")


def _zip_bomb(path: Path) -> None:
    """An XLSX-looking ZIP whose sheet inflates 1,000 to 1 (64 MiB of zeros)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            for _ in range(64):
                member.write(b"0" * 2**20)


# ---------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------


def _footer_longer_than_the_file(path: Path) -> None:
    pq.write_table(pa.table({"attendances": [1, 2, 3]}), path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, len(data) - 8, 2**31)
    path.write_bytes(bytes(data))


def _garbage_footer(path: Path) -> None:
    """A footer of the right length whose bytes are not a footer."""
    path.write_bytes(b"PAR1" + b"\xff" * 4096 + struct.pack("<I", 4000) + b"PAR1")


def _repeated_rows(path: Path) -> None:
    """Two million rows of one value: a few kilobytes of run-length encoding."""
    names = AE_HEADER.split(",")
    table = pa.table({name: pa.repeat(pa.scalar("7"), 2_000_000) for name in names})
    pq.write_table(table, path, compression="zstd")


def _many_columns(path: Path) -> None:
    pq.write_table(pa.table({f"c{n}": [n] for n in range(5_000)}), path)


def _nesting(depth: int) -> Callable[[Path], None]:
    """A column of structs within structs, ``depth`` deep (each with a second field)."""

    def build(path: Path) -> None:
        kind: pa.DataType = pa.int64()
        for _ in range(depth):
            kind = pa.struct([("a", kind), ("b", pa.int64())])
        pq.write_table(pa.table({"attendances": pa.array([None], type=kind)}), path)

    return build


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def _long_line(path: Path) -> None:
    """A header, then one line of 100 MB (streamed to disk)."""
    with path.open("wb") as file:
        file.write(AE_HEADER.encode() + b"\n" + f"{PERIOD}-01,RJ1,1,".encode())
        for _ in range(100):
            file.write(b"9" * 10**6)
        file.write(b",1,1\n")


def _nul_bytes(path: Path) -> None:
    """A good start (more than the 64 KiB the format is told from), then NUL bytes."""
    rows = [AE_HEADER] + [f"{PERIOD}-01,RJ1,1,{n},0,0" for n in range(3_000)]
    path.write_bytes(("\n".join(rows) + "\n").encode() + f"{PERIOD}-01,RJ1,1,\0\0\0,0,0\n".encode())


def _mixed_encodings(path: Path) -> None:
    """UTF-8 first, then a line in Windows-1252 (an é written as the byte 0xE9)."""
    rows = [AE_HEADER] + [f"{PERIOD}-01,RJ1,1,{n},0,0" for n in range(3_000)]
    text = ("\n".join(rows) + "\n").encode() + "2024-01-01,RJ1,café,1,0,0\n".encode("cp1252")
    path.write_bytes(text)


def _many_fields(path: Path) -> None:
    """A row of 50,002 fields (just under the reader's 256 KiB a row)."""
    path.write_bytes(f"{AE_HEADER}\n{PERIOD}-01,RJ1".encode() + b",1" * 50_000 + b"\n")


_UNSAFE_XLSX = "the XLSX workbook was refused as unsafe to read: "
CASES = [
    Case(
        "xlsx_last_cell",
        "return.xlsx",
        _last_cell,
        "unsafe_xlsx",
        _UNSAFE_XLSX + "xl/worksheets/sheet1.xml has cells from A1 to XFD1048576",
    ),
    Case(
        "xlsx_far_corners",
        "return.xlsx",
        _far_corners,
        "unsafe_xlsx",
        "(1,048,576 rows by 16,384 columns, 17,179,869,184 cells); the limit is 10,000,000 cells",
    ),
    Case(
        "xlsx_implicit_cells",
        "return.xlsx",
        _implicit_cells,
        "unsafe_xlsx",
        "has cells from A1 to NTP1048576",
    ),
    Case(
        "xlsx_beyond_the_sheet",
        "return.xlsx",
        _beyond_the_sheet,
        "unsafe_xlsx",
        "has a cell reference 'ZZZZZ99999999' that is not A1",
    ),
    Case(
        "xlsx_huge_dimension",
        "return.xlsx",
        _huge_dimension,
        "unsafe_xlsx",
        "declares its dimension as A1:XFD1048576",
    ),
    Case(
        "xlsx_billions_of_strings",
        "return.xlsx",
        _billions_of_strings,
        "unsafe_xlsx",
        "xl/sharedStrings.xml declares 4,000,000,000 items in its sst (count)",
    ),
    Case(
        "xlsx_billions_of_styles",
        "return.xlsx",
        _billions_of_styles,
        "unsafe_xlsx",
        "xl/styles.xml declares 4,000,000,000 styles in its fonts (count); the limit is 65,536",
    ),
    Case(
        "xlsx_entities",
        "return.xlsx",
        _entities,
        "unsafe_xlsx",
        "xl/worksheets/sheet1.xml has a DOCTYPE",
    ),
    Case("xlsx_zip_bomb", "return.xlsx", _zip_bomb, "unsafe_zip", "a possible zip bomb"),
    Case(
        "parquet_footer_longer_than_the_file",
        "return.parquet",
        _footer_longer_than_the_file,
        "format",
        "the Parquet file is damaged or truncated: its footer is missing",
    ),
    Case(
        "parquet_garbage_footer",
        "return.parquet",
        _garbage_footer,
        "format",
        "the Parquet file is damaged or truncated",
    ),
    Case(
        "parquet_repeated_rows",
        "return.parquet",
        _repeated_rows,
        "unsafe_parquet",
        "it declares 2,000,000 rows of 6 column(s)",
    ),
    Case(
        "parquet_many_columns",
        "return.parquet",
        _many_columns,
        "extra_column",
        "the Parquet file has 5,000 columns",
    ),
    Case(
        "parquet_nesting",
        "return.parquet",
        _nesting(5),
        "format",
        "the Parquet file has nested columns; send flat columns",
    ),
    Case(
        "parquet_deep_nesting",
        "return.parquet",
        _nesting(500),
        "format",
        "Parquet schema too deeply nested",
    ),
    Case(
        "csv_long_line",
        "return.csv",
        _long_line,
        "csv",
        "the file could not be read as CSV: a row is longer than 256 KiB",
    ),
    Case(
        "csv_nul_bytes",
        "return.csv",
        _nul_bytes,
        "encoding",
        "the file holds a NUL byte (0x00) at line 3002: it is not CSV text",
    ),
    Case(
        "csv_mixed_encodings",
        "return.csv",
        _mixed_encodings,
        "encoding",
        "the file is not UTF-8 text: byte 0xE9 at line 3002; save it as CSV UTF-8",
    ),
    Case(
        "csv_many_fields",
        "return.csv",
        _many_fields,
        "field_count",
        "line 2 has 50002 fields but the header has 6",
        row=1,
    ),
]
