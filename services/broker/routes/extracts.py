"""Extracts: what each body receives, as metadata, manifest and the Parquet file itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from services.broker.dependencies import RuntimeDep, SessionDep, require
from services.broker.responses import ExtractManifest, ExtractOut
from services.catalogue import auth, extracts, store
from services.catalogue.models import Extract
from services.catalogue.states import OrgKind

router = APIRouter(tags=["extracts"])

ReaderDep = Annotated[auth.Principal, Depends(require(OrgKind.OVERSIGHT_BODY, OrgKind.AUDITOR))]
BodyDep = Annotated[auth.Principal, Depends(require(OrgKind.OVERSIGHT_BODY))]
PARQUET = "application/vnd.apache.parquet"


@router.get(
    "/v1/extracts",
    summary="Extracts (a body's own; every one for an auditor)",
    response_model_exclude_unset=True,
)
def list_extracts(
    session: SessionDep, caller: ReaderDep, request_id: str | None = None
) -> list[ExtractOut]:
    """Newest first, with how each revision was delivered: the channel and a plain status,
    never where on the server it went nor the raw error of a failed attempt."""
    found = extracts.visible(
        session=session, org_code=caller.org_code, kind=caller.kind, request_id=request_id
    )
    return [ExtractOut.of(extract, delivery) for extract, delivery in found]


@router.get("/v1/extracts/{extract_id}/manifest", summary="What an extract holds and where from")
def extract_manifest(extract_id: str, session: SessionDep, caller: ReaderDep) -> ExtractManifest:
    """Rows, sha256, schema, source submissions, missing trusts."""
    extract = extracts.readable(
        session=session, extract_id=extract_id, org_code=caller.org_code, kind=caller.kind
    )
    return ExtractManifest.model_validate(extract.manifest)


def parquet_file(runtime: RuntimeDep, extract: Extract) -> FileResponse:
    """The extract's Parquet file as a download."""
    return FileResponse(
        store.absolute(runtime.settings, extract.path),
        media_type=PARQUET,
        filename=extracts.delivery_filename(extract),
        headers={"ETag": f'"{extract.sha256}"'},
    )


@router.get(
    "/v1/extracts/{extract_id}/download",
    summary="The extract as Parquet (the owning body only)",
    response_class=FileResponse,
    responses={200: {"content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}}}},
)
def download_extract(
    extract_id: str, session: SessionDep, runtime: RuntimeDep, caller: BodyDep
) -> FileResponse:
    """The Parquet file; every download is in the audit log."""
    extract = extracts.download(session=session, extract_id=extract_id, org_code=caller.org_code)
    return parquet_file(runtime, extract)
