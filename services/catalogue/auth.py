"""Bearer tokens and roles: who is calling, and what their organisation's kind lets them do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from services.catalogue import audit, organisations
from services.catalogue.errors import Invalid, NotFound, ServiceUnavailable
from services.catalogue.models import Organisation, Token, utcnow
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import tokens as token_repo
from services.catalogue.states import OrgKind

TOKEN_PREFIX = "drb_"  # noqa: S105 (a prefix, not a secret)
# The organisation that holds the DRB_ADMIN_TOKEN; created at start-up when the token is set.
BOOTSTRAP_STEWARD = "DRB-STEWARD"
BOOTSTRAP_TOKEN_LABEL = "DRB_ADMIN_TOKEN"  # noqa: S105 (a label)
SYSTEM_ACTOR = "system"  # who the audit log names for what start-up does
ROTATED = "DRB_ADMIN_TOKEN rotated"
UNSET = "DRB_ADMIN_TOKEN unset"
# A new token's lifetime: DRB_TOKEN_TTL_DAYS by default, at most a year (and a leap day).
DEFAULT_TOKEN_TTL_DAYS = 90
MAX_TOKEN_TTL_DAYS = 366


class AdminTokenRefused(ServiceUnavailable):
    """DRB_ADMIN_TOKEN cannot become the bootstrap steward's token; the message says why."""


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


def is_live(token: Token, *, now: datetime | None = None) -> bool:
    """Whether a stored token is still accepted: not revoked, and not past its expiry."""
    if token.revoked_at is not None:
        return False
    return token.expires_at is None or token.expires_at > (now or utcnow())


def _found(*, session: Session, token: str) -> tuple[Token, Organisation] | None:
    """The unrevoked token with this value and its organisation (expired or not)."""
    if not token or len(token) > 512:
        return None
    found = token_repo.active_by_hash(session=session, token_hash=hash_token(token))
    if found is None:
        return None
    # The lookup was by hash; compare again in constant time to keep timing flat.
    if not hmac.compare_digest(found[0].token_hash, hash_token(token)):
        return None
    return found


def authenticate(*, session: Session, token: str) -> Principal | None:
    """The principal for ``token``, or None when it is unknown, revoked or expired.

    :func:`expired_at` tells an expired token from the others, for the caller's message.
    """
    found = _found(session=session, token=token)
    if found is None or not is_live(found[0]):
        return None
    stored, organisation = found
    return Principal(org_code=organisation.code, kind=organisation.kind, token_id=stored.id)


def expired_at(*, session: Session, token: str) -> datetime | None:
    """When ``token`` expired, if it is a known, unrevoked token past its expiry; else None."""
    found = _found(session=session, token=token)
    if found is None or found[0].expires_at is None or is_live(found[0]):
        return None
    return found[0].expires_at


def issue_token(
    *,
    session: Session,
    org_code: str,
    actor: str,
    label: str | None = None,
    expires_in_days: int = DEFAULT_TOKEN_TTL_DAYS,
) -> tuple[Token, str]:
    """Create a token for an organisation; the plain token is returned once and never stored."""
    if not 1 <= expires_in_days <= MAX_TOKEN_TTL_DAYS:
        raise Invalid(
            f"A token lives 1 to {MAX_TOKEN_TTL_DAYS} days.",
            errors=[{"field": "expires_in_days", "message": f"1 to {MAX_TOKEN_TTL_DAYS}"}],
        )
    organisations.get(session=session, code=org_code)
    plain = generate_token()
    now = utcnow()
    token = _add_token(
        session=session,
        token=Token(
            org_code=org_code,
            token_hash=hash_token(plain),
            label=label,
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days),
        ),
        actor=actor,
        action="token.issued",
    )
    return token, plain


def _add_token(*, session: Session, token: Token, actor: str, action: str) -> Token:
    """Store a new token and audit it (by its id, label and expiry: never the token)."""
    session.add(token)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action=action,
        subject_type="organisation",
        subject_id=token.org_code,
        detail={"token_id": token.id, "label": token.label, "expires_at": _iso(token.expires_at)},
    )
    return token


def _iso(moment: datetime | None) -> str | None:
    """A timestamp as ISO 8601 text for an audit detail (JSON holds no datetimes)."""
    return None if moment is None else moment.isoformat()


def _revoke(*, session: Session, token: Token, actor: str, reason: str | None = None) -> None:
    token.revoked_at = utcnow()
    detail: dict[str, object] = {"token_id": token.id}
    if reason is not None:
        detail["reason"] = reason
    audit.record(
        session=session,
        actor=actor,
        action="token.revoked",
        subject_type="organisation",
        subject_id=token.org_code,
        detail=detail,
    )


def revoke_token(*, session: Session, org_code: str, token_id: str, actor: str) -> None:
    """Revoke one of an organisation's tokens (idempotent)."""
    token = token_repo.get(session=session, token_id=token_id)
    if token is None or token.org_code != org_code:
        raise NotFound(f"Organisation {org_code!r} has no token {token_id!r}.")
    if token.revoked_at is not None:
        return
    _revoke(session=session, token=token, actor=actor)


def tokens_of(*, session: Session, org_code: str) -> list[Token]:
    """An organisation's tokens, newest first (revoked and expired ones too); NotFound for an
    unknown organisation."""
    organisations.get(session=session, code=org_code)
    return token_repo.list_for(session=session, org_code=org_code)


def live_token(*, session: Session, token_id: str) -> Token | None:
    """The token with this id if it is still accepted (see ``is_live``), else None."""
    token = token_repo.get(session=session, token_id=token_id)
    return token if token is not None and is_live(token) else None


def bootstrap_admin_token(*, session: Session, admin_token: str | None) -> None:
    """Make ``admin_token`` (DRB_ADMIN_TOKEN) the bootstrap steward's token, at start-up.

    Every other active DRB_ADMIN_TOKEN of the bootstrap steward is revoked: changing the setting
    rotates the token, and unsetting it (None or blank) ends it. The new token and each
    revocation are audited with the actor "system" (the token's id, never the token).
    Idempotent: starting again with the same setting changes and records nothing. A token that
    was revoked (or is another organisation's) is refused: a revoked token never comes back.
    """
    token_repo.lock_for_bootstrap(session=session)  # processes starting together take turns
    digest = hash_token(admin_token) if admin_token else None
    reason = ROTATED if digest is not None else UNSET
    for old in token_repo.active_labelled(
        session=session, org_code=BOOTSTRAP_STEWARD, label=BOOTSTRAP_TOKEN_LABEL
    ):
        if old.token_hash != digest:
            _revoke(session=session, token=old, actor=SYSTEM_ACTOR, reason=reason)
    if digest is None:
        return
    existing = token_repo.by_hash(session=session, token_hash=digest)
    if existing is not None:
        if existing.org_code != BOOTSTRAP_STEWARD or existing.label != BOOTSTRAP_TOKEN_LABEL:
            raise AdminTokenRefused(
                "DRB_ADMIN_TOKEN is a token issued to an organisation: choose a new random one"
            )
        if existing.revoked_at is not None:
            raise AdminTokenRefused(
                "DRB_ADMIN_TOKEN was revoked and cannot be used again: choose a new random one"
            )
        return
    if org_repo.get(session=session, code=BOOTSTRAP_STEWARD) is None:
        organisations.register(
            session=session,
            code=BOOTSTRAP_STEWARD,
            name="Broker stewards (bootstrap)",
            kind=OrgKind.STEWARD,
            region=None,
            actor=SYSTEM_ACTOR,
        )
    _add_token(
        session=session,
        token=Token(
            org_code=BOOTSTRAP_STEWARD,
            token_hash=digest,
            label=BOOTSTRAP_TOKEN_LABEL,
            expires_at=None,
        ),
        actor=SYSTEM_ACTOR,
        action="token.bootstrapped",
    )
