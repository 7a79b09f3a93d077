"""Submissions: trusts send each return once; the validator decides; errors come back."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.broker.dependencies import RuntimeDep, SessionDep, require
from services.broker.problems import Problem
from services.broker.responses import SubmissionErrorOut, SubmissionOut
from services.broker.uploads import receive_form
from services.catalogue import audit, auth, store, submissions
from services.catalogue.db import session_scope
from services.catalogue.models import Submission
from services.catalogue.runtime import Runtime
from services.catalogue.states import OrgKind, SubmissionStatus

router = APIRouter(tags=["submissions"])

TrustDep = Annotated[auth.Principal, Depends(require(OrgKind.TRUST))]
ReaderDep = Annotated[auth.Principal, Depends(require(OrgKind.TRUST, OrgKind.AUDITOR))]


@router.post(
    "/v1/submissions",
    status_code=202,
    summary="Send a return (multipart: file, dataset, period)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "dataset", "period"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "CSV (UTF-8), Parquet or XLSX.",
                            },
                            "dataset": {"type": "string", "examples": ["ae_monthly"]},
                            "period": {"type": "string", "examples": ["2025-01"]},
                        },
                    }
                }
            },
        }
    },
    responses={
        200: {
            "model": SubmissionOut,
            "description": "The same file was sent before: the first submission.",
        },
        409: {"description": "The Idempotency-Key was used for other bytes."},
        413: {"description": "Larger than DRB_MAX_UPLOAD_BYTES."},
    },
)
async def submit(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    caller: TrustDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> SubmissionOut:
    """Stream the file to disk (hashed as it arrives), record it, and queue its validation."""
    settings = runtime.settings
    form = await receive_form(
        request, staging=store.staging_dir(settings), max_bytes=settings.max_upload_bytes
    )
    upload = form.upload
    try:
        missing = [name for name in ("dataset", "period") if not form.fields.get(name)]
        if upload is None:
            missing.insert(0, "file")
        if missing:
            raise Problem(
                422,
                f"The form needs the field(s) {', '.join(missing)}.",
                type_="invalid",
                errors=[{"field": name, "message": "required"} for name in missing],
            )
        assert upload is not None
        submission, created = await run_in_threadpool(
            _record,
            runtime,
            caller,
            form.fields["dataset"],
            form.fields["period"],
            upload,
            idempotency_key,
        )
    finally:
        if upload is not None:
            upload.path.unlink(missing_ok=True)  # moved into place when recorded
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/submissions/{submission.id}"
    return submission


def _record(
    runtime: Runtime,
    caller: auth.Principal,
    dataset: str,
    period: str,
    upload: submissions.Upload,
    idempotency_key: str | None,
) -> tuple[SubmissionOut, bool]:
    with session_scope(runtime.factory, relay=runtime.relay) as session:
        auth.acting(session, caller)  # its own session: the event names the caller's token
        submission, created = submissions.receive(
            session=session,
            settings=runtime.settings,
            org_code=caller.org_code,
            dataset_code=dataset,
            period=period,
            upload=upload,
            idempotency_key=idempotency_key,
        )
        body = SubmissionOut.of(submission)
    return body, created


def _readable(session: SessionDep, submission_id: str, caller: auth.Principal) -> Submission:
    return submissions.readable(
        session=session, submission_id=submission_id, org_code=caller.org_code, kind=caller.kind
    )


@router.get("/v1/submissions", summary="Submissions (a trust's own; an auditor's all)")
def list_submissions(
    session: SessionDep,
    caller: ReaderDep,
    dataset: str | None = None,
    period: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = None,
    status: SubmissionStatus | None = None,
    org_code: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[SubmissionOut]:
    """Newest first."""
    rows = submissions.visible(
        session=session,
        org_code=caller.org_code,
        kind=caller.kind,
        trust_code=org_code,
        dataset_code=dataset,
        period=period,
        status=status,
        limit=limit,
        offset=offset,
    )
    return [
        SubmissionOut.of(row, with_values=submissions.shows_values(caller.kind)) for row in rows
    ]


@router.get("/v1/submissions/{submission_id}", summary="One submission and its status")
def get_submission(submission_id: str, session: SessionDep, caller: ReaderDep) -> SubmissionOut:
    """Status, rows read, error count, revision, and warnings: values far outside the trust's
    own history of the item (``[{item, period, org_code, value, mean, upl, lpl, message}]``;
    an auditor sees which item and month, never the figures)."""
    submission = _readable(session, submission_id, caller)
    return SubmissionOut.of(submission, with_values=submissions.shows_values(caller.kind))


@router.get(
    "/v1/submissions/{submission_id}/errors",
    summary="Row-level errors of a submission (JSON, or ?format=csv)",
    response_model=list[SubmissionErrorOut],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def submission_errors(
    submission_id: str,
    session: SessionDep,
    caller: ReaderDep,
    format: Literal["json", "csv"] = "json",
) -> list[SubmissionErrorOut] | Response:
    """``[{row, column, check, value, message}]``; auditors see no row values, in neither
    ``value`` nor ``message`` (worded from the check and the column alone)."""
    submission = _readable(session, submission_id, caller)
    with_value = submissions.shows_values(caller.kind)
    errors = submissions.shown_errors(session=session, submission=submission, with_value=with_value)
    # Errors quote the file's cells: every reading of them is traced, as extract downloads are.
    audit.record(
        session=session,
        actor=caller.org_code,
        action="submission.errors_read",
        subject_type="submission",
        subject_id=submission.id,
        detail={"with_values": with_value, "format": format, "errors": len(errors)},
    )
    if format == "csv":
        name = f"submission-{submission.id}-errors.csv"
        return Response(
            submissions.errors_csv(errors),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return [SubmissionErrorOut.model_validate(error, from_attributes=True) for error in errors]
