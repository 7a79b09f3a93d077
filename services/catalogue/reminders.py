"""Deadline reminders: one message a day to each trust with returns due or overdue, and one to
each oversight body listing the returns its active requests still wait for.

A trust's reminder lists every outstanding ask due within ``DRB_REMINDER_DAYS`` days or past
its due date, whichever bodies ask for it (one line per return); a trust with nothing due gets
nothing, and an ask already submitted (being validated), accepted or cancelled is never listed.
A body's summary lists, trust by trust, the same asks its active requests need.

:func:`run_pass` sends them. Each message is a ``notifications`` row, unique per (organisation,
kind, day), written *before* it is sent, so two processes running the pass at once, or one
running it twice, send each message once. A send that fails leaves the row ``failed`` with its
error; the next pass (hourly in the worker, or ``drb remind``) claims it back and sends it again,
with the list as it is then (``cancelled`` if nothing is left to say). A row left ``sending`` by
a process that died is taken back after :data:`STALE_SENDING`.

Channels are the organisation's delivery setting (:mod:`services.catalogue.channels`): a file
in its outbox folder (the default), a MESH message (workflow ``DRB_REMINDER``), an e-mail
(``DRB_SMTP_*``), or ``api``: kept for ``GET /v1/notifications`` only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.catalogue import audit
from services.catalogue.channels import (
    ChannelMisconfigured,
    EmailChannel,
    Sent,
    channel_for,
)
from services.catalogue.db import session_scope
from services.catalogue.errors import Forbidden
from services.catalogue.models import Ask, Notification, new_id, utcnow
from services.catalogue.repositories import notifications as repo
from services.catalogue.settings import Settings
from services.catalogue.states import UNSENT, NotificationKind, NotificationStatus, OrgKind

log = logging.getLogger(__name__)

ACTOR = "DRB-REMINDERS"
MESH_WORKFLOW_ID = "DRB_REMINDER"
STALE_SENDING = timedelta(minutes=15)
_FILE_PREFIX = {
    NotificationKind.TRUST_REMINDER: "reminder",
    NotificationKind.BODY_SUMMARY: "summary",
}

# What a trust or body is told of a message that has not gone: never the error itself, which
# names the server's hosts or folders (stewards see it).
NOT_SENT_YET = (
    "Not sent yet; the broker tries again on its next pass. Contact the broker's stewards if this"
    " persists."
)


@dataclass(frozen=True)
class Message:
    """One day's message to one organisation, before it is sent."""

    org_code: str
    kind: NotificationKind
    subject: str
    body: str
    asks: list[dict[str, Any]]


def ask_line(ask: Ask, bodies: Sequence[str], *, today: date) -> dict[str, Any]:
    """One return as a message lists it."""
    days_left = (ask.due_date - today).days
    return {
        "ask_id": ask.id,
        "org_code": ask.org_code,
        "dataset": ask.dataset_code,
        "period": ask.period,
        "due_date": ask.due_date.isoformat(),
        "overdue": days_left < 0,
        "days_left": days_left,
        "requested_by": sorted(bodies),
    }


def _when(line: dict[str, Any]) -> str:
    days = int(line["days_left"])
    if days < 0:
        return f"{-days} day{'s' if days != -1 else ''} overdue"
    if days == 0:
        return "due today"
    return f"due in {days} day{'s' if days != 1 else ''}"


def _line_text(line: dict[str, Any], *, bodies: bool) -> str:
    text = f"- {line['dataset']} {line['period']}: due {line['due_date']}, {_when(line)}"
    return f"{text} (asked by {', '.join(line['requested_by'])})" if bodies else text


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _named(code: str, names: dict[str, str]) -> str:
    name = names.get(code)
    return f"{code} ({name})" if name else code


def trust_message(
    org_code: str, lines: list[dict[str, Any]], *, today: date, within_days: int, name: str | None
) -> Message:
    """A trust's reminder: its overdue returns, then those due within ``within_days`` days."""
    overdue = [line for line in lines if line["overdue"]]
    due = [line for line in lines if not line["overdue"]]
    subject = f"{org_code}: {_count(len(lines), 'return')} to send"
    if overdue:
        subject += f", {len(overdue)} overdue"
    subject += f" (data request broker, {today.isoformat()})"
    text = [
        f"Returns the data request broker is waiting for from"
        f" {_named(org_code, {org_code: name or ''})}, as of {today:%A} {today.day} {today:%B %Y}.",
        "Each is one return, however many oversight bodies ask for it: send it once, with"
        " `drb submit` or POST /v1/submissions. GET /v1/asks lists them all.",
    ]
    if overdue:
        text += ["", f"Overdue ({len(overdue)}):", *(_line_text(x, bodies=True) for x in overdue)]
    if due:
        text += [
            "",
            f"Due within {within_days} days ({len(due)}):",
            *(_line_text(x, bodies=True) for x in due),
        ]
    return Message(
        org_code, NotificationKind.TRUST_REMINDER, subject, "\n".join(text) + "\n", lines
    )


def body_message(
    body_code: str, lines: list[dict[str, Any]], *, today: date, names: dict[str, str]
) -> Message:
    """A body's summary: by trust, the returns its active requests need and have not got."""
    trusts = sorted({line["org_code"] for line in lines})
    overdue = sum(1 for line in lines if line["overdue"])
    subject = (
        f"{body_code}: {_count(len(lines), 'return')} not yet received from"
        f" {_count(len(trusts), 'trust')}, {overdue} overdue ({today.isoformat()})"
    )
    text = [
        f"Returns that {_named(body_code, names)}'s active requests need and the trusts have not"
        f" sent yet, as of {today:%A} {today.day} {today:%B %Y}. Each trust is reminded daily.",
    ]
    for trust in trusts:
        text += ["", f"{_named(trust, names)}:"]
        text += [_line_text(line, bodies=False) for line in lines if line["org_code"] == trust]
    return Message(body_code, NotificationKind.BODY_SUMMARY, subject, "\n".join(text) + "\n", lines)


def compose(*, session: Session, today: date, within_days: int) -> list[Message]:
    """Today's messages: one per trust with returns due or overdue, one per body waiting."""
    due = repo.due_asks(session=session, until=today + timedelta(days=within_days))
    by_trust: dict[str, list[dict[str, Any]]] = {}
    by_body: dict[str, list[dict[str, Any]]] = {}
    for ask, bodies in due:
        line = ask_line(ask, bodies, today=today)
        by_trust.setdefault(ask.org_code, []).append(line)
        for body in bodies:
            by_body.setdefault(body, []).append(line)
    codes = set(by_trust) | set(by_body)
    names = {
        code: org.name for code, org in repo.organisations(session=session, codes=codes).items()
    }
    messages = [
        trust_message(code, lines, today=today, within_days=within_days, name=names.get(code))
        for code, lines in sorted(by_trust.items())
    ]
    messages += [
        body_message(code, lines, today=today, names=names)
        for code, lines in sorted(by_body.items())
    ]
    return messages


def route(delivery: dict[str, Any] | None, *, settings: Settings, org_code: str) -> tuple[str, str]:
    """(channel, target) of an organisation's delivery setting, as a notification records it."""
    if delivery is None:
        return "files", (settings.outbox_dir / org_code).resolve().as_uri()
    channel = str(delivery.get("channel", ""))[:10]
    key = {"files": "uri", "mesh": "mailbox", "email": "address"}.get(channel)
    return channel, str(delivery.get(key, ""))[:500] if key else ""


def deliver(
    message: Message,
    *,
    notification_id: str,
    day: date,
    delivery: dict[str, Any] | None,
    settings: Settings,
) -> Sent | None:
    """Send one message through the organisation's channel; None for ``api`` (kept only).

    Raises the channel's DeliveryFailed or ChannelMisconfigured (or an OSError).
    """
    local_id = f"drb-notification-{notification_id}"
    kind = None if delivery is None else delivery.get("channel")
    if kind == "api":
        return None
    if kind == "email":
        if not settings.smtp_host:
            raise ChannelMisconfigured(
                f"{message.org_code} is reached by e-mail, but DRB_SMTP_HOST is not set"
            )
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        email = EmailChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            recipient=str((delivery or {}).get("address", "")),
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=password,
        )
        return email.send(subject=message.subject, text=message.body, local_id=local_id)
    if kind == "mesh":
        delivery = {**(delivery or {}), "workflow_id": MESH_WORKFLOW_ID}
    channel = channel_for(delivery, settings=settings, body_code=message.org_code)
    if channel is None:  # an unknown channel raised already; api and email are handled above
        raise ChannelMisconfigured(f"{message.org_code}: no channel for notifications")
    filename = f"drb-{_FILE_PREFIX[message.kind]}-{message.org_code}-{day.isoformat()}.txt"
    source = _staged(settings, local_id, f"Subject: {message.subject}\n\n{message.body}")
    try:
        return channel.deliver(
            source=source, filename=filename, local_id=local_id, subject=message.subject
        )
    finally:
        source.unlink(missing_ok=True)


def _staged(settings: Settings, local_id: str, text: str) -> Path:
    folder = settings.data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{local_id}.txt"
    path.write_text(text, encoding="utf-8")
    return path


def run_pass(
    *, factory: sessionmaker[Session], settings: Settings, today: date
) -> list[dict[str, Any]]:
    """Send today's reminders and summaries not sent yet; the notifications this pass sent,
    failed or cancelled (a second pass on the same day, with nothing failed, returns [])."""
    with session_scope(factory) as session:
        messages = compose(session=session, today=today, within_days=settings.reminder_days)
        earlier = {
            (n.org_code, n.kind): (n.id, n.status) for n in repo.of_day(session=session, day=today)
        }
        codes = {m.org_code for m in messages} | {code for code, _kind in earlier}
        deliveries = {
            code: org.delivery
            for code, org in repo.organisations(session=session, codes=codes).items()
        }
    handled: list[dict[str, Any]] = []
    wanted = {(m.org_code, m.kind): m for m in messages}
    for key, (notification_id, status) in sorted(earlier.items()):
        if key not in wanted and status in UNSENT:
            cancelled = _cancel(factory, notification_id)
            if cancelled is not None:
                handled.append(cancelled)
    for key, message in wanted.items():
        delivery = deliveries.get(message.org_code)
        channel, target = route(delivery, settings=settings, org_code=message.org_code)
        claimed = _claim(
            factory, message, earlier.get(key), day=today, channel=channel, target=target
        )
        if claimed is None:
            continue  # sent already, or another process is sending it
        try:
            sent = deliver(
                message, notification_id=claimed, day=today, delivery=delivery, settings=settings
            )
        except Exception as error:  # recorded as failed, never lost: the next pass retries it
            handled.append(_record(factory, claimed, sent=None, error=error))
            continue
        handled.append(_record(factory, claimed, sent=sent, error=None))
    return handled


def _claim(
    factory: sessionmaker[Session],
    message: Message,
    earlier: tuple[str, str] | None,
    *,
    day: date,
    channel: str,
    target: str,
) -> str | None:
    """The id of the notification this process is now to send, or None."""
    now = utcnow()
    content = {
        "channel": channel,
        "target": target,
        "subject": message.subject[:300],
        "body": message.body,
        "asks": message.asks,
    }
    if earlier is not None:
        notification_id, status = earlier
        if status not in UNSENT:
            return None
        with session_scope(factory) as session:
            row = _take(session, notification_id)
            if row is None:
                return None
            for name, value in content.items():
                setattr(row, name, value)  # the list as it is now; the setting as it is now
        return notification_id
    notification_id = new_id()
    try:
        with session_scope(factory) as session:
            session.add(
                Notification(
                    id=notification_id,
                    org_code=message.org_code,
                    kind=message.kind,
                    day=day,
                    status=NotificationStatus.SENDING,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                    **content,
                )
            )
    except IntegrityError:  # another process wrote today's row first: it sends it
        return None
    return notification_id


def _take(session: Session, notification_id: str) -> Notification | None:
    """The notification, claimed for this process (see :func:`repo.claim`), or None."""
    now = utcnow()
    if not repo.claim(
        session=session,
        notification_id=notification_id,
        now=now,
        stale_before=now - STALE_SENDING,
    ):
        return None
    return repo.get(session=session, notification_id=notification_id)


def _record(
    factory: sessionmaker[Session],
    notification_id: str,
    *,
    sent: Sent | None,
    error: BaseException | None,
) -> dict[str, Any]:
    with session_scope(factory) as session:
        row = repo.get(session=session, notification_id=notification_id)
        assert row is not None
        now = utcnow()
        row.attempts += 1
        row.updated_at = now
        if error is None:
            row.status = NotificationStatus.SENT
            row.message_id = sent.message_id if sent is not None else None
            row.sent_at = now
            row.last_error = None
        else:
            row.status = NotificationStatus.FAILED
            row.last_error = f"{type(error).__name__}: {error}"[:4000]
            log.warning(
                "notification %s to %s failed (attempt %d): %s",
                row.id,
                row.org_code,
                row.attempts,
                row.last_error,
                extra={"notification_id": row.id, "org_code": row.org_code, "retrying": True},
            )
        audit.record(
            session=session,
            actor=ACTOR,
            action="notification.sent" if error is None else "notification.failed",
            subject_type="notification",
            subject_id=row.id,
            detail={
                "org_code": row.org_code,
                "kind": row.kind,
                "day": row.day.isoformat(),
                "channel": row.channel,
                "asks": len(row.asks),
                "attempts": row.attempts,
            },
        )
        return as_dict(row, steward=True)


def _cancel(factory: sessionmaker[Session], notification_id: str) -> dict[str, Any] | None:
    """A failed notification with nothing left to say (the trust has sent everything since)."""
    with session_scope(factory) as session:
        row = _take(session, notification_id)
        if row is None:
            return None
        row.status = NotificationStatus.CANCELLED
        audit.record(
            session=session,
            actor=ACTOR,
            action="notification.cancelled",
            subject_type="notification",
            subject_id=row.id,
            detail={"org_code": row.org_code, "kind": row.kind, "day": row.day.isoformat()},
        )
        return as_dict(row, steward=True)


def due_now(now: datetime, settings: Settings) -> bool:
    """Whether the worker's daily pass may run now (from DRB_REMINDER_HOUR, local time)."""
    return settings.reminders and now.hour >= settings.reminder_hour


def as_dict(notification: Notification, *, steward: bool) -> dict[str, Any]:
    """A notification as the API shows it. Stewards see where it went and why it failed; the
    organisation and auditors see no server folder and no raw error."""
    message_id = notification.message_id
    target: str | None = notification.target
    if notification.channel == "files" and not steward:
        target = None
        if message_id is not None:
            message_id = message_id.rstrip("/").rsplit("/", 1)[-1]
    shown: dict[str, Any] = {
        "id": notification.id,
        "org_code": notification.org_code,
        "kind": notification.kind,
        "day": notification.day.isoformat(),
        "channel": notification.channel,
        "target": target,
        "status": notification.status,
        "message_id": message_id,
        "subject": notification.subject,
        "body": notification.body,
        "asks": notification.asks,
        "attempts": notification.attempts,
        "created_at": notification.created_at.isoformat(),
        "sent_at": notification.sent_at.isoformat() if notification.sent_at else None,
    }
    if notification.status == NotificationStatus.FAILED:
        shown["message"] = NOT_SENT_YET
        if steward:
            shown["error"] = notification.last_error
    return shown


def visible(
    *,
    session: Session,
    caller_kind: str,
    caller_code: str,
    org_code: str | None,
    day: date | None,
    kind: NotificationKind | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """The notifications a caller may read, newest first: a trust's or a body's own; every
    one for auditors and stewards (``org_code`` to filter). Every reading is audited as
    ``notifications.read``, whether by the API or a page."""
    if caller_kind in (OrgKind.TRUST, OrgKind.OVERSIGHT_BODY):
        if org_code not in (None, caller_code):
            raise Forbidden("An organisation sees only the notifications sent to it.")
        org_code = caller_code
    rows = repo.listing(
        session=session, org_code=org_code, day=day, kind=kind, limit=limit, offset=offset
    )
    shown = [as_dict(row, steward=caller_kind == OrgKind.STEWARD) for row in rows]
    audit.record(
        session=session,
        actor=caller_code,
        action="notifications.read",
        subject_type="notification",
        subject_id=org_code or "all",
        detail={
            "org_code": org_code,
            "day": day.isoformat() if day else None,
            "kind": kind,
            "notifications": len(shown),
        },
    )
    return shown
