"""Hostile bodies are harmless: the token is checked before a body is read, every body is limited.

Over HTTP (TestClient) with the app wrapped in a probe that counts what it asks of the server,
and, where the way a body arrives matters (chunk after chunk), by driving the ASGI app directly
with a body that is produced only as it is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.broker import uploads
from services.broker.app import create_app
from services.broker.limits import MULTIPART_OVERHEAD
from services.catalogue import auth, store
from services.catalogue.runtime import Runtime
from services.catalogue.settings import Settings
from tests.conftest import run_async, settings_for

Headers = dict[str, str]

UPLOAD_LIMIT = 256 * 1024  # DRB_MAX_UPLOAD_BYTES in these tests
JSON_LIMIT = 1024 * 1024  # DRB_MAX_JSON_BYTES's default
CHUNK = 64 * 1024


@pytest.fixture
def settings(tmp_path: Path, catalogue_url: str) -> Settings:
    """The usual test settings, with a small upload limit."""
    return settings_for(tmp_path, catalogue_url, max_upload_bytes=UPLOAD_LIMIT)


class Probe:
    """The app, with what it asks of the server counted: body messages and their bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.messages = 0
        self.bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.messages += 1
                self.bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)

    def reset(self) -> None:
        self.messages = self.bytes = 0


@pytest.fixture
def probe(runtime: Runtime) -> Probe:
    return Probe(create_app(runtime))


@pytest.fixture
def http(probe: Probe) -> Iterator[TestClient]:
    """A client of the probed app."""
    with TestClient(probe, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def orgs(make_org: Callable[..., Headers]) -> dict[str, Headers]:
    return {
        "RJ1": make_org("RJ1", "trust", "Y56"),
        "CQC": make_org("CQC", "oversight_body"),
    }


def problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def request_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "A&E four-hour performance",
        "purpose": "Oversight of urgent care",
        "legal_basis": "Health and Social Care Act 2012 s.254",
        "items": ["ae_attendances"],
        "organisations": ["RJ1"],
        "period_start": "2025-01",
        "period_end": "2025-03",
    }
    return body | overrides


def big_json(size: int) -> bytes:
    """A JSON document of about ``size`` bytes (a long list of numbers)."""
    return b"[" + b"1," * (size // 2) + b"1]"


def chunks_of(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multipart(parts: list[tuple[str, str | None, bytes]], *, extra: bytes = b"") -> bytes:
    """A multipart/form-data body (boundary ``BOUNDARY``): (name, filename, content) parts."""
    body = bytearray()
    for name, filename, content in parts:
        body += b"--BOUNDARY\r\n"
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"Content-Disposition: {disposition}\r\n".encode() + extra + b"\r\n"
        body += content + b"\r\n"
    body += b"--BOUNDARY--\r\n"
    return bytes(body)


MULTIPART = {"Content-Type": "multipart/form-data; boundary=BOUNDARY"}


def return_parts(content: bytes = b"period,org_code\n") -> list[tuple[str, str | None, bytes]]:
    return [
        ("dataset", None, b"ae_monthly"),
        ("period", None, b"2025-01"),
        ("file", "r.csv", content),
    ]


# ---------------------------------------------------------------------------
# Driving the ASGI app with a body that arrives chunk by chunk
# ---------------------------------------------------------------------------


class Exchange:
    """One request through the ASGI app: what it sent back, and how many chunks it read."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.chunks_read = 0

    @property
    def status(self) -> int:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.sent
        status: int = starts[0]["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}

    @property
    def body(self) -> dict[str, Any]:
        data = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        parsed: dict[str, Any] = json.loads(data)
        return parsed


def drive(
    app: ASGIApp,
    *,
    path: str,
    headers: Headers,
    chunks: Iterator[bytes],
    method: str = "POST",
) -> Exchange:
    """Send a request whose body is produced one chunk at a time, only when the app asks."""
    exchange = Exchange()
    pending = next(chunks, None)

    async def receive() -> Message:
        nonlocal pending
        if pending is None:
            await anyio.sleep_forever()
        exchange.chunks_read += 1
        body, pending = pending, next(chunks, None)
        return {"type": "http.request", "body": body, "more_body": pending is not None}

    async def send(message: Message) -> None:
        exchange.sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def run() -> None:
        with anyio.fail_after(60):
            await app(scope, receive, send)

    run_async(run)
    return exchange


def flood(chunks: int = 128, chunk: bytes = b"1," * (CHUNK // 2)) -> Iterator[bytes]:
    """8 MiB of a JSON list (never closed), made only as it is read."""
    yield b"["
    for _ in range(chunks):
        yield chunk


# ---------------------------------------------------------------------------
# Authentication before the body
# ---------------------------------------------------------------------------


def test_an_unauthenticated_body_is_refused_unread(
    http: TestClient, probe: Probe, orgs: dict[str, Headers]
) -> None:
    """50 MB of JSON without a token: 401 before a single byte of it is asked for."""
    body = big_json(50 * 1024 * 1024)
    for headers in ({}, {"Authorization": "Bearer drb_not-a-token"}, {"Authorization": "Basic x"}):
        probe.reset()
        response = http.post(
            "/v1/requests",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        refused = problem(response, 401)
        assert refused["type"].endswith("/unauthenticated")
        assert response.headers["www-authenticate"] == 'Bearer realm="drb"'
        assert (probe.messages, probe.bytes) == (0, 0)
    # The same answer as the route's own dependency gives to a request with no body.
    bodiless = http.get("/v1/requests")
    assert (
        bodiless.json()["detail"]
        == problem(
            http.post("/v1/requests", content=body, headers={"Content-Type": "application/json"}),
            401,
        )["detail"]
    )


def test_an_unauthenticated_stream_is_refused_unread(runtime: Runtime) -> None:
    """8 MiB of chunked body: 401, and not one chunk is read."""
    for path in ("/v1/requests", "/v1/submissions", "/v1/spc", "/v1/no-such-route"):
        exchange = drive(
            create_app(runtime),
            path=path,
            headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
            chunks=flood(),
        )
        assert exchange.status == 401, path
        assert exchange.headers["www-authenticate"] == 'Bearer realm="drb"'
        assert exchange.chunks_read == 0


def test_an_unauthenticated_upload_is_refused_unread(http: TestClient, probe: Probe) -> None:
    content = multipart(return_parts(b"x" * UPLOAD_LIMIT))
    problem(http.post("/v1/submissions", content=content, headers=MULTIPART), 401)
    assert probe.messages == 0


def test_the_token_is_looked_up_once_per_request(
    http: TestClient, orgs: dict[str, Headers], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middleware's principal is the one the routes use: no second lookup."""
    lookups: list[str] = []
    real = auth.authenticate

    def counted(**kwargs: Any) -> auth.Principal | None:
        lookups.append(kwargs["token"])
        return real(**kwargs)

    monkeypatch.setattr(auth, "authenticate", counted)
    response = http.post(
        "/v1/requests", params={"dry_run": "true"}, json=request_body(), headers=orgs["CQC"]
    )
    assert response.status_code == 200, response.text
    assert len(lookups) == 1
    lookups.clear()
    assert http.get("/v1/requests", headers=orgs["CQC"]).status_code == 200
    assert len(lookups) == 1


def test_a_known_token_of_the_wrong_role_is_still_403(
    http: TestClient, orgs: dict[str, Headers]
) -> None:
    refused = problem(http.post("/v1/requests", json=request_body(), headers=orgs["RJ1"]), 403)
    assert "oversight_body" in refused["detail"]


# ---------------------------------------------------------------------------
# Body limits
# ---------------------------------------------------------------------------


def test_a_declared_json_body_over_the_limit_is_413_unread(
    http: TestClient, probe: Probe, orgs: dict[str, Headers]
) -> None:
    response = http.post(
        "/v1/requests",
        content=big_json(JSON_LIMIT + 10),
        headers={**orgs["CQC"], "Content-Type": "application/json"},
    )
    refused = problem(response, 413)
    assert "DRB_MAX_JSON_BYTES" in refused["detail"]
    assert f"{JSON_LIMIT:,}" in refused["detail"]
    assert probe.messages == 0


def test_a_json_body_at_the_limit_is_read(http: TestClient, orgs: dict[str, Headers]) -> None:
    """Just under the limit is parsed as usual (here: 422, it is not a request)."""
    body = big_json(JSON_LIMIT - 16)
    assert len(body) <= JSON_LIMIT
    response = http.post(
        "/v1/requests",
        content=body,
        headers={**orgs["CQC"], "Content-Type": "application/json"},
    )
    problem(response, 422)


def test_a_chunked_json_body_over_the_limit_is_413(
    http: TestClient, orgs: dict[str, Headers]
) -> None:
    response = http.post(
        "/v1/requests",
        content=chunks_of(big_json(JSON_LIMIT + CHUNK)),
        headers={**orgs["CQC"], "Content-Type": "application/json"},
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    problem(response, 413)
    # A chunked body within the limit is read as usual.
    fine = http.post(
        "/v1/requests",
        params={"dry_run": "true"},
        content=chunks_of(json.dumps(request_body()).encode(), 16),
        headers={**orgs["CQC"], "Content-Type": "application/json"},
    )
    assert fine.status_code == 200, fine.text


def test_a_stream_is_cut_off_as_soon_as_it_passes_the_limit(
    runtime: Runtime, orgs: dict[str, Headers]
) -> None:
    """8 MiB of chunked body: read up to the limit, then one 413 and nothing more."""
    exchange = drive(
        create_app(runtime),
        path="/v1/requests",
        headers={
            **orgs["CQC"],
            "Transfer-Encoding": "chunked",
            "Content-Type": "application/json",
        },
        chunks=flood(),
    )
    assert exchange.status == 413
    assert exchange.headers["content-type"] == "application/problem+json"
    assert "DRB_MAX_JSON_BYTES" in exchange.body["detail"]
    # "[" and 16 chunks of 64 KiB are one byte over 1 MiB: the 16th is the last one read.
    assert exchange.chunks_read == 1 + JSON_LIMIT // CHUNK


def test_an_upload_stream_is_cut_off_past_its_limit(
    runtime: Runtime, orgs: dict[str, Headers]
) -> None:
    """A file part far over the limit, chunked: cut off, refused, nothing left in staging."""

    def body() -> Iterator[bytes]:
        yield multipart(return_parts())[: -len(b"\r\n--BOUNDARY--\r\n")]
        for _ in range((UPLOAD_LIMIT + MULTIPART_OVERHEAD) // CHUNK + 64):
            yield b"x" * CHUNK

    exchange = drive(
        create_app(runtime),
        path="/v1/submissions",
        headers={**orgs["RJ1"], **MULTIPART, "Transfer-Encoding": "chunked"},
        chunks=body(),
    )
    assert exchange.status == 413
    assert exchange.chunks_read <= 2 + (UPLOAD_LIMIT + MULTIPART_OVERHEAD) // CHUNK + 1
    assert list(store.staging_dir(runtime.settings).iterdir()) == []


def test_a_declared_upload_over_its_limit_is_413_unread(
    http: TestClient, probe: Probe, orgs: dict[str, Headers]
) -> None:
    content = multipart(return_parts(b"x" * (UPLOAD_LIMIT + MULTIPART_OVERHEAD)))
    refused = problem(
        http.post("/v1/submissions", content=content, headers={**orgs["RJ1"], **MULTIPART}), 413
    )
    assert "DRB_MAX_UPLOAD_BYTES" in refused["detail"]
    assert probe.messages == 0


def test_uploads_stream_past_the_json_limit(
    http: TestClient, probe: Probe, runtime: Runtime, orgs: dict[str, Headers]
) -> None:
    """A file within DRB_MAX_UPLOAD_BYTES is taken, sent at once or chunked."""
    content = b"period,org_code\n" + b"2025-01,RJ1\n" * (UPLOAD_LIMIT // 12 - 2)
    assert JSON_LIMIT // 8 < len(content) <= UPLOAD_LIMIT
    sent = http.post(
        "/v1/submissions",
        headers=orgs["RJ1"],
        files={"file": ("r.csv", content, "text/csv")},
        data={"dataset": "ae_monthly", "period": "2025-01"},
    )
    assert sent.status_code == 202, sent.text
    chunked = http.post(
        "/v1/submissions",
        headers={**orgs["RJ1"], **MULTIPART},
        content=chunks_of(multipart(return_parts(content + b"2025-02,RJ1\n"))),
    )
    assert chunked.status_code == 202, chunked.text
    # The file over DRB_MAX_UPLOAD_BYTES but within the multipart allowance: the form says so.
    over = http.post(
        "/v1/submissions",
        headers=orgs["RJ1"],
        files={"file": ("r.csv", content * 2, "text/csv")},
        data={"dataset": "ae_monthly", "period": "2025-01"},
    )
    assert "DRB_MAX_UPLOAD_BYTES" in problem(over, 413)["detail"]
    assert list(store.staging_dir(runtime.settings).iterdir()) == []


def test_the_web_forms_are_limited_too(http: TestClient, probe: Probe) -> None:
    """No token is needed to sign in, but its form is held to DRB_MAX_JSON_BYTES."""
    response = http.post(
        "/sign-in",
        content=b"token=" + b"x" * JSON_LIMIT,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem(response, 413)
    assert probe.messages == 0
    streamed = http.post(
        "/sign-in",
        content=chunks_of(b"token=" + b"x" * JSON_LIMIT),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem(streamed, 413)


def test_a_content_length_that_is_not_a_number_is_400(runtime: Runtime) -> None:
    for length in ("12a", "\u00b2\u00b3", "-1", "1" * 30):
        exchange = drive(
            create_app(runtime),
            path="/v1/requests",
            headers={"Content-Length": length, "Content-Type": "application/json"},
            chunks=iter([b"{}"]),
        )
        assert exchange.status == 400, length
        assert exchange.chunks_read == 0


# ---------------------------------------------------------------------------
# Multipart: the shape of the form
# ---------------------------------------------------------------------------


def test_a_form_of_too_many_parts_is_413(
    http: TestClient, runtime: Runtime, orgs: dict[str, Headers]
) -> None:
    parts = return_parts() + [(f"extra{n}", "f.csv", b"x") for n in range(uploads.MAX_PARTS)]
    refused = problem(
        http.post(
            "/v1/submissions", content=multipart(parts), headers={**orgs["RJ1"], **MULTIPART}
        ),
        413,
    )
    assert f"more than {uploads.MAX_PARTS} parts" in refused["detail"]
    assert list(store.staging_dir(runtime.settings).iterdir()) == []


def test_text_fields_are_limited_in_total_and_each(
    http: TestClient, orgs: dict[str, Headers]
) -> None:
    many = [(f"note{n}", None, b"x" * 9_000) for n in range(8)]
    refused = problem(
        http.post(
            "/v1/submissions",
            content=multipart(many + return_parts()),
            headers={**orgs["RJ1"], **MULTIPART},
        ),
        413,
    )
    assert "text fields" in refused["detail"]
    one = [("dataset", None, b"x" * (uploads.MAX_FIELD_BYTES + 1))]
    long_field = problem(
        http.post("/v1/submissions", content=multipart(one), headers={**orgs["RJ1"], **MULTIPART}),
        422,
    )
    assert "'dataset'" in long_field["detail"]


def test_part_headers_are_limited(http: TestClient, orgs: dict[str, Headers]) -> None:
    long_line = b"X-Note: " + b"n" * uploads.MAX_PART_HEADER_BYTES + b"\r\n"
    refused = problem(
        http.post(
            "/v1/submissions",
            content=multipart(return_parts(), extra=long_line),
            headers={**orgs["RJ1"], **MULTIPART},
        ),
        413,
    )
    assert "header line longer" in refused["detail"]
    many = b"".join(b"X-Note-%d: n\r\n" % n for n in range(uploads.MAX_PART_HEADERS))
    refused = problem(
        http.post(
            "/v1/submissions",
            content=multipart(return_parts(), extra=many),
            headers={**orgs["RJ1"], **MULTIPART},
        ),
        413,
    )
    assert f"more than {uploads.MAX_PART_HEADERS} header lines" in refused["detail"]


# ---------------------------------------------------------------------------
# Lists and text in request models
# ---------------------------------------------------------------------------


def test_requests_cap_their_lists(http: TestClient, orgs: dict[str, Headers]) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"items": [f"item_{n}" for n in range(501)]}, "items"),
        ({"items": ["x" * 65]}, "items.0"),
        ({"organisations": [f"R{n:05d}" for n in range(50_001)]}, "organisations"),
        ({"organisations": ["R" * 17]}, "organisations"),
        ({"organisations": {"region": "Y" * 17}}, "organisations"),
        ({"title": "t" * 201}, "title"),
        ({"purpose": "p" * 5001}, "purpose"),
        ({"legal_basis": "l" * 2001}, "legal_basis"),
        ({"period_start": "2025-01" + " " * 20}, "period_start"),
    ]
    for overrides, field in cases:
        body = json.dumps(request_body(**overrides)).encode()
        assert len(body) < JSON_LIMIT
        refused = problem(
            http.post(
                "/v1/requests",
                params={"dry_run": "true"},
                content=body,
                headers={**orgs["CQC"], "Content-Type": "application/json"},
            ),
            422,
        )
        fields = [error["field"] for error in refused["errors"]]
        assert any(f.startswith(field) for f in fields), (field, fields)


def test_thirty_thousand_organisations_are_still_a_request(
    http: TestClient, orgs: dict[str, Headers]
) -> None:
    """The cap leaves room for every organisation in the national lists (about 30,000)."""
    codes = ["RJ1"] + [f"Z{n:05d}" for n in range(30_000)]
    refused = problem(
        http.post(
            "/v1/requests",
            params={"dry_run": "true"},
            json=request_body(organisations=codes),
            headers=orgs["CQC"],
        ),
        422,
    )
    # Refused by the catalogue (the codes are unknown), not by the model's cap.
    assert "Z00000" in json.dumps(refused["errors"])


def test_spc_rebase_is_capped(http: TestClient, orgs: dict[str, Headers]) -> None:
    points = [{"period": f"{2000 + n // 12}-{n % 12 + 1:02d}", "value": n} for n in range(24)]
    for rebase, field in ((["2000-06"] * 5001, "rebase"), (["2" * 17], "rebase.0")):
        refused = problem(
            http.post("/v1/spc", json={"points": points, "rebase": rebase}, headers=orgs["CQC"]),
            422,
        )
        assert field in [error["field"] for error in refused["errors"]]


def test_organisation_fields_are_capped(
    http: TestClient, admin: Headers, orgs: dict[str, Headers]
) -> None:
    new = {"code": "RXX", "name": "n", "kind": "trust", "region": "Y" * 17}
    refused = problem(http.post("/v1/organisations", json=new, headers=admin), 422)
    assert "region" in [error["field"] for error in refused["errors"]]
    for field, size in (("uri", 1025), ("mailbox", 65), ("workflow_id", 65)):
        delivery = {"channel": "files", field: "x" * size}
        refused = problem(
            http.put("/v1/organisations/CQC/delivery", json=delivery, headers=admin), 422
        )
        assert field in [error["field"] for error in refused["errors"]]
