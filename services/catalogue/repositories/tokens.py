"""Queries on bearer tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.catalogue import db
from services.catalogue.models import Organisation, Token

BOOTSTRAP_LOCK_KEY = 0x6472_6241_444D  # "drbADM": the advisory lock of the token bootstrap


def active_by_hash(*, session: Session, token_hash: str) -> tuple[Token, Organisation] | None:
    """The unrevoked token with this hash and its organisation."""
    query = (
        select(Token, Organisation)
        .join(Organisation, Organisation.code == Token.org_code)
        .where(Token.token_hash == token_hash, Token.revoked_at.is_(None))
    )
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])


def by_hash(*, session: Session, token_hash: str) -> Token | None:
    """The token with this hash, revoked or not (hashes are unique)."""
    return session.scalars(select(Token).where(Token.token_hash == token_hash)).first()


def active_labelled(*, session: Session, org_code: str, label: str) -> list[Token]:
    """An organisation's unrevoked tokens with this label, oldest first."""
    query = (
        select(Token)
        .where(Token.org_code == org_code, Token.label == label, Token.revoked_at.is_(None))
        .order_by(Token.created_at)
    )
    return list(session.scalars(query).all())


def lock_for_bootstrap(*, session: Session) -> None:
    """Serialise the start-up bootstrap of processes sharing a PostgreSQL database.

    A transaction-scoped advisory lock, released at commit; on SQLite the write lock
    (:func:`services.catalogue.db.write_lock`), taken before anything is read.
    """
    db.write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(BOOTSTRAP_LOCK_KEY)))


def get(*, session: Session, token_id: str) -> Token | None:
    """The token with this id."""
    return session.get(Token, token_id)


def list_for(*, session: Session, org_code: str) -> list[Token]:
    """Every token of one organisation, newest first."""
    query = select(Token).where(Token.org_code == org_code).order_by(Token.created_at.desc())
    return list(session.scalars(query).all())
