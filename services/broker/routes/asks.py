"""Asks: a trust's consolidated list of returns to send."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.broker.dependencies import SessionDep, require
from services.broker.responses import AskOut
from services.catalogue import asks, auth
from services.catalogue.errors import Forbidden
from services.catalogue.repositories import asks as ask_repo
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
    today = date.today()
    body_code = None
    if caller.kind == OrgKind.TRUST:
        if org_code not in (None, caller.org_code):
            raise Forbidden("A trust sees only its own asks.")
        org_code = caller.org_code
    elif caller.kind == OrgKind.OVERSIGHT_BODY:
        body_code = caller.org_code
    rows = ask_repo.with_bodies(
        session=session,
        org_code=org_code,
        dataset_code=dataset,
        period=period,
        statuses=asks.stored_statuses(status) if status else None,
        body_code=body_code,
        limit=limit,
        offset=offset,
    )
    shown = [AskOut.of(asks.shown(ask, links, today=today)) for ask, links in rows]
    # Outstanding and overdue share a stored status; the due date tells them apart.
    return [a for a in shown if status is None or a.status == status]
