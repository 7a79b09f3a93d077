"""Asks: the returns trusts must send, shared by every request that needs them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from services.catalogue.burden import ReturnCost
from services.catalogue.models import Ask, AskLink, utcnow
from services.catalogue.states import AskStatus

# What the API shows; `overdue` is an outstanding ask past its due date.
ASK_STATUSES = tuple(AskStatus)


def shown_status(ask: Ask, *, today: date) -> str:
    """The status the API shows, with overdue worked out from the due date."""
    if ask.status == AskStatus.OUTSTANDING and ask.due_date < today:
        return AskStatus.OVERDUE
    return ask.status


def stored_statuses(status: str) -> list[str]:
    """The stored statuses behind a shown status (for filtering)."""
    return [AskStatus.OUTSTANDING] if status == AskStatus.OVERDUE else [status]


def attribute(ask: Ask, links: Sequence[AskLink], *, cost: ReturnCost) -> None:
    """Share the ask's burden among its active links and update its items and due date.

    The earliest active link that collects the return imposes it (base minutes plus its items);
    each later one bears only the items it added. An ask no active request needs is cancelled,
    unless the trust has already sent it.
    """
    active = [link for link in links if link.active]
    seen: set[str] = set()
    imposer_found = False
    for link in links:
        link.imposer = False
        link.minutes_imposed = 0.0
    for link in active:
        if link.role != "collects":
            continue
        added = [item for item in link.items if item not in seen]
        seen.update(link.items)
        if not imposer_found:
            link.imposer = True
            imposer_found = True
            link.minutes_imposed = cost.minutes(items=len(added))
        else:
            link.minutes_imposed = cost.added(len(added))
    if active:
        ask.items = sorted(seen) or ask.items
        ask.due_date = min(link.due_date for link in active)
    elif ask.status == AskStatus.OUTSTANDING:
        ask.status = AskStatus.CANCELLED
    ask.updated_at = utcnow()


def as_dict(ask: Ask, links: list[tuple[str, bool, list[str]]], *, today: date) -> dict[str, Any]:
    """The JSON shape of API.md for one ask."""
    active = [(body, items) for body, is_active, items in links if is_active]
    shown = active or [(body, items) for body, _active, items in links]
    return {
        "id": ask.id,
        "org_code": ask.org_code,
        "dataset": ask.dataset_code,
        "period": ask.period,
        "due_date": ask.due_date.isoformat(),
        "status": shown_status(ask, today=today),
        "requested_by": sorted({body for body, _items in shown}),
        "items": sorted(ask.items),
        "created_at": ask.created_at.isoformat(),
    }
