"""schemathesis against the app's own ``/openapi.json``: every operation, as each role.

Generated requests (valid and invalid) must never get a 5xx, and every response must match
what the OpenAPI document says of it (schema of documented statuses). The app runs in process
(ASGI) over a real migrated database with the in-process worker, with a few organisations and a
request already there so that paths can hit real resources. The run is bounded:
``DRB_FUZZ_EXAMPLES`` examples per operation and role (default 25; about a minute or two).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.broker.app import create_app
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
from services.validator import worker
from tests.api_calls import register_organisation
from tests.conftest import ADMIN_TOKEN, bearer
from tests.databases import migrate_database

EXAMPLES = int(os.environ.get("DRB_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "var"
    settings_ = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir.parent / 'broker.sqlite3'}",
        redis_url=None,
        admin_token=ADMIN_TOKEN,
        sweep_interval_seconds=0.5,
        # Thousands of calls a minute with one token each: the limiter has its own tests.
        rate_limit_per_minute=0,
        upload_rate_limit_per_minute=0,
    )
    migrate_database(settings_.sqlalchemy_url)
    booted = boot(settings_)
    handle = worker.start(booted, threads=2)
    try:
        yield booted
    finally:
        handle.stop()
        booted.close()


@pytest.fixture(scope="module")
def role_headers(fuzz_runtime: Runtime) -> dict[str, dict[str, str]]:
    """A token per role, and a request so that the request paths have something to find."""
    admin = bearer(ADMIN_TOKEN)
    tokens: dict[str, dict[str, str]] = {"steward": admin}
    with TestClient(create_app(fuzz_runtime)) as client:
        for code, kind, region in (
            ("RJ1", "trust", "Y56"),
            ("CQC", "oversight_body", None),
            ("NAO", "auditor", None),
        ):
            tokens[kind] = register_organisation(client, admin, code, kind, region)
        request = {
            "title": "t",
            "purpose": "p",
            "legal_basis": "l",
            "items": ["ae_attendances"],
            "organisations": ["RJ1"],
            "period_start": "2018-04",
            "period_end": "2018-06",
            "due_days": 20,
        }
        made = client.post("/v1/requests", json=request, headers=tokens["oversight_body"])
        assert made.status_code == 201, made.text
    return tokens


@pytest.fixture(scope="module")
def api_schema(fuzz_runtime: Runtime) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_runtime))


ROLES = ("trust", "oversight_body", "auditor", "steward")


def test_no_server_error_and_every_response_matches_the_schema(
    api_schema: Any, role_headers: dict[str, dict[str, str]]
) -> None:
    """Each operation of /openapi.json, as each role, with generated data (valid and not)."""
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30, "the schema lists fewer operations than the app serves"

    def fuzz(operation: Any, headers: dict[str, str]) -> None:
        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        run()

    for operation in operations:
        for role in ROLES:
            try:
                fuzz(operation, role_headers[role])
            except Exception as error:  # every operation and role is reported, not the first
                failures.append(f"{operation.method.upper()} {operation.path} as {role}: {error}")
    assert failures == [], "\n\n".join(failures)
