"""Statuses and job kinds are enums: every kind has its handler, and the API lists the values."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from services.catalogue.states import AskStatus, JobKind, RequestStatus, SubmissionStatus
from services.validator.handlers import HANDLERS


def test_every_kind_of_job_has_its_handler_and_nothing_else_does() -> None:
    assert set(HANDLERS) == set(JobKind)


def test_a_member_is_the_text_stored_and_shown() -> None:
    assert SubmissionStatus.ACCEPTED == "accepted"
    assert f"{AskStatus.OVERDUE}" == "overdue"
    assert [str(s) for s in SubmissionStatus] == ["received", "validating", "accepted", "rejected"]


def test_the_status_filters_list_their_values_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    def values(path: str) -> list[str]:
        (parameter,) = [
            p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "status"
        ]
        (choice,) = [c for c in parameter["schema"]["anyOf"] if "$ref" in c]
        name = choice["$ref"].rsplit("/", 1)[1]
        return list(schema["components"]["schemas"][name]["enum"])

    assert values("/v1/submissions") == [str(s) for s in SubmissionStatus]
    assert values("/v1/asks") == [str(s) for s in AskStatus]
    assert values("/v1/requests") == [str(s) for s in RequestStatus]


def test_a_status_outside_the_enum_is_a_422(
    client: TestClient, make_org: Callable[..., dict[str, str]]
) -> None:
    trust = make_org("RJ1", "trust", "Y56")
    assert client.get("/v1/submissions?status=approved", headers=trust).status_code == 422
    assert client.get("/v1/submissions?status=accepted", headers=trust).status_code == 200
