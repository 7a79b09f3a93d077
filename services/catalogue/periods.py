"""Periods: months, quarters and years, written ``YYYY-MM``, ``YYYY-Qn`` and ``YYYY``.

Months are also handled as integers (``year * 12 + month - 1``) so that ranges are arithmetic.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

PERIOD_TYPES = ("month", "quarter", "year")
MAX_MONTHS = 120  # a request spans ten years at most

# ASCII digits only, and the whole text (fullmatch): a Unicode digit (\d matches "٢٠١٨") or a
# trailing newline ("$" matches before one) would pass here and fail later, where the
# definitions and the store expect "2018-04".
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_QUARTER = re.compile(r"([0-9]{4})-Q([1-4])")
_YEAR = re.compile(r"([0-9]{4})")
# Years a period may be in: year 0 has no dates, and a due date after 9999 none either.
MIN_YEAR, MAX_YEAR = 1900, 2999


class PeriodError(ValueError):
    """A period that is not ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``."""


@dataclass(frozen=True, order=True)
class Period:
    """A month, quarter or year, as the range of months it covers."""

    first_month: int
    months: int
    label: str

    @property
    def end_month(self) -> int:
        """The first month after the period."""
        return self.first_month + self.months


def month_index(year: int, month: int) -> int:
    """The integer of a month."""
    return year * 12 + month - 1


def month_label(index: int) -> str:
    """``YYYY-MM`` of a month integer."""
    year, month0 = divmod(index, 12)
    return f"{year:04d}-{month0 + 1:02d}"


def parse_month(text: str) -> int:
    """The month integer of ``YYYY-MM``."""
    found = _MONTH.fullmatch(text)
    if not found:
        raise PeriodError(f"{text!r} is not a month written YYYY-MM")
    return month_index(_year(found[1], text), int(found[2]))


def parse(text: str) -> Period:
    """A period from its written form."""
    text = text.strip()
    if found := _MONTH.fullmatch(text):
        first = month_index(_year(found[1], text), int(found[2]))
        return Period(first, 1, text)
    if found := _QUARTER.fullmatch(text):
        first = month_index(_year(found[1], text), (int(found[2]) - 1) * 3 + 1)
        return Period(first, 3, text)
    if found := _YEAR.fullmatch(text):
        return Period(month_index(_year(found[1], text), 1), 12, text)
    raise PeriodError(f"{text!r} is not a period: write YYYY-MM, YYYY-Qn or YYYY")


def _year(digits: str, text: str) -> int:
    year = int(digits)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"{text!r} is not a period: the year must be {MIN_YEAR} to {MAX_YEAR}")
    return year


def containing(month: int, period_type: str) -> Period:
    """The period of ``period_type`` that contains ``month``."""
    year, month0 = divmod(month, 12)
    if period_type == "month":
        return Period(month, 1, month_label(month))
    if period_type == "quarter":
        quarter = month0 // 3
        return Period(year * 12 + quarter * 3, 3, f"{year:04d}-Q{quarter + 1}")
    if period_type == "year":
        return Period(year * 12, 12, f"{year:04d}")
    raise PeriodError(f"unknown period type {period_type!r}")


def periods_between(start: str, end: str, period_type: str) -> list[Period]:
    """Every period of ``period_type`` from the one holding ``start`` to the one holding ``end``."""
    first = containing(parse(start).first_month, period_type)
    last = containing(parse(end).end_month - 1, period_type)
    found: list[Period] = []
    month = first.first_month
    while month <= last.first_month:
        period = containing(month, period_type)
        found.append(period)
        month = period.end_month
    return found


def last_day(month: int) -> date:
    """The last day of a month."""
    year, month0 = divmod(month, 12)
    return date(year, month0 + 1, calendar.monthrange(year, month0 + 1)[1])
