"""validate_file end to end: real files on disk, the exact error records, and what is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import DATASETS, get_dataset
from services.validator.reading import xlsx_source
from services.validator.validation import (
    _WHOLE_FILE,
    ErrorRecord,
    Report,
    _chunk_schema,
    _pandera_failures,
    _Shortcut,
    validate_file,
)
from tests.schema_samples import (
    BAD_VALUES,
    ORG_CODE,
    PERIOD,
    break_rule,
    valid_sample,
    with_value,
)
from tests.unit.validator.files import (
    as_text,
    csv_lines,
    ecds_frame,
    lying_zip,
    normalised,
    truncated_parquet,
    with_cell,
    write_csv,
    write_parquet,
    write_text,
    write_xlsx,
    zip_bomb,
)

Triple = tuple[int | None, str | None, str]


def validate(
    path: Path,
    code: str,
    *,
    filename: str | None = None,
    chunk_rows: int = 500_000,
    max_errors: int = 10_000,
    org_code: str = ORG_CODE,
    period: str = PERIOD,
) -> Report:
    """validate_file with the output next to the input (out.parquet)."""
    return validate_file(
        path=path,
        filename=filename or path.name,
        dataset=get_dataset(code),
        org_code=org_code,
        period=period,
        write_to=path.parent / "out.parquet",
        chunk_rows=chunk_rows,
        max_errors=max_errors,
    )


def triples(report: Report) -> list[Triple]:
    """(row, column, check) of each error, in report order."""
    return [(e.row, e.column, e.check) for e in report.errors]


def assert_rejected(report: Report, path: Path, expected: list[Triple]) -> None:
    """Rejected with exactly those errors, and nothing written."""
    assert report.status == "rejected"
    assert triples(report) == expected, report.errors
    assert report.error_count == len(expected)
    assert all(e.message for e in report.errors)
    assert not (path.parent / "out.parquet").exists()
    assert not (path.parent / "out.parquet.partial").exists()


def only_error(report: Report) -> ErrorRecord:
    """The single error of the report."""
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


CODES = list(DATASETS)
WRITERS: dict[str, Callable[[pl.DataFrame, Path], Path]] = {
    "csv": write_csv,
    "parquet": write_parquet,
    "xlsx": write_xlsx,
}


# ---------------------------------------------------------------------------
# Valid returns are accepted and written exactly
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", list(WRITERS))
@pytest.mark.parametrize("code", CODES)
def test_a_valid_return_is_accepted_and_written(
    tmp_path: Path, code: str, file_format: str
) -> None:
    sample = valid_sample(code)
    path = WRITERS[file_format](sample, tmp_path / f"return.{file_format}")
    report = validate(path, code)
    assert report.errors == []
    assert (report.status, report.rows, report.error_count, report.format) == (
        "accepted",
        sample.height,
        0,
        file_format,
    )
    written = pl.read_parquet(tmp_path / "out.parquet")
    assert written.schema == get_dataset(code).polars_schema()
    assert written.equals(normalised(sample))


def test_the_written_parquet_is_zstd_with_one_row_group_per_chunk(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = write_csv(ecds_frame(10), tmp_path / "ecds.csv")
    assert validate(path, "ecds_attendance", chunk_rows=4).status == "accepted"
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert metadata.num_row_groups == 3
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert metadata.num_rows == 10
    # Codes are dictionary encoded; ids, times and counts are not (it would only cost time).
    group = metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(12)}
    assert "RLE_DICTIONARY" in encodings["department_type"]
    assert "RLE_DICTIONARY" not in encodings["attendance_id"]
    assert "RLE_DICTIONARY" not in encodings["arrival_time"]
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(12)}
    assert columns["arrival_time"].statistics.min == datetime(2025, 1, 1)
    assert not columns["org_code"].is_stats_set
    # Any reader sees the dataset's types: plain strings, microsecond times.
    stored = pq.read_schema(tmp_path / "out.parquet")
    assert stored.field("org_code").type == pa.string()
    assert stored.field("arrival_time").type == pa.timestamp("us")


def test_a_return_spread_over_chunks_is_accepted(tmp_path: Path) -> None:
    # all_values_present and the key span chunks: three rows, two per chunk, must pass.
    path = write_csv(valid_sample("ae_monthly"), tmp_path / "ae.csv")
    report = validate(path, "ae_monthly", chunk_rows=2)
    assert (report.status, report.rows) == ("accepted", 3)
    assert pl.read_parquet(tmp_path / "out.parquet").equals(valid_sample("ae_monthly"))


def test_a_large_return_over_many_chunks_is_accepted(tmp_path: Path) -> None:
    frame = ecds_frame(2_000)
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance", chunk_rows=128)
    assert (report.status, report.rows) == ("accepted", 2_000)
    assert pl.read_parquet(tmp_path / "out.parquet").equals(frame)


def test_crlf_and_bom_are_accepted(tmp_path: Path) -> None:
    path = write_csv(valid_sample("ecds_attendance"), tmp_path / "e.csv", bom=True, crlf=True)
    report = validate(path, "ecds_attendance")
    assert report.status == "accepted", report.errors
    assert pl.read_parquet(tmp_path / "out.parquet").equals(valid_sample("ecds_attendance"))


def test_quoted_fields_with_commas_and_newlines(tmp_path: Path) -> None:
    lines = csv_lines(valid_sample("ae_monthly"))
    # Every field quoted; a value holding a comma and a newline breaks the pattern of org_code
    # only, and the row after it keeps its number although its record spans two lines.
    lines = [",".join(f'"{field}"' for field in line.split(",")) for line in lines]
    lines[1] = lines[1].replace('"RJ1"', '"R,J\n1"')
    lines[3] = lines[3].replace('"37"', '"-37"')
    path = write_text(tmp_path / "ae.csv", lines)
    report = validate(path, "ae_monthly")
    assert [
        (e.row, e.column, e.check) for e in report.errors if e.check != "all_values_present"
    ] == [
        (1, "org_code", "pattern"),
        (1, "org_code", "submitting_org"),
        (3, "breaches", "in_range"),
    ]
    assert report.errors[0].value == "R,J\n1"


def test_a_period_written_as_the_first_day_is_normalised(tmp_path: Path) -> None:
    sample = valid_sample("rtt_monthly").with_columns(period=pl.lit("2025-01-01"))
    path = write_csv(sample, tmp_path / "rtt.csv")
    assert validate(path, "rtt_monthly").status == "accepted"
    assert pl.read_parquet(tmp_path / "out.parquet")["period"].to_list() == ["2025-01"]


def test_a_period_as_an_excel_date_cell_is_accepted(tmp_path: Path) -> None:
    path = write_xlsx(valid_sample("ae_monthly"), tmp_path / "ae.xlsx", period_as_date=True)
    report = validate(path, "ae_monthly")
    assert report.status == "accepted", report.errors
    assert set(pl.read_parquet(tmp_path / "out.parquet")["period"]) == {"2025-01"}


def _stored_as_the_store_keeps_it(frame: pl.DataFrame, path: Path) -> Path:
    """The frame as Parquet whose columns read back as the validator's own output does."""
    import pyarrow.parquet as pq

    pq.write_table(frame.to_arrow(), path, store_schema=False)
    return path


def test_a_parquet_file_already_as_the_store_keeps_it_is_kept_not_written_again(
    tmp_path: Path,
) -> None:
    sample = ecds_frame(1_000)
    path = _stored_as_the_store_keeps_it(sample, tmp_path / "ecds.parquet")
    assert validate(path, "ecds_attendance", chunk_rows=300).status == "accepted"
    kept = tmp_path / "out.parquet"
    assert kept.read_bytes() == path.read_bytes()  # the same file, not a second encoding
    assert pl.read_parquet(kept).equals(sample)
    assert pl.read_parquet(kept).schema == get_dataset("ecds_attendance").polars_schema()


def test_a_parquet_file_with_a_value_to_convert_is_written_converted(tmp_path: Path) -> None:
    sample = valid_sample("ae_monthly")
    dated = with_cell(sample, "period", 2, sample["period"][2] + "-01")  # a day: kept a month
    path = _stored_as_the_store_keeps_it(dated, tmp_path / "ae.parquet")
    assert validate(path, "ae_monthly", chunk_rows=2).status == "accepted"
    written = tmp_path / "out.parquet"
    assert written.read_bytes() != path.read_bytes()
    assert pl.read_parquet(written).equals(normalised(sample))


def test_a_rejected_parquet_file_leaves_nothing_even_when_it_would_have_been_kept(
    tmp_path: Path,
) -> None:
    sample = with_cell(ecds_frame(1_000), "age", 900, 999)
    path = _stored_as_the_store_keeps_it(sample, tmp_path / "ecds.parquet")
    report = validate(path, "ecds_attendance", chunk_rows=300)
    assert [(e.row, e.column, e.check) for e in report.errors] == [(901, "age", "in_range")]
    assert not (tmp_path / "out.parquet").exists()
    assert not (tmp_path / "out.parquet.partial").exists()
    assert path.exists()


def test_a_date_typed_parquet_period_is_accepted(tmp_path: Path) -> None:
    sample = valid_sample("beds_monthly").with_columns(pl.col("period").str.to_date("%Y-%m-%d"))
    path = write_parquet(sample, tmp_path / "beds.parquet")
    report = validate(path, "beds_monthly")
    assert report.status == "accepted", report.errors
    assert pl.read_parquet(tmp_path / "out.parquet")["period"].to_list() == ["2025-01"]


def test_a_date_typed_period_not_on_the_first_fails_the_pattern(tmp_path: Path) -> None:
    sample = valid_sample("beds_monthly").with_columns(period=pl.date(2025, 1, 15))
    path = write_parquet(sample, tmp_path / "beds.parquet")
    report = validate(path, "beds_monthly")
    assert_rejected(report, path, [(1, "period", "pattern")])
    assert report.errors[0].value == "2025-01-15"


def test_parquet_types_are_converted(tmp_path: Path) -> None:
    # int32 counts, float whole numbers, an int department type, 0/1 admitted, ns timestamps.
    sample = valid_sample("ecds_attendance")
    table = pa.table(
        {
            "attendance_id": pa.array(sample["attendance_id"].to_list(), pa.int32()),
            "org_code": sample["org_code"].to_list(),
            "site_code": pa.array(sample["site_code"].to_list(), pa.large_string()),
            "arrival_time": pa.array(sample["arrival_time"].to_list(), pa.timestamp("ns")),
            "departure_time": pa.array(sample["departure_time"].to_list(), pa.timestamp("ms")),
            "age": pa.array([float(v) for v in sample["age"]], pa.float64()),
            "sex": pa.array([int(v) for v in sample["sex"]], pa.int8()),
            "arrival_mode": pa.array(sample["arrival_mode"].to_list()).dictionary_encode(),
            "acuity": pa.array(sample["acuity"].to_list(), pa.uint8()),
            "department_type": sample["department_type"].to_list(),
            "admitted": pa.array([int(v) for v in sample["admitted"]], pa.int64()),
            "minutes_in_department": sample["minutes_in_department"].to_list(),
        }
    )
    path = write_parquet(table, tmp_path / "ecds.parquet")
    report = validate(path, "ecds_attendance")
    assert report.status == "accepted", report.errors
    assert pl.read_parquet(tmp_path / "out.parquet").equals(sample)


def test_parquet_values_that_do_not_fit_are_dtype_errors(tmp_path: Path) -> None:
    sample = valid_sample("ecds_attendance")
    table = sample.to_arrow()
    table = table.set_column(5, "age", pa.array([1.5, 34.0, 87.0, 120.0, 52.0, 19.0]))
    table = table.set_column(10, "admitted", pa.array([0, 1, 2, 0, 1, 0]))
    path = write_parquet(table, tmp_path / "ecds.parquet")
    report = validate(path, "ecds_attendance")
    assert_rejected(report, path, [(1, "age", "dtype"), (3, "admitted", "dtype")])
    assert report.errors[0].value == "1.5"
    assert "is not a whole number" in report.errors[0].message


def test_parquet_times_with_a_time_zone_are_refused(tmp_path: Path) -> None:
    sample = valid_sample("ecds_attendance").with_columns(
        pl.col("arrival_time").dt.replace_time_zone("Europe/London")
    )
    path = write_parquet(sample, tmp_path / "ecds.parquet")
    report = validate(path, "ecds_attendance")
    assert_rejected(report, path, [(None, "arrival_time", "dtype")])
    assert "time zone" in report.errors[0].message
    assert report.rows == sample.height  # readable, so its rows are counted (API.md)


def test_a_parquet_column_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    sample = valid_sample("rtt_monthly").with_columns(waits_over_18_weeks=pl.lit(True))
    path = write_parquet(sample, tmp_path / "rtt.parquet")
    assert_rejected(validate(path, "rtt_monthly"), path, [(None, "waits_over_18_weeks", "dtype")])


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def test_wrong_types_are_one_error_each(tmp_path: Path) -> None:
    frame = as_text(valid_sample("ecds_attendance"))
    frame = with_cell(frame, "attendance_id", 0, "abc")
    frame = with_cell(frame, "arrival_time", 1, "yesterday")
    frame = with_cell(frame, "admitted", 2, "maybe")
    frame = with_cell(frame, "age", 3, "1.5")
    frame = with_cell(frame, "acuity", 4, "1e3")
    frame = with_cell(frame, "minutes_in_department", 5, "12,345")
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance")
    # The cells that would not convert are not also reported as empty.
    assert_rejected(
        report,
        path,
        [
            (1, "attendance_id", "dtype"),
            (2, "arrival_time", "dtype"),
            (3, "admitted", "dtype"),
            (4, "age", "dtype"),
            (5, "acuity", "dtype"),
            (6, "minutes_in_department", "dtype"),
        ],
    )
    assert [e.value for e in report.errors] == ["abc", "yesterday", "maybe", "1.5", "1e3", "12,345"]
    messages = [e.message for e in report.errors]
    assert messages[0] == "attendance_id 'abc' is not a whole number"
    assert "is not a date and time" in messages[1]
    assert "is not true or false" in messages[2]
    assert messages[3] == "age '1.5' is not a whole number"
    assert "in digits" in messages[4]
    assert "thousands separators" in messages[5]


def test_a_number_too_large_for_the_column(tmp_path: Path) -> None:
    frame = with_cell(as_text(valid_sample("rtt_monthly")), "waits_over_18_weeks", 0, "9" * 20)
    path = write_csv(frame, tmp_path / "rtt.csv")
    report = validate(path, "rtt_monthly")
    assert_rejected(report, path, [(1, "waits_over_18_weeks", "dtype")])
    assert "too large" in report.errors[0].message
    assert report.errors[0].value == "9" * 20


def test_a_count_beyond_the_range_is_in_range(tmp_path: Path) -> None:
    frame = with_cell(valid_sample("rtt_monthly"), "waits_over_18_weeks", 0, 2_000_000_000)
    path = write_csv(frame, tmp_path / "rtt.csv")
    report = validate(path, "rtt_monthly")
    assert_rejected(report, path, [(1, "waits_over_18_weeks", "in_range")])


def test_negatives_are_rejected(tmp_path: Path) -> None:
    frame = with_cell(valid_sample("ae_monthly"), "admissions", 1, -4)
    path = write_csv(frame, tmp_path / "ae.csv")
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(2, "admissions", "in_range")])
    error = report.errors[0]
    assert error.value == "-4"
    assert error.message == "admissions -4 must be between 0 and 1000000000"


def test_an_empty_cell_says_a_value_is_needed(tmp_path: Path) -> None:
    frame = with_cell(as_text(valid_sample("rtt_monthly")), "waits_over_52_weeks", 0, "")
    path = write_csv(frame, tmp_path / "rtt.csv")
    report = validate(path, "rtt_monthly")
    assert_rejected(report, path, [(1, "waits_over_52_weeks", "not_nullable")])
    assert report.errors[0].value is None


def test_lenient_forms_are_accepted(tmp_path: Path) -> None:
    frame = as_text(valid_sample("ecds_attendance"))
    frame = with_cell(frame, "arrival_time", 0, "2025-01-01T08:00")
    frame = with_cell(frame, "departure_time", 0, " 2025-01-01 09:35:00.000 ")
    frame = with_cell(frame, "admitted", 0, "No")
    frame = with_cell(frame, "admitted", 1, "YES")
    frame = with_cell(frame, "admitted", 2, "1")
    frame = with_cell(frame, "age", 0, " 0 ")
    frame = with_cell(frame, "acuity", 0, "+4")
    frame = with_cell(frame, "minutes_in_department", 0, "95.0")
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance")
    assert report.status == "accepted", report.errors
    assert pl.read_parquet(tmp_path / "out.parquet").equals(valid_sample("ecds_attendance"))


def test_a_time_with_a_time_zone_is_refused(tmp_path: Path) -> None:
    frame = with_cell(
        as_text(valid_sample("ecds_attendance")), "arrival_time", 0, "2025-01-01 08:00:00Z"
    )
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance")
    assert_rejected(report, path, [(1, "arrival_time", "dtype")])
    assert "time zone" in report.errors[0].message


@pytest.mark.parametrize(
    ("code", "column", "other", "row"),
    [
        ("ae_monthly", "breaches", "attendances", 0),
        ("beds_monthly", "ga_beds_occupied", "ga_beds_available", 0),
        ("beds_monthly", "cc_beds_occupied", "cc_beds_available", 0),
        ("rtt_monthly", "waits_over_52_weeks", "waits_over_18_weeks", 0),
    ],
)
def test_a_count_more_than_its_bound_names_the_column_that_breaks_it(
    tmp_path: Path, code: str, column: str, other: str, row: int
) -> None:
    sample = valid_sample(code)
    bound = sample[other][row]
    frame = with_cell(sample, column, row, bound + 1)
    path = write_csv(frame, tmp_path / "return.csv")
    report = validate(path, code)
    assert_rejected(report, path, [(row + 1, column, "not_greater_than")])
    assert report.errors[0].message == f"{column} {bound + 1} is more than {other} {bound}"


def test_breaches_over_attendances_message(tmp_path: Path) -> None:
    frame = with_cell(valid_sample("ae_monthly"), "attendances", 2, 100)
    frame = with_cell(frame, "breaches", 2, 120)
    path = write_csv(frame, tmp_path / "ae.csv")
    error = only_error(validate(path, "ae_monthly"))
    assert (error.row, error.column, error.check, error.value) == (
        3,
        "breaches",
        "not_greater_than",
        "120",
    )
    assert error.message == "breaches 120 is more than attendances 100"


def test_departure_before_arrival(tmp_path: Path) -> None:
    sample = valid_sample("ecds_attendance")
    early = sample["arrival_time"][3] - timedelta(minutes=5)
    path = write_csv(with_cell(sample, "departure_time", 3, early), tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance")
    assert_rejected(report, path, [(4, "departure_time", "not_before")])
    assert report.errors[0].message == (
        "departure_time 2025-01-09 09:55:00 is before arrival_time 2025-01-09 10:00:00"
    )


def test_another_trusts_code(tmp_path: Path) -> None:
    path = write_csv(valid_sample("rtt_monthly", org_code="R0A"), tmp_path / "rtt.csv")
    report = validate(path, "rtt_monthly")
    assert_rejected(report, path, [(1, "org_code", "submitting_org")])
    assert report.errors[0].message == (
        "org_code 'R0A' is not the submitting organisation's own code RJ1"
    )


def test_another_trusts_rows_in_a_patient_level_return(tmp_path: Path) -> None:
    frame = with_cell(valid_sample("ecds_attendance"), "org_code", 4, "R0A")
    path = write_csv(frame, tmp_path / "ecds.csv")
    assert_rejected(validate(path, "ecds_attendance"), path, [(5, "org_code", "submitting_org")])


def test_the_wrong_period(tmp_path: Path) -> None:
    path = write_csv(valid_sample("beds_monthly", period="2024-12"), tmp_path / "beds.csv")
    report = validate(path, "beds_monthly")
    assert_rejected(report, path, [(1, "period", "in_period")])
    assert report.errors[0].message == "period '2024-12' is not in the submission's period 2025-01"


def test_an_arrival_outside_the_period(tmp_path: Path) -> None:
    sample = valid_sample("ecds_attendance")
    frame = with_cell(sample, "arrival_time", 0, datetime(2024, 12, 31, 23, 0))
    frame = with_cell(frame, "departure_time", 0, datetime(2025, 1, 1, 0, 30))
    path = write_csv(frame, tmp_path / "ecds.csv")
    assert_rejected(validate(path, "ecds_attendance"), path, [(1, "arrival_time", "in_period")])


def test_a_malformed_period(tmp_path: Path) -> None:
    path = write_csv(
        valid_sample("rtt_monthly").with_columns(period=pl.lit("Jan-25")), tmp_path / "r.csv"
    )
    report = validate(path, "rtt_monthly")
    assert_rejected(report, path, [(1, "period", "pattern"), (1, "period", "in_period")])


def test_a_missing_department_type(tmp_path: Path) -> None:
    frame = valid_sample("ae_monthly").filter(pl.col("department_type") != "2")
    path = write_csv(frame, tmp_path / "ae.csv")
    report = validate(path, "ae_monthly")
    assert_rejected(
        report,
        path,
        [
            (1, "department_type", "all_values_present"),
            (2, "department_type", "all_values_present"),
        ],
    )
    assert report.errors[0].message.startswith(
        "there is no row with department_type 2 for period 2025-01 and org_code RJ1"
    )


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


def test_a_duplicate_id_in_the_same_chunk(tmp_path: Path) -> None:
    frame = with_cell(valid_sample("ecds_attendance"), "attendance_id", 2, 700_000)
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance")
    assert_rejected(report, path, [(3, "attendance_id", "unique_key")])
    assert report.errors[0].value == "700000"
    assert report.errors[0].message == "attendance_id 700000 appears 2 times: rows 1 and 3"


def test_a_duplicate_id_across_chunks(tmp_path: Path) -> None:
    frame = with_cell(valid_sample("ecds_attendance"), "attendance_id", 5, 700_000)
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance", chunk_rows=3)
    assert_rejected(report, path, [(6, "attendance_id", "unique_key")])
    assert report.errors[0].message.endswith("rows 1 and 6")


def test_a_duplicate_id_far_apart_in_a_large_file(tmp_path: Path) -> None:
    frame = with_cell(ecds_frame(1_000), "attendance_id", 999, 2)
    path = write_parquet(frame, tmp_path / "ecds.parquet")
    report = validate(path, "ecds_attendance", chunk_rows=50)
    assert_rejected(report, path, [(1_000, "attendance_id", "unique_key")])
    assert report.errors[0].message.endswith("rows 2 and 1000")


def test_a_duplicate_composite_key_across_chunks(tmp_path: Path) -> None:
    sample = valid_sample("ae_monthly")
    frame = pl.concat([sample, sample.head(1).with_columns(admissions=pl.lit(1, pl.Int64))])
    path = write_csv(frame, tmp_path / "ae.csv")
    report = validate(path, "ae_monthly", chunk_rows=3)
    assert_rejected(report, path, [(4, "period,org_code,department_type", "unique_key")])
    error = report.errors[0]
    assert error.value == "2025-01, RJ1, 1"
    assert error.message == (
        "period 2025-01, org_code RJ1, department_type 1 appears 2 times: rows 1 and 4"
    )


def test_a_key_written_two_ways_is_one_key(tmp_path: Path) -> None:
    # 2025-01-01 is normalised to 2025-01 before keys are compared.
    sample = as_text(valid_sample("ae_monthly"))
    repeat = sample.head(1).with_columns(period=pl.lit("2025-01-01"))
    path = write_csv(pl.concat([sample, repeat]), tmp_path / "ae.csv")
    report = validate(path, "ae_monthly", chunk_rows=2)
    assert_rejected(report, path, [(4, "period,org_code,department_type", "unique_key")])


def test_a_key_three_times_lists_every_row(tmp_path: Path) -> None:
    frame = ecds_frame(9).with_columns(
        attendance_id=pl.Series([1, 2, 1, 4, 5, 1, 7, 8, 9], dtype=pl.Int64)
    )
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance", chunk_rows=2)
    assert_rejected(
        report, path, [(3, "attendance_id", "unique_key"), (6, "attendance_id", "unique_key")]
    )
    assert report.errors[1].message == "attendance_id 1 appears 3 times: rows 1, 3 and 6"


def test_empty_keys_are_not_duplicates(tmp_path: Path) -> None:
    frame = as_text(valid_sample("ecds_attendance"))
    frame = with_cell(with_cell(frame, "attendance_id", 0, ""), "attendance_id", 1, "x")
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance")
    assert_rejected(
        report, path, [(1, "attendance_id", "not_nullable"), (2, "attendance_id", "dtype")]
    )


# ---------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------


def test_missing_and_extra_columns(tmp_path: Path) -> None:
    frame = valid_sample("ae_monthly").drop("breaches").with_columns(notes=pl.lit("x"))
    path = write_csv(frame, tmp_path / "ae.csv")
    report = validate(path, "ae_monthly")
    assert_rejected(
        report, path, [(None, "breaches", "missing_column"), (None, "notes", "extra_column")]
    )
    # The rows were read, so they are counted, as API.md says of every rejected file.
    assert (report.rows, report.format) == (frame.height, "csv")


@pytest.mark.parametrize(
    ("writer", "name"),
    [(write_csv, "ecds.csv"), (write_parquet, "ecds.parquet"), (write_xlsx, "ecds.xlsx")],
)
def test_a_file_refused_for_its_header_reports_its_data_rows(
    tmp_path: Path, writer: Callable[[pl.DataFrame, Path], Path], name: str
) -> None:
    frame = ecds_frame(2_500).drop("sex")
    path = writer(frame, tmp_path / name)
    report = validate(path, "ecds_attendance")
    assert [(e.row, e.column, e.check) for e in report.errors] == [(None, "sex", "missing_column")]
    assert report.rows == 2_500


def test_a_header_alone_with_a_missing_column_reports_no_rows(tmp_path: Path) -> None:
    header = csv_lines(valid_sample("ae_monthly").drop("breaches"))[0]
    report = validate(write_text(tmp_path / "ae.csv", [header]), "ae_monthly")
    assert report.errors[0].check == "missing_column"
    assert report.rows == 0


def test_ragged_rows_count_in_a_refused_files_rows(tmp_path: Path) -> None:
    lines = csv_lines(valid_sample("ae_monthly").drop("breaches"))
    lines.insert(2, lines[1] + ",extra")  # a row with one field too many
    report = validate(write_text(tmp_path / "ae.csv", lines), "ae_monthly")
    assert report.errors[0].check == "missing_column"
    assert report.rows == len(lines) - 1


def test_a_column_named_in_another_case_is_named_in_the_message(tmp_path: Path) -> None:
    frame = valid_sample("rtt_monthly").rename({"org_code": "Org_Code"})
    path = write_csv(frame, tmp_path / "rtt.csv")
    report = validate(path, "rtt_monthly")
    assert_rejected(
        report, path, [(None, "org_code", "missing_column"), (None, "Org_Code", "extra_column")]
    )
    assert "'Org_Code'" in report.errors[0].message
    assert "did you mean org_code?" in report.errors[1].message


def test_columns_in_another_order_and_padded_names_are_accepted(tmp_path: Path) -> None:
    sample = valid_sample("beds_monthly")
    reordered = sample.select(reversed(sample.columns)).rename({"org_code": " org_code "})
    path = write_csv(reordered, tmp_path / "beds.csv")
    assert validate(path, "beds_monthly").status == "accepted"
    assert pl.read_parquet(tmp_path / "out.parquet").equals(normalised(sample))


def test_a_duplicate_column(tmp_path: Path) -> None:
    lines = csv_lines(valid_sample("rtt_monthly"))
    lines = [line + "," + line.split(",")[1] for line in lines]
    path = write_text(tmp_path / "rtt.csv", lines)
    assert_rejected(validate(path, "rtt_monthly"), path, [(None, "org_code", "duplicate_column")])


# ---------------------------------------------------------------------------
# Files that cannot be read
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"  \r\n\t\n", b"\xef\xbb\xbf\n\n"])
def test_an_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "returns.csv"
    path.write_bytes(content)
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "empty_file")])
    assert report.errors[0].message == "the file is empty"
    assert (report.rows, report.format) == (None, None)


@pytest.mark.parametrize("file_format", list(WRITERS))
def test_a_header_only(tmp_path: Path, file_format: str) -> None:
    path = WRITERS[file_format](valid_sample("rtt_monthly").clear(), tmp_path / f"r.{file_format}")
    report = validate(path, "rtt_monthly")
    assert_rejected(report, path, [(None, None, "not_empty")])
    assert report.rows == 0
    assert report.errors[0].message == "the file has no data rows"


def test_binary_bytes_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "returns.csv"
    path.write_bytes(bytes(range(256)) * 64)
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "format")])
    assert "not a CSV text file" in report.errors[0].message
    assert report.rows is None


def test_csv_named_parquet(tmp_path: Path) -> None:
    path = write_csv(valid_sample("ae_monthly"), tmp_path / "upload")
    report = validate(path, "ae_monthly", filename="returns.parquet")
    assert_rejected(report, path, [(None, None, "format")])
    assert report.errors[0].message == (
        "the file is named returns.parquet but its content is CSV text"
    )


@pytest.mark.parametrize(
    ("file_format", "name", "words"),
    [
        ("parquet", "returns.csv", "Parquet"),
        ("xlsx", "returns.csv", "an XLSX workbook"),
        ("csv", "returns.xlsx", "CSV text"),
        ("xlsx", "returns.xls", "an XLSX workbook"),
    ],
)
def test_a_name_that_says_another_format(
    tmp_path: Path, file_format: str, name: str, words: str
) -> None:
    path = WRITERS[file_format](valid_sample("rtt_monthly"), tmp_path / f"upload.{file_format}")
    report = validate(path, "rtt_monthly", filename=name)
    assert_rejected(report, path, [(None, None, "format")])
    assert report.errors[0].message == f"the file is named {name} but its content is {words}"


@pytest.mark.parametrize("name", ["returns.txt", "returns", "RETURNS.CSV"])
def test_a_name_without_a_format_or_in_capitals_trusts_the_content(
    tmp_path: Path, name: str
) -> None:
    path = write_csv(valid_sample("rtt_monthly"), tmp_path / "upload")
    assert validate(path, "rtt_monthly", filename=name).status == "accepted"


def test_a_truncated_parquet(tmp_path: Path) -> None:
    path = truncated_parquet(ecds_frame(500), tmp_path / "ecds.parquet")
    report = validate(path, "ecds_attendance")
    assert_rejected(report, path, [(None, None, "format")])
    assert report.errors[0].message.startswith("the Parquet file is damaged or truncated: ")
    assert report.format == "parquet"


def test_windows_1252_text(tmp_path: Path) -> None:
    lines = csv_lines(valid_sample("ae_monthly"))
    lines[2] = lines[2].replace("RJ1", "RJ£")
    path = write_text(tmp_path / "ae.csv", lines, encoding="cp1252")
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "encoding")])
    assert report.errors[0].message == (
        "the file is not UTF-8 text: byte 0xA3 at line 3; save it as CSV UTF-8"
    )
    assert report.rows is None


def test_windows_1252_deep_in_a_large_file(tmp_path: Path) -> None:
    lines = csv_lines(ecds_frame(3_000))
    lines[2_500] = lines[2_500].replace(",RJ1,", ",RJ\xe9,")
    path = write_text(tmp_path / "ecds.csv", lines, encoding="cp1252")
    report = validate(path, "ecds_attendance", chunk_rows=100)
    assert_rejected(report, path, [(None, None, "encoding")])
    assert "byte 0xE9 at line 2501" in report.errors[0].message


def test_utf16_text(tmp_path: Path) -> None:
    path = tmp_path / "ae.csv"
    path.write_bytes("\n".join(csv_lines(valid_sample("ae_monthly"))).encode("utf-16"))
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "encoding")])


def test_an_old_excel_workbook(tmp_path: Path) -> None:
    path = tmp_path / "returns.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2048))
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "format")])
    assert "Excel 97-2003" in report.errors[0].message


def test_a_ragged_row_is_reported_where_it_is(tmp_path: Path) -> None:
    lines = csv_lines(ecds_frame(8))
    lines[3] += ",extra"  # data row 3
    lines[6] = lines[6].replace(",RJ101,", ",RJ1,")  # data row 6: a value error after it
    path = write_text(tmp_path / "ecds.csv", lines)
    report = validate(path, "ecds_attendance", chunk_rows=2)
    assert_rejected(report, path, [(3, None, "field_count"), (6, "site_code", "length")])
    assert report.errors[0].message.startswith("line 4 has 13 fields but the header has 12")
    assert report.rows == 8


def test_a_ragged_row_after_a_multiline_record(tmp_path: Path) -> None:
    lines = [*csv_lines(valid_sample("rtt_monthly")), "2025-01,RJ1,5"]
    lines[1] = lines[1].replace("RJ1", '"RJ\n1"')
    path = write_text(tmp_path / "rtt.csv", lines)
    report = validate(path, "rtt_monthly")
    assert [(e.row, e.check) for e in report.errors] == [
        (1, "pattern"),
        (1, "submitting_org"),
        (2, "field_count"),
    ]
    assert report.errors[2].message.startswith("line 4 has 3 fields")


def test_many_ragged_rows_keep_the_other_rows_numbered(tmp_path: Path) -> None:
    lines = csv_lines(ecds_frame(40))
    for row in (2, 3, 10, 25):
        lines[row] += ",x"
    lines[30] = lines[30].replace(",RJ101,", ",RJ1,")  # data row 30
    path = write_text(tmp_path / "ecds.csv", lines)
    report = validate(path, "ecds_attendance", chunk_rows=7)
    assert triples(report) == [
        (2, None, "field_count"),
        (3, None, "field_count"),
        (10, None, "field_count"),
        (25, None, "field_count"),
        (30, "site_code", "length"),
    ]
    assert report.rows == 40


def test_ragged_rows_beyond_the_cap_are_counted(tmp_path: Path) -> None:
    lines = [line + ",x" if i else line for i, line in enumerate(csv_lines(ecds_frame(50)))]
    path = write_text(tmp_path / "ecds.csv", lines)
    report = validate(path, "ecds_attendance", chunk_rows=10, max_errors=5)
    assert triples(report)[:5] == [(row, None, "field_count") for row in range(1, 6)]
    assert report.errors[5].check == "max_errors"
    assert report.error_count == 50
    assert not (tmp_path / "out.parquet").exists()


# ---------------------------------------------------------------------------
# XLSX limits
# ---------------------------------------------------------------------------


def test_an_xlsx_zip_bomb_is_refused_unopened(tmp_path: Path) -> None:
    path = zip_bomb(tmp_path / "returns.xlsx")
    assert path.stat().st_size < 2**20
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "unsafe_zip")])
    assert "zip bomb" in report.errors[0].message


def test_an_xlsx_whose_directory_lies_about_sizes_is_refused(tmp_path: Path) -> None:
    path = lying_zip(tmp_path / "returns.xlsx")
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "unsafe_zip")])
    assert "more than its declared size" in report.errors[0].message


def test_a_large_xlsx_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xlsx(valid_sample("ae_monthly"), tmp_path / "ae.xlsx")
    monkeypatch.setattr(xlsx_source, "XLSX_MAX_BYTES", path.stat().st_size - 1)
    report = validate(path, "ae_monthly")
    assert_rejected(report, path, [(None, None, "too_large")])
    assert "send large returns as CSV or Parquet" in report.errors[0].message


def test_a_damaged_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(valid_sample("ae_monthly"), tmp_path / "ae.xlsx")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_rejected(validate(path, "ae_monthly"), path, [(None, None, "format")])


# ---------------------------------------------------------------------------
# Many errors, and what is left on disk
# ---------------------------------------------------------------------------


def test_errors_stop_at_the_cap_and_reading_stops_early(tmp_path: Path) -> None:
    frame = ecds_frame(1_000).with_columns(age=pl.lit(200, pl.Int64))
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance", chunk_rows=100, max_errors=150)
    assert report.status == "rejected"
    assert len(report.errors) == 151
    assert triples(report)[:2] == [(1, "age", "in_range"), (2, "age", "in_range")]
    assert report.errors[-1].check == "max_errors"
    assert "at least 50 more" in report.errors[-1].message
    assert report.error_count == 200  # two chunks read, then reading stopped
    assert report.rows == 200
    assert not (tmp_path / "out.parquet").exists()


def test_errors_over_the_cap_in_one_chunk(tmp_path: Path) -> None:
    frame = ecds_frame(30).with_columns(age=pl.lit(-1, pl.Int64))
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance", max_errors=10)
    assert len(report.errors) == 11
    assert report.error_count == 30
    assert report.errors[-1].message.startswith("the report stops at 10 errors: at least 20 more")


def test_a_rejected_file_replaces_an_earlier_output(tmp_path: Path) -> None:
    (tmp_path / "out.parquet").write_bytes(b"left from an earlier run")
    path = write_csv(valid_sample("rtt_monthly", org_code="R0A"), tmp_path / "rtt.csv")
    assert validate(path, "rtt_monthly").status == "rejected"
    assert not (tmp_path / "out.parquet").exists()


def test_a_late_error_removes_the_chunks_already_written(tmp_path: Path) -> None:
    frame = with_cell(ecds_frame(300), "attendance_id", 299, 1)
    path = write_csv(frame, tmp_path / "ecds.csv")
    report = validate(path, "ecds_attendance", chunk_rows=50)
    assert_rejected(report, path, [(300, "attendance_id", "unique_key")])


def test_without_write_to_nothing_is_written(tmp_path: Path) -> None:
    path = write_csv(valid_sample("rtt_monthly"), tmp_path / "rtt.csv")
    report = validate_file(
        path=path,
        filename="rtt.csv",
        dataset=get_dataset("rtt_monthly"),
        org_code=ORG_CODE,
        period=PERIOD,
    )
    assert report.status == "accepted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtt.csv"]


# ---------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------

_COUNT = st.integers(min_value=0, max_value=1_000_000_000)


@st.composite
def ae_monthly_returns(draw: st.DrawFn) -> tuple[pl.DataFrame, str]:
    """A valid ae_monthly return, its rows in any order, and the submission's period."""
    year = draw(st.integers(min_value=2000, max_value=2099))
    month = draw(st.integers(min_value=1, max_value=12))
    period = f"{year}-{month:02d}"
    rows = []
    for department_type in draw(st.permutations(["1", "2", "other"])):
        attendances = draw(_COUNT)
        rows.append(
            {
                "period": period + draw(st.sampled_from(["", "-01"])),
                "org_code": ORG_CODE,
                "department_type": department_type,
                "attendances": attendances,
                "breaches": draw(st.integers(min_value=0, max_value=attendances)),
                "admissions": draw(_COUNT),
            }
        )
    schema = get_dataset("ae_monthly").polars_schema()
    return pl.DataFrame(rows, schema=schema, orient="row"), period


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ae_monthly_returns(), st.sampled_from(list(WRITERS)))
def test_valid_returns_round_trip(
    tmp_path: Path, drawn: tuple[pl.DataFrame, str], file_format: str
) -> None:
    frame, period = drawn
    path = WRITERS[file_format](frame, tmp_path / f"ae.{file_format}")
    report = validate(path, "ae_monthly", period=period, chunk_rows=2)
    assert report.status == "accepted", report.errors
    assert pl.read_parquet(tmp_path / "out.parquet").equals(normalised(frame))


# ---------------------------------------------------------------------------
# The shortcut past pandera agrees with pandera
# ---------------------------------------------------------------------------


def _chunk_checks_broken() -> list[object]:
    """(code, frame) for a frame breaking each check the validator runs chunk by chunk."""
    cases: list[object] = []
    for code, dataset in DATASETS.items():
        sample = valid_sample(code)
        for column in dataset.columns:
            for check in column.checks:
                for number, bad in enumerate(BAD_VALUES[type(check)](check)):
                    frame = with_value(sample, column.name, 0, bad)
                    cases.append(pytest.param(code, frame, id=f"{code}-{column.name}-{number}"))
            cases.append(
                pytest.param(
                    code, with_value(sample, column.name, 0, None), id=f"{code}-{column.name}-null"
                )
            )
        for rule in dataset.rules:
            if rule.name not in _WHOLE_FILE:
                frame = break_rule(rule, sample)
                cases.append(pytest.param(code, frame, id=f"{code}-{rule.name}"))
        cases.append(pytest.param(code, sample.drop(sample.columns[-1]), id=f"{code}-missing"))
        cases.append(pytest.param(code, sample.with_columns(x=pl.lit(1)), id=f"{code}-extra"))
    return cases


@pytest.mark.parametrize("code", CODES)
def test_a_clean_chunk_takes_the_shortcut(code: str) -> None:
    shortcut = _Shortcut(get_dataset(code), org_code=ORG_CODE, period=PERIOD)
    assert shortcut.passes(valid_sample(code))


@pytest.mark.parametrize(("code", "frame"), _chunk_checks_broken())
def test_the_shortcut_sends_every_failing_chunk_to_pandera(code: str, frame: pl.DataFrame) -> None:
    dataset = get_dataset(code)
    shortcut = _Shortcut(dataset, org_code=ORG_CODE, period=PERIOD)
    schema = _chunk_schema(dataset, org_code=ORG_CODE, period=PERIOD)
    assert not shortcut.passes(frame)
    assert not _pandera_failures(schema, frame).is_empty()


@pytest.mark.parametrize(("code", "frame"), _chunk_checks_broken())
def test_the_shortcut_describes_a_failing_chunk_exactly_as_pandera(
    code: str, frame: pl.DataFrame
) -> None:
    dataset = get_dataset(code)
    shortcut = _Shortcut(dataset, org_code=ORG_CODE, period=PERIOD)
    schema = _chunk_schema(dataset, org_code=ORG_CODE, period=PERIOD)
    described = shortcut.failures(frame)
    if frame.schema != shortcut.schema:
        assert described is None  # a missing or extra column: only pandera says
        return
    assert described is not None
    assert described.equals(_pandera_failures(schema, frame))


def _broken_cells(code: str) -> st.SearchStrategy[pl.DataFrame]:
    """The dataset's sample with bad values (or nothing) in random cells of random rows."""
    dataset = get_dataset(code)
    sample = valid_sample(code)
    choices = [
        (column.name, bad)
        for column in dataset.columns
        for check in column.checks
        for bad in BAD_VALUES[type(check)](check)
    ] + [(column.name, None) for column in dataset.columns]
    edits = st.lists(
        st.tuples(st.integers(0, sample.height - 1), st.sampled_from(choices)),
        min_size=1,
        max_size=12,
    )

    def apply(changes: list[tuple[int, tuple[str, object]]]) -> pl.DataFrame:
        frame = sample
        for row, (column, bad) in changes:
            frame = with_value(frame, column, row, bad)
        return frame

    return edits.map(apply)


@pytest.mark.parametrize("code", CODES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_many_failures_in_a_chunk_are_described_as_pandera_does(
    code: str, data: st.DataObject
) -> None:
    dataset = get_dataset(code)
    frame = data.draw(_broken_cells(code))
    shortcut = _Shortcut(dataset, org_code=ORG_CODE, period=PERIOD)
    described = shortcut.failures(frame)
    if frame.schema != shortcut.schema:
        assert described is None
        return
    schema = _chunk_schema(dataset, org_code=ORG_CODE, period=PERIOD)
    assert described is not None
    assert described.equals(_pandera_failures(schema, frame))
