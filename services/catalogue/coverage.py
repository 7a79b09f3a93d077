"""The coverage check: how much of a request is held, scheduled, derivable, or new.

Cells are (item, organisation, period) at the request's grain. Every state is worked out at the
grain data is collected at, (trust, month), as boolean matrices over the request's trusts and
months, in this order of precedence:

1. held: a dataset carrying the item is held for the trust and month;
2. scheduled: an open ask of a dataset carrying the item will deliver it;
3. derivable: a dataset the item can be derived from is held or scheduled;
4. new: none of these.

A coarser cell (a quarter or year; a region or the nation) is derivable when every (trust,
month) cell it is made of is available, and new otherwise. Only new (trust, month) cells become
asks, one per (primary dataset, trust, month).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.catalogue.burden import Tally
from services.catalogue.coverage_index import (
    CatalogueView,
    IntArray,
    MaskArray,
    Organisations,
    Snapshot,
)
from services.catalogue.periods import Period

BoolMatrix = npt.NDArray[np.bool_]
MaskMatrix = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class Scope:
    """The cells a request covers: items, trusts (positions in the snapshot), periods, grain."""

    items: tuple[str, ...]
    trusts: IntArray
    periods: tuple[Period, ...]
    period_type: str
    org_level: str

    @property
    def first_month(self) -> int:
        """The first month of the first period."""
        return self.periods[0].first_month

    @property
    def months(self) -> int:
        """How many months the periods span."""
        return self.periods[-1].end_month - self.first_month


@dataclass
class ItemCoverage:
    """Cell counts of one item."""

    item: str
    cells_requested: int = 0
    cells_held: int = 0
    cells_scheduled: int = 0
    cells_derivable: int = 0
    cells_new: int = 0

    @property
    def status(self) -> str:
        """covered (nothing new), partial, or new (everything new)."""
        if self.cells_new == 0:
            return "covered"
        return "new" if self.cells_new == self.cells_requested else "partial"

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of API.md."""
        return {
            "item": self.item,
            "cells_requested": self.cells_requested,
            "cells_held": self.cells_held,
            "cells_scheduled": self.cells_scheduled,
            "cells_derivable": self.cells_derivable,
            "cells_new": self.cells_new,
            "status": self.status,
        }


@dataclass(frozen=True)
class Cells:
    """(trust, month) cells of one dataset with, per cell, a bit mask of the dataset's items."""

    trusts: IntArray  # positions in the snapshot's organisations
    months: IntArray
    items: MaskArray

    def __len__(self) -> int:
        return int(self.trusts.shape[0])


@dataclass
class Check:
    """The result of a coverage check, with what registration needs to act on it."""

    scope: Scope
    items: list[ItemCoverage]
    burden: Tally
    # New cells to ask for, by primary dataset; item bits are of the dataset's items.
    new: dict[str, Cells] = field(default_factory=dict)
    # Open asks that will deliver the request's items, by dataset (items that join them).
    collects: dict[str, Cells] = field(default_factory=dict)
    # Open asks the request's items will be derived from, by dataset, with the items derived.
    derives: dict[str, Cells] = field(default_factory=dict)
    derived_items: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def coverage_dict(self) -> dict[str, object]:
        """The ``coverage`` object of API.md, with totals for every state."""
        totals = {
            key: sum(getattr(i, key) for i in self.items)
            for key in (
                "cells_requested",
                "cells_held",
                "cells_scheduled",
                "cells_derivable",
                "cells_new",
            )
        }
        return {"items": [i.as_dict() for i in self.items], **totals}


class _Matrices:
    """Held and scheduled matrices of each dataset over the scope, built once per check."""

    def __init__(self, snapshot: Snapshot, scope: Scope) -> None:
        assert snapshot.organisations is not None
        self.snapshot = snapshot
        self.scope = scope
        self.n = int(scope.trusts.shape[0])
        self.m = scope.months
        self.position = np.full(len(snapshot.organisations.codes), -1, dtype=np.int64)
        self.position[scope.trusts] = np.arange(self.n)
        self._held: dict[str, BoolMatrix] = {}
        self._scheduled: dict[str, tuple[BoolMatrix, MaskMatrix]] = {}

    def held(self, dataset: str) -> BoolMatrix:
        if dataset not in self._held:
            runs = self.snapshot.held.get(dataset)
            matrix = np.zeros((self.n, self.m), dtype=np.bool_)
            if runs is not None and runs.org.size:
                first, end = self.scope.first_month, self.scope.first_month + self.m
                position = self.position[runs.org]
                keep = (position >= 0) & (runs.start < end) & (runs.end > first)
                rows = position[keep]
                starts = np.clip(runs.start[keep], first, end) - first
                stops = np.clip(runs.end[keep], first, end) - first
                # A difference array fills every run in one pass, however long the runs are.
                steps = np.zeros((self.n, self.m + 1), dtype=np.int32)
                np.add.at(steps, (rows, starts), 1)
                np.add.at(steps, (rows, stops), -1)
                matrix = np.cumsum(steps, axis=1)[:, : self.m] > 0
            self._held[dataset] = matrix
        return self._held[dataset]

    def scheduled(self, dataset: str) -> tuple[BoolMatrix, MaskMatrix]:
        if dataset not in self._scheduled:
            cells = self.snapshot.scheduled.get(dataset)
            present = np.zeros((self.n, self.m), dtype=np.bool_)
            masks = np.zeros((self.n, self.m), dtype=np.uint64)
            if cells is not None and cells.org.size:
                position = self.position[cells.org]
                month = cells.month - self.scope.first_month
                keep = (position >= 0) & (month >= 0) & (month < self.m)
                present[position[keep], month[keep]] = True
                masks[position[keep], month[keep]] = cells.items[keep]
            self._scheduled[dataset] = (present, masks)
        return self._scheduled[dataset]


def check(snapshot: Snapshot, scope: Scope, *, cells: bool = False) -> Check:
    """Coverage of every item of ``scope`` and the burden; with ``cells``, also which cells.

    Registration needs the cells (to create and link asks); a dry run needs only counts, which
    for most items come straight from the runs and asks, without building any matrix.
    """
    catalogue = snapshot.catalogue
    organisations = snapshot.organisations
    assert catalogue is not None
    assert organisations is not None
    matrices = _Matrices(snapshot, scope)
    result = Check(scope=scope, items=[], burden=Tally())
    simple = set() if cells else _simple_datasets(scope, catalogue)
    by_item: dict[str, ItemCoverage] = {}
    fast_imposed = Tally()
    for dataset in sorted(simple):
        items = [i for i in scope.items if catalogue.primary[i] == dataset]
        held, scheduled, added = _counts_from_runs(matrices, dataset, items, catalogue)
        total = matrices.n * matrices.m
        for item in items:
            by_item[item] = ItemCoverage(
                item=item,
                cells_requested=total,
                cells_held=held,
                cells_scheduled=scheduled,
                cells_new=total - held - scheduled,
            )
        new = total - held - scheduled
        fast_imposed.returns_imposed += new
        cost = catalogue.costs[dataset]
        fast_imposed.minutes_imposed += cost.minutes(
            returns=new, items=new * len(items)
        ) + cost.added(added)
    rest = [i for i in scope.items if i not in by_item]
    collect_masks = _check_with_matrices(result, matrices, rest, by_item, catalogue, organisations)
    result.items = [by_item[item] for item in scope.items]
    result.burden = _burden(result, matrices, catalogue, collect_masks)
    result.burden.returns_imposed += fast_imposed.returns_imposed
    result.burden.minutes_imposed += fast_imposed.minutes_imposed
    return result


def _simple_datasets(scope: Scope, catalogue: CatalogueView) -> set[str]:
    """Datasets whose items in scope are only collected there (no other carrier, no derivation).

    Their counts need no matrices, since a dataset's open asks never cover its held cells (an
    ask is closed when its return is accepted).
    """
    if scope.period_type != "month" or scope.org_level != "trust":
        return set()
    involved: dict[str, bool] = {}
    for item in scope.items:
        primary = catalogue.primary[item]
        plain = catalogue.carriers[item] == (primary,) and not catalogue.derivers[item]
        for dataset in (primary, *catalogue.carriers[item], *catalogue.derivers[item]):
            involved[dataset] = involved.get(dataset, True) and plain
    return {dataset for dataset, plain in involved.items() if plain}


def _counts_from_runs(
    matrices: _Matrices, dataset: str, items: list[str], catalogue: CatalogueView
) -> tuple[int, int, int]:
    """Held cells, scheduled cells and item slots added to open asks, from runs and asks."""
    first, end = matrices.scope.first_month, matrices.scope.first_month + matrices.m
    held = 0
    runs = matrices.snapshot.held.get(dataset)
    if runs is not None and runs.org.size:
        inside = matrices.position[runs.org] >= 0
        overlap = np.minimum(runs.end, end) - np.maximum(runs.start, first)
        held = int(np.clip(overlap[inside], 0, None).sum())
    scheduled = added = 0
    asks = matrices.snapshot.scheduled.get(dataset)
    if asks is not None and asks.org.size:
        inside = (matrices.position[asks.org] >= 0) & (asks.month >= first) & (asks.month < end)
        scheduled = int(inside.sum())
        bits = np.uint64(sum(catalogue.item_bit(dataset, i) for i in items))
        added = int(np.bitwise_count(bits & ~asks.items[inside]).sum())
    return held, scheduled, added


def _check_with_matrices(
    result: Check,
    matrices: _Matrices,
    items_left: list[str],
    by_item: dict[str, ItemCoverage],
    catalogue: CatalogueView,
    organisations: Organisations,
) -> dict[str, MaskMatrix]:
    """The cell-by-cell check of ``items_left``; fills ``result`` and returns the join masks."""
    scope = result.scope
    n, m = matrices.n, matrices.m
    new_masks: dict[str, MaskMatrix] = {}
    collect_masks: dict[str, MaskMatrix] = {}
    derive_cells: dict[str, BoolMatrix] = {}
    derived_items: dict[str, set[str]] = {}

    # Items with the same carriers and derivers have the same matrices: work them out once.
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for item in items_left:
        groups.setdefault((catalogue.carriers[item], catalogue.derivers[item]), []).append(item)
    for (carriers, derivers), items in groups.items():
        held = np.zeros((n, m), dtype=np.bool_)
        for dataset in carriers:
            held |= matrices.held(dataset)
        scheduled = np.zeros((n, m), dtype=np.bool_)
        for dataset in carriers:
            scheduled |= matrices.scheduled(dataset)[0]
        scheduled &= ~held
        source_held = np.zeros((n, m), dtype=np.bool_)
        source_any = np.zeros((n, m), dtype=np.bool_)
        for dataset in derivers:
            source_held |= matrices.held(dataset)
            source_any |= matrices.held(dataset) | matrices.scheduled(dataset)[0]
        derivable = source_any & ~held & ~scheduled
        new = ~(held | scheduled | derivable)

        for item in items:
            by_item[item] = _count(
                item, held, scheduled, derivable, new, scope, organisations, catalogue
            )
        for dataset in carriers:
            bits = np.uint64(sum(catalogue.item_bit(dataset, i) for i in items))
            present, _asked = matrices.scheduled(dataset)
            joins = present & ~held
            if joins.any():
                collect = collect_masks.setdefault(dataset, np.zeros((n, m), dtype=np.uint64))
                collect[joins] |= bits
        for dataset in derivers:
            joins = derivable & matrices.scheduled(dataset)[0] & ~source_held
            if joins.any():
                derive_cells[dataset] = (
                    derive_cells.get(dataset, np.zeros((n, m), np.bool_)) | joins
                )
                derived_items.setdefault(dataset, set()).update(items)
        by_primary: dict[str, list[str]] = {}
        for item in items:
            by_primary.setdefault(catalogue.primary[item], []).append(item)
        for dataset, primary_items in by_primary.items():
            if new.any():
                bits = np.uint64(sum(catalogue.item_bit(dataset, i) for i in primary_items))
                asks = new_masks.setdefault(dataset, np.zeros((n, m), dtype=np.uint64))
                asks[new] |= bits

    result.new = {d: _cells(mask, scope) for d, mask in new_masks.items()}
    result.collects = {d: _cells(mask, scope) for d, mask in collect_masks.items()}
    result.derives = {
        d: _cells(cells.astype(np.uint64), scope) for d, cells in derive_cells.items()
    }
    result.derived_items = {d: tuple(sorted(items)) for d, items in derived_items.items()}
    return collect_masks


def _count(
    item: str,
    held: BoolMatrix,
    scheduled: BoolMatrix,
    derivable: BoolMatrix,
    new: BoolMatrix,
    scope: Scope,
    organisations: Organisations,
    catalogue: CatalogueView,
) -> ItemCoverage:
    coverage = ItemCoverage(item=item)
    if scope.period_type == "month" and scope.org_level == "trust":
        coverage.cells_requested = int(held.size)
        coverage.cells_held = int(held.sum())
        coverage.cells_scheduled = int(scheduled.sum())
        coverage.cells_derivable = int(derivable.sum())
        coverage.cells_new = int(new.sum())
        return coverage
    n = held.shape[0]
    per_period = scope.periods[0].months
    available = ~new
    over_time: BoolMatrix = np.asarray(
        available.reshape(n, len(scope.periods), per_period).all(axis=2)
    )
    if per_period > 1 and catalogue.aggregation[item] == "none":
        over_time[:] = False  # a value that cannot be added up over time is never derivable
    if scope.org_level == "trust":
        cells: BoolMatrix = over_time
    else:
        if catalogue.org_aggregation[item] == "none":
            over_time[:] = False
        if scope.org_level == "national":
            cells = np.asarray(over_time.all(axis=0, keepdims=True))
        else:
            regions = np.array(
                [organisations.regions[t] or "" for t in scope.trusts.tolist()], dtype=object
            )
            names = sorted(set(regions.tolist()))
            cells = np.stack([over_time[regions == r].all(axis=0) for r in names])
    coverage.cells_requested = int(cells.size)
    coverage.cells_derivable = int(cells.sum())
    coverage.cells_new = coverage.cells_requested - coverage.cells_derivable
    return coverage


def _cells(mask: MaskMatrix, scope: Scope) -> Cells:
    rows, columns = np.nonzero(mask)
    return Cells(
        trusts=scope.trusts[rows].astype(np.int32),
        months=(columns + scope.first_month).astype(np.int32),
        items=mask[rows, columns],
    )


def _burden(
    result: Check,
    matrices: _Matrices,
    catalogue: CatalogueView,
    collect_masks: dict[str, MaskMatrix],
) -> Tally:
    """Counterfactual (this request alone) against what it imposes (its new asks)."""
    scope = result.scope
    burden = Tally()
    trust_months = matrices.n * matrices.m
    by_primary: dict[str, int] = {}
    for item in scope.items:
        by_primary[catalogue.primary[item]] = by_primary.get(catalogue.primary[item], 0) + 1
    for dataset, count in by_primary.items():
        burden.returns_requested += trust_months
        burden.minutes_requested += catalogue.costs[dataset].minutes(
            returns=trust_months, items=trust_months * count
        )
    for dataset, cells in result.new.items():
        items = int(np.bitwise_count(cells.items).sum())
        burden.returns_imposed += len(cells)
        burden.minutes_imposed += catalogue.costs[dataset].minutes(returns=len(cells), items=items)
    # Joining an open ask with items it did not ask for yet adds those items to its return.
    for dataset, collect in collect_masks.items():
        _present, asked = matrices.scheduled(dataset)
        added = int(np.bitwise_count(collect & ~asked).sum())
        burden.minutes_imposed += catalogue.costs[dataset].added(added)
    return burden
