"""Queries on bearer tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.catalogue.models import Organisation, Token


def active_by_hash(*, session: Session, token_hash: str) -> tuple[Token, Organisation] | None:
    """The unrevoked token with this hash and its organisation."""
    query = (
        select(Token, Organisation)
        .join(Organisation, Organisation.code == Token.org_code)
        .where(Token.token_hash == token_hash, Token.revoked_at.is_(None))
    )
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])


def get(*, session: Session, token_id: str) -> Token | None:
    """The token with this id."""
    return session.get(Token, token_id)


def list_for(*, session: Session, org_code: str) -> list[Token]:
    """Every token of one organisation, newest first."""
    query = select(Token).where(Token.org_code == org_code).order_by(Token.created_at.desc())
    return list(session.scalars(query).all())
