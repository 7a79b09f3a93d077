"""ae_monthly: A&E attendances, 4-hour breaches and emergency admissions, per department type."""

from __future__ import annotations

from schemas.conventions import (
    DEPARTMENT_TYPE,
    DEPARTMENT_TYPES,
    ORG_CODE,
    PERIOD,
    count_column,
    return_rules,
)
from schemas.model import AllValuesPresent, Burden, Dataset, Item, NotGreaterThan

_BY_TYPE = ("department_type",)

ITEMS: tuple[Item, ...] = (
    Item(
        code="ae_attendances",
        name="A&E attendances",
        definition=(
            "Attendances at A&E departments in the month, by department type, as counted in NHS"
            " England's monthly A&E Attendances and Emergency Admissions collection: every"
            " patient who arrives at the department and is booked in, however they arrived."
        ),
        unit="attendances",
        value_type="integer",
        aggregation="sum",
        org_aggregation="sum",
        disaggregation=_BY_TYPE,
        primary_dataset="ae_monthly",
        # Not "type 1 attendances": that is one department type of this item, not all of it.
        synonyms=(
            "accident and emergency attendances",
            "emergency department attendances",
            "ED attendances",
            "casualty attendances",
            "emergency care attendances",
        ),
    ),
    Item(
        code="ae_breaches",
        name="A&E attendances over 4 hours",
        definition=(
            "Attendances in the month at which the patient spent more than 4 hours in A&E from"
            " arrival to admission, transfer or discharge: the breaches of the 4-hour standard,"
            " by department type."
        ),
        unit="attendances",
        value_type="integer",
        aggregation="sum",
        org_aggregation="sum",
        disaggregation=_BY_TYPE,
        primary_dataset="ae_monthly",
        improvement_direction="decrease",
        # Not "4-hour performance" (a percentage) nor "12-hour waits" (another measure).
        synonyms=(
            "4-hour breaches",
            "4-hour standard breaches",
            "ED 4hr breaches",
            "waits over 4 hours in A&E",
            "four-hour waits",
            "time in department over 4 hours",
        ),
    ),
    Item(
        code="ae_admissions",
        name="Emergency admissions via A&E",
        definition=(
            "Emergency admissions to a hospital bed in the month of patients who came through"
            " the A&E department, by the type of department they attended."
        ),
        unit="admissions",
        value_type="integer",
        aggregation="sum",
        org_aggregation="sum",
        disaggregation=_BY_TYPE,
        primary_dataset="ae_monthly",
        # Not "emergency admissions" (they include those not via A&E) nor "conversion" (a rate).
        synonyms=(
            "admissions via ED",
            "A&E admissions",
            "admitted A&E attendances",
        ),
    ),
)

DATASET = Dataset(
    code="ae_monthly",
    version=1,
    title="Monthly A&E attendances and emergency admissions",
    description=(
        "One return per trust per month with three rows, one for each department type (1, 2 and"
        " other); a trust without a department of some type returns that row with zeros. The"
        " figures follow NHS England's A&E Attendances and Emergency Admissions collection."
    ),
    columns=(
        PERIOD,
        ORG_CODE,
        DEPARTMENT_TYPE,
        count_column("attendances", "A&E attendances in the month at departments of this type."),
        count_column(
            "breaches",
            "Of those attendances, the number where the patient spent more than 4 hours in A&E"
            " from arrival to admission, transfer or discharge.",
        ),
        count_column(
            "admissions",
            "Emergency admissions via A&E departments of this type in the month. It may exceed"
            " attendances, as published figures show, so no rule ties the two.",
        ),
    ),
    key=("period", "org_code", "department_type"),
    items={
        "ae_attendances": "attendances",
        "ae_breaches": "breaches",
        "ae_admissions": "admissions",
    },
    rules=(
        *return_rules(),
        NotGreaterThan(column="breaches", other="attendances"),
        AllValuesPresent(
            column="department_type", values=DEPARTMENT_TYPES, per=("period", "org_code")
        ),
    ),
    burden=Burden(
        base_minutes=60,
        minutes_per_item=10,
        source=(
            "The broker's documented Standard Cost Model estimate (configurable): about an hour"
            " to extract the month's A&E counts from the patient administration system, check"
            " them and have them signed off, plus 10 minutes for each item reconciled across the"
            " three department types."
        ),
    ),
)
