"""Registering organisations: trusts, oversight bodies, auditors and stewards."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.catalogue import audit, coverage_index
from services.catalogue.errors import AlreadyExists, Invalid
from services.catalogue.models import ORGANISATION_KINDS, Organisation
from services.catalogue.regions import REGIONS
from services.catalogue.repositories import organisations as org_repo


def register(
    *,
    session: Session,
    code: str,
    name: str,
    kind: str,
    region: str | None,
    actor: str,
) -> Organisation:
    """Register a new organisation; its code must be new and a trust's region known."""
    if kind not in ORGANISATION_KINDS:
        raise Invalid(
            f"Unknown kind {kind!r}.",
            [{"field": "kind", "message": f"must be one of {', '.join(ORGANISATION_KINDS)}"}],
        )
    if region is not None and region not in REGIONS:
        raise Invalid(
            f"Unknown region {region!r}.",
            [{"field": "region", "message": f"must be one of {', '.join(REGIONS)}"}],
        )
    if org_repo.get(session=session, code=code) is not None:
        raise AlreadyExists(f"An organisation with the code {code!r} exists already.")
    organisation = Organisation(code=code, name=name, kind=kind, region=region)
    session.add(organisation)
    session.flush()
    coverage_index.bump(session=session, key=coverage_index.ORGANISATIONS_KEY)
    audit.record(
        session=session,
        actor=actor,
        action="organisation.registered",
        subject_type="organisation",
        subject_id=code,
        detail={"kind": kind, "region": region},
    )
    return organisation
