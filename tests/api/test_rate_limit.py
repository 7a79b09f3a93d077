"""Rate limits: a token over its limit gets 429 with Retry-After; uploads count apart; in the
distributed mode every API process shares the buckets through Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis import Redis

from services.broker import ratelimit
from services.broker.app import create_app
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
from tests.api_calls import register_organisation
from tests.conftest import ADMIN_TOKEN, bearer, run_async, settings_for
from tests.databases import migrate_database
from tests.schema_samples import ae_monthly_sample

Headers = dict[str, str]
READS = 10
UPLOADS = 3


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path, catalogue_url: str) -> Settings:
    """Small limits, so that a test reaches them in a few requests."""
    return settings_for(
        tmp_path, catalogue_url, rate_limit_per_minute=READS, upload_rate_limit_per_minute=UPLOADS
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000.0)


@pytest.fixture
def app(runtime: Runtime, clock: Clock) -> FastAPI:
    app = create_app(runtime)
    limits: ratelimit.RateLimits = app.state.rate_limits
    assert isinstance(limits.buckets, ratelimit.MemoryBuckets)
    limits.buckets.clock = clock
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def issue(client: TestClient, code: str, kind: str) -> Headers:
    """A new organisation and a token of it (two of the admin token's requests)."""
    return register_organisation(client, bearer(ADMIN_TOKEN), code, kind)


def assert_limited(response: Any, *, what: str = "requests") -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/rate-limited")
    assert body["status"] == 429
    assert f"Too many {what}" in body["detail"]
    seconds = int(response.headers["Retry-After"])
    assert seconds >= 1
    assert f"{seconds} second" in body["detail"]
    return seconds


def test_a_token_over_its_read_limit_gets_429_and_another_token_does_not(
    client: TestClient,
) -> None:
    first = issue(client, "RJ1", "trust")
    second = issue(client, "R0A", "trust")
    for _ in range(READS):
        assert client.get("/v1/datasets", headers=first).status_code == 200
    seconds = assert_limited(client.get("/v1/datasets", headers=first))
    assert seconds == 6  # one token back every 60/READS seconds
    assert client.get("/v1/datasets", headers=second).status_code == 200
    # The health check and the pages' assets are never limited.
    for _ in range(READS + 2):
        assert client.get("/v1/health").status_code == 200


def test_retry_after_is_honoured(client: TestClient, clock: Clock) -> None:
    trust = issue(client, "RJ1", "trust")
    for _ in range(READS):
        assert client.get("/v1/datasets", headers=trust).status_code == 200
    seconds = assert_limited(client.get("/v1/datasets", headers=trust))
    clock.now += seconds - 1
    assert_limited(client.get("/v1/datasets", headers=trust))
    clock.now += 1
    assert client.get("/v1/datasets", headers=trust).status_code == 200
    assert_limited(client.get("/v1/datasets", headers=trust))
    clock.now += 60  # a full minute refills the whole bucket, and no more
    for _ in range(READS):
        assert client.get("/v1/datasets", headers=trust).status_code == 200
    assert_limited(client.get("/v1/datasets", headers=trust))


def upload(client: TestClient, headers: Headers, period: str) -> Any:
    content = ae_monthly_sample(org_code="RJ1", period=period).write_csv().encode()
    return client.post(
        "/v1/submissions",
        headers=headers,
        files={"file": ("return.csv", content, "text/csv")},
        data={"dataset": "ae_monthly", "period": period},
    )


def test_uploads_have_their_own_limit(client: TestClient) -> None:
    trust = issue(client, "RJ1", "trust")
    for month in range(1, UPLOADS + 1):
        response = upload(client, trust, f"2025-0{month}")
        assert response.status_code == 202, response.text
    assert_limited(upload(client, trust, "2025-09"), what="uploads")
    # Reads are counted apart: the same token still reads.
    assert client.get("/v1/datasets", headers=trust).status_code == 200
    # And reads do not use up uploads: a token that has read its fill may still upload.
    other = issue(client, "R0A", "trust")
    for _ in range(READS):
        client.get("/v1/datasets", headers=other)
    assert_limited(client.get("/v1/datasets", headers=other))
    assert upload(client, other, "2025-01").status_code != 429


def test_a_refused_upload_is_not_read(app: FastAPI, client: TestClient) -> None:
    trust = issue(client, "RJ1", "trust")
    for month in range(1, UPLOADS + 1):
        assert upload(client, trust, f"2025-0{month}").status_code == 202
    read: list[Any] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        read.append(True)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/submissions",
        "raw_path": b"/v1/submissions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", trust["Authorization"].encode()),
            (b"content-type", b"multipart/form-data; boundary=x"),
            (b"content-length", str(10**9).encode()),
        ],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    run_async(app, scope, receive, send)
    assert sent[0]["status"] == 429
    assert (b"retry-after", b"20") in sent[0]["headers"]  # 60 s / 3 uploads a minute
    assert read == []


def test_guessing_tokens_is_limited_by_address(client: TestClient) -> None:
    """Each guess is a new token, so 401s count against the caller's address instead."""
    for _ in range(READS):
        guess = bearer("drb_" + secrets.token_urlsafe(32))
        assert client.get("/v1/datasets", headers=guess).status_code == 401
    guess = bearer("drb_" + secrets.token_urlsafe(32))
    assert_limited(client.get("/v1/datasets", headers=guess))
    assert_limited(client.get("/v1/datasets"))


def test_zero_turns_the_limits_off(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(
        update={"rate_limit_per_minute": 0, "upload_rate_limit_per_minute": 0}
    )
    runtime.settings = settings
    with TestClient(create_app(runtime)) as client:
        trust = issue(client, "RJ1", "trust")
        for _ in range(READS * 3):
            assert client.get("/v1/datasets", headers=trust).status_code == 200
        for _ in range(READS * 2):
            assert client.get("/v1/datasets", headers=bearer("drb_guess")).status_code == 401


def test_idle_buckets_are_dropped_from_memory() -> None:
    clock = Clock(0.0)
    buckets = ratelimit.MemoryBuckets(clock=clock, max_keys=100)
    for n in range(50):
        assert buckets.take([ratelimit.Charge(f"k{n}", 60)]) == 0.0
    assert len(buckets) == 50
    clock.now += 1.5  # every bucket has its one token back: they are all as good as new
    assert buckets.take([ratelimit.Charge("fresh", 60)]) == 0.0
    assert len(buckets) == 1
    for n in range(250):  # never more than max_keys, however many callers
        buckets.take([ratelimit.Charge(f"burst{n}", 60)])
    assert len(buckets) <= 100


# The distributed mode: two API processes (two apps here) share the buckets through Redis.


@pytest.fixture
def redis_runtime(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    client = Redis.from_url(redis_url)
    for key in client.scan_iter(match=ratelimit.REDIS_PREFIX + "*"):
        client.delete(key)
    client.close()
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'broker.sqlite3'}",
        redis_url=redis_url,
        admin_token=ADMIN_TOKEN,
        rate_limit_per_minute=60,
        upload_rate_limit_per_minute=UPLOADS,
    )
    migrate_database(settings.sqlalchemy_url)
    booted = boot(settings)
    try:
        yield booted
    finally:
        booted.close()


def shared_apps(runtime: Runtime, clock: Callable[[], float] | None) -> list[FastAPI]:
    apps = [create_app(runtime), create_app(runtime)]
    for app in apps:
        limits: ratelimit.RateLimits = app.state.rate_limits
        assert isinstance(limits.buckets, ratelimit.RedisBuckets)
        if clock is not None:
            limits.buckets.clock = clock
    return apps


@pytest.mark.integration
def test_two_api_processes_share_the_limit_through_redis(redis_runtime: Runtime) -> None:
    clock = Clock(time.time())
    first_app, second_app = shared_apps(redis_runtime, clock)
    with TestClient(first_app) as first, TestClient(second_app) as second:
        trust = issue(first, "RJ1", "trust")
        other = issue(second, "R0A", "trust")
        for n in range(60):
            assert (first if n % 2 else second).get("/v1/datasets", headers=trust).is_success
        assert assert_limited(first.get("/v1/datasets", headers=trust)) == 1
        assert_limited(second.get("/v1/datasets", headers=trust))
        assert second.get("/v1/datasets", headers=other).status_code == 200
        for month in range(1, UPLOADS + 1):
            client = first if month % 2 else second
            assert upload(client, trust, f"2025-0{month}").status_code == 202
        assert_limited(upload(first, trust, "2025-09"), what="uploads")
        assert_limited(upload(second, trust, "2025-09"), what="uploads")
        clock.now += 1
        assert second.get("/v1/datasets", headers=trust).status_code == 200
        assert_limited(first.get("/v1/datasets", headers=trust))


@pytest.mark.integration
def test_retry_after_is_honoured_through_redis_in_real_time(redis_runtime: Runtime) -> None:
    first_app, second_app = shared_apps(redis_runtime, clock=None)
    with TestClient(first_app) as first, TestClient(second_app) as second:
        trust = issue(first, "RJ1", "trust")
        for n in range(200):
            response = (first if n % 2 else second).get("/v1/datasets", headers=trust)
            if response.status_code == 429:
                break
        seconds = assert_limited(response)
        assert seconds == 1
        time.sleep(seconds)
        assert first.get("/v1/datasets", headers=trust).status_code == 200
