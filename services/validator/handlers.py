"""What each kind of job does. Every handler is idempotent: it may run more than once."""

from __future__ import annotations

from services.catalogue.jobs import Handler, JobContext
from services.validator.deliveries import deliver_extract, maintain_extracts, refresh_extracts
from services.validator.reminders import send_reminders
from services.validator.submissions import validate_submission


def probe(context: JobContext) -> None:
    """Do nothing: finishing proves the path database -> queue -> worker -> database works."""


HANDLERS: dict[str, Handler] = {
    "probe": probe,
    "validate_submission": validate_submission,
    "refresh_extracts": refresh_extracts,
    "deliver_extract": deliver_extract,
    "maintain_extracts": maintain_extracts,
    "send_reminders": send_reminders,
}
