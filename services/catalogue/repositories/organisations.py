"""Queries on organisations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.catalogue import db
from services.catalogue.models import Organisation
from services.catalogue.states import OrgKind


def get(*, session: Session, code: str) -> Organisation | None:
    """The organisation with ODS code ``code``, if any."""
    return session.get(Organisation, code)


def list_all(
    *, session: Session, kind: OrgKind | None = None, region: str | None = None
) -> Sequence[Organisation]:
    """Organisations ordered by code, optionally of one kind and region."""
    query = select(Organisation).order_by(Organisation.code)
    if kind is not None:
        query = query.where(Organisation.kind == kind)
    if region is not None:
        query = query.where(Organisation.region == region)
    return session.scalars(query).all()


def existing_codes(*, session: Session, codes: Sequence[str]) -> set[str]:
    """The subset of ``codes`` that are registered."""
    if not codes:
        return set()
    query = select(Organisation.code).where(Organisation.code.in_(codes))
    return set(session.scalars(query).all())


def regions(*, session: Session, codes: Sequence[str]) -> dict[str, str | None]:
    """The region of each of these organisations, by code."""
    query = select(Organisation.code, Organisation.region).where(Organisation.code.in_(codes))
    return {code: region for code, region in session.execute(query)}


def lock(*, session: Session, code: str) -> None:
    """Lock an organisation's row to the commit, so that decisions about its tokens are taken one
    at a time (SQLite has no row locks: its write lock, :func:`services.catalogue.db.write_lock`,
    taken before the tokens are read)."""
    db.write_lock(session)
    session.execute(select(Organisation.code).where(Organisation.code == code).with_for_update())
