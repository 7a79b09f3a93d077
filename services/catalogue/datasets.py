"""Publishing the dataset definitions of ``schemas/`` into the catalogue database.

The definitions in ``schemas/`` are the source; the database keeps every published version
(so that a submission made against version 1 stays readable after version 2) and the items.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

import schemas
from schemas.compile import publication
from services.catalogue import audit, coverage_index
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
