"""Columns and rules that every return shares: period, org_code, counts, department type."""

from __future__ import annotations

from schemas.model import (
    Column,
    InRange,
    InSubmissionPeriod,
    NotEmpty,
    OneOf,
    Pattern,
    Rule,
    SubmittedBy,
)

# The validator writes date cells as YYYY-MM-01 text before validation, so period stays a string.
PERIOD_REGEX = "[0-9]{4}-(0[1-9]|1[0-2])(-01)?"
ORG_CODE_REGEX = "[A-Z0-9]{3,5}"
COUNT_RANGE = InRange(min=0, max=1_000_000_000)
DEPARTMENT_TYPES = ("1", "2", "other")

PERIOD = Column(
    name="period",
    dtype="string",
    description=(
        "The month the figures are for, written YYYY-MM (or YYYY-MM-01, the first day of the"
        " month). It must be the period of the submission."
    ),
    checks=(Pattern(regex=PERIOD_REGEX, hint="a month written YYYY-MM or YYYY-MM-01"),),
)

ORG_CODE = Column(
    name="org_code",
    dtype="string",
    description=(
        "ODS code of the organisation the figures are for: the submitting trust's own code"
        " (for example RJ1)."
    ),
    checks=(Pattern(regex=ORG_CODE_REGEX, hint="an ODS code of 3 to 5 capital letters or digits"),),
)

DEPARTMENT_TYPE = Column(
    name="department_type",
    dtype="string",
    description=(
        "A&E department type, as in NHS England's A&E Attendances and Emergency Admissions"
        " collection. 1: type 1, a consultant-led 24-hour service with full resuscitation"
        " facilities and designated accommodation for A&E patients (a major emergency"
        " department). 2: type 2, a consultant-led single-specialty A&E service, such as an eye"
        " or dental A&E. other: types 3 and 4, other A&E services such as urgent treatment"
        " centres, minor injury units and walk-in centres, which may be doctor- or nurse-led."
    ),
    checks=(OneOf(values=DEPARTMENT_TYPES),),
)


def count_column(name: str, description: str) -> Column:
    """A whole-number count from 0 to 10^9."""
    return Column(name=name, dtype="integer", description=description, checks=(COUNT_RANGE,))


def return_rules(*, period_column: Column = PERIOD) -> tuple[Rule, ...]:
    """The rules in every dataset: rows present, the trust's own code, the submission's month."""
    return (
        NotEmpty(),
        SubmittedBy(column="org_code"),
        InSubmissionPeriod(column=period_column.name, dtype=period_column.dtype),
    )
