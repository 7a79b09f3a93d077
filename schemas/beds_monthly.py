"""beds_monthly: general and acute and adult critical care beds, available and occupied."""

from __future__ import annotations

from schemas.conventions import ORG_CODE, PERIOD, count_column, return_rules
from schemas.model import Burden, Dataset, Item, NotGreaterThan


def _beds_item(code: str, name: str, definition: str, synonyms: tuple[str, ...]) -> Item:
    """A bed item: an average over the days of the month, so a mean over time."""
    return Item(
        code=code,
        name=name,
        definition=definition,
        unit="beds",
        value_type="integer",
        aggregation="mean",
        org_aggregation="sum",
        disaggregation=(),
        primary_dataset="beds_monthly",
        synonyms=synonyms,
    )


_GA = (
    "general and acute (G&A) beds: beds for adult and child medical and surgical patients,"
    " excluding maternity, mental illness, learning disability and critical care beds, as in"
    " NHS England's KH03 bed availability and occupancy collection"
)
_CC = (
    "adult critical care (CC) beds: intensive care and high dependency beds for adults, as in"
    " NHS England's critical care bed capacity collection"
)

ITEMS: tuple[Item, ...] = (
    _beds_item(
        "beds_ga_available",
        "G&A beds available",
        f"Average number of {_GA}, open overnight on each day of the month, rounded to a whole"
        " number.",
        (
            "general and acute beds available",
            "G&A bed base",
            "general and acute bed base",
            "G&A beds open overnight",
            "KH03 G&A beds available",
        ),
    ),
    _beds_item(
        "beds_ga_occupied",
        "G&A beds occupied",
        f"Average number of {_GA}, occupied at midnight on each day of the month, rounded to a"
        " whole number.",
        # Not "bed occupancy" alone: it usually means the rate, occupied / available.
        (
            "general and acute beds occupied",
            "KH03 G&A beds occupied",
            "G&A beds occupied at midnight",
        ),
    ),
    _beds_item(
        "beds_cc_available",
        "Adult critical care beds available",
        f"Average number of {_CC}, available on each day of the month, rounded to a whole number.",
        # ICU/ITU alone is level 3 care only; adult critical care is levels 2 and 3 (ICU and HDU).
        (
            "adult critical care bed capacity",
            "adult ICU/HDU beds available",
            "adult level 2 and 3 critical care beds available",
        ),
    ),
    _beds_item(
        "beds_cc_occupied",
        "Adult critical care beds occupied",
        f"Average number of {_CC}, occupied on each day of the month, rounded to a whole number.",
        (
            "adult ICU/HDU beds occupied",
            "adult level 2 and 3 critical care beds occupied",
        ),
    ),
)

DATASET = Dataset(
    code="beds_monthly",
    version=1,
    title="Monthly bed availability and occupancy",
    description=(
        "One row per trust per month: the average numbers of general and acute beds (KH03"
        " definitions) and adult critical care beds available and occupied. Occupied beds are"
        " never more than available ones."
    ),
    columns=(
        PERIOD,
        ORG_CODE,
        count_column("ga_beds_available", "Average G&A beds open overnight in the month."),
        count_column("ga_beds_occupied", "Average G&A beds occupied at midnight in the month."),
        count_column("cc_beds_available", "Average adult critical care beds available."),
        count_column("cc_beds_occupied", "Average adult critical care beds occupied."),
    ),
    key=("period", "org_code"),
    items={
        "beds_ga_available": "ga_beds_available",
        "beds_ga_occupied": "ga_beds_occupied",
        "beds_cc_available": "cc_beds_available",
        "beds_cc_occupied": "cc_beds_occupied",
    },
    rules=(
        *return_rules(),
        NotGreaterThan(column="ga_beds_occupied", other="ga_beds_available"),
        NotGreaterThan(column="cc_beds_occupied", other="cc_beds_available"),
    ),
    burden=Burden(
        base_minutes=45,
        minutes_per_item=10,
        source=(
            "The broker's documented Standard Cost Model estimate (configurable): about 45"
            " minutes to take the month's bed figures from the bed management system and have"
            " them signed off, plus 10 minutes for each item checked."
        ),
    ),
)
