"""Statuses, job kinds and organisation kinds are enums: every job kind has its handler, and the
API lists the values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, select
from sqlalchemy.orm import InstrumentedAttribute

from services.catalogue.db import session_scope
from services.catalogue.models import (
    Ask,
    DataRequest,
    ExtractDelivery,
    Job,
    Notification,
    Organisation,
    Submission,
)
from services.catalogue.runtime import Runtime
from services.catalogue.states import (
    AskStatus,
    DeliveryStatus,
    JobKind,
    JobStatus,
    NotificationKind,
    NotificationStatus,
    OrgKind,
    RequestStatus,
    SubmissionStatus,
)
from services.validator.handlers import HANDLERS


def test_every_kind_of_job_has_its_handler_and_nothing_else_does() -> None:
    assert set(HANDLERS) == set(JobKind)


def test_a_member_is_the_text_stored_and_shown() -> None:
    assert SubmissionStatus.ACCEPTED == "accepted"
    assert f"{AskStatus.OVERDUE}" == "overdue"
    assert [str(s) for s in SubmissionStatus] == ["received", "validating", "accepted", "rejected"]
    assert [str(s) for s in DeliveryStatus] == [
        "pending",
        "sent",
        "delivered",
        "acknowledged",
        "failed",
    ]
    assert [str(s) for s in NotificationStatus] == ["sending", "sent", "failed", "cancelled"]
    assert [str(k) for k in NotificationKind] == ["trust_reminder", "body_summary"]
    assert [str(k) for k in OrgKind] == ["trust", "oversight_body", "auditor", "steward"]


# Each stored status or kind and its enum.
COLUMNS: list[tuple[InstrumentedAttribute[str], type[StrEnum]]] = [
    (Submission.status, SubmissionStatus),
    (DataRequest.status, RequestStatus),
    (Ask.status, AskStatus),
    (Job.status, JobStatus),
    (Job.kind, JobKind),
    (ExtractDelivery.status, DeliveryStatus),
    (Notification.status, NotificationStatus),
    (Notification.kind, NotificationKind),
    (Organisation.kind, OrgKind),
]


@pytest.mark.parametrize(("column", "enum"), COLUMNS, ids=lambda c: getattr(c, "key", None))
def test_the_column_holds_every_value_and_defaults_to_one(
    column: InstrumentedAttribute[str], enum: type[StrEnum]
) -> None:
    """PostgreSQL refuses a value longer than its varchar: every member fits its column, and a
    column's default is a member."""
    (stored,) = column.property.columns
    assert isinstance(stored.type, String)
    assert stored.type.length is not None
    assert max(len(member) for member in enum) <= stored.type.length
    if stored.default is not None:
        assert stored.default.arg in list(enum)


def test_the_database_gives_back_the_members_text(
    runtime: Runtime, make_org: Callable[..., dict[str, str]]
) -> None:
    """A member written (or a default) is read back as its plain text, equal to the member."""
    make_org("RJ1", "trust", "Y56")
    with session_scope(runtime.factory) as session:
        session.add(
            Notification(
                org_code="RJ1",
                kind=NotificationKind.TRUST_REMINDER,
                day=date(2026, 1, 5),
                channel="files",
                target="file:///tmp/outbox/RJ1",
                subject="s",
                body="b",
                asks=[],
            )
        )
    with session_scope(runtime.factory) as session:
        kind, status = session.execute(select(Notification.kind, Notification.status)).one()
    assert (kind, status) == (NotificationKind.TRUST_REMINDER, NotificationStatus.SENDING)
    assert (type(kind), type(status)) == (str, str)
    with session_scope(runtime.factory) as session:
        stored = session.scalars(select(Organisation.kind).where(Organisation.code == "RJ1")).one()
    assert stored == OrgKind.TRUST
    assert type(stored) is str


def test_the_status_filters_list_their_values_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    def values(path: str, name: str = "status") -> list[str]:
        (parameter,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        (choice,) = [c for c in parameter["schema"]["anyOf"] if "$ref" in c]
        name = choice["$ref"].rsplit("/", 1)[1]
        return list(schema["components"]["schemas"][name]["enum"])

    assert values("/v1/submissions") == [str(s) for s in SubmissionStatus]
    assert values("/v1/asks") == [str(s) for s in AskStatus]
    assert values("/v1/requests") == [str(s) for s in RequestStatus]
    assert values("/v1/notifications", "kind") == [str(k) for k in NotificationKind]
    assert values("/v1/organisations", "kind") == [str(k) for k in OrgKind]
    body = schema["components"]["schemas"]["OrganisationIn"]["properties"]["kind"]
    name = body["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][name]["enum"] == [str(k) for k in OrgKind]


def test_a_status_outside_the_enum_is_a_422(
    client: TestClient, make_org: Callable[..., dict[str, str]]
) -> None:
    trust = make_org("RJ1", "trust", "Y56")
    assert client.get("/v1/submissions?status=approved", headers=trust).status_code == 422
    assert client.get("/v1/submissions?status=accepted", headers=trust).status_code == 200
    assert client.get("/v1/organisations?kind=hospital", headers=trust).status_code == 422
    assert client.get("/v1/organisations?kind=trust", headers=trust).status_code == 200
