"""The reference datasets and items of the catalogue, as definitions."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from schemas import ae_monthly, beds_monthly, ecds_attendance, rtt_monthly
from schemas.model import Burden, Column, Dataset, Derivation, Item

__all__ = [
    "DATASETS",
    "ITEMS",
    "Burden",
    "Column",
    "Dataset",
    "Derivation",
    "Item",
    "consistency_problems",
    "datasets_carrying",
    "datasets_deriving",
    "get_dataset",
]

_MODULES = (ae_monthly, ecds_attendance, beds_monthly, rtt_monthly)

_DATASET_LIST = tuple(module.DATASET for module in _MODULES)
_ITEM_LIST = tuple(item for module in _MODULES for item in module.ITEMS)

# In the order of the API contract's list, which is the order of GET /v1/datasets.
DATASETS: Mapping[str, Dataset] = MappingProxyType({d.code: d for d in _DATASET_LIST})
ITEMS: Mapping[str, Item] = MappingProxyType({i.code: i for i in _ITEM_LIST})


def get_dataset(code: str) -> Dataset:
    """The dataset with that code (KeyError if unknown)."""
    try:
        return DATASETS[code]
    except KeyError:
        raise KeyError(f"unknown dataset {code!r}") from None


def datasets_carrying(item_code: str) -> list[str]:
    """Codes of the datasets that carry the item as a column, primary first ([] if none)."""
    carrying = [code for code, dataset in DATASETS.items() if item_code in dataset.items]
    primary = ITEMS[item_code].primary_dataset if item_code in ITEMS else None
    return sorted(carrying, key=lambda code: code != primary)


def datasets_deriving(item_code: str) -> list[str]:
    """Codes of the datasets from whose rows the item can be derived."""
    return [
        code
        for code, dataset in DATASETS.items()
        if any(d.item == item_code for d in dataset.derivations)
    ]


def consistency_problems(
    datasets: Mapping[str, Dataset] = DATASETS, items: Mapping[str, Item] = ITEMS
) -> list[str]:
    """What is inconsistent between datasets and items ([] when all is well)."""
    problems = [f"dataset {d.code} is filed as {k}" for k, d in datasets.items() if k != d.code]
    problems += [f"item {i.code} is filed as {k}" for k, i in items.items() if k != i.code]
    for item in items.values():
        primary = datasets.get(item.primary_dataset)
        if primary is None:
            problems.append(f"{item.code}: primary dataset {item.primary_dataset} is unknown")
        elif item.code not in primary.items:
            problems.append(f"{item.code}: primary dataset {primary.code} does not carry it")
    for dataset in datasets.values():
        for item_code in dataset.items:
            carried = items.get(item_code)
            if carried is None:
                problems.append(f"{dataset.code}: carries unknown item {item_code}")
            elif not set(carried.disaggregation) <= set(dataset.key):
                problems.append(f"{dataset.code}: {item_code} disaggregation is not in the key")
        for derivation in dataset.derivations:
            derived = items.get(derivation.item)
            if derived is None:
                problems.append(f"{dataset.code}: derives unknown item {derivation.item}")
                continue
            # Derived rows stand in for the primary dataset's rows, so they need its key.
            primary = datasets.get(derived.primary_dataset)
            grain = {"period", *derivation.group_by}
            if primary is not None and grain != set(primary.key):
                problems.append(
                    f"{dataset.code}: {derivation.item} is derived by {sorted(grain)},"
                    f" not by the key of {primary.code}"
                )
    return problems


# Definitions are code: an inconsistent catalogue should fail at import, not in a request.
_problems = consistency_problems()
if len(DATASETS) < len(_DATASET_LIST) or len(ITEMS) < len(_ITEM_LIST):
    _problems.append("two datasets or two items share a code")
if _problems:
    raise ValueError("schemas are inconsistent: " + "; ".join(_problems))
