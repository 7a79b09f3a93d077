"""The audit chain tells the truth: every edit or deletion in the database is reported, never a 500.

Each test edits ``audit_events`` (or ``audit_head``) with raw SQL, as someone with write access to
the database would, then asks ``GET /v1/audit-events/verify`` as an auditor.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, text
from typer.testing import CliRunner

from services.catalogue import audit
from services.catalogue.db import session_scope
from services.catalogue.models import AuditEvent, AuditHead
from services.catalogue.runtime import Runtime
from services.catalogue.settings import Settings

Headers = dict[str, str]

TRUNCATED = "the chain ends before its head: newest events deleted"


@pytest.fixture
def auditor(make_org: Callable[..., Headers]) -> Headers:
    """Headers of an auditor; making it appends events (organisation, token) to the chain."""
    return make_org("NAO", "auditor")


@pytest.fixture
def events(runtime: Runtime, auditor: Headers) -> list[int]:
    """Ten more events appended (the even ones with the token used), and the ids of every
    event, oldest first."""
    with session_scope(runtime.factory) as session:
        for n in range(10):
            audit.record(
                session=session,
                actor="DRB-TEST",
                action="thing.done",
                subject_type="thing",
                subject_id=str(n),
                detail={"n": n, "text": "ok"},
                token_id=None if n % 2 else f"token-{n}",
            )
    return ids(runtime)


def ids(runtime: Runtime) -> list[int]:
    """Every event's id, oldest first."""
    with runtime.engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM audit_events ORDER BY id")).scalars())


def execute(runtime: Runtime, sql: str, **params: Any) -> None:
    """Raw SQL, committed, as an intruder with database access would run it."""
    with runtime.engine.begin() as connection:
        connection.execute(text(sql), params)


def verify(client: TestClient, auditor: Headers, **params: Any) -> dict[str, Any]:
    """The verify answer, which must be a 200 whatever the database holds."""
    response = client.get("/v1/audit-events/verify", params=params, headers=auditor)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_invalid_at(body: dict[str, Any], event_id: int | None, *, reason: str = "") -> None:
    """Invalid, with this first bad event (and the same id in the older field), also the first
    of the breaks listed."""
    assert body["valid"] is False, body
    bad = body["first_bad_event"]
    assert bad["id"] == event_id, body
    assert body["first_invalid_id"] == event_id
    assert reason in bad["reason"], body
    assert body["bad_events"][0] == bad
    assert body["breaks"] >= 1


def test_an_untouched_chain_is_valid(
    client: TestClient, auditor: Headers, events: list[int]
) -> None:
    body = verify(client, auditor)
    assert body == {
        "valid": True,
        "events": len(events),
        "first_invalid_id": None,
        "first_bad_event": None,
        "breaks": 0,
        "bad_events": [],
    }


# Edits that any database can hold: the event no longer matches its hash, or its predecessor's.
EDITS = {
    "detail to other JSON": ("UPDATE audit_events SET detail = :v WHERE id = :id", '{"n": 99}'),
    "detail to JSON null": ("UPDATE audit_events SET detail = NULL WHERE id = :id", None),
    "actor": ("UPDATE audit_events SET actor = :v WHERE id = :id", "FORGED"),
    "action": ("UPDATE audit_events SET action = :v WHERE id = :id", "thing.undone"),
    "hash": ("UPDATE audit_events SET hash = :v WHERE id = :id", "f" * 64),
    "prev_hash": ("UPDATE audit_events SET prev_hash = :v WHERE id = :id", "e" * 64),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_event_is_the_first_bad_event(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime, edit: str
) -> None:
    sql, value = EDITS[edit]
    target = events[-5]
    execute(runtime, sql, v=value, id=target)
    body = verify(client, auditor)
    assert_invalid_at(body, target)
    assert body["breaks"] == 1, body  # one edit, one break: the next event still follows it
    assert body["events"] == len(events)
    assert body["first_bad_event"]["action"] in ("thing.done", "thing.undone")
    assert body["first_bad_event"]["at"]


# The token an event names is under its hash: changed, removed or added, it is reported. (An event
# with none, as the system's and those from before tokens were recorded, hashes as it always did.)
TOKEN_EDITS = {
    "changed": (-6, "token-forged"),
    "removed": (-6, None),
    "given to an event with none": (-5, "token-forged"),
}


@pytest.mark.parametrize("edit", sorted(TOKEN_EDITS))
def test_an_edited_token_is_the_first_bad_event(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime, edit: str
) -> None:
    assert verify(client, auditor)["valid"] is True
    position, value = TOKEN_EDITS[edit]
    target = events[position]
    execute(runtime, "UPDATE audit_events SET token_id = :v WHERE id = :id", v=value, id=target)
    assert_invalid_at(verify(client, auditor), target, reason="does not match its hash")


def test_an_event_moved_in_time_is_reported(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    target = events[-6]
    if runtime.engine.dialect.name == "sqlite":
        sql = "UPDATE audit_events SET at = '2001-02-03 04:05:06.000000' WHERE id = :id"
    else:
        sql = "UPDATE audit_events SET at = at - interval '3 days' WHERE id = :id"
    execute(runtime, sql, id=target)
    body = verify(client, auditor)
    assert_invalid_at(body, target, reason="edited")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_events SET detail = '{not json' WHERE id = :id",
        "UPDATE audit_events SET at = 'yesterday-ish' WHERE id = :id",
        "UPDATE audit_events SET at = 12 WHERE id = :id",
    ],
    ids=["detail invalid JSON", "at garbage text", "at a number"],
)
# Only SQLite holds such values: PostgreSQL refuses them (json, timestamptz).
@pytest.mark.parametrize("catalogue_url", ["sqlite"], indirect=True)
def test_an_unreadable_event_is_the_first_bad_event_on_sqlite(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime, sql: str
) -> None:
    target = events[-7]
    execute(runtime, sql, id=target)
    body = verify(client, auditor)
    assert_invalid_at(body, target, reason="cannot be read")
    assert body["events"] == len(events)
    # The log itself still lists, the unreadable value shown as stored.
    listed = client.get("/v1/audit-events", headers=auditor)
    assert listed.status_code == 200, listed.text
    assert [e["id"] for e in listed.json()] == events


@pytest.mark.parametrize("at", ["infinity", "0044-03-15 00:00:00+00 BC"])
@pytest.mark.parametrize("catalogue_url", ["postgres"], indirect=True)
def test_a_time_python_cannot_hold_is_the_first_bad_event_on_postgres(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime, at: str
) -> None:
    target = events[-7]
    execute(
        runtime,
        "UPDATE audit_events SET at = CAST(:at AS timestamptz) WHERE id = :id",
        at=at,
        id=target,
    )
    body = verify(client, auditor)
    assert_invalid_at(body, target, reason="cannot be read")
    assert "at" not in body["first_bad_event"]
    listed = client.get("/v1/audit-events", headers=auditor)
    assert listed.status_code == 200, listed.text
    shown = {e["id"]: e["at"] for e in listed.json()}
    assert shown[target].startswith(at[:4])


def test_a_deleted_middle_event_is_reported_at_the_next(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    execute(runtime, "DELETE FROM audit_events WHERE id = :id", id=events[-4])
    body = verify(client, auditor)
    assert_invalid_at(body, events[-3], reason="does not follow")
    assert body["breaks"] == 1, body
    assert body["events"] == len(events) - 1


def test_deleted_newest_events_are_detected_by_the_head(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    execute(runtime, "DELETE FROM audit_events WHERE id >= :id", id=events[-3])
    body = verify(client, auditor)
    assert body["valid"] is False
    assert body["events"] == len(events) - 3
    assert body["first_bad_event"]["reason"] == TRUNCATED
    assert body["first_bad_event"]["after_id"] == events[-4]
    assert body["breaks"] == 1, body


def test_every_event_deleted_is_detected_by_the_head(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    execute(runtime, "DELETE FROM audit_events")
    body = verify(client, auditor)
    assert body["valid"] is False
    assert body["events"] == 0
    assert body["first_bad_event"]["reason"] == TRUNCATED


def test_a_deleted_head_is_reported(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    execute(runtime, "DELETE FROM audit_head")
    body = verify(client, auditor)
    assert body["valid"] is False
    assert "head is missing" in body["first_bad_event"]["reason"]


def test_a_head_that_no_event_has_is_reported(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    execute(runtime, "UPDATE audit_head SET last_hash = :h", h="a" * 64)
    body = verify(client, auditor)
    assert body["valid"] is False
    assert body["first_bad_event"]["reason"] == TRUNCATED


# ---------------------------------------------------------------------------
# Every break, not only the first: a later edit is not hidden by an earlier one
# ---------------------------------------------------------------------------


def fork_at(runtime: Runtime, event_id: int) -> None:
    """Link the event to the one its predecessor follows, as two appends that read the same
    head at once did (the chain forks there), and re-link every later event and the head."""
    with session_scope(runtime.factory) as session:
        chain = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        at = next(n for n, event in enumerate(chain) if event.id == event_id)
        chain[at].prev_hash = chain[at - 1].prev_hash
        for n in range(at, len(chain)):
            if n > at:
                chain[n].prev_hash = chain[n - 1].hash
            chain[n].hash = audit.digest(chain[n])
        head = session.get(AuditHead, 1)
        assert head is not None
        head.last_hash = chain[-1].hash


def first_break(runtime: Runtime, events: list[int], kind: str) -> int:
    """Break the chain at events[-8] by ``kind``; the id verify must name for it."""
    target = events[-8]
    if kind == "edited":
        execute(runtime, "UPDATE audit_events SET actor = 'FORGED' WHERE id = :id", id=target)
    elif kind == "deleted":
        execute(runtime, "DELETE FROM audit_events WHERE id = :id", id=target)
        return events[-7]
    else:
        fork_at(runtime, target)
    return target


@pytest.mark.parametrize("kind", ["edited", "deleted", "forked"])
def test_an_edit_after_a_first_break_is_still_seen(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime, kind: str
) -> None:
    first = first_break(runtime, events, kind)
    alone = verify(client, auditor)
    assert_invalid_at(alone, first)
    assert alone["breaks"] == 1, alone  # the events after a break are checked as before
    later = events[-3]
    execute(runtime, "UPDATE audit_events SET detail = :v WHERE id = :id", v='{"n": 99}', id=later)
    body = verify(client, auditor)
    assert_invalid_at(body, first)
    assert body["breaks"] == 2, body
    assert [bad["id"] for bad in body["bad_events"]] == [first, later]
    assert "edited" in body["bad_events"][1]["reason"]


def test_deleted_newest_events_after_a_first_break_are_still_seen(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    first = first_break(runtime, events, "forked")
    execute(runtime, "DELETE FROM audit_events WHERE id >= :id", id=events[-2])
    body = verify(client, auditor)
    assert_invalid_at(body, first)
    assert body["breaks"] == 2, body
    assert body["bad_events"][1] == {"id": None, "after_id": events[-3], "reason": TRUNCATED}


def test_every_break_is_counted_and_the_first_ten_named(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    targets = events[-12:]
    for target in targets:
        execute(runtime, "UPDATE audit_events SET actor = 'FORGED' WHERE id = :id", id=target)
    body = verify(client, auditor)
    assert_invalid_at(body, targets[0], reason="edited")
    assert body["breaks"] == 12
    assert [bad["id"] for bad in body["bad_events"]] == targets[: audit.SHOWN_BREAKS]


def test_appending_after_verification_keeps_the_chain_valid(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    assert verify(client, auditor)["valid"] is True
    # Every further request by a steward appends events; the head moves with them.
    with session_scope(runtime.factory) as session:
        audit.record(
            session=session, actor="DRB-TEST", action="a", subject_type="t", subject_id="x"
        )
    body = verify(client, auditor)
    assert body["valid"] is True
    assert body["events"] == len(events) + 1


# ---------------------------------------------------------------------------
# The head, anchored outside the database
# ---------------------------------------------------------------------------


def head(client: TestClient, auditor: Headers) -> dict[str, Any]:
    response = client.get("/v1/audit-events/head", headers=auditor)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_head_names_the_last_event_unsigned_without_a_key(
    client: TestClient, auditor: Headers, events: list[int]
) -> None:
    listed = client.get("/v1/audit-events", headers=auditor).json()
    body = head(client, auditor)
    assert set(body) == {"events", "last_id", "last_hash", "at", "signature"}
    assert body["events"] == len(events)
    assert body["last_id"] == events[-1] == listed[-1]["id"]
    assert body["last_hash"] == listed[-1]["hash"]
    assert body["signature"] is None
    assert body["at"].endswith("+00:00")


def test_only_auditors_read_the_head(
    client: TestClient, make_org: Callable[..., Headers], admin: Headers, events: list[int]
) -> None:
    assert client.get("/v1/audit-events/head").status_code == 401
    for headers in (admin, make_org("RXX", "trust"), make_org("CQC", "oversight_body")):
        assert client.get("/v1/audit-events/head", headers=headers).status_code == 403


@pytest.fixture
def signing_settings(settings: Settings) -> Settings:
    """The test's settings with a signing key (the runtime built from them holds it)."""
    settings.audit_signing_key = SecretStr("kept-off-the-database-host")
    return settings


def test_the_head_is_signed_with_the_key(
    signing_settings: Settings, client: TestClient, auditor: Headers, events: list[int]
) -> None:
    body = head(client, auditor)
    signed = {k: body[k] for k in ("events", "last_id", "last_hash", "at")}
    canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"))
    expected = hmac.new(b"kept-off-the-database-host", canonical.encode(), hashlib.sha256)
    assert body["signature"] == expected.hexdigest()
    assert audit.head_signature_valid(body, key="kept-off-the-database-host")
    assert not audit.head_signature_valid({**body, "events": 1}, key="kept-off-the-database-host")


def test_an_anchor_proves_a_rebuilt_chain_was_rewritten(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    anchor = head(client, auditor)
    params = {"anchor_id": anchor["last_id"], "anchor_hash": anchor["last_hash"]}
    assert verify(client, auditor, **params)["valid"] is True
    # Someone with write access edits an event and rebuilds every hash after it, head included:
    # the chain alone is valid again, but it no longer holds the anchored event.
    execute(runtime, "UPDATE audit_events SET actor = 'FORGED' WHERE id = :id", id=events[-8])
    rebuild(runtime)
    assert verify(client, auditor)["valid"] is True
    body = verify(client, auditor, **params)
    assert_invalid_at(body, anchor["last_id"], reason="anchor")


def test_an_anchor_proves_deleted_newest_events_with_a_rebuilt_head(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    anchor = head(client, auditor)
    params = {"anchor_id": anchor["last_id"], "anchor_hash": anchor["last_hash"]}
    execute(runtime, "DELETE FROM audit_events WHERE id >= :id", id=events[-2])
    rebuild(runtime)
    assert verify(client, auditor)["valid"] is True
    body = verify(client, auditor, **params)
    assert_invalid_at(body, anchor["last_id"], reason="anchor")
    assert "not in the chain" in body["first_bad_event"]["reason"]


def test_an_old_anchor_still_holds_as_the_chain_grows(
    client: TestClient, auditor: Headers, events: list[int], runtime: Runtime
) -> None:
    anchor = head(client, auditor)
    with session_scope(runtime.factory) as session:
        audit.record(
            session=session, actor="DRB-TEST", action="a", subject_type="t", subject_id="y"
        )
    body = verify(client, auditor, anchor_id=anchor["last_id"], anchor_hash=anchor["last_hash"])
    assert body["valid"] is True


def test_an_anchor_needs_both_parts(
    client: TestClient, auditor: Headers, events: list[int]
) -> None:
    for params in ({"anchor_id": events[0]}, {"anchor_hash": "a" * 64}):
        response = client.get("/v1/audit-events/verify", params=params, headers=auditor)
        assert response.status_code == 422, response.text
    response = client.get(
        "/v1/audit-events/verify", params={"anchor_id": 1, "anchor_hash": "nothex"}, headers=auditor
    )
    assert response.status_code == 422


def rebuild(runtime: Runtime) -> None:
    """Recompute every hash and the head, as an intruder covering their tracks would."""
    with session_scope(runtime.factory) as session:
        previous = audit.GENESIS
        rows = session.execute(text("SELECT id FROM audit_events ORDER BY id")).scalars().all()
        for event_id in rows:
            event = session.get(AuditEvent, event_id)
            assert event is not None
            event.prev_hash = previous
            event.hash = "-" + str(event_id)  # unique placeholder while rehashing
            session.flush()
            event.hash = audit.digest(event)
            session.flush()
            previous = event.hash
        head_row = session.get(AuditHead, 1)
        assert head_row is not None
        head_row.last_hash = previous


# ---------------------------------------------------------------------------
# drb audit-head
# ---------------------------------------------------------------------------


def test_drb_audit_head_prints_the_signed_head(
    signing_settings: Settings,
    client: TestClient,
    auditor: Headers,
    events: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.cli import app

    monkeypatch.setenv("DRB_DATABASE_URL", signing_settings.sqlalchemy_url)
    monkeypatch.setenv("DRB_DATA_DIR", str(signing_settings.data_dir))
    monkeypatch.setenv("DRB_AUDIT_SIGNING_KEY", "kept-off-the-database-host")
    result = CliRunner().invoke(app, ["audit-head"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["last_id"] == events[-1]
    assert printed["events"] == len(events)
    assert audit.head_signature_valid(printed, key="kept-off-the-database-host")
    body = verify(client, auditor, anchor_id=printed["last_id"], anchor_hash=printed["last_hash"])
    assert body["valid"] is True
