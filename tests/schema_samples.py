"""Small valid returns for each reference dataset, typed exactly as the schemas expect."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from schemas import get_dataset

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
