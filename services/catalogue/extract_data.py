"""Assembling an extract's rows from the Parquet store, streamed, and writing the file.

The rows of a (trust, month) come from the return that carries the items (its latest accepted
revision) or, failing that, are derived from a dataset they can be computed from (A&E counts
from patient-level ECDS). Months roll up to quarters and years, and trusts to regions or the
nation, by each item's aggregation. Everything stays lazy and is sunk to Parquet in a stream,
so the store is never loaded into memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

import schemas
from schemas.compile.derive import derive

_AGGREGATE = {"sum": pl.Expr.sum, "mean": pl.Expr.mean, "last": pl.Expr.last}


@dataclass(frozen=True)
class Source:
    """Where one (trust, month)'s values of some items come from."""

    org_code: str
    month: str  # YYYY-MM
    dataset: str
    submission_id: str
    path: Path
    items: tuple[str, ...]
    derived: bool


@dataclass(frozen=True)
class Shape:
    """What the extract holds: items, their key columns, the grain and the periods' labels."""

    items: tuple[str, ...]
    key: tuple[str, ...]  # disaggregation columns
    period_label: str
    period_type: str
    org_level: str
    regions: dict[str, str]  # org code -> region, for org_level region


@dataclass(frozen=True)
class Built:
    """A written extract file."""

    rows: int
    sha256: str
    columns: list[dict[str, str]]


def _source_frame(source: Source, key: tuple[str, ...]) -> pl.LazyFrame:
    dataset = schemas.get_dataset(source.dataset)
    rows = pl.scan_parquet(source.path)
    if source.derived:
        frame = derive(dataset, rows).select(*key, *source.items)
    else:
        frame = rows.select(*key, *(pl.col(dataset.items[i]).alias(i) for i in source.items))
    return frame.with_columns(
        pl.lit(source.org_code).alias("org_code"),
        pl.lit(source.month).alias("month"),
        pl.lit(source.submission_id).alias("source_submission_id"),
        pl.lit(source.derived).alias("derived"),
    )


def _carried_frame(sources: Sequence[Source], key: tuple[str, ...]) -> pl.LazyFrame:
    """Returns of one dataset read as one multi-file scan, each row tagged with its source.

    One scan over many files streams far better than one scan per file (measured in
    bench/extract_build.py); the provenance comes from a small join on the file path.
    """
    dataset = schemas.get_dataset(sources[0].dataset)
    items = sources[0].items
    paths = [str(source.path) for source in sources]
    provenance = pl.LazyFrame(
        {
            "_path": paths,
            "org_code": [s.org_code for s in sources],
            "month": [s.month for s in sources],
            "source_submission_id": [s.submission_id for s in sources],
        }
    )
    rows = pl.scan_parquet(paths, include_file_paths="_path", hive_partitioning=False)
    return (
        rows.select("_path", *key, *(pl.col(dataset.items[i]).alias(i) for i in items))
        .join(provenance, on="_path", how="inner", maintain_order="left")
        .drop("_path")
        .with_columns(pl.lit(False).alias("derived"))
    )


def monthly_rows(sources: Sequence[Source], shape: Shape) -> pl.LazyFrame:
    """One row per (trust, month, key) with every item: the finest grain of the extract."""
    by_items: dict[tuple[str, ...], list[pl.LazyFrame]] = {}
    carried: dict[tuple[tuple[str, ...], str], list[Source]] = {}
    for source in sources:
        if source.derived:
            by_items.setdefault(source.items, []).append(_source_frame(source, shape.key))
        else:
            carried.setdefault((source.items, source.dataset), []).append(source)
    for (items, _dataset), group in carried.items():
        by_items.setdefault(items, []).append(_carried_frame(group, shape.key))
    keys = ["org_code", "month", *shape.key]
    joined: pl.LazyFrame | None = None
    for frames in by_items.values():
        part = pl.concat(frames, how="vertical_relaxed")
        if joined is None:
            joined = part
            continue
        # Items of another dataset for the same cells: join on the key, keep both provenances.
        joined = joined.join(part, on=keys, how="full", coalesce=True, suffix="_other").select(
            *keys,
            *(c for c in shape.items if c in joined.collect_schema() or c in part.collect_schema()),
            pl.concat_str(
                [pl.col("source_submission_id"), pl.col("source_submission_id_other")],
                separator=",",
                ignore_nulls=True,
            ).alias("source_submission_id"),
            (pl.col("derived").fill_null(False) | pl.col("derived_other").fill_null(False)).alias(
                "derived"
            ),
        )
    assert joined is not None
    return joined


def shape_rows(monthly: pl.LazyFrame, shape: Shape) -> pl.LazyFrame:
    """The monthly rows rolled up to the request's grain, in the extract's column order."""
    org_column: list[str] = []
    frame = monthly
    coarse = shape.period_type != "month" or shape.org_level != "trust"
    if shape.org_level == "region":
        mapping = pl.LazyFrame(
            {"org_code": list(shape.regions), "region": list(shape.regions.values())}
        )
        frame = frame.join(mapping, on="org_code", how="left")
        org_column = ["region"]
    elif shape.org_level == "trust":
        org_column = ["org_code"]
    if coarse:
        # Over time first, within each trust, by the item's own aggregation; then over trusts.
        per_trust = (
            frame.sort("month")
            .group_by("org_code", *(org_column if org_column == ["region"] else []), *shape.key)
            .agg(
                *(_over_time(item) for item in shape.items),
                pl.col("source_submission_id")
                .str.split(",")
                .explode()
                .unique()
                .sort()
                .str.join(",")
                .alias("source_submission_id"),
            )
        )
        if shape.org_level == "trust":
            frame = per_trust
        else:
            frame = per_trust.group_by(*org_column, *shape.key).agg(
                *(_over_orgs(item) for item in shape.items),
                pl.col("source_submission_id")
                .str.split(",")
                .explode()
                .unique()
                .sort()
                .str.join(",")
                .alias("source_submission_id"),
            )
        frame = frame.with_columns(pl.lit(True).alias("derived"))
    shaped = frame.with_columns(pl.lit(shape.period_label).alias("period")).select(
        *org_column, "period", *shape.key, *shape.items, "source_submission_id", "derived"
    )
    if coarse:
        return shaped.sort(*org_column, *shape.key)
    # At trust and month grain the rows stream in source order (trusts in code order, each
    # return's rows as sent): no sort, so nothing holds the whole extract in memory.
    return shaped


def _over_time(item: str) -> pl.Expr:
    aggregation = schemas.ITEMS[item].aggregation
    return _AGGREGATE[aggregation](pl.col(item)).alias(item)


def _over_orgs(item: str) -> pl.Expr:
    aggregation = schemas.ITEMS[item].org_aggregation
    return _AGGREGATE[aggregation](pl.col(item)).alias(item)


def write(frame: pl.LazyFrame, target: Path, *, metadata: dict[str, str]) -> Built:
    """Stream the rows to a Parquet file with key-value metadata; its size, hash and schema."""
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.sink_parquet(target, compression="zstd", metadata=metadata)
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    parquet = pq.ParquetFile(target)
    columns = [{"name": field.name, "type": str(field.type)} for field in parquet.schema_arrow]
    return Built(rows=parquet.metadata.num_rows, sha256=digest.hexdigest(), columns=columns)


def metadata_for(
    *, request_id: str, revision: int, period: str, items: Sequence[str], versions: dict[str, int]
) -> dict[str, str]:
    """The Parquet key-value metadata of an extract."""
    return {
        "drb.request_id": request_id,
        "drb.revision": str(revision),
        "drb.period": period,
        "drb.items": ",".join(items),
        "drb.dataset_versions": json.dumps(versions, sort_keys=True),
    }
