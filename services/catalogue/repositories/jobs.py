"""Queries on the job outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from services.catalogue.models import Job


def get(*, session: Session, job_id: str) -> Job | None:
    """The job with this id."""
    return session.get(Job, job_id)


def due_for_sending(
    *, session: Session, pending_before: datetime, stale_before: datetime, limit: int
) -> list[Job]:
    """Jobs to (re-)send: pending ones not sent promptly, and sent or running ones gone stale.

    Rows are locked with SKIP LOCKED on PostgreSQL so two sweepers never send the same job.
    """
    query = (
        select(Job)
        .where(
            or_(
                and_(Job.status == "pending", Job.created_at < pending_before),
                and_(Job.status == "sent", Job.sent_at < stale_before),
                and_(Job.status == "running", Job.sent_at < stale_before),
            )
        )
        .order_by(Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query).all())


def claim(*, session: Session, job_id: str, now: datetime, stale_before: datetime) -> bool:
    """Mark a job running if no other worker holds it; True when this caller won it."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                Job.status.in_(("pending", "sent")),
                and_(Job.status == "running", Job.sent_at < stale_before),
            ),
        )
        .values(status="running", sent_at=now, attempts=Job.attempts + 1)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def mark_sent(*, session: Session, job_id: str, when: datetime, only_if: str) -> bool:
    """Set a job's status to sent if it is still ``only_if``; True when it was changed."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == only_if)
        .values(status="sent", sent_at=when)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
