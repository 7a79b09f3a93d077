"""Asks: a trust's consolidated list of returns to send."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.broker.dependencies import SessionDep, require
from services.broker.responses import AskOut
from services.catalogue import asks, auth
from services.catalogue.states import AskStatus, OrgKind

router = APIRouter(tags=["asks"])

AskReaderDep = Annotated[
    auth.Principal, Depends(require(OrgKind.TRUST, OrgKind.AUDITOR, OrgKind.OVERSIGHT_BODY))
]


@router.get("/v1/asks", summary="The returns asked of a trust, one per dataset and period")
def list_asks(
    session: SessionDep,
    caller: AskReaderDep,
    status: AskStatus | None = None,
    dataset: str | None = None,
    period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = None,
    org_code: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[AskOut]:
    """A trust sees its own asks; an auditor every trust's (``org_code`` to filter);
    a body the asks its requests need."""
    shown = asks.visible(
        session=session,
        org_code=caller.org_code,
        kind=caller.kind,
        today=date.today(),
        status=status,
        trust_code=org_code,
        dataset_code=dataset,
        period=period,
        limit=limit,
        offset=offset,
    )
    return [AskOut.of(ask) for ask in shown]
