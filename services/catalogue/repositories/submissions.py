"""Queries on submissions and their errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Subquery, func, insert, select, text
from sqlalchemy.orm import Session

from services.catalogue import db
from services.catalogue.models import Job, Submission, SubmissionError
from services.catalogue.states import UNDECIDED, WAITING, JobStatus, SubmissionStatus

# The first key of the PostgreSQL advisory locks taken per trust by serialise_receipts.
_RECEIPTS_LOCK = 727_272


def serialise_receipts(*, session: Session, org_code: str) -> None:
    """Record a trust's uploads one at a time: hold a lock to the commit, taken before its
    earlier submissions are looked up, so the same file sent twice at once finds the first
    (rather than both inserting it, and the second failing on the unique key).

    PostgreSQL: a transaction-scoped advisory lock of the trust; SQLite: the write lock.
    """
    db.write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:org))"),
            {"space": _RECEIPTS_LOCK, "org": org_code},
        )


def get(*, session: Session, submission_id: str) -> Submission | None:
    """One submission."""
    return session.get(Submission, submission_id)


def earlier(
    *,
    session: Session,
    org_code: str,
    idempotency_key: str | None,
    dataset_code: str,
    period: str,
    sha256: str,
) -> tuple[Submission | None, Submission | None]:
    """A trust's submission sent with this Idempotency-Key, and its submission of these exact
    bytes for this return (either may be None): one query for both, as every upload asks."""
    same_content = (
        (Submission.dataset_code == dataset_code)
        & (Submission.period == period)
        & (Submission.sha256 == sha256)
    )
    condition = (
        same_content
        if idempotency_key is None
        else same_content | (Submission.idempotency_key == idempotency_key)
    )
    rows = session.scalars(
        select(Submission)
        .where(Submission.org_code == org_code, condition)
        .order_by(Submission.received_at)
    ).all()
    by_key = next(
        (
            row
            for row in rows
            if idempotency_key is not None and row.idempotency_key == idempotency_key
        ),
        None,
    )
    by_content = next(
        (
            row
            for row in rows
            if (row.dataset_code, row.period, row.sha256) == (dataset_code, period, sha256)
        ),
        None,
    )
    return by_key, by_content


def latest_accepted(
    *, session: Session, org_code: str, dataset_code: str, period: str
) -> Submission | None:
    """The accepted submission with the highest revision for this return."""
    query = (
        select(Submission)
        .where(
            Submission.org_code == org_code,
            Submission.dataset_code == dataset_code,
            Submission.period == period,
            Submission.status == SubmissionStatus.ACCEPTED,
        )
        .order_by(Submission.revision.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def pending_count(*, session: Session, org_code: str, dataset_code: str, period: str) -> int:
    """Submissions of this return still being received or validated."""
    query = select(func.count()).where(
        Submission.org_code == org_code,
        Submission.dataset_code == dataset_code,
        Submission.period == period,
        Submission.status.in_(UNDECIDED),
    )
    return int(session.scalar(query) or 0)


def list_filtered(
    *,
    session: Session,
    org_code: str | None,
    dataset_code: str | None,
    period: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> Sequence[Submission]:
    """Submissions, newest first."""
    query = select(Submission).order_by(Submission.received_at.desc(), Submission.id)
    if org_code is not None:
        query = query.where(Submission.org_code == org_code)
    if dataset_code is not None:
        query = query.where(Submission.dataset_code == dataset_code)
    if period is not None:
        query = query.where(Submission.period == period)
    if status is not None:
        query = query.where(Submission.status == status)
    return session.scalars(query.limit(limit).offset(offset)).all()


def errors(*, session: Session, submission_id: str) -> Sequence[SubmissionError]:
    """A submission's errors in the order they were found."""
    query = (
        select(SubmissionError)
        .where(SubmissionError.submission_id == submission_id)
        .order_by(SubmissionError.seq)
    )
    return session.scalars(query).all()


def unfinished_job_error(*, session: Session, kind: str, submission_id: str) -> str | None:
    """The last error of the newest unfinished job of ``kind`` on this submission, if any."""
    query = (
        select(Job.last_error)
        .where(
            Job.kind == kind,
            Job.subject_id == submission_id,
            Job.status.in_((*WAITING, JobStatus.RUNNING)),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def status_counts(*, session: Session, org_code: str) -> dict[str, int]:
    """How many of the trust's submissions are in each status."""
    query = (
        select(Submission.status, func.count())
        .where(Submission.org_code == org_code)
        .group_by(Submission.status)
    )
    return {str(status): int(count) for status, count in session.execute(query)}


def accepted_summary(
    *, session: Session, org_code: str, dataset_codes: Sequence[str]
) -> tuple[list[str], str | None]:
    """Of the given datasets: those the trust has an accepted return of, and its latest
    accepted period (months as ``YYYY-MM`` sort as text)."""
    query = (
        select(Submission.dataset_code, func.max(Submission.period))
        .where(
            Submission.org_code == org_code,
            Submission.status == SubmissionStatus.ACCEPTED,
            Submission.dataset_code.in_(list(dataset_codes)),
        )
        .group_by(Submission.dataset_code)
    )
    rows = session.execute(query).all()
    latest = max((str(period) for _code, period in rows), default=None)
    return sorted(str(code) for code, _period in rows), latest


def first_accepted() -> Subquery:
    """When each (trust, dataset, period) first had a return that was then accepted: columns
    org_code, dataset_code, period, received (a subquery, to join to its asks)."""
    return (
        select(
            Submission.org_code,
            Submission.dataset_code,
            Submission.period,
            func.min(Submission.received_at).label("received"),
        )
        .where(Submission.status == SubmissionStatus.ACCEPTED)
        .group_by(Submission.org_code, Submission.dataset_code, Submission.period)
        .subquery("first_accepted")
    )


def accepted_current(
    *,
    session: Session,
    dataset_codes: Iterable[str],
    periods: Sequence[str],
    org_codes: Sequence[str] | None,
) -> Iterator[Submission]:
    """Accepted, not superseded submissions of these datasets and periods (and trusts, unless
    ``org_codes`` is None), streamed."""
    query = select(Submission).where(
        Submission.status == SubmissionStatus.ACCEPTED,
        Submission.superseded_by_id.is_(None),
        Submission.dataset_code.in_(dataset_codes),
        Submission.period.in_(periods),
    )
    if org_codes is not None:
        query = query.where(Submission.org_code.in_(org_codes))
    return iter(session.scalars(query))


def insert_errors(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """A rejected submission's errors, in bulk."""
    session.execute(insert(SubmissionError), list(rows))


def counts_by_status(*, session: Session) -> dict[str, int]:
    """How many submissions there are in each status."""
    query = select(Submission.status, func.count()).group_by(Submission.status)
    return dict(session.execute(query).all())


def first_rejected(*, session: Session) -> Submission | None:
    """A rejected submission, if any."""
    query = select(Submission).where(Submission.status == SubmissionStatus.REJECTED).limit(1)
    return session.scalars(query).first()
