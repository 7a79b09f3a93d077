"""Small valid returns for each reference dataset, typed exactly as the schemas expect, and the
ways to make them invalid (a bad value for each kind of check, a break of each kind of rule)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from schemas import get_dataset
from schemas.model import (
    AllValuesPresent,
    InRange,
    InSubmissionPeriod,
    Length,
    NotBefore,
    NotEmpty,
    NotGreaterThan,
    OneOf,
    Pattern,
    Rule,
    SubmittedBy,
)

ORG_CODE = "RJ1"
PERIOD = "2025-01"


def _frame(code: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows as a frame with the dataset's column order and polars types."""
    return pl.DataFrame(rows, schema=get_dataset(code).polars_schema(), orient="row")


def ae_monthly_sample(*, org_code: str = ORG_CODE, period: str = PERIOD) -> pl.DataFrame:
    """Three rows, one per department type; admissions may exceed attendances."""
    rows = [
        ("1", 9120, 2104, 2561),
        ("2", 310, 0, 4),
        ("other", 4012, 37, 12),
    ]
    return _frame(
        "ae_monthly",
        [
            {
                "period": period,
                "org_code": org_code,
                "department_type": department_type,
                "attendances": attendances,
                "breaches": breaches,
                "admissions": admissions,
            }
            for department_type, attendances, breaches, admissions in rows
        ],
    )


def ecds_attendance_sample(*, org_code: str = ORG_CODE, period: str = PERIOD) -> pl.DataFrame:
    """Six attendances arriving in the period; two over 4 hours, three admitted."""
    start = datetime.strptime(period + "-01", "%Y-%m-%d")
    # (day, hour, minutes in department, department type, admitted, sex, arrival mode, acuity)
    visits = [
        (1, 8, 95, "1", False, "1", "walk-in", 4),
        (1, 23, 312, "1", True, "2", "ambulance", 2),
        (5, 14, 240, "1", True, "9", "ambulance", 3),
        (9, 10, 45, "2", False, "0", "walk-in", 5),
        (17, 16, 250, "other", True, "2", "other", 1),
        (30, 22, 0, "other", False, "1", "walk-in", 5),
    ]
    rows = []
    for number, (day, hour, minutes, kind, admitted, sex, mode, acuity) in enumerate(visits):
        arrival = start + timedelta(days=day - 1, hours=hour)
        rows.append(
            {
                "attendance_id": 700_000 + number,
                "org_code": org_code,
                "site_code": org_code + "01",
                "arrival_time": arrival,
                "departure_time": arrival + timedelta(minutes=minutes),
                "age": [0, 34, 87, 120, 52, 19][number],
                "sex": sex,
                "arrival_mode": mode,
                "acuity": acuity,
                "department_type": kind,
                "admitted": admitted,
                "minutes_in_department": minutes,
            }
        )
    return _frame("ecds_attendance", rows)


def beds_monthly_sample(*, org_code: str = ORG_CODE, period: str = PERIOD) -> pl.DataFrame:
    """One row, with the period written as the first day of the month."""
    return _frame(
        "beds_monthly",
        [
            {
                "period": period + "-01",
                "org_code": org_code,
                "ga_beds_available": 812,
                "ga_beds_occupied": 771,
                "cc_beds_available": 34,
                "cc_beds_occupied": 34,
            }
        ],
    )


def rtt_monthly_sample(*, org_code: str = ORG_CODE, period: str = PERIOD) -> pl.DataFrame:
    """One row."""
    return _frame(
        "rtt_monthly",
        [
            {
                "period": period,
                "org_code": org_code,
                "waits_over_18_weeks": 18_450,
                "waits_over_52_weeks": 412,
            }
        ],
    )


SAMPLES: Mapping[str, Callable[..., pl.DataFrame]] = {
    "ae_monthly": ae_monthly_sample,
    "ecds_attendance": ecds_attendance_sample,
    "beds_monthly": beds_monthly_sample,
    "rtt_monthly": rtt_monthly_sample,
}


def valid_sample(code: str, *, org_code: str = ORG_CODE, period: str = PERIOD) -> pl.DataFrame:
    """A valid return of the dataset for that trust and period."""
    return SAMPLES[code](org_code=org_code, period=period)


# ---------------------------------------------------------------------------
# Samples made invalid: one cell replaced, a rule broken
# ---------------------------------------------------------------------------


def with_value(frame: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    """The frame with one cell replaced, keeping the column's type."""
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


# ---------------------------------------------------------------------------
# Bad values, generated from the check type: a new kind of check fails here until it has one
# ---------------------------------------------------------------------------


def _in_range_bad(check: InRange) -> list[Any]:
    return [check.min - 1, check.max + 1]


def _one_of_bad(check: OneOf) -> list[Any]:
    return ["".join(check.values) + "x"]


def _length_bad(check: Length) -> list[Any]:
    return ["x" * (check.exact - 1), "x" * (check.exact + 1)]


def _pattern_bad(check: Pattern) -> list[Any]:
    # Near misses of the patterns in use, then anything else.
    candidates = ["2025-13", "2025-01-02", "2025-1", "rj1", "ABCDEF", "R!1", " RJ1", ""]
    return [value for value in candidates if not re.fullmatch(check.regex, value)]


BAD_VALUES: dict[type[Any], Callable[[Any], list[Any]]] = {
    InRange: _in_range_bad,
    OneOf: _one_of_bad,
    Length: _length_bad,
    Pattern: _pattern_bad,
}


def break_rule(rule: Rule, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame made to break the rule, at row 0 where the rule is about a row."""
    match rule:
        case NotGreaterThan(column=column, other=other):
            return with_value(frame, column, 0, frame[other][0] + 1)
        case NotBefore(column=column, other=other):
            return with_value(frame, column, 0, frame[other][0] - timedelta(minutes=1))
        case AllValuesPresent(column=column, values=values):
            return frame.filter(pl.col(column) != values[-1])
        case SubmittedBy(column=column):
            return with_value(frame, column, 0, "RXX")
        case InSubmissionPeriod(column=column) if frame.schema[column] == pl.String:
            return with_value(frame, column, 0, "2024-12")
        case InSubmissionPeriod(column=column):
            return with_value(frame, column, 0, frame[column][0] - timedelta(days=40))
        case NotEmpty():
            return frame.clear()
    raise AssertionError(f"no way to break {rule!r}: add one to break_rule")
