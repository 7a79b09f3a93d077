"""Database engine and sessions: built by each entry point, never at import."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error. The only place that commits.

    A connection the database dropped (a restart) fails the unit of work with an
    OperationalError; the pool checks connections before use (``pool_pre_ping``), so the next
    unit of work gets a fresh one once the database answers again.
    """
    session = factory()
    try:
        yield session
        session.commit()
        session.info.pop(ON_ROLLBACK_KEY, None)
    except BaseException:
        try:
            session.rollback()
        finally:
            undo_on_rollback(session)
        raise
    finally:
        session.close()
