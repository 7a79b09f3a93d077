"""Queries on the job outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.catalogue.models import Job
from services.catalogue.states import WAITING, JobKind, JobStatus


def get(*, session: Session, job_id: str) -> Job | None:
    """The job with this id."""
    return session.get(Job, job_id)


def due_for_sending(
    *,
    session: Session,
    pending_before: datetime,
    stale_before: datetime,
    lease_before: datetime,
    limit: int,
    queue_id: str | None = None,
) -> list[Job]:
    """Jobs to (re-)send: pending ones not sent promptly, sent ones lost, running ones dead.

    A sent job is lost when it was sent before ``stale_before``, or (given the queue's current
    ``queue_id``) to another queue: one that restarted empty, or a dead process's in-memory one.
    A running job is dead when its worker's heartbeat is older than ``lease_before``.
    Rows are locked with SKIP LOCKED on PostgreSQL so two sweepers never send the same job.
    """
    lost = Job.sent_at < stale_before
    if queue_id is not None:
        lost = or_(lost, Job.sent_to.is_(None), Job.sent_to != queue_id)
    query = (
        select(Job)
        .where(
            or_(
                and_(Job.status == JobStatus.PENDING, Job.created_at < pending_before),
                and_(Job.status == JobStatus.SENT, lost),
                and_(Job.status == JobStatus.RUNNING, _lease_expired(lease_before, stale_before)),
            )
        )
        .order_by(Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query).all())


def _lease_expired(lease_before: datetime, stale_before: datetime) -> ColumnElement[bool]:
    """A running job whose worker stopped renewing its lease (or, for a row claimed without a
    heartbeat, by a worker before leases existed, one running since before ``stale_before``)."""
    return or_(
        Job.heartbeat_at < lease_before,
        and_(Job.heartbeat_at.is_(None), Job.sent_at < stale_before),
    )


def claim(
    *,
    session: Session,
    job_id: str,
    now: datetime,
    worker_id: str,
    lease_before: datetime,
    stale_before: datetime,
    takeover_error: str | None = None,
) -> bool:
    """Mark a job running, held by ``worker_id``, if no live worker holds it; True when won.

    Conditional in one UPDATE, so of two workers given the same job only one wins it; a job
    whose holder stopped renewing its lease (killed, or its host lost) may be taken over, and
    then ``takeover_error`` becomes its last_error and the run that died counts as a death.
    """
    error: ColumnElement[str | None] | InstrumentedAttribute[str | None] = Job.last_error
    deaths: ColumnElement[int] | InstrumentedAttribute[int] = Job.deaths
    if takeover_error is not None:
        taken_over = Job.status == JobStatus.RUNNING
        error = case((taken_over, takeover_error), else_=Job.last_error)
        deaths = case((taken_over, Job.deaths + 1), else_=Job.deaths)
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                Job.status.in_(WAITING),
                and_(Job.status == JobStatus.RUNNING, _lease_expired(lease_before, stale_before)),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            sent_at=now,
            claimed_by=worker_id,
            heartbeat_at=now,
            attempts=Job.attempts + 1,
            last_error=error,
            deaths=deaths,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def renew_leases(
    *, session: Session, job_ids: Sequence[str], worker_id: str, now: datetime
) -> set[str]:
    """Renew ``worker_id``'s leases on these running jobs; the ids it still holds."""
    if not job_ids:
        return set()
    held = set(
        session.scalars(
            update(Job)
            .where(
                Job.id.in_(job_ids), Job.status == JobStatus.RUNNING, Job.claimed_by == worker_id
            )
            .values(heartbeat_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    return held


def finish(
    *,
    session: Session,
    job_id: str,
    worker_id: str,
    status: str,
    error: str | None,
    when: datetime,
    refund: bool = False,
) -> bool:
    """End ``worker_id``'s run of a job (done, or back to sent for a retry); False if it had
    lost the job meanwhile (its lease expired and another worker took it over). ``refund``
    gives back the attempt this run used (it failed for reasons outside the job)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.claimed_by == worker_id)
        .values(
            status=status,
            last_error=error,
            deaths=0,  # this run ended: whatever died before, the deaths in a row are over
            heartbeat_at=None,
            finished_at=when if status == JobStatus.DONE else None,
            attempts=Job.attempts - 1 if refund else Job.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def release(*, session: Session, job_id: str, worker_id: str) -> bool:
    """Give back a job ``worker_id`` holds without running it: pending, for the sweep."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.claimed_by == worker_id)
        .values(status=JobStatus.PENDING, sent_to=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def unmark_sent(*, session: Session, job_ids: Sequence[str]) -> int:
    """Put jobs marked sent but never sent (the queue failed) back to pending."""
    result = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == JobStatus.SENT)
        .values(status=JobStatus.PENDING, sent_to=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def mark_all_sent(
    *, session: Session, job_ids: Sequence[str], when: datetime, sent_to: str | None
) -> int:
    """Set the still-pending ones of these jobs to sent (to the queue ``sent_to``); how many.

    Conditional, as :func:`mark_sent`: a worker may already have run one, and 'done' must not
    become 'sent'.
    """
    result = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == JobStatus.PENDING)
        .values(status=JobStatus.SENT, sent_at=when, sent_to=sent_to)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def mark_sent(
    *,
    session: Session,
    job_id: str,
    when: datetime,
    only_if: str,
    sent_to: str | None = None,
    error: str | None = None,
) -> bool:
    """Set a job's status to sent (to the queue ``sent_to``) if it is still ``only_if``; True
    when it was changed. ``error``, if given (its worker died running it), is recorded as its
    last_error, and that run as one more death."""
    values: dict[str, object] = {"status": JobStatus.SENT, "sent_at": when, "sent_to": sent_to}
    if error is not None:
        values["last_error"] = error
        values["deaths"] = Job.deaths + 1
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == only_if)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def waiting_for(*, session: Session, subject_ids: Sequence[str]) -> list[str]:
    """The jobs not yet run (pending or sent) about these subjects."""
    query = select(Job.id).where(Job.subject_id.in_(subject_ids), Job.status.in_(WAITING))
    return list(session.scalars(query))


def pending_work(*, session: Session) -> list[str]:
    """Every pending job but probes, oldest first (the demo's set-up runs them in-process)."""
    query = (
        select(Job.id)
        .where(Job.status == JobStatus.PENDING, Job.kind != JobKind.PROBE)
        .order_by(Job.created_at)
    )
    return list(session.scalars(query))


def first_waiting(*, session: Session, kind: JobKind, subject_id: str) -> str | None:
    """A job of this kind about this subject not yet started (pending or sent), if any."""
    query = select(Job.id).where(
        Job.kind == kind, Job.subject_id == subject_id, Job.status.in_(WAITING)
    )
    return session.scalars(query).first()
