"""Statistical process control for measurement for improvement: XmR charts as "Making Data Count".

The method is NHS England's "Making Data Count" (plot the dots), as implemented by the NHS-R
community's NHSRplotthedots package, so that a chart here reads as it does in trust board papers:

- the points are split into segments at each ``rebase`` period; each segment has its own limits;
- per segment: the mean, and the average moving range (mean of |y[i] - y[i-1]|) of its first
  ``fix_after_n_points`` points (all of them by default); with ``screen_outliers`` a moving range
  of 3.267 times that average or more is left out and the average taken again;
- process limits at mean +/- 2.66 x average moving range (3 sigma), and 2-sigma lines at two
  thirds of that;
- a point shows special cause variation when it is outside the process limits
  (``outside_limits``), part of 7 or more points rising or falling in a row (``trend``), part of
  two of three points in a row beyond the same 2-sigma line and inside the limits
  (``two_in_three``), or part of 7 or more points in a row on one side of the mean (``shift``);
  ``rule`` names the first that applies in that order;
- its type is improvement or concern by whether it is high or low, and the direction of
  improvement (``neutral``: high or low). A trend point is high when the trend rises and low when
  it falls, wherever it lies against the mean (a point in two trends, at a peak or a trough,
  takes the one it starts: the step after it); any other point is high above the mean and low
  below it;
- the variation icon is the last point's (H or L as its type says); the assurance icon
  compares the target with the last segment's limits: a target the limits lie wholly on the
  good side of passes, wholly on the bad side fails, and a target between them is hit and miss;
- a segment of fewer than 12 points gets the short series warning (too few for reliable limits).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

Direction: TypeAlias = Literal["increase", "decrease", "neutral"]

LIMIT = 2.66  # 3 / d2 with d2 = 1.128 for moving ranges of two points
NEAR_LIMIT = LIMIT * 2 / 3  # the 2-sigma lines
SCREEN = 3.267  # upper range limit of a moving range (D4 x average moving range)
RUN = 7  # points in a row for a shift or a trend
SHORT_SERIES = 12  # fewer points than this in a segment: limits are not reliable


@dataclass(frozen=True)
class Point:
    period: str
    value: float


@dataclass(frozen=True)
class ChartPoint:
    period: str
    value: float
    mean: float
    upl: float
    lpl: float
    upper_2sigma: float
    lower_2sigma: float
    rule: str
    point_type: str


@dataclass(frozen=True)
class Chart:
    points: list[ChartPoint]
    variation_icon: str
    assurance_icon: str
    short_series_warning: bool


def chart(
    points: Sequence[Point],
    *,
    improvement_direction: Direction = "increase",
    target: float | None = None,
    screen_outliers: bool = True,
    fix_after_n_points: int | None = None,
    rebase: Sequence[str] = (),
) -> Chart:
    """The XmR chart of the points (in period order, at least two per segment)."""
    ordered = sorted(points, key=lambda p: p.period)
    periods = [p.period for p in ordered]
    y = np.array([p.value for p in ordered], dtype=np.float64)
    starts = sorted({0, *(periods.index(r) for r in rebase)})
    bounds = [*starts, len(y)]
    out: list[ChartPoint] = []
    short = False
    last_limits = (np.nan, np.nan)
    for first, end in itertools.pairwise(bounds):
        segment = y[first:end]
        short |= len(segment) < SHORT_SERIES
        mean, amr = _centre_and_spread(segment, screen_outliers, fix_after_n_points)
        upl, lpl = mean + LIMIT * amr, mean - LIMIT * amr
        near_upper, near_lower = mean + NEAR_LIMIT * amr, mean - NEAR_LIMIT * amr
        rules, highs = _rules(segment, mean=mean, upl=upl, lpl=lpl, near=(near_lower, near_upper))
        for offset, value in enumerate(segment):
            rule = rules[offset]
            out.append(
                ChartPoint(
                    period=periods[first + offset],
                    value=float(value),
                    mean=mean,
                    upl=upl,
                    lpl=lpl,
                    upper_2sigma=near_upper,
                    lower_2sigma=near_lower,
                    rule=rule,
                    point_type=_point_type(rule, highs[offset], improvement_direction),
                )
            )
        last_limits = (upl, lpl)
    return Chart(
        points=out,
        variation_icon=_variation_icon(out[-1], improvement_direction),
        assurance_icon=_assurance(target, improvement_direction, *last_limits),
        short_series_warning=short,
    )


def _centre_and_spread(
    segment: np.ndarray, screen_outliers: bool, fix_after_n_points: int | None
) -> tuple[float, float]:
    """The mean and the average moving range of the segment's baseline points."""
    baseline = segment[:fix_after_n_points] if fix_after_n_points else segment
    ranges = np.abs(np.diff(baseline))
    amr = float(ranges.mean())
    if screen_outliers and amr > 0:
        kept = ranges[ranges < SCREEN * amr]
        amr = float(kept.mean()) if len(kept) else amr
    return float(baseline.mean()), amr


def _rules(
    y: np.ndarray, *, mean: float, upl: float, lpl: float, near: tuple[float, float]
) -> tuple[list[str], list[bool]]:
    """The first special cause rule each point is part of (or none), and whether it is high."""
    n = len(y)
    outside = (y > upl) | (y < lpl)
    side = np.sign(y - mean).astype(int)
    near_lower, near_upper = near
    close = ~outside & ((y < near_lower) | (y > near_upper))
    shift = np.zeros(n, dtype=bool)
    trend = np.zeros(n, dtype=bool)
    two_in_three = np.zeros(n, dtype=bool)
    steps = np.sign(np.diff(y)).astype(int)
    for end in range(RUN - 1, n):
        window = slice(end - RUN + 1, end + 1)
        if side[end] != 0 and np.all(side[window] == side[end]):
            shift[window] = True
        run = steps[end - RUN + 1 : end]  # the 6 steps between 7 points
        if run[0] != 0 and np.all(run == run[0]):
            trend[window] = True
    for first in range(n - 2):
        window = slice(first, first + 3)
        same_side = abs(int(side[window].sum())) == 3
        if same_side and int(close[window].sum()) >= 2:
            two_in_three[window] |= close[window]
    names: list[str] = []
    highs: list[bool] = []
    for i in range(n):
        above = bool(side[i] > 0)
        if outside[i]:
            names.append("outside_limits")
        elif trend[i]:
            names.append("trend")
            # The trend's own direction: the step after the point when the next point is in a
            # trend too (the first point of a trend, or a peak starting a fall), else the step
            # into it (the last point of a trend).
            step = steps[i] if i + 1 < n and trend[i + 1] else steps[i - 1]
            above = bool(step > 0)
        elif two_in_three[i]:
            names.append("two_in_three")
        elif shift[i]:
            names.append("shift")
        else:
            names.append("none")
        highs.append(above)
    return names, highs


def _point_type(rule: str, high: bool, direction: Direction) -> str:
    if rule == "none":
        return "common_cause"
    if direction == "neutral":
        return "special_cause_neutral_high" if high else "special_cause_neutral_low"
    good = high if direction == "increase" else not high
    return "special_cause_improvement" if good else "special_cause_concern"


def _variation_icon(last: ChartPoint, direction: Direction) -> str:
    """The last point's icon: high or low as its type says (a rising trend is high below the
    mean too), so improvement is high when higher is better, concern high when it is worse."""
    high_is_good = direction == "increase"
    return {
        "common_cause": "common_cause",
        "special_cause_improvement": "improvement_high" if high_is_good else "improvement_low",
        "special_cause_concern": "concern_low" if high_is_good else "concern_high",
        "special_cause_neutral_high": "neutral_high",
        "special_cause_neutral_low": "neutral_low",
    }[last.point_type]


def _assurance(target: float | None, direction: Direction, upl: float, lpl: float) -> str:
    if target is None or direction == "neutral":
        return "none"
    if target > upl:
        return "fail" if direction == "increase" else "pass"
    if target < lpl:
        return "pass" if direction == "increase" else "fail"
    return "hit_and_miss"
