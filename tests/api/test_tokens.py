"""Tokens expire, DRB_ADMIN_TOKEN rotates (the old one is revoked), and both are audited."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text, update

from services.broker.app import create_app
from services.catalogue import audit, auth
from services.catalogue.db import session_scope
from services.catalogue.errors import Forbidden
from services.catalogue.migrate import alembic_config
from services.catalogue.models import AuditEvent, Token
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
from tests.api_calls import ae_csv, send, settled
from tests.conftest import ADMIN_TOKEN, bearer

Headers = dict[str, str]
TOKEN_B = "drb_rotated-admin-token-" + "y" * 20


def issue(client: TestClient, admin: Headers, code: str, body: object = None) -> dict[str, str]:
    kwargs = {} if body is None else {"json": body}
    response = client.post(f"/v1/organisations/{code}/tokens", headers=admin, **kwargs)
    assert response.status_code == 201, response.text
    issued: dict[str, str] = response.json()
    return issued


def when(text_: str) -> datetime:
    return datetime.fromisoformat(text_.replace("Z", "+00:00"))


def expire(runtime: Runtime, token_id: str) -> None:
    """Move a token's expiry into the past, as time passing would."""
    with session_scope(runtime.factory) as session:
        session.execute(
            update(Token)
            .where(Token.id == token_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )


def events(runtime: Runtime, *actions: str) -> list[AuditEvent]:
    with session_scope(runtime.factory) as session:
        query = select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.id)
        found = list(session.scalars(query).all())
        session.expunge_all()
        return found


# -- expiry ---------------------------------------------------------------------------------


def test_a_new_token_expires_after_the_default_and_says_when(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    owner = make_org("NHSE", "oversight_body")
    before = datetime.now(UTC)
    issued = issue(client, owner, "NHSE")  # no body at all, as before expiry existed
    assert set(issued) >= {"id", "token", "expires_at"}
    expires = when(issued["expires_at"])
    assert before + timedelta(days=90) <= expires <= datetime.now(UTC) + timedelta(days=90)
    listed = client.get("/v1/organisations/NHSE/tokens", headers=admin).json()
    assert [when(t["expires_at"]) for t in listed if t["id"] == issued["id"]] == [expires]
    (event,) = [e for e in events(runtime, "token.issued") if e.detail["token_id"] == issued["id"]]
    assert when(event.detail["expires_at"]) == expires
    assert issued["token"] not in json.dumps(event.detail)


def test_the_default_lifetime_is_a_setting(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    owner = make_org("NHSE", "oversight_body")
    runtime.settings = runtime.settings.model_copy(update={"token_ttl_days": 7})
    issued = issue(client, owner, "NHSE", {"label": "laptop"})
    assert when(issued["expires_at"]) - datetime.now(UTC) < timedelta(days=7)
    assert when(issued["expires_at"]) - datetime.now(UTC) > timedelta(days=6, hours=23)


def test_the_issuer_chooses_a_lifetime_within_bounds(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers]
) -> None:
    owner = make_org("NHSE", "oversight_body")
    issued = issue(client, owner, "NHSE", {"label": "pipeline", "expires_in_days": 366})
    assert when(issued["expires_at"]) > datetime.now(UTC) + timedelta(days=365)
    for days in (0, 367, -1):
        refused = client.post(
            "/v1/organisations/NHSE/tokens", headers=owner, json={"expires_in_days": days}
        )
        assert refused.status_code == 422, refused.text


def test_an_expired_token_gets_a_401_saying_so(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    owner = make_org("NHSE", "oversight_body")
    issued = issue(client, owner, "NHSE", {"expires_in_days": 1})
    assert client.get("/v1/datasets", headers=bearer(issued["token"])).status_code == 200
    expire(runtime, issued["id"])
    refused = client.get("/v1/datasets", headers=bearer(issued["token"]))
    assert refused.status_code == 401
    body = refused.json()
    assert body["type"].endswith("/token-expired")
    assert "expired" in body["detail"]
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    # An unknown token is told apart from an expired one.
    unknown = client.get("/v1/datasets", headers=bearer("drb_" + "z" * 43))
    assert unknown.status_code == 401
    assert unknown.json()["type"].endswith("/unauthenticated")
    assert "expired" not in unknown.json()["detail"]
    with session_scope(runtime.factory) as session:
        assert auth.authenticate(session=session, token=issued["token"]) is None


def test_a_revoked_token_that_expired_is_reported_revoked(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    owner = make_org("NHSE", "oversight_body")
    issued = issue(client, owner, "NHSE")
    expire(runtime, issued["id"])
    client.delete(f"/v1/organisations/NHSE/tokens/{issued['id']}", headers=admin)
    refused = client.get("/v1/datasets", headers=bearer(issued["token"]))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


def sign_in(client: TestClient, token: str) -> tuple[int, str, str | None]:
    """Post the sign-in form: (status, page or location, the session cookie set if any)."""
    form = client.get("/sign-in")
    form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    assert form_token is not None, form.text
    posted = client.post(
        "/sign-in",
        data={"token": token, "form_token": form_token.group(1)},
        follow_redirects=False,
    )
    return posted.status_code, posted.text, posted.cookies.get("drb_session")


def test_web_sign_in_refuses_an_expired_token_and_its_session_ends(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    owner = make_org("NAO", "auditor")
    issued = issue(client, owner, "NAO")
    status, _, cookie = sign_in(client, issued["token"])
    assert status == 303
    assert cookie
    assert client.get("/reports/burden", follow_redirects=False).status_code == 200

    expire(runtime, issued["id"])
    ended = client.get("/reports/burden", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/sign-in"
    # The session is gone, not only refused once.
    assert client.get("/reports/burden", follow_redirects=False).status_code == 303

    status, page, cookie = sign_in(client, issued["token"])
    assert status == 401
    assert "expired" in page
    assert cookie is None
    bearer_page = client.get("/reports/burden", headers=bearer(issued["token"]))
    assert bearer_page.status_code == 401
    assert "expired" in bearer_page.text


# -- who issues an organisation's tokens, and who sees them ---------------------------------


def register(client: TestClient, admin: Headers, code: str, kind: str) -> None:
    body = {"code": code, "name": code, "kind": kind, "region": "Y56" if kind == "trust" else None}
    assert client.post("/v1/organisations", json=body, headers=admin).status_code == 201


def steward_token_id(runtime: Runtime) -> str:
    with session_scope(runtime.factory) as session:
        stored = session.scalars(select(Token).where(Token.org_code == auth.BOOTSTRAP_STEWARD))
        return stored.one().id


def test_a_steward_issues_only_the_first_admin_token_then_the_admin_issues(
    client: TestClient, admin: Headers, runtime: Runtime
) -> None:
    for code, kind in (("RJ1", "trust"), ("R1K", "trust"), ("STW2", "steward")):
        register(client, admin, code, kind)
    first = issue(client, admin, "RJ1", {"label": "bootstrap"})
    assert first["roles"] == ["admin"]
    rj1 = bearer(first["token"])

    # Any steward, once RJ1 has a live admin token: refused, saying why and whom to ask.
    other_steward = bearer(issue(client, admin, "STW2")["token"])
    for steward in (admin, other_steward):
        refused = client.post("/v1/organisations/RJ1/tokens", headers=steward)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert (
            "a steward issues only an organisation's first admin token" in refused.json()["detail"]
        )
    # RJ1's admin issues RJ1's tokens (not admin unless asked); such a token issues none.
    member = issue(client, rj1, "RJ1", {"label": "pipeline"})
    assert member["roles"] == []
    second_admin = issue(client, rj1, "RJ1", {"roles": ["admin"]})
    assert second_admin["roles"] == ["admin"]
    refused = client.post("/v1/organisations/RJ1/tokens", headers=bearer(member["token"]))
    assert refused.status_code == 403
    assert "Only an admin token of RJ1" in refused.json()["detail"]
    # Nor does another organisation's admin, nor a role no one has.
    r1k = bearer(issue(client, admin, "R1K")["token"])
    assert client.post("/v1/organisations/RJ1/tokens", headers=r1k).status_code == 403
    unknown = client.post("/v1/organisations/RJ1/tokens", headers=rj1, json={"roles": ["root"]})
    assert unknown.status_code == 422

    # Revoked and expired, RJ1 has no live admin: the steward may bootstrap it again.
    assert (
        client.delete(
            f"/v1/organisations/RJ1/tokens/{first['id']}", headers=bearer(second_admin["token"])
        ).status_code
        == 204
    )
    expire(runtime, second_admin["id"])
    assert issue(client, admin, "RJ1")["roles"] == ["admin"]


def test_an_organisation_sees_who_issued_each_of_its_tokens(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    register(client, admin, "RJ1", "trust")
    nao, other = make_org("NAO", "auditor"), make_org("R1K", "trust", "Y56")
    first = issue(client, admin, "RJ1")
    member = issue(client, bearer(first["token"]), "RJ1", {"label": "laptop"})
    client.delete(f"/v1/organisations/RJ1/tokens/{member['id']}", headers=bearer(first["token"]))
    steward_id = steward_token_id(runtime)
    for viewer in (bearer(first["token"]), nao, admin):
        listed = client.get("/v1/organisations/RJ1/tokens", headers=viewer)
        assert listed.status_code == 200, listed.text
        by_id = {t["id"]: t for t in listed.json()}
        assert by_id[first["id"]]["issued_by"] == {
            "org_code": "DRB-STEWARD",
            "token_id": steward_id,
        }
        assert by_id[first["id"]]["roles"] == ["admin"]
        assert by_id[first["id"]]["revoked"] is False
        assert by_id[member["id"]]["issued_by"] == {"org_code": "RJ1", "token_id": first["id"]}
        assert by_id[member["id"]]["revoked"] is True
        assert by_id[member["id"]]["issued_at"] == by_id[member["id"]]["created_at"]
        body = listed.text
        assert first["token"] not in body
        assert member["token"] not in body
        assert auth.hash_token(first["token"]) not in body
    refused = client.get("/v1/organisations/RJ1/tokens", headers=other)
    assert refused.status_code == 403
    # Each issue and revocation is audited: by whom, with which token.
    issued = {e.detail["token_id"]: e for e in events(runtime, "token.issued")}
    assert (issued[first["id"]].actor, issued[first["id"]].token_id) == ("DRB-STEWARD", steward_id)
    assert (issued[member["id"]].actor, issued[member["id"]].token_id) == ("RJ1", first["id"])
    (revoked,) = events(runtime, "token.revoked")
    assert (revoked.actor, revoked.token_id) == ("RJ1", first["id"])


def test_every_audit_event_names_the_token_its_actor_used(
    client: TestClient,
    admin: Headers,
    make_org: Callable[..., Headers],
    runtime: Runtime,
    running_worker: object,
) -> None:
    """Across the API and the pages: each organisation's events carry the token it used (the
    one of that call, among several), the system's none; the token is under the hash."""
    nao = make_org("NAO", "auditor")
    cqc = make_org("CQC", "oversight_body")
    rj1_admin = make_org("RJ1", "trust", "Y56")
    rj1_issued = issue(client, rj1_admin, "RJ1")
    rj1 = bearer(rj1_issued["token"])
    tokens: dict[str, str] = {}
    with session_scope(runtime.factory) as session:
        for token in session.scalars(select(Token)):
            tokens[token.id] = token.org_code
    request = {
        "title": "t",
        "purpose": "p",
        "legal_basis": "l",
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
        "period_start": "2025-01",
        "period_end": "2025-01",
        "due_days": 20,
    }
    assert client.post("/v1/requests", json=request, headers=cqc).status_code == 201
    for period in ("2025-01", "2025-02"):
        sent = send(client, rj1, ae_csv("RJ1", period), period=period)
        assert sent.status_code == 202, sent.text
        settled(client, rj1, sent.json()["id"])
    spc = client.get(
        "/v1/indicators/ae_attendances/spc",
        params={"org_code": "RJ1", "period_start": "2025-01", "period_end": "2025-02"},
        headers=rj1,
    )
    assert spc.status_code == 200, spc.text
    # A refused chart is recorded in a transaction of its own: with the caller's token too.
    refused = client.get(
        "/v1/indicators/ae_attendances/spc",
        params={"org_code": "RJ1", "period_start": "2025-01", "period_end": "2025-02"},
        headers=cqc,
    )
    assert refused.status_code == 403, refused.text
    status, _, _ = sign_in(client, nao["Authorization"].removeprefix("Bearer "))
    assert status == 303

    listed = client.get("/v1/audit-events", headers=nao).json()
    by_caller = [e for e in listed if e["actor"] in {"DRB-STEWARD", "NAO", "CQC", "RJ1"}]
    assert {e["actor"] for e in by_caller} == {"DRB-STEWARD", "NAO", "CQC", "RJ1"}
    for event in listed:
        assert event["person"] is None
        if event in by_caller:
            assert tokens.get(event["token_id"]) == event["actor"], event
        else:
            assert event["token_id"] is None, event  # the system: start-up, the validator
    # The token of that call, not another of the organisation's (RJ1's admin token).
    received = [e for e in listed if e["action"] in ("submission.received", "indicator.read")]
    assert [e["token_id"] for e in received] == [rj1_issued["id"]] * 3
    assert client.get("/v1/audit-events/verify", headers=nao).json()["valid"] is True


# -- DRB_ADMIN_TOKEN: bootstrap, rotation, removal ------------------------------------------


@pytest.fixture
def restart(runtime: Runtime) -> Iterator[Callable[..., Runtime]]:
    """Boot the app again over the same database with another DRB_ADMIN_TOKEN."""
    booted: list[Runtime] = []

    def _restart(admin_token: str | None, *, bootstrap_admin: bool = True) -> Runtime:
        settings = runtime.settings.model_copy(
            update={"admin_token": SecretStr(admin_token) if admin_token else None}
        )
        again = boot(settings, bootstrap_admin=bootstrap_admin)
        booted.append(again)
        return again

    yield _restart
    for again in booted:
        again.close()


def status_with(runtime: Runtime, token: str) -> int:
    with TestClient(create_app(runtime)) as client:
        return client.get("/v1/organisations", headers=bearer(token)).status_code


def test_the_bootstrap_is_audited_without_the_token(runtime: Runtime) -> None:
    (event,) = events(runtime, "token.bootstrapped")
    assert event.actor == "system"
    assert event.subject_id == auth.BOOTSTRAP_STEWARD
    with session_scope(runtime.factory) as session:
        stored = session.get(Token, event.detail["token_id"])
        assert stored is not None
        assert stored.expires_at is None
    serialised = json.dumps(event.detail)
    assert ADMIN_TOKEN not in serialised
    assert auth.hash_token(ADMIN_TOKEN) not in serialised


def test_rotating_the_admin_token_revokes_the_old_one(
    runtime: Runtime, restart: Callable[..., Runtime]
) -> None:
    assert status_with(runtime, ADMIN_TOKEN) == 200
    (first,) = events(runtime, "token.bootstrapped")

    rotated = restart(TOKEN_B)
    assert status_with(rotated, ADMIN_TOKEN) == 401
    assert status_with(rotated, TOKEN_B) == 200
    bootstrapped = events(rotated, "token.bootstrapped")
    assert len(bootstrapped) == 2
    (revoked,) = events(rotated, "token.revoked")
    assert revoked.actor == "system"
    assert revoked.detail == {"token_id": first.detail["token_id"], "reason": auth.ROTATED}
    assert TOKEN_B not in json.dumps(bootstrapped[-1].detail)

    # Starting again with the same setting changes and records nothing.
    with session_scope(rotated.factory) as session:
        count = len(session.scalars(select(AuditEvent.id)).all())
    again = restart(TOKEN_B)
    assert status_with(again, TOKEN_B) == 200
    with session_scope(again.factory) as session:
        assert len(session.scalars(select(AuditEvent.id)).all()) == count


def test_a_worker_leaves_the_admin_token_alone(
    runtime: Runtime, restart: Callable[..., Runtime]
) -> None:
    worker = restart(None, bootstrap_admin=False)
    assert status_with(worker, ADMIN_TOKEN) == 200
    assert events(worker, "token.revoked") == []


def test_unsetting_the_admin_token_revokes_it(
    runtime: Runtime, restart: Callable[..., Runtime]
) -> None:
    unset = restart(None)
    assert status_with(unset, ADMIN_TOKEN) == 401
    (revoked,) = events(unset, "token.revoked")
    assert revoked.detail["reason"] == auth.UNSET
    # Nothing more on the next start without it.
    restart(None)
    assert len(events(unset, "token.revoked")) == 1


def test_a_revoked_admin_token_never_comes_back(
    runtime: Runtime, restart: Callable[..., Runtime]
) -> None:
    restart(TOKEN_B)
    with pytest.raises(auth.AdminTokenRefused, match="revoked"):
        restart(ADMIN_TOKEN)
    assert status_with(restart(TOKEN_B), TOKEN_B) == 200


def test_an_organisations_token_cannot_become_the_admin_token(
    client: TestClient,
    admin: Headers,
    make_org: Callable[..., Headers],
    restart: Callable[..., Runtime],
) -> None:
    headers = make_org("RJ1", "trust")
    trust_token = headers["Authorization"].removeprefix("Bearer ")
    with pytest.raises(auth.AdminTokenRefused, match="organisation"):
        restart(trust_token)


# -- the migration --------------------------------------------------------------------------


def test_the_upgrade_gives_existing_tokens_an_expiry(database_url: str, tmp_path: Path) -> None:
    """Tokens from before 0005 expire the default after their creation; the admin's stays null."""
    config = alembic_config(database_url)
    command.upgrade(config, "0004")
    engine = create_engine(database_url)
    created = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            for code, kind in (("RJ1", "trust"), (auth.BOOTSTRAP_STEWARD, "steward")):
                connection.execute(
                    text(
                        "INSERT INTO organisations (code, name, kind, created_at)"
                        " VALUES (:code, :code, :kind, :at)"
                    ),
                    {"code": code, "kind": kind, "at": created},
                )
            rows = [
                ("t-trust", "RJ1", "h1", "laptop"),
                ("t-unlabelled", auth.BOOTSTRAP_STEWARD, "h2", None),
                ("t-admin", auth.BOOTSTRAP_STEWARD, "h3", auth.BOOTSTRAP_TOKEN_LABEL),
            ]
            for token_id, code, digest, label in rows:
                connection.execute(
                    text(
                        "INSERT INTO tokens (id, org_code, token_hash, label, created_at)"
                        " VALUES (:id, :code, :digest, :label, :at)"
                    ),
                    {"id": token_id, "code": code, "digest": digest, "label": label, "at": created},
                )
        command.upgrade(config, "head")
        settings = Settings(data_dir=tmp_path / "var", database_url=database_url)
        migrated = boot(settings, bootstrap_admin=False)
        try:
            with session_scope(migrated.factory) as session:
                expiries = {t.id: t.expires_at for t in session.scalars(select(Token))}
        finally:
            migrated.close()
        assert expiries == {
            "t-trust": created + timedelta(days=90),
            "t-unlabelled": created + timedelta(days=90),
            "t-admin": None,
        }
        command.downgrade(config, "0004")
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_the_upgrade_makes_existing_tokens_admin_and_keeps_the_chain_valid(
    database_url: str, tmp_path: Path
) -> None:
    """Before 0009 tokens had no roles and events no token: each existing token becomes its
    organisation's admin token (so a steward cannot issue it another), and the events written
    then still verify, their hashes having never covered a token."""
    config = alembic_config(database_url)
    command.upgrade(config, "0008")
    engine = create_engine(database_url)
    at = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO organisations (code, name, kind, created_at)"
                    " VALUES ('RJ1', 'RJ1', 'trust', :at)"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO tokens (id, org_code, token_hash, label, created_at, expires_at)"
                    " VALUES ('t-old', 'RJ1', 'h1', 'laptop', :at, :until)"
                ),
                {"at": at, "until": datetime.now(UTC) + timedelta(days=30)},
            )
            previous = audit.GENESIS
            for n in range(3):  # a chain as revision 0008's code wrote it: no token
                values = {
                    "at": at + timedelta(seconds=n),
                    "actor": "RJ1",
                    "action": "thing.done",
                    "subject_type": "thing",
                    "subject_id": str(n),
                    "detail": {"n": n},
                    "prev_hash": previous,
                }
                previous = audit.digest(AuditEvent(**values))
                connection.execute(
                    text(
                        "INSERT INTO audit_events (at, actor, action, subject_type, subject_id,"
                        " detail, prev_hash, hash) VALUES (:at, :actor, :action, :subject_type,"
                        " :subject_id, :detail, :prev_hash, :hash)"
                    ),
                    {**values, "detail": json.dumps(values["detail"]), "hash": previous},
                )
            connection.execute(
                text("INSERT INTO audit_head (id, last_hash) VALUES (1, :h)"), {"h": previous}
            )
        command.upgrade(config, "head")
        settings = Settings(data_dir=tmp_path / "var", database_url=database_url)
        migrated = boot(settings, bootstrap_admin=False)
        try:
            with session_scope(migrated.factory) as session:
                stored = session.get(Token, "t-old")
                assert stored is not None
                assert stored.roles == ["admin"]
                assert (stored.issued_by_org, stored.issued_by_token) == (None, None)
                assert audit.verify(session=session).valid
                steward = auth.Principal(org_code="STW", kind="steward", token_id="t-stw")
                with pytest.raises(Forbidden, match="live admin token already"):
                    auth.issue_token(session=session, org_code="RJ1", issuer=steward)
        finally:
            migrated.close()
        command.downgrade(config, "0008")
        command.upgrade(config, "head")
    finally:
        engine.dispose()
