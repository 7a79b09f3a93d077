"""Organisations (stewards register them) and their tokens (each organisation's admin issues
them; a steward only an organisation's first admin token)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.broker.dependencies import PrincipalDep, RuntimeDep, SessionDep, StewardDep
from services.broker.responses import DeliverySet, OrganisationOut, TokenInfo, TokenIssued
from services.catalogue import auth, organisations
from services.catalogue.regions import REGIONS
from services.catalogue.states import OrgKind, TokenRole

router = APIRouter(tags=["organisations"])


class OrganisationIn(BaseModel):
    """A new organisation."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9-]{1,15}$",
        description="ODS code (upper case letters, digits, hyphens).",
        examples=["RJ1"],
    )
    name: str = Field(min_length=1, max_length=200)
    kind: OrgKind
    region: str | None = Field(
        default=None, max_length=16, description=f"NHS England region code: {', '.join(REGIONS)}."
    )


class TokenIn(BaseModel):
    """Options for a new token."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200, examples=["data team laptop"])
    roles: list[TokenRole] = Field(
        default_factory=list,
        max_length=len(TokenRole),
        description="admin: issues and revokes the organisation's tokens. A steward's token for"
        " an organisation (its first admin token) is always an admin token.",
        examples=[["admin"]],
    )
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=auth.MAX_TOKEN_TTL_DAYS,
        description="Days until the token is refused; unset: DRB_TOKEN_TTL_DAYS (90).",
        examples=[30],
    )


@router.post(
    "/v1/organisations",
    status_code=status.HTTP_201_CREATED,
    summary="Register an organisation (steward)",
    responses={409: {"description": "The code exists already."}},
)
def register_organisation(
    body: OrganisationIn, session: SessionDep, steward: StewardDep
) -> OrganisationOut:
    """Register a trust, oversight body, auditor or steward."""
    organisation = organisations.register(
        session=session,
        code=body.code,
        name=body.name,
        kind=body.kind,
        region=body.region,
        actor=steward.org_code,
    )
    return OrganisationOut.of(organisation)


@router.get("/v1/organisations", summary="List organisations (any role)")
def list_organisations(
    session: SessionDep,
    _caller: PrincipalDep,
    kind: OrgKind | None = None,
    region: str | None = None,
) -> list[OrganisationOut]:
    """Every registered organisation, optionally of one kind or region."""
    rows = organisations.listed(session=session, kind=kind, region=region)
    return [OrganisationOut.of(row) for row in rows]


@router.get("/v1/organisations/{code}", summary="One organisation (any role)")
def get_organisation(code: str, session: SessionDep, _caller: PrincipalDep) -> OrganisationOut:
    """One organisation by ODS code."""
    return OrganisationOut.of(organisations.get(session=session, code=code))


@router.post(
    "/v1/organisations/{code}/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Issue a token for an organisation (its admin; a steward: its first admin token)",
    responses={
        403: {
            "description": "Not this organisation's admin, nor a steward bootstrapping"
            " an organisation with no live admin token."
        }
    },
)
def issue_token(
    code: str,
    session: SessionDep,
    runtime: RuntimeDep,
    caller: PrincipalDep,
    body: TokenIn | None = None,
) -> TokenIssued:
    """A new bearer token; the response is the only time it is shown. It expires. The issue is
    audited (who issued it, with which token) and listed to the organisation."""
    days = body.expires_in_days if body else None
    token, plain = auth.issue_token(
        session=session,
        org_code=code,
        issuer=caller,
        roles=body.roles if body else (),
        label=body.label if body else None,
        expires_in_days=days or runtime.settings.token_ttl_days,
    )
    return TokenIssued(
        id=token.id,
        token=plain,
        org_code=code,
        label=token.label,
        roles=list(token.roles),
        created_at=token.created_at,
        expires_at=token.expires_at,
    )


@router.get(
    "/v1/organisations/{code}/tokens",
    summary="List an organisation's tokens (that organisation, auditors, stewards)",
)
def list_tokens(code: str, session: SessionDep, caller: PrincipalDep) -> list[TokenInfo]:
    """Token metadata, newest first, with who issued each: never the tokens themselves."""
    return [TokenInfo.of(t) for t in auth.tokens_of(session=session, org_code=code, viewer=caller)]


@router.delete(
    "/v1/organisations/{code}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token (the organisation's admin, or a steward)",
)
def revoke_token(code: str, token_id: str, session: SessionDep, caller: PrincipalDep) -> Response:
    """Revoke a token at once; calls with it get 401 from then on."""
    auth.revoke_token(session=session, org_code=code, token_id=token_id, by=caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class DeliveryIn(BaseModel):
    """How an oversight body receives its extracts and daily summary, or a trust its reminders."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["files", "mesh", "email", "api"]
    uri: str | None = Field(default=None, max_length=1024, examples=["s3://bucket/extracts/CQC"])
    mailbox: str | None = Field(default=None, max_length=64, examples=["X26CQC001"])
    workflow_id: str | None = Field(default=None, max_length=64, examples=["DRB_EXTRACT"])
    address: str | None = Field(
        default=None, max_length=254, examples=["data.returns@example.nhs.uk"]
    )


@router.put(
    "/v1/organisations/{code}/delivery",
    summary="Set an oversight body's or a trust's delivery channel (steward)",
)
def set_delivery(
    code: str, body: DeliveryIn, session: SessionDep, runtime: RuntimeDep, steward: StewardDep
) -> DeliverySet:
    """files (a folder or S3 URI the operator allows: DRB_DELIVERY_FILE_ROOTS,
    DRB_DELIVERY_S3_ENDPOINTS; no credentials), mesh (a MESH mailbox), email (an address:
    notifications only) or api (download and read over the API only). A body's extracts and
    daily summary go there; a trust's deadline reminders."""
    delivery = body.model_dump(exclude_none=True)
    organisation = organisations.set_delivery(
        session=session,
        settings=runtime.settings,
        code=code,
        delivery=delivery,
        actor=steward.org_code,
    )
    return DeliverySet(code=organisation.code, delivery=organisation.delivery)
