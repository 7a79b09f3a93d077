"""What each kind of job does. Every handler is idempotent: it may run more than once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.catalogue.jobs import Handler


def probe(session: Session, subject_id: str | None) -> None:
    """Do nothing: finishing proves the path database -> queue -> worker -> database works."""


HANDLERS: dict[str, Handler] = {
    "probe": probe,
}
