"""Who sees what, decided in the domain (docs/architecture.md, rule 1): the functions the routes
and pages call, against a real database, each test rolled back (tests/databases.py). The API
tests (tests/api/test_authorisation_matrix.py and others) prove the wire answers are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import partial

import pytest
from sqlalchemy.orm import Session

import schemas
from services.catalogue import asks, auth, data_requests, datasets, organisations, submissions
from services.catalogue.errors import DomainError, Forbidden, Invalid, NotFound
from services.catalogue.models import Ask, AskLink, DataRequest, Organisation, Submission, utcnow
from services.catalogue.states import AskStatus, OrgKind, SubmissionStatus

TODAY = date(2025, 7, 1)


def refusal(call: Callable[[], object]) -> tuple[type[DomainError], str]:
    """The error ``call`` raises: its class (which decides the status) and its exact message."""
    with pytest.raises(DomainError) as raised:
        call()
    return type(raised.value), raised.value.detail


def registered(session: Session) -> None:
    """Two trusts, two bodies, an auditor and a steward."""
    kinds = {
        "RJ1": OrgKind.TRUST,
        "R1K": OrgKind.TRUST,
        "CQC": OrgKind.OVERSIGHT_BODY,
        "UKHSA": OrgKind.OVERSIGHT_BODY,
        "NAO": OrgKind.AUDITOR,
        "STW": OrgKind.STEWARD,
    }
    session.add_all(Organisation(code=c, name=f"{c} name", kind=k) for c, k in kinds.items())
    session.flush()


def sent(session: Session, org: str) -> Submission:
    submission = Submission(
        org_code=org,
        dataset_code="ae_monthly",
        dataset_version=1,
        period="2025-01",
        status=SubmissionStatus.ACCEPTED,
        filename="ae.csv",
        size_bytes=10,
        sha256=org.ljust(64, "0"),
    )
    session.add(submission)
    session.flush()
    return submission


def request_of(session: Session, body: str, trusts: list[str]) -> DataRequest:
    request = DataRequest(
        body_code=body,
        title="t",
        purpose="p",
        legal_basis="l",
        items=["ae_attendances"],
        population=trusts,
        org_codes=trusts,
        period_start="2025-01",
        period_end="2025-01",
        period_type="month",
        org_level="trust",
        due_days=20,
        coverage={},
        returns_requested=len(trusts),
        minutes_requested=30.0,
    )
    session.add(request)
    session.flush()
    return request


def asked(session: Session, request: DataRequest, org: str, due: date) -> Ask:
    ask = Ask(dataset_code="ae_monthly", org_code=org, period="2025-01", due_date=due)
    session.add(ask)
    session.flush()
    session.add(
        AskLink(
            ask_id=ask.id,
            request_id=request.id,
            role="collects",
            items=["ae_attendances"],
            due_date=due,
            seq=0,
        )
    )
    session.flush()
    return ask


# -- submissions -------------------------------------------------------------------------------


def test_a_trust_reads_its_own_submission_and_another_trusts_is_not_found(
    db_session: Session,
) -> None:
    registered(db_session)
    own, other = sent(db_session, "RJ1"), sent(db_session, "R1K")

    def read(submission_id: str, org: str, kind: str) -> Submission:
        return submissions.readable(
            session=db_session, submission_id=submission_id, org_code=org, kind=kind
        )

    assert read(own.id, "RJ1", OrgKind.TRUST) is own
    assert read(other.id, "NAO", OrgKind.AUDITOR) is other
    # Another trust's submission is not found, as one that does not exist: no existence leaks.
    assert refusal(lambda: read(other.id, "RJ1", OrgKind.TRUST)) == (
        NotFound,
        f"No submission has the id {other.id!r}.",
    )
    assert refusal(lambda: read("nope", "NAO", OrgKind.AUDITOR)) == (
        NotFound,
        "No submission has the id 'nope'.",
    )
    assert refusal(lambda: read(own.id, "CQC", OrgKind.OVERSIGHT_BODY))[0] is Forbidden


def test_a_trust_lists_only_its_own_submissions(db_session: Session) -> None:
    registered(db_session)
    own, other = sent(db_session, "RJ1"), sent(db_session, "R1K")

    def listed(org: str, kind: str, trust: str | None = None) -> set[str]:
        rows = submissions.visible(
            session=db_session, org_code=org, kind=kind, trust_code=trust, limit=100, offset=0
        )
        return {row.id for row in rows}

    assert listed("RJ1", OrgKind.TRUST) == {own.id}
    assert listed("RJ1", OrgKind.TRUST, "RJ1") == {own.id}
    assert listed("NAO", OrgKind.AUDITOR) >= {own.id, other.id}
    assert listed("NAO", OrgKind.AUDITOR, "R1K") == {other.id}
    assert refusal(lambda: listed("RJ1", OrgKind.TRUST, "R1K")) == (
        Forbidden,
        "A trust sees only its own submissions.",
    )
    assert refusal(lambda: listed("STW", OrgKind.STEWARD))[0] is Forbidden


# -- asks --------------------------------------------------------------------------------------


def test_asks_are_listed_to_their_trust_the_bodies_asking_and_auditors(db_session: Session) -> None:
    registered(db_session)
    cqc = request_of(db_session, "CQC", ["RJ1", "R1K"])
    late = asked(db_session, cqc, "RJ1", TODAY - timedelta(days=1))
    on_time = asked(db_session, cqc, "R1K", TODAY + timedelta(days=1))

    def listed(org: str, kind: str, **filters: str) -> dict[str, str]:
        shown = asks.visible(
            session=db_session,
            org_code=org,
            kind=kind,
            today=TODAY,
            limit=100,
            offset=0,
            **filters,
        )
        return {a.ask.id: a.status for a in shown}

    assert listed("RJ1", OrgKind.TRUST) == {late.id: AskStatus.OVERDUE}
    assert listed("CQC", OrgKind.OVERSIGHT_BODY) == {
        late.id: AskStatus.OVERDUE,
        on_time.id: AskStatus.OUTSTANDING,
    }
    assert listed("UKHSA", OrgKind.OVERSIGHT_BODY) == {}
    assert listed("NAO", OrgKind.AUDITOR, trust_code="R1K") == {on_time.id: AskStatus.OUTSTANDING}
    # Outstanding and overdue share a stored status: the filter tells them apart.
    assert listed("CQC", OrgKind.OVERSIGHT_BODY, status=AskStatus.OVERDUE) == {
        late.id: AskStatus.OVERDUE
    }
    assert refusal(lambda: listed("RJ1", OrgKind.TRUST, trust_code="R1K")) == (
        Forbidden,
        "A trust sees only its own asks.",
    )
    assert refusal(lambda: listed("STW", OrgKind.STEWARD))[0] is Forbidden


# -- requests ----------------------------------------------------------------------------------


def test_a_request_is_read_by_its_body_its_trusts_and_auditors(db_session: Session) -> None:
    registered(db_session)
    request = request_of(db_session, "CQC", ["RJ1"])

    def read(org: str, kind: str, request_id: str = request.id) -> DataRequest:
        return data_requests.readable(
            session=db_session, request_id=request_id, org_code=org, kind=kind
        )

    for org, kind in [("CQC", OrgKind.OVERSIGHT_BODY), ("RJ1", OrgKind.TRUST)]:
        assert read(org, kind) is request
    assert read("NAO", OrgKind.AUDITOR) is request
    refused = (Forbidden, "This request belongs to another body and does not include you.")
    assert refusal(lambda: read("UKHSA", OrgKind.OVERSIGHT_BODY)) == refused  # another body's
    assert refusal(lambda: read("R1K", OrgKind.TRUST)) == refused  # not among its trusts
    assert refusal(lambda: read("NAO", OrgKind.AUDITOR, "nope")) == (
        NotFound,
        "No request has the id 'nope'.",
    )


# -- organisations, tokens, the catalogue ------------------------------------------------------


def test_organisations_and_their_tokens_are_read_through_the_domain(db_session: Session) -> None:
    registered(db_session)
    assert organisations.get(session=db_session, code="RJ1").name == "RJ1 name"
    assert organisations.name_of(session=db_session, code="RJ1") == "RJ1 name"
    assert organisations.name_of(session=db_session, code="NOPE") == "NOPE"
    bodies = organisations.names(session=db_session, kind=OrgKind.OVERSIGHT_BODY)
    assert {"CQC": "CQC name", "UKHSA": "UKHSA name"}.items() <= bodies.items()
    assert "RJ1" not in bodies
    unknown = (NotFound, "No organisation has the code 'NOPE'.")
    assert refusal(lambda: organisations.get(session=db_session, code="NOPE")) == unknown
    steward = auth.Principal(org_code="STW", kind=OrgKind.STEWARD, token_id="t-stw")
    unknown_tokens = refusal(
        lambda: auth.tokens_of(session=db_session, org_code="NOPE", viewer=steward)
    )
    assert unknown_tokens == unknown

    live, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=steward)
    admin = auth.Principal(org_code="RJ1", kind=OrgKind.TRUST, token_id=live.id, roles=("admin",))
    revoked, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=admin)
    expired, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=admin)
    auth.revoke_token(session=db_session, org_code="RJ1", token_id=revoked.id, by=steward)
    expired.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()
    tokens = auth.tokens_of(session=db_session, org_code="RJ1", viewer=steward)
    assert {t.id for t in tokens} == {live.id, revoked.id, expired.id}
    assert auth.live_token(session=db_session, token_id=live.id) is live
    for token_id in (revoked.id, expired.id, "nope"):
        assert auth.live_token(session=db_session, token_id=token_id) is None


def _principal(code: str, kind: OrgKind, token_id: str, *roles: str) -> auth.Principal:
    return auth.Principal(org_code=code, kind=kind, token_id=token_id, roles=roles)


def test_a_steward_issues_only_an_organisations_first_admin_token(db_session: Session) -> None:
    """The steward bootstraps; from then on only the organisation's own admin issues its tokens,
    whoever else asks (another steward, the organisation without admin, another organisation's
    admin); an expired or revoked admin lets the steward bootstrap again."""
    registered(db_session)
    steward = _principal("STW", OrgKind.STEWARD, "t-stw", "admin")
    first, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=steward, label="x")
    assert first.roles == ["admin"]  # whatever was asked: the first token is its admin's
    assert (first.issued_by_org, first.issued_by_token) == ("STW", "t-stw")
    admin = _principal("RJ1", OrgKind.TRUST, first.id, "admin")
    plain, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=admin)
    assert plain.roles == []
    assert (plain.issued_by_org, plain.issued_by_token) == ("RJ1", first.id)
    second_admin, _ = auth.issue_token(
        session=db_session, org_code="RJ1", issuer=admin, roles=["admin"]
    )
    assert second_admin.roles == ["admin"]

    steward_refused = (
        Forbidden,
        "RJ1 has a live admin token already, and its admin issues its tokens: a steward issues"
        " only an organisation's first admin token. Ask RJ1's admin.",
    )
    not_admin = (
        Forbidden,
        "Only an admin token of RJ1 issues RJ1's tokens; this token's roles are none."
        " Ask RJ1's admin.",
    )
    callers = [
        (steward, steward_refused),
        (_principal("STW", OrgKind.STEWARD, "t-stw2"), steward_refused),
        (_principal("RJ1", OrgKind.TRUST, plain.id), not_admin),
        (
            _principal("R1K", OrgKind.TRUST, "t-r1k", "admin"),
            (Forbidden, "A token of R1K cannot issue tokens for RJ1."),
        ),
        (
            _principal("NAO", OrgKind.AUDITOR, "t-nao", "admin"),
            (Forbidden, "A token of NAO cannot issue tokens for RJ1."),
        ),
    ]
    for caller, expected in callers:
        assert (
            refusal(partial(auth.issue_token, session=db_session, org_code="RJ1", issuer=caller))
            == expected
        )
    unknown_role = partial(
        auth.issue_token, session=db_session, org_code="RJ1", issuer=admin, roles=["owner"]
    )
    assert refusal(unknown_role) == (Invalid, "Unknown token role 'owner'.")

    # No live admin any more (one revoked, one expired): the steward bootstraps again.
    auth.revoke_token(session=db_session, org_code="RJ1", token_id=first.id, by=admin)
    second_admin.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()
    again, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=steward)
    assert again.roles == ["admin"]


def test_an_organisations_tokens_are_shown_to_it_and_auditors_and_revoked_by_its_admin(
    db_session: Session,
) -> None:
    registered(db_session)
    steward = _principal("STW", OrgKind.STEWARD, "t-stw")
    first, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=steward)
    admin = _principal("RJ1", OrgKind.TRUST, first.id, "admin")
    plain, _ = auth.issue_token(session=db_session, org_code="RJ1", issuer=admin)
    member = _principal("RJ1", OrgKind.TRUST, plain.id)
    for viewer in (admin, member, steward, _principal("NAO", OrgKind.AUDITOR, "t-nao")):
        listed = auth.tokens_of(session=db_session, org_code="RJ1", viewer=viewer)
        assert {t.id for t in listed} == {plain.id, first.id}
    hidden = (Forbidden, "RJ1's tokens are shown to RJ1, auditors and stewards only.")
    for viewer in (
        _principal("R1K", OrgKind.TRUST, "t-r1k", "admin"),
        _principal("CQC", OrgKind.OVERSIGHT_BODY, "t-cqc", "admin"),
    ):
        listing = partial(auth.tokens_of, session=db_session, org_code="RJ1", viewer=viewer)
        assert refusal(listing) == hidden
    no_revoke = (Forbidden, "Only an admin token of RJ1, or a steward, revokes RJ1's tokens.")
    for caller in (member, _principal("R1K", OrgKind.TRUST, "t-r1k", "admin")):
        revoke = partial(
            auth.revoke_token, session=db_session, org_code="RJ1", token_id=plain.id, by=caller
        )
        assert refusal(revoke) == no_revoke
    auth.revoke_token(session=db_session, org_code="RJ1", token_id=plain.id, by=admin)
    assert auth.live_token(session=db_session, token_id=plain.id) is None


def test_a_dataset_is_read_at_its_current_or_a_published_version(db_session: Session) -> None:
    known = ", ".join(schemas.DATASETS)
    current = datasets.current(session=db_session, code="ae_monthly")
    published = datasets.published(session=db_session, code="ae_monthly")
    assert published.version == current.version
    assert current.version in datasets.version_numbers(session=db_session, code="ae_monthly")
    unknown = refusal(lambda: datasets.current(session=db_session, code="nope"))
    assert unknown == (NotFound, f"No dataset has the code 'nope'; the catalogue has {known}.")
    # An unknown dataset is refused as such even when a version is named.
    assert (
        refusal(lambda: datasets.published(session=db_session, code="nope", version=1)) == unknown
    )
    assert refusal(
        lambda: datasets.published(session=db_session, code="ae_monthly", version=999)
    ) == (NotFound, "Dataset 'ae_monthly' has no version 999.")
