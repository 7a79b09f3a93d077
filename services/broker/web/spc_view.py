"""SPC charts drawn on the server as SVG, in Making Data Count's colours, with their icons.

No script is needed to see a chart: each is an ``<svg role="img">`` with a summary as its label,
drawn with presentation attributes only (the pages' CSP allows no inline style), followed by a
table of every point. Colours: common cause grey, concern orange, improvement blue, neutral
purple, each dark enough for 3:1 against white (WCAG 1.4.11), and each special point also
drawn larger, so colour is never the only cue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.catalogue.trust_overview import IndicatorChart, Standing

WIDTH = 720
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 64, 32, 16, 40

COLOURS = {
    "common_cause": "#768692",  # NHS mid grey
    "special_cause_concern": "#b25600",  # Making Data Count orange, darkened for contrast
    "special_cause_improvement": "#005eb8",  # NHS blue
    "special_cause_neutral_high": "#330072",  # NHS purple
    "special_cause_neutral_low": "#330072",
}
POINT_WORDS = {
    "common_cause": "common cause",
    "special_cause_concern": "special cause: concern",
    "special_cause_improvement": "special cause: improvement",
    "special_cause_neutral_high": "special cause: high",
    "special_cause_neutral_low": "special cause: low",
}
RULE_WORDS = {
    "outside_limits": "outside the process limits",
    "trend": "a run of 7 rising or falling",
    "two_in_three": "2 of 3 near a limit",
    "shift": "7 in a row on one side of the mean",
    "none": "",
}
# Variation icon: (letter, colour, words).
VARIATION = {
    "common_cause": ("", COLOURS["common_cause"], "Common cause variation: no significant change"),
    "improvement_high": ("H", COLOURS["special_cause_improvement"], "Improvement: higher"),
    "improvement_low": ("L", COLOURS["special_cause_improvement"], "Improvement: lower"),
    "concern_high": ("H", COLOURS["special_cause_concern"], "Concern: higher"),
    "concern_low": ("L", COLOURS["special_cause_concern"], "Concern: lower"),
    "neutral_high": ("H", COLOURS["special_cause_neutral_high"], "Special cause: higher"),
    "neutral_low": ("L", COLOURS["special_cause_neutral_low"], "Special cause: lower"),
}
ASSURANCE = {
    "pass": ("P", COLOURS["special_cause_improvement"], "Assurance: the target is met every month"),
    "fail": ("F", COLOURS["special_cause_concern"], "Assurance: the target is missed every month"),
    "hit_and_miss": ("?", COLOURS["common_cause"], "Assurance: the target is hit and miss"),
    "none": ("", COLOURS["common_cause"], "No target set: no assurance icon"),
}
DIRECTION_WORDS = {
    "increase": "higher is better",
    "decrease": "lower is better",
    "neutral": "neither higher nor lower is better",
}


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    r: float
    colour: str


@dataclass(frozen=True)
class Row:
    period: str
    raw: float  # the value as the API gives it (data-value, for tests and scripts)
    point_type: str
    value: str
    mean: str
    upl: str
    lpl: str
    type: str


@dataclass(frozen=True)
class Icon:
    letter: str
    colour: str
    words: str


@dataclass(frozen=True)
class ChartView:
    id: str
    name: str
    item: str
    unit: str
    label: str
    direction: str
    takes_target: bool  # a target means something only when one way is better
    width: int
    height: int
    x_start: int  # the plot area's left and right edges (grid lines, target line)
    x_end: int
    dots: list[Dot]
    line: str
    mean_path: str
    upl_path: str
    lpl_path: str
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    rows: list[Row]
    variation: Icon
    assurance: Icon
    variation_icon: str  # the API's names (data-value)
    assurance_icon: str
    standing: str | None
    missing: list[str]
    short: bool
    target: float | None
    target_y: float | None


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def standing_text(standing: Standing | None) -> str | None:
    if standing is None:
        return None
    first = "lowest" if standing.order == "lowest first" else "highest"
    return (
        f"{ordinal(standing.rank)} {first} in {standing.period}, of {standing.of} {standing.among}"
    )


def view(indicator: IndicatorChart) -> ChartView:
    points = indicator.chart.points
    values = [p.value for p in points]
    span_values = [*values, *(p.upl for p in points), *(p.lpl for p in points)]
    if indicator.target is not None:
        span_values.append(indicator.target)
    low, high = min(span_values), max(span_values)
    low = min(low, 0.0) if low >= 0 and low < 0.25 * high else low
    if math.isclose(low, high):
        low, high = low - 1, high + 1
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad
    inner_w = WIDTH - LEFT - RIGHT
    inner_h = HEIGHT - TOP - BOTTOM

    def x(n: int) -> float:
        return LEFT + (inner_w * n / max(len(points) - 1, 1))

    def y(value: float) -> float:
        return TOP + inner_h * (high - value) / (high - low)

    def path(values_at: list[float]) -> str:
        # Limits step at rebases: one horizontal run per point, joined.
        return " ".join(
            f"{'M' if n == 0 else 'L'}{x(n):.1f},{y(v):.1f}" for n, v in enumerate(values_at)
        )

    dots = [
        Dot(
            x=round(x(n), 1),
            y=round(y(p.value), 1),
            r=3.5 if p.point_type == "common_cause" else 5.5,
            colour=COLOURS[p.point_type],
        )
        for n, p in enumerate(points)
    ]
    ticks = _nice_ticks(low, high)
    step = max(1, math.ceil(len(points) / 8))
    x_ticks = [(round(x(n), 1), points[n].period) for n in range(0, len(points), step)]
    variation = VARIATION[indicator.chart.variation_icon]
    assurance = ASSURANCE[indicator.chart.assurance_icon]
    if indicator.direction == "neutral":
        assurance = ("", COLOURS["common_cause"], "No assurance icon: no way is better")
    last = points[-1]
    label = (
        f"SPC chart of {indicator.name}, {points[0].period} to {last.period}: latest "
        f"{number(last.value)} against a mean of {number(last.mean)} (process limits "
        f"{number(last.lpl)} to {number(last.upl)}). {variation[2]}. {assurance[2]}."
    )
    return ChartView(
        id=f"chart-{indicator.item}",
        name=indicator.name,
        item=indicator.item,
        unit=indicator.unit,
        label=label,
        direction=DIRECTION_WORDS[indicator.direction],
        takes_target=indicator.direction != "neutral",
        width=WIDTH,
        height=HEIGHT,
        x_start=LEFT,
        x_end=WIDTH - RIGHT,
        dots=dots,
        line=path(values),
        mean_path=path([p.mean for p in points]),
        upl_path=path([p.upl for p in points]),
        lpl_path=path([p.lpl for p in points]),
        y_ticks=[(round(y(t), 1), number(t)) for t in ticks],
        x_ticks=x_ticks,
        rows=[
            Row(
                period=p.period,
                raw=p.value,
                point_type=p.point_type,
                value=number(p.value),
                mean=number(p.mean),
                upl=number(p.upl),
                lpl=number(p.lpl),
                type=": ".join(
                    w for w in (POINT_WORDS[p.point_type], RULE_WORDS.get(p.rule, "")) if w
                ),
            )
            for p in points
        ],
        variation=Icon(*variation),
        assurance=Icon(*assurance),
        variation_icon=indicator.chart.variation_icon,
        assurance_icon=indicator.chart.assurance_icon,
        standing=standing_text(indicator.standing),
        missing=indicator.missing,
        short=indicator.chart.short_series_warning,
        target=indicator.target,
        target_y=round(y(indicator.target), 1) if indicator.target is not None else None,
    )


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(value)
        value += step
    return ticks
