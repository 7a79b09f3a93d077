"""Queries on data requests (their asks are in ``asks.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from services.catalogue import db
from services.catalogue.models import DataRequest
from services.catalogue.states import RequestStatus


def get(*, session: Session, request_id: str) -> DataRequest | None:
    """One request."""
    return session.get(DataRequest, request_id)


def list_all(*, session: Session, body_code: str | None = None) -> Sequence[DataRequest]:
    """Requests, newest first, optionally of one body."""
    query = select(DataRequest).order_by(DataRequest.created_at.desc(), DataRequest.id)
    if body_code is not None:
        query = query.where(DataRequest.body_code == body_code)
    return session.scalars(query).all()


def active(*, session: Session, body_code: str | None = None) -> Sequence[DataRequest]:
    """Active requests (withdrawn ones entitle nothing), oldest first; optionally one body's."""
    query = (
        select(DataRequest)
        .where(DataRequest.status == RequestStatus.ACTIVE)
        .order_by(DataRequest.created_at, DataRequest.id)
    )
    if body_code is not None:
        query = query.where(DataRequest.body_code == body_code)
    return session.scalars(query).all()


def active_terms(
    *, session: Session, request_id: str | None = None
) -> Sequence[Row[str, str, list[str], list[str], str, str, str]]:
    """What the burden ledger counts of each active request (or of one), oldest first: id,
    body_code, items, org_codes, period_start, period_end, period_type; never the coverage."""
    query = (
        select(
            DataRequest.id,
            DataRequest.body_code,
            DataRequest.items,
            DataRequest.org_codes,
            DataRequest.period_start,
            DataRequest.period_end,
            DataRequest.period_type,
        )
        .where(DataRequest.status == RequestStatus.ACTIVE)
        .order_by(DataRequest.created_at, DataRequest.id)
    )
    if request_id is not None:
        query = query.where(DataRequest.id == request_id)
    return session.execute(query).all()


def get_locked(*, session: Session, request_id: str) -> DataRequest | None:
    """One request, its row locked to the commit (PostgreSQL)."""
    return session.get(DataRequest, request_id, with_for_update=True)


def serialise_registrations(*, session: Session, key: int) -> None:
    """Run registrations and withdrawals one at a time: hold a lock to the commit, taken before
    the coverage they act on is read.

    PostgreSQL: the transaction-scoped advisory lock ``key``. SQLite: the database's write lock
    (:func:`services.catalogue.db.write_lock`). SQLite alone serialises writers only from their
    first write, after the snapshot was read: four requests for the same new cells each
    imposed them.
    """
    db.write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
