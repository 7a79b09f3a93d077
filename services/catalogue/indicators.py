"""Indicators: one item's monthly values for one organisation, from the data held.

The values are those an extract would carry at trust and month grain (the latest accepted return
of the item's primary dataset, or one it is derivable from), totalled over the item's
disaggregation (department types, for the A&E counts) by its aggregation over organisations.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from sqlalchemy.orm import Session

import schemas
from services.catalogue import extract_data, extracts
from services.catalogue.errors import Forbidden, NotFound
from services.catalogue.periods import month_label
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import requests as requests_repo
from services.catalogue.settings import Settings
from services.catalogue.spc import Point


@dataclass(frozen=True)
class Series:
    """The months held, as SPC points, and the months in the range not held."""

    points: list[Point]
    missing: list[str]
    sources: list[str]


def check_access(*, session: Session, kind: str, caller: str, org_code: str) -> None:
    """Trusts see their own; bodies the organisations of their requests; auditors all."""
    if kind == "auditor":
        return
    if kind == "trust":
        if org_code != caller:
            raise Forbidden("A trust sees its own indicators only.")
        return
    if kind == "oversight_body":
        if org_code in requests_repo.organisations_asked_by(session=session, body_code=caller):
            return
        raise Forbidden(f"{org_code} is not in any of {caller}'s requests.")
    raise Forbidden(f"Indicators are for trusts, oversight bodies and auditors, not a {kind}.")


def monthly_series(
    *, session: Session, settings: Settings, item: str, org_code: str, first: int, last: int
) -> Series:
    """The item's value for the organisation in each month from ``first`` to ``last`` held."""
    if item not in schemas.ITEMS:
        raise NotFound(f"There is no item {item!r}; GET /v1/items lists them.")
    if org_repo.get(session=session, code=org_code) is None:
        raise NotFound(f"There is no organisation {org_code!r}.")
    months = list(range(first, last + 1))
    found = extracts.plan(
        session=session, settings=settings, org_codes=[org_code], months=months, items=[item]
    )
    key = schemas.ITEMS[item].disaggregation
    shape = extract_data.Shape(
        items=(item,),
        key=tuple(key),
        period_label="",
        period_type="month",
        org_level="trust",
        regions={},
    )
    values: dict[str, float] = {}
    if found.sources:
        total = _over_disaggregation(item)
        frame = (
            extract_data.monthly_rows(found.sources, shape)
            .group_by("month")
            .agg(total)
            .sort("month")
            .collect()
        )
        values = {month: float(value) for month, value in frame.iter_rows() if value is not None}
    labels = [month_label(m) for m in months]
    return Series(
        points=[Point(period=label, value=values[label]) for label in labels if label in values],
        missing=[label for label in labels if label not in values],
        sources=sorted({source.submission_id for source in found.sources}),
    )


def _over_disaggregation(item: str) -> pl.Expr:
    """The item over its disaggregation within one trust and month: as over organisations."""
    aggregation = schemas.ITEMS[item].org_aggregation
    column = pl.col(item)
    by_aggregation = {"sum": column.sum(), "mean": column.mean(), "last": column.last()}
    return by_aggregation.get(aggregation, column.sum()).alias(item)
