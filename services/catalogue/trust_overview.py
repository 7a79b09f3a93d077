"""One trust at a glance: its asks, its recent returns and its indicators as SPC charts.

What each viewer may see (the same entitlements as the API):

- a trust: its own page only; every ask, its returns with their values, every item it holds;
- an auditor: any trust's page; returns and warnings without figures (as ``GET
  /v1/submissions`` gives them), every item held;
- an oversight body: the trusts its *active* requests name; the asks its requests need, no
  returns (the submissions API is not theirs), and charts only of the items and months its
  trust-level monthly requests cover (``indicators.authorise``), ranked among those requests'
  trusts only.

Where a trust stands: the latest month of its chart, ranked among the trusts holding that month
(best first by the item's direction of improvement, or highest first when neutral). Only the
position and the count are shown, never another trust's value. Every chart shown is audited as
``indicator.read``, as the API's are; errors shown as ``submission.errors_read``; the reminders
sent to the trust (the trust and auditors only) as ``notifications.read``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

import schemas
from services.catalogue import asks, audit, indicators, reminders, spc, submissions
from services.catalogue.asks import Shown as ShownAsk
from services.catalogue.errors import Forbidden, NotFound
from services.catalogue.models import DataRequest, Organisation, Submission
from services.catalogue.periods import month_label, parse, parse_month
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.settings import Settings
from services.catalogue.states import AskStatus, NotificationKind, OrgKind, SubmissionStatus
from services.catalogue.submissions import ShownError

CHART_MONTHS = 36  # the longest chart: three years up to the latest month held
RECENT_SUBMISSIONS = 12
RECENT_REMINDERS = 5
ERRORS_SHOWN = 5  # a rejected return's first errors; the API has all of them
VIEWER_KINDS = (OrgKind.TRUST, OrgKind.OVERSIGHT_BODY, OrgKind.AUDITOR)


@dataclass(frozen=True)
class Standing:
    """Where the trust's latest month stands among the trusts holding it."""

    period: str
    rank: int
    of: int
    order: str  # "best first" words: "lowest first" / "highest first"
    among: str  # which trusts: "all trusts" or "the trusts of your requests"


@dataclass(frozen=True)
class IndicatorChart:
    item: str
    name: str
    unit: str
    direction: spc.Direction
    chart: spc.Chart
    missing: list[str]
    standing: Standing | None
    target: float | None


@dataclass(frozen=True)
class NotCharted:
    """An item the viewer asked about but may not (or cannot) chart, and why."""

    item: str
    name: str
    reason: str


@dataclass(frozen=True)
class RecentReturn:
    """A return sent, with the first errors of a rejected one as the viewer may see them."""

    submission: Submission
    errors: list[ShownError]


@dataclass
class Overview:
    organisation: Organisation
    viewer_kind: str
    asks: list[ShownAsk] = field(default_factory=list)
    submissions: list[RecentReturn] | None = None  # None: not the viewer's to see
    submission_counts: dict[str, int] = field(default_factory=dict)
    charts: list[IndicatorChart] = field(default_factory=list)
    not_charted: list[NotCharted] = field(default_factory=list)
    reminders: list[dict[str, Any]] | None = None  # None: not the viewer's to see

    @property
    def overdue(self) -> int:
        return sum(1 for ask in self.asks if ask.status == AskStatus.OVERDUE)

    @property
    def outstanding(self) -> int:
        return sum(1 for ask in self.asks if ask.status == AskStatus.OUTSTANDING)


def _reminders(session: Session, code: str, *, viewer: str, kind: str) -> list[dict[str, Any]]:
    """The latest reminders sent to the trust, as ``GET /v1/notifications`` shows them to the
    viewer (the trust itself or an auditor), audited as that read is."""
    return reminders.visible(
        session=session,
        caller_kind=kind,
        caller_code=viewer,
        org_code=code,
        day=None,
        kind=NotificationKind.TRUST_REMINDER,
        limit=RECENT_REMINDERS,
        offset=0,
    )


def visible_trusts(*, session: Session, kind: str, org_code: str) -> list[Organisation]:
    """The trusts whose page the viewer may open, by name."""
    if kind == OrgKind.TRUST:
        own = org_repo.get(session=session, code=org_code)
        return [own] if own is not None else []
    trusts = org_repo.list_all(session=session, kind=OrgKind.TRUST)
    if kind == OrgKind.AUDITOR:
        return sorted(trusts, key=lambda o: o.name)
    if kind == OrgKind.OVERSIGHT_BODY:
        named: set[str] = set()
        for request in request_repo.active(session=session, body_code=org_code):
            named.update(request.org_codes)
        return sorted((o for o in trusts if o.code in named), key=lambda o: o.name)
    return []


def build(
    *,
    session: Session,
    settings: Settings,
    kind: str,
    viewer: str,
    code: str,
    today: date,
    targets: dict[str, float] | None = None,
) -> Overview:
    """The page's figures for trust ``code`` as ``viewer`` (a ``kind``) may see them.

    NotFound for an unknown trust; Forbidden when the viewer may not see it (a trust is told
    only that it sees its own page; a body, that none of its active requests names the trust).
    """
    organisation = org_repo.get(session=session, code=code)
    if organisation is None or organisation.kind != OrgKind.TRUST:
        raise NotFound(f"There is no NHS trust with the code {code!r}.")
    requests: Sequence[DataRequest] = ()
    if kind == OrgKind.TRUST and code != viewer:
        raise Forbidden("A trust sees its own page only.")
    if kind == OrgKind.OVERSIGHT_BODY:
        requests = [
            r for r in request_repo.active(session=session, body_code=viewer) if code in r.org_codes
        ]
        if not requests:
            raise Forbidden(f"None of {viewer}'s active requests names {code}.")
    elif kind not in VIEWER_KINDS:
        raise Forbidden(f"Trust pages are for trusts, oversight bodies and auditors, not {kind}.")
    overview = Overview(organisation=organisation, viewer_kind=kind)
    overview.asks = _open_asks(
        session, code, body=viewer if kind == OrgKind.OVERSIGHT_BODY else None, today=today
    )
    if kind in (OrgKind.TRUST, OrgKind.AUDITOR):
        _add_submissions(
            session, overview, viewer=viewer, with_values=submissions.shows_values(kind)
        )
        overview.reminders = _reminders(session, code, viewer=viewer, kind=kind)
    _add_charts(
        session,
        settings,
        overview,
        kind=kind,
        viewer=viewer,
        requests=requests,
        targets=targets or {},
    )
    return overview


def _open_asks(session: Session, code: str, *, body: str | None, today: date) -> list[ShownAsk]:
    """Outstanding and overdue asks of the trust (a body: those its requests need), by due date."""
    rows = ask_repo.with_bodies(
        session=session,
        org_code=code,
        dataset_code=None,
        period=None,
        statuses=asks.stored_statuses(AskStatus.OUTSTANDING),
        body_code=body,
        limit=10_000,
        offset=0,
    )
    shown = [asks.shown(ask, links, today=today) for ask, links in rows]
    return sorted(shown, key=lambda a: (a.ask.due_date, a.ask.period, a.ask.dataset_code))


def _add_submissions(
    session: Session, overview: Overview, *, viewer: str, with_values: bool
) -> None:
    code = overview.organisation.code
    counts = submission_repo.status_counts(session=session, org_code=code)
    overview.submission_counts = {status: counts.get(status, 0) for status in SubmissionStatus}
    recent = submission_repo.list_filtered(
        session=session,
        org_code=code,
        dataset_code=None,
        period=None,
        status=None,
        limit=RECENT_SUBMISSIONS,
        offset=0,
    )
    shown: list[RecentReturn] = []
    for submission in recent:
        errors: list[ShownError] = []
        if submission.status == SubmissionStatus.REJECTED:
            errors = submissions.shown_errors(
                session=session, submission=submission, with_value=with_values
            )[:ERRORS_SHOWN]
            # Errors quote the file's cells: reading them on a page is traced as over the API.
            audit.record(
                session=session,
                actor=viewer,
                action="submission.errors_read",
                subject_type="submission",
                subject_id=submission.id,
                detail={
                    "with_values": with_values,
                    "format": "page",
                    "errors": len(errors),
                },
            )
        shown.append(RecentReturn(submission=submission, errors=errors))
    overview.submissions = shown


def _items_held(session: Session, code: str) -> tuple[list[str], str | None]:
    """The items of the monthly datasets the trust has sent accepted returns of (catalogue
    order), and its latest month accepted."""
    monthly = [d.code for d in schemas.DATASETS.values() if d.period_type == "month"]
    datasets, latest = submission_repo.accepted_summary(
        session=session, org_code=code, dataset_codes=monthly
    )
    items = [i for i in schemas.ITEMS if any(i in schemas.DATASETS[d].items for d in datasets)]
    return items, latest


def _add_charts(
    session: Session,
    settings: Settings,
    overview: Overview,
    *,
    kind: str,
    viewer: str,
    requests: Sequence[DataRequest],
    targets: dict[str, float],
) -> None:
    code = overview.organisation.code
    held, latest = _items_held(session, code)
    if kind == OrgKind.OVERSIGHT_BODY:
        wanted = [item for item in schemas.ITEMS if any(item in r.items for r in requests)]
    else:
        wanted = held
    for item in wanted:
        definition = schemas.ITEMS[item]
        if item not in held or latest is None:
            overview.not_charted.append(
                NotCharted(item, definition.name, f"{code} has sent no monthly return of it yet.")
            )
            continue
        last = parse_month(latest)
        first = last - CHART_MONTHS + 1
        among = "trusts holding that month"
        peers: list[str] | None = None
        if kind == OrgKind.OVERSIGHT_BODY:
            span = _body_span(requests, item)
            if span is None:
                overview.not_charted.append(
                    NotCharted(
                        item,
                        definition.name,
                        "Your requests for it are not monthly figures of this trust (they are"
                        " by region, for the nation, or by quarter or year).",
                    )
                )
                continue
            first, last, peers = max(first, span[0]), min(last, span[1]), span[2]
            among = "trusts your requests name, holding that month"
            if first > last:
                overview.not_charted.append(
                    NotCharted(
                        item, definition.name, "Nothing is held yet in your requests' months."
                    )
                )
                continue
            try:  # the API's own check: refuses what the body's active requests do not cover
                indicators.authorise(
                    session=session,
                    kind=kind,
                    caller=viewer,
                    item=item,
                    org_code=code,
                    first=first,
                    last=last,
                )
            except Forbidden as refused:
                overview.not_charted.append(NotCharted(item, definition.name, refused.detail))
                continue
        scope = indicators.Scope(org_level="trust", org_codes=(code,))
        series = indicators.monthly_series(
            session=session, settings=settings, item=item, scope=scope, first=first, last=last
        )
        # Leading months not held are not gaps: the chart starts at the first month held.
        missing = [m for m in series.missing if series.points and m > series.points[0].period]
        if len(series.points) < 2:
            overview.not_charted.append(
                NotCharted(item, definition.name, "Fewer than 2 months are held: nothing to chart.")
            )
            continue
        target = targets.get(item)
        chart = spc.chart(
            series.points, improvement_direction=definition.improvement_direction, target=target
        )
        latest_point = series.points[-1]
        if peers is None:
            peers = [o.code for o in org_repo.list_all(session=session, kind=OrgKind.TRUST)]
        standing = _standing(
            session, settings, item, code, latest_point.period, peers, definition, among
        )
        indicators.record_read(
            session=session,
            actor=viewer,
            item=item,
            org_code=code,
            period_start=series.points[0].period,
            period_end=latest_point.period,
        )
        overview.charts.append(
            IndicatorChart(
                item=item,
                name=definition.name,
                unit=definition.unit,
                direction=definition.improvement_direction,
                chart=chart,
                missing=missing,
                standing=standing,
                target=target,
            )
        )


def _body_span(requests: Sequence[DataRequest], item: str) -> tuple[int, int, list[str]] | None:
    """The months (first, last) and trusts of the body's trust-level monthly requests for the
    item: the widest one (a chart covers one request's months, as the API allows)."""
    spans = [
        (parse(r.period_start).first_month, parse(r.period_end).end_month - 1, sorted(r.org_codes))
        for r in requests
        if item in r.items and r.org_level == "trust" and r.period_type == "month"
    ]
    if not spans:
        return None
    return max(spans, key=lambda s: (s[1] - s[0], s[1]))


def _standing(
    session: Session,
    settings: Settings,
    item: str,
    code: str,
    period: str,
    peers: list[str],
    definition: schemas.Item,
    among: str,
) -> Standing | None:
    values = indicators.values_by_trust(
        session=session, settings=settings, item=item, month=parse_month(period), org_codes=peers
    )
    if code not in values:
        return None
    lowest_first = definition.improvement_direction == "decrease"
    ordered = sorted(values.values(), reverse=not lowest_first)
    rank = ordered.index(values[code]) + 1  # ties share the better rank
    return Standing(
        period=month_label(parse_month(period)),
        rank=rank,
        of=len(values),
        order="lowest first" if lowest_first else "highest first",
        among=among,
    )
