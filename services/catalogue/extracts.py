"""Extracts: what each body receives for its requests, built once the data is there, revised
when it changes, and delivered to the body's channel.

One extract per (request, period at the request's grain, group of items sharing key columns).
It is built when every cell is available; once the period's due date has passed, a partial one
is built with what there is (at most once a day), listing the missing trusts, until the
complete one follows. A superseded source submission yields a new revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

import schemas
from services.catalogue import audit, extract_data, jobs, store
from services.catalogue.errors import NotFound
from services.catalogue.models import (
    DataRequest,
    Extract,
    ExtractDelivery,
    Submission,
    new_id,
    utcnow,
)
from services.catalogue.periods import last_day, month_label, periods_between
from services.catalogue.repositories import extracts as extract_repo
from services.catalogue.repositories import jobs as job_repo
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.settings import Settings
from services.catalogue.states import DeliveryStatus, JobKind, OrgKind, RequestStatus


def groups_of(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The request's items grouped by their key (disaggregation) columns, comma-joined."""
    found: dict[str, list[str]] = {}
    for item in items:
        found.setdefault(",".join(schemas.ITEMS[item].disaggregation), []).append(item)
    return {key: tuple(group) for key, group in found.items()}


def _relevant_datasets(items: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for item in items:
        found.add(schemas.ITEMS[item].primary_dataset)
        found.update(schemas.datasets_carrying(item))
        found.update(schemas.datasets_deriving(item))
    return found


def affected_requests(*, session: Session, dataset: str, org_code: str, period: str) -> list[str]:
    """Active requests whose extracts a newly accepted return may change."""
    found = []
    for request in request_repo.active(session=session):
        if org_code not in request.org_codes or dataset not in _relevant_datasets(request.items):
            continue
        months = {
            month_label(m)
            for p in periods_between(request.period_start, request.period_end, request.period_type)
            for m in range(p.first_month, p.end_month)
        }
        if period in months:
            found.append(request.id)
    return found


def enqueue_refresh(*, session: Session, request_id: str) -> None:
    """Queue a refresh of a request's extracts unless one is already waiting to start.

    A waiting refresh (pending, or sent and not yet claimed) will read this return when it runs,
    so on deadline day the accepts of a request's 220 trusts share a few refreshes instead of
    one each. A running refresh may have read its sources already: a new one is queued.
    """
    waiting = job_repo.first_waiting(
        session=session, kind=JobKind.REFRESH_EXTRACTS, subject_id=request_id
    )
    if waiting is None:
        jobs.enqueue(session=session, kind=JobKind.REFRESH_EXTRACTS, subject_id=request_id)


# Up to this many organisations, plan() filters them in SQL (an IN list); more are filtered after.
ORG_FILTER_IN_SQL = 500


@dataclass(frozen=True)
class Plan:
    """Where each cell of one extract comes from, and which trusts are still missing."""

    sources: list[extract_data.Source]
    missing: list[str]

    @property
    def source_ids(self) -> list[str]:
        """The submissions the extract is made of."""
        return sorted({s.submission_id for s in self.sources})


def plan(
    *,
    session: Session,
    settings: Settings,
    org_codes: Sequence[str],
    months: Sequence[int],
    items: Sequence[str],
) -> Plan:
    """The latest accepted return for each (trust, month), or a dataset to derive it from."""
    labels = [month_label(m) for m in months]
    datasets = _relevant_datasets(items)
    latest: dict[tuple[str, str, str], Submission] = {}
    wanted = set(org_codes)
    # One trust's chart (or a submission's history check) reads that trust's rows only.
    in_sql = sorted(wanted) if len(wanted) <= ORG_FILTER_IN_SQL else None
    for submission in submission_repo.accepted_current(
        session=session, dataset_codes=datasets, periods=labels, org_codes=in_sql
    ):
        if submission.org_code in wanted:
            latest[(submission.dataset_code, submission.org_code, submission.period)] = submission
    by_primary: dict[str, list[str]] = {}
    for item in items:
        by_primary.setdefault(schemas.ITEMS[item].primary_dataset, []).append(item)
    # Once per dataset, not per (trust, month): a national chart looks at thousands of cells.
    derivers = {
        primary: schemas.datasets_deriving(items[0]) for primary, items in by_primary.items()
    }
    sources: list[extract_data.Source] = []
    missing: set[str] = set()
    for org_code in org_codes:
        for label in labels:
            for primary, primary_items in by_primary.items():
                found = latest.get((primary, org_code, label))
                derived = False
                if found is None:
                    for deriver in derivers[primary]:
                        found = latest.get((deriver, org_code, label))
                        if found is not None:
                            derived = True
                            break
                if found is None or found.data_path is None:
                    missing.add(org_code)
                    continue
                sources.append(
                    extract_data.Source(
                        org_code=org_code,
                        month=label,
                        dataset=found.dataset_code,
                        submission_id=found.id,
                        path=store.absolute(settings, found.data_path),
                        items=tuple(primary_items),
                        derived=derived,
                    )
                )
    return Plan(sources=sources, missing=sorted(missing))


def refresh(*, session: Session, settings: Settings, request_id: str, today: date) -> list[Extract]:
    """Build every extract of a request that is due and not built from the same sources yet.

    The request's row is locked to the commit (PostgreSQL), so two refreshes of one request run
    one after the other: the second sees what the first built instead of building the same
    revision again (which failed on ``uq_extracts_revision`` and was retried).
    """
    request = request_repo.get_locked(session=session, request_id=request_id)
    if request is None or request.status != RequestStatus.ACTIVE:
        return []
    built: list[Extract] = []
    regions = {
        code: region or ""
        for code, region in org_repo.regions(session=session, codes=request.org_codes).items()
    }
    for period in periods_between(request.period_start, request.period_end, request.period_type):
        months = list(range(period.first_month, period.end_month))
        due = last_day(period.end_month - 1) + timedelta(days=request.due_days)
        for group, items in groups_of(request.items).items():
            found = plan(
                session=session,
                settings=settings,
                org_codes=request.org_codes,
                months=months,
                items=items,
            )
            if not found.sources:
                continue
            latest = extract_repo.latest(
                session=session, request_id=request.id, period=period.label, group_key=group
            )
            same = latest is not None and latest.manifest.get("sources") == found.source_ids
            complete = not found.missing
            if complete:
                if same and latest is not None and latest.complete:
                    continue
            elif today <= due or same or (latest is not None and latest.created_at.date() >= today):
                continue  # partial extracts only after the due date, at most once a day
            built.append(
                _build(
                    session=session,
                    settings=settings,
                    request=request,
                    period=period.label,
                    group=group,
                    items=items,
                    found=found,
                    revision=(latest.revision + 1) if latest else 1,
                    regions=regions,
                )
            )
    return built


def _build(
    *,
    session: Session,
    settings: Settings,
    request: DataRequest,
    period: str,
    group: str,
    items: Sequence[str],
    found: Plan,
    revision: int,
    regions: dict[str, str],
) -> Extract:
    key = tuple(k for k in group.split(",") if k)
    shape = extract_data.Shape(
        items=tuple(items),
        key=key,
        period_label=period,
        period_type=request.period_type,
        org_level=request.org_level,
        regions=regions,
    )
    versions = {s.dataset: schemas.get_dataset(s.dataset).version for s in found.sources}
    extract_id = new_id()
    target = (
        settings.store_dir
        / "extracts"
        / request.id
        / period
        / (group or "all")
        / f"rev={revision}.parquet"
    )
    rows = extract_data.shape_rows(extract_data.monthly_rows(found.sources, shape), shape)
    result = extract_data.write(
        rows,
        target,
        metadata=extract_data.metadata_for(
            request_id=request.id,
            revision=revision,
            period=period,
            items=items,
            versions=versions,
        ),
    )
    org_column = {"trust": ["org_code"], "region": ["region"], "national": []}[request.org_level]
    now = utcnow()
    extract = Extract(
        id=extract_id,
        request_id=request.id,
        body_code=request.body_code,
        period=period,
        group_key=group,
        items=list(items),
        revision=revision,
        complete=not found.missing,
        rows=result.rows,
        sha256=result.sha256,
        path=store.relative(settings, target),
        created_at=now,
        manifest={
            "request_id": request.id,
            "period": period,
            "revision": revision,
            "rows": result.rows,
            "sha256": result.sha256,
            "key": [*org_column, "period", *key],
            "items": list(items),
            "sources": found.source_ids,
            "missing": found.missing,
            "complete": not found.missing,
            "dataset_versions": versions,
            "schema": result.columns,
            "created_at": now.isoformat(),
        },
    )
    session.add(extract)
    session.flush()
    body = org_repo.get(session=session, code=request.body_code)
    delivery = _delivery_target(body.delivery if body else None, settings, request.body_code)
    if delivery is not None:
        channel, target_name = delivery
        row = ExtractDelivery(
            extract_id=extract.id,
            channel=channel,
            target=target_name,
            status=DeliveryStatus.PENDING,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        jobs.enqueue(session=session, kind=JobKind.DELIVER_EXTRACT, subject_id=row.id)
    audit.record(
        session=session,
        actor="DRB-VALIDATOR",
        action="extract.built",
        subject_type="extract",
        subject_id=extract.id,
        detail={
            "request_id": request.id,
            "period": period,
            "revision": revision,
            "rows": result.rows,
            "complete": not found.missing,
        },
    )
    return extract


def _delivery_target(
    delivery: dict[str, Any] | None, settings: Settings, body_code: str
) -> tuple[str, str] | None:
    """(channel, target) of a body's delivery settings; None when it uses the API only."""
    if delivery is None:
        return "files", (settings.outbox_dir / body_code).resolve().as_uri()
    channel = str(delivery.get("channel", ""))
    if channel in ("api", "email"):  # extracts are never e-mailed: downloaded over the API
        return None
    if channel == "mesh":
        return "mesh", str(delivery.get("mailbox", ""))
    return channel, str(delivery.get("uri", ""))


def delivery_filename(extract: Extract) -> str:
    """The file name a body receives: request, period, group and revision."""
    group = extract.group_key.replace(",", "+") or "all"
    return f"drb-{extract.request_id}-{extract.period}-{group}-rev{extract.revision}.parquet"


# What a body is told of a delivery that has not worked: never the error itself, which names
# the server's folders, hosts or the exception (it stays in the database and the log).
DELIVERY_RETRYING = (
    "Delivery has not succeeded yet; the broker retries. Contact the broker's stewards if this"
    " persists."
)
DELIVERY_FAILED = (
    "Delivery failed and will not be retried; the extract can still be downloaded over the API."
    " Contact the broker's stewards."
)


def visible(
    *, session: Session, org_code: str, kind: str, request_id: str | None = None
) -> list[tuple[Extract, ExtractDelivery | None]]:
    """The extracts a caller may list, newest first, each with its delivery: a body its own,
    an auditor every one."""
    body = org_code if kind == OrgKind.OVERSIGHT_BODY else None
    return extract_repo.with_deliveries(session=session, body_code=body, request_id=request_id)


def readable(*, session: Session, extract_id: str, org_code: str, kind: str) -> Extract:
    """An extract its body (or an auditor) may read; another body's is not found, so that its
    existence is not revealed."""
    extract = extract_repo.get(session=session, extract_id=extract_id)
    if extract is None or (kind == OrgKind.OVERSIGHT_BODY and extract.body_code != org_code):
        raise NotFound(f"No extract has the id {extract_id!r}.")
    return extract


def download(*, session: Session, extract_id: str, org_code: str) -> Extract:
    """The owning body's extract to download; every download is in the audit log."""
    extract = readable(
        session=session, extract_id=extract_id, org_code=org_code, kind=OrgKind.OVERSIGHT_BODY
    )
    audit.record(
        session=session,
        actor=org_code,
        action="extract.downloaded",
        subject_type="extract",
        subject_id=extract.id,
        detail={"revision": extract.revision},
    )
    return extract
