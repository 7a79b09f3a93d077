"""Organisations, tokens and roles over HTTP: the 401/403 rules of API.md."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.catalogue.auth import hash_token
from services.catalogue.models import Organisation, Token
from services.catalogue.runtime import Runtime
from tests.conftest import bearer

Headers = dict[str, str]


def assert_problem(response: object, status: int) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    return dict(body)


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer drb_not-a-real-token"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["missing", "empty", "basic-scheme", "unknown", "oversized"],
)
def test_missing_or_unknown_token_is_401(client: TestClient, headers: Headers) -> None:
    for path in ("/v1/organisations", "/v1/datasets", "/v1/items"):
        body = assert_problem(client.get(path, headers=headers), 401)
        detail = str(body["detail"])
        assert "Bearer" in detail or "token" in detail
    response = client.get("/v1/organisations", headers=headers)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_steward_registers_an_organisation(client: TestClient, admin: Headers) -> None:
    body = {"code": "RJ1", "name": "Guy's and St Thomas'", "kind": "trust", "region": "Y56"}
    created = client.post("/v1/organisations", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["code"] == "RJ1"
    assert created.json()["region_name"] == "London"
    listed = client.get("/v1/organisations", headers=admin).json()
    assert "RJ1" in [o["code"] for o in listed]
    assert client.get("/v1/organisations/RJ1", headers=admin).json()["kind"] == "trust"


def test_duplicate_code_is_409(client: TestClient, admin: Headers) -> None:
    body = {"code": "R0A", "name": "Manchester", "kind": "trust", "region": "Y62"}
    assert client.post("/v1/organisations", json=body, headers=admin).status_code == 201
    assert_problem(client.post("/v1/organisations", json=body, headers=admin), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "RJ1", "name": "x", "kind": "hospital"}, "kind"),
        ({"code": "rj1 lower", "name": "x", "kind": "trust"}, "code"),
        ({"name": "x", "kind": "trust"}, "code"),
        ({"code": "RJ1", "name": "", "kind": "trust"}, "name"),
        ({"code": "RJ1", "name": "x", "kind": "trust", "colour": "blue"}, "colour"),
    ],
)
def test_invalid_organisation_names_the_field(
    client: TestClient, admin: Headers, body: dict[str, str], field: str
) -> None:
    problem = assert_problem(client.post("/v1/organisations", json=body, headers=admin), 422)
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert field in [e["field"] for e in errors]
    assert field in str(problem["detail"])


def test_unknown_region_is_422(client: TestClient, admin: Headers) -> None:
    body = {"code": "RJ1", "name": "x", "kind": "trust", "region": "Y99"}
    problem = assert_problem(client.post("/v1/organisations", json=body, headers=admin), 422)
    assert problem["errors"] == [{"field": "region", "message": problem["errors"][0]["message"]}]  # type: ignore[index]


def test_malformed_json_is_422_not_500(client: TestClient, admin: Headers) -> None:
    response = client.post(
        "/v1/organisations",
        content=b'{"code": "RJ1", "name": ',
        headers={**admin, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert problem["errors"] == [
        {"field": "body", "message": "not valid JSON at character 24: Expecting value"}
    ]


@pytest.mark.parametrize("kind", ["trust", "oversight_body", "auditor"])
def test_only_stewards_administer(
    client: TestClient, make_org: Callable[..., Headers], kind: str
) -> None:
    headers = make_org("ORG1", kind, "Y56" if kind == "trust" else None)
    body = {"code": "NEW1", "name": "x", "kind": "trust"}
    problem = assert_problem(client.post("/v1/organisations", json=body, headers=headers), 403)
    assert kind in str(problem["detail"])
    # Its first token is its admin's: it issues its own organisation's tokens, no other's.
    assert client.post("/v1/organisations/ORG1/tokens", headers=headers).status_code == 201
    assert_problem(client.post("/v1/organisations/DRB-STEWARD/tokens", headers=headers), 403)
    body = {"channel": "api"}
    assert_problem(client.put("/v1/organisations/ORG1/delivery", json=body, headers=headers), 403)
    # Every role may read the list.
    assert client.get("/v1/organisations", headers=headers).status_code == 200


def test_tokens_are_stored_only_as_hashes(
    client: TestClient, admin: Headers, runtime: Runtime
) -> None:
    client.post(
        "/v1/organisations",
        json={"code": "CQC", "name": "CQC", "kind": "oversight_body"},
        headers=admin,
    )
    issued = client.post("/v1/organisations/CQC/tokens", json={"label": "x"}, headers=admin)
    assert issued.status_code == 201
    token = issued.json()["token"]
    with runtime.factory() as session:
        stored = session.scalars(select(Token).where(Token.org_code == "CQC")).all()
    assert [t.token_hash for t in stored] == [hash_token(token)]
    assert token not in {t.token_hash for t in stored}
    listed = client.get("/v1/organisations/CQC/tokens", headers=admin).json()
    assert "token" not in listed[0]
    assert listed[0]["id"] == issued.json()["id"]


def test_revoked_token_is_401(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers]
) -> None:
    headers = make_org("NHSE", "oversight_body")
    assert client.get("/v1/datasets", headers=headers).status_code == 200
    token_id = client.get("/v1/organisations/NHSE/tokens", headers=admin).json()[0]["id"]
    revoked = client.delete(f"/v1/organisations/NHSE/tokens/{token_id}", headers=admin)
    assert revoked.status_code == 204
    assert_problem(client.get("/v1/datasets", headers=headers), 401)


def test_token_for_unknown_organisation_is_404(client: TestClient, admin: Headers) -> None:
    assert_problem(client.post("/v1/organisations/NOPE/tokens", headers=admin), 404)


def test_unknown_route_is_a_problem(client: TestClient, admin: Headers) -> None:
    assert_problem(client.get("/v1/nothing-here", headers=admin), 404)


def test_admin_token_works_from_start_up(client: TestClient) -> None:
    from tests.conftest import ADMIN_TOKEN

    assert client.get("/v1/organisations", headers=bearer(ADMIN_TOKEN)).status_code == 200


# -- delivery settings: only where the operator allowed ---------------------------------------


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://AKIAABCDEFGHIJKLMNOP:s3cr3t@bucket/cqc", "credentials"),
        ("s3://bucket/cqc?access_key=AKIAABCDEFGHIJKLMNOP&secret_key=s3cr3t", "credentials"),
        ("s3://bucket/cqc?endpoint_override=169.254.169.254:80&scheme=http", "not an endpoint"),
        ("s3://bucket/cqc?proxy_options=http://proxy.example:3128", "not allowed"),
        ("file:///etc/cron.d", "outside the folders"),
        ("{outbox}/../store", "outside the folders"),
    ],
)
def test_a_delivery_setting_the_operator_did_not_allow_is_422(
    client: TestClient,
    admin: Headers,
    make_org: Callable[..., Headers],
    runtime: Runtime,
    uri: str,
    reason: str,
) -> None:
    make_org("CQC", "oversight_body")
    outbox = runtime.settings.outbox_dir.resolve()
    delivery = {"channel": "files", "uri": uri.replace("{outbox}", str(outbox))}
    refused = assert_problem(
        client.put("/v1/organisations/CQC/delivery", json=delivery, headers=admin), 422
    )
    [error] = refused["errors"]
    assert error["field"] == "uri"
    assert reason in error["message"]
    assert "s3cr3t" not in str(refused)
    # Nothing was set: the body keeps its default (the outbox).
    with runtime.factory() as session:
        organisation = session.get(Organisation, "CQC")
        assert organisation is not None
        assert organisation.delivery is None


def test_a_delivery_setting_within_the_operators_allow_lists_is_set(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    make_org("CQC", "oversight_body")
    runtime.settings = runtime.settings.model_copy(
        update={"delivery_s3_endpoints": "minio.internal:9000"}
    )
    folder = runtime.settings.outbox_dir.resolve() / "CQC"
    for sent, stored in (
        (str(folder), folder.as_uri()),  # a path is stored as the file:// URI it means
        (folder.as_uri() + "/", folder.as_uri()),
        ("s3://bucket/cqc?endpoint_override=minio.internal:9000",) * 2,
    ):
        delivery = {"channel": "files", "uri": sent}
        answer = client.put("/v1/organisations/CQC/delivery", json=delivery, headers=admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["delivery"] == {"channel": "files", "uri": stored}
