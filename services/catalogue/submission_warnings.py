"""Warnings at submission time: a value far outside the trust's own history of the item.

When a monthly return is accepted, each item it carries is charted for the trust as Making Data
Count would (services/catalogue/spc.py), over the trust's own earlier months held (at least
MIN_HISTORY, at most MAX_HISTORY): the limits come from those months alone, and a value of the
new month outside them (special cause, ``outside_limits``) is a warning on the submission. A
warning never rejects: it catches a typing error (an extra zero) before a body sees it, and a real
change still goes through.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

import schemas
from services.catalogue import extracts, indicators, spc
from services.catalogue.models import Submission
from services.catalogue.periods import parse_month
from services.catalogue.settings import Settings

log = logging.getLogger(__name__)

MIN_HISTORY = 12  # earlier months needed before a value is judged (Making Data Count's minimum)
MAX_HISTORY = 24  # the most recent earlier months used as the baseline


def _items_of(dataset_code: str) -> list[str]:
    """The items a monthly dataset carries as columns (the ones a return holds values of)."""
    dataset = schemas.DATASETS.get(dataset_code)
    if dataset is None or dataset.period_type != "month":
        return []
    return [item for item in dataset.items if item in schemas.ITEMS]


def _held_before(
    session: Session, settings: Settings, items: list[str], org_code: str, month: int
) -> int:
    """How many of the MAX_HISTORY months before ``month`` hold any of the items for the trust
    (one plan for all of a return's items: they come from the same returns)."""
    found = extracts.plan(
        session=session,
        settings=settings,
        org_codes=[org_code],
        months=list(range(month - MAX_HISTORY, month)),
        items=items,
    )
    return len({source.month for source in found.sources})


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def warnings_for(
    *, session: Session, settings: Settings, submission: Submission
) -> list[dict[str, Any]]:
    """The accepted ``submission``'s warnings: ``[{item, period, org_code, value, mean, upl,
    lpl, message}]``, [] when nothing stands out or the history is too short."""
    month = parse_month(submission.period)
    found: list[dict[str, Any]] = []
    scope = indicators.Scope(org_level="trust", org_codes=(submission.org_code,))
    items = _items_of(submission.dataset_code)
    if (
        not items
        or _held_before(session, settings, items, submission.org_code, month) < MIN_HISTORY
    ):
        return []
    for item in items:
        series = indicators.monthly_series(
            session=session,
            settings=settings,
            item=item,
            scope=scope,
            first=month - MAX_HISTORY,
            last=month,
        )
        history = [p for p in series.points if p.period != submission.period]
        now = [p for p in series.points if p.period == submission.period]
        if len(history) < MIN_HISTORY or not now:
            continue
        chart = spc.chart([*history, now[0]], fix_after_n_points=len(history))
        last = chart.points[-1]
        if last.rule != "outside_limits":
            continue
        above = last.value > last.upl
        limit = last.upl if above else last.lpl
        label = schemas.ITEMS[item].name
        found.append(
            {
                "item": item,
                "period": submission.period,
                "org_code": submission.org_code,
                "value": last.value,
                "mean": last.mean,
                "upl": last.upl,
                "lpl": last.lpl,
                "message": (
                    f"{label} ({item}) is {_number(last.value)} in {submission.period}: "
                    f"{'above the upper' if above else 'below the lower'} process limit "
                    f"({_number(limit)}) of the trust's {len(history)} earlier months "
                    f"(mean {_number(last.mean)}). Check it is right (an extra or a missing "
                    "digit?); the return is accepted, and a corrected file can be sent again."
                ),
            }
        )
    return found


def message_without_values(warning: dict[str, Any]) -> dict[str, Any]:
    """A warning as an auditor sees it: which item and month stand out, never the figures."""
    side = "above" if warning["value"] > warning["upl"] else "below"
    return {
        **warning,
        "value": None,
        "mean": None,
        "upl": None,
        "lpl": None,
        "message": (
            f"{warning['item']} in {warning['period']} is {side} the process limits of the "
            "trust's earlier months (special cause variation)."
        ),
    }
