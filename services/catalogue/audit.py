"""The audit log: an append-only chain where each event's hash covers the one before.

``verify`` re-computes the chain from the database and never fails on what it finds there: an
edited event, a deleted one, a value that cannot even be read, or a chain that stops before its
head are all answers (``valid`` false, the first bad event, every break counted), not errors.
The head (``current_head``) can be signed with a key the database never holds and kept
elsewhere; verifying against such an anchor proves that nothing up to it was rewritten or
deleted since (docs/audit.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event as orm_events
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from services.catalogue.models import AuditEvent, AuditHead, utcnow
from services.catalogue.repositories import audit as audit_repo

if TYPE_CHECKING:
    from services.catalogue.settings import Settings

GENESIS = "0" * 64
TRUNCATED = "the chain ends before its head: newest events deleted"
HEAD_MISSING = "the chain's head is missing: the audit_head row was deleted"
# What goes wrong when a stored value will not convert (SQLite keeps any text in any column;
# PostgreSQL keeps times Python cannot hold, such as 'infinity').
_UNREADABLE = (SQLAlchemyError, ValueError, TypeError, OverflowError)
_PAGE = 1000

_HASHED = (
    "at",
    "actor",
    "token_id",
    "action",
    "subject_type",
    "subject_id",
    "detail",
    "prev_hash",
)
_HEAD_FIELDS = ("events", "last_id", "last_hash", "at")


def _digest_of(values: Mapping[str, Any]) -> str:
    payload = {
        "at": values["at"].isoformat(),
        "actor": values["actor"],
        "action": values["action"],
        "subject_type": values["subject_type"],
        "subject_id": values["subject_id"],
        "detail": values["detail"],
        "prev_hash": values["prev_hash"],
    }
    # The token is hashed only when there is one, so the events stored before it was recorded
    # (revision 0009), and the system's, keep the hashes they were written with (docs/audit.md).
    if values.get("token_id") is not None:
        payload["token_id"] = values["token_id"]
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest(event: AuditEvent) -> str:
    """The hash an event must have: over its content and the hash of the event before it."""
    return _digest_of({name: getattr(event, name) for name in _HASHED})


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    detail: dict[str, Any] | None = None,
    token_id: str | None = None,
) -> None:
    """Append one event to the chain when the caller's transaction commits.

    ``token_id`` is the token the actor used; left out, it is the token of the caller
    :func:`bind_caller` named for this session when ``actor`` is that caller (so every event a
    request records for its caller names the token), and null for anyone else (the system).

    The event is held in the session and linked in its ``before_commit`` (:func:`_link`): the
    head row is locked only from there to the commit, a few statements, not for the whole unit of
    work, so concurrent writers (deadline day's uploads and validations) do not queue behind one
    another's work. A unit of work that rolls back records nothing.
    """
    if not session.in_transaction():
        session.begin()  # so that a rollback before any statement still drops the event
    session.info.setdefault(PENDING_KEY, []).append(
        {
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "detail": detail,
            "token_id": token_id if token_id is not None else _caller_token(session, actor),
        }
    )


PENDING_KEY = "drb.audit_pending"
CALLER_KEY = "drb.audit_caller"


def bind_caller(session: Session, *, actor: str, token_id: str) -> None:
    """Name the organisation and token a request's session acts for (its authenticated caller):
    :func:`record` then stamps that token on every event of that actor."""
    session.info[CALLER_KEY] = (actor, token_id)


def _caller_token(session: Session, actor: str) -> str | None:
    bound: tuple[str, str] | None = session.info.get(CALLER_KEY)
    return bound[1] if bound is not None and bound[0] == actor else None


@orm_events.listens_for(Session, "before_commit")
def _link(session: Session) -> None:
    """Link the session's pending events to the chain, under the head row's lock, at commit.

    Locking the head (on SQLite, the database's write lock: ``lock_head``) serialises appends on
    every database, so two writers never fork the chain; each event's time is taken under the
    lock, so times follow the chain's order.
    """
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    head = audit_repo.lock_head(session=session)
    if head is None:
        head = AuditHead(id=1, last_hash=GENESIS)
        session.add(head)
    for values in pending:
        linked = AuditEvent(at=utcnow(), prev_hash=head.last_hash, **values)
        linked.hash = digest(linked)
        head.last_hash = linked.hash
        session.add(linked)


@orm_events.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: Any) -> None:
    """A rolled-back unit of work records nothing it had queued."""
    if not session.in_transaction():
        session.info.pop(PENDING_KEY, None)


# ---------------------------------------------------------------------------
# Reading the stored events, whatever they hold
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    """One row of ``audit_events`` as stored.

    ``values`` holds every column; one that could not be read holds its stored text instead
    (or None), and ``unreadable`` names it.
    """

    id: int
    values: dict[str, Any]
    unreadable: str | None = None


def stored_events(
    *,
    session: Session,
    since: datetime | None = None,
    limit: int | None = None,
) -> Iterator[StoredEvent]:
    """The events (after ``since``) oldest first, a page at a time; a row that cannot be read is
    still yielded."""
    after: int | None = None
    left = limit
    while left is None or left > 0:
        size = _PAGE if left is None else min(_PAGE, left)
        page = _page(session, since, after, size)
        if not page:
            return
        yield from page
        after = page[-1].id
        if left is not None:
            left -= len(page)


def _page(
    session: Session, since: datetime | None, after: int | None, size: int
) -> list[StoredEvent]:
    try:
        rows = audit_repo.event_page(session=session, since=since, after_id=after, size=size)
    except _UNREADABLE:
        # Some row will not convert: read the page's rows one by one to find which.
        ids = audit_repo.event_ids(session=session, since=since, after_id=after, size=size)
        return [_one(session, event_id) for event_id in ids]
    return [StoredEvent(id=row.id, values=row._asdict()) for row in rows]


def _one(session: Session, event_id: int) -> StoredEvent:
    """One event read column by column, noting the first column that will not convert."""
    values: dict[str, Any] = {}
    unreadable: str | None = None
    for column in audit_repo.EVENT_COLUMNS:
        try:
            values[column.key] = audit_repo.event_value(
                session=session, column=column, event_id=event_id
            )
        except _UNREADABLE:
            unreadable = unreadable or column.key
            values[column.key] = _as_stored(session, column, event_id)
    return StoredEvent(id=event_id, values=values, unreadable=unreadable)


def _as_stored(session: Session, column: Any, event_id: int) -> str | None:
    try:
        return audit_repo.event_text(session=session, column=column, event_id=event_id)
    except _UNREADABLE:
        return None


# ---------------------------------------------------------------------------
# Verifying
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """An event and its hash, exported earlier (``current_head``) and kept outside the database."""

    id: int
    hash: str


@dataclass(frozen=True)
class BadEvent:
    """Where the chain stops telling the truth, and why."""

    reason: str
    id: int | None
    at: str | None = None
    action: str | None = None
    # For a chain that stops early: the last event still there.
    after_id: int | None = None


# How many breaks a check names; it counts them all.
SHOWN_BREAKS = 10


@dataclass(frozen=True)
class ChainCheck:
    """The result of re-computing the chain: every break counted, the first few named."""

    valid: bool
    events: int
    first_bad: BadEvent | None = None
    breaks: int = 0
    bad_events: tuple[BadEvent, ...] = ()

    @property
    def first_bad_id(self) -> int | None:
        """The id of the first bad event (None when valid, or when it is missing)."""
        return None if self.first_bad is None else self.first_bad.id


class _Breaks:
    """The breaks found so far: all counted, the first SHOWN_BREAKS kept."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[BadEvent] = []

    def add(self, bad: BadEvent | None) -> None:
        if bad is None:
            return
        self.count += 1
        if len(self.shown) < SHOWN_BREAKS:
            self.shown.append(bad)


def verify(*, session: Session, anchor: Anchor | None = None) -> ChainCheck:
    """Re-compute every hash in order; report every event that does not match (the first and
    the count), not only the first: an edit made after a first break is still seen.

    Each event is checked against its own hash and its predecessor's (the stored one, or the
    one its content gives where only the stored hash was edited), so one break (an edited,
    deleted or forked event) is reported once and the events after it are checked as before.
    The chain must also reach the head row (else its newest events were deleted) and, given an
    anchor, still hold the anchored event with the anchored hash.
    """
    # The head is read first: events appended while the chain is read come after it.
    head = _head_hash(session)
    previous: tuple[str | None, ...] = (GENESIS,)
    count = 0
    found = _Breaks()
    reached_head = False
    anchor_seen = anchor is None
    last_id: int | None = None
    for event in stored_events(session=session):
        count += 1
        last_id = event.id
        expected = _expected_hash(event)
        problem = _problem(event, expected, previous)
        if not anchor_seen and anchor is not None and event.id >= anchor.id:
            anchor_seen = True
            problem = problem or _anchor_problem(event, anchor)
        found.add(problem)
        # An event whose stored hash was edited is still followed, and still the head, by the
        # hash its content gives.
        previous = (event.values["hash"], expected)
        reached_head = reached_head or head in previous
    if not anchor_seen and anchor is not None:
        found.add(_anchor_missing(anchor))
    if count:
        if head is None and _head_hash(session) is None:
            found.add(BadEvent(reason=HEAD_MISSING, id=None, after_id=last_id))
        elif head is not None and not reached_head:
            found.add(BadEvent(reason=TRUNCATED, id=None, after_id=last_id))
    elif head not in (None, GENESIS):
        found.add(BadEvent(reason=TRUNCATED, id=None))
    return ChainCheck(
        valid=found.count == 0,
        events=count,
        first_bad=found.shown[0] if found.shown else None,
        breaks=found.count,
        bad_events=tuple(found.shown),
    )


def _head_hash(session: Session) -> str | None:
    return audit_repo.head_hash(session=session)


def _expected_hash(event: StoredEvent) -> str | None:
    """The hash the event's stored content gives, or None if it cannot be computed."""
    if event.unreadable is not None:
        return None
    try:
        return _digest_of(event.values)
    except _UNREADABLE:  # a value json cannot write (SQLite may hold any type in any column)
        return None


def _problem(
    event: StoredEvent, expected: str | None, previous: tuple[str | None, ...]
) -> BadEvent | None:
    """Why the event breaks the chain, or None if it is what it should be."""
    values = event.values
    if event.unreadable is not None:
        reason = f"the event cannot be read: its {event.unreadable} is not a valid stored value"
        return _bad(event, reason)
    if expected is None or expected != values["hash"]:
        return _bad(event, "the event was edited: its content does not match its hash")
    if values["prev_hash"] not in previous:
        return _bad(
            event,
            "the event does not follow the one before it: an event before it was deleted,"
            " inserted or its hash edited, or two were linked to the same one",
        )
    return None


def _anchor_problem(event: StoredEvent, anchor: Anchor) -> BadEvent | None:
    """Why the first event at or after the anchor's id breaks the anchor, or None."""
    if event.id != anchor.id:
        return _anchor_missing(anchor)
    if event.values["hash"] != anchor.hash:
        return _bad(
            event,
            f"anchor: event {anchor.id} no longer has the anchored hash: the chain was"
            " rewritten up to it",
        )
    return None


def _bad(event: StoredEvent, reason: str) -> BadEvent:
    """The event as the first bad one (its time and action where they can be read)."""
    at, action = event.values["at"], event.values["action"]
    return BadEvent(
        reason=reason,
        id=event.id,
        at=at.isoformat() if isinstance(at, datetime) else None,
        action=action if isinstance(action, str) else None,
    )


def _anchor_missing(anchor: Anchor) -> BadEvent:
    return BadEvent(
        reason=f"anchor: event {anchor.id} is not in the chain: it was deleted", id=anchor.id
    )


# ---------------------------------------------------------------------------
# The head, to anchor outside the database
# ---------------------------------------------------------------------------


def signing_key(settings: Settings) -> str | None:
    """DRB_AUDIT_SIGNING_KEY, or None when it is unset or empty."""
    key = settings.audit_signing_key
    return key.get_secret_value() or None if key is not None else None


def current_head(*, session: Session, key: str | None) -> dict[str, Any]:
    """``{events, last_id, last_hash, at, signature}``: the chain's end as the head row names it.

    ``at`` is when the head was taken; ``signature`` is the HMAC-SHA256 (hex) of the other fields
    as canonical JSON with ``key``, or None without a key.
    """
    last_hash = _head_hash(session) or GENESIS
    last_id = audit_repo.event_id_with_hash(session=session, hash_=last_hash)
    events = 0
    if last_id is not None:
        events = audit_repo.count_up_to(session=session, event_id=last_id)
    head: dict[str, Any] = {
        "events": events,
        "last_id": last_id,
        "last_hash": last_hash,
        "at": utcnow().isoformat(),
    }
    head["signature"] = None if not key else _signature(head, key)
    return head


def _signature(head: Mapping[str, Any], key: str) -> str:
    signed = {name: head[name] for name in _HEAD_FIELDS}
    canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def head_signature_valid(head: Mapping[str, Any], *, key: str) -> bool:
    """Whether an exported head carries the signature of ``key`` over its fields."""
    signature = head.get("signature")
    if not isinstance(signature, str) or any(name not in head for name in _HEAD_FIELDS):
        return False
    return hmac.compare_digest(signature, _signature(head, key))
