"""A dataset's derivations as one polars query over its validated rows."""

from __future__ import annotations

import polars as pl

from schemas.model import Dataset, OneOf


def derive(dataset: Dataset, rows: pl.LazyFrame) -> pl.LazyFrame:
    """Derived items from validated rows: one row per month (`period`, YYYY-MM) and group."""
    if not dataset.derivations:
        raise ValueError(f"{dataset.code} has no derivations")
    group_by = list(dataset.derivations[0].group_by)
    month = pl.col(dataset.derivations[0].time_column).dt.strftime("%Y-%m").alias("period")
    keys = ["period", *group_by]
    items = [d.item for d in dataset.derivations]
    derived = rows.group_by(month, *group_by).agg(
        d.expression.cast(pl.Int64).alias(d.item) for d in dataset.derivations
    )
    # Groups with no rows at all (a department type with no attendances) are zero, as they
    # are in a monthly return, so the codes of enumerated columns are filled in.
    enumerated = {
        name: check.values
        for name in group_by
        if isinstance(check := dataset.column(name).check_named("one_of"), OneOf)
    }
    grid = derived.select(k for k in keys if k not in enumerated).unique()
    for name, values in enumerated.items():
        grid = grid.join(pl.LazyFrame({name: list(values)}), how="cross")
    return (
        grid.join(derived, on=keys, how="left")
        .with_columns(pl.col(items).fill_null(0))
        .select(*keys, *items)
        .sort(keys)
    )
