"""Queries on item_values: each accepted return's value of an item for its trust and month."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.catalogue.models import ItemValue, Submission
from services.catalogue.states import SubmissionStatus


def current(
    *,
    session: Session,
    item: str,
    dataset_codes: Iterable[str],
    periods: Sequence[str],
    org_codes: Sequence[str] | None,
) -> list[tuple[Any, ...]]:
    """(org_code, period, dataset_code, submission_id, data_path, held, value) of each accepted,
    not superseded return of these datasets and periods (and trusts, unless ``org_codes`` is
    None): one query. ``held`` is None where the return's value of ``item`` is not kept yet.

    Fetched as the driver's plain tuples: a national chart over 20 years reads 50,000 rows, and
    making result rows of them would take about half of the 0.5 s a chart may (bench/spc_values.py).
    """
    query = (
        select(
            Submission.org_code,
            Submission.period,
            Submission.dataset_code,
            Submission.id,
            Submission.data_path,
            ItemValue.held,
            ItemValue.value,
        )
        .outerjoin(
            ItemValue, and_(ItemValue.submission_id == Submission.id, ItemValue.item == item)
        )
        .where(
            Submission.status == SubmissionStatus.ACCEPTED,
            Submission.superseded_by_id.is_(None),
            Submission.dataset_code.in_(dataset_codes),
            Submission.period.in_(periods),
        )
    )
    if org_codes is not None:
        query = query.where(Submission.org_code.in_(org_codes))
    connection = session.connection()
    compiled = query.compile(bind=connection, compile_kwargs={"render_postcompile": True})
    params: Any = (
        tuple(compiled.params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else compiled.params
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def add(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert values, leaving any already there: two readers may fill the same return at once,
    and a return's values never change (a revision is another submission)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(ItemValue).on_conflict_do_nothing(), list(rows))


def lacking(*, session: Session) -> list[str]:
    """The ids of the accepted, not superseded returns with no value kept (accepted before
    item_values existed), oldest first."""
    kept = select(ItemValue.submission_id).where(ItemValue.submission_id == Submission.id)
    query = (
        select(Submission.id)
        .where(
            Submission.status == SubmissionStatus.ACCEPTED,
            Submission.superseded_by_id.is_(None),
            Submission.data_path.is_not(None),
            ~kept.exists(),
        )
        .order_by(Submission.received_at, Submission.id)
    )
    return list(session.scalars(query).all())
