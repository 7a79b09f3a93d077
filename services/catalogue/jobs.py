"""The transactional outbox: work is written with the change that causes it, sent after commit.

A job row is added in the same transaction as the state it acts on. After commit, the relay
sends its id to the queue; a periodic sweep re-sends jobs that were never sent (a crash between
commit and send) or never finished (a lost message, a crashed worker). Handlers must be
idempotent: a job may run more than once, never concurrently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from services.catalogue.db import session_scope
from services.catalogue.models import Job, utcnow
from services.catalogue.repositories import jobs as job_repo
from services.catalogue.settings import Settings

log = logging.getLogger(__name__)

NEW_JOBS_KEY = "drb.new_jobs"
MAX_ATTEMPTS = 5
# A pending job younger than this is left to the relay of the request that created it.
RELAY_GRACE = timedelta(seconds=5)

Send = Callable[[str], None]


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: the job's subject, units of work to open, and the settings."""

    subject_id: str | None
    factory: sessionmaker[Session]
    settings: Settings
    send: Send | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work whose new jobs are sent as soon as it commits."""
        with session_scope(self.factory) as session:
            yield session
            new_jobs = take_new_job_ids(session)
        if self.send is not None and new_jobs:
            relay(factory=self.factory, job_ids=new_jobs, send=self.send)


Handler = Callable[[JobContext], None]


def enqueue(*, session: Session, kind: str, subject_id: str | None = None) -> Job:
    """Add a job in the caller's transaction; it is sent once that transaction commits."""
    job = Job(kind=kind, subject_id=subject_id, status="pending", attempts=0, created_at=utcnow())
    session.add(job)
    session.flush()
    session.info.setdefault(NEW_JOBS_KEY, []).append(job.id)
    return job


def take_new_job_ids(session: Session) -> list[str]:
    """The ids of jobs enqueued in this session since the last call (to send after commit)."""
    ids: list[str] = session.info.pop(NEW_JOBS_KEY, [])
    return ids


def relay(*, factory: sessionmaker[Session], job_ids: Iterable[str], send: Send) -> None:
    """Send committed jobs to the queue and record that they were sent."""
    for job_id in job_ids:
        try:
            send(job_id)
        except Exception:
            # Left pending: the sweep sends it later. The request that made it has succeeded.
            log.exception(
                "could not send job %s; the sweep will retry", job_id, extra={"job_id": job_id}
            )
            continue
        with session_scope(factory) as session:
            # Conditional: a worker may already have run it, and 'done' must not become 'sent'.
            job_repo.mark_sent(session=session, job_id=job_id, when=utcnow(), only_if="pending")


def sweep(
    *, factory: sessionmaker[Session], send: Send, stale_after: timedelta, limit: int = 500
) -> int:
    """Re-send jobs never sent or never finished; returns how many were sent."""
    now = utcnow()
    to_send: list[str] = []
    with session_scope(factory) as session:
        for job in job_repo.due_for_sending(
            session=session,
            pending_before=now - RELAY_GRACE,
            stale_before=now - stale_after,
            limit=limit,
        ):
            if job.attempts >= MAX_ATTEMPTS:
                job.status = "failed"
                job.finished_at = now
                job.last_error = (job.last_error or "") + f"\ngave up after {job.attempts} attempts"
                log.error(
                    "job %s (%s) failed for good",
                    job.id,
                    job.kind,
                    extra={"job_id": job.id, "job_kind": job.kind, "subject_id": job.subject_id},
                )
                continue
            # Marked before it is sent, and only if no worker has moved it on meanwhile.
            if job_repo.mark_sent(session=session, job_id=job.id, when=now, only_if=job.status):
                to_send.append(job.id)
    for job_id in to_send:
        send(job_id)
    return len(to_send)


def run(
    *,
    factory: sessionmaker[Session],
    job_id: str,
    handlers: dict[str, Handler],
    stale_after: timedelta,
    settings: Settings,
    send: Send | None = None,
) -> str:
    """Run one job if no one else is running it; returns the job's status afterwards.

    The handler opens its own units of work, so a long job holds no transaction open.
    """
    now = utcnow()
    with session_scope(factory) as session:
        job = job_repo.get(session=session, job_id=job_id)
        if job is None:
            log.warning("job %s does not exist; message dropped", job_id, extra={"job_id": job_id})
            return "missing"
        if job.status in ("done", "failed"):
            return job.status
        if not job_repo.claim(
            session=session, job_id=job_id, now=now, stale_before=now - stale_after
        ):
            return "running"
        kind, subject_id = job.kind, job.subject_id
    handler = handlers.get(kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {kind!r}")
        handler(JobContext(subject_id=subject_id, factory=factory, settings=settings, send=send))
        with session_scope(factory) as session:
            _finish(session, job_id, status="done", error=None)
    except Exception as error:
        with session_scope(factory) as session:
            # Back to 'sent' so that the sweep retries it once it goes stale.
            _finish(session, job_id, status="sent", error=f"{type(error).__name__}: {error}")
        raise
    return "done"


def _finish(session: Session, job_id: str, *, status: str, error: str | None) -> None:
    job = job_repo.get(session=session, job_id=job_id)
    if job is None:
        return
    job.status = status
    job.last_error = error
    if status == "done":
        job.finished_at = utcnow()
