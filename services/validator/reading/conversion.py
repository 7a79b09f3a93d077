"""Converting values to the dataset's types, with polars, column by column."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from schemas.model import Column, Dataset
from services.validator.reading.records import CAST_ERRORS_SCHEMA, VALUE_CHARS

_WHOLE = r"^[+-]?[0-9]+(\.0*)?$"
_THOUSANDS = r"^[+-]?[0-9]{1,3}(,[0-9]{3})+$"
_SCIENTIFIC = r"^[+-]?[0-9.]+[eE][+-]?[0-9]+$"
_TRUTH: dict[str, bool] = {"true": True, "false": False, "1": True, "0": False}
_TRUTH |= {"yes": True, "no": False}
# The forms written by most exports, tried first; the lenient forms only on what they miss.
_TRUTH_FAST = _TRUTH | {k.upper(): v for k, v in _TRUTH.items()} | {"True": True, "False": False}
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
)
_TIME_ZONE = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
# The first of a month, as text, an Excel date cell or a midnight timestamp.
_FIRST_OF_MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])(-01([ T]00:00(:00(\.0+)?)?)?)?$"
_INT64_MAX = 2**63 - 1

# ---------------------------------------------------------------------------
# Conversion to the dataset's types
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Converted:
    values: pl.Series
    # Positions (0-based) that would not convert, with what to say about each.
    bad_index: pl.Series | None = None
    bad_message: pl.Series | None = None


def cast_table(table: pa.Table, dataset: Dataset) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The table's columns in the dataset's order and types, and the cells that would not convert.

    The table's columns are named as the dataset's. They are converted one at a time, so that
    only one column's polars copy of the text is alive at once, next to the Arrow chunk.
    """
    columns: list[pl.Series] = []
    errors: list[pl.DataFrame] = []
    for column in dataset.columns:
        parsed = _parsed_by_arrow(table.column(column.name), column)
        if parsed is not None:
            columns.append(parsed)
            continue
        source = pl.Series(column.name, table.column(column.name))
        converted = convert(source, column, period=column.name == "period")
        columns.append(converted.values.alias(column.name))
        if converted.bad_index is not None and converted.bad_message is not None:
            errors.append(
                pl.DataFrame(
                    {
                        "index": converted.bad_index.cast(pl.Int64),
                        "column": pl.repeat(column.name, len(converted.bad_index), eager=True),
                        "value": _as_text(source.gather(converted.bad_index)).str.slice(
                            0, VALUE_CHARS
                        ),
                        "message": converted.bad_message,
                    },
                    schema=CAST_ERRORS_SCHEMA,
                )
            )
    frame = pl.DataFrame(columns)
    if not errors:
        return frame, pl.DataFrame(schema=CAST_ERRORS_SCHEMA)
    cast_errors = pl.concat(errors).with_columns(
        message=pl.concat_str("column", pl.lit(" "), "message")
    )
    return frame, cast_errors


# Arrow parses text in the common forms of whole numbers, times and true/false three to four times
# faster than polars converts and parses it. It is used where it accepts nothing that the rules
# above refuse: whole numbers with no x or X (Arrow reads 0x1F as hex), times when every one has
# exactly 19 characters (YYYY-MM-DD HH:MM:SS or with a T; Arrow also reads a date alone as
# midnight, 10 characters), and true/false (Arrow takes true, false, 1, 0 in any letter case, a
# subset of the rules). A chunk Arrow cannot parse whole (an empty cell, 12.0, yes, a space)
# goes the polars way, which explains every cell that fails.
_ARROW_TARGETS: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "datetime": pa.timestamp("us"),
    "boolean": pa.bool_(),
}
_COMMON_DATETIME_CHARS = 19


def _parsed_by_arrow(array: pa.Array | pa.ChunkedArray, column: Column) -> pl.Series | None:
    """The text column parsed by Arrow, or None where the polars way must take it."""
    target = _ARROW_TARGETS.get(column.dtype)
    text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    if target is None or not text:
        return None
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    if column.dtype == "integer" and any(_holds_x(chunk) for chunk in chunks):
        return None
    if column.dtype == "datetime" and len(array):
        lengths = pc.min_max(pc.utf8_length(array))
        if lengths["min"].as_py() != _COMMON_DATETIME_CHARS or lengths["max"].as_py() != (
            _COMMON_DATETIME_CHARS
        ):
            return None
    try:
        parsed = pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pl.Series(column.name, parsed)


def _holds_x(chunk: pa.Array) -> bool:
    """Whether the string array's character data holds an x or an X (bytes beyond a slice too)."""
    data = chunk.buffers()[2]
    if data is None:
        return False
    return bool(np.any((np.frombuffer(data, dtype=np.uint8) | 0x20) == ord("x")))


def convert(source: pl.Series, column: Column, *, period: bool = False) -> _Converted:
    """One column converted to the column's type, with the positions that would not convert."""
    if _is_text(source.dtype):
        text = _missing_if_empty(source.cast(pl.String))
        values = text.to_frame().select(_strict(column, pl.first(), period=period)).to_series()
        if column.dtype == "string":
            return _Converted(values)
        return _retry(text, values, column)
    if source.dtype == pl.Null:
        return _Converted(pl.Series(source.name, [None] * len(source), dtype=column.polars_dtype))
    return _from_typed(source, column, period=period)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical, pl.Enum)


def _missing_if_empty(text: pl.Series) -> pl.Series:
    """An empty cell is a missing value, whatever the format wrote for it."""
    return pl.select(pl.when(text == "").then(None).otherwise(text)).to_series()


def _strict(column: Column, text: pl.Expr, *, period: bool) -> pl.Expr:
    """Text in the common form of the column's type, parsed (null where it does not parse)."""
    if column.dtype == "integer":
        return text.str.to_integer(strict=False)
    if column.dtype == "boolean":
        return text.replace_strict(_TRUTH_FAST, default=None, return_dtype=pl.Boolean)
    if column.dtype == "datetime":
        # The common form alone: polars parses it on a fast path, many times faster than a
        # format with an optional fraction (and a cache of repeated values only slows it down).
        return text.str.strptime(
            pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False, exact=True, cache=False
        )
    if column.dtype == "date":
        return text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, exact=True, cache=False)
    if period:
        return (
            pl.when(text.str.contains(_FIRST_OF_MONTH)).then(text.str.slice(0, 7)).otherwise(text)
        )
    return text


def _retry(text: pl.Series, values: pl.Series, column: Column) -> _Converted:
    """Retry the cells that failed the common form with the lenient forms; explain the rest."""
    failed = values.is_null() & text.is_not_null()
    if not failed.any():
        return _Converted(values)
    # Only the few cells that failed pay for the lenient forms (surrounding spaces and so on).
    index = failed.arg_true()
    stripped = text.gather(index).str.strip_chars()
    lenient, explain = _LENIENT[column.dtype]
    retried = lenient(stripped)
    values = values.scatter(index, retried)
    still = retried.is_null() & (stripped != "")
    bad = stripped.filter(still)
    return _Converted(values, bad_index=index.filter(still), bad_message=explain(bad))


def _lenient_integer(text: pl.Series) -> pl.Series:
    # Whole numbers written with a zero fraction (12.0), as Excel and pandas often do.
    whole = text.str.replace(r"^([+-]?[0-9]+)\.0*$", "$1")
    return whole.str.to_integer(strict=False)


def _integer_message(bad: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(bad.str.contains(_WHOLE))
        .then(
            pl.format("'{}' is too large for a whole number (the largest is {})", bad, _INT64_MAX)
        )
        .when(bad.str.contains(_THOUSANDS))
        .then(pl.format("'{}' is not a whole number: write it without thousands separators", bad))
        .when(bad.str.contains(_SCIENTIFIC))
        .then(pl.format("'{}' is not a whole number: write it out in digits", bad))
        .otherwise(pl.format("'{}' is not a whole number", bad))
    ).to_series()


def _lenient_boolean(text: pl.Series) -> pl.Series:
    return text.str.to_lowercase().replace_strict(_TRUTH, default=None, return_dtype=pl.Boolean)


def _boolean_message(bad: pl.Series) -> pl.Series:
    return pl.select(
        pl.format("'{}' is not true or false (write true or false, 1 or 0, yes or no)", bad)
    ).to_series()


def _lenient_datetime(text: pl.Series) -> pl.Series:
    parsed = [
        text.str.strptime(pl.Datetime("us"), form, strict=False, exact=True, cache=False)
        for form in _DATETIME_FORMATS
    ]
    return pl.select(pl.coalesce(parsed)).to_series()


def _datetime_message(bad: pl.Series) -> pl.Series:
    return pl.select(
        pl.when(bad.str.contains(_TIME_ZONE))
        .then(pl.format("'{}' has a time zone: write the local date and time without one", bad))
        .otherwise(
            pl.format(
                "'{}' is not a date and time: write YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS", bad
            )
        )
    ).to_series()


def _lenient_date(text: pl.Series) -> pl.Series:
    return text.str.strptime(pl.Date, "%Y-%m-%d", strict=False, exact=True, cache=False)


def _date_message(bad: pl.Series) -> pl.Series:
    return pl.select(pl.format("'{}' is not a date: write YYYY-MM-DD", bad)).to_series()


# For each type: the lenient parse of text that failed the common form, and what to say.
_LENIENT: dict[str, tuple[Callable[[pl.Series], pl.Series], Callable[[pl.Series], pl.Series]]] = {
    "integer": (_lenient_integer, _integer_message),
    "boolean": (_lenient_boolean, _boolean_message),
    "datetime": (_lenient_datetime, _datetime_message),
    "date": (_lenient_date, _date_message),
}


def _from_typed(source: pl.Series, column: Column, *, period: bool) -> _Converted:
    """A typed (Parquet) column converted to the column's type; type_problem vetted the pair."""
    dtype = source.dtype
    if column.dtype == "string":
        if period and dtype.is_temporal():
            first = (source.dt.day() == 1) & (source.cast(pl.Datetime("us")).dt.time() == time())
            month = source.dt.strftime("%Y-%m")
            text = pl.select(pl.when(first).then(month).otherwise(_as_text(source))).to_series()
            return _Converted(text)
        return _Converted(_as_text(source))
    if column.dtype == "integer":
        if dtype.is_integer():
            values = source.cast(pl.Int64, strict=False)
            bad = values.is_null() & source.is_not_null()
            return _typed_failures(values, source, bad, "'{}' is too large for a whole number")
        if dtype.is_float():
            whole = source.is_finite() & (source == source.round(0)) & (source.abs() < 2.0**63)
            values = pl.select(pl.when(whole).then(source.cast(pl.Int64, strict=False))).to_series()
            bad = source.is_not_null() & ~whole
            return _typed_failures(values, source, bad, "'{}' is not a whole number")
        return convert(source.cast(pl.String), column)  # decimals, as text
    if column.dtype == "boolean":
        if dtype == pl.Boolean:
            return _Converted(source)
        values = pl.select(
            pl.when(source == 1).then(True).when(source == 0).then(False)
        ).to_series()
        bad = source.is_not_null() & values.is_null()
        return _typed_failures(values, source, bad, "'{}' is not true or false (1 or 0)")
    if column.dtype == "datetime":
        return _Converted(source.cast(pl.Datetime("us")))
    if dtype == pl.Date:
        return _Converted(source)
    midnight = source.dt.time() == time()
    values = pl.select(pl.when(midnight).then(source.dt.date())).to_series()
    bad = source.is_not_null() & ~midnight
    return _typed_failures(values, source, bad, "'{}' is not a date: it has a time of day")


def _typed_failures(values: pl.Series, source: pl.Series, bad: pl.Series, form: str) -> _Converted:
    if not bad.any():
        return _Converted(values)
    index = bad.arg_true()
    text = _as_text(source.gather(index))
    return _Converted(
        values, bad_index=index, bad_message=pl.select(pl.format(form, text)).to_series()
    )


def type_problem(arrow_type: pa.DataType, column: Column) -> str | None:
    """Why a Parquet column of that type cannot hold the column, or None if it can."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_null(arrow_type):
        return None
    nested = pa.types.is_nested(arrow_type) or pa.types.is_map(arrow_type)
    if nested:
        return f"{column.name} holds lists or records ({arrow_type}); it must hold single values"
    temporal = pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
    aware = pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None
    if aware and column.dtype in ("datetime", "date"):
        return (
            f"{column.name} holds times with a time zone ({arrow_type.tz}); the dataset"
            " holds local clock times: send them without a time zone"
        )
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    text = text or pa.types.is_string_view(arrow_type)
    number = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
    accepted = {
        "string": True,
        "integer": text or number or pa.types.is_decimal(arrow_type),
        "boolean": text or pa.types.is_boolean(arrow_type) or pa.types.is_integer(arrow_type),
        "datetime": text or temporal,
        "date": text or temporal,
    }[column.dtype]
    if accepted:
        return None
    wanted = {
        "integer": "whole numbers",
        "boolean": "true or false",
        "datetime": "dates and times",
        "date": "dates",
    }[column.dtype]
    return f"{column.name} is stored as {arrow_type} in the Parquet file; it must hold {wanted}"


def _as_text(values: pl.Series) -> pl.Series:
    """Values as the text a person would write (times without trailing zero microseconds)."""
    if values.dtype == pl.String:
        return values
    if isinstance(values.dtype, pl.Datetime):
        return values.dt.to_string("%Y-%m-%d %H:%M:%S")
    if values.dtype == pl.Boolean:
        words = pl.when(values).then(pl.lit("true")).when(~values).then(pl.lit("false"))
        return pl.select(words).to_series()
    return values.cast(pl.String)
