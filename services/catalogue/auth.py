"""Bearer tokens and roles: who is calling, and what their organisation's kind lets them do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.catalogue import audit
from services.catalogue.errors import NotFound
from services.catalogue.models import Organisation, Token, utcnow
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import tokens as token_repo

TOKEN_PREFIX = "drb_"  # noqa: S105 (a prefix, not a secret)
# The organisation that holds the DRB_ADMIN_TOKEN; created at start-up when the token is set.
BOOTSTRAP_STEWARD = "DRB-STEWARD"
BOOTSTRAP_TOKEN_LABEL = "DRB_ADMIN_TOKEN"  # noqa: S105 (a label)


@dataclass(frozen=True)
class Principal:
    """The caller: an organisation acting through one of its tokens."""

    org_code: str
    kind: str
    token_id: str


def generate_token() -> str:
    """A new random token: 256 bits, URL-safe, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 that is stored instead of the token (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(*, session: Session, token: str) -> Principal | None:
    """The principal for ``token``, or None when it is unknown or revoked."""
    if not token or len(token) > 512:
        return None
    found = token_repo.active_by_hash(session=session, token_hash=hash_token(token))
    if found is None:
        return None
    stored, organisation = found
    # The lookup was by hash; compare again in constant time to keep timing flat.
    if not hmac.compare_digest(stored.token_hash, hash_token(token)):
        return None
    return Principal(org_code=organisation.code, kind=organisation.kind, token_id=stored.id)


def issue_token(
    *, session: Session, org_code: str, actor: str, label: str | None = None
) -> tuple[Token, str]:
    """Create a token for an organisation; the plain token is returned once and never stored."""
    if org_repo.get(session=session, code=org_code) is None:
        raise NotFound(f"No organisation has the code {org_code!r}.")
    plain = generate_token()
    token = Token(org_code=org_code, token_hash=hash_token(plain), label=label)
    session.add(token)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="token.issued",
        subject_type="organisation",
        subject_id=org_code,
        detail={"token_id": token.id, "label": label},
    )
    return token, plain


def revoke_token(*, session: Session, org_code: str, token_id: str, actor: str) -> None:
    """Revoke one of an organisation's tokens (idempotent)."""
    token = token_repo.get(session=session, token_id=token_id)
    if token is None or token.org_code != org_code:
        raise NotFound(f"Organisation {org_code!r} has no token {token_id!r}.")
    if token.revoked_at is not None:
        return
    token.revoked_at = utcnow()
    audit.record(
        session=session,
        actor=actor,
        action="token.revoked",
        subject_type="organisation",
        subject_id=org_code,
        detail={"token_id": token_id},
    )


def bootstrap_admin_token(*, session: Session, admin_token: str) -> None:
    """Make ``admin_token`` a steward token (idempotent; the setting is the secret)."""
    if org_repo.get(session=session, code=BOOTSTRAP_STEWARD) is None:
        session.add(
            Organisation(code=BOOTSTRAP_STEWARD, name="Broker stewards (bootstrap)", kind="steward")
        )
        session.flush()
    digest = hash_token(admin_token)
    if token_repo.active_by_hash(session=session, token_hash=digest) is None:
        session.add(
            Token(org_code=BOOTSTRAP_STEWARD, token_hash=digest, label=BOOTSTRAP_TOKEN_LABEL)
        )
        session.flush()
