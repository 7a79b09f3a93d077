"""Queries for reminders and the notifications log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.catalogue.models import Ask, AskLink, DataRequest, Notification, Organisation
from services.catalogue.states import AskStatus, NotificationStatus, RequestStatus


def due_asks(*, session: Session, until: date) -> list[tuple[Ask, list[str]]]:
    """Outstanding asks due on or before ``until`` (overdue ones too), each with the bodies whose
    active requests still need it; by trust, then due date. Submitted (being validated),
    accepted and cancelled asks are not due."""
    rows = session.execute(
        select(Ask, DataRequest.body_code)
        .join(AskLink, AskLink.ask_id == Ask.id)
        .join(DataRequest, DataRequest.id == AskLink.request_id)
        .where(
            Ask.status == AskStatus.OUTSTANDING,
            Ask.due_date <= until,
            AskLink.active.is_(True),
            DataRequest.status == RequestStatus.ACTIVE,
        )
        .order_by(Ask.org_code, Ask.due_date, Ask.dataset_code, Ask.period)
    )
    found: dict[str, tuple[Ask, list[str]]] = {}
    for ask, body in rows:
        _ask, bodies = found.setdefault(ask.id, (ask, []))
        if body not in bodies:
            bodies.append(body)
    return list(found.values())


def organisations(*, session: Session, codes: Iterable[str]) -> dict[str, Organisation]:
    """The organisations with these codes, by code."""
    wanted = sorted(set(codes))
    found: dict[str, Organisation] = {}
    for start in range(0, len(wanted), 500):
        query = select(Organisation).where(Organisation.code.in_(wanted[start : start + 500]))
        found.update((org.code, org) for org in session.scalars(query))
    return found


def of_day(*, session: Session, day: date) -> Sequence[Notification]:
    """Every notification of one day."""
    return session.scalars(select(Notification).where(Notification.day == day)).all()


def claim(*, session: Session, notification_id: str, now: datetime, stale_before: datetime) -> bool:
    """Take a failed notification (or one left ``sending`` by a process that died) to send it
    again; False when another process has it or it was sent meanwhile."""
    result = session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            or_(
                Notification.status == NotificationStatus.FAILED,
                (Notification.status == NotificationStatus.SENDING)
                & (Notification.updated_at < stale_before),
            ),
        )
        .values(status=NotificationStatus.SENDING, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def listing(
    *,
    session: Session,
    org_code: str | None,
    day: date | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> Sequence[Notification]:
    """Notifications, newest first, optionally of one organisation, day and kind."""
    query = select(Notification).order_by(
        Notification.day.desc(), Notification.created_at.desc(), Notification.id
    )
    if org_code is not None:
        query = query.where(Notification.org_code == org_code)
    if day is not None:
        query = query.where(Notification.day == day)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    return session.scalars(query.limit(limit).offset(offset)).all()


def get(*, session: Session, notification_id: str) -> Notification | None:
    """One notification."""
    return session.get(Notification, notification_id)
