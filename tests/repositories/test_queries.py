"""Repositories' queries against a real database (SQLite and PostgreSQL), each test inside a
transaction that is rolled back (tests/databases.py), so no test pays for a migration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from services.catalogue.db import session_scope
from services.catalogue.models import Ask, DataRequest, Job, Organisation, Submission
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories import jobs as job_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.states import (
    AskStatus,
    JobKind,
    JobStatus,
    RequestStatus,
    SubmissionStatus,
)
from tests.databases import rolled_back

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def organisations(session: Session, *codes: str) -> None:
    for code in codes:
        kind = "trust" if code.startswith("R") else "oversight_body"
        session.add(Organisation(code=code, name=code, kind=kind))
    session.flush()


# -- the transaction each test runs in -----------------------------------------------------------


def test_what_a_test_commits_is_rolled_back_afterwards(db_engine: Engine) -> None:
    def count(session: Session) -> int:
        return session.scalar(select(func.count()).where(Organisation.code == "RXX")) or 0

    with rolled_back(db_engine) as factory:
        with session_scope(factory) as session:
            organisations(session, "RXX")
        with factory() as session:
            assert count(session) == 1, "a commit inside the test is seen by the test"
    with db_engine.connect() as connection, Session(bind=connection) as session:
        assert count(session) == 0, "and gone once the test ends"


# -- requests ----------------------------------------------------------------------------------


def data_request(body: str, created: int, status: str = RequestStatus.ACTIVE) -> DataRequest:
    fields: dict[str, Any] = {
        "title": f"{body} at {created}",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_attendances"],
        "population": ["RJ1"],
        "org_codes": ["RJ1"],
        "period_start": "2025-01",
        "period_end": "2025-03",
        "period_type": "month",
        "org_level": "trust",
        "due_days": 20,
        "coverage": {},
        "returns_requested": 3,
        "minutes_requested": 90.0,
    }
    return DataRequest(body_code=body, status=status, created_at=at(created), **fields)


def test_active_requests_leave_withdrawn_ones_out_oldest_first(db_session: Session) -> None:
    organisations(db_session, "CQC", "NHSE", "RJ1")
    newer = data_request("CQC", created=5)
    older = data_request("NHSE", created=1)
    withdrawn = data_request("CQC", created=0, status=RequestStatus.WITHDRAWN)
    db_session.add_all([newer, older, withdrawn])
    db_session.flush()

    assert [r.id for r in request_repo.active(session=db_session)] == [older.id, newer.id]
    assert [r.id for r in request_repo.active(session=db_session, body_code="CQC")] == [newer.id]
    assert request_repo.active(session=db_session, body_code="UKHSA") == []


# -- asks ------------------------------------------------------------------------------------


def ask(org: str, period: str, status: str = AskStatus.OUTSTANDING) -> Ask:
    return Ask(
        dataset_code="ae_monthly",
        org_code=org,
        period=period,
        due_date=date(2025, 6, 1),
        status=status,
    )


def test_asks_by_key_finds_each_key_past_the_batch_of_500(db_session: Session) -> None:
    organisations(db_session, "RJ1", "R1K")
    periods = [f"{2000 + n // 12}-{n % 12 + 1:02d}" for n in range(300)]
    db_session.add_all([ask(org, period) for org in ("RJ1", "R1K") for period in periods])
    db_session.flush()
    keys = [(org, period) for org in ("RJ1", "R1K", "RXX") for period in periods]

    found = ask_repo.by_key(session=db_session, dataset_code="ae_monthly", keys=keys)
    assert len(found) == 600
    assert all(found[key].org_code == key[0] and found[key].period == key[1] for key in found)
    assert not ask_repo.by_key(session=db_session, dataset_code="rtt_monthly", keys=keys)


def test_set_status_moves_only_an_ask_in_the_old_status(db_session: Session) -> None:
    organisations(db_session, "RJ1")
    outstanding, cancelled = ask("RJ1", "2025-01"), ask("RJ1", "2025-02", AskStatus.CANCELLED)
    db_session.add_all([outstanding, cancelled])
    db_session.flush()
    for period in ("2025-01", "2025-02"):
        ask_repo.set_status(
            session=db_session,
            org_code="RJ1",
            dataset_code="ae_monthly",
            period=period,
            old=AskStatus.OUTSTANDING,
            new=AskStatus.ACCEPTED,
        )
    db_session.expire_all()
    assert (outstanding.status, cancelled.status) == (AskStatus.ACCEPTED, AskStatus.CANCELLED)


# -- jobs --------------------------------------------------------------------------------------


def job(subject: str, status: str, created: int, kind: str = JobKind.VALIDATE_SUBMISSION) -> Job:
    return Job(kind=kind, subject_id=subject, status=status, created_at=at(created))


def test_jobs_waiting_for_subjects_are_the_pending_and_sent_ones(db_session: Session) -> None:
    waiting = [job("s1", JobStatus.PENDING, 0), job("s2", JobStatus.SENT, 1)]
    finished = [job("s1", JobStatus.DONE, 2), job("s2", JobStatus.FAILED, 3)]
    elsewhere = [job("s3", JobStatus.PENDING, 4)]
    db_session.add_all(waiting + finished + elsewhere)
    db_session.flush()

    found = job_repo.waiting_for(session=db_session, subject_ids=["s1", "s2"])
    assert sorted(found) == sorted(j.id for j in waiting)
    assert job_repo.waiting_for(session=db_session, subject_ids=[]) == []


def test_pending_work_is_every_pending_job_but_probes_oldest_first(db_session: Session) -> None:
    later = job("a", JobStatus.PENDING, 9)
    first = job("b", JobStatus.PENDING, 1, kind=JobKind.REFRESH_EXTRACTS)
    probe = job("c", JobStatus.PENDING, 0, kind=JobKind.PROBE)
    sent = job("d", JobStatus.SENT, 0)
    db_session.add_all([later, first, probe, sent])
    db_session.flush()

    assert job_repo.pending_work(session=db_session) == [first.id, later.id]


# -- submissions -------------------------------------------------------------------------------


def submission(org: str, period: str, status: str, received: int) -> Submission:
    return Submission(
        org_code=org,
        dataset_code="ae_monthly",
        dataset_version=1,
        period=period,
        status=status,
        filename="ae.csv",
        size_bytes=10,
        sha256=f"{received:064x}",  # each return its own content
        received_at=at(received),
    )


def test_first_accepted_ignores_returns_not_accepted(db_session: Session) -> None:
    organisations(db_session, "RJ1", "R1K")
    db_session.add_all(
        [
            submission("RJ1", "2025-01", SubmissionStatus.REJECTED, 0),
            submission("RJ1", "2025-01", SubmissionStatus.ACCEPTED, 10),
            submission("RJ1", "2025-01", SubmissionStatus.ACCEPTED, 30),
            submission("RJ1", "2025-02", SubmissionStatus.ACCEPTED, 20),
            submission("R1K", "2025-01", SubmissionStatus.RECEIVED, 5),
        ]
    )
    db_session.flush()

    firsts = {
        (org, dataset, period): received
        for org, dataset, period, received in db_session.execute(
            select(submission_repo.first_accepted())
        )
    }
    # SQLite hands back naive datetimes (UTC by convention); PostgreSQL aware ones.
    naive = {key: value.replace(tzinfo=None) for key, value in firsts.items()}
    assert naive == {
        ("RJ1", "ae_monthly", "2025-01"): at(10).replace(tzinfo=None),
        ("RJ1", "ae_monthly", "2025-02"): at(20).replace(tzinfo=None),
    }
