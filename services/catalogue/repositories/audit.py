"""Queries of the audit chain: its head row and its stored events.

``catalogue/audit.py`` links events under the head row's lock and re-computes the chain; the
statements it runs are built here, one function each, so it runs the same ones in the same
order. Reading a value that will not convert raises here and is handled there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Text, cast, func, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.catalogue import db
from services.catalogue.models import AuditEvent, AuditHead

# Every column of an event, in the order they are read.
EVENT_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    AuditEvent.id,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.subject_type,
    AuditEvent.subject_id,
    AuditEvent.detail,
    AuditEvent.token_id,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


# The PostgreSQL advisory lock that serialises the first appends, before the head row exists.
_FIRST_APPEND_LOCK = 727_273


def lock_head(*, session: Session) -> AuditHead | None:
    """The head row, locked to the commit; None before the first event.

    ``FOR UPDATE`` locks the row on PostgreSQL; SQLite ignores it, so its write lock is taken
    first (:func:`services.catalogue.db.write_lock`): without it two sessions read the same head
    and the chain forks. Before the first event there is no row to lock: PostgreSQL's first
    appenders queue on an advisory lock instead and look again, so only one creates the head.
    """
    db.write_lock(session)
    query = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    head = session.scalars(query).first()
    if head is None and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FIRST_APPEND_LOCK})
        head = session.scalars(query).first()
    return head


def head_hash(*, session: Session) -> str | None:
    """The hash the head row names as the chain's last, without a lock."""
    return session.scalar(select(AuditHead.last_hash).where(AuditHead.id == 1))


def _conditions(since: datetime | None, after_id: int | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(AuditEvent.at > since)
    if after_id is not None:
        conditions.append(AuditEvent.id > after_id)
    return conditions


def event_page(
    *, session: Session, since: datetime | None, after_id: int | None, size: int
) -> Sequence[Row[Any]]:
    """Up to ``size`` events (every column), oldest first, after ``since`` and ``after_id``."""
    query = select(*EVENT_COLUMNS).where(*_conditions(since, after_id))
    return session.execute(query.order_by(AuditEvent.id).limit(size)).all()


def event_ids(
    *, session: Session, since: datetime | None, after_id: int | None, size: int
) -> Sequence[int]:
    """The ids of the same page as :func:`event_page`, which read nothing else."""
    query = select(AuditEvent.id).where(*_conditions(since, after_id))
    return session.scalars(query.order_by(AuditEvent.id).limit(size)).all()


def event_value(*, session: Session, column: InstrumentedAttribute[Any], event_id: int) -> Any:
    """One column of one event, converted to its Python type."""
    return session.scalar(select(column).where(AuditEvent.id == event_id))


def event_text(
    *, session: Session, column: InstrumentedAttribute[Any], event_id: int
) -> str | None:
    """One column of one event as the text the database holds."""
    return session.scalar(select(cast(column, Text)).where(AuditEvent.id == event_id))


def event_id_with_hash(*, session: Session, hash_: str) -> int | None:
    """The id of the event with this hash, if any."""
    return session.scalar(select(AuditEvent.id).where(AuditEvent.hash == hash_))


def count_up_to(*, session: Session, event_id: int) -> int:
    """How many events there are up to and including ``event_id``."""
    query = select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= event_id)
    return session.scalar(query) or 0
