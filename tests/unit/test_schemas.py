"""The reference dataset definitions and what they compile to."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from datetime import date, datetime, timedelta
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import DATASETS, ITEMS, consistency_problems, datasets_carrying, get_dataset
from schemas.compile import publication
from schemas.compile.derive import derive
from schemas.compile.pandera_schema import pandera_schema
from schemas.model import (
    AllValuesPresent,
    Column,
    ColumnCheck,
    Dataset,
    Derivation,
    InRange,
    InSubmissionPeriod,
    Length,
    NotGreaterThan,
    Pattern,
    Rule,
    SubmittedBy,
)
from tests.schema_samples import (
    BAD_VALUES,
    ORG_CODE,
    PERIOD,
    SAMPLES,
    break_rule,
    ecds_attendance_sample,
    valid_sample,
    with_value,
)

CONTEXT = {"org_code": ORG_CODE, "period": PERIOD}

# ---------------------------------------------------------------------------
# How to run a schema and read its failures
# ---------------------------------------------------------------------------


def failure_cases(dataset: Dataset, frame: pl.DataFrame, **context: str) -> pl.DataFrame:
    """pandera's failure_cases for the frame (empty when it is valid)."""
    try:
        pandera_schema(dataset, **context).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases: pl.DataFrame = errors.failure_cases
        return cases
    return pl.DataFrame(schema={"column": pl.String, "check": pl.String, "index": pl.Int32})


def failed(dataset: Dataset, frame: pl.DataFrame, **context: str) -> set[tuple[str, str]]:
    """The (column, check) pairs that failed; frame-level failures carry the dataset code."""
    cases = failure_cases(dataset, frame, **context)
    return set(cases.select("column", "check").iter_rows())


def failed_rows(dataset: Dataset, frame: pl.DataFrame, column: str, check: str) -> set[int]:
    """0-based rows at which that check failed on that column."""
    cases = failure_cases(dataset, frame, **CONTEXT)
    hits = cases.filter((pl.col("column") == column) & (pl.col("check") == check))
    return set(hits["index"].to_list())


def assert_messages_exist(dataset: Dataset, frame: pl.DataFrame, **context: str) -> None:
    """Every failure pandera reports has a plain-English message from the definition."""
    for column, check in failed(dataset, frame, **context):
        assert dataset.describe_check(column=column, check=check), (column, check)


def test_every_kind_of_check_has_a_bad_value_generator() -> None:
    assert set(typing.get_args(ColumnCheck)) == set(BAD_VALUES)


def test_every_kind_of_rule_is_declared_and_so_tested() -> None:
    # The rule tests run over declared rules; break_rule fails on a kind it cannot break.
    declared = {type(rule) for dataset in DATASETS.values() for rule in dataset.rules}
    assert declared == set(typing.get_args(Rule))


COLUMN_CHECKS = [
    pytest.param(code, column.name, check, id=f"{code}-{column.name}-{check.name}")
    for code, dataset in DATASETS.items()
    for column in dataset.columns
    for check in column.checks
]
RULES = [
    pytest.param(code, rule, id=f"{code}-{rule.column or code}-{rule.name}")
    for code, dataset in DATASETS.items()
    for rule in dataset.rules
]
COLUMNS = [
    pytest.param(code, column, id=f"{code}-{column.name}")
    for code, dataset in DATASETS.items()
    for column in dataset.columns
]
CODES = list(DATASETS)


# ---------------------------------------------------------------------------
# Valid samples pass
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_valid_sample_passes(code: str) -> None:
    dataset = get_dataset(code)
    frame = valid_sample(code)
    assert pandera_schema(dataset).validate(frame, lazy=True).equals(frame)
    assert failed(dataset, frame, **CONTEXT) == set()


def test_every_dataset_has_a_sample() -> None:
    assert set(SAMPLES) == set(DATASETS)


def test_admissions_may_exceed_attendances() -> None:
    dataset = get_dataset("ae_monthly")
    frame = with_value(valid_sample("ae_monthly"), "admissions", 1, 10_000)
    assert failed(dataset, frame, **CONTEXT) == set()


def test_period_may_be_the_first_day_of_the_month() -> None:
    dataset = get_dataset("rtt_monthly")
    frame = with_value(valid_sample("rtt_monthly"), "period", 0, PERIOD + "-01")
    assert failed(dataset, frame, **CONTEXT) == set()


# ---------------------------------------------------------------------------
# Every declared check fails on a bad value, and says so by name
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "column", "check"), COLUMN_CHECKS)
def test_column_check_rejects_a_bad_value(code: str, column: str, check: ColumnCheck) -> None:
    dataset = get_dataset(code)
    bad_values = BAD_VALUES[type(check)](check)
    assert bad_values
    for bad in bad_values:
        frame = with_value(valid_sample(code), column, 0, bad)
        assert failed_rows(dataset, frame, column, check.name) == {0}, bad
        assert dataset.describe_check(column=column, check=check.name) == check.describe()
        assert_messages_exist(dataset, frame, **CONTEXT)


@pytest.mark.parametrize(("code", "rule"), RULES)
def test_rule_rejects_a_breaking_row(code: str, rule: Rule) -> None:
    dataset = get_dataset(code)
    frame = break_rule(rule, valid_sample(code))
    target = rule.column or code
    assert (target, rule.name) in failed(dataset, frame, **CONTEXT)
    if rule.column is not None and not isinstance(rule, AllValuesPresent):
        assert failed_rows(dataset, frame, rule.column, rule.name) == {0}
    assert dataset.describe_check(column=target, check=rule.name) == rule.describe()
    assert_messages_exist(dataset, frame, **CONTEXT)


@pytest.mark.parametrize(("code", "rule"), RULES)
def test_submission_rules_need_the_submission(code: str, rule: Rule) -> None:
    dataset = get_dataset(code)
    frame = break_rule(rule, valid_sample(code))
    names = {check for _, check in failed(dataset, frame)}
    assert (rule.name in names) is not isinstance(rule, SubmittedBy | InSubmissionPeriod)


def test_all_department_types_fail_on_every_row_of_the_incomplete_return() -> None:
    dataset = get_dataset("ae_monthly")
    frame = valid_sample("ae_monthly").filter(pl.col("department_type") != "2")
    assert failed_rows(dataset, frame, "department_type", "all_values_present") == {0, 1}


@pytest.mark.parametrize("code", CODES)
def test_duplicate_key_is_rejected(code: str) -> None:
    dataset = get_dataset(code)
    sample = valid_sample(code)
    frame = pl.concat([sample, sample.head(1)])
    assert (code, "unique_key") in failed(dataset, frame)
    assert failed_rows(dataset, frame, code, "unique_key") == {0, frame.height - 1}
    assert_messages_exist(dataset, frame)


@pytest.mark.parametrize(("code", "column"), COLUMNS)
def test_wrong_dtype_is_rejected_alone(code: str, column: Column) -> None:
    dataset = get_dataset(code)
    sample = valid_sample(code)
    if column.dtype == "string":
        # Distinct numbers, so that a key column stays unique.
        wrong = pl.int_range(pl.len(), dtype=pl.Int64)
    else:
        wrong = pl.col(column.name).cast(pl.String)
    frame = sample.with_columns(wrong.alias(column.name))
    # Checks and rules that read a mistyped column stand aside: one error, not a crash report.
    assert failed(dataset, frame) == {(column.name, f"dtype('{column.polars_dtype}')")}
    assert_messages_exist(dataset, frame)


@pytest.mark.parametrize(("code", "column"), COLUMNS)
def test_missing_column_is_rejected(code: str, column: Column) -> None:
    dataset = get_dataset(code)
    frame = valid_sample(code).drop(column.name)
    cases = failure_cases(dataset, frame, **CONTEXT)
    missing = cases.filter(pl.col("check") == "column_in_dataframe")
    assert missing["failure_case"].to_list() == [column.name]
    assert not cases["check"].str.contains("Error").any()
    assert_messages_exist(dataset, frame, **CONTEXT)


@pytest.mark.parametrize(("code", "column"), COLUMNS)
def test_null_is_rejected(code: str, column: Column) -> None:
    dataset = get_dataset(code)
    frame = with_value(valid_sample(code), column.name, 0, None)
    assert failed_rows(dataset, frame, column.name, "not_nullable") == {0}
    assert_messages_exist(dataset, frame, **CONTEXT)


@pytest.mark.parametrize("code", CODES)
def test_extra_column_is_rejected(code: str) -> None:
    dataset = get_dataset(code)
    frame = valid_sample(code).with_columns(pl.lit("x").alias("notes"))
    cases = failure_cases(dataset, frame)
    extra = cases.filter(pl.col("check") == "column_in_schema")
    assert extra["failure_case"].to_list() == ["notes"]
    assert_messages_exist(dataset, frame)


def test_an_empty_file_with_a_mistyped_column_reports_both() -> None:
    # pandera cannot merge a check that returns a bare bool with other failures, so not_empty
    # returns a one-row frame; this guards that choice.
    dataset = get_dataset("rtt_monthly")
    frame = valid_sample("rtt_monthly").clear().with_columns(pl.col("period").cast(pl.Int64))
    assert failed(dataset, frame) == {
        ("rtt_monthly", "not_empty"),
        ("period", "dtype('String')"),
    }


def test_times_with_a_time_zone_are_a_type_error() -> None:
    # Returns give local times; the reader must not hand over time-zone-aware columns.
    dataset = get_dataset("ecds_attendance")
    frame = valid_sample("ecds_attendance").with_columns(
        pl.col("arrival_time").dt.replace_time_zone("UTC")
    )
    assert failed(dataset, frame) == {
        ("arrival_time", "dtype('Datetime(time_unit='us', time_zone=None)')")
    }


def test_every_failure_is_reported_at_once() -> None:
    dataset = get_dataset("ae_monthly")
    frame = valid_sample("ae_monthly")
    frame = with_value(frame, "attendances", 0, -1)
    frame = with_value(frame, "breaches", 1, frame["attendances"][1] + 1)
    frame = frame.with_columns(org_code=pl.lit("rj1"))
    frame = frame.with_columns(pl.col("admissions").cast(pl.Float64))
    assert failed(dataset, frame, **CONTEXT) == {
        ("attendances", "in_range"),
        ("breaches", "not_greater_than"),
        ("org_code", "pattern"),
        ("org_code", "submitting_org"),
        ("admissions", "dtype('Int64')"),
    }


def test_a_collected_frame_is_validated_not_a_lazy_frame() -> None:
    # pandera validates a pl.LazyFrame for column names and types only (its default depth for
    # lazy frames is SCHEMA_ONLY), so a bad value would pass silently. The validator collects
    # the file first and validates the pl.DataFrame, which runs every value check.
    dataset = get_dataset("rtt_monthly")
    bad = with_value(valid_sample("rtt_monthly"), "waits_over_18_weeks", 0, -5)
    schema = pandera_schema(dataset)
    with pytest.raises(pa.errors.SchemaErrors) as raised:
        schema.validate(bad, lazy=True)
    assert ("waits_over_18_weeks", "in_range") in set(
        raised.value.failure_cases.select("column", "check").iter_rows()
    )
    # The pitfall itself, kept visible: the same bad value passes as a LazyFrame.
    schema.validate(bad.lazy(), lazy=True).collect()


@pytest.mark.parametrize(
    ("period", "inside", "outside"),
    [
        pytest.param(
            "2025-01",
            [datetime(2025, 1, 1), datetime(2025, 1, 31, 23, 59, 59, 999_999)],
            [datetime(2024, 12, 31, 23, 59, 59, 999_999), datetime(2025, 2, 1)],
            id="january",
        ),
        pytest.param(
            "2024-12",
            [datetime(2024, 12, 1), datetime(2024, 12, 31, 23, 59)],
            [datetime(2024, 11, 30, 23, 59), datetime(2025, 1, 1), datetime(2023, 12, 15)],
            id="december-into-the-next-year",
        ),
    ],
)
def test_in_period_on_times_is_the_calendar_month(
    period: str, inside: list[datetime], outside: list[datetime]
) -> None:
    rule = InSubmissionPeriod(column="t", dtype="datetime")
    frame = pl.DataFrame({"t": inside + outside}, schema={"t": pl.Datetime("us")})
    passes = frame.select(rule.expression(org_code=None, period=period)).to_series().to_list()
    assert passes == [True] * len(inside) + [False] * len(outside)


def test_in_period_on_dates_and_text() -> None:
    days = pl.DataFrame({"d": [date(2025, 2, 1), date(2025, 2, 28), date(2025, 3, 1)]})
    in_days = InSubmissionPeriod(column="d", dtype="date")
    on_days = in_days.expression(org_code=None, period="2025-02")
    assert days.select(on_days).to_series().to_list() == [True, True, False]
    texts = pl.DataFrame({"p": ["2025-02", "2025-02-01", "2025-03", "2025-03-01"]})
    on_text = InSubmissionPeriod(column="p").expression(org_code=None, period="2025-02")
    assert texts.select(on_text).to_series().to_list() == [True, True, False, False]


def test_in_period_must_state_its_column_type() -> None:
    ecds = get_dataset("ecds_attendance")
    rules = tuple(
        dataclasses.replace(rule, dtype="string") if isinstance(rule, InSubmissionPeriod) else rule
        for rule in ecds.rules
    )
    with pytest.raises(ValueError, match="in_period on arrival_time says string"):
        dataclasses.replace(ecds, rules=rules)


def test_period_of_the_submission_must_be_a_month() -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        pandera_schema(get_dataset("ae_monthly"), period="2025-1")


# ---------------------------------------------------------------------------
# Published forms: definition, Table Schema, template, fingerprint
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_definition_is_json_and_has_the_contract_fields(code: str) -> None:
    dataset = get_dataset(code)
    definition = publication.definition(dataset)
    assert json.loads(json.dumps(definition)) == definition
    assert definition["code"] == code
    assert definition["key"] == list(dataset.key)
    assert definition["items"] == list(dataset.items)
    assert set(definition["burden"]) >= {"base_minutes", "minutes_per_item", "source"}
    for column, entry in zip(dataset.columns, definition["columns"], strict=True):
        assert entry["name"] == column.name
        assert entry["type"] == column.dtype
        assert entry["required"] is True
        assert [c["name"] for c in entry["checks"]] == [c.name for c in column.checks]
        assert all(c["description"] for c in entry["checks"])
    assert [r["name"] for r in definition["rules"]] == [r.name for r in dataset.rules]


@pytest.mark.parametrize("code", CODES)
def test_table_schema_mirrors_the_definition(code: str) -> None:
    dataset = get_dataset(code)
    table = publication.table_schema(dataset)
    json.dumps(table)
    assert [f["name"] for f in table["fields"]] == [c.name for c in dataset.columns]
    assert table["primaryKey"] == list(dataset.key)
    assert set(table["primaryKey"]) <= {f["name"] for f in table["fields"]}
    known = {"required", "minimum", "maximum", "enum", "pattern", "minLength", "maxLength"}
    for column, entry in zip(dataset.columns, table["fields"], strict=True):
        assert entry["type"] in {"string", "integer", "boolean", "datetime", "date"}
        assert entry["type"] == column.dtype
        assert entry["description"]
        constraints = entry["constraints"]
        assert set(constraints) <= known
        assert constraints["required"] is True
        for check in column.checks:
            assert publication.constraints(check).items() <= constraints.items()
    assert [r["name"] for r in table["x-rules"]] == [r.name for r in dataset.rules]
    assert all(r["description"] for r in table["x-rules"])


@pytest.mark.parametrize("code", CODES)
def test_table_schema_patterns_accept_the_sample(code: str) -> None:
    # Table Schema patterns match in full (XML Schema style); the sample must satisfy them too.
    dataset = get_dataset(code)
    sample = valid_sample(code)
    for entry in publication.table_schema(dataset)["fields"]:
        pattern = entry["constraints"].get("pattern")
        if pattern is not None:
            assert all(re.fullmatch(pattern, value) for value in sample[entry["name"]])


@pytest.mark.parametrize("code", CODES)
def test_template_header_is_the_column_order(code: str) -> None:
    dataset = get_dataset(code)
    template = publication.template_csv(dataset)
    assert template.endswith("\r\n")
    assert template.count("\n") == 1
    assert template.rstrip("\r\n").split(",") == [c.name for c in dataset.columns]
    assert pl.read_csv(template.encode()).columns == list(dataset.polars_schema())


@pytest.mark.parametrize("code", CODES)
def test_fingerprint_is_stable_and_follows_the_definition(code: str) -> None:
    dataset = get_dataset(code)
    fingerprint = publication.fingerprint(dataset)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert publication.fingerprint(dataset) == fingerprint
    assert publication.fingerprint(dataclasses.replace(dataset)) == fingerprint
    first = dataset.columns[0]
    changes = [
        dataclasses.replace(dataset, version=dataset.version + 1),
        dataclasses.replace(dataset, description=dataset.description + "."),
        dataclasses.replace(
            dataset,
            columns=(dataclasses.replace(first, description="changed"), *dataset.columns[1:]),
        ),
        dataclasses.replace(dataset, rules=dataset.rules[:-1]),
        dataclasses.replace(
            dataset, burden=dataclasses.replace(dataset.burden, minutes_per_item=99)
        ),
    ]
    assert len({fingerprint, *(publication.fingerprint(changed) for changed in changes)}) == 6


def test_fingerprint_follows_a_check_parameter() -> None:
    dataset = get_dataset("ecds_attendance")
    age = dataset.column("age")
    older = dataclasses.replace(age, checks=(InRange(min=0, max=130),))
    columns = tuple(older if c.name == "age" else c for c in dataset.columns)
    changed = dataclasses.replace(dataset, columns=columns)
    assert publication.fingerprint(changed) != publication.fingerprint(dataset)


def test_fingerprints_differ_between_datasets() -> None:
    assert len({publication.fingerprint(d) for d in DATASETS.values()}) == len(DATASETS)


# ---------------------------------------------------------------------------
# The catalogue: items, datasets and their consistency
# ---------------------------------------------------------------------------


def test_catalogue_is_consistent() -> None:
    assert consistency_problems() == []


def test_datasets_in_contract_order() -> None:
    assert list(DATASETS) == ["ae_monthly", "ecds_attendance", "beds_monthly", "rtt_monthly"]


def test_items_as_in_the_contract() -> None:
    expected = {
        "ae_attendances": ("ae_monthly", "sum", ("department_type",)),
        "ae_breaches": ("ae_monthly", "sum", ("department_type",)),
        "ae_admissions": ("ae_monthly", "sum", ("department_type",)),
        "beds_ga_available": ("beds_monthly", "mean", ()),
        "beds_ga_occupied": ("beds_monthly", "mean", ()),
        "beds_cc_available": ("beds_monthly", "mean", ()),
        "beds_cc_occupied": ("beds_monthly", "mean", ()),
        "rtt_over_18_weeks": ("rtt_monthly", "last", ()),
        "rtt_over_52_weeks": ("rtt_monthly", "last", ()),
    }
    assert {
        code: (item.primary_dataset, item.aggregation, item.disaggregation)
        for code, item in ITEMS.items()
    } == expected
    assert all(item.org_aggregation == "sum" for item in ITEMS.values())
    assert all(item.name and item.definition and item.unit for item in ITEMS.values())


def test_ecds_has_no_period_column_and_the_others_do() -> None:
    assert {code: d.has_period_column for code, d in DATASETS.items()} == {
        "ae_monthly": True,
        "ecds_attendance": False,
        "beds_monthly": True,
        "rtt_monthly": True,
    }


def test_lookups() -> None:
    assert get_dataset("rtt_monthly") is DATASETS["rtt_monthly"]
    with pytest.raises(KeyError):
        get_dataset("nope")
    assert datasets_carrying("ae_breaches") == ["ae_monthly"]
    assert datasets_carrying("nope") == []
    assert schemas.datasets_deriving("ae_breaches") == ["ecds_attendance"]
    assert schemas.datasets_deriving("rtt_over_18_weeks") == []


def test_consistency_check_finds_problems() -> None:
    rtt = get_dataset("rtt_monthly")
    orphan = dataclasses.replace(ITEMS["rtt_over_18_weeks"], code="x", primary_dataset="nowhere")
    uncarried = dataclasses.replace(ITEMS["rtt_over_18_weeks"], code="y")
    derivation = dataclasses.replace(get_dataset("ecds_attendance").derivations[0], item="z")
    ecds = dataclasses.replace(get_dataset("ecds_attendance"), derivations=(derivation,))
    problems = consistency_problems(
        {"rtt_monthly": rtt, "ecds_attendance": ecds},
        {**ITEMS, "x": orphan, "y": uncarried},
    )
    assert any("x: primary dataset nowhere is unknown" in p for p in problems)
    assert any("y: primary dataset rtt_monthly does not carry it" in p for p in problems)
    assert any("derives unknown item z" in p for p in problems)


def test_consistency_check_finds_a_derivation_at_another_grain() -> None:
    ecds = get_dataset("ecds_attendance")
    coarse = tuple(dataclasses.replace(d, group_by=("org_code",)) for d in ecds.derivations)
    datasets = {**DATASETS, "ecds_attendance": dataclasses.replace(ecds, derivations=coarse)}
    assert any("not by the key of ae_monthly" in p for p in consistency_problems(datasets))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"key": ("period", "nope")}, id="unknown-key-column"),
        pytest.param({"items": {"ae_attendances": "department_type"}}, id="item-on-text"),
        pytest.param({"items": {"ae_attendances": "nope"}}, id="item-on-unknown-column"),
        pytest.param({"rules": (NotGreaterThan(column="breaches", other="x"),)}, id="rule"),
        pytest.param({"version": 0}, id="version"),
    ],
)
def test_inconsistent_dataset_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(get_dataset("ae_monthly"), **change)


def test_check_on_the_wrong_type_is_refused() -> None:
    counted = Column(name="n", dtype="integer", description="n", checks=(Length(exact=3),))
    with pytest.raises(ValueError, match="does not apply"):
        dataclasses.replace(get_dataset("rtt_monthly"), columns=(counted,), key=("n",))


def test_anchored_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="without"):
        Pattern(regex="^[A-Z]{3}$")


def test_item_code_must_be_a_name() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(ITEMS["ae_breaches"], code="AE breaches")


# ---------------------------------------------------------------------------
# Derivations: ecds_attendance rows to ae_monthly figures
# ---------------------------------------------------------------------------


def test_ecds_derives_the_ae_items() -> None:
    ecds = get_dataset("ecds_attendance")
    derived = derive(ecds, ecds_attendance_sample().lazy()).collect()
    assert derived.rows() == [
        (PERIOD, ORG_CODE, "1", 3, 1, 2),
        (PERIOD, ORG_CODE, "2", 1, 0, 0),
        (PERIOD, ORG_CODE, "other", 2, 1, 1),
    ]
    assert derived.columns == [
        "period",
        "org_code",
        "department_type",
        "ae_attendances",
        "ae_breaches",
        "ae_admissions",
    ]


def test_derived_rows_are_a_valid_ae_monthly_return() -> None:
    ecds, ae = get_dataset("ecds_attendance"), get_dataset("ae_monthly")
    # Only type 1 attendances: the other department types are still there, as zeros.
    rows = ecds_attendance_sample().filter(pl.col("department_type") == "1").lazy()
    derived = derive(ecds, rows).collect().rename(dict(ae.items))
    assert derived["department_type"].to_list() == ["1", "2", "other"]
    assert derived.filter(pl.col("department_type") != "1")["attendances"].to_list() == [0, 0]
    assert failed(ae, derived, **CONTEXT) == set()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=60 * 24 * 30),
            st.integers(min_value=0, max_value=2000),
            st.sampled_from(["1", "2", "other"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_derived_counts_add_up(visits: list[tuple[int, int, str, bool]]) -> None:
    ecds = get_dataset("ecds_attendance")
    start = datetime(2025, 1, 1)
    template = ecds_attendance_sample().head(1)
    frame = pl.concat(
        [
            template.with_columns(
                attendance_id=pl.lit(number, dtype=pl.Int64),
                arrival_time=pl.lit(start + timedelta(minutes=offset)),
                departure_time=pl.lit(start + timedelta(minutes=offset + minutes)),
                minutes_in_department=pl.lit(minutes, dtype=pl.Int64),
                department_type=pl.lit(kind),
                admitted=pl.lit(admitted),
            )
            for number, (offset, minutes, kind, admitted) in enumerate(visits)
        ]
    )
    assert failed(ecds, frame, **CONTEXT) == set()
    derived = derive(ecds, frame.lazy()).collect()
    assert derived["ae_attendances"].sum() == len(visits)
    assert derived["ae_breaches"].sum() == sum(minutes > 240 for _, minutes, _, _ in visits)
    assert derived["ae_admissions"].sum() == sum(admitted for *_, admitted in visits)
    assert (derived["ae_breaches"] <= derived["ae_attendances"]).all()


def test_derivation_is_compared_without_its_expression() -> None:
    first = get_dataset("ecds_attendance").derivations[0]
    assert isinstance(first, Derivation)
    assert dataclasses.replace(first, expression=pl.len() + 1) == first
