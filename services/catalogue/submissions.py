"""Submissions: a trust's return, received once, validated, then held or rejected."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, object_session

import schemas
from services.catalogue import (
    audit,
    auditor_messages,
    coverage_index,
    db,
    extracts,
    indicators,
    jobs,
    store,
    submission_warnings,
)
from services.catalogue.errors import Conflict, Forbidden, Invalid, NotFound
from services.catalogue.models import Submission, SubmissionError, new_id, utcnow
from services.catalogue.periods import PeriodError, parse_month
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import catalogue as catalogue_repo
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.settings import Settings
from services.catalogue.states import (
    DECIDED,
    UNDECIDED,
    AskStatus,
    JobKind,
    OrgKind,
    SubmissionStatus,
)

log = logging.getLogger(__name__)

# Cells starting with these are read as formulas by spreadsheets (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Upload:
    """An uploaded file streamed to the staging folder, with its size and SHA-256."""

    path: Path
    filename: str
    size: int
    sha256: str


def check_return(*, session: Session, dataset_code: str, period: str) -> int:
    """Validate the dataset and period of a return; the dataset's current version."""
    errors: list[dict[str, object]] = []
    row = catalogue_repo.dataset(session=session, code=dataset_code)
    if row is None:
        errors.append(
            {
                "field": "dataset",
                "message": f"unknown dataset {dataset_code!r}; "
                f"the catalogue has {', '.join(schemas.DATASETS)}",
            }
        )
    try:
        parse_month(period)
    except PeriodError as error:
        errors.append({"field": "period", "message": str(error)})
    if errors:
        raise Invalid(
            f"The submission is not valid: check {', '.join(str(e['field']) for e in errors)}.",
            errors,
        )
    assert row is not None
    return row.current_version


def receive(
    *,
    session: Session,
    settings: Settings,
    org_code: str,
    dataset_code: str,
    period: str,
    upload: Upload,
    idempotency_key: str | None,
) -> tuple[Submission, bool]:
    """Record an upload as a submission and queue its validation; (submission, created).

    The same bytes for the same return, or the same Idempotency-Key with the same bytes,
    give back the first submission and create nothing; the key with other bytes is a conflict.
    A trust's uploads are recorded one at a time, so this holds for copies sent at once too.
    """
    version = check_return(session=session, dataset_code=dataset_code, period=period)
    submission_repo.serialise_receipts(session=session, org_code=org_code)
    by_key, by_content = submission_repo.earlier(
        session=session,
        org_code=org_code,
        idempotency_key=idempotency_key,
        dataset_code=dataset_code,
        period=period,
        sha256=upload.sha256,
    )
    if by_key is not None:
        if by_key.sha256 != upload.sha256 or (by_key.dataset_code, by_key.period) != (
            dataset_code,
            period,
        ):
            raise Conflict(
                "This Idempotency-Key was used for another file: use a new key for new content."
            )
        return by_key, False
    if by_content is not None:
        return by_content, False
    submission = Submission(
        id=new_id(),
        org_code=org_code,
        dataset_code=dataset_code,
        dataset_version=version,
        period=period,
        status=SubmissionStatus.RECEIVED,
        filename=upload.filename[:255],
        size_bytes=upload.size,
        sha256=upload.sha256,
        idempotency_key=idempotency_key,
        error_count=0,
        received_at=utcnow(),
    )
    session.add(submission)
    session.flush()
    placed = store.upload_path(settings, submission.id)
    store.place(upload.path, placed)
    # No file without its row: if the transaction fails (the database went away before the
    # commit), the client sends it again and the bytes are recorded then.
    db.on_rollback(session, lambda: placed.unlink(missing_ok=True))
    ask_repo.set_status(
        session=session,
        org_code=org_code,
        dataset_code=dataset_code,
        period=period,
        old=AskStatus.OUTSTANDING,
        new=AskStatus.SUBMITTED,
    )
    jobs.enqueue(session=session, kind=JobKind.VALIDATE_SUBMISSION, subject_id=submission.id)
    audit.record(
        session=session,
        actor=org_code,
        action="submission.received",
        subject_type="submission",
        subject_id=submission.id,
        # No hash of the file: auditors read this log, and a small file's hash gives its values.
        detail={"dataset": dataset_code, "period": period, "bytes": upload.size},
    )
    return submission, True


def start_validation(*, session: Session, submission_id: str) -> Submission | None:
    """Mark a submission as being validated; None when it is already decided (idempotent)."""
    submission = submission_repo.get(session=session, submission_id=submission_id)
    if submission is None or submission.status in DECIDED:
        return None
    submission.status = SubmissionStatus.VALIDATING
    return submission


def accept(
    *,
    session: Session,
    settings: Settings,
    submission_id: str,
    rows: int,
    file_format: str | None,
    validated: Path,
) -> Submission:
    """Put validated rows in the store as the return's next revision; its cells become held."""
    submission = submission_repo.get(session=session, submission_id=submission_id)
    assert submission is not None
    previous = submission_repo.latest_accepted(
        session=session,
        org_code=submission.org_code,
        dataset_code=submission.dataset_code,
        period=submission.period,
    )
    revision = 1 if previous is None else (previous.revision or 0) + 1
    target = store.partition_path(
        settings,
        dataset=submission.dataset_code,
        period=submission.period,
        org_code=submission.org_code,
        revision=revision,
    )
    submission.status = SubmissionStatus.ACCEPTED
    submission.rows = rows
    submission.format = file_format
    submission.revision = revision
    submission.validated_at = utcnow()
    submission.data_path = store.relative(settings, target)
    if previous is not None:
        submission.supersedes_id = previous.id
        previous.superseded_by_id = submission.id
    session.flush()
    # The file goes in place last: if the commit fails, a retry overwrites it with the same rows.
    store.place(validated, target)
    indicators.record_values(session=session, settings=settings, submission=submission)
    coverage_index.mark_held(
        session=session,
        dataset_code=submission.dataset_code,
        org_code=submission.org_code,
        month=parse_month(submission.period),
    )
    ask_repo.set_status(
        session=session,
        org_code=submission.org_code,
        dataset_code=submission.dataset_code,
        period=submission.period,
        old=AskStatus.SUBMITTED,
        new=AskStatus.ACCEPTED,
    )
    for request_id in extracts.affected_requests(
        session=session,
        dataset=submission.dataset_code,
        org_code=submission.org_code,
        period=submission.period,
    ):
        extracts.enqueue_refresh(session=session, request_id=request_id)
    submission.warnings = _warnings(session=session, settings=settings, submission=submission)
    audit.record(
        session=session,
        actor="DRB-VALIDATOR",
        action="submission.accepted",
        subject_type="submission",
        subject_id=submission.id,
        detail={
            "rows": rows,
            "revision": revision,
            "supersedes": submission.supersedes_id,
            "warnings": len(submission.warnings),
        },
    )
    return submission


def _warnings(*, session: Session, settings: Settings, submission: Submission) -> list[Any]:
    """The accepted return's warnings; none when they cannot be worked out (never a rejection:
    a chart that fails must not cost the trust its accepted return)."""
    try:
        return submission_warnings.warnings_for(
            session=session, settings=settings, submission=submission
        )
    except SQLAlchemyError:
        raise  # the unit of work is broken: the job is retried
    except Exception:
        log.exception(
            "could not check submission %s against its history",
            submission.id,
            extra={"submission_id": submission.id},
        )
        return []


@dataclass(frozen=True)
class ErrorRow:
    """One error as the validator reports it."""

    row: int | None
    column: str | None
    check: str
    value: str | None
    message: str


def reject(
    *,
    session: Session,
    settings: Settings,
    submission_id: str,
    rows: int | None,
    file_format: str | None,
    errors: Sequence[ErrorRow],
    error_count: int,
) -> Submission:
    """Keep the errors of a rejected submission; nothing of its file is kept."""
    submission = submission_repo.get(session=session, submission_id=submission_id)
    assert submission is not None
    submission.status = SubmissionStatus.REJECTED
    submission.rows = rows
    submission.format = file_format
    submission.error_count = max(error_count, len(errors))
    submission.validated_at = utcnow()
    if errors:
        submission_repo.insert_errors(
            session=session,
            rows=[
                {
                    "submission_id": submission.id,
                    "seq": n,
                    "row": e.row,
                    "column": e.column,
                    "check": e.check,
                    "value": e.value,
                    "message": e.message,
                }
                for n, e in enumerate(errors)
            ],
        )
    if (
        submission_repo.pending_count(
            session=session,
            org_code=submission.org_code,
            dataset_code=submission.dataset_code,
            period=submission.period,
        )
        == 0
    ):
        ask_repo.set_status(
            session=session,
            org_code=submission.org_code,
            dataset_code=submission.dataset_code,
            period=submission.period,
            old=AskStatus.SUBMITTED,
            new=AskStatus.OUTSTANDING,
        )
    audit.record(
        session=session,
        actor="DRB-VALIDATOR",
        action="submission.rejected",
        subject_type="submission",
        subject_id=submission.id,
        detail={"rows": rows, "errors": submission.error_count},
    )
    store.upload_path(settings, submission.id).unlink(missing_ok=True)
    return submission


GAVE_UP_MESSAGE = (
    "the file could not be validated: the broker tried {attempts} times and failed each time"
    " (the cause is logged); send the file again later, or ask the broker's stewards"
)


# A validation whose process died each time it read the file (jobs.MAX_DEATHS): the file, most
# likely, ends any process that reads it, so it is not tried again.
DIED_MESSAGE = (
    "the file could not be validated: the process validating it stopped {deaths} times while"
    " reading it (the cause is logged), so it is not tried again; check the file, send it again"
    " as CSV, or ask the broker's stewards"
)


def give_up(
    *, session: Session, settings: Settings, submission_id: str, attempts: int, deaths: int = 0
) -> None:
    """Reject a submission whose validation job was given up, so that it never stays
    ``received`` or ``validating`` for ever (a decided one is left as it is). ``deaths``: the
    job was given up because its process died that many times in a row running it."""
    submission = submission_repo.get(session=session, submission_id=submission_id)
    if submission is None or submission.status not in UNDECIDED:
        return
    reject(
        session=session,
        settings=settings,
        submission_id=submission_id,
        rows=None,
        file_format=None,
        errors=[
            ErrorRow(
                row=None,
                column=None,
                check="internal",
                value=None,
                message=DIED_MESSAGE.format(deaths=deaths)
                if deaths
                else GAVE_UP_MESSAGE.format(attempts=attempts),
            )
        ],
        error_count=1,
    )


# Who reads submissions: the trust that sent each (its own only) and auditors (every trust's).
READERS = (OrgKind.TRUST, OrgKind.AUDITOR)


def shows_values(kind: str) -> bool:
    """Whether a reader of submissions sees the values its trust sent (in errors, warnings and
    figures): only the trust itself; an auditor sees which cell and which check, never what
    was in it (SECURITY.md)."""
    return kind == OrgKind.TRUST


def _may_read_any(kind: str) -> None:
    if kind not in READERS:
        raise Forbidden(f"Submissions are read by trusts and auditors, not {kind}.")


def readable(*, session: Session, submission_id: str, org_code: str, kind: str) -> Submission:
    """A submission the caller may read: a trust its own, an auditor any. Another trust's is
    not found, so that its existence is not revealed."""
    _may_read_any(kind)
    submission = submission_repo.get(session=session, submission_id=submission_id)
    if submission is None or (kind == OrgKind.TRUST and submission.org_code != org_code):
        raise NotFound(f"No submission has the id {submission_id!r}.")
    return submission


def visible(
    *,
    session: Session,
    org_code: str,
    kind: str,
    trust_code: str | None = None,
    dataset_code: str | None = None,
    period: str | None = None,
    status: str | None = None,
    limit: int,
    offset: int,
) -> Sequence[Submission]:
    """The submissions a caller may list, newest first: a trust its own (naming another trust
    is Forbidden), an auditor every trust's or ``trust_code``'s."""
    _may_read_any(kind)
    if kind == OrgKind.TRUST:
        if trust_code not in (None, org_code):
            raise Forbidden("A trust sees only its own submissions.")
        trust_code = org_code
    return submission_repo.list_filtered(
        session=session,
        org_code=trust_code,
        dataset_code=dataset_code,
        period=period,
        status=status,
        limit=limit,
        offset=offset,
    )


def status_detail(submission: Submission) -> str | None:
    """Why an undecided submission waits, when the broker knows (else None).

    A submission whose rows could not be stored (disk full) stays ``validating`` while its job
    is retried; this says so, in the words of :class:`services.catalogue.store.StoreWriteFailed`
    (only those: a job's other errors may quote a path or a value).
    """
    if submission.status != SubmissionStatus.VALIDATING:
        return None
    session = object_session(submission)
    if session is None:
        return None
    error = submission_repo.unfinished_job_error(
        session=session, kind=JobKind.VALIDATE_SUBMISSION, submission_id=submission.id
    )
    prefix = f"{store.StoreWriteFailed.__name__}: "
    if error is None or not error.startswith(prefix):
        return None
    return error[len(prefix) :].partition("\n")[0]


@dataclass(frozen=True)
class ShownError:
    """One error as its reader may see it: with the value for the trust that sent the file;
    for an auditor, no value and a message worded from the check and the column alone."""

    row: int | None
    column: str | None
    check: str
    value: str | None
    message: str


def shown_error(
    error: SubmissionError, *, with_value: bool, dataset: schemas.Dataset | None = None
) -> ShownError:
    """One error as its reader may see it.

    With ``with_value`` (the trust that sent the file) exactly as the validator worded it;
    without (auditors), no value and a message worded again from the check and the column of
    ``dataset``, the submission's dataset, so that it holds nothing of the file.
    """
    if with_value:
        return ShownError(error.row, error.column, error.check, error.value, error.message)
    shown = auditor_messages.value_free(
        dataset=dataset, row=error.row, column=error.column, check=error.check
    )
    return ShownError(error.row, shown.column, error.check, None, shown.message)


def shown_errors(*, session: Session, submission: Submission, with_value: bool) -> list[ShownError]:
    """The submission's errors as its reader may see them (see ``shown_error``), in order."""
    dataset = schemas.DATASETS.get(submission.dataset_code)
    return [
        shown_error(error, with_value=with_value, dataset=dataset)
        for error in submission_repo.errors(session=session, submission_id=submission.id)
    ]


def _safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def errors_csv(errors: Iterable[ShownError]) -> str:
    """Errors as CSV that is safe to open in a spreadsheet (no cell runs as a formula)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = ("row", "column", "check", "value", "message")
    writer.writerow(columns)
    for error in errors:
        writer.writerow([_safe_cell(getattr(error, c)) for c in columns])
    return out.getvalue()
