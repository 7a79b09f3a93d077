"""Audit events are linked to the chain when their unit of work commits, not when recorded.

The head row is locked only from the commit's start to its end, so a long unit of work that has
recorded an event does not hold up every other writer (on deadline day 220 uploads and their
validations append at once); a unit of work that rolls back records nothing; concurrent writers
still make one valid chain whose times follow its order.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from services.catalogue import audit
from services.catalogue.db import session_scope
from services.catalogue.models import AuditEvent
from services.catalogue.runtime import Runtime


def _record(session: Session, subject_id: str) -> None:
    audit.record(
        session=session,
        actor="DRB-TEST",
        action="thing.done",
        subject_type="thing",
        subject_id=subject_id,
    )


def _subjects(runtime: Runtime) -> list[str]:
    with runtime.factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.subject_id)
                .where(AuditEvent.action == "thing.done")
                .order_by(AuditEvent.id)
            )
        )


def test_a_rolled_back_unit_of_work_records_nothing(runtime: Runtime) -> None:
    def failing_unit_of_work() -> None:
        with session_scope(runtime.factory) as session:
            _record(session, "lost")
            raise RuntimeError("the unit of work fails")

    with pytest.raises(RuntimeError):
        failing_unit_of_work()
    # The same session object reused after a rollback does not carry the event over either.
    session = runtime.factory()
    _record(session, "dropped")
    session.rollback()
    _record(session, "kept")
    session.commit()
    session.close()
    assert _subjects(runtime) == ["kept"]
    with runtime.factory() as session:
        assert audit.verify(session=session).valid


@pytest.mark.parametrize("catalogue_url", ["postgres"], indirect=True)
def test_an_open_unit_of_work_does_not_hold_the_head(runtime: Runtime) -> None:
    slow = runtime.factory()
    _record(slow, "slow")
    slow.flush()  # its other work is in the database; its event waits for the commit
    try:
        with session_scope(runtime.factory) as quick:
            # Before: the head was locked FOR UPDATE by the slow one until it committed.
            quick.execute(text("SET LOCAL lock_timeout = '2s'"))
            _record(quick, "quick")
        slow.commit()
    finally:
        slow.close()
    assert _subjects(runtime) == ["quick", "slow"]
    with runtime.factory() as session:
        assert audit.verify(session=session).valid


@pytest.mark.parametrize("log", ["continued", "empty"])
def test_concurrent_writers_make_one_chain_in_time_order(runtime: Runtime, log: str) -> None:
    """Eight writers at once, appending to the chain or starting it (no head row yet)."""
    if log == "empty":
        with runtime.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_events"))
            connection.execute(text("DELETE FROM audit_head"))
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait()
            for n in range(10):
                with session_scope(runtime.factory) as session:
                    _record(session, f"{number}-{n}")
        except BaseException as error:  # reported below, with the thread's own error
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(_subjects(runtime)) == 80
    with runtime.factory() as session:
        check = audit.verify(session=session)
        assert check.valid, check
        times = list(session.scalars(select(AuditEvent.at).order_by(AuditEvent.id)))
    assert times == sorted(times)
