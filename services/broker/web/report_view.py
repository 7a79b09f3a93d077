"""The burden report as the page shows it: labelled rows, formatted figures, chart data.

Pure functions over the dicts that ``burden_report`` returns (the API's own figures), so the page
shows exactly the numbers of ``GET /v1/reports/burden``, only formatted.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SMALL_WORDS = {"and", "of", "the", "for", "in", "on", "at", "upon"}
KEEP_UPPER = {"NHS", "UK", "UKHSA", "CQC", "NAO"}
NONE = "\N{EN DASH}"  # shown for a figure that does not apply


def month_name(period: str) -> str:
    """'2018-10' -> 'October 2018'."""
    year, _, month = period.partition("-")
    return f"{calendar.month_name[int(month)]} {year}"


def short_month(period: str) -> str:
    """'2018-10' -> 'Oct 2018' (chart axes)."""
    year, _, month = period.partition("-")
    return f"{calendar.month_abbr[int(month)]} {year}"


def readable_name(name: str) -> str:
    """ODS names are in capitals ('GUY'S AND ST THOMAS' NHS FOUNDATION TRUST'): title-case them."""
    if not name.isupper():
        return name
    words = []
    for index, word in enumerate(name.split()):
        if word in KEEP_UPPER:
            words.append(word)
        elif index and word.lower() in SMALL_WORDS:
            words.append(word.lower())
        else:
            words.append(word.capitalize())
    return " ".join(words)


def count(value: float | None) -> str:
    """12345 -> '12,345'."""
    return NONE if value is None else f"{value:,.0f}"


def hours(value: float | None) -> str:
    """Hours as the report rounds them (two places), without trailing zeros: '3,237', '64.33'."""
    if value is None:
        return NONE
    text = f"{value:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def gbp(value: float | None) -> str:
    """9362.08 -> '£9,362.08'."""
    return NONE if value is None else f"£{value:,.2f}"


def percent(value: float | None) -> str:
    """0.2095 -> '21.0%' (a rate of nothing due is shown as a dash)."""
    return NONE if value is None else f"{value * 100:.1f}%"


FORMATS: dict[str, Callable[[Any], str]] = {
    "count": count,
    "hours": hours,
    "gbp": gbp,
    "percent": percent,
}


@dataclass(frozen=True)
class Column:
    """A numeric column: which field, its header, how to show it."""

    field: str
    header: str
    format: str


BURDEN_COLUMNS = (
    Column("returns_requested", "Returns requested", "count"),
    Column("returns_imposed", "Returns imposed", "count"),
    Column("returns_avoided", "Returns avoided", "count"),
    Column("hours_requested", "Hours requested", "hours"),
    Column("hours_imposed", "Hours imposed", "hours"),
    Column("hours_avoided", "Hours avoided", "hours"),
    Column("cost_avoided_gbp", "Cost avoided", "gbp"),
)
COMPLETENESS_COLUMNS = (
    Column("asks", "Asks", "count"),
    Column("due", "Due", "count"),
    Column("returned", "Returned", "count"),
    Column("on_time", "On time", "count"),
    Column("late", "Late", "count"),
    Column("outstanding", "Outstanding", "count"),
    Column("reporting_rate", "Reporting rate", "percent"),
)


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown and the raw value sorted on."""

    text: str
    sort_value: str


@dataclass(frozen=True)
class Row:
    """A table row: its label (the row header) and its numeric cells."""

    key: str
    label: Cell
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    """One breakdown table."""

    id: str
    caption: str
    key_header: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Chart:
    """Data for one Chart.js bar chart, and the text alternative that summarises it."""

    id: str
    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    axis_label: str
    summary: str
    horizontal: bool = False

    def config(self) -> dict[str, Any]:
        """What static/charts.js reads from the canvas's data-chart attribute."""
        return {
            "labels": list(self.labels),
            "values": list(self.values),
            "axisLabel": self.axis_label,
            "horizontal": self.horizontal,
        }


def _label(kind: str, key: str, names: Mapping[str, str]) -> Cell:
    if kind == "month":
        return Cell(month_name(key), key)
    name = names.get(key)
    text = f"{readable_name(name)} ({key})" if name else key
    return Cell(text, text)


def table(
    *,
    id: str,
    caption: str,
    kind: str,
    key_field: str,
    key_header: str,
    rows: Sequence[Mapping[str, Any]],
    columns: tuple[Column, ...],
    names: Mapping[str, str],
) -> Table:
    """A table of ``rows``, ordered by what its first column shows (months in time order)."""
    built = [
        Row(
            key=row[key_field],
            label=_label(kind, row[key_field], names),
            cells=tuple(
                Cell(
                    FORMATS[c.format](row[c.field]),
                    "" if row[c.field] is None else repr(row[c.field]),
                )
                for c in columns
            ),
        )
        for row in rows
    ]
    built.sort(key=lambda r: r.label.sort_value.casefold())
    return Table(id, caption, key_header, columns, tuple(built))


def _listing(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def month_chart(by_month: Sequence[Mapping[str, Any]]) -> Chart:
    """Hours avoided in each month, with a summary of the trend for screen readers."""
    periods = [row["period"] for row in by_month]
    values = tuple(float(row["hours_avoided"]) for row in by_month)
    summary = "No months to show."
    if periods:
        peak = max(range(len(values)), key=lambda i: values[i])
        with_savings = [month_name(p) for p, v in zip(periods, values, strict=True) if v > 0]
        summary = (
            f"Bar chart of hours of trust staff time avoided in each month from "
            f"{month_name(periods[0])} to {month_name(periods[-1])}: {hours(sum(values))} hours "
            f"in all, the most ({hours(values[peak])} hours) in {month_name(periods[peak])}. "
            + (
                f"Hours were avoided in {len(with_savings)} of the {len(periods)} months. "
                if with_savings
                else "No hours were avoided in any month. "
            )
            + "The table “Burden by month” below gives every figure."
        )
    return Chart(
        id="chart-by-month",
        title="Hours avoided each month",
        labels=tuple(short_month(p) for p in periods),
        values=values,
        axis_label="Hours avoided",
        summary=summary,
    )


def body_chart(by_body: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> Chart:
    """Hours avoided for each oversight body's requests."""
    rows = sorted(by_body, key=lambda r: -float(r["hours_avoided"]))
    labels = tuple(names.get(r["body"], r["body"]) for r in rows)
    values = tuple(float(r["hours_avoided"]) for r in rows)
    summary = "No oversight bodies to show."
    if rows:
        parts = [f"{label}, {hours(v)}" for label, v in zip(labels, values, strict=True)]
        summary = (
            f"Bar chart of hours avoided for each oversight body's requests, most first: "
            f"{_listing(parts)}. The table “Burden by oversight body” below gives every figure."
        )
    return Chart(
        id="chart-by-body",
        title="Hours avoided by oversight body",
        labels=labels,
        values=values,
        axis_label="Hours avoided",
        summary=summary,
        horizontal=True,
    )


def window_text(first: str | None, last: str | None) -> str:
    """The months a report covers, in words."""
    if first and last:
        return f"from {month_name(first)} to {month_name(last)}"
    if first:
        return f"from {month_name(first)} onwards"
    if last:
        return f"up to {month_name(last)}"
    return "for every month with an active request"
