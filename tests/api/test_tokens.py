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
from services.catalogue import auth
from services.catalogue.db import session_scope
from services.catalogue.migrate import alembic_config
from services.catalogue.models import AuditEvent, Token
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
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
    make_org("NHSE", "oversight_body")
    before = datetime.now(UTC)
    issued = issue(client, admin, "NHSE")  # no body at all, as before expiry existed
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
    make_org("NHSE", "oversight_body")
    runtime.settings = runtime.settings.model_copy(update={"token_ttl_days": 7})
    issued = issue(client, admin, "NHSE", {"label": "laptop"})
    assert when(issued["expires_at"]) - datetime.now(UTC) < timedelta(days=7)
    assert when(issued["expires_at"]) - datetime.now(UTC) > timedelta(days=6, hours=23)


def test_the_issuer_chooses_a_lifetime_within_bounds(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers]
) -> None:
    make_org("NHSE", "oversight_body")
    issued = issue(client, admin, "NHSE", {"label": "pipeline", "expires_in_days": 366})
    assert when(issued["expires_at"]) > datetime.now(UTC) + timedelta(days=365)
    for days in (0, 367, -1):
        refused = client.post(
            "/v1/organisations/NHSE/tokens", headers=admin, json={"expires_in_days": days}
        )
        assert refused.status_code == 422, refused.text


def test_an_expired_token_gets_a_401_saying_so(
    client: TestClient, admin: Headers, make_org: Callable[..., Headers], runtime: Runtime
) -> None:
    make_org("NHSE", "oversight_body")
    issued = issue(client, admin, "NHSE", {"expires_in_days": 1})
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
    make_org("NHSE", "oversight_body")
    issued = issue(client, admin, "NHSE")
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
    make_org("NAO", "auditor")
    issued = issue(client, admin, "NAO")
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
