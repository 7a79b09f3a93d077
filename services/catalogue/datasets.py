"""Publishing the dataset definitions of ``schemas/`` into the catalogue database, and reading
the published catalogue (every role may).

The definitions in ``schemas/`` are the source; the database keeps every published version
(so that a submission made against version 1 stays readable after version 2) and the items.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

import schemas
from schemas.compile import publication
from schemas.model import Dataset as Definition
from services.catalogue import audit, coverage_index
from services.catalogue.errors import NotFound
from services.catalogue.models import Dataset, DatasetItem, DatasetVersion, Derivation, Item
from services.catalogue.repositories import catalogue as catalogue_repo

ACTOR = "DRB-CATALOGUE"


class DefinitionChangedWithoutNewVersion(RuntimeError):
    """A dataset's definition changed but its version number did not."""


def publish(*, session: Session) -> list[str]:
    """Bring datasets, versions and items in line with ``schemas/``; lines saying what changed."""
    changes: list[str] = []
    for definition in schemas.DATASETS.values():
        row = catalogue_repo.dataset(session=session, code=definition.code)
        if row is None:
            row = Dataset(
                code=definition.code,
                title=definition.title,
                period_type=definition.period_type,
                current_version=definition.version,
            )
            session.add(row)
        row.title = definition.title
        row.period_type = definition.period_type
        row.base_minutes = definition.burden.base_minutes
        row.minutes_per_item = definition.burden.minutes_per_item
        published = catalogue_repo.version(
            session=session, code=definition.code, version=definition.version
        )
        fingerprint = publication.fingerprint(definition)
        if published is None:
            session.add(
                DatasetVersion(
                    dataset_code=definition.code,
                    version=definition.version,
                    fingerprint=fingerprint,
                    definition=publication.definition(definition),
                )
            )
            row.current_version = definition.version
            changes.append(f"published {definition.code} version {definition.version}")
            audit.record(
                session=session,
                actor=ACTOR,
                action="dataset.published",
                subject_type="dataset",
                subject_id=definition.code,
                detail={"version": definition.version, "fingerprint": fingerprint},
            )
        elif published.fingerprint != fingerprint:
            raise DefinitionChangedWithoutNewVersion(
                f"{definition.code} version {definition.version} is published with another "
                "definition: give the changed definition a new version number in schemas/"
            )
    session.flush()

    for item in schemas.ITEMS.values():
        existing = catalogue_repo.item(session=session, code=item.code)
        if existing is None:
            existing = Item(code=item.code)
            session.add(existing)
        existing.name = item.name
        existing.definition = item.definition
        existing.unit = item.unit
        existing.value_type = item.value_type
        existing.aggregation = item.aggregation
        existing.org_aggregation = item.org_aggregation
        existing.disaggregation = list(item.disaggregation)
        existing.primary_dataset = item.primary_dataset
        existing.synonyms = list(getattr(item, "synonyms", ()))
    session.flush()

    catalogue_repo.clear_item_links(session=session)
    for definition in schemas.DATASETS.values():
        for item_code in definition.items:
            session.add(DatasetItem(dataset_code=definition.code, item_code=item_code))
        for derivation in definition.derivations:
            session.add(
                Derivation(
                    item_code=derivation.item,
                    dataset_code=definition.code,
                    method=derivation.method,
                    description=derivation.description,
                )
            )
    session.flush()
    coverage_index.bump(session=session, key=coverage_index.CATALOGUE_KEY)
    return changes


def items(*, session: Session) -> Sequence[Item]:
    """Every published item, by code."""
    return catalogue_repo.items(session=session)


def datasets_by_item(*, session: Session) -> dict[str, list[str]]:
    """For each item code, the datasets that carry it, by code."""
    return catalogue_repo.datasets_by_item(session=session)


def listed(*, session: Session) -> Sequence[Dataset]:
    """Every published dataset, by code."""
    return catalogue_repo.datasets(session=session)


def carried_items(*, session: Session, code: str) -> list[str]:
    """The item codes a dataset carries, sorted."""
    return catalogue_repo.carried_items(session=session, code=code)


def current(*, session: Session, code: str) -> Definition:
    """A published dataset's definition at its current version; NotFound for another code."""
    if catalogue_repo.dataset(session=session, code=code) is None or code not in schemas.DATASETS:
        known = ", ".join(schemas.DATASETS)
        raise NotFound(f"No dataset has the code {code!r}; the catalogue has {known}.")
    return schemas.DATASETS[code]


def published(*, session: Session, code: str, version: int | None = None) -> DatasetVersion:
    """A published version of a dataset (its current one if ``version`` is None); NotFound for
    an unknown dataset or version."""
    definition = current(session=session, code=code)
    wanted = definition.version if version is None else version
    found = catalogue_repo.version(session=session, code=code, version=wanted)
    if found is None:
        raise NotFound(f"Dataset {code!r} has no version {wanted}.")
    return found


def version_numbers(*, session: Session, code: str) -> list[int]:
    """The numbers of every published version of a dataset, oldest first."""
    return [v.version for v in catalogue_repo.versions(session=session, code=code)]
