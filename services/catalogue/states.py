"""The statuses things pass through, and the kinds of job: one enum each.

Used by the models (defaults), the state changes, the repositories' filters, the job handlers
and the routes (query parameters, so ``/openapi.json`` lists the values). Each is a ``StrEnum``:
a member is the text stored and shown (``SubmissionStatus.ACCEPTED == "accepted"``), so the
database and the JSON bodies are unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class SubmissionStatus(StrEnum):
    """A trust's return: received, being validated, then accepted or rejected, once."""

    RECEIVED = "received"
    VALIDATING = "validating"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


UNDECIDED = (SubmissionStatus.RECEIVED, SubmissionStatus.VALIDATING)
DECIDED = (SubmissionStatus.ACCEPTED, SubmissionStatus.REJECTED)


class RequestStatus(StrEnum):
    """A body's request: active until withdrawn (a withdrawn request entitles to nothing)."""

    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class AskStatus(StrEnum):
    """One return asked of a trust. ``overdue`` is shown, never stored: an outstanding ask past
    its due date."""

    OUTSTANDING = "outstanding"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    OVERDUE = "overdue"
    CANCELLED = "cancelled"


class JobStatus(StrEnum):
    """A job (the transactional outbox): pending until relayed, sent to the queue, running under
    a worker's lease, then done or failed (given up after its last attempt)."""

    PENDING = "pending"
    SENT = "sent"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


WAITING = (JobStatus.PENDING, JobStatus.SENT)


class JobKind(StrEnum):
    """What a job does (``validator/handlers.py`` maps each to its handler)."""

    PROBE = "probe"
    VALIDATE_SUBMISSION = "validate_submission"
    REFRESH_EXTRACTS = "refresh_extracts"
    DELIVER_EXTRACT = "deliver_extract"
    MAINTAIN_EXTRACTS = "maintain_extracts"
    SEND_REMINDERS = "send_reminders"
