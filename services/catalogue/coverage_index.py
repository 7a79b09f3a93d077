"""The coverage index: which (dataset, trust, month) cells are held or scheduled.

Held cells are stored as runs of consecutive months per (dataset, trust) (``held_runs``), not one
row per cell; scheduled cells are the open asks. Each process keeps a read-only snapshot of both
as numpy arrays and reloads only the datasets whose epoch (``coverage_epochs``) has moved, so a
coverage check costs one small query plus array arithmetic.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from schemas.model import Item as ItemDefinition
from services.catalogue.burden import ReturnCost
from services.catalogue.item_search import ItemIndex
from services.catalogue.models import HeldRun, Item, utcnow
from services.catalogue.periods import month_label, parse_month
from services.catalogue.repositories import coverage as queries

ORGANISATIONS_KEY = "~organisations"
CATALOGUE_KEY = "~catalogue"

IntArray = npt.NDArray[np.int32]
MaskArray = npt.NDArray[np.uint64]


def bump(*, session: Session, key: str) -> None:
    """Move ``key``'s epoch on, in the caller's transaction, so snapshots reload it."""
    queries.bump_epoch(session=session, key=key)


def mark_held(*, session: Session, dataset_code: str, org_code: str, month: int) -> bool:
    """Record that a dataset is held for a trust in a month; False if it was already."""
    runs = queries.held_runs_touching(
        session=session, dataset_code=dataset_code, org_code=org_code, month=month
    )
    if any(run.start_month <= month < run.end_month for run in runs):
        return False
    # Held data closes the open ask for the same return: a dataset's held cells and its open
    # asks never overlap, which the coverage check relies on.
    queries.accept_scheduled_asks(
        session=session,
        dataset_code=dataset_code,
        org_code=org_code,
        period=month_label(month),
        now=utcnow(),
    )
    before = next((r for r in runs if r.end_month == month), None)
    after = next((r for r in runs if r.start_month == month + 1), None)
    if before is not None and after is not None:
        before.end_month = after.end_month
        session.delete(after)
    elif before is not None:
        before.end_month = month + 1
    elif after is not None:
        after.start_month = month
    else:
        session.add(
            HeldRun(
                dataset_code=dataset_code, org_code=org_code, start_month=month, end_month=month + 1
            )
        )
    session.flush()
    bump(session=session, key=dataset_code)
    return True


@dataclass(frozen=True)
class CatalogueView:
    """What the coverage check needs to know of the catalogue."""

    datasets: tuple[str, ...]
    dataset_items: dict[str, tuple[str, ...]]
    costs: dict[str, ReturnCost]
    primary: dict[str, str]
    carriers: dict[str, tuple[str, ...]]
    derivers: dict[str, tuple[str, ...]]
    aggregation: dict[str, str]
    org_aggregation: dict[str, str]
    search: ItemIndex

    def item_bit(self, dataset: str, item: str) -> int:
        """The bit of ``item`` in masks of ``dataset``'s items (at most 64 items a dataset)."""
        return 1 << self.dataset_items[dataset].index(item)


@dataclass(frozen=True)
class Organisations:
    """Registered organisations by position; positions index every coverage array."""

    codes: tuple[str, ...]
    index: dict[str, int]
    kinds: tuple[str, ...]
    regions: tuple[str | None, ...]


@dataclass(frozen=True)
class HeldRuns:
    """Held runs of one dataset: trust position, first month, month after the last."""

    org: IntArray
    start: IntArray
    end: IntArray


@dataclass(frozen=True)
class ScheduledCells:
    """Open asks of one dataset: trust position, month, and a bit mask of the items asked."""

    org: IntArray
    month: IntArray
    items: MaskArray


@dataclass
class Snapshot:
    """A consistent, read-only picture of coverage at the epochs it was loaded at."""

    epochs: dict[str, int] = field(default_factory=dict)
    catalogue: CatalogueView | None = None
    organisations: Organisations | None = None
    held: dict[str, HeldRuns] = field(default_factory=dict)
    scheduled: dict[str, ScheduledCells] = field(default_factory=dict)


class CoverageIndex:
    """The per-process cache of the coverage snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot()

    def snapshot(self, session: Session) -> Snapshot:
        """The current snapshot, reloading what changed since the last call."""
        epochs = queries.epochs(session=session)
        with self._lock:
            old = self._snapshot
            if old.epochs == epochs and old.catalogue is not None and old.organisations is not None:
                return old
            with _collector_paused():
                self._snapshot = self._reload(session, old, epochs)
            return self._snapshot

    @staticmethod
    def _reload(session: Session, old: Snapshot, epochs: dict[str, int]) -> Snapshot:
        """A snapshot with what changed since ``old`` loaded again, the rest shared with it."""
        new = Snapshot(epochs=epochs)
        changed = {k for k in set(epochs) | set(old.epochs) if epochs.get(k) != old.epochs.get(k)}
        new_catalogue = old.catalogue is None or CATALOGUE_KEY in changed
        new_organisations = old.organisations is None or ORGANISATIONS_KEY in changed
        # Rebuilding the catalogue (and its search index) is the slow part: only on publish.
        new.catalogue = load_catalogue(session) if new_catalogue else old.catalogue
        new.organisations = load_organisations(session) if new_organisations else old.organisations
        assert new.catalogue is not None
        assert new.organisations is not None
        reload_all = new_catalogue or new_organisations
        for dataset in new.catalogue.datasets:
            if reload_all or dataset in changed:
                new.held[dataset] = load_held(session, dataset, new.organisations)
                new.scheduled[dataset] = load_scheduled(
                    session, dataset, new.organisations, new.catalogue
                )
            else:
                new.held[dataset] = old.held[dataset]
                new.scheduled[dataset] = old.scheduled[dataset]
        return new


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while millions of row tuples are made and dropped.

    None of them form cycles, but their number sets the collector off again and again: loading
    15 million held runs took twice as long with it on (bench/coverage_dry_run.py, 100x).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_catalogue(session: Session) -> CatalogueView:
    """Items, datasets, carriers, derivations and burden parameters from the database."""
    datasets = queries.datasets(session=session)
    carried: dict[str, list[str]] = {}
    dataset_items: dict[str, list[str]] = {d.code: [] for d in datasets}
    for link in queries.dataset_items(session=session):
        carried.setdefault(link.item_code, []).append(link.dataset_code)
        dataset_items[link.dataset_code].append(link.item_code)
    derived: dict[str, list[str]] = {}
    for derivation in queries.derivations(session=session):
        derived.setdefault(derivation.item_code, []).append(derivation.dataset_code)
    items = queries.items(session=session)
    return CatalogueView(
        datasets=tuple(d.code for d in datasets),
        dataset_items={code: tuple(codes) for code, codes in dataset_items.items()},
        costs={d.code: ReturnCost.of(d) for d in datasets},
        primary={i.code: i.primary_dataset for i in items},
        carriers={i.code: tuple(sorted(carried.get(i.code, []))) for i in items},
        derivers={i.code: tuple(sorted(derived.get(i.code, []))) for i in items},
        aggregation={i.code: i.aggregation for i in items},
        org_aggregation={i.code: i.org_aggregation for i in items},
        search=ItemIndex([_definition(i) for i in items]),
    )


def _definition(item: Item) -> ItemDefinition:
    return ItemDefinition(
        code=item.code,
        name=item.name,
        definition=item.definition,
        unit=item.unit,
        value_type=item.value_type,  # type: ignore[arg-type]
        aggregation=item.aggregation,  # type: ignore[arg-type]
        org_aggregation=item.org_aggregation,  # type: ignore[arg-type]
        disaggregation=tuple(item.disaggregation),
        primary_dataset=item.primary_dataset,
        synonyms=tuple(item.synonyms or ()),
    )


def load_organisations(session: Session) -> Organisations:
    """Every organisation, in code order."""
    rows = queries.organisation_rows(session=session)
    codes = tuple(r[0] for r in rows)
    return Organisations(
        codes=codes,
        index={code: n for n, code in enumerate(codes)},
        kinds=tuple(r[1] for r in rows),
        regions=tuple(r[2] for r in rows),
    )


def load_held(session: Session, dataset: str, organisations: Organisations) -> HeldRuns:
    """The held runs of one dataset as arrays."""
    rows = queries.held_run_rows(session=session, dataset_code=dataset)
    if not rows:
        empty = np.empty(0, dtype=np.int32)
        return HeldRuns(org=empty, start=empty.copy(), end=empty.copy())
    orgs, starts, ends = zip(*rows, strict=True)
    return HeldRuns(
        org=np.array(list(map(organisations.index.__getitem__, orgs)), dtype=np.int32),
        start=np.array(starts, dtype=np.int32),
        end=np.array(ends, dtype=np.int32),
    )


def load_scheduled(
    session: Session, dataset: str, organisations: Organisations, catalogue: CatalogueView
) -> ScheduledCells:
    """The open asks of one dataset as arrays."""
    rows = queries.scheduled_rows(session=session, dataset_code=dataset)
    index = organisations.index
    known = catalogue.dataset_items.get(dataset, ())
    masks = [sum(1 << known.index(i) for i in (r[2] or []) if i in known) for r in rows]
    return ScheduledCells(
        org=np.fromiter((index[r[0]] for r in rows), dtype=np.int32, count=len(rows)),
        month=np.fromiter((parse_month(r[1]) for r in rows), dtype=np.int32, count=len(rows)),
        items=np.array(masks, dtype=np.uint64),
    )
