"""Indicators: one item's monthly values for a trust, a region or the nation, from the data held.

The values are those an extract would carry at month grain (the latest accepted return of the
item's primary dataset, or one it is derivable from), totalled within each trust over the item's
disaggregation (department types, for the A&E counts), then over the trusts of the chart by the
item's aggregation over organisations.

Who may chart what: a trust its own values; an auditor anything; an oversight body only the
cells its *active* requests cover, at their grain: the items asked for, monthly periods within
the requests' months, and a trust (trust-level requests), a region (region-level requests: the
request's trusts in that region together) or the nation (national requests: all the request's
trusts together). Every read allowed is audited as ``indicator.read``, every read refused to a
trust or body as ``indicator.refused``.

Disclosure control: a body's region or national chart adds up at least ``MIN_TRUSTS`` trusts in
every month it shows (as statistical disclosure rules do), so that no total is one or two trusts'
own figures: a body whose requests cover fewer trusts there is refused, and a month in which
fewer trusts have a value is suppressed (listed, never drawn). A trust's own chart, and the
auditors' (who may chart any trust), have no such minimum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl
from sqlalchemy.orm import Session, sessionmaker

import schemas
from services.catalogue import audit, extract_data, extracts, store
from services.catalogue.db import session_scope
from services.catalogue.errors import Forbidden, Invalid, NotFound
from services.catalogue.models import DataRequest, Submission
from services.catalogue.periods import month_label, parse
from services.catalogue.regions import REGIONS
from services.catalogue.repositories import item_values as item_values_repo
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import requests as requests_repo
from services.catalogue.repositories import submissions as submissions_repo
from services.catalogue.settings import Settings
from services.catalogue.spc import Point
from services.catalogue.states import OrgKind

NATIONAL = "national"  # the org_code of the whole nation
MIN_TRUSTS = 3  # trusts with a value in each month of a body's region or national chart
_PERIODICALLY = {"quarter": "quarterly", "year": "yearly"}


@dataclass(frozen=True)
class Scope:
    """Whose values a chart is of: one trust, or the trusts of a region or of the nation."""

    org_level: str  # trust | region | national
    org_codes: tuple[str, ...]
    min_trusts: int | None = None  # the trusts each month shown must add up (disclosure)


@dataclass(frozen=True)
class Series:
    """The months held, as SPC points, and the months in the range not held."""

    points: list[Point]
    missing: list[str]
    sources: list[str]
    suppressed: list[str]  # months held but from fewer than the scope's min_trusts trusts


def level_of(org_code: str) -> str:
    """The grain an org_code names: ``national``, a region's code, or else a trust's."""
    if org_code == NATIONAL:
        return "national"
    if org_code in REGIONS:
        return "region"
    return "trust"


def authorise(
    *, session: Session, kind: str, caller: str, item: str, org_code: str, first: int, last: int
) -> Scope:
    """The trusts the caller may chart ``item`` over for ``org_code``, months first..last.

    404 for an unknown item or organisation; 403 (naming what the caller may ask for instead,
    never a value) when the caller is not entitled to every month of the range.
    """
    if item not in schemas.ITEMS:
        raise NotFound(f"There is no item {item!r}; GET /v1/items lists them.")
    level = level_of(org_code)
    if level == "trust" and org_repo.get(session=session, code=org_code) is None:
        raise NotFound(f"There is no organisation {org_code!r}.")
    if kind == OrgKind.AUDITOR:
        return Scope(org_level=level, org_codes=_trusts_of(session, level, org_code))
    if kind == OrgKind.TRUST:
        if level != "trust" or org_code != caller:
            raise Forbidden("A trust sees its own indicators only.")
        return Scope(org_level="trust", org_codes=(org_code,))
    if kind == OrgKind.OVERSIGHT_BODY:
        trusts = _entitled_trusts(
            session=session,
            body=caller,
            item=item,
            org_code=org_code,
            level=level,
            months=range(first, last + 1),
        )
        if level == "trust":
            return Scope(org_level=level, org_codes=trusts)
        if len(trusts) < MIN_TRUSTS:
            raise Forbidden(
                f"A {level} chart adds up at least {MIN_TRUSTS} trusts in every month (disclosure"
                f" control: fewer would show a trust's own figures); your active requests for"
                f" {item} cover {len(trusts)} trust(s) at {org_code}."
            )
        return Scope(org_level=level, org_codes=trusts, min_trusts=MIN_TRUSTS)
    raise Forbidden(f"Indicators are for trusts, oversight bodies and auditors, not a {kind}.")


def record_read(
    *,
    session: Session,
    actor: str,
    item: str,
    org_code: str,
    period_start: str,
    period_end: str,
    refusal: str | None = None,
) -> None:
    """Audit one read of an indicator, allowed (``indicator.read``) or refused, with why."""
    detail: dict[str, object] = {
        "org_code": org_code,
        "period_start": period_start,
        "period_end": period_end,
    }
    if refusal is not None:
        detail["reason"] = refusal
    audit.record(
        session=session,
        actor=actor,
        action="indicator.read" if refusal is None else "indicator.refused",
        subject_type="indicator",
        subject_id=item,
        detail=detail,
    )


def _trusts_of(session: Session, level: str, org_code: str) -> tuple[str, ...]:
    """Every registered trust of the grain: one trust, a region's or the nation's."""
    if level == "trust":
        return (org_code,)
    region = org_code if level == "region" else None
    return tuple(
        o.code for o in org_repo.list_all(session=session, kind=OrgKind.TRUST, region=region)
    )


def _entitled_trusts(
    *, session: Session, body: str, item: str, org_code: str, level: str, months: range
) -> tuple[str, ...]:
    """The trusts of the body's active monthly requests covering every month, else 403."""
    asking = [r for r in requests_repo.active(session=session, body_code=body) if item in r.items]
    if not asking:
        raise Forbidden(f"None of {body}'s active requests asks for {item}.")
    in_region: set[str] = set()
    if level == "region":
        in_region = {o.code for o in org_repo.list_all(session=session, region=org_code)}
    at_grain: list[tuple[DataRequest, tuple[str, ...]]] = []
    for request in asking:
        if request.org_level != level:
            continue
        if level == "trust":
            trusts: tuple[str, ...] = (org_code,) if org_code in request.org_codes else ()
        elif level == "region":
            trusts = tuple(sorted(c for c in request.org_codes if c in in_region))
        else:
            trusts = tuple(sorted(request.org_codes))
        if trusts:
            at_grain.append((request, trusts))
    if not at_grain:
        raise Forbidden(_not_at_grain(session, body, item, org_code, level, asking))
    monthly = [(r, trusts) for r, trusts in at_grain if r.period_type == "month"]
    if not monthly:
        request = at_grain[0][0]
        raise Forbidden(
            f"Your request {request.id} for {item} at {org_code} is"
            f" {_PERIODICALLY.get(request.period_type, request.period_type)}: SPC charts are"
            " monthly, and figures by quarter or year do not entitle monthly ones."
        )
    covered: dict[tuple[str, ...], set[int]] = {}
    for request, trusts in monthly:
        covered.setdefault(trusts, set()).update(
            range(parse(request.period_start).first_month, parse(request.period_end).end_month)
        )
    wanted = set(months)
    # The widest set of trusts whose requests cover every month asked for.
    for trusts in sorted(covered, key=lambda t: (-len(t), t)):
        if wanted <= covered[trusts]:
            return trusts
    union = set().union(*covered.values())
    if wanted <= union:
        raise Forbidden(
            f"Your active requests cover {item} at {org_code} over different trusts in different"
            " months; chart the months of one request at a time: "
            + "; ".join(_spans(c) for c in covered.values())
            + "."
        )
    raise Forbidden(
        f"Your active requests cover {item} at {org_code} in {_spans(union)} only; asked for"
        f" {_spans(wanted)}."
    )


def _not_at_grain(
    session: Session,
    body: str,
    item: str,
    org_code: str,
    level: str,
    asking: Sequence[DataRequest],
) -> str:
    """Why no request covers the organisation at this grain, and what to ask for instead."""
    if level == "trust":
        for request in asking:
            if org_code in request.org_codes and request.org_level == "region":
                trust = org_repo.get(session=session, code=org_code)
                region = trust.region if trust is not None and trust.region else "its region"
                return (
                    f"Your request {request.id} names {org_code} but is at region level:"
                    f" ask for org_code={region}."
                )
            if org_code in request.org_codes and request.org_level == "national":
                return (
                    f"Your request {request.id} names {org_code} but is at national level:"
                    f" ask for org_code={NATIONAL}."
                )
    else:
        finer = sorted({r.org_level for r in asking if r.org_level != level})
        if finer:
            return (
                f"Your active requests for {item} are at {' and '.join(finer)} level, not"
                f" {level}: ask for org_code at that grain."
            )
    return f"{org_code} is not in any of {body}'s active requests for {item} at {level} level."


def _spans(months: Iterable[int]) -> str:
    """Months as runs: ``2025-01 to 2025-04, 2025-07``."""
    ordered = sorted(set(months))
    runs: list[list[int]] = []
    for month in ordered:
        if runs and month == runs[-1][-1] + 1:
            runs[-1].append(month)
        else:
            runs.append([month])
    return ", ".join(
        month_label(run[0]) if len(run) == 1 else f"{month_label(run[0])} to {month_label(run[-1])}"
        for run in runs
    )


def monthly_series(
    *, session: Session, settings: Settings, item: str, scope: Scope, first: int, last: int
) -> Series:
    """The item's value over the scope's trusts in each month from ``first`` to ``last`` held.

    A month of a region or the nation is held only when every trust of the scope is: a total
    over some trusts only would show a fall that is not there. A month from fewer than the
    scope's ``min_trusts`` trusts with a value is suppressed.
    """
    if item not in schemas.ITEMS:
        raise NotFound(f"There is no item {item!r}; GET /v1/items lists them.")
    aggregation = schemas.ITEMS[item].org_aggregation
    if scope.org_level != "trust" and aggregation == "none":
        raise Invalid(
            f"{item} cannot be added up over organisations; chart one trust at a time.",
            [{"field": "org_code", "message": "a trust's code is needed for this item"}],
        )
    months = list(range(first, last + 1))
    cells = _cells(session, settings, item, scope.org_codes, first=first, last=last)
    # Months held by every trust of the scope.
    complete = (
        cells.group_by("month")
        .agg(pl.col("org_code").n_unique().alias("trusts"))
        .filter(pl.col("trusts") == len(scope.org_codes))
    )
    used = cells.join(complete.select("month"), on="month", how="semi", maintain_order="left")
    values: dict[str, float] = {}
    suppressed: set[str] = set()
    if used.height:
        frame = (
            _per_trust(used, item)
            .group_by("month")
            .agg(_over_organisations(item), pl.col(item).count().alias("trusts"))
            .sort("month")
            .collect()
        )
        for month, value, trusts in frame.iter_rows():
            if scope.min_trusts is not None and trusts < scope.min_trusts:
                suppressed.add(month)
            elif value is not None:
                values[month] = float(value)
    sources = used.filter(~pl.col("month").is_in(sorted(suppressed)))["submission_id"]
    labels = [month_label(m) for m in months]
    return Series(
        points=[Point(period=label, value=values[label]) for label in labels if label in values],
        missing=[label for label in labels if label not in values and label not in suppressed],
        sources=sources.unique().sort().to_list(),
        suppressed=sorted(suppressed),
    )


def values_by_trust(
    *, session: Session, settings: Settings, item: str, month: int, org_codes: Sequence[str]
) -> dict[str, float]:
    """The item's value in one month for each of ``org_codes`` that holds it (for ranking)."""
    cells = _cells(session, settings, item, org_codes, first=month, last=month)
    frame = _per_trust(cells, item).collect()
    return {str(code): float(value) for code, _, value in frame.iter_rows() if value is not None}


def record_values(*, session: Session, settings: Settings, submission: Submission) -> None:
    """Keep an accepted return's value of each item it carries or derives (for its trust and
    month), in the caller's unit of work, so that charts over it need not read its file."""
    assert submission.data_path is not None
    dataset = submission.dataset_code
    path = store.absolute(settings, submission.data_path)
    carried = [(i, False) for i, spec in schemas.ITEMS.items() if spec.primary_dataset == dataset]
    derivable = [(i, True) for i in schemas.ITEMS if dataset in schemas.datasets_deriving(i)]
    for item, derived in [*carried, *derivable]:
        source = extract_data.Source(
            org_code=submission.org_code,
            month=submission.period,
            dataset=dataset,
            submission_id=submission.id,
            path=path,
            items=(item,),
            derived=derived,
        )
        _computed(session, [source], item)


# Returns whose values are kept in one unit of work of the backfill.
BACKFILL_BATCH = 200


def backfill_values(*, factory: sessionmaker[Session], settings: Settings) -> int:
    """Keep the values of every current return accepted before item_values existed, a batch to
    a unit of work (``drb migrate``): so that no chart's first read has to compute them from
    the files. How many returns it filled; a second run finds none."""
    with session_scope(factory) as session:
        ids = item_values_repo.lacking(session=session)
    for start in range(0, len(ids), BACKFILL_BATCH):
        with session_scope(factory) as session:
            for submission_id in ids[start : start + BACKFILL_BATCH]:
                submission = submissions_repo.get(session=session, submission_id=submission_id)
                if submission is not None and submission.data_path is not None:
                    record_values(session=session, settings=settings, submission=submission)
    return len(ids)


def _cells(
    session: Session,
    settings: Settings,
    item: str,
    org_codes: Sequence[str],
    *,
    first: int,
    last: int,
) -> pl.DataFrame:
    """(org_code, month, submission_id, held, value) of each (trust, month) holding the item,
    in trust then month order: from the latest accepted return of the item's primary dataset,
    or else of the first dataset deriving it (as extracts.plan chooses), read with the value
    kept for it in one query. ``held`` is False when the return has no rows for the trust.

    A return whose value is not kept yet (accepted before item_values) is computed from its
    file and kept for the next read.
    """
    primary = schemas.ITEMS[item].primary_dataset
    rank = {primary: 0} | {d: n + 1 for n, d in enumerate(schemas.datasets_deriving(item))}
    wanted = sorted(set(org_codes))
    rows = item_values_repo.current(
        session=session,
        item=item,
        dataset_codes=list(rank),
        periods=[month_label(m) for m in range(first, last + 1)],
        org_codes=wanted if len(wanted) <= extracts.ORG_FILTER_IN_SQL else None,
    )
    order = pl.DataFrame(
        {"org_code": list(org_codes), "_order": range(len(org_codes))},
        schema={"org_code": pl.String, "_order": pl.Int64},
    )
    frame = (
        pl.DataFrame(rows, schema=_CURRENT, orient="row")
        .join(order, on="org_code", how="inner")
        .with_columns(
            pl.col("held").cast(pl.Boolean),
            pl.col("dataset").replace_strict(rank, return_dtype=pl.Int64).alias("_rank"),
        )
        .sort("_order", "month", "_rank")
        .unique(subset=["org_code", "month"], keep="first", maintain_order=True)
        .filter(pl.col("data_path").is_not_null())
    )
    lacking = frame.filter(pl.col("held").is_null())
    if lacking.height:
        computed = _computed(
            session,
            [
                extract_data.Source(
                    org_code=row["org_code"],
                    month=row["month"],
                    dataset=row["dataset"],
                    submission_id=row["submission_id"],
                    path=store.absolute(settings, row["data_path"]),
                    items=(item,),
                    derived=row["dataset"] != primary,
                )
                for row in lacking.iter_rows(named=True)
            ],
            item,
        )
        filled = pl.DataFrame(
            {
                "submission_id": list(computed),
                "_held": [held for held, _ in computed.values()],
                "_value": [value for _, value in computed.values()],
            },
            schema={"submission_id": pl.String, "_held": pl.Boolean, "_value": pl.Float64},
        )
        frame = frame.join(
            filled, on="submission_id", how="left", maintain_order="left"
        ).with_columns(
            pl.coalesce("held", "_held").alias("held"),
            pl.when(pl.col("held").is_null())
            .then(pl.col("_value"))
            .otherwise(pl.col("value"))
            .alias("value"),
        )
    return frame.select("org_code", "month", "submission_id", "held", "value")


# The columns of item_values_repo.current, as read.
_CURRENT = {
    "org_code": pl.String,
    "month": pl.String,
    "dataset": pl.String,
    "submission_id": pl.String,
    "data_path": pl.String,
    "held": pl.Int8,
    "value": pl.Float64,
}


def _per_trust(cells: pl.DataFrame, item: str) -> pl.LazyFrame:
    """(org_code, month, item) of each cell whose return has a row for the trust, in order."""
    return (
        cells.lazy().filter(pl.col("held")).select("org_code", "month", pl.col("value").alias(item))
    )


def _computed(
    session: Session, sources: Sequence[extract_data.Source], item: str
) -> dict[str, tuple[bool, float | None]]:
    """The item's value of each source from its Parquet file, kept in item_values."""
    frame = _by_trust_and_month(sources, item).collect()
    found = {(str(code), str(month)): value for code, month, value in frame.iter_rows()}
    computed: dict[str, tuple[bool, float | None]] = {}
    rows: list[dict[str, object]] = []
    for source in sources:
        key = (source.org_code, source.month)
        value = None if found.get(key) is None else float(found[key])
        computed[source.submission_id] = (key in found, value)
        rows.append(
            {
                "submission_id": source.submission_id,
                "item": item,
                "derived": source.derived,
                "org_code": source.org_code,
                "month": source.month,
                "held": key in found,
                "value": value,
            }
        )
    item_values_repo.add(session=session, rows=rows)
    return computed


def _by_trust_and_month(sources: Sequence[extract_data.Source], item: str) -> pl.LazyFrame:
    """The item per trust and month (over the trust's disaggregation, by its aggregation)."""
    shape = extract_data.Shape(
        items=(item,),
        key=tuple(schemas.ITEMS[item].disaggregation),
        period_label="",
        period_type="month",
        org_level="trust",
        regions={},
    )
    return (
        extract_data.monthly_rows(sources, shape)
        .group_by("org_code", "month")
        .agg(_over_organisations(item))
    )


def _over_organisations(item: str) -> pl.Expr:
    """The item by its aggregation over organisations: over a trust's disaggregation, too."""
    aggregation = schemas.ITEMS[item].org_aggregation
    column = pl.col(item)
    by_aggregation = {"sum": column.sum(), "mean": column.mean(), "last": column.last()}
    return by_aggregation.get(aggregation, column.sum()).alias(item)
