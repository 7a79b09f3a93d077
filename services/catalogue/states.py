"""The statuses things pass through, the kinds of job and notification, and the kinds of
organisation: one enum each.

Used by the models (defaults), the state changes, the repositories' filters, the job handlers,
the access checks (``OrgKind``: who may see what) and the routes (query parameters and bodies,
so ``/openapi.json`` lists the values). Each is a ``StrEnum``: a member is the text stored and
shown (``SubmissionStatus.ACCEPTED == "accepted"``), so the database and the JSON bodies are
unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class OrgKind(StrEnum):
    """Who an organisation is, which decides what its tokens may see (SECURITY.md)."""

    TRUST = "trust"
    OVERSIGHT_BODY = "oversight_body"
    AUDITOR = "auditor"
    STEWARD = "steward"


class TokenRole(StrEnum):
    """What a token may do within its organisation beyond its kind's role (SECURITY.md):
    ``admin`` issues and revokes the organisation's tokens."""

    ADMIN = "admin"


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


class DeliveryStatus(StrEnum):
    """One revision of an extract sent to its body's channel: pending until a channel takes it
    (retried with backoff, ``last_error`` kept), then ``delivered`` (a file written), ``sent``
    (MESH took it; followed until ``acknowledged``, the body downloaded it) or ``failed`` (not
    retried: a wrong setting, a file gone, or MESH gave up on the message)."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"


# A delivery in one of these states is never attempted again (a channel took it, or it failed).
SETTLED = (
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.ACKNOWLEDGED,
    DeliveryStatus.FAILED,
)


class NotificationStatus(StrEnum):
    """A day's reminder or summary: ``sending`` (claimed by a process, written before it is
    sent), then ``sent``, or ``failed`` (tried again on the next pass), or ``cancelled`` (a
    later pass found nothing left to say)."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Notifications the daily pass (re)sends, or cancels when there is nothing left to say.
UNSENT = (NotificationStatus.FAILED, NotificationStatus.SENDING)


class NotificationKind(StrEnum):
    """What a notification is: a trust's deadline reminder or a body's daily summary."""

    TRUST_REMINDER = "trust_reminder"
    BODY_SUMMARY = "body_summary"
