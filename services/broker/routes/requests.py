"""Data requests (oversight bodies register; trusts and auditors read)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.broker.dependencies import PrincipalDep, RuntimeDep, SessionDep, require
from services.broker.responses import RequestDryRun, RequestOut, RequestRegistered
from services.catalogue import auth, data_requests
from services.catalogue.models import DataRequest
from services.catalogue.states import OrgKind, RequestStatus

router = APIRouter(tags=["requests"])

# Bounds on what one request may name: the catalogue has dozens of items, the national lists
# about 30,000 organisations (every trust, practice and site), so these are never reached by a
# real request, only by a hostile one.
MAX_ITEMS = 500
MAX_ORGANISATIONS = 50_000
CODE_CHARS = 64

BodyDep = Annotated[auth.Principal, Depends(require(OrgKind.OVERSIGHT_BODY))]
ReaderDep = Annotated[
    auth.Principal, Depends(require(OrgKind.OVERSIGHT_BODY, OrgKind.AUDITOR, OrgKind.TRUST))
]


class Selector(BaseModel):
    """A population given by kind or region instead of a list of codes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["trust"] | None = None
    region: str | None = Field(default=None, min_length=1, max_length=16, examples=["Y56"])


class RequestIn(BaseModel):
    """A data request, as API.md defines it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=5000)
    legal_basis: str = Field(min_length=1, max_length=2000)
    items: list[Annotated[str, Field(min_length=1, max_length=CODE_CHARS)]] = Field(
        min_length=1, max_length=MAX_ITEMS, examples=[["ae_attendances", "ae_breaches"]]
    )
    organisations: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=16)]],
            Field(max_length=MAX_ORGANISATIONS),
        ]
        | Selector
    ) = Field(
        description='ODS codes of trusts, or {"kind": "trust"}, or {"region": CODE}.',
        examples=[["RJ1", "R0A"]],
    )
    period_start: str = Field(max_length=16, examples=["2025-01"])
    period_end: str = Field(max_length=16, examples=["2025-06"])
    period_type: Literal["month", "quarter", "year"] = "month"
    org_level: Literal["trust", "region", "national"] = "trust"
    due_days: int = Field(default=20, ge=0, le=365)

    def spec(self) -> data_requests.RequestSpec:
        """The domain's view of the request."""
        population: list[str] | dict[str, str]
        if isinstance(self.organisations, Selector):
            population = self.organisations.model_dump(exclude_none=True)
        else:
            population = list(self.organisations)
        return data_requests.RequestSpec(
            title=self.title,
            purpose=self.purpose,
            legal_basis=self.legal_basis,
            items=tuple(self.items),
            organisations=population,
            period_start=self.period_start,
            period_end=self.period_end,
            period_type=self.period_type,
            org_level=self.org_level,
            due_days=self.due_days,
        )


@router.post(
    "/v1/requests",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestRegistered,
    summary="Register a data request, or check it with ?dry_run=true",
    responses={200: {"model": RequestDryRun, "description": "A dry run: nothing registered."}},
)
def register_request(
    body: RequestIn,
    session: SessionDep,
    runtime: RuntimeDep,
    caller: BodyDep,
    response: Response,
    dry_run: bool = False,
) -> RequestRegistered | JSONResponse:
    """Coverage per item and in total, the burden, and (unless a dry run) the new asks."""
    outcome = data_requests.register(
        session=session,
        index=runtime.coverage,
        body_code=caller.org_code,
        spec=body.spec(),
        dry_run=dry_run,
    )
    coverage = outcome.check.coverage_dict()
    burden = outcome.check.burden.figures()
    if outcome.request is None:
        dry = RequestDryRun.model_validate(
            {
                "id": None,
                "status": "dry_run",
                "org_count": len(outcome.org_codes),
                "coverage": coverage,
                "burden": burden,
                "asks": {"would_create": outcome.check.burden.returns_imposed},
            }
        )
        # The 201's model does not fit a dry run: its own body, answered as it is.
        return JSONResponse(dry.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    response.headers["Location"] = f"/v1/requests/{outcome.request.id}"
    return RequestRegistered.of(
        outcome.request,
        burden=burden,
        asks={"created": outcome.asks_created, "joined": outcome.asks_joined},
    )


@router.get(
    "/v1/requests", summary="Requests the caller may read", response_model_exclude_unset=True
)
def list_requests(
    session: SessionDep,
    caller: ReaderDep,
    status_filter: Annotated[RequestStatus | None, Query(alias="status")] = None,
) -> list[RequestOut]:
    """A body's own, every request for an auditor, those that include the trust for a trust."""
    rows = data_requests.visible(session=session, org_code=caller.org_code, kind=caller.kind)
    return [
        RequestOut.of(r, burden=data_requests.burden_now(session=session, request=r))
        for r in rows
        if status_filter is None or r.status == status_filter
    ]


def _with_asks(session: SessionDep, request: DataRequest) -> RequestOut:
    """One request with its burden now and how its asks stand."""
    return RequestOut.of(
        request,
        burden=data_requests.burden_now(session=session, request=request),
        asks=data_requests.ask_counts(session=session, request_id=request.id, today=date.today()),
    )


@router.get("/v1/requests/{request_id}", summary="One request, with its asks by status")
def get_request(request_id: str, session: SessionDep, caller: ReaderDep) -> RequestOut:
    """The request as registered, its burden now and how its asks stand."""
    request = data_requests.readable(
        session=session, request_id=request_id, org_code=caller.org_code, kind=caller.kind
    )
    return _with_asks(session, request)


@router.post("/v1/requests/{request_id}/withdraw", summary="Withdraw a request (its body)")
def withdraw_request(request_id: str, session: SessionDep, caller: BodyDep) -> RequestOut:
    """Withdraw; asks that no other active request needs are cancelled, the rest kept."""
    request = data_requests.withdraw(
        session=session, request_id=request_id, body_code=caller.org_code
    )
    return _with_asks(session, request)


_ = PrincipalDep  # every route here authenticates through ReaderDep or BodyDep
