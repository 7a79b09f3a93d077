"""Reading submitted files: format by content, header matching, conversion of text to types."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import get_dataset
from schemas.model import Column
from services.validator.reading import (
    FileError,
    ReturnReader,
    check_xlsx_limits,
    convert,
    detect_format,
    first_invalid_utf8,
    locate_ragged,
    match_header,
)
from services.validator.reading.conversion import _parsed_by_arrow
from tests.schema_samples import valid_sample
from tests.unit.validator.files import (
    ecds_frame,
    lying_zip,
    write_csv,
    write_parquet,
    write_text,
    write_xlsx,
    zip_bomb,
)

INTEGER = Column(name="n", dtype="integer", description="a count")
BOOLEAN = Column(name="b", dtype="boolean", description="a flag")
DATETIME = Column(name="t", dtype="datetime", description="a time")
DATE = Column(name="d", dtype="date", description="a day")
TEXT = Column(name="s", dtype="string", description="text")


def converted(
    values: Sequence[str | None], column: Column, *, period: bool = False
) -> list[object]:
    """The converted values (None where missing or not convertible)."""
    return convert(pl.Series(values, dtype=pl.String), column, period=period).values.to_list()


def failures(values: Sequence[str | None], column: Column) -> dict[int, str]:
    """Position -> message of the values that would not convert."""
    result = convert(pl.Series(values, dtype=pl.String), column)
    if result.bad_index is None or result.bad_message is None:
        return {}
    return dict(zip(result.bad_index.to_list(), result.bad_message.to_list(), strict=True))


def file_errors(raised: pytest.ExceptionInfo[FileError]) -> list[tuple[str | None, str]]:
    """(column, check) of each error in a FileError."""
    return [(e.column, e.check) for e in raised.value.errors]


# ---------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------


def test_formats_are_told_by_content(tmp_path: Path) -> None:
    sample = valid_sample("rtt_monthly")
    assert detect_format(write_csv(sample, tmp_path / "a"), filename="a") == "csv"
    assert detect_format(write_parquet(sample, tmp_path / "b"), filename="b.bin") == "parquet"
    assert detect_format(write_xlsx(sample, tmp_path / "c"), filename="c.txt") == "xlsx"


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "returns.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("returns.csv", "a,b\n1,2\n")
    with pytest.raises(FileError, match="ZIP archive but not an XLSX workbook"):
        detect_format(path, filename="returns.zip")


def test_a_text_file_with_a_few_control_characters_is_still_text(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"period,org_code\n" + b"2025-01,RJ1\x0c\n" * 10)
    assert detect_format(path, filename="a.csv") == "csv"


def test_binary_named_parquet_says_it_is_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "returns.parquet"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(FileError, match=r"named returns\.parquet but its content is not Parquet"):
        detect_format(path, filename="returns.parquet")


# ---------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------


def test_header_positions_follow_the_dataset() -> None:
    dataset = get_dataset("rtt_monthly")
    names = ["waits_over_52_weeks", "\ufeffperiod", "org_code ", "waits_over_18_weeks"]
    assert match_header(names, dataset) == [1, 2, 3, 0]


def test_every_header_problem_is_its_own_error() -> None:
    dataset = get_dataset("rtt_monthly")
    with pytest.raises(FileError) as raised:
        match_header(["period", "period", "ORG_CODE", "", "waits_over_18_weeks", "x"], dataset)
    assert file_errors(raised) == [
        ("org_code", "missing_column"),
        ("waits_over_52_weeks", "missing_column"),
        ("ORG_CODE", "extra_column"),
        (None, "extra_column"),
        ("x", "extra_column"),
        ("period", "duplicate_column"),
    ]
    messages = [e.message for e in raised.value.errors]
    assert messages[3] == "column 4 of the header has no name"
    assert messages[5] == "the column period appears 2 times in the header"


def test_a_semicolon_separated_header_is_explained() -> None:
    dataset = get_dataset("rtt_monthly")
    with pytest.raises(FileError) as raised:
        match_header([";".join(c.name for c in dataset.columns)], dataset)
    assert "separate values by ';': use commas" in raised.value.errors[-1].message


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------


def test_whole_numbers() -> None:
    values = ["5", "+5", "-3", " 7 ", "007", "12.0", "", None]
    assert converted(values, INTEGER) == [5, 5, -3, 7, 7, 12, None, None]
    assert failures(values, INTEGER) == {}


def test_not_whole_numbers() -> None:
    values = ["1.5", "1e3", "12,345", "abc", "99999999999999999999", "9223372036854775807"]
    assert converted(values, INTEGER)[:5] == [None] * 5
    assert converted(values, INTEGER)[5] == 2**63 - 1
    assert failures(values, INTEGER) == {
        0: "'1.5' is not a whole number",
        1: "'1e3' is not a whole number: write it out in digits",
        2: "'12,345' is not a whole number: write it without thousands separators",
        3: "'abc' is not a whole number",
        4: "'99999999999999999999' is too large for a whole number (the largest is"
        " 9223372036854775807)",
    }


def test_true_or_false() -> None:
    values = ["true", "FALSE", "1", "0", "yes", "No", " True ", "", "maybe", "2"]
    assert converted(values, BOOLEAN) == [True, False, True, False, True, False, True] + [None] * 3
    assert set(failures(values, BOOLEAN)) == {8, 9}


def test_dates_and_times() -> None:
    values = [
        "2025-01-03 08:30:15",
        "2025-01-03T08:30:15",
        "2025-01-03 08:30",
        "2025-01-03T08:30",
        "2025-01-03 08:30:15.25",
        "2025-02-30 08:30:00",
        "2025-01-03",
        "03/01/2025 08:30",
        "2025-01-03 08:30:15+01:00",
    ]
    expected: list[datetime | None] = [datetime(2025, 1, 3, 8, 30, 15)] * 2
    expected += [datetime(2025, 1, 3, 8, 30)] * 2
    expected += [datetime(2025, 1, 3, 8, 30, 15, 250_000)] + [None] * 4
    assert converted(values, DATETIME) == expected
    bad = failures(values, DATETIME)
    assert set(bad) == {5, 6, 7, 8}
    assert (
        bad[8]
        == "'2025-01-03 08:30:15+01:00' has a time zone: write the local date and time without one"
    )


# Cells near the edges of what Arrow's parsers and the rules accept, and ordinary ones.
_TRICKY_CELLS = {
    "integer": [
        "12",
        "-3",
        "+7",
        "007",
        "-0",
        "0x1F",
        "0X10",
        "1e3",
        "12.0",
        " 5",
        "",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "١٢",
    ],
    "datetime": [
        "2025-01-03 08:30:15",
        "2025-01-03T08:30:15",
        "2025-01-03",
        "2025-01-03 08",
        "2025-01-03 08:30",
        "2025-01-03T08:30+01",
        "2025-01-03 08:30:15Z",
        "2025-02-30 08:30:00",
        "2025-01-03t08:30:15",
        "2025-01-03 24:00:00",
        "2025-01-03 08:30:60",
        "2025-1-3 08:30:15",
        "",
    ],
    "boolean": ["true", "FALSE", "TrUe", "1", "0", "yes", "t", "01", " true", ""],
}
_ORDINARY = {
    "integer": st.integers(-(2**63), 2**63 - 1).map(str),
    "datetime": st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1)).map(
        lambda t: t.strftime("%Y-%m-%d %H:%M:%S")
    ),
    "boolean": st.sampled_from(["true", "false", "1", "0"]),
}
_COLUMNS = {"integer": INTEGER, "datetime": DATETIME, "boolean": BOOLEAN}


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    kind=st.sampled_from(sorted(_COLUMNS)),
)
def test_arrow_parses_only_what_the_rules_accept_and_as_they_read_it(
    data: st.DataObject, kind: str
) -> None:
    cells = data.draw(
        st.lists(st.one_of(st.sampled_from(_TRICKY_CELLS[kind]), _ORDINARY[kind]), max_size=8)
    )
    column = _COLUMNS[kind]
    parsed = _parsed_by_arrow(pa.chunked_array([pa.array(cells, pa.string())]), column)
    if parsed is not None:
        # Whenever the fast way answers, the rules' way reads every cell, and the same.
        assert failures(cells, column) == {}
        assert parsed.to_list() == converted(cells, column)
        assert parsed.dtype == column.polars_dtype


@pytest.mark.parametrize(
    ("cells", "column"),
    [
        pytest.param(["0x1F", "0X10"], INTEGER, id="hex"),
        pytest.param(["2025-01-03", "2025-01-04"], DATETIME, id="dates-alone"),
        pytest.param(["2025-01-03 08", "2025-01-03 09"], DATETIME, id="hours-alone"),
    ],
)
def test_forms_arrow_would_read_are_refused(cells: list[str], column: Column) -> None:
    assert _parsed_by_arrow(pa.chunked_array([pa.array(cells)]), column) is None
    assert set(failures(cells, column)) == set(range(len(cells)))


def test_arrow_takes_the_common_forms() -> None:
    times = pa.array(["2025-01-03 08:30:15", "2025-01-03T08:30:16"])
    parsed = _parsed_by_arrow(times, DATETIME)
    assert parsed is not None
    assert parsed.to_list() == [datetime(2025, 1, 3, 8, 30, 15), datetime(2025, 1, 3, 8, 30, 16)]
    assert _parsed_by_arrow(pa.array(["TRUE", "0"]), BOOLEAN) is not None
    assert _parsed_by_arrow(pa.array(["-4", "12"]), INTEGER) is not None
    assert _parsed_by_arrow(pa.array(["a"]), TEXT) is None


def test_dates() -> None:
    assert converted(["2025-01-03", "2025-1-x"], DATE) == [date(2025, 1, 3), None]


def test_periods_are_normalised_only_when_they_are_a_first_of_the_month() -> None:
    values = ["2025-01", "2025-01-01", "2025-01-01 00:00:00", "2025-01-15", "2025-13", "Jan 25"]
    assert converted(values, TEXT, period=True) == [
        "2025-01",
        "2025-01",
        "2025-01",
        "2025-01-15",
        "2025-13",
        "Jan 25",
    ]
    assert converted(["2025-01-01"], TEXT) == ["2025-01-01"]


def test_empty_text_is_missing() -> None:
    assert converted(["", "RJ1", None], TEXT) == [None, "RJ1", None]


def test_typed_periods() -> None:
    days = pl.Series([date(2025, 1, 1), date(2025, 1, 2)])
    assert convert(days, TEXT, period=True).values.to_list() == ["2025-01", "2025-01-02"]
    times = pl.Series([datetime(2025, 1, 1), datetime(2025, 1, 1, 9)])
    assert convert(times, TEXT, period=True).values.to_list() == [
        "2025-01",
        "2025-01-01 09:00:00",
    ]


# ---------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [write_csv, write_parquet, write_xlsx])
def test_chunks_have_the_requested_size_and_offsets(tmp_path: Path, writer: object) -> None:
    frame = ecds_frame(25)
    path = writer(frame, tmp_path / "ecds")  # type: ignore[operator]
    dataset = get_dataset("ecds_attendance")
    file_format = detect_format(path, filename="ecds")
    with ReturnReader(
        path, file_format=file_format, dataset=dataset, chunk_rows=10, max_errors=100
    ) as reader:
        chunks = list(reader.chunks())
    assert [(c.offset, c.frame.height) for c in chunks] == [(0, 10), (10, 10), (20, 5)]
    assert pl.concat([c.frame for c in chunks]).equals(frame)
    assert all(c.cast_errors.is_empty() for c in chunks)


def test_first_invalid_utf8_across_a_block_boundary(tmp_path: Path) -> None:
    # A two-byte character split by the 1 MiB block boundary, then a bad byte on line 3.
    head = b"a" * (2**20 - 1) + "é".encode() + b"\nok\n"
    path = tmp_path / "t.csv"
    path.write_bytes(head + b"\xa3\n")
    assert first_invalid_utf8(path) == (0xA3, 3)
    path.write_bytes(head)
    assert first_invalid_utf8(path) is None


def test_locate_ragged_counts_records_not_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path / "r.csv", ["a,b", '1,"x\ny"', "", "2", "3,4", "5,6,7"])
    located = locate_ragged(path, width=2, count=2)
    assert [(r.row, r.line, r.fields) for r in located] == [(2, 5, 1), (4, 7, 3)]


# ---------------------------------------------------------------------------
# XLSX limits
# ---------------------------------------------------------------------------


def test_an_ordinary_workbook_passes_the_limits(tmp_path: Path) -> None:
    check_xlsx_limits(write_xlsx(ecds_frame(2_000), tmp_path / "ecds.xlsx"))


def test_a_zip_bomb_fails_on_its_directory(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="would expand to") as raised:
        check_xlsx_limits(zip_bomb(tmp_path / "bomb.xlsx", mebibytes=8))
    assert file_errors(raised) == [(None, "unsafe_zip")]


def test_a_member_compressed_too_well_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.validator.reading import xlsx_source

    # With the total limit out of the way, the ratio of the one member still trips.
    monkeypatch.setattr(xlsx_source, "XLSX_MAX_TOTAL_RATIO", 10**6)
    with pytest.raises(FileError, match=r"compressed [0-9,]+ to 1"):
        check_xlsx_limits(zip_bomb(tmp_path / "bomb.xlsx", mebibytes=8))


def test_a_directory_that_lies_fails_on_inflating(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="more than its declared size"):
        check_xlsx_limits(lying_zip(tmp_path / "lie.xlsx"))


def test_a_shortened_column_name_is_pointed_out() -> None:
    # NHS England's published A&E data calls department_type "type".
    published = ["period", "org_code", "type", "attendances", "breaches", "admissions"]
    with pytest.raises(FileError) as raised:
        match_header(published, get_dataset("ae_monthly"))
    assert [e.message for e in raised.value.errors] == [
        "the column department_type is missing (the file has 'type': if that is it,"
        " rename it department_type)",
        "type is not a column of ae_monthly; did you mean department_type?",
    ]


def test_a_name_that_could_be_either_of_two_columns_is_not_guessed() -> None:
    header = ["period", "org_code", "available", "ga_beds_occupied", "cc_beds_occupied"]
    with pytest.raises(FileError) as raised:
        match_header(header, get_dataset("beds_monthly"))
    messages = [e.message for e in raised.value.errors]
    assert "the column ga_beds_available is missing" in messages
    assert "the column cc_beds_available is missing" in messages
    assert not any("did you mean" in m for m in messages)
