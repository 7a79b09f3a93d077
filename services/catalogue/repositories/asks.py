"""Queries on asks (a return wanted of a trust: dataset, trust, period) and their links to the
requests that want them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.orm import Session

from services.catalogue.models import Ask, AskLink, DataRequest
from services.catalogue.states import AskStatus, RequestStatus


def get(*, session: Session, ask_id: str) -> Ask | None:
    """One ask."""
    return session.get(Ask, ask_id)


def by_key(
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


def of_request(*, session: Session, request_id: str) -> Sequence[Ask]:
    """Every ask a request is (or was) linked to, in one query."""
    query = (
        select(Ask).join(AskLink, AskLink.ask_id == Ask.id).where(AskLink.request_id == request_id)
    )
    return session.scalars(query).all()


def not_cancelled(*, session: Session) -> Sequence[Ask]:
    """Every ask still wanted or already answered."""
    return session.scalars(select(Ask).where(Ask.status != AskStatus.CANCELLED)).all()


def with_bodies(
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


def links_of(*, session: Session, ask_ids: Sequence[str]) -> dict[str, list[AskLink]]:
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


def active_links(*, session: Session) -> list[tuple[AskLink, Ask, str]]:
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


def set_status(
    *, session: Session, org_code: str, dataset_code: str, period: str, old: str, new: str
) -> None:
    """Move the ask of one return from ``old`` to ``new`` status, if it is in ``old``."""
    session.execute(
        update(Ask)
        .where(
            Ask.org_code == org_code,
            Ask.dataset_code == dataset_code,
            Ask.period == period,
            Ask.status == old,
        )
        .values(status=new)
    )


def insert_many(
    *, session: Session, asks: Sequence[dict[str, Any]], links: Sequence[dict[str, Any]]
) -> None:
    """New asks and links, in bulk (the asks first: the links refer to them)."""
    if asks:
        session.execute(insert(Ask), list(asks))
    session.flush()
    if links:
        session.execute(insert(AskLink), list(links))
