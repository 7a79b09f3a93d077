"""`GET /v1/health` answers 503, naming what is down, when the database or the queue is."""

from __future__ import annotations

from dataclasses import replace

from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from services.broker.app import create_app
from services.catalogue.runtime import Runtime


def health(runtime: Runtime) -> tuple[int, dict[str, str]]:
    with TestClient(create_app(runtime)) as client:
        response = client.get("/v1/health")
    return response.status_code, response.json()


def test_healthy(runtime: Runtime) -> None:
    assert health(runtime) == (
        200,
        {"status": "ok", "database": "ok", "queue": "ok", "mode": "embedded"},
    )


def test_database_down_is_503(runtime: Runtime) -> None:
    dead = create_engine(
        "postgresql+psycopg://drb@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
    )
    status, body = health(replace(runtime, engine=dead))
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["database"] == "unavailable"
    assert body["queue"] == "ok"


def test_queue_down_is_503(runtime: Runtime) -> None:
    dead = RedisBroker(url="redis://127.0.0.1:9/0", socket_connect_timeout=2)
    status, body = health(replace(runtime, broker=dead))
    assert status == 503
    assert body["queue"] == "unavailable"
    assert body["database"] == "ok"
