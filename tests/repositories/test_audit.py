"""The audit log is a hash chain: any edit to a past event is detected."""

from __future__ import annotations

import itertools

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from services.catalogue import audit
from services.catalogue.db import session_scope
from services.catalogue.models import AuditEvent


def test_chain_verifies_and_detects_tampering(db_factory: sessionmaker[Session]) -> None:
    with session_scope(db_factory) as session:
        for n in range(5):
            audit.record(
                session=session,
                actor="DRB-TEST",
                action="thing.done",
                subject_type="thing",
                subject_id=str(n),
                detail={"n": n},
            )
    with session_scope(db_factory) as session:
        check = audit.verify(session=session)
        assert check.valid
        # The four dataset publications of `drb migrate` come first.
        assert check.events >= 5
        events = session.query(AuditEvent).order_by(AuditEvent.id).all()
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
        target = events[-3].id
    with session_scope(db_factory) as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.id == target).values(subject_id="forged")
        )
    with session_scope(db_factory) as session:
        check = audit.verify(session=session)
    assert not check.valid
    assert check.first_bad_id == target
