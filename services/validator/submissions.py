"""The validation job: read a submission's file, validate it, then accept or reject it."""

from __future__ import annotations

import logging

import schemas
from services.catalogue import logs, store
from services.catalogue import submissions as intake
from services.catalogue.jobs import JobContext
from services.validator.validation import validate_file

log = logging.getLogger(__name__)


def validate_submission(context: JobContext) -> None:
    """Validate one submission (idempotent: a decided submission is left as it is)."""
    assert context.subject_id is not None
    settings = context.settings
    with context.session() as session:
        submission = intake.start_validation(session=session, submission_id=context.subject_id)
        if submission is None:
            return
        submission_id = submission.id
        dataset = schemas.get_dataset(submission.dataset_code)
        org_code, period, filename = submission.org_code, submission.period, submission.filename

    validated = store.validated_path(settings, submission_id)
    # Outside any transaction: validating a large file takes a while.
    report = validate_file(
        path=store.upload_path(settings, submission_id),
        filename=filename,
        dataset=dataset,
        org_code=org_code,
        period=period,
        write_to=validated,
        # Memory above idle per Arrow size of a 1M-row CSV (bench/submission_pipeline.py
        # --chunk-rows): 50k rows a chunk 1.3x, 100k 1.7x, 250k 2.8x, 500k 4.3x, at about the
        # same speed; 100k keeps well within the 3x the worker is allowed.
        chunk_rows=100_000,
    )
    with context.session() as session:
        if report.status == "accepted":
            assert report.rows is not None
            intake.accept(
                session=session,
                settings=settings,
                submission_id=submission_id,
                rows=report.rows,
                file_format=report.format,
                validated=validated,
            )
        else:
            intake.reject(
                session=session,
                settings=settings,
                submission_id=submission_id,
                rows=report.rows,
                file_format=report.format,
                errors=[
                    intake.ErrorRow(
                        row=e.row, column=e.column, check=e.check, value=e.value, message=e.message
                    )
                    for e in report.errors
                ],
                error_count=report.error_count,
            )
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
            dataset=dataset.code,
            period=period,
            status=report.status,
            rows=report.rows,
            error_count=report.error_count,
        ),
    )
