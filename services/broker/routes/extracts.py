"""Extracts: what each body receives, as metadata, manifest and the Parquet file itself."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy import select

from services.broker.dependencies import RuntimeDep, SessionDep, require
from services.catalogue import audit, auth, extracts, store
from services.catalogue.errors import NotFound
from services.catalogue.models import Extract, ExtractDelivery

router = APIRouter(tags=["extracts"])

ReaderDep = Annotated[auth.Principal, Depends(require("oversight_body", "auditor"))]
BodyDep = Annotated[auth.Principal, Depends(require("oversight_body"))]
PARQUET = "application/vnd.apache.parquet"


def _owned(session: SessionDep, extract_id: str, caller: auth.Principal) -> Extract:
    extract = session.get(Extract, extract_id)
    if extract is None or (
        caller.kind == "oversight_body" and extract.body_code != caller.org_code
    ):
        # Another body's extract is not found: its existence is not revealed.
        raise NotFound(f"No extract has the id {extract_id!r}.")
    return extract


@router.get("/v1/extracts", summary="Extracts (a body's own; every one for an auditor)")
def list_extracts(
    session: SessionDep, caller: ReaderDep, request_id: str | None = None
) -> list[dict[str, Any]]:
    """Newest first, with how each revision was delivered: the channel and a plain status,
    never where on the server it went nor the raw error of a failed attempt."""
    query = select(Extract).order_by(Extract.created_at.desc(), Extract.id)
    if caller.kind == "oversight_body":
        query = query.where(Extract.body_code == caller.org_code)
    if request_id is not None:
        query = query.where(Extract.request_id == request_id)
    rows = session.scalars(query).all()
    deliveries = {
        d.extract_id: d
        for d in session.scalars(
            select(ExtractDelivery).where(ExtractDelivery.extract_id.in_([e.id for e in rows]))
        )
    }
    return [extracts.as_dict(e, deliveries.get(e.id)) for e in rows]


@router.get("/v1/extracts/{extract_id}/manifest", summary="What an extract holds and where from")
def extract_manifest(extract_id: str, session: SessionDep, caller: ReaderDep) -> dict[str, Any]:
    """Rows, sha256, schema, source submissions, missing trusts."""
    return extracts.manifest(_owned(session, extract_id, caller))


@router.get(
    "/v1/extracts/{extract_id}/download",
    summary="The extract as Parquet (the owning body only)",
    response_class=FileResponse,
    responses={200: {"content": {PARQUET: {}}}},
)
def download_extract(
    extract_id: str, session: SessionDep, runtime: RuntimeDep, caller: BodyDep
) -> FileResponse:
    """The Parquet file; every download is in the audit log."""
    extract = _owned(session, extract_id, caller)
    audit.record(
        session=session,
        actor=caller.org_code,
        action="extract.downloaded",
        subject_type="extract",
        subject_id=extract.id,
        detail={"revision": extract.revision},
    )
    return FileResponse(
        store.absolute(runtime.settings, extract.path),
        media_type=PARQUET,
        filename=extracts.delivery_filename(extract),
        headers={"ETag": f'"{extract.sha256}"'},
    )
