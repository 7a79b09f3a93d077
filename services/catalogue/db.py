"""Database engine and sessions: built by each entry point, never at import."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


# Each process's pool: POOL_SIZE connections kept, MAX_OVERFLOW more when busy. Four processes
# (two API, two workers) stay within PostgreSQL's default max_connections (100).
POOL_SIZE = 10
MAX_OVERFLOW = 10
# Of those, how many an API process lends to request-long sessions (services/broker/dependencies
# .SessionSlots); the rest serve the work done within one call, so neither starves the other.
SESSION_SLOTS_PER_PROCESS = (POOL_SIZE + MAX_OVERFLOW) // 2


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached or used."""


def build_engine(url: str) -> Engine:
    """Create the engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    A statement's parameters are left out of its errors (``hide_parameters``): they may be a
    return's values or a token's hash, and errors reach the log and ``jobs.last_error``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        hide_parameters=True,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the in-process worker writes; FKs are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def write_lock(session: Session) -> None:
    """On SQLite, hold the database's write lock from now to the end of the transaction.

    pysqlite (legacy transaction control) runs a session's SELECTs outside any transaction and
    sends ``BEGIN`` only before its first INSERT/UPDATE/DELETE, so two sessions may read the
    same state and then write one after the other, each on what it read (two events linked to
    the same head, one burden counted twice). ``BEGIN IMMEDIATE`` takes the write lock before
    the reads that follow, waiting out the busy timeout for another writer's commit; every
    later read then sees the latest state, which no one else can change before the commit. A
    transaction already open has written (pysqlite opens none otherwise) and so holds the lock
    already. Other databases serialise with locks of their own: nothing to do here.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


ON_ROLLBACK_KEY = "drb.on_rollback"


def on_rollback(session: Session, undo: Callable[[], None]) -> None:
    """Run ``undo`` if this unit of work is rolled back (e.g. remove a file it put in place).

    For what the database cannot undo: a submission's upload moved next to its row must not
    outlive a transaction that failed (the database went away before the commit).
    """
    session.info.setdefault(ON_ROLLBACK_KEY, []).append(undo)


def undo_on_rollback(session: Session) -> None:
    """Run (once) what :func:`on_rollback` registered; an undo that fails is logged, not raised."""
    for undo in session.info.pop(ON_ROLLBACK_KEY, []):
        try:
            undo()
        except Exception:
            log.exception("could not undo after a rollback")


# The ids of the jobs a unit of work enqueued (services/catalogue/jobs.enqueue), to relay after
# its commit; dropped with a rollback.
NEW_JOBS_KEY = "drb.new_jobs"

Relay = Callable[[list[str]], None]


def note_new_job(session: Session, job_id: str) -> None:
    """Remember a job enqueued in this unit of work: it is relayed once the commit succeeds."""
    session.info.setdefault(NEW_JOBS_KEY, []).append(job_id)


def take_new_job_ids(session: Session) -> list[str]:
    """The ids of jobs enqueued in this session since the last call (to send after commit)."""
    ids: list[str] = session.info.pop(NEW_JOBS_KEY, [])
    return ids


class UnitOfWork:
    """One transaction, the only place that commits: the API's request sessions, an upload's
    record, each job handler's steps, the worker's sweep and the CLI all go through it.

    On success it commits, then hands the jobs it enqueued to ``relay`` (the queue learns of a
    job only once its row is committed). On error it rolls back, runs what the database cannot
    undo (:func:`on_rollback`) and forgets its jobs. A connection the database dropped (a
    restart) fails the unit of work with an OperationalError; the pool checks connections before
    use (``pool_pre_ping``), so the next unit of work gets a fresh one once the database answers.

    As a context manager (``with UnitOfWork(factory) as session``) it does all of that; the API
    calls :meth:`commit`, :meth:`roll_back` and :meth:`relay` itself, each in a worker thread.
    """

    def __init__(self, factory: sessionmaker[Session], *, relay: Relay | None = None) -> None:
        self.session = factory()
        self._relay = relay

    def commit(self) -> list[str]:
        """Commit and close; the ids of the jobs to relay. A failed commit rolls back and raises."""
        try:
            self.session.commit()
        except BaseException:
            self.roll_back()
            raise
        self.session.info.pop(ON_ROLLBACK_KEY, None)
        new_jobs = take_new_job_ids(self.session)
        self.session.close()
        return new_jobs

    def roll_back(self) -> None:
        """Roll back, undo what the database cannot, forget the jobs, and close."""
        try:
            self.session.rollback()
        finally:
            try:
                undo_on_rollback(self.session)
            finally:
                take_new_job_ids(self.session)
                self.session.close()

    def relay(self, job_ids: list[str]) -> None:
        """Send the committed jobs on (nothing without a relay: the sweep sends them)."""
        if job_ids and self._relay is not None:
            self._relay(job_ids)

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.roll_back()
            return
        self.relay(self.commit())


def session_scope(factory: sessionmaker[Session], *, relay: Relay | None = None) -> UnitOfWork:
    """``with session_scope(factory) as session``: one :class:`UnitOfWork`."""
    return UnitOfWork(factory, relay=relay)
