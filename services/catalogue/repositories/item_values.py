"""Queries on item_values: each accepted return's value of an item for its trust and month."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.catalogue.models import ItemValue


def in_months(
    *, session: Session, item: str, first: str, last: str, org_codes: Sequence[str] | None
) -> Sequence[Row[str, bool, bool, float | None]]:
    """(submission_id, derived, held, value) of every return holding ``item`` in first..last
    (YYYY-MM, inclusive), of ``org_codes`` only when given: one query, whichever are current."""
    query = select(
        ItemValue.submission_id, ItemValue.derived, ItemValue.held, ItemValue.value
    ).where(ItemValue.item == item, ItemValue.month >= first, ItemValue.month <= last)
    if org_codes is not None:
        query = query.where(ItemValue.org_code.in_(org_codes))
    return session.execute(query).all()


def add(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert values, leaving any already there: two readers may fill the same return at once,
    and a return's values never change (a revision is another submission)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(ItemValue).on_conflict_do_nothing(), list(rows))
