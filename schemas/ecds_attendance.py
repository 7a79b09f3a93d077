"""ecds_attendance: patient-level emergency care attendances, from which ae_* items derive."""

from __future__ import annotations

import polars as pl

from schemas.conventions import DEPARTMENT_TYPE, ORG_CODE, return_rules
from schemas.model import (
    Burden,
    Column,
    Dataset,
    Derivation,
    InRange,
    Item,
    Length,
    NotBefore,
    OneOf,
)

# Primary for no item: its items are asked for as ae_monthly, and derived from here when held.
ITEMS: tuple[Item, ...] = ()

# The 4-hour standard: over 240 minutes from arrival to admission, transfer or discharge.
_FOUR_HOURS = 240
_GROUP_BY = ("org_code", "department_type")
_TIME = "arrival_time"
ARRIVAL_TIME = Column(
    name=_TIME,
    dtype="datetime",
    description="Date and time the patient arrived in the department (local time).",
)

DATASET = Dataset(
    code="ecds_attendance",
    version=1,
    title="Emergency care attendances (patient level)",
    description=(
        "One row per attendance at an emergency care department, from the trust's electronic"
        " patient record, in the spirit of the Emergency Care Data Set (ECDS). One return per"
        " trust per month of arrival; the return has no period column: its period is the"
        " submission's, and every arrival must fall in that month. It carries no patient"
        " identifiers."
    ),
    columns=(
        Column(
            name="attendance_id",
            dtype="integer",
            description=(
                "The trust's own number for the attendance, unique within the return. Not an NHS"
                " number or any other patient identifier."
            ),
        ),
        ORG_CODE,
        Column(
            name="site_code",
            dtype="string",
            description="ODS code of the site where the patient attended (five characters).",
            checks=(Length(exact=5),),
        ),
        ARRIVAL_TIME,
        Column(
            name="departure_time",
            dtype="datetime",
            description=(
                "Date and time the patient left the department: admitted, transferred or"
                " discharged (local time). Not before the arrival time."
            ),
        ),
        Column(
            name="age",
            dtype="integer",
            description="Age in whole years at arrival.",
            checks=(InRange(min=0, max=120),),
        ),
        Column(
            name="sex",
            dtype="string",
            description=(
                "Person stated gender code, as in the NHS Data Dictionary: 0 not known,"
                " 1 male, 2 female, 9 not specified."
            ),
            checks=(OneOf(values=("0", "1", "2", "9")),),
        ),
        Column(
            name="arrival_mode",
            dtype="string",
            description="How the patient arrived: ambulance, walk-in or other.",
            checks=(OneOf(values=("ambulance", "walk-in", "other")),),
        ),
        Column(
            name="acuity",
            dtype="integer",
            description=(
                "Acuity at initial assessment, 1 (immediate resuscitation) to 5 (low acuity),"
                " as in the ECDS acuity scale."
            ),
            checks=(InRange(min=1, max=5),),
        ),
        DEPARTMENT_TYPE,
        Column(
            name="admitted",
            dtype="boolean",
            description="True if the attendance ended in an emergency admission to a hospital bed.",
        ),
        Column(
            name="minutes_in_department",
            dtype="integer",
            description=(
                "Whole minutes from arrival to admission, transfer or discharge. Over 240 is a"
                " breach of the 4-hour standard."
            ),
            checks=(InRange(min=0, max=1_000_000_000),),
        ),
    ),
    key=("attendance_id",),
    rules=(
        *return_rules(period_column=ARRIVAL_TIME),
        NotBefore(column="departure_time", other="arrival_time"),
    ),
    burden=Burden(
        base_minutes=240,
        minutes_per_item=0,
        source=(
            "The broker's documented Standard Cost Model estimate (configurable): about four"
            " hours to run the month's extract from the electronic patient record, check it and"
            " send it. Every column comes in the one extract, so an extra item adds no time."
        ),
    ),
    derivations=(
        Derivation(
            item="ae_attendances",
            method="count",
            expression=pl.len(),
            description="The number of attendances, by department type and month of arrival.",
            group_by=_GROUP_BY,
            time_column=_TIME,
        ),
        Derivation(
            item="ae_breaches",
            method="count_where",
            expression=(pl.col("minutes_in_department") > _FOUR_HOURS).sum(),
            description=(
                "The number of attendances with more than 240 minutes in the department, by"
                " department type and month of arrival."
            ),
            group_by=_GROUP_BY,
            time_column=_TIME,
        ),
        Derivation(
            item="ae_admissions",
            method="count_where",
            expression=pl.col("admitted").sum(),
            description=(
                "The number of attendances that ended in admission, by department type and"
                " month of arrival."
            ),
            group_by=_GROUP_BY,
            time_column=_TIME,
        ),
    ),
)
