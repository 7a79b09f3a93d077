"""The transactional outbox: work is written with the change that causes it, sent after commit.

A job row is added in the same transaction as the state it acts on. After commit, the relay
sends its id to the queue, recording which queue (its identity: the Redis server's run id, or
the embedded queue of one process). A periodic sweep re-sends jobs that were never sent (a crash
between commit and send), whose message is lost (sent to a queue that is no longer the one
answering, or unclaimed for DRB_JOB_TIMEOUT_SECONDS), or whose worker died: a worker claims a
job with a lease that a heartbeat thread renews every DRB_JOB_HEARTBEAT_SECONDS, and a job whose
lease is older than DRB_JOB_LEASE_SECONDS may be taken over. A live worker keeps its lease
however long the job takes. Handlers must be idempotent: a job may run more than once; the
conditional claim means two workers never both hold it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.catalogue import store
from services.catalogue.db import Relay, UnitOfWork, note_new_job, session_scope
from services.catalogue.models import Job, utcnow
from services.catalogue.repositories import jobs as job_repo
from services.catalogue.settings import Settings
from services.catalogue.states import JobStatus

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# A job whose process died while running it this many times in a row is given up: a file that
# ends every process that reads it (a reader's abort, the kernel's OOM killer) is rejected after
# this many crashes, not MAX_ATTEMPTS. Each death is an attempt, and is recorded in last_error.
MAX_DEATHS = 3
# A pending job younger than this is left to the relay of the request that created it.
RELAY_GRACE = timedelta(seconds=5)

Send = Callable[[str], None]
# Called, in the sweep's transaction, for a job given up after MAX_ATTEMPTS: it decides what the
# job was for (a submission is rejected rather than left validating for ever).
GiveUp = Callable[[Session, Job], None]


def is_transient(error: BaseException) -> bool:
    """Whether a job failed because of its surroundings (a full disk, a database that does not
    answer), not because of its work: such a run does not use up one of its MAX_ATTEMPTS, so a
    disk that stays full for hours leaves the job retried, never given up."""
    return store.is_storage_full(error) or isinstance(error, OperationalError | InterfaceError)


def _death_record(job: Job) -> str:
    """last_error for a job whose worker died while running it: one more death in a row."""
    return (
        f"the worker ({job.claimed_by}) stopped while running it"
        f" ({job.deaths + 1} of {MAX_DEATHS} process deaths allowed)"
    )


# The identity of the queue answering now (services/catalogue/queue.identity).
Identify = Callable[[], str]

# Who holds a claimed job: this process (host, pid, and a random part: pids are reused).
WORKER_ID = f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """The jobs this process is running; its heartbeat thread renews their leases."""

    def __init__(self, worker_id: str = WORKER_ID) -> None:
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._held: dict[str, sessionmaker[Session]] = {}

    def hold(self, job_id: str, factory: sessionmaker[Session]) -> None:
        with self._lock:
            self._held[job_id] = factory

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def renew(self) -> int:
        """Renew every held lease (one UPDATE a database); returns how many were renewed."""
        with self._lock:
            by_factory: dict[sessionmaker[Session], list[str]] = {}
            for job_id, factory in self._held.items():
                by_factory.setdefault(factory, []).append(job_id)
        renewed = 0
        for factory, job_ids in by_factory.items():
            with session_scope(factory) as session:
                kept = job_repo.renew_leases(
                    session=session, job_ids=job_ids, worker_id=self.worker_id, now=utcnow()
                )
            renewed += len(kept)
            for job_id in set(job_ids) - kept:
                # Finished meanwhile, or taken over after a lease expired (a stalled process).
                log.warning(
                    "job %s is no longer held by this worker", job_id, extra={"job_id": job_id}
                )
                self.release(job_id)
        return renewed


# The process's leases: jobs.run holds them, the worker's heartbeat thread renews them.
LEASES = Leases()


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: the job's subject, units of work to open, and the settings."""

    subject_id: str | None
    factory: sessionmaker[Session]
    settings: Settings
    # The process's relay, so that a handler's new jobs are recorded against the queue they
    # were sent to, as the API's are; without one they are left pending for the sweep.
    relay: Relay | None = None

    def session(self) -> UnitOfWork:
        """A unit of work whose new jobs are sent as soon as it commits."""
        return UnitOfWork(self.factory, relay=self.relay)


Handler = Callable[[JobContext], None]


def enqueue(*, session: Session, kind: str, subject_id: str | None = None) -> Job:
    """Add a job in the caller's transaction; it is sent once that transaction commits."""
    job = Job(
        kind=kind, subject_id=subject_id, status=JobStatus.PENDING, attempts=0, created_at=utcnow()
    )
    session.add(job)
    session.flush()
    note_new_job(session, job.id)
    return job


def relay(
    *,
    factory: sessionmaker[Session],
    job_ids: Iterable[str],
    send: Send,
    identify: Identify | None = None,
) -> None:
    """Send committed jobs to the queue and record that they were sent, and to which queue.

    The queue's identity is read before sending: if the queue is replaced in between, the job
    is recorded against the old one and the sweep sends it again (never the other way round).
    """
    job_ids = list(job_ids)
    try:
        sent_to = identify() if identify is not None else None
    except Exception:
        # The queue does not answer: all left pending for the sweep; the request has succeeded.
        log.warning("the queue does not answer; %d job(s) left for the sweep", len(job_ids))
        return
    sent: list[str] = []
    for job_id in job_ids:
        try:
            send(job_id)
        except Exception:
            # Left pending: the sweep sends it later. The request that made it has succeeded.
            log.exception(
                "could not send job %s; the sweep will retry", job_id, extra={"job_id": job_id}
            )
            continue
        sent.append(job_id)
    if sent:
        # One statement for the batch. Should it fail, they stay pending and the sweep sends them
        # again: a second message is harmless, the claim runs a job once.
        with session_scope(factory) as session:
            job_repo.mark_all_sent(session=session, job_ids=sent, when=utcnow(), sent_to=sent_to)


class Relayer:
    """Relays committed jobs from one background thread, in batches, off the request's path.

    ``submit`` returns at once: the API answers its 202 without waiting for Redis and a second
    transaction, and under load the jobs of many requests are sent together and marked sent in
    one statement. A process that dies before relaying leaves its jobs pending: the sweep sends
    them after RELAY_GRACE, as for a crash between a commit and its relay.
    """

    BATCH = 200

    def __init__(
        self, *, factory: sessionmaker[Session], send: Send, identify: Identify | None
    ) -> None:
        self._factory = factory
        self._send = send
        self._identify = identify
        self._waiting: SimpleQueue[str | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="drb-relay", daemon=True)
        self._thread.start()

    def submit(self, job_ids: Iterable[str]) -> None:
        """Queue these committed jobs for sending."""
        for job_id in job_ids:
            self._waiting.put(job_id)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is waiting, then stop the thread."""
        self._waiting.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[str] = []
            item = self._waiting.get()
            while True:
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
                if len(batch) >= self.BATCH:
                    break
                try:
                    item = self._waiting.get_nowait()
                except Empty:
                    break
            if not batch:
                continue
            try:
                relay(
                    factory=self._factory,
                    job_ids=batch,
                    send=self._send,
                    identify=self._identify,
                )
            except Exception:
                # Never let the thread die: these stay pending for the sweep.
                log.exception("could not relay %d job(s); the sweep will send them", len(batch))


def sweep(
    *,
    factory: sessionmaker[Session],
    send: Send,
    stale_after: timedelta,
    lease: timedelta | None = None,
    identify: Identify | None = None,
    limit: int = 500,
    on_give_up: GiveUp | None = None,
) -> int:
    """Re-send jobs never sent, lost with their queue, or whose worker died; how many were sent.

    ``identify`` gives the queue answering now: jobs sent to another are re-sent at once. A
    running job is re-sent when its lease (default: ``stale_after``) has expired. Raises when
    the queue does not answer (nothing is marked then).
    """
    now = utcnow()
    queue_id = identify() if identify is not None else None
    to_send: list[str] = []
    with session_scope(factory) as session:
        for job in job_repo.due_for_sending(
            session=session,
            pending_before=now - RELAY_GRACE,
            stale_before=now - stale_after,
            lease_before=now - (lease if lease is not None else stale_after),
            limit=limit,
            queue_id=queue_id,
        ):
            # A running job here is one whose worker died while running it: that run was an
            # attempt (its claim counted it), and a death.
            died = job.status == JobStatus.RUNNING
            error = _death_record(job) if died else None
            if job.attempts >= MAX_ATTEMPTS or job.deaths + died >= MAX_DEATHS:
                job.last_error = error or job.last_error
                job.deaths += died
                _give_up(session, job, now, on_give_up)
                continue
            why = _why_sent_again(job, queue_id)
            # Marked before it is sent, and only if no worker has moved it on meanwhile.
            if job_repo.mark_sent(
                session=session,
                job_id=job.id,
                when=now,
                only_if=job.status,
                sent_to=queue_id,
                error=error,
            ):
                to_send.append(job.id)
                log.info(
                    "sending job %s (%s) again: %s",
                    job.id,
                    job.kind,
                    why,
                    extra={"job_id": job.id, "job_kind": job.kind, "subject_id": job.subject_id},
                )
    for index, job_id in enumerate(to_send):
        try:
            send(job_id)
        except Exception:
            # The queue failed mid-way: the rest were marked sent but are not; back to pending,
            # so that the next sweep sends them rather than waiting for them to go stale.
            unsent = to_send[index:]
            with session_scope(factory) as session:
                job_repo.unmark_sent(session=session, job_ids=unsent)
            log.warning(
                "the queue failed while sweeping; %d job(s) left pending",
                len(unsent),
                exc_info=True,
            )
            return index
    return len(to_send)


def _give_up(session: Session, job: Job, now: datetime, on_give_up: GiveUp | None) -> None:
    """Fail the job for good, and let ``on_give_up`` decide what it was for."""
    died = job.deaths >= MAX_DEATHS
    job.status = JobStatus.FAILED
    job.finished_at = now
    job.last_error = (job.last_error or "") + f"\ngave up after {job.attempts} attempts"
    log.error(
        "job %s (%s) failed for good%s",
        job.id,
        job.kind,
        f": its process died {MAX_DEATHS} times running it" if died else "",
        extra={"job_id": job.id, "job_kind": job.kind, "subject_id": job.subject_id},
    )
    if on_give_up is not None:
        on_give_up(session, job)


def _why_sent_again(job: Job, queue_id: str | None) -> str:
    """Why the sweep sends this job (for the log: an operator sees what was lost, and how)."""
    if job.status == JobStatus.PENDING:
        return "never relayed after its commit"
    if job.status == JobStatus.RUNNING:
        return f"its worker ({job.claimed_by}) stopped renewing its lease"
    if queue_id is not None and job.sent_to is None:
        return "sent with no queue recorded"
    if queue_id is not None and job.sent_to != queue_id:
        return f"sent to a queue no longer answering ({job.sent_to})"
    when = f" at {job.sent_at:%Y-%m-%d %H:%M:%S}" if job.sent_at is not None else ""
    return f"sent{when} and never claimed"


def run(
    *,
    factory: sessionmaker[Session],
    job_id: str,
    handlers: dict[str, Handler],
    stale_after: timedelta,
    settings: Settings,
    relay: Relay | None = None,
    leases: Leases | None = None,
) -> str:
    """Run one job if no live worker holds it; returns the job's status afterwards.

    The job is held under this process's lease (``leases``, default the process's) while it
    runs. The handler opens its own units of work, so a long job holds no transaction open.
    """
    leases = leases if leases is not None else LEASES
    now = utcnow()
    with session_scope(factory) as session:
        job = job_repo.get(session=session, job_id=job_id)
        if job is None:
            log.warning("job %s does not exist; message dropped", job_id, extra={"job_id": job_id})
            return "missing"
        if job.status in (JobStatus.DONE, JobStatus.FAILED):
            return job.status
        # Running, yet claimable: its worker died while running it (a death, as in the sweep).
        died = _death_record(job) if job.status == JobStatus.RUNNING else None
        if not job_repo.claim(
            session=session,
            job_id=job_id,
            now=now,
            worker_id=leases.worker_id,
            lease_before=now - timedelta(seconds=settings.job_lease_seconds),
            stale_before=now - stale_after,
            takeover_error=died,
        ):
            return JobStatus.RUNNING
        kind, subject_id = job.kind, job.subject_id
        if died is not None and job.deaths + 1 >= MAX_DEATHS:
            # Not run again: left pending, for the next sweep to give it up.
            job_repo.release(session=session, job_id=job_id, worker_id=leases.worker_id)
            log.warning(
                "job %s (%s) is not run again: its process died %d times running it",
                job_id,
                kind,
                MAX_DEATHS,
                extra={"job_id": job_id, "job_kind": kind, "subject_id": subject_id},
            )
            return JobStatus.PENDING
    leases.hold(job_id, factory)
    handler = handlers.get(kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for job kind {kind!r}")
        handler(JobContext(subject_id=subject_id, factory=factory, settings=settings, relay=relay))
        with session_scope(factory) as session:
            _finish(session, job_id, leases.worker_id, status=JobStatus.DONE, error=None)
    except Exception as error:
        with session_scope(factory) as session:
            # Back to 'sent' so that the sweep retries it once it goes stale.
            _finish(
                session,
                job_id,
                leases.worker_id,
                status=JobStatus.SENT,
                error=f"{type(error).__name__}: {error}",
                refund=is_transient(error),
            )
        raise
    finally:
        leases.release(job_id)
    return JobStatus.DONE


def _finish(
    session: Session,
    job_id: str,
    worker_id: str,
    *,
    status: str,
    error: str | None,
    refund: bool = False,
) -> None:
    if not job_repo.finish(
        session=session,
        job_id=job_id,
        worker_id=worker_id,
        status=status,
        error=error,
        when=utcnow(),
        refund=refund,
    ):
        # Its lease expired and another worker took it over: that one's outcome stands.
        log.warning(
            "job %s was taken over by another worker; this run's outcome (%s) is dropped",
            job_id,
            status,
            extra={"job_id": job_id},
        )
