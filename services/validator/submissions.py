"""The validation job: read a submission's file, validate it, then accept or reject it.

A submission must never stay ``validating``: an unexpected error (a bug, or a file that breaks
a reader in a way nobody foresaw) cannot be cured by running the job again, so the submission is
rejected with one plain file-level error and the error is logged. Only what may pass (the
database, the disk: :data:`RETRIED`) is left to the job's retries.

A store that cannot be written (disk full, read-only) is such an error: the submission stays
``validating``, its ``status_detail`` says why (:class:`services.catalogue.store.StoreWriteFailed`),
nothing of it is stored or decided, and the sweep sends the job again until the disk has room;
then it is accepted once, as its first try would have been.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import DBAPIError

import schemas
from services.catalogue import logs, store, submissions
from services.catalogue.jobs import JobContext
from services.catalogue.settings import Settings
from services.catalogue.states import SubmissionStatus
from services.validator.reading import ErrorRecord
from services.validator.validation import Report, validate_file

log = logging.getLogger(__name__)

# Errors of the surroundings, which running the job again may cure.
RETRIED = (DBAPIError, OSError)
# What the trust is told when validation itself failed; the cause is in the log, not here.
FAILED_MESSAGE = (
    "the file could not be validated because of an error in the broker, which has been"
    " logged; send the file again later, or ask the broker's stewards"
)


def validate_submission(context: JobContext) -> None:
    """Validate one submission (idempotent: a decided submission is left as it is)."""
    assert context.subject_id is not None
    settings = context.settings
    with context.session() as session:
        submission = submissions.start_validation(session=session, submission_id=context.subject_id)
        if submission is None:
            return
        submission_id = submission.id
        dataset_code = submission.dataset_code
        org_code, period, filename = submission.org_code, submission.period, submission.filename

    validated = store.validated_path(settings, submission_id)
    upload = store.upload_path(settings, submission_id)
    try:
        # Outside any transaction: validating a large file takes a while.
        report = validate_file(
            path=upload,
            filename=filename,
            dataset=schemas.get_dataset(dataset_code),
            org_code=org_code,
            period=period,
            write_to=validated,
            # Memory above idle per Arrow size of a 1M-row CSV (bench/submission_pipeline.py
            # --chunk-rows): 50k rows a chunk 1.3x, 100k 1.7x, 250k 2.8x, 500k 4.3x, at about the
            # same speed; 100k keeps well within the 3x the worker is allowed.
            chunk_rows=100_000,
        )
    except Exception as error:
        if store.is_storage_full(error) and upload.exists():
            # The validated rows could not be written: the broker's disk, not the file.
            raise store.write_failure(error) from error
        if isinstance(error, RETRIED) and upload.exists():
            raise
        log.exception(
            "submission %s could not be validated; it is rejected",
            submission_id,
            # The error's text may quote the file: its type and frames only.
            extra=logs.fields(submission_id=submission_id, exception_text=False),
        )
        report = failed_report()
    try:
        _decide(context, settings, submission_id, report, validated)
    except RETRIED:
        raise
    except Exception:
        if report.status != SubmissionStatus.ACCEPTED:
            raise
        log.exception(
            "submission %s could not be accepted; it is rejected",
            submission_id,
            extra=logs.fields(submission_id=submission_id, exception_text=False),
        )
        validated.unlink(missing_ok=True)
        report = failed_report()
        _decide(context, settings, submission_id, report, validated)
    # Ids and counts only: a report's errors quote the file's values.
    log.info(
        "submission %s %s (%s rows, %s errors)",
        submission_id,
        report.status,
        report.rows,
        report.error_count,
        extra=logs.fields(
            submission_id=submission_id,
            org_code=org_code,
            dataset=dataset_code,
            period=period,
            status=report.status,
            rows=report.rows,
            error_count=report.error_count,
        ),
    )


def failed_report() -> Report:
    """The rejection of a file whose validation failed: one file-level error, no detail."""
    error = ErrorRecord(row=None, column=None, check="internal", value=None, message=FAILED_MESSAGE)
    return Report(status=SubmissionStatus.REJECTED, rows=None, errors=[error], error_count=1)


def _decide(
    context: JobContext, settings: Settings, submission_id: str, report: Report, validated: Path
) -> None:
    """Accept or reject the submission as the report says, in one unit of work."""
    with context.session() as session:
        if report.status == SubmissionStatus.ACCEPTED:
            assert report.rows is not None
            submissions.accept(
                session=session,
                settings=settings,
                submission_id=submission_id,
                rows=report.rows,
                file_format=report.format,
                validated=validated,
            )
        else:
            submissions.reject(
                session=session,
                settings=settings,
                submission_id=submission_id,
                rows=report.rows,
                file_format=report.format,
                errors=[
                    submissions.ErrorRow(
                        row=e.row, column=e.column, check=e.check, value=e.value, message=e.message
                    )
                    for e in report.errors
                ],
                error_count=report.error_count,
            )
