"""Behind a TLS proxy: its forwarded scheme is believed only from DRB_TRUSTED_PROXIES; HSTS."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.broker.app import create_app
from services.catalogue.runtime import Runtime
from services.catalogue.settings import Settings
from tests.processes import drb_env, run_drb, serving

Headers = dict[str, str]
PROXY = ("10.0.0.5", 40000)
STRANGER = ("192.0.2.7", 40000)
HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, behind one trusted proxy (and a network of them)."""
    return settings.model_copy(update={"trusted_proxies": "10.0.0.5,172.16.0.0/12"})


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    """The app, with a probe of what it believes about the connection."""
    built = create_app(runtime)

    @built.get("/_probe", include_in_schema=False)
    def probe(request: Request) -> dict[str, object]:
        return {
            "scheme": request.url.scheme,
            "client": request.client.host if request.client else None,
        }

    return built


@pytest.fixture
def connect(app: FastAPI) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def _connect(client: tuple[str, int], base_url: str = "http://testserver") -> TestClient:
        test_client = TestClient(app, client=client, base_url=base_url)
        opened.append(test_client.__enter__())
        return test_client

    yield _connect
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture
def auditor_token(make_org: Callable[..., Headers]) -> str:
    return make_org("NAO", "auditor")["Authorization"].removeprefix("Bearer ")


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name."""
    return {value.split("=", 1)[0]: value for value in response.headers.get_list("set-cookie")}


def sign_in(client: TestClient, token: str, headers: Headers) -> httpx.Response:
    """Sign in through the form; the form's cookie is sent by hand (Secure cookies never go
    back over the test client's plain http, as a browser would not send them either)."""
    form = client.get("/sign-in", headers=headers)
    assert form.status_code == 200, form.text
    form_cookie = set_cookies(form)["drb_sign_in"].split(";", 1)[0]
    form_token = re.search(r'name="form_token" value="([^"]+)"', form.text)
    assert form_token is not None
    client.cookies.clear()
    return client.post(
        "/sign-in",
        data={"token": token, "form_token": form_token.group(1)},
        headers={**headers, "Cookie": form_cookie},
        follow_redirects=False,
    )


def is_secure(set_cookie: str) -> bool:
    return "secure" in [part.strip().lower() for part in set_cookie.split(";")]


def test_https_from_a_trusted_proxy_gives_secure_cookies_and_hsts(
    connect: Callable[..., TestClient], auditor_token: str
) -> None:
    proxy = connect(PROXY)
    probe = proxy.get("/_probe", headers=HTTPS)
    assert probe.json() == {"scheme": "https", "client": "203.0.113.9"}
    assert probe.headers["strict-transport-security"] == HSTS
    health = proxy.get("/v1/health", headers=HTTPS)
    assert health.headers["strict-transport-security"] == HSTS
    # Errors too: a 401 problem goes back over the same https.
    refused = proxy.get("/v1/datasets", headers=HTTPS)
    assert refused.status_code == 401
    assert refused.headers["strict-transport-security"] == HSTS

    form = proxy.get("/sign-in", headers=HTTPS)
    assert is_secure(set_cookies(form)["drb_sign_in"])
    signed_in = sign_in(proxy, auditor_token, HTTPS)
    assert signed_in.status_code == 303, signed_in.text
    session_cookie = set_cookies(signed_in)["drb_session"]
    assert is_secure(session_cookie)
    assert "httponly" in session_cookie.lower()
    assert "samesite=strict" in session_cookie.lower()


def test_a_proxy_network_is_trusted_as_a_whole(connect: Callable[..., TestClient]) -> None:
    probe = connect(("172.20.1.2", 1234)).get("/_probe", headers=HTTPS)
    assert probe.json() == {"scheme": "https", "client": "203.0.113.9"}


def test_the_same_headers_from_anyone_else_change_nothing(
    connect: Callable[..., TestClient], auditor_token: str
) -> None:
    stranger = connect(STRANGER)
    probe = stranger.get("/_probe", headers=HTTPS)
    assert probe.json() == {"scheme": "http", "client": STRANGER[0]}
    assert "strict-transport-security" not in probe.headers
    signed_in = sign_in(stranger, auditor_token, HTTPS)
    assert signed_in.status_code == 303, signed_in.text
    assert not is_secure(set_cookies(signed_in)["drb_session"])
    assert "strict-transport-security" not in signed_in.headers


def test_plain_http_from_loopback_signs_in_without_secure(
    connect: Callable[..., TestClient], auditor_token: str
) -> None:
    local = connect(("127.0.0.1", 50000))
    assert "strict-transport-security" not in local.get("/v1/health").headers
    signed_in = sign_in(local, auditor_token, {})
    assert signed_in.status_code == 303, signed_in.text
    assert not is_secure(set_cookies(signed_in)["drb_session"])
    # The browser (the test client's cookie jar) keeps the cookie and the report opens.
    local.cookies.set("drb_session", signed_in.cookies["drb_session"])
    assert local.get("/reports/burden", follow_redirects=False).status_code == 200


def test_https_without_a_proxy_gets_hsts(connect: Callable[..., TestClient]) -> None:
    direct = connect(STRANGER, base_url="https://testserver")
    response = direct.get("/v1/health")
    assert response.headers["strict-transport-security"] == HSTS


def test_hsts_max_age_is_a_setting_and_zero_turns_it_off(runtime: Runtime) -> None:
    for max_age, expected in ((600, "max-age=600; includeSubDomains"), (0, None)):
        runtime.settings = runtime.settings.model_copy(update={"hsts_max_age": max_age})
        with TestClient(create_app(runtime), base_url="https://testserver") as client:
            assert client.get("/v1/health").headers.get("strict-transport-security") == expected


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path}
    assert Settings(**base, trusted_proxies=" 10.0.0.1 , fd00::/8,").trusted_proxies == (
        "10.0.0.1,fd00::/8"
    )
    assert Settings(**base, trusted_proxies="*").trusted_proxies == "*"
    assert Settings(**base).trusted_proxies == ""
    with pytest.raises(ValidationError, match="DRB_TRUSTED_PROXIES"):
        Settings(**base, trusted_proxies="proxy.example")


def test_drb_serve_does_not_believe_local_proxy_headers_unless_told(tmp_path: Path) -> None:
    """uvicorn on its own believes X-Forwarded-Proto from 127.0.0.1; `drb serve` does not."""
    env = drb_env(data_dir=str(tmp_path / "var"))
    migrated = run_drb("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    with serving(env, tmp_path / "serve.log") as (base, _server):
        forwarded = httpx.get(f"{base}/v1/health", headers=HTTPS)
        assert "strict-transport-security" not in forwarded.headers
