"""Registering organisations: trusts, oversight bodies, auditors and stewards."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from services.catalogue import audit, coverage_index
from services.catalogue.channels import ChannelMisconfigured, checked_file_uri, is_email_address
from services.catalogue.errors import AlreadyExists, Invalid, NotFound
from services.catalogue.models import ORGANISATION_KINDS, Organisation
from services.catalogue.regions import REGIONS
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.settings import Settings
from services.catalogue.states import OrgKind


def get(*, session: Session, code: str) -> Organisation:
    """The organisation with ODS code ``code``; NotFound if none has it."""
    organisation = org_repo.get(session=session, code=code)
    if organisation is None:
        raise NotFound(f"No organisation has the code {code!r}.")
    return organisation


def listed(
    *, session: Session, kind: OrgKind | None = None, region: str | None = None
) -> Sequence[Organisation]:
    """Every registered organisation by code, optionally of one kind and region (any role may
    list them)."""
    return org_repo.list_all(session=session, kind=kind, region=region)


def names(*, session: Session, kind: OrgKind | None = None) -> dict[str, str]:
    """Organisations' names by code, optionally of one kind."""
    return {o.code: o.name for o in org_repo.list_all(session=session, kind=kind)}


def name_of(*, session: Session, code: str) -> str:
    """The organisation's name, or its code if it is not registered."""
    organisation = org_repo.get(session=session, code=code)
    return organisation.name if organisation is not None else code


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


CHANNELS = ("files", "mesh", "email", "api")
# Who has a delivery setting: bodies (extracts and their daily summary), trusts (reminders).
RECEIVERS = (OrgKind.OVERSIGHT_BODY, OrgKind.TRUST)


def set_delivery(
    *,
    session: Session,
    settings: Settings,
    code: str,
    delivery: dict[str, str] | None,
    actor: str,
) -> Organisation:
    """Set how an organisation is reached (None: files under the data dir): an oversight body's
    extracts and daily summary, a trust's reminders. ``email`` carries notifications only (a
    body with it downloads its extracts over the API). A ``files`` URI must be one the
    operator's settings allow (channels.checked_file_uri): Invalid says why not."""
    organisation = get(session=session, code=code)
    if organisation.kind not in RECEIVERS:
        raise Invalid(
            f"{code} is a {organisation.kind}; only oversight bodies and trusts are sent anything."
        )
    if delivery is not None:
        channel = delivery.get("channel")
        errors: list[dict[str, object]] = []
        if channel not in CHANNELS:
            errors.append({"field": "channel", "message": f"one of {', '.join(CHANNELS)}"})
        elif channel == "files":
            try:
                uri = checked_file_uri(str(delivery.get("uri") or ""), settings=settings)
            except ChannelMisconfigured as refused:
                errors.append({"field": "uri", "message": f"a file:// or s3:// URI: {refused}"})
            else:
                delivery = {**delivery, "uri": uri}
        elif channel == "mesh" and not delivery.get("mailbox"):
            errors.append({"field": "mailbox", "message": "the organisation's MESH mailbox id"})
        elif channel == "email" and not is_email_address(str(delivery.get("address", ""))):
            errors.append({"field": "address", "message": "an e-mail address"})
        if errors:
            raise Invalid("The delivery channel is not valid.", errors)
    organisation.delivery = delivery
    audit.record(
        session=session,
        actor=actor,
        action="organisation.delivery_set",
        subject_type="organisation",
        subject_id=code,
        detail={"delivery": delivery},
    )
    return organisation
