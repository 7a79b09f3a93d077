"""The audit log: an append-only chain where each event's hash covers the one before."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.catalogue.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64


def _digest(event: AuditEvent) -> str:
    payload = {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction."""
    # Locking the head row serialises appends, so two writers never fork the chain.
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, last_hash=GENESIS)
        session.add(head)
    event = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail,
        prev_hash=head.last_hash,
    )
    event.hash = _digest(event)
    head.last_hash = event.hash
    session.add(event)
    return event


@dataclass(frozen=True)
class ChainCheck:
    """The result of re-computing the chain."""

    valid: bool
    events: int
    first_bad_id: int | None = None


def verify(*, session: Session) -> ChainCheck:
    """Re-compute every hash in order; report the first event that does not match."""
    previous = GENESIS
    count = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
        count += 1
        if event.prev_hash != previous or _digest(event) != event.hash:
            return ChainCheck(valid=False, events=count, first_bad_id=event.id)
        previous = event.hash
    return ChainCheck(valid=True, events=count)
