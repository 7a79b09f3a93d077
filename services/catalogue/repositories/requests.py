"""Queries on requests, asks and the links between them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select, text, tuple_
from sqlalchemy.orm import Session

from services.catalogue.models import Ask, AskLink, DataRequest
from services.catalogue.states import AskStatus, RequestStatus


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


def active_links_with_asks(*, session: Session) -> list[tuple[AskLink, Ask, str]]:
    """Every active link of an active request, with its ask and the request's body: the
    returns each request imposes, in the order their burden is shared out."""
    rows = session.execute(
        select(AskLink, Ask, DataRequest.body_code)
        .join(Ask, Ask.id == AskLink.ask_id)
        .join(DataRequest, DataRequest.id == AskLink.request_id)
        .where(AskLink.active.is_(True), DataRequest.status == RequestStatus.ACTIVE)
        .order_by(Ask.period, Ask.dataset_code, Ask.org_code, AskLink.seq)
    )
    return [(link, ask, body) for link, ask, body in rows]


def asks_not_cancelled(*, session: Session) -> Sequence[Ask]:
    """Every ask still wanted or already answered."""
    return session.scalars(select(Ask).where(Ask.status != AskStatus.CANCELLED)).all()


def asks_by_key(
    *, session: Session, dataset_code: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Ask]:
    """Asks of a dataset by (org_code, period), for the given keys."""
    wanted = list(keys)
    found: dict[tuple[str, str], Ask] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(Ask).where(
            Ask.dataset_code == dataset_code, tuple_(Ask.org_code, Ask.period).in_(chunk)
        )
        for ask in session.scalars(query):
            found[(ask.org_code, ask.period)] = ask
    return found


def links_of_asks(*, session: Session, ask_ids: Sequence[str]) -> dict[str, list[AskLink]]:
    """Every link of the given asks, in the order they were made."""
    found: dict[str, list[AskLink]] = {}
    for start in range(0, len(ask_ids), 500):
        query = (
            select(AskLink)
            .where(AskLink.ask_id.in_(ask_ids[start : start + 500]))
            .order_by(AskLink.linked_at, AskLink.seq)
        )
        for link in session.scalars(query):
            found.setdefault(link.ask_id, []).append(link)
    return found


def links_of_request(*, session: Session, request_id: str) -> Sequence[AskLink]:
    """Every link of one request."""
    return session.scalars(select(AskLink).where(AskLink.request_id == request_id)).all()


def asks_of_request(*, session: Session, request_id: str) -> Sequence[Ask]:
    """Every ask a request is (or was) linked to, in one query."""
    query = (
        select(Ask).join(AskLink, AskLink.ask_id == Ask.id).where(AskLink.request_id == request_id)
    )
    return session.scalars(query).all()


def asks_with_bodies(
    *,
    session: Session,
    org_code: str | None,
    dataset_code: str | None,
    period: str | None,
    statuses: Sequence[str] | None,
    body_code: str | None,
    limit: int,
    offset: int,
) -> list[tuple[Ask, list[tuple[str, bool, list[str]]]]]:
    """Asks and the (body, active, items) of each of their links, by period and dataset."""
    query = select(Ask).order_by(Ask.period, Ask.dataset_code, Ask.org_code)
    if org_code is not None:
        query = query.where(Ask.org_code == org_code)
    if dataset_code is not None:
        query = query.where(Ask.dataset_code == dataset_code)
    if period is not None:
        query = query.where(Ask.period == period)
    if statuses is not None:
        query = query.where(Ask.status.in_(statuses))
    if body_code is not None:
        query = query.where(
            Ask.id.in_(
                select(AskLink.ask_id)
                .join(DataRequest, DataRequest.id == AskLink.request_id)
                .where(DataRequest.body_code == body_code)
            )
        )
    asks = list(session.scalars(query.limit(limit).offset(offset)))
    bodies: dict[str, list[tuple[str, bool, list[str]]]] = {a.id: [] for a in asks}
    ids = list(bodies)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(AskLink.ask_id, DataRequest.body_code, AskLink.active, AskLink.items)
            .join(DataRequest, DataRequest.id == AskLink.request_id)
            .where(AskLink.ask_id.in_(ids[start : start + 500]))
            .order_by(AskLink.linked_at, AskLink.seq)
        )
        for ask_id, body, active, items in rows:
            bodies[ask_id].append((body, bool(active), list(items)))
    return [(ask, bodies[ask.id]) for ask in asks]


def insert_asks(
    *, session: Session, asks: Sequence[dict[str, Any]], links: Sequence[dict[str, Any]]
) -> None:
    """New asks and links, in bulk (the asks first: the links refer to them)."""
    if asks:
        session.execute(insert(Ask), list(asks))
    session.flush()
    if links:
        session.execute(insert(AskLink), list(links))


def get_locked(*, session: Session, request_id: str) -> DataRequest | None:
    """One request, its row locked to the commit (PostgreSQL)."""
    return session.get(DataRequest, request_id, with_for_update=True)


def ask(*, session: Session, ask_id: str) -> Ask | None:
    """One ask."""
    return session.get(Ask, ask_id)


def serialise_registrations(*, session: Session, key: int) -> None:
    """Hold the transaction-scoped advisory lock ``key`` (PostgreSQL) to the commit, so
    registrations and withdrawals run one at a time; SQLite serialises writers itself."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
