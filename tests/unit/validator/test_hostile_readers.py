"""The readers against hostile files, in this process: declared sizes refused before reading,
and a reader that still aborts ends only its own child process.

The same corpus (tests/hostile_files.py) goes through real `drb` processes in
tests/e2e/test_hostile_uploads.py; here each case is checked quickly, without HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fastexcel
import pytest

from schemas import get_dataset
from services.validator.reading import FileError, check_xlsx_limits, xlsx_declared, xlsx_source
from services.validator.validation import validate_file
from tests.hostile_files import CASES, PERIOD, Case, header_row, workbook
from tests.unit.validator.files import ecds_frame, write_xlsx

XLSX_CASES = [case for case in CASES if case.filename.endswith(".xlsx")]
OTHER_CASES = [case for case in CASES if case not in XLSX_CASES]


def refused(path: Path) -> tuple[str, str]:
    with pytest.raises(FileError) as raised:
        check_xlsx_limits(path)
    (error,) = raised.value.errors
    assert (error.row, error.column) == (None, None)
    return error.check, error.message


@pytest.mark.parametrize("case", XLSX_CASES, ids=[case.name for case in XLSX_CASES])
def test_a_hostile_workbook_is_refused_before_it_is_read(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(_path: Path) -> None:
        raise AssertionError("the reader saw the workbook")

    monkeypatch.setattr(xlsx_source, "read_first_sheet", never)
    path = tmp_path / case.filename
    case.build(path)
    check, message = refused(path)
    assert check == case.check
    assert case.says in message
    report = validate_file(
        path=path,
        filename=case.filename,
        dataset=get_dataset("ae_monthly"),
        org_code="RJ1",
        period=PERIOD,
        write_to=tmp_path / "out.parquet",
    )
    assert [(e.row, e.check) for e in report.errors] == [(None, case.check)]
    assert not (tmp_path / "out.parquet").exists()


V = "<v>1</v>"
A1 = f'<row r="1"><c r="A1">{V}</c></row>'  # calamine's box starts at the first cell, ours at A1


@pytest.mark.parametrize(
    ("cells", "corner"),
    [
        # Explicit references; a row without one follows the row before; a cell without one
        # follows the cell before, in its row.
        (f'{A1}<row r="9"><c r="B9">{V}</c></row>', (2, 9)),
        (f'{A1}<row r="9"><c>{V}</c></row><row><c>{V}</c><c>{V}</c><c>{V}</c></row>', (3, 10)),
        (f'{A1}<row r="4"><c r="D4">{V}</c><c>{V}</c><c>{V}</c></row>', (6, 4)),
        (f"<row><c>{V}</c></row>" * 5, (1, 5)),
        (f'{A1}<row r="2"><c r="C7">{V}</c></row>', (3, 7)),
        # A new row starts again at column A, whatever the row before ended with.
        (f'<row r="1"><c r="E1">{V}</c></row><row><c>{V}</c><c>{V}</c></row>', (5, 2)),
    ],
)
def test_cells_are_placed_as_the_reader_places_them(
    cells: str, corner: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The box the check computes is the one calamine reads: at the limit it passes, one cell
    under it is refused."""
    columns, rows = corner
    path = tmp_path / "box.xlsx"
    workbook(path, cells)
    read = fastexcel.read_excel(path).load_sheet(0, header_row=None).to_arrow()
    assert (read.num_columns, read.num_rows) == (columns, rows)
    monkeypatch.setattr(xlsx_declared, "XLSX_MAX_CELLS", columns * rows)
    check_xlsx_limits(path)
    monkeypatch.setattr(xlsx_declared, "XLSX_MAX_CELLS", columns * rows - 1)
    check, message = refused(path)
    assert check == "unsafe_xlsx"
    assert f"has cells from A1 to {xlsx_declared.cell_name(columns, rows)} (" in message


def test_prefixed_elements_are_cells_too(tmp_path: Path) -> None:
    path = tmp_path / "prefixed.xlsx"
    workbook(path, '<x:row r="1"><x:c r="XFD1048576"><x:v>1</x:v></x:c></x:row>')
    assert "has cells from A1 to XFD1048576 (" in refused(path)[1]


def test_a_real_return_passes_and_is_read_in_the_child(tmp_path: Path) -> None:
    """(A 200,000-row return: bench/xlsx_reading.py, docs/benchmarks.md.)"""
    path = write_xlsx(ecds_frame(5_000, period=PERIOD), tmp_path / "ecds.xlsx")
    report = validate_file(
        path=path,
        filename=path.name,
        dataset=get_dataset("ecds_attendance"),
        org_code="RJ1",
        period=PERIOD,
        write_to=tmp_path / "out.parquet",
    )
    assert (report.status, report.rows, report.errors) == ("accepted", 5_000, [])


def test_a_reader_that_aborts_ends_only_its_own_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with the declared sizes not checked, the workbook that made calamine
    allocate 512 GiB aborts the reader's child process; this one refuses the file."""
    monkeypatch.setattr(xlsx_source, "check_declared_sizes", lambda _archive, _members: None)
    path = tmp_path / "return.xlsx"
    workbook(path, header_row() + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
    report = validate_file(
        path=path,
        filename=path.name,
        dataset=get_dataset("ae_monthly"),
        org_code="RJ1",
        period=PERIOD,
        write_to=tmp_path / "out.parquet",
    )
    assert [(e.row, e.check, e.message) for e in report.errors] == [
        (
            None,
            "too_large",
            "the XLSX workbook could not be read within 4,096 MiB of memory:"
            " send large returns as CSV or Parquet",
        )
    ]
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("case", OTHER_CASES, ids=[case.name for case in OTHER_CASES])
def test_a_hostile_csv_or_parquet_file_is_rejected_with_one_plain_error(
    case: Case, tmp_path: Path
) -> None:
    path = tmp_path / case.filename
    case.build(path)
    report = validate_file(
        path=path,
        filename=case.filename,
        dataset=get_dataset("ae_monthly"),
        org_code="RJ1",
        period=PERIOD,
        write_to=tmp_path / "out.parquet",
    )
    assert report.status == "rejected"
    assert [(e.row, e.check) for e in report.errors] == [(case.row, case.check)], report.errors
    assert case.says in report.errors[0].message
    assert all(len(e.value or "") <= 100 for e in report.errors)
    assert not (tmp_path / "out.parquet").exists()


CSV_CASES = [case for case in CASES if case.filename.endswith(".csv")]


@pytest.mark.parametrize("case", CSV_CASES, ids=[case.name for case in CSV_CASES])
def test_a_process_that_read_a_hostile_csv_still_exits_cleanly(case: Case, tmp_path: Path) -> None:
    """A CSV not in UTF-8 once left pyarrow's half-open reader in a reference cycle that
    aborted the process as it exited (`drb serve` stopped with SIGABRT, not 0)."""
    path = tmp_path / case.filename
    case.build(path)
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from services.validator.reading.csv_source import CsvSource, FileError\n"
        "try:\n    source = CsvSource(Path(sys.argv[1]), max_ragged=10)\n"
        "    print(sum(table.num_rows for table in source.tables(1000)))\n"
        "except FileError:\n    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_part_that_is_not_well_formed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "return.xlsx"
    workbook(path, header_row() + '<row r="2"><c r="A2"></row>')
    assert refused(path) == (
        "format",
        "the XLSX workbook is damaged: xl/worksheets/sheet1.xml is not well-formed XML (line 2)",
    )
