"""A dataset as a pandera (polars) schema, made from its compiled checks."""

from __future__ import annotations

from collections.abc import Mapping

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas.compile.polars_checks import compiled_checks
from schemas.model import Dataset


def pandera_schema(
    dataset: Dataset, *, org_code: str | None = None, period: str | None = None
) -> pa.DataFrameSchema:
    """The pandera (polars) schema; rules about the submission need org_code and period.

    Validate a collected pl.DataFrame with lazy=True: a LazyFrame is checked for names and
    types only (pandera's default depth for lazy frames), so value checks would pass silently.
    """
    column_checks: dict[str, list[pa.Check]] = {column.name: [] for column in dataset.columns}
    frame_checks: list[pa.Check] = []
    for check in compiled_checks(dataset, org_code=org_code, period=period):
        pandera_check = _pandera_check(check.name, check.expression, check.reads)
        if check.column is None:
            frame_checks.append(pandera_check)
        else:
            column_checks[check.column].append(pandera_check)
    return pa.DataFrameSchema(
        {
            column.name: pa.Column(
                column.polars_dtype,
                checks=column_checks[column.name],
                nullable=column.nullable,
                required=column.required,
                description=column.description,
            )
            for column in dataset.columns
        },
        checks=frame_checks,
        strict=True,
        coerce=False,
        name=dataset.code,
        title=dataset.title,
        description=dataset.description,
    )


def _pandera_check(name: str, expression: pl.Expr, reads: Mapping[str, pl.DataType]) -> pa.Check:
    """A named pandera check evaluating `expression` on the frame."""

    def check(data: PolarsData) -> pl.LazyFrame | bool:
        present = data.lazyframe.collect_schema()
        # A missing or mistyped column is already reported by pandera's presence and dtype
        # checks; evaluating the expression would only add a crash report on top.
        if any(present.get(column) != dtype for column, dtype in reads.items()):
            return True
        return data.lazyframe.select(expression)

    return pa.Check(check, name=name)
