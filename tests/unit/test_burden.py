"""The burden model's one home: what a return costs, and the figures shown for a tally."""

from __future__ import annotations

import re
from pathlib import Path

import schemas
from services.catalogue.burden import ReturnCost, Tally

ROOT = Path(__file__).resolve().parents[2]


def test_a_return_costs_its_base_and_each_item_and_an_added_item_its_own_minutes() -> None:
    cost = ReturnCost(base_minutes=30.0, minutes_per_item=5.0)
    assert cost.minutes(items=3) == 45.0
    assert cost.minutes(returns=4, items=4 * 3) == 4 * 45.0
    assert cost.minutes(items=0) == 30.0  # a return asked for nothing still costs its base
    assert cost.added(2) == 10.0  # no new return
    assert cost.added(0) == 0.0


def test_a_datasets_cost_is_its_definitions() -> None:
    definition = schemas.get_dataset("ae_monthly").burden
    cost = ReturnCost.of(definition)
    assert (cost.base_minutes, cost.minutes_per_item) == (
        definition.base_minutes,
        definition.minutes_per_item,
    )


def test_figures_are_hours_rounded_and_the_cost_avoided_at_the_hourly_rate() -> None:
    tally = Tally(returns_requested=10, minutes_requested=610.0)
    tally.add(Tally(returns_imposed=3, minutes_imposed=100.0))
    assert tally.figures() == {
        "returns_requested": 10,
        "returns_imposed": 3,
        "returns_avoided": 7,
        "hours_requested": 10.17,
        "hours_imposed": 1.67,
        "hours_avoided": 8.5,
    }
    assert tally.figures(25.72)["cost_avoided_gbp"] == 218.62  # 8.5 hours x 25.72


def test_the_formula_is_written_in_burden_py_alone() -> None:
    """Every other module prices returns through ReturnCost (issue 15: it was written six times)."""
    formula = re.compile(
        r"base_minutes\s*[+*]|[+*]\s*\w*\.?minutes_per_item\b|minutes_per_item\s*\*"
    )
    written = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "services").rglob("*.py"))
        if path.name != "burden.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if formula.search(line)
    ]
    assert written == []
