"""The SPC chart as first written (at 69a52d0): one sliding window per point, a list search per
rebase. Kept as the simple reference the linear ``services.catalogue.spc.chart`` must equal
(tests/unit/test_spc_linear.py) and as the peer it is timed against (bench/spc.py)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from services.catalogue.spc import (
    LIMIT,
    NEAR_LIMIT,
    RUN,
    SHORT_SERIES,
    Chart,
    ChartPoint,
    Direction,
    Point,
    _assurance,
    _centre_and_spread,
    _point_type,
    _variation_icon,
)


def reference_chart(
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
