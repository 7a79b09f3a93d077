"""Declarative dataset definitions: items, burden, columns and their checks, rules, datasets.

Each definition checks itself when it is made, and each check or rule knows its own words and
its polars expression. What a whole dataset is compiled to (its list of checks for the
validator, the pandera schema, the published JSON and Table Schema, derived items) is in
``schemas.compile``; this module does not import pandera.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from typing import ClassVar, Literal, TypeAlias

import polars as pl

LogicalType: TypeAlias = Literal["string", "integer", "boolean", "datetime", "date"]
Aggregation: TypeAlias = Literal["sum", "mean", "last", "none"]
PeriodType: TypeAlias = Literal["month", "quarter", "year"]
DerivationMethod: TypeAlias = Literal["count", "count_where", "sum"]

POLARS_TYPES: Mapping[LogicalType, pl.DataType] = MappingProxyType(
    {
        "string": pl.String(),
        "integer": pl.Int64(),
        "boolean": pl.Boolean(),
        "datetime": pl.Datetime("us"),
        "date": pl.Date(),
    }
)

# Plain-English wording of pandera's dtype check, by logical type.
_TYPE_WORDS: Mapping[LogicalType, str] = MappingProxyType(
    {
        "string": "text",
        "integer": "a whole number",
        "boolean": "true or false",
        "datetime": "a date and time",
        "date": "a date",
    }
)

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TEMPORAL: frozenset[LogicalType] = frozenset({"datetime", "date"})

# Name of the key uniqueness check in failure_cases (reported on the frame, not a column).
UNIQUE_KEY = "unique_key"


# ---------------------------------------------------------------------------
# Items and burden
# ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Item:
    """One measure with one meaning, carried as a column by one or more datasets."""

    code: str
    name: str
    definition: str
    unit: str
    value_type: Literal["integer"]
    aggregation: Aggregation
    org_aggregation: Aggregation
    disaggregation: tuple[str, ...]
    primary_dataset: str
    # Other names analysts use for this same measure (not for related ones), found by item search.
    synonyms: tuple[str, ...] = ()
    # Which way is better, for SPC charts (Making Data Count): fewer waits over 4 hours is an
    # improvement; more attendances is neither (``neutral``: high and low are both just special).
    improvement_direction: Literal["increase", "decrease", "neutral"] = "neutral"

    def __post_init__(self) -> None:
        _require(_NAME.fullmatch(self.code) is not None, f"item code {self.code!r} is not a name")


@dataclass(frozen=True, kw_only=True)
class Burden:
    """Standard Cost Model parameters for one return of a dataset."""

    base_minutes: float
    minutes_per_item: float
    source: str

    def __post_init__(self) -> None:
        _require(self.base_minutes >= 0 and self.minutes_per_item >= 0, "burden must be >= 0")
        _require(bool(self.source.strip()), "burden needs a source")


# ---------------------------------------------------------------------------
# Column checks
# ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InRange:
    """The value lies between min and max, both included."""

    min: int
    max: int

    name: ClassVar[str] = "in_range"
    applies_to: ClassVar[frozenset[LogicalType]] = frozenset({"integer"})

    def __post_init__(self) -> None:
        _require(self.min <= self.max, f"in_range: {self.min} > {self.max}")

    def describe(self) -> str:
        """Plain-English statement of the check."""
        return f"must be between {self.min} and {self.max}"

    def expression(self, column: str) -> pl.Expr:
        """Boolean expression, true where the value passes."""
        return pl.col(column).is_between(self.min, self.max, closed="both")


@dataclass(frozen=True, kw_only=True)
class OneOf:
    """The value is one of a fixed list of codes."""

    values: tuple[str, ...]

    name: ClassVar[str] = "one_of"
    applies_to: ClassVar[frozenset[LogicalType]] = frozenset({"string"})

    def __post_init__(self) -> None:
        _require(len(set(self.values)) == len(self.values) > 0, "one_of: values must be distinct")

    def describe(self) -> str:
        """Plain-English statement of the check."""
        return "must be one of " + ", ".join(self.values)

    def expression(self, column: str) -> pl.Expr:
        """Boolean expression, true where the value passes."""
        return pl.col(column).is_in(list(self.values))


@dataclass(frozen=True, kw_only=True)
class Length:
    """The text has exactly this many characters."""

    exact: int

    name: ClassVar[str] = "length"
    applies_to: ClassVar[frozenset[LogicalType]] = frozenset({"string"})

    def __post_init__(self) -> None:
        _require(self.exact > 0, "length: exact must be positive")

    def describe(self) -> str:
        """Plain-English statement of the check."""
        return f"must be exactly {self.exact} characters long"

    def expression(self, column: str) -> pl.Expr:
        """Boolean expression, true where the value passes."""
        return pl.col(column).str.len_chars() == self.exact


@dataclass(frozen=True, kw_only=True)
class Pattern:
    """The whole text matches a regular expression (written without ^ and $, as in Table Schema)."""

    regex: str
    hint: str = ""

    name: ClassVar[str] = "pattern"
    applies_to: ClassVar[frozenset[LogicalType]] = frozenset({"string"})

    def __post_init__(self) -> None:
        # Table Schema patterns are implicitly anchored (XML Schema regex), where ^ and $ are
        # literals: keep one unanchored form and anchor it only for polars.
        _require(
            not self.regex.startswith("^") and not self.regex.endswith("$"),
            f"pattern {self.regex!r}: write it without ^ and $ (it must match in full)",
        )
        re.compile(self.regex)

    def describe(self) -> str:
        """Plain-English statement of the check."""
        return f"must be {self.hint}" if self.hint else f"must match the pattern {self.regex}"

    def expression(self, column: str) -> pl.Expr:
        """Boolean expression, true where the value passes."""
        return pl.col(column).str.contains(f"^(?:{self.regex})$")


ColumnCheck: TypeAlias = InRange | OneOf | Length | Pattern


# ---------------------------------------------------------------------------
# Rules across columns and rows
# ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NotGreaterThan:
    """column <= other on every row; a failure is reported on `column`."""

    column: str
    other: str

    name: ClassVar[str] = "not_greater_than"

    def describe(self) -> str:
        """Plain-English statement of the rule about `column`."""
        return f"must not be more than {self.other}"

    def reads(self) -> tuple[str, ...]:
        """Columns the rule reads."""
        return (self.column, self.other)

    def expression(self, *, org_code: str | None, period: str | None) -> pl.Expr | None:
        """Boolean expression, true where the row passes."""
        return pl.col(self.column) <= pl.col(self.other)


@dataclass(frozen=True, kw_only=True)
class NotBefore:
    """column >= other on every row (times); a failure is reported on `column`."""

    column: str
    other: str

    name: ClassVar[str] = "not_before"

    def describe(self) -> str:
        """Plain-English statement of the rule about `column`."""
        return f"must not be before {self.other}"

    def reads(self) -> tuple[str, ...]:
        """Columns the rule reads."""
        return (self.column, self.other)

    def expression(self, *, org_code: str | None, period: str | None) -> pl.Expr | None:
        """Boolean expression, true where the row passes."""
        return pl.col(self.column) >= pl.col(self.other)


@dataclass(frozen=True, kw_only=True)
class AllValuesPresent:
    """Every group of `per` has a row for each of `values` in `column`."""

    column: str
    values: tuple[str, ...]
    per: tuple[str, ...]

    name: ClassVar[str] = "all_values_present"

    def describe(self) -> str:
        """Plain-English statement of the rule about `column`."""
        return (
            f"must have a row for each of {', '.join(self.values)}"
            f" for every {' and '.join(self.per)}"
        )

    def reads(self) -> tuple[str, ...]:
        """Columns the rule reads."""
        return (self.column, *self.per)

    def expression(self, *, org_code: str | None, period: str | None) -> pl.Expr | None:
        """Boolean expression, false on every row of an incomplete group."""
        # A missing row cannot be pointed at, so the rows of its group carry the failure.
        return pl.all_horizontal(
            [(pl.col(self.column) == value).any().over(self.per) for value in self.values]
        )


@dataclass(frozen=True, kw_only=True)
class SubmittedBy:
    """The column holds the submitting organisation's own code (needs the submission)."""

    column: str

    name: ClassVar[str] = "submitting_org"

    def describe(self) -> str:
        """Plain-English statement of the rule about `column`."""
        return "must be the submitting organisation's own code"

    def reads(self) -> tuple[str, ...]:
        """Columns the rule reads."""
        return (self.column,)

    def expression(self, *, org_code: str | None, period: str | None) -> pl.Expr | None:
        """Boolean expression, or None without a submission to compare with."""
        return None if org_code is None else pl.col(self.column) == org_code


@dataclass(frozen=True, kw_only=True)
class InSubmissionPeriod:
    """The column's month is the submission's period (needs the submission)."""

    column: str
    # The column's logical type: text (YYYY-MM or YYYY-MM-01), a date or a date and time. Not
    # published: the definition gives the column's type already.
    dtype: LogicalType = field(default="string", metadata={"published": False})

    name: ClassVar[str] = "in_period"

    def describe(self) -> str:
        """Plain-English statement of the rule about `column`."""
        return "must be in the month of the submission's period"

    def reads(self) -> tuple[str, ...]:
        """Columns the rule reads."""
        return (self.column,)

    def expression(self, *, org_code: str | None, period: str | None) -> pl.Expr | None:
        """Boolean expression, or None without a submission to compare with."""
        if period is None:
            return None
        column = pl.col(self.column)
        if self.dtype not in _TEMPORAL:
            # YYYY-MM and YYYY-MM-01 both begin with the month.
            return column.str.slice(0, 7) == period
        # Dates and times: a range test on the values, with no conversion to text.
        year, month = int(period[:4]), int(period[5:7])
        start = date(year, month, 1)
        end = date(year + month // 12, month % 12 + 1, 1)
        if self.dtype == "date":
            return column.is_between(pl.lit(start), pl.lit(end), closed="left")
        unit = POLARS_TYPES["datetime"]
        first, after = (pl.lit(datetime.combine(day, time())).cast(unit) for day in (start, end))
        return column.is_between(first, after, closed="left")


@dataclass(frozen=True, kw_only=True)
class NotEmpty:
    """The file has at least one data row."""

    column: ClassVar[None] = None
    name: ClassVar[str] = "not_empty"

    def describe(self) -> str:
        """Plain-English statement of the rule."""
        return "the file must have at least one data row"

    def reads(self) -> tuple[str, ...]:
        """Columns the rule reads."""
        return ()

    def expression(self, *, org_code: str | None, period: str | None) -> pl.Expr | None:
        """One-row boolean expression."""
        return pl.len() > 0


Rule: TypeAlias = (
    NotGreaterThan | NotBefore | AllValuesPresent | SubmittedBy | InSubmissionPeriod | NotEmpty
)
# Rules that compare with the submission (its trust and period) are compiled only when it is given.
CONTEXT_RULES: tuple[type[Rule], ...] = (SubmittedBy, InSubmissionPeriod)


# ---------------------------------------------------------------------------
# Columns, derivations, datasets
# ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column of a return."""

    name: str
    dtype: LogicalType
    description: str
    required: bool = True
    checks: tuple[ColumnCheck, ...] = ()
    nullable: bool = False

    @property
    def polars_dtype(self) -> pl.DataType:
        """The polars type the column must have."""
        return POLARS_TYPES[self.dtype]

    def check_named(self, name: str) -> ColumnCheck | None:
        """The column's check of that name, if any."""
        return next((check for check in self.checks if check.name == name), None)


@dataclass(frozen=True, kw_only=True)
class Derivation:
    """An item computed from this dataset's rows, by `group_by` and the month of `time_column`."""

    item: str
    method: DerivationMethod
    # Not compared: polars expressions overload ==; the description says the same thing.
    expression: pl.Expr = field(compare=False)
    description: str
    group_by: tuple[str, ...]
    time_column: str


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """The shape of one return: columns, key, items, rules, burden and derivations."""

    code: str
    version: int
    title: str
    description: str
    period_type: PeriodType = "month"
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    # item code -> the column that carries it
    items: Mapping[str, str] = field(default_factory=dict, hash=False)
    rules: tuple[Rule, ...] = ()
    burden: Burden
    derivations: tuple[Derivation, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", MappingProxyType(dict(self.items)))
        _require(_NAME.fullmatch(self.code) is not None, f"dataset code {self.code!r}")
        _require(self.version >= 1, f"{self.code}: version must be >= 1")
        names = [column.name for column in self.columns]
        _require(len(set(names)) == len(names) > 0, f"{self.code}: column names must be distinct")
        for column in self.columns:
            _require(_NAME.fullmatch(column.name) is not None, f"{self.code}: {column.name!r}")
            kinds = [check.name for check in column.checks]
            _require(len(set(kinds)) == len(kinds), f"{column.name}: one check of each kind")
            for check in column.checks:
                _require(
                    column.dtype in check.applies_to,
                    f"{self.code}.{column.name}: {check.name} does not apply to {column.dtype}",
                )
        _require(bool(self.key) and set(self.key) <= set(names), f"{self.code}: key columns")
        for item, column_name in self.items.items():
            _require(
                column_name in names and self.column(column_name).dtype == "integer",
                f"{self.code}: item {item} needs an integer column",
            )
        for rule in self.rules:
            _require(set(rule.reads()) <= set(names), f"{self.code}: {rule} reads unknown columns")
            if isinstance(rule, InSubmissionPeriod):
                _require(
                    rule.dtype == self.column(rule.column).dtype,
                    f"{self.code}: in_period on {rule.column} says {rule.dtype},"
                    f" the column is {self.column(rule.column).dtype}",
                )
        targets = [(rule.column, rule.name) for rule in self.rules] + [
            (column.name, check.name) for column in self.columns for check in column.checks
        ]
        _require(len(set(targets)) == len(targets), f"{self.code}: checks must be distinct")
        for derivation in self.derivations:
            _require(
                set(derivation.group_by) <= set(names)
                and derivation.time_column in names
                and self.column(derivation.time_column).dtype in _TEMPORAL,
                f"{self.code}: derivation of {derivation.item} reads unknown columns",
            )
        # compile.derive groups all derivations at once, so they must share one grain.
        grains = {(d.group_by, d.time_column) for d in self.derivations}
        _require(len(grains) <= 1, f"{self.code}: derivations must share group_by and time_column")

    @property
    def has_period_column(self) -> bool:
        """Whether rows carry a `period` column (else the period is the submission's)."""
        return any(column.name == "period" for column in self.columns)

    def column(self, name: str) -> Column:
        """The column of that name (KeyError if none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.code} has no column {name!r}")

    def polars_schema(self) -> dict[str, pl.DataType]:
        """Column name -> polars type, in column order (for readers' schema overrides)."""
        return {column.name: column.polars_dtype for column in self.columns}

    def describe_check(self, *, column: str | None, check: str) -> str | None:
        """Plain-English message for a check named in pandera failure_cases, or None."""
        names = ", ".join(c.name for c in self.columns)
        if column is None or column == self.code:
            frame_messages = {
                UNIQUE_KEY: f"each {', '.join(self.key)} must appear only once",
                "column_in_dataframe": f"every column must be present: {names}",
                "column_in_schema": f"only these columns are allowed: {names}",
            }
            if check in frame_messages:
                return frame_messages[check]
        for rule in self.rules:
            if rule.name == check and rule.column in (column, None):
                return rule.describe()
        if column is None or column not in {c.name for c in self.columns}:
            return None
        found = self.column(column)
        if check == "not_nullable":
            return "must not be empty"
        if check.startswith("dtype("):
            return f"must be {_TYPE_WORDS[found.dtype]}"
        named = found.check_named(check)
        return None if named is None else named.describe()


def _require(condition: bool, message: str) -> None:
    """Raise ValueError(message) for an inconsistent definition."""
    if not condition:
        raise ValueError(message)
