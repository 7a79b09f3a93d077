"""The linear SPC chart equals the simple reference (one window per point) on random series.

Values are drawn from a few small integers as well as floats, so that ties, flat steps, points on
the mean and long runs (shifts, trends, two-in-three) are common; rebases split the series into
segments of two points or more, each with its own limits and rules.
"""

from __future__ import annotations

from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from services.catalogue import spc
from services.catalogue.periods import month_label
from tests.spc_reference import reference_chart

_VALUES = st.one_of(
    st.integers(min_value=0, max_value=4).map(float),
    st.sampled_from([-40.0, 40.0]),  # near or beyond a limit
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
_DIRECTIONS: list[spc.Direction] = ["increase", "decrease", "neutral"]


@st.composite
def _series(draw: st.DrawFn) -> tuple[list[spc.Point], list[str]]:
    """Points over consecutive months (sent shuffled) and rebases leaving 2+ points a segment."""
    values = draw(st.lists(_VALUES, min_size=2, max_size=80))
    if draw(st.booleans()):  # a monotone stretch: trends, and shifts on one side
        at = draw(st.integers(min_value=0, max_value=len(values) - 1))
        values[at:at] = [float(v) for v in range(draw(st.integers(0, 12)))]
    points = [spc.Point(period=month_label(24_000 + n), value=v) for n, v in enumerate(values)]
    starts = draw(st.sets(st.integers(min_value=2, max_value=max(2, len(points) - 2))))
    kept: list[int] = []
    for start in sorted(starts):
        if start <= len(points) - 2 and start - (kept[-1] if kept else 0) >= 2:
            kept.append(start)
    return draw(st.permutations(points)), [points[n].period for n in kept]


@settings(max_examples=200, deadline=None)
@given(
    series=_series(),
    direction=st.sampled_from(_DIRECTIONS),
    target=st.none() | st.floats(min_value=-10, max_value=10),
    screen=st.booleans(),
    fix=st.none() | st.integers(min_value=2, max_value=30),
)
def test_the_linear_chart_equals_the_reference(
    series: tuple[list[spc.Point], list[str]],
    direction: spc.Direction,
    target: float | None,
    screen: bool,
    fix: int | None,
) -> None:
    points, rebase = series
    options = dict(
        improvement_direction=direction,
        target=target,
        screen_outliers=screen,
        fix_after_n_points=fix,
        rebase=rebase,
    )
    fast = spc.chart(points, **options)  # type: ignore[arg-type]
    simple = reference_chart(points, **options)  # type: ignore[arg-type]
    assert [asdict(p) for p in fast.points] == [asdict(p) for p in simple.points]
    assert (fast.variation_icon, fast.assurance_icon, fast.short_series_warning) == (
        simple.variation_icon,
        simple.assurance_icon,
        simple.short_series_warning,
    )


# Runs that meet at a rebase: each rule must stop there, as the reference's segments do.
_AT_A_REBASE = {
    "a rising trend ends, a falling one starts": (
        [0, 20, 0, 20, 5, 6, 7, 8, 9, 10, 11],
        [20, 19, 18, 17, 16, 15, 14, 0, 40, 0],
    ),
    "a trend goes on": ([0, 20, 0, 20, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 40, 0]),
    "a shift goes on": ([0, 20, 0, 20, 15, 15, 15], [15, 15, 15, 15, 0, 20, 0]),
    "two in three across": ([6, 4, 6, 5, 20, 3, 20], [6, 6, 1, 1, 2]),
}


def test_no_rule_runs_across_a_rebase() -> None:
    for name, (before, after) in _AT_A_REBASE.items():
        values = [float(v) for v in (*before, *after)]
        points = [spc.Point(period=month_label(24_000 + n), value=v) for n, v in enumerate(values)]
        for direction in _DIRECTIONS:
            options = dict(
                improvement_direction=direction,
                screen_outliers=False,
                rebase=[points[len(before)].period],
            )
            fast = spc.chart(points, **options)  # type: ignore[arg-type]
            simple = reference_chart(points, **options)  # type: ignore[arg-type]
            assert fast == simple, name
