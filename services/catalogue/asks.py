"""Asks: the returns trusts must send, shared by every request that needs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from services.catalogue.burden import ReturnCost
from services.catalogue.errors import Forbidden
from services.catalogue.models import Ask, AskLink, new_id, utcnow
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.states import AskStatus, OrgKind

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


@dataclass(frozen=True)
class Shown:
    """An ask as its readers see it: its status today (an outstanding ask past its due date is
    overdue) and the bodies asking for it (those still asking; once none is, every one that
    did)."""

    ask: Ask
    status: str
    requested_by: list[str]


def shown(ask: Ask, links: list[tuple[str, bool, list[str]]], *, today: date) -> Shown:
    """The ask with its ``links`` (body, active, items) as its readers see it."""
    active = [body for body, is_active, _items in links if is_active]
    bodies = active or [body for body, _active, _items in links]
    return Shown(ask=ask, status=shown_status(ask, today=today), requested_by=sorted(set(bodies)))


# Who reads asks: a trust its own, an auditor every trust's, a body those its requests need.
READERS = (OrgKind.TRUST, OrgKind.AUDITOR, OrgKind.OVERSIGHT_BODY)


def visible(
    *,
    session: Session,
    org_code: str,
    kind: str,
    today: date,
    status: str | None = None,
    trust_code: str | None = None,
    dataset_code: str | None = None,
    period: str | None = None,
    limit: int,
    offset: int,
) -> list[Shown]:
    """The asks a caller may list, as shown ``today``, by period and dataset: a trust its own
    (naming another trust is Forbidden), an auditor every trust's or ``trust_code``'s, a body
    those its requests need (of ``trust_code``, if given)."""
    if kind not in READERS:
        raise Forbidden(f"Asks are read by trusts, auditors and oversight bodies, not {kind}.")
    body_code = None
    if kind == OrgKind.TRUST:
        if trust_code not in (None, org_code):
            raise Forbidden("A trust sees only its own asks.")
        trust_code = org_code
    elif kind == OrgKind.OVERSIGHT_BODY:
        body_code = org_code
    rows = ask_repo.with_bodies(
        session=session,
        org_code=trust_code,
        dataset_code=dataset_code,
        period=period,
        statuses=stored_statuses(status) if status else None,
        body_code=body_code,
        limit=limit,
        offset=offset,
    )
    listed = [shown(ask, links, today=today) for ask, links in rows]
    # Outstanding and overdue share a stored status; the due date tells them apart.
    return [a for a in listed if status is None or a.status == status]


@dataclass(frozen=True)
class Wanted:
    """One return a request needs of a trust: the dataset's items in it, and when it is due."""

    org_code: str
    period: str
    items: list[str]
    due_date: date


def impose(
    *,
    session: Session,
    request_id: str,
    dataset: str,
    wanted: Sequence[Wanted],
    cost: ReturnCost,
    now: datetime,
) -> int:
    """Ask for returns nobody has asked for yet, the request bearing each one's whole burden.

    An ask cancelled earlier and needed again is reopened, never duplicated. Inserted in bulk: a
    request may ask for hundreds of thousands of returns. The number of asks imposed.
    """
    existing = ask_repo.by_key(
        session=session, dataset_code=dataset, keys=[(w.org_code, w.period) for w in wanted]
    )
    new_rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    for want in wanted:
        ask = existing.get((want.org_code, want.period))
        if ask is None:
            ask_id = new_id()
            new_rows.append(
                {
                    "id": ask_id,
                    "dataset_code": dataset,
                    "org_code": want.org_code,
                    "period": want.period,
                    "due_date": want.due_date,
                    "items": want.items,
                    "status": AskStatus.OUTSTANDING,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        else:  # cancelled earlier and needed again: reopened
            ask_id = ask.id
            ask.status, ask.items, ask.due_date, ask.updated_at = (
                AskStatus.OUTSTANDING,
                want.items,
                want.due_date,
                now,
            )
        link_rows.append(
            {
                "ask_id": ask_id,
                "request_id": request_id,
                "role": "collects",
                "items": want.items,
                "due_date": want.due_date,
                "active": True,
                "imposer": True,
                "minutes_imposed": cost.minutes(items=len(want.items)),
                "seq": 0,
                "linked_at": now,
            }
        )
    ask_repo.insert_many(session=session, asks=new_rows, links=link_rows)
    return len(link_rows)


def join(
    *,
    session: Session,
    request_id: str,
    dataset: str,
    role: str,
    wanted: Sequence[Wanted],
    cost: ReturnCost,
    now: datetime,
) -> int:
    """Link the request to open asks that deliver (``collects``) or let it derive (``derives``)
    what it wants, and share each ask's burden again. The number of asks joined."""
    existing = ask_repo.by_key(
        session=session, dataset_code=dataset, keys=[(w.org_code, w.period) for w in wanted]
    )
    links = ask_repo.links_of(session=session, ask_ids=[a.id for a in existing.values()])
    joined = 0
    for want in wanted:
        ask = existing.get((want.org_code, want.period))
        if ask is None:
            continue
        link = AskLink(
            ask_id=ask.id,
            request_id=request_id,
            role=role,
            items=want.items,
            due_date=want.due_date,
            active=True,
            seq=len(links.get(ask.id, [])),
            linked_at=now,
        )
        session.add(link)
        attribute(ask, [*links.get(ask.id, []), link], cost=cost)
        joined += 1
    return joined
