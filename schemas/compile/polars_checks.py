"""A dataset's checks and rules as polars expressions, true where a row (or the frame) passes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from schemas.model import UNIQUE_KEY, Dataset

_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True, kw_only=True)
class CompiledCheck:
    """One check or rule as a polars expression, true where a row (or the frame) passes."""

    # The column it is reported against; None for a check on the whole frame.
    column: str | None
    name: str
    expression: pl.Expr
    # The columns it reads and the types it needs to be evaluated.
    reads: Mapping[str, pl.DataType]


def compiled_checks(
    dataset: Dataset, *, org_code: str | None = None, period: str | None = None
) -> list[CompiledCheck]:
    """Every check and rule as a polars expression; rules about the submission need both.

    The same list makes the pandera schema, so a validator may evaluate it directly as a
    shortcut and ask pandera for the failure cases only when something fails.
    """
    if period is not None and _MONTH.fullmatch(period) is None:
        raise ValueError(f"period {period!r} is not YYYY-MM")
    dtypes = dataset.polars_schema()
    # Key uniqueness is checked here rather than with pandera's unique=: that crashes (polars
    # ShapeError) when every key column is missing, and reports false duplicates when some are.
    compiled = [
        CompiledCheck(
            column=None,
            name=UNIQUE_KEY,
            expression=~pl.struct(dataset.key).is_duplicated(),
            reads={c: dtypes[c] for c in dataset.key},
        )
    ]
    for column in dataset.columns:
        compiled.extend(
            CompiledCheck(
                column=column.name,
                name=check.name,
                expression=check.expression(column.name),
                reads={column.name: column.polars_dtype},
            )
            for check in column.checks
        )
    for rule in dataset.rules:
        expression = rule.expression(org_code=org_code, period=period)
        if expression is not None:
            # Attached to the column it is about, so failure_cases name that column and value.
            compiled.append(
                CompiledCheck(
                    column=rule.column,
                    name=rule.name,
                    expression=expression,
                    reads={c: dtypes[c] for c in rule.reads()},
                )
            )
    return compiled
