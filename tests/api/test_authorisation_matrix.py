"""Who may do what, for every route the app serves: one table, checked against ``app.routes``.

The table below is the access model of API.md. The test walks the app's own routes (a route that
is not in the table fails it, and so does a table row with no route), and calls each one
- with no token, and with a revoked token: 401 (public routes excepted),
- as each role (trust, oversight body, auditor, steward): a success for the roles the table
  allows, 403 (or 404 where existence must not leak) for every other,
- as the *other* trust and the *other* body, on resources that belong to the first ones: never a
  success.
Everything runs against the real app, database and worker: the resources (a request, accepted
returns, an extract) are made through the API first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from services.broker.app import create_app
from services.catalogue.runtime import Runtime
from services.validator import worker
from tests.api_calls import bearer, issue_token
from tests.conftest import ADMIN_TOKEN, register
from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]

TRUST, BODY, AUDITOR, STEWARD = "trust", "oversight_body", "auditor", "steward"
ROLES = frozenset({TRUST, BODY, AUDITOR, STEWARD})
OTHER_TRUST, OTHER_BODY = "other_trust", "other_body"
PUBLIC = "public"  # anyone, no token needed
SIGNED_IN_PAGE = "page"  # a web page: no token -> sent to the sign-in page

MONTHS = ("2018-04", "2018-05")


@dataclass(frozen=True)
class Rule:
    """Who may call a route, and whose resources its path names."""

    allowed: frozenset[str]
    anonymous: str = "401"  # "401", PUBLIC or SIGNED_IN_PAGE
    # Principals that must be refused on the first trust's / first body's resources.
    not_for: frozenset[str] = frozenset()


def rule(*allowed: str, anonymous: str = "401", not_for: tuple[str, ...] = ()) -> Rule:
    return Rule(frozenset(allowed), anonymous, frozenset(not_for))


OTHERS = (OTHER_TRUST, OTHER_BODY)

# The access model, one row per (method, path). Keep it in step with API.md.
MATRIX: dict[tuple[str, str], Rule] = {
    # Public
    ("GET", "/"): rule(*ROLES, anonymous=PUBLIC),
    ("GET", "/v1/health"): rule(*ROLES, anonymous=PUBLIC),
    ("GET", "/openapi.json"): rule(*ROLES, anonymous=PUBLIC),
    ("GET", "/docs"): rule(*ROLES, anonymous=PUBLIC),
    ("GET", "/redoc"): rule(*ROLES, anonymous=PUBLIC),
    ("MOUNT", "/assets/nhsuk"): rule(*ROLES, anonymous=PUBLIC),
    ("MOUNT", "/assets/chart.js"): rule(*ROLES, anonymous=PUBLIC),
    ("MOUNT", "/assets/web"): rule(*ROLES, anonymous=PUBLIC),
    ("MOUNT", "/assets/swagger-ui"): rule(*ROLES, anonymous=PUBLIC),
    ("MOUNT", "/assets/redoc"): rule(*ROLES, anonymous=PUBLIC),
    # Organisations: stewards register them, every role reads the register. The first trust's
    # tokens: its admin issues them (a steward only its first admin token, which it has);
    # it, auditors and stewards see them; its admin or a steward revokes one.
    ("POST", "/v1/organisations"): rule(STEWARD),
    ("GET", "/v1/organisations"): rule(*ROLES),
    ("GET", "/v1/organisations/{code}"): rule(*ROLES),
    ("POST", "/v1/organisations/{code}/tokens"): rule(TRUST, not_for=OTHERS),
    ("GET", "/v1/organisations/{code}/tokens"): rule(TRUST, AUDITOR, STEWARD, not_for=OTHERS),
    ("DELETE", "/v1/organisations/{code}/tokens/{token_id}"): rule(TRUST, STEWARD, not_for=OTHERS),
    ("PUT", "/v1/organisations/{code}/delivery"): rule(STEWARD),
    # The catalogue: every role.
    ("GET", "/v1/items"): rule(*ROLES),
    ("GET", "/v1/items/search"): rule(*ROLES),
    ("GET", "/v1/datasets"): rule(*ROLES),
    ("GET", "/v1/datasets/{code}"): rule(*ROLES),
    ("GET", "/v1/datasets/{code}/template.csv"): rule(*ROLES),
    ("GET", "/v1/datasets/{code}/table-schema.json"): rule(*ROLES),
    # Requests: bodies register and withdraw their own; trusts read those that include them.
    ("POST", "/v1/requests"): rule(BODY),
    ("GET", "/v1/requests"): rule(TRUST, BODY, AUDITOR),
    ("GET", "/v1/requests/{request_id}"): rule(TRUST, BODY, AUDITOR, not_for=OTHERS),
    ("POST", "/v1/requests/{request_id}/withdraw"): rule(BODY, not_for=OTHERS),
    # Asks and submissions: trusts send; auditors read status, never values.
    ("GET", "/v1/asks"): rule(TRUST, BODY, AUDITOR),
    ("POST", "/v1/submissions"): rule(TRUST),
    ("GET", "/v1/submissions"): rule(TRUST, AUDITOR),
    ("GET", "/v1/submissions/{submission_id}"): rule(TRUST, AUDITOR, not_for=OTHERS),
    ("GET", "/v1/submissions/{submission_id}/errors"): rule(TRUST, AUDITOR, not_for=OTHERS),
    # Extracts: the owning body downloads; auditors read metadata only.
    ("GET", "/v1/extracts"): rule(BODY, AUDITOR),
    ("GET", "/v1/extracts/{extract_id}/manifest"): rule(BODY, AUDITOR, not_for=OTHERS),
    ("GET", "/v1/extracts/{extract_id}/download"): rule(BODY, not_for=OTHERS),
    # Notifications: a trust or a body reads its own; auditors and stewards every one.
    ("GET", "/v1/notifications"): rule(*ROLES),
    # Measurement for improvement.
    ("POST", "/v1/spc"): rule(*ROLES),
    ("GET", "/v1/indicators/{item}/spc"): rule(TRUST, BODY, AUDITOR, not_for=OTHERS),
    # Reports and the audit log: auditors.
    ("GET", "/v1/reports/burden"): rule(AUDITOR),
    ("GET", "/v1/reports/burden/ledger"): rule(AUDITOR),
    ("GET", "/v1/reports/completeness"): rule(AUDITOR),
    ("GET", "/v1/audit-events"): rule(AUDITOR),
    ("GET", "/v1/audit-events/verify"): rule(AUDITOR),
    ("GET", "/v1/audit-events/head"): rule(AUDITOR),
    # The auditors' web pages (a bearer header works as well as a session).
    ("GET", "/sign-in"): rule(*ROLES, anonymous=PUBLIC),
    ("POST", "/sign-in"): rule(*ROLES, anonymous=PUBLIC),
    ("POST", "/sign-out"): rule(*ROLES, anonymous=PUBLIC),
    ("GET", "/reports/burden"): rule(AUDITOR, anonymous=SIGNED_IN_PAGE),
    ("GET", "/reports/burden.csv"): rule(AUDITOR, anonymous=SIGNED_IN_PAGE),
    ("GET", "/reports/burden/ledger"): rule(AUDITOR, anonymous=SIGNED_IN_PAGE),
    ("GET", "/trusts"): rule(TRUST, BODY, AUDITOR, anonymous=SIGNED_IN_PAGE),
    # The first trust's page: its own trust, the body whose request names it, any auditor.
    ("GET", "/trusts/{code}"): rule(
        TRUST, BODY, AUDITOR, anonymous=SIGNED_IN_PAGE, not_for=(OTHER_TRUST, OTHER_BODY)
    ),
    # The bodies' pages: their requests (auditors read them too), the request form and its
    # helpers (bodies only), and the owning body's extract downloads.
    ("GET", "/requests"): rule(BODY, AUDITOR, anonymous=SIGNED_IN_PAGE),
    ("GET", "/requests/new"): rule(BODY, anonymous=SIGNED_IN_PAGE),
    ("POST", "/requests/new"): rule(BODY, anonymous=SIGNED_IN_PAGE),
    ("POST", "/requests/preview"): rule(BODY, anonymous=SIGNED_IN_PAGE),
    ("GET", "/requests/items"): rule(BODY, anonymous=SIGNED_IN_PAGE),
    ("GET", "/requests/{request_id}"): rule(
        BODY, AUDITOR, anonymous=SIGNED_IN_PAGE, not_for=OTHERS
    ),
    ("GET", "/extracts/{extract_id}.parquet"): rule(BODY, anonymous=SIGNED_IN_PAGE, not_for=OTHERS),
}

# The request form's fields for the first body's request (a "Check coverage": nothing is made).
REQUEST_FORM = {
    "title": "A&E",
    "purpose": "Urgent care review",
    "legal_basis": "HSCA 2008 s64",
    "items": "ae_attendances",
    "population": "list",
    "org_codes": "RJ1",
    "period_start": MONTHS[0],
    "period_end": MONTHS[-1],
    "period_type": "month",
    "org_level": "trust",
    "due_days": "20",
    "action": "preview",
}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, read from ``app.routes`` (included routers too)."""
    found: set[tuple[str, str]] = set()

    def visit(routes: list[Any], prefix: str = "") -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # an included router (FastAPI >= 0.160)
                inner = route.include_context.prefix
                visit(list(route.original_router.routes), prefix + inner)
            elif isinstance(route, APIRoute | Route):
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method, prefix + route.path))
            elif isinstance(route, Mount):
                found.add(("MOUNT", prefix + route.path))
            else:
                raise AssertionError(f"a route of an unknown kind: {route!r}")

    visit(list(app.routes))
    return found


@dataclass
class World:
    """The principals and the resources they own, made through the API."""

    client: TestClient
    headers: dict[str, Headers]
    request_id: str = ""
    spare_request_id: str = ""
    submission_id: str = ""
    extract_id: str = ""
    spare_token_id: str = ""
    made: list[str] = field(default_factory=list)


def _request_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "A&E",
        "purpose": "Urgent care review",
        "legal_basis": "HSCA 2008 s64",
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
        "period_start": MONTHS[0],
        "period_end": MONTHS[-1],
        "due_days": 20,
    }
    body.update(overrides)
    return body


def _send(client: TestClient, trust: Headers, period: str) -> str:
    content = ae_monthly_sample(org_code="RJ1", period=period).write_csv().encode()
    sent = client.post(
        "/v1/submissions",
        headers=trust,
        data={"dataset": "ae_monthly", "period": period},
        files={"file": ("ae.csv", content, "text/csv")},
    )
    assert sent.status_code in (200, 202), sent.text
    submission_id = str(sent.json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = client.get(f"/v1/submissions/{submission_id}", headers=trust).json()["status"]
        if state in ("accepted", "rejected"):
            assert state == "accepted"
            return submission_id
        time.sleep(0.05)
    raise AssertionError("the return was not validated in time")


@pytest.fixture
def world(runtime: Runtime) -> Iterator[World]:
    handle = worker.start(runtime, threads=2)
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            headers = {
                TRUST: register(client, "RJ1", "trust", "Y56"),
                OTHER_TRUST: register(client, "R1K", "trust", "Y56"),
                BODY: register(client, "CQC", "oversight_body"),
                OTHER_BODY: register(client, "NHSE", "oversight_body"),
                AUDITOR: register(client, "NAO", "auditor"),
                STEWARD: bearer(ADMIN_TOKEN),
            }
            made = World(client=client, headers=headers)
            registered = client.post("/v1/requests", json=_request_body(), headers=headers[BODY])
            assert registered.status_code == 201, registered.text
            made.request_id = registered.json()["id"]
            spare = client.post(
                "/v1/requests",
                json=_request_body(title="Spare", items=["ae_breaches"]),
                headers=headers[BODY],
            )
            assert spare.status_code == 201, spare.text
            made.spare_request_id = spare.json()["id"]
            for month in MONTHS:
                made.submission_id = _send(client, headers[TRUST], month)
            deadline = time.monotonic() + 60
            while not made.extract_id and time.monotonic() < deadline:
                listed = client.get("/v1/extracts", headers=headers[BODY]).json()
                if listed:
                    made.extract_id = listed[0]["id"]
                time.sleep(0.1)
            assert made.extract_id, "no extract was built for the complete request"
            # Issued by RJ1's admin (its first token): the steward may issue RJ1 no more.
            made.spare_token_id = issue_token(client, "RJ1", headers[TRUST])["id"]
            revoked = issue_token(client, "RJ1", headers[TRUST])
            gone = client.delete(
                f"/v1/organisations/RJ1/tokens/{revoked['id']}", headers=headers[STEWARD]
            )
            assert gone.status_code == 204
            headers["revoked"] = bearer(revoked["token"])
            yield made
    finally:
        handle.stop()


Call = dict[str, Any]


def call_for(key: tuple[str, str], world: World) -> Call:
    """A well-formed request for the route: the allowed roles succeed with it."""
    method, path = key
    params = {
        "code": "RJ1",
        "request_id": world.request_id,
        "submission_id": world.submission_id,
        "extract_id": world.extract_id,
        "item": "ae_attendances",
        "token_id": world.spare_token_id,
    }
    special: dict[tuple[str, str], Call] = {
        ("GET", "/v1/items/search"): {"params": {"q": "attendances"}},
        ("GET", "/requests/items"): {"params": {"q": "attendances"}},
        ("POST", "/requests/new"): {"data": REQUEST_FORM},
        ("POST", "/requests/preview"): {"data": REQUEST_FORM},
        ("GET", "/v1/datasets/{code}"): {"path": {"code": "ae_monthly"}},
        ("GET", "/v1/datasets/{code}/template.csv"): {"path": {"code": "ae_monthly"}},
        ("GET", "/v1/datasets/{code}/table-schema.json"): {"path": {"code": "ae_monthly"}},
        ("POST", "/v1/organisations"): {
            "json": {"code": f"X{uuid.uuid4().hex[:6].upper()}", "name": "New", "kind": "trust"}
        },
        ("PUT", "/v1/organisations/{code}/delivery"): {
            "path": {"code": "CQC"},
            "json": {"channel": "api"},
        },
        ("POST", "/v1/requests"): {"params": {"dry_run": "true"}, "json": _request_body()},
        ("POST", "/v1/requests/{request_id}/withdraw"): {
            "path": {"request_id": world.spare_request_id}
        },
        ("POST", "/v1/submissions"): {
            "data": {"dataset": "ae_monthly", "period": "2018-06"},
            "files": {
                "file": (
                    "ae.csv",
                    ae_monthly_sample(org_code="RJ1", period="2018-06").write_csv().encode(),
                    "text/csv",
                )
            },
        },
        ("POST", "/v1/spc"): {
            "json": {
                "points": [
                    {"period": "2025-01", "value": 1.0},
                    {"period": "2025-02", "value": 2.0},
                    {"period": "2025-03", "value": 1.5},
                ]
            }
        },
        ("GET", "/v1/indicators/{item}/spc"): {
            "params": {"org_code": "RJ1", "period_start": MONTHS[0], "period_end": MONTHS[-1]}
        },
        ("MOUNT", "/assets/nhsuk"): {"path_override": "/assets/nhsuk/nhsuk-frontend.min.js"},
        ("MOUNT", "/assets/chart.js"): {"path_override": "/assets/chart.js/chart.umd.min.js"},
        ("MOUNT", "/assets/web"): {"path_override": "/assets/web/init.js"},
        ("MOUNT", "/assets/swagger-ui"): {"path_override": "/assets/swagger-ui/swagger-ui.css"},
        ("MOUNT", "/assets/redoc"): {"path_override": "/assets/redoc/redoc.standalone.js"},
    }
    spec = dict(special.get(key, {}))
    params.update(spec.pop("path", {}))
    url = spec.pop("path_override", None) or path.format(**params)
    return {"method": "GET" if method == "MOUNT" else method, "url": url, **spec}


def send(world: World, key: tuple[str, str], who: str | None) -> int:
    spec = call_for(key, world)
    headers = world.headers[who] if who is not None else {}
    response = world.client.request(headers=headers, follow_redirects=False, **spec)
    assert response.status_code < 500, f"{key} as {who}: {response.status_code} {response.text}"
    return response.status_code


def test_every_route_is_in_the_table(runtime: Runtime) -> None:
    served = served_routes(create_app(runtime))
    assert served - MATRIX.keys() == set(), "routes with no row in the access table"
    assert MATRIX.keys() - served == set(), "access table rows with no route"


def test_the_access_model_holds_for_every_route(world: World) -> None:
    served = served_routes(world.client.app)  # type: ignore[arg-type]
    failures: list[str] = []
    # Refusals first, so that a route that changes state (withdraw, revoke) is tried by those
    # who must be refused before the one who may.
    ordered = sorted(served & MATRIX.keys())
    for key in ordered:
        rule_ = MATRIX[key]
        for who in (None, "revoked"):
            status = send(world, key, who)
            if rule_.anonymous == "401" and status != 401:
                failures.append(f"{key} with {who or 'no'} token: {status}, not 401")
            if rule_.anonymous == SIGNED_IN_PAGE and status not in (303, 307, 401):
                failures.append(f"{key} with {who or 'no'} token: {status}, not to sign-in")
            if rule_.anonymous == PUBLIC and status in (401, 403):
                failures.append(f"{key} is public but answered {status} with {who or 'no'} token")
        for who in sorted(rule_.not_for):
            status = send(world, key, who)
            if status < 400 or status not in (403, 404):
                failures.append(f"{key} as {who} on another's resource: {status}")
        for role in sorted(ROLES - rule_.allowed):
            status = send(world, key, role)
            if status not in (403, 404):
                failures.append(f"{key} as {role}: {status}, not 403")
        for role in sorted(rule_.allowed):
            if rule_.anonymous == PUBLIC and key[0] == "POST":
                continue  # the sign-in and sign-out forms: checked by the web tests
            status = send(world, key, role)
            success = range(200, 400) if rule_.anonymous == PUBLIC else range(200, 300)
            if status not in success:
                failures.append(f"{key} as {role}: {status}, not a success")
    assert failures == []


def test_a_route_missing_from_the_table_is_caught(runtime: Runtime) -> None:
    app = create_app(runtime)

    @app.get("/v1/new-thing")
    def new_thing() -> dict[str, str]:
        return {}

    assert served_routes(app) - MATRIX.keys() == {("GET", "/v1/new-thing")}
