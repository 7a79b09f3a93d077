"""What each kind of job does. Every handler is idempotent: it may run more than once."""

from __future__ import annotations

from services.catalogue.jobs import Handler, JobContext
from services.catalogue.states import JobKind
from services.validator.deliveries import deliver_extract, maintain_extracts, refresh_extracts
from services.validator.reminders import send_reminders
from services.validator.submissions import validate_submission


def probe(context: JobContext) -> None:
    """Do nothing: finishing proves the path database -> queue -> worker -> database works."""


HANDLERS: dict[str, Handler] = {
    JobKind.PROBE: probe,
    JobKind.VALIDATE_SUBMISSION: validate_submission,
    JobKind.REFRESH_EXTRACTS: refresh_extracts,
    JobKind.DELIVER_EXTRACT: deliver_extract,
    JobKind.MAINTAIN_EXTRACTS: maintain_extracts,
    JobKind.SEND_REMINDERS: send_reminders,
}
