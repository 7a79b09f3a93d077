"""Deadline reminders: one message a day to each trust with returns due or overdue, a summary to
each body of who has not returned, through each one's channel (files, a real SMTP server), and
the log of what was sent (GET /v1/notifications)."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from services.catalogue import jobs, reminders
from services.catalogue.models import AuditEvent, Job, Notification
from services.catalogue.runtime import Runtime
from services.catalogue.states import JobKind
from services.cli import app as drb
from services.validator import worker
from services.validator.reminders import send_reminders
from tests.conftest import run_pending
from tests.processes import free_port
from tests.schema_samples import ae_monthly_sample, beds_monthly_sample

Headers = dict[str, str]
# April 2018's A&E returns are due on 20 May (20 days after the month), its beds on 25 May.
TODAY = date(2018, 5, 22)
AE_DUE, BEDS_DUE = "2018-05-20", "2018-05-25"


ORGANISATIONS = {
    "RJ1": ("trust", "Y56"),
    "R1K": ("trust", "Y56"),
    "R0A": ("trust", "Y62"),
    "CQC": ("oversight_body", None),
    "NHSE": ("oversight_body", None),
    "NAO": ("auditor", None),
}


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    """Three trusts, two bodies and an auditor, each with a token."""
    return {code: make_org(code, kind, region) for code, (kind, region) in ORGANISATIONS.items()}


def register(client: TestClient, body: Headers, **fields: object) -> None:
    request: dict[str, object] = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "period_start": "2018-04",
        "period_end": "2018-04",
        "due_days": 20,
        **fields,
    }
    response = client.post("/v1/requests", json=request, headers=body)
    assert response.status_code == 201, response.text


def send(client: TestClient, trust: Headers, dataset: str, content: bytes) -> None:
    response = client.post(
        "/v1/submissions",
        headers=trust,
        data={"dataset": dataset, "period": "2018-04"},
        files={"file": ("r.csv", content, "text/csv")},
    )
    assert response.status_code == 202, response.text


@pytest.fixture
def asked(runtime: Runtime, client: TestClient, orgs: dict[str, Headers]) -> dict[str, Headers]:
    """CQC asks three trusts for A&E (April and May 2018); NHS England asks RJ1 for the same
    April A&E return and RJ1 and R0A for April's beds. R1K's April A&E return is accepted;
    R0A's April beds return is submitted, not yet validated (no worker runs)."""
    register(
        client,
        orgs["CQC"],
        items=["ae_attendances", "ae_breaches"],
        organisations=["RJ1", "R1K", "R0A"],
        period_end="2018-05",
    )
    register(client, orgs["NHSE"], items=["ae_attendances"], organisations=["RJ1"])
    register(
        client,
        orgs["NHSE"],
        items=["beds_ga_available"],
        organisations=["RJ1", "R0A"],
        due_days=25,
    )
    sample = ae_monthly_sample(org_code="R1K", period="2018-04")
    send(client, orgs["R1K"], "ae_monthly", sample.write_csv().encode())
    assert run_pending(runtime, "validate_submission") == ["done"]
    beds = beds_monthly_sample(org_code="R0A", period="2018-04")
    send(client, orgs["R0A"], "beds_monthly", beds.write_csv().encode())
    statuses = {
        (a["org_code"], a["dataset"], a["period"]): a["status"]
        for a in client.get("/v1/asks", headers=orgs["NAO"]).json()
    }
    assert statuses[("R1K", "ae_monthly", "2018-04")] == "accepted"
    assert statuses[("R0A", "beds_monthly", "2018-04")] == "submitted"
    return orgs


def run(runtime: Runtime, today: date = TODAY) -> list[dict[str, Any]]:
    return reminders.run_pass(factory=runtime.factory, settings=runtime.settings, today=today)


def listed(notification: dict[str, Any]) -> list[tuple[str, str, str, int, list[str]]]:
    return [
        (a["org_code"], a["dataset"], a["due_date"], a["days_left"], a["requested_by"])
        for a in notification["asks"]
    ]


RJ1_ASKS = [
    ("RJ1", "ae_monthly", AE_DUE, -2, ["CQC", "NHSE"]),
    ("RJ1", "beds_monthly", BEDS_DUE, 3, ["NHSE"]),
]
R0A_ASKS = [("R0A", "ae_monthly", AE_DUE, -2, ["CQC"])]


def by_recipient(handled: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(n["org_code"], n["kind"]): n for n in handled}


def test_one_reminder_per_trust_a_day_and_a_summary_per_body(
    runtime: Runtime, client: TestClient, asked: dict[str, Headers], admin: Headers
) -> None:
    handled = by_recipient(run(runtime))
    # R1K has sent its return (accepted) and R0A its beds (being validated): neither is listed;
    # May's returns are due in 29 days, beyond DRB_REMINDER_DAYS (5).
    assert set(handled) == {
        ("RJ1", "trust_reminder"),
        ("R0A", "trust_reminder"),
        ("CQC", "body_summary"),
        ("NHSE", "body_summary"),
    }
    assert {n["status"] for n in handled.values()} == {"sent"}
    reminder = handled[("RJ1", "trust_reminder")]
    assert listed(reminder) == RJ1_ASKS  # both bodies' asks in one message, the shared one once
    assert listed(handled[("R0A", "trust_reminder")]) == R0A_ASKS
    assert listed(handled[("CQC", "body_summary")]) == [R0A_ASKS[0], RJ1_ASKS[0]]  # by trust
    assert listed(handled[("NHSE", "body_summary")]) == RJ1_ASKS
    assert (
        reminder["subject"] == "RJ1: 2 returns to send, 1 overdue (data request broker, 2018-05-22)"
    )
    assert (
        "- ae_monthly 2018-04: due 2018-05-20, 2 days overdue (asked by CQC, NHSE)"
        in (reminder["body"])
    )
    assert (
        "- beds_monthly 2018-04: due 2018-05-25, due in 3 days (asked by NHSE)"
        in (reminder["body"])
    )
    summary = handled[("CQC", "body_summary")]["body"]
    assert "RJ1 (RJ1 test organisation):" in summary
    assert "R0A (R0A test organisation):" in summary
    assert "R1K" not in summary

    # Delivered to each one's outbox folder (the default channel), the file named by the day.
    outbox = runtime.settings.outbox_dir
    written = (outbox / "RJ1" / "drb-reminder-RJ1-2018-05-22.txt").read_text()
    assert written == f"Subject: {reminder['subject']}\n\n{reminder['body']}"
    assert (outbox / "NHSE" / "drb-summary-NHSE-2018-05-22.txt").is_file()
    assert not (outbox / "R1K").exists()

    # The same day again: nothing new is sent.
    assert run(runtime) == []
    with runtime.factory() as session:
        assert len(session.scalars(select(Notification)).all()) == 4
    # The next day: one each again, with the days counted on.
    next_day = by_recipient(run(runtime, TODAY + timedelta(days=1)))
    assert len(next_day) == 4
    assert [a["days_left"] for a in next_day[("RJ1", "trust_reminder")]["asks"]] == [-3, 2]

    # RJ1 sends its returns: it gets nothing more, and NHS England's summary no longer names it.
    ae = ae_monthly_sample(org_code="RJ1", period="2018-04").write_csv().encode()
    send(client, asked["RJ1"], "ae_monthly", ae)
    beds = beds_monthly_sample(org_code="RJ1", period="2018-04").write_csv().encode()
    send(client, asked["RJ1"], "beds_monthly", beds)
    later = by_recipient(run(runtime, TODAY + timedelta(days=2)))
    assert set(later) == {("R0A", "trust_reminder"), ("CQC", "body_summary")}
    assert listed(later[("CQC", "body_summary")]) == [(*R0A_ASKS[0][:3], -4, ["CQC"])]


def test_who_sees_which_notifications(
    runtime: Runtime, client: TestClient, asked: dict[str, Headers], admin: Headers
) -> None:
    run(runtime)
    run(runtime, TODAY + timedelta(days=1))

    def get(who: Headers, **params: str) -> Any:
        response = client.get("/v1/notifications", headers=who, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    own = get(asked["RJ1"])
    assert [(n["org_code"], n["kind"], n["day"]) for n in own] == [
        ("RJ1", "trust_reminder", "2018-05-23"),  # newest first
        ("RJ1", "trust_reminder", "2018-05-22"),
    ]
    assert own[0]["target"] is None  # a server folder: stewards only
    assert own[0]["message_id"] == "drb-reminder-RJ1-2018-05-23.txt"
    assert get(asked["R1K"]) == []
    refused = client.get("/v1/notifications", headers=asked["RJ1"], params={"org_code": "R0A"})
    assert refused.status_code == 403
    assert [n["kind"] for n in get(asked["CQC"])] == ["body_summary", "body_summary"]
    assert (
        client.get(
            "/v1/notifications", headers=asked["CQC"], params={"org_code": "NHSE"}
        ).status_code
        == 403
    )
    everything = get(asked["NAO"])
    assert len(everything) == 8
    assert {n["org_code"] for n in everything} == {"RJ1", "R0A", "CQC", "NHSE"}
    assert len(get(asked["NAO"], org_code="R0A", day="2018-05-22")) == 1
    assert {n["org_code"] for n in get(admin, kind="body_summary")} == {"CQC", "NHSE"}
    assert get(admin, org_code="RJ1")[0]["target"].startswith("file:///")
    assert client.get("/v1/notifications?kind=other", headers=admin).status_code == 422
    with runtime.factory() as session:
        reads = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "notifications.read")
        ).all()
        sent = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "notification.sent")
        ).all()
    assert {(e.actor, e.subject_id) for e in reads} >= {("RJ1", "RJ1"), ("NAO", "R0A")}
    assert len(sent) == 8


@dataclass
class Inbox:
    """What a real SMTP server (aiosmtpd) received."""

    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def test_email_reaches_a_real_smtp_server_and_a_failure_is_retried(
    runtime: Runtime, client: TestClient, asked: dict[str, Headers], admin: Headers
) -> None:
    address = "data.returns@rj1.example.nhs.uk"
    put = client.put(
        "/v1/organisations/RJ1/delivery",
        json={"channel": "email", "address": address},
        headers=admin,
    )
    assert put.status_code == 200, put.text
    port = free_port()
    settings = runtime.settings
    settings.smtp_host, settings.smtp_port = "127.0.0.1", port
    settings.smtp_from = "broker@drb.example.nhs.uk"

    # The SMTP server is down: the reminder is recorded as failed, the others are sent.
    first = by_recipient(run(runtime))
    failed = first[("RJ1", "trust_reminder")]
    assert failed["status"] == "failed"
    assert "127.0.0.1:" in failed["error"]
    assert {n["status"] for key, n in first.items() if key[0] != "RJ1"} == {"sent"}
    shown = client.get("/v1/notifications", headers=asked["RJ1"]).json()
    assert [(n["status"], n["channel"], n["target"]) for n in shown] == [
        ("failed", "email", address)
    ]
    assert shown[0]["message"] == reminders.NOT_SENT_YET
    assert "error" not in shown[0]  # the cause names the server's hosts: stewards only

    # It is up for the next pass: that one reminder is sent, once, on the same row.
    with smtp_server(port) as inbox:
        second = run(runtime)
        assert run(runtime) == []
    assert [(n["org_code"], n["status"], n["attempts"]) for n in second] == [("RJ1", "sent", 2)]
    assert second[0]["id"] == failed["id"]
    [(recipients, message)] = inbox.messages
    assert recipients == [address]
    assert message["To"] == address
    assert message["From"] == "broker@drb.example.nhs.uk"
    assert message["Subject"] == failed["subject"]
    assert str(message["Message-ID"]).strip() == second[0]["message_id"]
    text = message.get_payload(decode=True).decode()
    assert "- ae_monthly 2018-04: due 2018-05-20, 2 days overdue (asked by CQC, NHSE)" in text
    assert "- beds_monthly 2018-04: due 2018-05-25, due in 3 days (asked by NHSE)" in text


def test_a_failed_reminder_with_nothing_left_to_say_is_cancelled(
    runtime: Runtime, client: TestClient, asked: dict[str, Headers], admin: Headers
) -> None:
    client.put(
        "/v1/organisations/R0A/delivery",
        json={"channel": "email", "address": "r0a@example.nhs.uk"},
        headers=admin,
    )  # DRB_SMTP_HOST is not set: it fails
    [failed] = [n for n in run(runtime) if n["org_code"] == "R0A"]
    assert failed["status"] == "failed"
    assert "DRB_SMTP_HOST" in failed["error"]
    ae = ae_monthly_sample(org_code="R0A", period="2018-04").write_csv().encode()
    send(client, asked["R0A"], "ae_monthly", ae)
    assert [(n["id"], n["status"]) for n in run(runtime)] == [(failed["id"], "cancelled")]
    assert run(runtime) == []


def test_delivery_settings_for_trusts(
    client: TestClient, orgs: dict[str, Headers], admin: Headers
) -> None:
    def put(code: str, delivery: dict[str, str]) -> int:
        response = client.put(f"/v1/organisations/{code}/delivery", json=delivery, headers=admin)
        return response.status_code

    assert put("RJ1", {"channel": "email", "address": "returns@rj1.nhs.uk"}) == 200
    assert put("RJ1", {"channel": "mesh", "mailbox": "X26RJ1001"}) == 200
    assert put("CQC", {"channel": "email", "address": "data@cqc.org.uk"}) == 200
    assert put("RJ1", {"channel": "email"}) == 422
    assert put("RJ1", {"channel": "email", "address": "a@b.nhs.uk, c@d.nhs.uk"}) == 422
    assert put("RJ1", {"channel": "email", "address": "a@b.nhs.uk\r\nBcc: x@y.z"}) == 422
    assert put("NAO", {"channel": "email", "address": "nao@example.org"}) == 422


def test_drb_remind_sends_todays_and_prints_them(
    runtime: Runtime, client: TestClient, orgs: dict[str, Headers]
) -> None:
    register(client, orgs["CQC"], items=["ae_attendances"], organisations=["RJ1"])
    env = {
        "DRB_DATA_DIR": str(runtime.settings.data_dir),
        "DRB_DATABASE_URL": runtime.settings.sqlalchemy_url,
        "DRB_REDIS_URL": "",
    }
    result = CliRunner().invoke(drb, ["remind"], env=env)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    today = date.today().isoformat()
    assert [(n["org_code"], n["kind"], n["day"], n["status"]) for n in printed] == [
        ("RJ1", "trust_reminder", today, "sent"),
        ("CQC", "body_summary", today, "sent"),
    ]
    assert printed[0]["asks"][0]["overdue"] is True
    again = CliRunner().invoke(drb, ["remind"], env=env)
    assert again.exit_code == 0
    assert json.loads(again.stdout) == []


def test_the_worker_queues_the_daily_pass_and_it_waits_for_its_hour(
    runtime: Runtime, client: TestClient, orgs: dict[str, Headers]
) -> None:
    register(client, orgs["CQC"], items=["ae_attendances"], organisations=["RJ1"])
    settings = runtime.settings
    context = jobs.JobContext(subject_id=None, factory=runtime.factory, settings=settings)
    settings.reminders = True
    worker._enqueue_maintenance(runtime)
    with runtime.factory() as session:
        kinds = session.scalars(select(Job.kind)).all()
    assert kinds.count(JobKind.SEND_REMINDERS) == 1
    settings.reminder_hour = 7
    assert not reminders.due_now(datetime(2026, 12, 7, 6, 59), settings)
    assert reminders.due_now(datetime(2026, 12, 7, 7, 0), settings)
    settings.reminder_hour = 0
    assert run_pending(runtime, JobKind.SEND_REMINDERS) == ["done"]
    with runtime.factory() as session:
        assert {n.org_code for n in session.scalars(select(Notification))} == {"RJ1", "CQC"}
    settings.reminders = False
    assert not reminders.due_now(datetime(2026, 12, 7, 12, 0), settings)
    send_reminders(context)  # off: nothing, even past the hour
    worker._enqueue_maintenance(runtime)
    with runtime.factory() as session:
        assert session.scalars(select(Job.kind)).all().count(JobKind.SEND_REMINDERS) == 1


def test_passes_running_at_once_send_each_message_once(
    runtime: Runtime, asked: dict[str, Headers]
) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        passes = list(pool.map(lambda _: run(runtime), range(3)))
    sent = [n for handled in passes for n in handled]
    assert sorted((n["org_code"], n["kind"]) for n in sent) == [
        ("CQC", "body_summary"),
        ("NHSE", "body_summary"),
        ("R0A", "trust_reminder"),
        ("RJ1", "trust_reminder"),
    ]
    with runtime.factory() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "notification.sent")
        ).all()
    assert len(events) == 4
