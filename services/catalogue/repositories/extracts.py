"""Queries on extracts and their deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Integer, Row, func, select
from sqlalchemy.orm import Session

from services.catalogue.models import Extract, ExtractDelivery


def get(*, session: Session, extract_id: str) -> Extract | None:
    """One extract."""
    return session.get(Extract, extract_id)


def with_deliveries(
    *, session: Session, body_code: str | None, request_id: str | None
) -> list[tuple[Extract, ExtractDelivery | None]]:
    """Extracts, newest first (optionally of one body, of one request), each with its delivery."""
    query = select(Extract).order_by(Extract.created_at.desc(), Extract.id)
    if body_code is not None:
        query = query.where(Extract.body_code == body_code)
    if request_id is not None:
        query = query.where(Extract.request_id == request_id)
    rows = session.scalars(query).all()
    deliveries: dict[str, ExtractDelivery] = {}
    ids = [e.id for e in rows]
    for start in range(0, len(ids), 500):
        chunk = select(ExtractDelivery).where(
            ExtractDelivery.extract_id.in_(ids[start : start + 500])
        )
        deliveries.update({d.extract_id: d for d in session.scalars(chunk)})
    return [(e, deliveries.get(e.id)) for e in rows]


def latest(*, session: Session, request_id: str, period: str, group_key: str) -> Extract | None:
    """The latest revision of one extract (request, period, group), if any."""
    query = (
        select(Extract)
        .where(
            Extract.request_id == request_id,
            Extract.period == period,
            Extract.group_key == group_key,
        )
        .order_by(Extract.revision.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def delivery(*, session: Session, delivery_id: str) -> ExtractDelivery | None:
    """One delivery."""
    return session.get(ExtractDelivery, delivery_id)


def deliveries_with_status(*, session: Session, status: str) -> Sequence[ExtractDelivery]:
    """Every delivery in this status."""
    query = select(ExtractDelivery).where(ExtractDelivery.status == status)
    return session.scalars(query).all()


def built_per_body(*, session: Session) -> Sequence[Row[str, int, int | None]]:
    """(body, extracts, complete ones) for every body with an extract, by body."""
    query = (
        select(Extract.body_code, func.count(), func.sum(Extract.complete.cast(Integer)))
        .group_by(Extract.body_code)
        .order_by(Extract.body_code)
    )
    return session.execute(query).all()


def count_deliveries(*, session: Session, statuses: Sequence[str]) -> int | None:
    """How many deliveries are in one of these statuses."""
    return session.scalar(select(func.count()).where(ExtractDelivery.status.in_(statuses)))
