"""The burden model, in one place: what a return costs a trust, and the figures reported.

Standard Cost Model (ARCHITECTURE.md): a return of a dataset costs the trust ``base_minutes``
plus ``minutes_per_item`` for each item asked in it; an item added to a return already asked for
costs its ``minutes_per_item`` alone. Every count of minutes in the broker (the coverage check's
counterfactual and imposed burden, each ask link's share, the auditors' ledger) goes through
:class:`ReturnCost`; every set of figures shown (requests, dry runs, the burden report) is a
:class:`Tally`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CostParameters(Protocol):
    """Anything that carries a dataset's burden parameters (its definition or its table row)."""

    @property
    def base_minutes(self) -> float: ...

    @property
    def minutes_per_item(self) -> float: ...


@dataclass(frozen=True)
class ReturnCost:
    """One dataset's cost of a return: minutes per return, and per item in it."""

    base_minutes: float
    minutes_per_item: float

    @classmethod
    def of(cls, parameters: CostParameters) -> ReturnCost:
        """The cost of a dataset, from its definition or its catalogue row."""
        return cls(
            base_minutes=float(parameters.base_minutes),
            minutes_per_item=float(parameters.minutes_per_item),
        )

    def minutes(self, *, items: int, returns: int = 1) -> float:
        """``returns`` returns asking ``items`` items between them (summed over the returns)."""
        return returns * self.base_minutes + items * self.minutes_per_item

    def added(self, items: int) -> float:
        """``items`` added to returns already asked for: no new return, their items alone."""
        return items * self.minutes_per_item


@dataclass
class Tally:
    """Returns and minutes requested (the counterfactual) and imposed (the new asks)."""

    returns_requested: int = 0
    minutes_requested: float = 0.0
    returns_imposed: int = 0
    minutes_imposed: float = 0.0

    def add(self, other: Tally) -> None:
        """Count ``other`` in too."""
        self.returns_requested += other.returns_requested
        self.minutes_requested += other.minutes_requested
        self.returns_imposed += other.returns_imposed
        self.minutes_imposed += other.minutes_imposed

    def figures(self, hourly_rate: float | None = None) -> dict[str, float | int]:
        """The figures of API.md: returns and hours requested, imposed and avoided, and, given
        the hourly rate, the cost avoided in pounds."""
        requested = round(self.minutes_requested / 60, 2)
        imposed = round(self.minutes_imposed / 60, 2)
        avoided = round(requested - imposed, 2)
        shown: dict[str, float | int] = {
            "returns_requested": self.returns_requested,
            "returns_imposed": self.returns_imposed,
            "returns_avoided": self.returns_requested - self.returns_imposed,
            "hours_requested": requested,
            "hours_imposed": imposed,
            "hours_avoided": avoided,
        }
        if hourly_rate is not None:
            shown["cost_avoided_gbp"] = round(avoided * hourly_rate, 2)
        return shown
