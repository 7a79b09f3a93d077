"""Measurement for improvement: SPC charts of any series, and of the indicators held."""

from __future__ import annotations

import itertools
import math
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.broker.dependencies import PrincipalDep, RuntimeDep, SessionDep
from services.broker.responses import IndicatorChart, SpcChart, SpcPointOut
from services.broker.routes.reports import only
from services.catalogue import auth, indicators, spc
from services.catalogue.db import session_scope
from services.catalogue.errors import Forbidden, Invalid
from services.catalogue.periods import PeriodError, month_label, parse_month
from services.catalogue.states import OrgKind

router = APIRouter(tags=["measurement for improvement"])
T = TypeVar("T")

POINTS_BOUND = (
    f"at most {spc.MAX_POINTS} points ({spc.MAX_YEARS} years of months: what a chart can show)"
)
REBASES_BOUND = f"at most {spc.MAX_REBASES} rebases (one a year over the longest chart)"
RANGE_BOUND = f"at most {spc.MAX_YEARS} years ({spc.MAX_POINTS} months)"


def _past(count: int, bound: int, words: str) -> str | None:
    """What a 422 says of ``count`` past ``bound`` (a longer chart costs CPU and shows no more)."""
    return f"{count} sent; a chart takes {words}" if count > bound else None


def _at_most(bound: int, words: str) -> AfterValidator:
    """A list's check against its bound, in the 422's words (the schema gives ``maxItems``)."""

    def check(values: list[T]) -> list[T]:
        if message := _past(len(values), bound, words):
            raise ValueError(message)
        return values

    return AfterValidator(check)


class SpcPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(description="The month, YYYY-MM.", examples=["2025-01"], max_length=16)
    value: float


class SpcOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    improvement_direction: spc.Direction = Field(
        default="increase", description="Which way is better: increase, decrease or neutral."
    )
    target: float | None = Field(default=None, description="For the assurance icon.")
    screen_outliers: bool = Field(
        default=True,
        description="Leave moving ranges of 3.267 x their average or more out of the limits.",
    )
    fix_after_n_points: int | None = Field(
        default=None,
        ge=2,
        description="Base each segment's mean and limits on its first n points only.",
    )
    rebase: Annotated[
        list[Annotated[str, Field(max_length=16)]],
        _at_most(spc.MAX_REBASES, REBASES_BOUND),
    ] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": spc.MAX_REBASES},
        description=f"Months (YYYY-MM) where new limits start: {REBASES_BOUND}.",
    )


class SpcRequest(SpcOptions):
    points: Annotated[list[SpcPoint], _at_most(spc.MAX_POINTS, POINTS_BOUND)] = Field(
        min_length=2,
        json_schema_extra={"maxItems": spc.MAX_POINTS},
        description=f"The series, one point a month: {POINTS_BOUND}.",
    )


@router.post("/v1/spc", summary="An SPC chart (XmR, Making Data Count) of the points sent")
def spc_chart(body: SpcRequest, _caller: PrincipalDep) -> SpcChart:
    """Process limits, special cause rules, point types and the icons (any role)."""
    errors: list[dict[str, object]] = []
    periods: list[str] = []
    seen: set[str] = set()
    for n, point in enumerate(body.points):
        field = f"points[{n}]"
        label = _month(point.period, f"{field}.period", errors)
        if label is not None:
            if label in seen:
                errors.append({"field": f"{field}.period", "message": f"{label} appears twice"})
            seen.add(label)
            periods.append(label)
        if not math.isfinite(point.value):
            errors.append({"field": f"{field}.value", "message": "must be a finite number"})
    points = [
        spc.Point(period=label, value=p.value)
        for p, label in zip(body.points, periods, strict=False)
    ]
    _raise_if(errors)
    return _chart(points, body)


IndicatorQuery = Depends(
    only(
        "org_code",
        "period_start",
        "period_end",
        "improvement_direction",
        "target",
        "screen_outliers",
        "fix_after_n_points",
        "rebase",
    )
)


@router.get(
    "/v1/indicators/{item}/spc",
    summary="An SPC chart of one item held for a trust, a region or the nation, as entitled",
    dependencies=[IndicatorQuery],
)
def indicator_chart(
    item: str,
    session: SessionDep,
    runtime: RuntimeDep,
    caller: PrincipalDep,
    org_code: Annotated[
        str,
        Query(
            description=(
                "A trust's ODS code (e.g. RJ1), a region's (e.g. Y56: its trusts together) or"
                f" the literal `{indicators.NATIONAL}` (the trusts of the nation together)."
            )
        ),
    ],
    period_start: Annotated[str, Query(description="First month, YYYY-MM.")],
    period_end: Annotated[
        str, Query(description=f"Last month, YYYY-MM: a range of {RANGE_BOUND}.")
    ],
    improvement_direction: spc.Direction = "increase",
    target: float | None = None,
    screen_outliers: bool = True,
    fix_after_n_points: Annotated[int | None, Query(ge=2)] = None,
    rebase: Annotated[
        list[str] | None,
        Query(description=f"Months where new limits start: {REBASES_BOUND}."),
    ] = None,
) -> IndicatorChart:
    """The same chart for data held. Trusts: their own. Oversight bodies: only the cells their
    active requests cover (those items, organisations, months, and grain: a region-level
    request gives its trusts of a region together, a national one all its trusts together,
    never one trust). Auditors: any trust, region or the nation. Months in the range with
    nothing held (for a region or the nation: not held for every trust) are left out and
    listed in ``missing``. Disclosure control: a body's region or national chart needs at least
    3 trusts with a value in every month shown (``min_trusts``); a body whose requests cover
    fewer trusts there gets a 403, and a month from fewer is left out and listed in
    ``suppressed``. Every read is audited, and every refused one."""
    errors: list[dict[str, object]] = []
    first = _month(period_start, "period_start", errors)
    last = _month(period_end, "period_end", errors)
    if first is not None and last is not None:
        months = parse_month(last) - parse_month(first) + 1
        if months < 1:
            errors.append({"field": "period_end", "message": "period_end is before period_start"})
        elif months > spc.MAX_POINTS:
            errors.append(
                {
                    "field": "period_end",
                    "message": f"{first} to {last} is {months} months; a chart takes {RANGE_BOUND}",
                }
            )
    if message := _past(len(rebase or []), spc.MAX_REBASES, REBASES_BOUND):
        errors.append({"field": "rebase", "message": message})
    _raise_if(errors)
    assert first is not None
    assert last is not None
    try:
        scope = indicators.authorise(
            session=session,
            kind=caller.kind,
            caller=caller.org_code,
            item=item,
            org_code=org_code,
            first=parse_month(first),
            last=parse_month(last),
        )
    except Forbidden as refused:
        if caller.kind in (OrgKind.OVERSIGHT_BODY, OrgKind.TRUST):
            # The request's transaction rolls back with the 403: the refusal is kept in its own.
            session.rollback()
            with session_scope(runtime.factory) as own:
                auth.acting(own, caller)
                indicators.record_read(
                    session=own,
                    actor=caller.org_code,
                    item=item,
                    org_code=org_code,
                    period_start=first,
                    period_end=last,
                    refusal=refused.detail,
                )
        raise
    series = indicators.monthly_series(
        session=session,
        settings=runtime.settings,
        item=item,
        scope=scope,
        first=parse_month(first),
        last=parse_month(last),
    )
    if len(series.points) < 2:
        suppressed = (
            f" ({len(series.suppressed)} more suppressed: fewer than {scope.min_trusts} trusts"
            " with a value)"
            if series.suppressed
            else ""
        )
        raise Invalid(
            f"{len(series.points)} month(s) of {item} are held for {org_code} between"
            f" {first} and {last}{suppressed}; a chart needs at least 2.",
            [{"field": "period_start", "message": "too few months held in the range"}],
        )
    options = SpcOptions(
        improvement_direction=improvement_direction,
        target=target,
        screen_outliers=screen_outliers,
        fix_after_n_points=fix_after_n_points,
        rebase=rebase or [],
    )
    charted = _chart(series.points, options)
    indicators.record_read(
        session=session,
        actor=caller.org_code,
        item=item,
        org_code=org_code,
        period_start=first,
        period_end=last,
    )
    return IndicatorChart(
        item=item,
        org_code=org_code,
        org_level=scope.org_level,
        **charted.model_dump(),
        missing=series.missing,
        sources=series.sources,
        min_trusts=scope.min_trusts,
        suppressed=series.suppressed,
    )


def _chart(points: list[spc.Point], options: SpcOptions) -> SpcChart:
    """The chart, after checking the options against the points (422 naming the field)."""
    errors: list[dict[str, object]] = []
    periods = sorted(p.period for p in points)
    index = {period: n for n, period in enumerate(periods)}
    starts = [0]
    for n, raw in enumerate(options.rebase):
        label = _month(raw, f"rebase[{n}]", errors)
        if label is None:
            continue
        if label not in index:
            errors.append({"field": f"rebase[{n}]", "message": f"{label} is not a point's period"})
        elif index[label] > 0:
            starts.append(index[label])
    bounds = [*sorted(set(starts)), len(periods)]
    if not errors and any(end - first < 2 for first, end in itertools.pairwise(bounds)):
        errors.append({"field": "rebase", "message": "every segment needs at least 2 points"})
    _raise_if(errors)
    chart = spc.chart(
        points,
        improvement_direction=options.improvement_direction,
        target=options.target,
        screen_outliers=options.screen_outliers,
        fix_after_n_points=options.fix_after_n_points,
        rebase=[periods[i] for i in bounds[1:-1]],
    )
    return SpcChart(
        points=[SpcPointOut.model_validate(point, from_attributes=True) for point in chart.points],
        variation_icon=chart.variation_icon,
        assurance_icon=chart.assurance_icon,
        short_series_warning=chart.short_series_warning,
    )


def _month(value: str, field: str, errors: list[dict[str, object]]) -> str | None:
    try:
        return month_label(parse_month(value))
    except PeriodError as error:
        errors.append({"field": field, "message": str(error)})
        return None


def _raise_if(errors: list[dict[str, object]]) -> None:
    if errors:
        raise Invalid("The chart's input is not valid.", errors)
