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
# What one chart can show (the API refuses more with 422): 20 years of months, and a rebase a
# year at most. The chart is linear in both; these keep one call well under half a second.
MAX_YEARS = 20
MAX_POINTS = 12 * MAX_YEARS
MAX_REBASES = MAX_YEARS


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
    """The XmR chart of the points (in period order, at least two per segment).

    Linear in the points and rebases (after the sort): every rule is found from runs of equal
    values, not by sliding a window, so a long series or many rebases cost no more per point.
    """
    ordered = sorted(points, key=lambda p: p.period)
    index = {p.period: n for n, p in enumerate(ordered)}
    unknown = [r for r in rebase if r not in index]
    if unknown:
        raise ValueError(f"rebase {unknown[0]} is not a point's period")
    y = np.array([p.value for p in ordered], dtype=np.float64)
    starts = sorted({0, *(index[r] for r in rebase)})
    n = len(y)
    mean, amr = np.empty(n), np.empty(n)
    short = False
    for first, end in itertools.pairwise([*starts, n]):
        short |= end - first < SHORT_SERIES
        mean[first:end], amr[first:end] = _centre_and_spread(
            y[first:end], screen_outliers, fix_after_n_points
        )
    upl, lpl = mean + LIMIT * amr, mean - LIMIT * amr
    near_upper, near_lower = mean + NEAR_LIMIT * amr, mean - NEAR_LIMIT * amr
    segment = np.zeros(n, dtype=np.int64)
    segment[starts[1:]] = 1
    rules, highs = _rules(
        y, np.cumsum(segment), mean=mean, upl=upl, lpl=lpl, near=(near_lower, near_upper)
    )
    out = [
        ChartPoint(
            period=p.period,
            value=float(value),
            mean=float(centre),
            upl=float(upper),
            lpl=float(lower),
            upper_2sigma=float(upper2),
            lower_2sigma=float(lower2),
            rule=rule,
            point_type=_point_type(rule, high, improvement_direction),
        )
        for p, value, centre, upper, lower, upper2, lower2, rule, high in zip(
            ordered,
            y,
            mean,
            upl,
            lpl,
            near_upper,
            near_lower,
            rules,
            highs,
            strict=True,
        )
    ]
    return Chart(
        points=out,
        variation_icon=_variation_icon(out[-1], improvement_direction),
        assurance_icon=_assurance(target, improvement_direction, float(upl[-1]), float(lpl[-1])),
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


def _in_runs(values: np.ndarray, breaks: np.ndarray, length: int) -> np.ndarray:
    """Where ``values`` is non-zero and part of ``length`` or more equal values in a row (a run
    also ends where ``breaks`` is true: at a new segment)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    new_run = np.ones(len(values), dtype=bool)
    new_run[1:] = (values[1:] != values[:-1]) | breaks[1:]
    run = np.cumsum(new_run) - 1
    in_run: np.ndarray = (np.bincount(run)[run] >= length) & (values != 0)
    return in_run


def _rules(
    y: np.ndarray,
    segment: np.ndarray,
    *,
    mean: np.ndarray,
    upl: np.ndarray,
    lpl: np.ndarray,
    near: tuple[np.ndarray, np.ndarray],
) -> tuple[list[str], list[bool]]:
    """The first special cause rule each point is part of (or none), and whether it is high.

    Each rule looks within the point's segment only (``segment``: its number).
    """
    n = len(y)
    outside = (y > upl) | (y < lpl)
    side = np.sign(y - mean).astype(np.int64)
    near_lower, near_upper = near
    close = ~outside & ((y < near_lower) | (y > near_upper))
    new_segment = np.ones(n, dtype=bool)
    new_segment[1:] = segment[1:] != segment[:-1]
    # A shift: RUN points in a row on one side of the mean.
    shift = _in_runs(side, new_segment, RUN)
    # A trend: RUN - 1 equal steps in a row (within a segment), and both ends of each step.
    steps = np.sign(np.diff(y)).astype(np.int64)
    steps[new_segment[1:]] = 0  # no step across a rebase
    rising_or_falling = _in_runs(steps, new_segment[1:], RUN - 1)
    trend = np.zeros(n, dtype=bool)
    trend[:-1] |= rising_or_falling
    trend[1:] |= rising_or_falling
    # Two of three: windows of 3 in one segment, on one side, with 2 or more near a limit.
    two_in_three = np.zeros(n, dtype=bool)
    if n >= 3:
        same_segment = segment[2:] == segment[:-2]
        same_side = np.abs(side[:-2] + side[1:-1] + side[2:]) == 3
        near_count = close[:-2].astype(int) + close[1:-1] + close[2:]
        window = same_segment & same_side & (near_count >= 2)
        for offset in range(3):
            two_in_three[offset : n - 2 + offset] |= window & close[offset : n - 2 + offset]
    names = np.select(
        [outside, trend, two_in_three, shift],
        ["outside_limits", "trend", "two_in_three", "shift"],
        "none",
    )
    # A trend point takes the trend's own direction: the step after it when the next point is
    # in the trend too (its first point, or a peak starting a fall), else the step into it.
    after = np.zeros(n, dtype=np.int64)
    after[:-1] = steps
    before = np.zeros(n, dtype=np.int64)
    before[1:] = steps
    next_in_trend = np.zeros(n, dtype=bool)
    next_in_trend[:-1] = trend[1:] & ~new_segment[1:]
    trend_step = np.where(next_in_trend, after, before)
    highs = np.where(~outside & trend, trend_step > 0, side > 0)
    return [str(name) for name in names], [bool(high) for high in highs]


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
