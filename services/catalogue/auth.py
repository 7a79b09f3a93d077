"""Bearer tokens and roles: who is calling, and what their organisation's kind lets them do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from services.catalogue import audit, organisations
from services.catalogue.errors import Forbidden, Invalid, NotFound, ServiceUnavailable
from services.catalogue.models import Organisation, Token, utcnow
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import tokens as token_repo
from services.catalogue.states import OrgKind, TokenRole

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
    """The caller: an organisation acting through one of its tokens (with the token's roles)."""

    org_code: str
    kind: str
    token_id: str
    roles: tuple[str, ...] = ()


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
    return Principal(
        org_code=organisation.code,
        kind=organisation.kind,
        token_id=stored.id,
        roles=tuple(stored.roles or ()),
    )


def acting(session: Session, principal: Principal) -> Principal:
    """Bind the caller to its request's session, so that every event the session audits for it
    names the token it used (audit.bind_caller); the principal, unchanged."""
    audit.bind_caller(session, actor=principal.org_code, token_id=principal.token_id)
    return principal


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
    issuer: Principal,
    roles: Iterable[str] = (),
    label: str | None = None,
    expires_in_days: int = DEFAULT_TOKEN_TTL_DAYS,
) -> tuple[Token, str]:
    """A new token for an organisation, issued by a caller; the plain token is returned once.

    An organisation's admin token issues its tokens, with any roles. A steward issues only an
    organisation's *first* admin token, while it has no live one (the bootstrap): it never holds
    a second way into an organisation that has its own admin, so it cannot act as it unseen.
    Anyone else is Forbidden, with the reason.
    """
    organisation = organisations.get(session=session, code=org_code)
    org_repo.lock(session=session, code=org_code)  # two bootstraps at once make one admin
    wanted = _roles(roles)
    if issuer.org_code != org_code or TokenRole.ADMIN not in issuer.roles:
        if issuer.kind != OrgKind.STEWARD or _admins(session, org_code):
            raise Forbidden(_refusal(issuer, organisation))
        wanted = _roles([*wanted, TokenRole.ADMIN])  # the bootstrap: its first admin token
    return _issue(
        session=session,
        org_code=org_code,
        roles=wanted,
        label=label,
        expires_in_days=expires_in_days,
        actor=issuer.org_code,
        issued_by_token=issuer.token_id,
    )


def issue_system_token(
    *,
    session: Session,
    org_code: str,
    actor: str,
    roles: Iterable[str] = (TokenRole.ADMIN,),
    label: str | None = None,
    expires_in_days: int = DEFAULT_TOKEN_TTL_DAYS,
) -> tuple[Token, str]:
    """A token issued by the operator's own command (``drb seed-demo``), not over the API: no
    caller's token, and no rule but the operator's (who holds the database anyway). Audited
    with ``actor`` and no token."""
    organisations.get(session=session, code=org_code)
    return _issue(
        session=session,
        org_code=org_code,
        roles=_roles(roles),
        label=label,
        expires_in_days=expires_in_days,
        actor=actor,
        issued_by_token=None,
    )


def _issue(
    *,
    session: Session,
    org_code: str,
    roles: list[str],
    label: str | None,
    expires_in_days: int,
    actor: str,
    issued_by_token: str | None,
) -> tuple[Token, str]:
    if not 1 <= expires_in_days <= MAX_TOKEN_TTL_DAYS:
        raise Invalid(
            f"A token lives 1 to {MAX_TOKEN_TTL_DAYS} days.",
            errors=[{"field": "expires_in_days", "message": f"1 to {MAX_TOKEN_TTL_DAYS}"}],
        )
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
            roles=roles,
            issued_by_org=actor,
            issued_by_token=issued_by_token,
        ),
        actor=actor,
        action="token.issued",
        token_id=issued_by_token,
    )
    return token, plain


def _roles(roles: Iterable[str]) -> list[str]:
    """Known roles, each once, in a stable order; Invalid names one that is not."""
    known = {role.value for role in TokenRole}
    unknown = sorted({str(role) for role in roles} - known)
    if unknown:
        raise Invalid(
            f"Unknown token role {unknown[0]!r}.",
            errors=[{"field": "roles", "message": f"each one of {', '.join(sorted(known))}"}],
        )
    return sorted({str(role) for role in roles})


def _admins(session: Session, org_code: str) -> list[Token]:
    """The organisation's live admin tokens."""
    now = utcnow()
    return [
        token
        for token in token_repo.list_for(session=session, org_code=org_code)
        if TokenRole.ADMIN in (token.roles or []) and is_live(token, now=now)
    ]


def _refusal(issuer: Principal, organisation: Organisation) -> str:
    """Why ``issuer`` may not issue ``organisation``'s tokens, in words it can act on."""
    code = organisation.code
    if issuer.org_code == code:
        return (
            f"Only an admin token of {code} issues {code}'s tokens; this token's roles are "
            f"{', '.join(issuer.roles) or 'none'}. Ask {code}'s admin."
        )
    if issuer.kind == OrgKind.STEWARD:
        return (
            f"{code} has a live admin token already, and its admin issues its tokens: a steward "
            f"issues only an organisation's first admin token. Ask {code}'s admin."
        )
    return f"A token of {issuer.org_code} cannot issue tokens for {code}."


def may_administer(principal: Principal, org_code: str) -> bool:
    """Whether ``principal`` may revoke ``org_code``'s tokens: its own admin, or a steward (a
    revocation only takes access away, and the organisation sees it)."""
    own_admin = principal.org_code == org_code and TokenRole.ADMIN in principal.roles
    return own_admin or principal.kind == OrgKind.STEWARD


def may_list(principal: Principal, org_code: str) -> bool:
    """Whether ``principal`` may see ``org_code``'s tokens (never the tokens themselves): the
    organisation itself, auditors and stewards."""
    return principal.org_code == org_code or principal.kind in (OrgKind.AUDITOR, OrgKind.STEWARD)


def _add_token(
    *, session: Session, token: Token, actor: str, action: str, token_id: str | None = None
) -> Token:
    """Store a new token and audit it (by its id, roles, label and expiry: never the token)."""
    session.add(token)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action=action,
        subject_type="organisation",
        subject_id=token.org_code,
        detail={
            "token_id": token.id,
            "roles": token.roles,
            "label": token.label,
            "expires_at": _iso(token.expires_at),
        },
        token_id=token_id,
    )
    return token


def _iso(moment: datetime | None) -> str | None:
    """A timestamp as ISO 8601 text for an audit detail (JSON holds no datetimes)."""
    return None if moment is None else moment.isoformat()


def _revoke(
    *,
    session: Session,
    token: Token,
    actor: str,
    reason: str | None = None,
    token_id: str | None = None,
) -> None:
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
        token_id=token_id,
    )


def revoke_token(*, session: Session, org_code: str, token_id: str, by: Principal) -> None:
    """Revoke one of an organisation's tokens (idempotent): by its admin or a steward."""
    organisations.get(session=session, code=org_code)
    if not may_administer(by, org_code):
        raise Forbidden(
            f"Only an admin token of {org_code}, or a steward, revokes {org_code}'s tokens."
        )
    token = token_repo.get(session=session, token_id=token_id)
    if token is None or token.org_code != org_code:
        raise NotFound(f"Organisation {org_code!r} has no token {token_id!r}.")
    if token.revoked_at is not None:
        return
    _revoke(session=session, token=token, actor=by.org_code, token_id=by.token_id)


def tokens_of(*, session: Session, org_code: str, viewer: Principal) -> list[Token]:
    """An organisation's tokens, newest first (revoked and expired ones too), for those who may
    see them (:func:`may_list`); NotFound for an unknown organisation."""
    organisations.get(session=session, code=org_code)
    if not may_list(viewer, org_code):
        raise Forbidden(f"{org_code}'s tokens are shown to {org_code}, auditors and stewards only.")
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
            roles=[TokenRole.ADMIN.value],
            issued_by_org=SYSTEM_ACTOR,
        ),
        actor=SYSTEM_ACTOR,
        action="token.bootstrapped",
    )
