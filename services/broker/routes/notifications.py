"""Notifications: the deadline reminders and daily summaries the broker has sent."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.broker.dependencies import SessionDep, require
from services.broker.responses import NotificationOut
from services.catalogue import auth, reminders
from services.catalogue.states import NotificationKind, OrgKind

router = APIRouter(tags=["notifications"])

ReaderDep = Annotated[
    auth.Principal,
    Depends(require(OrgKind.TRUST, OrgKind.OVERSIGHT_BODY, OrgKind.AUDITOR, OrgKind.STEWARD)),
]


@router.get(
    "/v1/notifications",
    summary="Reminders and summaries sent: a trust's or a body's own; every one for auditors",
    response_model_exclude_unset=True,
)
def list_notifications(
    session: SessionDep,
    caller: ReaderDep,
    org_code: str | None = None,
    day: date | None = None,
    kind: NotificationKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[NotificationOut]:
    """Newest first: `{id, org_code, kind, day, channel, target, status, message_id, subject,
    body, asks: [{dataset, period, org_code, due_date, overdue, days_left, requested_by}],
    attempts, created_at, sent_at}`; status is `sending`, `sent`, `failed` (tried again on the
    next pass, with a plain `message`) or `cancelled`. A trust or a body sees its own (another
    `org_code` is a 403); auditors and stewards every one, and stewards also where a file went
    and a failure's `error`."""
    shown = reminders.visible(
        session=session,
        caller_kind=caller.kind,
        caller_code=caller.org_code,
        org_code=org_code,
        day=day,
        kind=kind,
        limit=limit,
        offset=offset,
    )
    return [NotificationOut.model_validate(notification) for notification in shown]
