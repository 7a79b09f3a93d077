"""Queries on items, datasets and their published versions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.catalogue.models import Dataset, DatasetItem, DatasetVersion, Derivation, Item


def items(*, session: Session) -> Sequence[Item]:
    """Every item, by code."""
    return session.scalars(select(Item).order_by(Item.code)).all()


def item(*, session: Session, code: str) -> Item | None:
    """One item."""
    return session.get(Item, code)


def datasets_by_item(*, session: Session) -> dict[str, list[str]]:
    """For each item code, the datasets that carry it, by code."""
    carried: dict[str, list[str]] = {}
    query = select(DatasetItem).order_by(DatasetItem.item_code, DatasetItem.dataset_code)
    for row in session.scalars(query):
        carried.setdefault(row.item_code, []).append(row.dataset_code)
    return carried


def datasets(*, session: Session) -> Sequence[Dataset]:
    """Every dataset, by code."""
    return session.scalars(select(Dataset).order_by(Dataset.code)).all()


def dataset(*, session: Session, code: str) -> Dataset | None:
    """One dataset."""
    return session.get(Dataset, code)


def version(*, session: Session, code: str, version: int) -> DatasetVersion | None:
    """One published version of a dataset."""
    query = select(DatasetVersion).where(
        DatasetVersion.dataset_code == code, DatasetVersion.version == version
    )
    return session.scalars(query).first()


def versions(*, session: Session, code: str) -> Sequence[DatasetVersion]:
    """Every published version of a dataset, oldest first."""
    query = (
        select(DatasetVersion)
        .where(DatasetVersion.dataset_code == code)
        .order_by(DatasetVersion.version)
    )
    return session.scalars(query).all()


def carried_items(*, session: Session, code: str) -> list[str]:
    """The item codes a dataset carries."""
    query = select(DatasetItem.item_code).where(DatasetItem.dataset_code == code)
    return sorted(session.scalars(query).all())


def clear_item_links(*, session: Session) -> None:
    """Delete every (dataset, item) link and every derivation (publishing writes them anew)."""
    session.execute(delete(DatasetItem))
    session.execute(delete(Derivation))
