"""Queries on asks (a return wanted of a trust: dataset, trust, period) and their links to the
requests that want them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Date,
    Row,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from services.catalogue.models import Ask, AskLink, DataRequest
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.states import AskStatus, RequestStatus


def get(*, session: Session, ask_id: str) -> Ask | None:
    """One ask."""
    return session.get(Ask, ask_id)


def by_key(
    *, session: Session, dataset_code: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Ask]:
    """Asks of a dataset by (org_code, period), for the given keys."""
    wanted = list(keys)
    found: dict[tuple[str, str], Ask] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(Ask).where(
            Ask.dataset_code == dataset_code, tuple_(Ask.org_code, Ask.period).in_(chunk)
        )
        for ask in session.scalars(query):
            found[(ask.org_code, ask.period)] = ask
    return found


def of_request(*, session: Session, request_id: str) -> Sequence[Ask]:
    """Every ask a request is (or was) linked to, in one query."""
    query = (
        select(Ask).join(AskLink, AskLink.ask_id == Ask.id).where(AskLink.request_id == request_id)
    )
    return session.scalars(query).all()


def with_bodies(
    *,
    session: Session,
    org_code: str | None,
    dataset_code: str | None,
    period: str | None,
    statuses: Sequence[str] | None,
    body_code: str | None,
    limit: int,
    offset: int,
) -> list[tuple[Ask, list[tuple[str, bool, list[str]]]]]:
    """Asks and the (body, active, items) of each of their links, by period and dataset."""
    query = select(Ask).order_by(Ask.period, Ask.dataset_code, Ask.org_code)
    if org_code is not None:
        query = query.where(Ask.org_code == org_code)
    if dataset_code is not None:
        query = query.where(Ask.dataset_code == dataset_code)
    if period is not None:
        query = query.where(Ask.period == period)
    if statuses is not None:
        query = query.where(Ask.status.in_(statuses))
    if body_code is not None:
        query = query.where(
            Ask.id.in_(
                select(AskLink.ask_id)
                .join(DataRequest, DataRequest.id == AskLink.request_id)
                .where(DataRequest.body_code == body_code)
            )
        )
    asks = list(session.scalars(query.limit(limit).offset(offset)))
    bodies: dict[str, list[tuple[str, bool, list[str]]]] = {a.id: [] for a in asks}
    ids = list(bodies)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(AskLink.ask_id, DataRequest.body_code, AskLink.active, AskLink.items)
            .join(DataRequest, DataRequest.id == AskLink.request_id)
            .where(AskLink.ask_id.in_(ids[start : start + 500]))
            .order_by(AskLink.linked_at, AskLink.seq)
        )
        for ask_id, body, active, items in rows:
            bodies[ask_id].append((body, bool(active), list(items)))
    return [(ask, bodies[ask.id]) for ask in asks]


def links_of(*, session: Session, ask_ids: Sequence[str]) -> dict[str, list[AskLink]]:
    """Every link of the given asks, in the order they were made."""
    found: dict[str, list[AskLink]] = {}
    for start in range(0, len(ask_ids), 500):
        query = (
            select(AskLink)
            .where(AskLink.ask_id.in_(ask_ids[start : start + 500]))
            .order_by(AskLink.linked_at, AskLink.seq)
        )
        for link in session.scalars(query):
            found.setdefault(link.ask_id, []).append(link)
    return found


def links_of_request(*, session: Session, request_id: str) -> Sequence[AskLink]:
    """Every link of one request."""
    return session.scalars(select(AskLink).where(AskLink.request_id == request_id)).all()


# An imposed share's place in the ledger: its ask's (period, dataset_code, org_code), then the
# link's seq (the order the ask's burden is shared out); unique, and served by the indexes
# ix_asks_period_dataset_org and ix_ask_links_ask_id_seq.
ImposedKey = tuple[str, str, str, int]
_Columns = TypeVarTuple("_Columns")
BREAKDOWN_COLUMNS = ("body", "trust", "dataset", "month")


def _imposing(
    query: Select[*_Columns],
    *,
    first: str | None,
    last: str | None,
    request_id: str | None,
    asks: bool = True,
) -> Select[*_Columns]:
    """``query`` over the active links that impose something (a return or minutes) of active
    requests, joined to their asks, for asks of months ``first`` to ``last`` (``YYYY-MM``,
    inclusive, which compare as text) and, given one, a single request's.

    The request's status is an EXISTS, not a join's filter: a join lets SQLite's planner start
    from the (few) active requests and sort every link, where the pages read the asks' index in
    order and stop at the page's end.
    """
    linked = aliased(DataRequest)  # the query may join the requests too (for their body)
    active = (
        select(linked.id)
        .where(linked.id == AskLink.request_id, linked.status == RequestStatus.ACTIVE)
        .correlate(AskLink)
        .exists()
    )
    query = query.select_from(AskLink).where(
        AskLink.active.is_(True),
        or_(AskLink.imposer.is_(True), AskLink.minutes_imposed != 0),
        active,
    )
    if asks or first is not None or last is not None:  # joined unless nothing reads them
        query = query.join(Ask, Ask.id == AskLink.ask_id)
    if first is not None:
        query = query.where(Ask.period >= first)
    if last is not None:
        query = query.where(Ask.period <= last)
    if request_id is not None:
        query = query.where(AskLink.request_id == request_id)
    return query


def _label(name: str) -> ColumnElement[str]:
    return cast(literal(name), String)


def imposed_by(
    *, session: Session, first: str | None, last: str | None
) -> list[tuple[str, str, int, float]]:
    """Returns and minutes imposed, summed per body, trust, dataset and month: ``(breakdown,
    key, returns, minutes)``, one row per key, in one statement (the links are read once)."""
    grouped = _imposing(
        select(
            DataRequest.body_code.label("body"),
            Ask.org_code.label("trust"),
            Ask.dataset_code.label("dataset"),
            Ask.period.label("month"),
            func.sum(case((AskLink.imposer.is_(True), 1), else_=0)).label("returns"),
            func.sum(AskLink.minutes_imposed).label("minutes"),
        ),
        first=first,
        last=last,
        request_id=None,
    ).join(DataRequest, DataRequest.id == AskLink.request_id)
    imposed = grouped.group_by(
        DataRequest.body_code, Ask.org_code, Ask.dataset_code, Ask.period
    ).cte("imposed")
    parts = [
        select(
            _label(name),
            imposed.c[name],
            func.sum(imposed.c.returns),
            func.sum(imposed.c.minutes),
        ).group_by(imposed.c[name])
        for name in BREAKDOWN_COLUMNS
    ]
    return [
        (breakdown, key, int(returns), float(minutes))
        for breakdown, key, returns, minutes in session.execute(union_all(*parts))
    ]


def imposed_count(
    *, session: Session, first: str | None, last: str | None, request_id: str | None
) -> int:
    """How many imposed shares :func:`imposed_page` pages through."""
    query = _imposing(
        select(func.count()), first=first, last=last, request_id=request_id, asks=False
    )
    return int(session.scalar(query) or 0)


def imposed_page(
    *,
    session: Session,
    first: str | None,
    last: str | None,
    request_id: str | None,
    after: ImposedKey | None = None,
    before: ImposedKey | None = None,
    limit: int,
) -> list[Row[str, str, str, str, str, bool, float, str, int]]:
    """Up to ``limit`` imposed shares in ledger order (:data:`ImposedKey`) after ``after``, or
    the last ``limit`` before ``before`` (then newest first): request_id, body_code,
    dataset_code, org_code, period, imposer, minutes_imposed, ask_id, seq."""
    query = _imposing(
        select(
            AskLink.request_id,
            DataRequest.body_code,
            Ask.dataset_code,
            Ask.org_code,
            Ask.period,
            AskLink.imposer,
            AskLink.minutes_imposed,
            Ask.id,
            AskLink.seq,
        ),
        first=first,
        last=last,
        request_id=request_id,
    ).join(DataRequest, DataRequest.id == AskLink.request_id)
    ask_key = tuple_(Ask.period, Ask.dataset_code, Ask.org_code)
    key = tuple_(Ask.period, Ask.dataset_code, Ask.org_code, AskLink.seq)
    order: list[Any] = [Ask.period, Ask.dataset_code, Ask.org_code, AskLink.seq]
    if after is not None:
        # The first condition is the index's range; the second the exact place in it.
        query = query.where(ask_key >= tuple_(*after[:3]), key > tuple_(*after))
    if before is not None:
        query = query.where(ask_key <= tuple_(*before[:3]), key < tuple_(*before))
        order = [column.desc() for column in order]
    if after is None and before is None:
        # The first page: a range on the index's first column, so that it is read in order too.
        query = query.where(Ask.period >= (first or ""))
    return list(session.execute(query.order_by(*order).limit(limit)))


class utc_day(FunctionElement[date]):
    """The UTC calendar day of a stored timestamp (SQLite keeps UTC text; PostgreSQL a
    ``timestamptz``, whose day depends on the session's time zone unless converted)."""

    type = Date()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day)
def _utc_day(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


def completeness_by(
    *, session: Session, first: str | None, last: str | None, today: date
) -> list[tuple[str, str, int, int, int, int, int]]:
    """Asks not cancelled of months ``first`` to ``last``, per trust and per dataset:
    ``(breakdown, key, asks, due, returned, on_time, overdue)``, one row per key. Due: by
    ``today``; returned: accepted, with an accepted submission; on time: its first accepted
    submission received (UTC day) by the due date; overdue: due and not returned."""
    received = submission_repo.first_accepted()
    returned = and_(Ask.status == AskStatus.ACCEPTED, received.c.received.is_not(None))
    flags = (
        select(
            Ask.org_code.label("trust"),
            Ask.dataset_code.label("dataset"),
            case((Ask.due_date <= today, 1), else_=0).label("due"),
            case((returned, 1), else_=0).label("returned"),
            case((and_(returned, utc_day(received.c.received) <= Ask.due_date), 1), else_=0).label(
                "on_time"
            ),
        )
        .select_from(Ask)
        .outerjoin(
            received,
            and_(
                received.c.org_code == Ask.org_code,
                received.c.dataset_code == Ask.dataset_code,
                received.c.period == Ask.period,
            ),
        )
        .where(Ask.status != AskStatus.CANCELLED)
    )
    if first is not None:
        flags = flags.where(Ask.period >= first)
    if last is not None:
        flags = flags.where(Ask.period <= last)
    each = flags.cte("flags")
    overdue = case((and_(each.c.due == 1, each.c.returned == 0), 1), else_=0)
    parts = [
        select(
            _label(name),
            each.c[name],
            func.count(),
            func.sum(each.c.due),
            func.sum(each.c.returned),
            func.sum(each.c.on_time),
            func.sum(overdue),
        ).group_by(each.c[name])
        for name in ("trust", "dataset")
    ]
    return [
        (breakdown, key, int(asks), int(due), int(back), int(on_time), int(late))
        for breakdown, key, asks, due, back, on_time, late in session.execute(union_all(*parts))
    ]


def set_status(
    *, session: Session, org_code: str, dataset_code: str, period: str, old: str, new: str
) -> None:
    """Move the ask of one return from ``old`` to ``new`` status, if it is in ``old``."""
    session.execute(
        update(Ask)
        .where(
            Ask.org_code == org_code,
            Ask.dataset_code == dataset_code,
            Ask.period == period,
            Ask.status == old,
        )
        .values(status=new)
    )


def insert_many(
    *, session: Session, asks: Sequence[dict[str, Any]], links: Sequence[dict[str, Any]]
) -> None:
    """New asks and links, in bulk (the asks first: the links refer to them)."""
    if asks:
        session.execute(insert(Ask), list(asks))
    session.flush()
    if links:
        session.execute(insert(AskLink), list(links))
