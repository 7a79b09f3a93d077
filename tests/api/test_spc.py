"""SPC charts (Making Data Count): the XmR calculation, its rules, icons and the two endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.catalogue import spc
from services.catalogue.spc import Point
from services.validator import worker
from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]


def months(values: list[float], start_year: int = 2023) -> list[Point]:
    return [
        Point(period=f"{start_year + n // 12}-{n % 12 + 1:02d}", value=v)
        for n, v in enumerate(values)
    ]


def rules_of(chart: spc.Chart) -> list[str]:
    return [p.rule for p in chart.points]


# Twelve points with no signal: alternating around 10, moving ranges all 2.
FLAT = [9.0, 11.0] * 6


def test_limits_are_the_mean_plus_or_minus_2_66_average_moving_ranges() -> None:
    chart = spc.chart(months(FLAT))
    first = chart.points[0]
    assert first.mean == pytest.approx(10.0)
    assert first.upl == pytest.approx(10 + 2.66 * 2)
    assert first.lpl == pytest.approx(10 - 2.66 * 2)
    assert first.upper_2sigma == pytest.approx(10 + 2.66 * 2 * 2 / 3)
    assert first.lower_2sigma == pytest.approx(10 - 2.66 * 2 * 2 / 3)
    assert rules_of(chart) == ["none"] * 12
    assert {p.point_type for p in chart.points} == {"common_cause"}
    assert chart.variation_icon == "common_cause"
    assert chart.short_series_warning is False


def test_a_point_beyond_the_limits_and_screening_of_its_moving_ranges() -> None:
    values = [*FLAT[:11], 30.0]
    screened = spc.chart(months(values))
    # Moving ranges: ten of 2 then 21 (from 9 to 30): average 3.73; 21 >= 3.267 x 3.73 is
    # left out, so the limits come from the ten ranges of 2.
    mean = sum(values) / 12
    assert screened.points[0].upl == pytest.approx(mean + 2.66 * 2)
    assert rules_of(screened)[-1] == "outside_limits"
    assert screened.points[-1].point_type == "special_cause_improvement"
    assert screened.variation_icon == "improvement_high"
    unscreened = spc.chart(months(values), screen_outliers=False)
    assert unscreened.points[0].upl == pytest.approx(mean + 2.66 * (20 + 21) / 11)


def test_seven_rising_points_are_a_trend_and_direction_decides_improvement() -> None:
    values = [10.0, 12.0, 10.0, 12.0, 10.0, 10.5, 10.6, 10.7, 10.8, 10.9, 11.0, 11.1]
    up = spc.chart(months(values), improvement_direction="increase")
    assert rules_of(up)[5:] == ["trend"] * 7  # 10.0 (index 4) to 11.1: 7 rising points
    assert rules_of(up)[4] == "trend"
    down = spc.chart(months(values), improvement_direction="decrease")
    assert down.points[-1].point_type == "special_cause_concern"
    assert down.variation_icon == "concern_high"


def test_falling_trends_count_too() -> None:
    values = [20.0, 18.0, 20.0, 18.0, 20.0, 19.9, 19.8, 19.7, 19.6, 19.5, 19.4, 19.3]
    chart = spc.chart(months(values))
    assert rules_of(chart)[4:] == ["trend"] * 8


def test_seven_points_on_one_side_of_the_mean_are_a_shift() -> None:
    values = [9.0, 10.0, 9.0, 10.0, 9.0, 10.6, 11.4, 10.6, 11.4, 10.6, 11.4, 10.6]
    chart = spc.chart(months(values), improvement_direction="neutral")
    assert rules_of(chart) == ["none"] * 5 + ["shift"] * 7
    assert chart.points[-1].point_type == "special_cause_neutral_high"
    assert chart.variation_icon == "neutral_high"


def test_two_of_three_beyond_the_2_sigma_line_on_one_side() -> None:
    # Mean 10.4, 2-sigma line 11.58, upper limit 12.16: two of three points at 11.7 flag
    # those two points, not the one between them.
    values = [10.0, 10.5] * 5 + [11.7, 10.6, 11.7] + [10.0, 10.5] * 3 + [10.0]
    chart = spc.chart(months(values))
    upper2, upl = chart.points[0].upper_2sigma, chart.points[0].upl
    assert upper2 < 11.7 < upl
    assert rules_of(chart)[9:14] == ["none", "two_in_three", "none", "two_in_three", "none"]
    assert rules_of(chart).count("two_in_three") == 2


def test_rebase_gives_each_segment_its_own_limits() -> None:
    values = FLAT + [v + 20 for v in FLAT]
    points = months(values)
    chart = spc.chart(points, rebase=[points[12].period])
    assert chart.points[0].mean == pytest.approx(10)
    assert chart.points[12].mean == pytest.approx(30)
    assert rules_of(chart) == ["none"] * 24


def test_fix_after_n_points_keeps_the_baseline() -> None:
    values = FLAT + [20.0] * 3
    chart = spc.chart(months(values), fix_after_n_points=12)
    assert chart.points[-1].mean == pytest.approx(10)
    assert rules_of(chart)[-3:] == ["outside_limits"] * 3


# ---------------------------------------------------------------------------
# High or low: a trend by its direction, every other rule by its side of the mean
# (as NHSRplotthedots 0.2: "7 Point Trend (Increasing)" is high, "Above UCL", "2 in 3 Above CL"
# and "7 Points Above CL" are high; the rest low; the direction of improvement orients them)
# ---------------------------------------------------------------------------

# Wide swings around 20, then 7 points rising from 11 to 17: all below the mean (17.5), a trend
# (which outranks the shift they also make), inside the limits, never near the 2-sigma lines.
SWINGS = [10.0, 30.0] * 5
RISING_BELOW = [*SWINGS, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]
FALLING_ABOVE = [*[30.0, 10.0] * 5, 29.0, 28.0, 27.0, 26.0, 25.0, 24.0, 23.0]
TYPE = {
    ("high", "increase"): "special_cause_improvement",
    ("high", "decrease"): "special_cause_concern",
    ("high", "neutral"): "special_cause_neutral_high",
    ("low", "increase"): "special_cause_concern",
    ("low", "decrease"): "special_cause_improvement",
    ("low", "neutral"): "special_cause_neutral_low",
}
ICON = {
    ("high", "increase"): "improvement_high",
    ("high", "decrease"): "concern_high",
    ("high", "neutral"): "neutral_high",
    ("low", "increase"): "concern_low",
    ("low", "decrease"): "improvement_low",
    ("low", "neutral"): "neutral_low",
}
DIRECTIONS: list[spc.Direction] = ["increase", "decrease", "neutral"]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(
    ("values", "high_or_low"), [(RISING_BELOW, "high"), (FALLING_ABOVE, "low")]
)
@pytest.mark.parametrize("limits", ["all points", "fixed after 10", "rebased"])
def test_a_trend_is_high_or_low_by_its_direction_not_its_side_of_the_mean(
    direction: spc.Direction, values: list[float], high_or_low: str, limits: str
) -> None:
    points = months(values)
    if limits == "rebased":  # a first segment of its own before the swings
        points = months([*FLAT, *values])
    chart = spc.chart(
        points,
        improvement_direction=direction,
        fix_after_n_points=10 if limits == "fixed after 10" else None,
        rebase=[points[12].period] if limits == "rebased" else (),
    )
    trend = chart.points[-7:]
    assert [p.rule for p in trend] == ["trend"] * 7
    below = high_or_low == "high"  # each trend lies on the other side of its mean
    assert all((p.value < p.mean) == below for p in trend)
    assert {p.point_type for p in trend} == {TYPE[(high_or_low, direction)]}
    assert chart.variation_icon == ICON[(high_or_low, direction)]
    assert all(p.rule == "none" for p in chart.points[:-7])


def test_a_peak_takes_the_trend_it_starts() -> None:
    # Rising 11 to 17, then falling 17 to 11: 17 ends one trend and starts the other.
    values = [*SWINGS, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 16.0, 15.0, 14.0, 13.0, 12.0, 11.0]
    chart = spc.chart(months(values), improvement_direction="increase")
    types = [p.point_type for p in chart.points[10:]]
    assert [p.rule for p in chart.points[10:]] == ["trend"] * 13
    assert types[:6] == ["special_cause_improvement"] * 6  # rising
    assert types[6:] == ["special_cause_concern"] * 7  # the peak, then falling
    assert chart.variation_icon == "concern_low"


def test_a_flat_step_breaks_a_trend() -> None:
    # NHSRplotthedots' own example: 1, 2, 3, 3, 4, 5, 6 is no trend; 1 to 7 is.
    base = [50.0, 70.0] * 5
    flat = spc.chart(months([*base, 51.0, 52.0, 53.0, 53.0, 54.0, 55.0, 56.0]))
    assert "trend" not in rules_of(flat)
    rising = spc.chart(months([*base, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0]))
    assert rules_of(rising)[-7:] == ["trend"] * 7


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_outside_the_limits_keeps_its_side_even_in_a_rising_trend(
    direction: spc.Direction,
) -> None:
    # Twelve points round 100, then 7 rising far below the lower limit: outside_limits outranks
    # the trend, and is low (below the mean) although the points rise.
    values = [99.0, 101.0] * 6 + [50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0]
    chart = spc.chart(months(values), improvement_direction=direction, fix_after_n_points=12)
    last = chart.points[-7:]
    assert [p.rule for p in last] == ["outside_limits"] * 7
    assert {p.point_type for p in last} == {TYPE[("low", direction)]}
    assert chart.variation_icon == ICON[("low", direction)]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("side", ["high", "low"])
def test_a_shift_keeps_its_side_of_the_mean(direction: spc.Direction, side: str) -> None:
    sign = 1 if side == "high" else -1
    base = [10.0 - sign, 10.0] * 2 + [10.0 - sign]  # mirrored for a low shift
    values = base + [10 + sign * d for d in (0.6, 1.4) * 3 + (0.6,)]
    chart = spc.chart(months(values), improvement_direction=direction)
    assert rules_of(chart) == ["none"] * 5 + ["shift"] * 7
    assert {p.point_type for p in chart.points[5:]} == {TYPE[(side, direction)]}
    assert chart.variation_icon == ICON[(side, direction)]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("side", ["high", "low"])
def test_two_in_three_keeps_its_side_of_the_mean(direction: spc.Direction, side: str) -> None:
    sign = 1 if side == "high" else -1
    base = [10.0, 10.5] * 5
    flagged = [10.25 + sign * 1.45, 10.25 + sign * 0.35, 10.25 + sign * 1.45]
    values = [*base, *flagged, *[10.0, 10.5] * 3, 10.0]
    chart = spc.chart(months(values), improvement_direction=direction)
    marked = [p for p in chart.points if p.rule == "two_in_three"]
    assert len(marked) == 2
    assert {p.point_type for p in marked} == {TYPE[(side, direction)]}


@pytest.mark.parametrize(
    ("direction", "target", "icon"),
    [
        ("increase", 2.0, "pass"),  # the whole process is above the target
        ("increase", 20.0, "fail"),
        ("increase", 10.0, "hit_and_miss"),
        ("decrease", 2.0, "fail"),
        ("decrease", 20.0, "pass"),
        ("neutral", 5.0, "none"),
        ("increase", None, "none"),
    ],
)
def test_assurance(direction: spc.Direction, target: float | None, icon: str) -> None:
    chart = spc.chart(months(FLAT), improvement_direction=direction, target=target)
    assert chart.assurance_icon == icon


def test_short_series_warning() -> None:
    assert spc.chart(months(FLAT[:11])).short_series_warning is True


# ---------------------------------------------------------------------------
# POST /v1/spc and GET /v1/indicators/{item}/spc
# ---------------------------------------------------------------------------


# Who takes part: two trusts, two bodies (only CQC asks for RJ1), an auditor, a steward.
ROLES: dict[str, tuple[str, ...]] = {
    "RJ1": ("trust", "Y56"),
    "R0A": ("trust", "Y62"),
    "CQC": ("oversight_body",),
    "NHSE": ("oversight_body",),
    "NAO": ("auditor",),
    "DRB": ("steward",),
}
# CQC's request: RJ1's A&E attendances, January to April 2025.
CQC_ASKS_RJ1 = dict(
    title="t",
    purpose="p",
    legal_basis="l",
    due_days=20,
    items=["ae_attendances"],
    organisations=["RJ1"],
    period_start="2025-01",
    period_end="2025-04",
)


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {code: make_org(code, *role) for code, role in ROLES.items()}


def test_post_spc_as_the_contract_says(client: TestClient, orgs: dict[str, Headers]) -> None:
    body = {
        "points": [{"period": p.period, "value": p.value} for p in months(FLAT)],
        "improvement_direction": "increase",
        "target": None,
        "screen_outliers": True,
        "fix_after_n_points": None,
        "rebase": [],
    }
    answer = client.post("/v1/spc", headers=orgs["RJ1"], json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert set(result) == {"points", "variation_icon", "assurance_icon", "short_series_warning"}
    assert set(result["points"][0]) == {
        "period",
        "value",
        "mean",
        "upl",
        "lpl",
        "upper_2sigma",
        "lower_2sigma",
        "rule",
        "point_type",
    }
    assert result["points"][0]["upl"] == pytest.approx(15.32)
    assert (result["variation_icon"], result["assurance_icon"]) == ("common_cause", "none")
    unsorted = {"points": list(reversed(body["points"]))}  # type: ignore[arg-type]
    again = client.post("/v1/spc", headers=orgs["CQC"], json=unsorted).json()
    assert again["points"] == result["points"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"points": [{"period": "2025-01", "value": 1}]}, "points"),
        (
            {"points": [{"period": "2025-13", "value": 1}, {"period": "2025-02", "value": 2}]},
            "points[0].period",
        ),
        (
            {"points": [{"period": "2025-01", "value": 1}, {"period": "2025-01", "value": 2}]},
            "points[1].period",
        ),
        (
            {
                "points": [{"period": "2025-01", "value": 1}, {"period": "2025-02", "value": 2}],
                "rebase": ["2025-05"],
            },
            "rebase[0]",
        ),
        (
            {
                "points": [{"period": "2025-01", "value": 1}, {"period": "2025-02", "value": 2}],
                "rebase": ["2025-02"],
            },
            "rebase",
        ),
        (
            {
                "points": [{"period": "2025-01", "value": 1}, {"period": "2025-02", "value": 2}],
                "improvement_direction": "up",
            },
            "improvement_direction",
        ),
        (
            {
                "points": [{"period": "2025-01", "value": 1}, {"period": "2025-02", "value": 2}],
                "fix_after_n_points": 1,
            },
            "fix_after_n_points",
        ),
        (
            {
                "points": [{"period": "2025-01", "value": 1}, {"period": "2025-02", "value": 2}],
                "colour": "blue",
            },
            "colour",
        ),
    ],
)
def test_post_spc_names_what_is_wrong(
    client: TestClient, orgs: dict[str, Headers], body: dict[str, object], field: str
) -> None:
    answer = client.post("/v1/spc", headers=orgs["RJ1"], json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert any(field in str(error.get("field")) for error in answer.json()["errors"]), answer.json()


# The chart and its bounds query nothing of the database: one is enough.
ONE_DATABASE = pytest.mark.parametrize("catalogue_url", ["sqlite"], indirect=True)


def series(count: int) -> list[dict[str, object]]:
    """``count`` consecutive months from 1990-01, as POST /v1/spc takes them."""
    return [{"period": p.period, "value": p.value} for p in months([1.0, 5.0] * count, 1990)][
        :count
    ]


@ONE_DATABASE
def test_a_chart_at_the_bounds_is_drawn(client: TestClient, orgs: dict[str, Headers]) -> None:
    points = series(spc.MAX_POINTS)
    step = spc.MAX_POINTS // (spc.MAX_REBASES + 1)
    rebase = [points[step * n]["period"] for n in range(1, spc.MAX_REBASES + 1)]
    answer = client.post("/v1/spc", headers=orgs["RJ1"], json={"points": points, "rebase": rebase})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["points"]) == spc.MAX_POINTS


@ONE_DATABASE
@pytest.mark.parametrize(
    ("body", "field", "bound"),
    [
        ({"points": series(spc.MAX_POINTS + 1)}, "points", f"at most {spc.MAX_POINTS} points"),
        # The case: 10,000 points and thousands of rebases.
        (
            {"points": series(10_000), "rebase": [p["period"] for p in series(10_000)[2::2]]},
            "points",
            f"at most {spc.MAX_POINTS} points",
        ),
        (
            {
                "points": series(100),
                "rebase": [p["period"] for p in series(100)[2 : 2 * spc.MAX_REBASES + 4 : 2]],
            },
            "rebase",
            f"at most {spc.MAX_REBASES} rebases",
        ),
    ],
)
def test_post_spc_past_the_bounds_says_them(
    client: TestClient, orgs: dict[str, Headers], body: dict[str, object], field: str, bound: str
) -> None:
    says_bound(client.post("/v1/spc", headers=orgs["RJ1"], json=body), field, bound)


@ONE_DATABASE
@pytest.mark.parametrize(
    ("query", "field", "bound"),
    [
        (
            {"period_start": "1900-01", "period_end": "2999-12"},
            "period_end",
            f"at most {spc.MAX_YEARS} years",
        ),
        (
            {"period_start": "2000-01", "period_end": f"{2000 + spc.MAX_YEARS}-01"},
            "period_end",
            f"{spc.MAX_POINTS + 1} months",
        ),
        (
            {
                "period_start": "2000-01",
                "period_end": "2009-12",
                "rebase": [f"2000-{m:02d}" for m in range(1, 13)] * 2,
            },
            "rebase",
            f"at most {spc.MAX_REBASES} rebases",
        ),
    ],
)
def test_an_indicator_read_past_the_bounds_says_them(
    client: TestClient, orgs: dict[str, Headers], query: dict[str, object], field: str, bound: str
) -> None:
    answer = client.get(
        "/v1/indicators/ae_attendances/spc",
        headers=orgs["NAO"],
        params={"org_code": "national", **query},
    )
    says_bound(answer, field, bound)


def says_bound(answer: Any, field: str, bound: str) -> None:
    """A 422 whose message for ``field`` says the bound passed."""
    assert answer.status_code == 422, answer.text
    messages = [e["message"] for e in answer.json()["errors"] if e["field"] == field]
    assert messages, answer.json()
    assert bound in messages[0], messages


def test_post_spc_needs_a_token(client: TestClient) -> None:
    assert client.post("/v1/spc", json={"points": []}).status_code == 401


def send(client: TestClient, who: Headers, period: str, attendances: int) -> None:
    frame = ae_monthly_sample(org_code="RJ1", period=period)
    frame = frame.with_columns(attendances=frame["attendances"] + attendances)
    sent = client.post(
        "/v1/submissions",
        headers=who,
        data={"dataset": "ae_monthly", "period": period},
        files={"file": ("r.csv", frame.write_csv().encode(), "text/csv")},
    ).json()
    deadline = time.monotonic() + 30
    while client.get(f"/v1/submissions/{sent['id']}", headers=who).json()["status"] != "accepted":
        assert time.monotonic() < deadline, "the return was not accepted"
        time.sleep(0.05)


@pytest.fixture
def held(
    client: TestClient, orgs: dict[str, Headers], running_worker: worker.WorkerHandle
) -> list[int]:
    """RJ1's ae_monthly for January to April 2025 (not March), and CQC asking for RJ1."""
    assert client.post("/v1/requests", headers=orgs["CQC"], json=CQC_ASKS_RJ1).status_code == 201
    extra = {"2025-01": 0, "2025-02": 30, "2025-04": 60}
    for period, more in extra.items():
        send(client, orgs["RJ1"], period, more)
    # attendances over the three department types of the sample: 9120 + 310 + 4012
    return [13442 + 3 * more for more in extra.values()]


def test_an_indicator_chart_from_the_data_held(
    client: TestClient, orgs: dict[str, Headers], held: list[int]
) -> None:
    query = {"org_code": "RJ1", "period_start": "2025-01", "period_end": "2025-04"}
    answer = client.get("/v1/indicators/ae_attendances/spc", headers=orgs["RJ1"], params=query)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert [(p["period"], p["value"]) for p in result["points"]] == list(
        zip(["2025-01", "2025-02", "2025-04"], held, strict=True)
    )
    assert result["missing"] == ["2025-03"]
    assert result["short_series_warning"] is True
    assert len(result["sources"]) == 3
    mine = client.post(
        "/v1/spc",
        headers=orgs["RJ1"],
        json={"points": [{"period": p["period"], "value": p["value"]} for p in result["points"]]},
    ).json()
    assert result["points"] == mine["points"]  # the same chart as POST /v1/spc


@pytest.mark.parametrize(
    ("who", "status"),
    [("RJ1", 200), ("CQC", 200), ("NAO", 200), ("R0A", 403), ("NHSE", 403), ("DRB", 403)],
)
def test_who_sees_an_indicator(
    client: TestClient, orgs: dict[str, Headers], held: list[int], who: str, status: int
) -> None:
    query = {"org_code": "RJ1", "period_start": "2025-01", "period_end": "2025-04"}
    answer = client.get("/v1/indicators/ae_attendances/spc", headers=orgs[who], params=query)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("nope", {"org_code": "RJ1", "period_start": "2025-01", "period_end": "2025-04"}, 404),
        (
            "ae_attendances",
            {"org_code": "RJ1", "period_start": "2025-04", "period_end": "2025-01"},
            422,
        ),
        (
            "ae_attendances",
            {"org_code": "RJ1", "period_start": "2025-1", "period_end": "2025-04"},
            422,
        ),
        (
            "ae_attendances",
            {"org_code": "RJ1", "period_start": "2024-01", "period_end": "2024-12"},
            422,
        ),
        (
            "ae_attendances",
            {"org_code": "RJ1", "period_start": "2025-01", "period_end": "2025-04", "x": "1"},
            422,
        ),
    ],
)
def test_indicator_errors(
    client: TestClient,
    orgs: dict[str, Headers],
    held: list[int],
    path: str,
    query: dict[str, str],
    status: int,
) -> None:
    answer = client.get(f"/v1/indicators/{path}/spc", headers=orgs["NAO"], params=query)
    assert answer.status_code == status, answer.text
