"""The shared catalogue: items and dataset definitions (any role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

import schemas
from schemas.compile import publication
from services.broker.dependencies import PrincipalDep, RuntimeDep, SessionDep
from services.broker.responses import (
    DatasetDefinition,
    DatasetSummary,
    ItemMatch,
    ItemOut,
    TableSchema,
)
from services.catalogue import datasets
from services.catalogue.errors import Invalid

router = APIRouter(tags=["catalogue"])


class SchemaJSONResponse(JSONResponse):
    """JSON served as a JSON Schema document (a Frictionless Table Schema)."""

    media_type = "application/schema+json"


@router.get("/v1/items", summary="Every item in the catalogue")
def list_items(session: SessionDep, _caller: PrincipalDep) -> list[ItemOut]:
    """Items with the datasets that carry them and those they can be derived from."""
    carried = datasets.datasets_by_item(session=session)
    derivable: dict[str, list[str]] = {}
    for dataset in schemas.DATASETS.values():
        for derivation in dataset.derivations:
            derivable.setdefault(derivation.item, []).append(dataset.code)
    return [
        ItemOut(
            code=item.code,
            name=item.name,
            definition=item.definition,
            unit=item.unit,
            value_type=item.value_type,
            aggregation=item.aggregation,
            org_aggregation=item.org_aggregation,
            disaggregation=list(item.disaggregation),
            primary_dataset=item.primary_dataset,
            datasets=carried.get(item.code, []),
            derivable_from=sorted(derivable.get(item.code, [])),
        )
        for item in datasets.items(session=session)
    ]


@router.get("/v1/items/search", summary="Items ranked by similarity of name and definition")
def search_items(
    session: SessionDep,
    runtime: RuntimeDep,
    _caller: PrincipalDep,
    q: Annotated[str, Query(min_length=1, max_length=200, description="What you are after.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[ItemMatch]:
    """The nearest catalogue items, best first, each with a score from 0 to 100."""
    if not q.strip():
        raise Invalid("Say what you are looking for.", [{"field": "q", "message": "blank"}])
    catalogue = runtime.coverage.snapshot(session).catalogue
    assert catalogue is not None
    return [
        ItemMatch(code=m.code, name=m.name, score=m.score, matched=m.matched)
        for m in catalogue.search.search(q, limit=limit)
    ]


@router.get("/v1/datasets", summary="Every dataset (the returns trusts send)")
def list_datasets(session: SessionDep, _caller: PrincipalDep) -> list[DatasetSummary]:
    """Datasets at their current version."""
    return [
        DatasetSummary(
            code=row.code,
            version=row.current_version,
            title=row.title,
            period_type=row.period_type,
            items=datasets.carried_items(session=session, code=row.code),
        )
        for row in datasets.listed(session=session)
    ]


@router.get(
    "/v1/datasets/{code}",
    summary="A dataset's full definition",
    response_model_exclude_unset=True,
)
def get_dataset(
    code: str, session: SessionDep, _caller: PrincipalDep, version: int | None = None
) -> DatasetDefinition:
    """Columns, checks, key, items and burden parameters; ``?version=N`` for an older one."""
    published = datasets.published(session=session, code=code, version=version)
    return DatasetDefinition.model_validate(
        {
            **published.definition,
            "published_at": published.published_at.isoformat(),
            "versions": datasets.version_numbers(session=session, code=code),
        }
    )


@router.get(
    "/v1/datasets/{code}/template.csv",
    summary="The header row of the return, as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def template_csv(code: str, session: SessionDep, _caller: PrincipalDep) -> Response:
    """A CSV with the dataset's columns in order, ready to fill in."""
    dataset = datasets.current(session=session, code=code)
    return Response(
        publication.template_csv(dataset),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{code}-template.csv"'},
    )


@router.get(
    "/v1/datasets/{code}/table-schema.json",
    summary="The definition as a Frictionless Table Schema",
    response_class=SchemaJSONResponse,
)
def table_schema(code: str, session: SessionDep, _caller: PrincipalDep) -> TableSchema:
    """Frictionless Table Schema, for tools that validate files before sending them."""
    return TableSchema.model_validate(
        publication.table_schema(datasets.current(session=session, code=code))
    )
