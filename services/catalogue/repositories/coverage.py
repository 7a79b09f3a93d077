"""Queries of the coverage index: epochs, held runs, open asks and the catalogue's shape.

``catalogue/coverage_index.py`` turns what these return into its numpy snapshot; each function is
the one statement it ran, fetched the same way (so a reload costs the same round trips).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from services.catalogue.models import (
    Ask,
    CoverageEpoch,
    Dataset,
    DatasetItem,
    Derivation,
    HeldRun,
    Item,
    Organisation,
)
from services.catalogue.states import AskStatus

# Asks in these states will deliver their return: the cells count as scheduled.
SCHEDULED_STATUSES = (AskStatus.OUTSTANDING, AskStatus.SUBMITTED)


def bump_epoch(*, session: Session, key: str) -> None:
    """Move ``key``'s epoch on (made at 1 if it has none), in the caller's transaction."""
    updated = session.execute(
        update(CoverageEpoch).where(CoverageEpoch.key == key).values(epoch=CoverageEpoch.epoch + 1)
    )
    if getattr(updated, "rowcount", 0) == 0:
        session.add(CoverageEpoch(key=key, epoch=1))
        session.flush()


def epochs(*, session: Session) -> dict[str, int]:
    """Every key's epoch."""
    return {
        key: epoch for key, epoch in session.execute(select(CoverageEpoch.key, CoverageEpoch.epoch))
    }


def held_runs_touching(
    *, session: Session, dataset_code: str, org_code: str, month: int
) -> Sequence[HeldRun]:
    """The held runs of a (dataset, trust) that hold ``month`` or end or start next to it,
    locked for update, by first month."""
    return session.scalars(
        select(HeldRun)
        .where(
            HeldRun.dataset_code == dataset_code,
            HeldRun.org_code == org_code,
            HeldRun.start_month <= month + 1,
            HeldRun.end_month >= month,
        )
        .order_by(HeldRun.start_month)
        .with_for_update()
    ).all()


def accept_scheduled_asks(
    *, session: Session, dataset_code: str, org_code: str, period: str, now: datetime
) -> None:
    """Mark the open ask (if any) for one return accepted."""
    session.execute(
        update(Ask)
        .where(
            Ask.dataset_code == dataset_code,
            Ask.org_code == org_code,
            Ask.period == period,
            Ask.status.in_(SCHEDULED_STATUSES),
        )
        .values(status=AskStatus.ACCEPTED, updated_at=now)
    )


def datasets(*, session: Session) -> Sequence[Dataset]:
    """Every dataset, by code."""
    return session.scalars(select(Dataset).order_by(Dataset.code)).all()


def dataset_items(*, session: Session) -> Iterable[DatasetItem]:
    """Every (dataset, item) link, by item code."""
    return session.scalars(select(DatasetItem).order_by(DatasetItem.item_code))


def derivations(*, session: Session) -> Iterable[Derivation]:
    """Every derivation, by dataset code."""
    return session.scalars(select(Derivation).order_by(Derivation.dataset_code))


def items(*, session: Session) -> Sequence[Item]:
    """Every item."""
    return session.scalars(select(Item)).all()


def organisation_rows(*, session: Session) -> Sequence[Row[str, str, str | None]]:
    """(code, kind, region) of every organisation, in code order."""
    return session.execute(
        select(Organisation.code, Organisation.kind, Organisation.region).order_by(
            Organisation.code
        )
    ).all()


def held_run_rows(*, session: Session, dataset_code: str) -> Sequence[Row[str, int, int]]:
    """(org_code, start_month, end_month) of every held run of one dataset."""
    return session.execute(
        select(HeldRun.org_code, HeldRun.start_month, HeldRun.end_month).where(
            HeldRun.dataset_code == dataset_code
        )
    ).all()


def scheduled_rows(*, session: Session, dataset_code: str) -> Sequence[Row[str, str, list[str]]]:
    """(org_code, period, items) of every open ask of one dataset."""
    return session.execute(
        select(Ask.org_code, Ask.period, Ask.items).where(
            Ask.dataset_code == dataset_code, Ask.status.in_(SCHEDULED_STATUSES)
        )
    ).all()
