"""Session fixtures giving the URLs of a real PostgreSQL, Redis and MESH, for integration tests.

Each URL comes from the first of these that works:
1. the environment: DRB_TEST_DATABASE_URL, DRB_TEST_REDIS_URL (`.ci/run` starts both natively);
2. testcontainers, when a Docker engine answers and can start the image (the pinned
   testcontainers 4.15 keeps its modules under testcontainers.community; the old paths warn);
3. neither: the test is skipped, or fails where require_services() is true, because in CI
   nothing that needs a real service may be skipped.
Either way the service is probed once, so that a wrong URL fails with a clear message.
MESH (mesh-sandbox) has no image to pull: `mesh_url` takes DRB_TEST_MESH_URL, else starts the
sandbox itself from its own venv (.venv-mesh) where that exists, else skips (or fails).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DATABASE_URL_VAR = "DRB_TEST_DATABASE_URL"
REDIS_URL_VAR = "DRB_TEST_REDIS_URL"
MESH_URL_VAR = "DRB_TEST_MESH_URL"
PROBE_TIMEOUT_S = 5
REPO = Path(__file__).resolve().parent.parent
MESH_SCRIPT = REPO / "infra" / "services" / "mesh-sandbox.sh"


def require_services() -> bool:
    """Whether a missing service must fail a test rather than skip it (in CI)."""
    flag = os.environ.get("DRB_REQUIRE_SERVICES", "").strip().lower()
    return flag not in ("", "0", "false", "no") or os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> NoReturn:
    if require_services():
        pytest.fail(f"{reason} (DRB_REQUIRE_SERVICES or CI is set, so this fails)", pytrace=False)
    pytest.skip(reason)


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _stop_quietly(container: Any) -> None:
    with contextlib.suppress(Exception):
        container.stop()


def _postgres_container(stack: contextlib.ExitStack[Any]) -> str:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer("postgres:15-alpine", driver="psycopg")
    stack.callback(_stop_quietly, container)  # before start: a half-started one is removed too
    container.start()
    return str(container.get_connection_url())


def _redis_container(stack: contextlib.ExitStack[Any]) -> str:
    from testcontainers.community.redis import RedisContainer

    container = RedisContainer("redis:7-alpine")
    stack.callback(_stop_quietly, container)
    container.start()
    return f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


def _probe_postgres(url: str) -> None:
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError("not a postgresql URL (expected postgresql+psycopg://user@host:port/db)")
    engine = create_engine(url, connect_args={"connect_timeout": PROBE_TIMEOUT_S})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _probe_redis(url: str) -> None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


def _service_url(
    *,
    service: str,
    env_var: str,
    start_container: Callable[[contextlib.ExitStack[Any]], str],
    probe: Callable[[str], None],
    stack: contextlib.ExitStack[Any],
) -> str:
    url = os.environ.get(env_var, "").strip()
    source = env_var
    if not url:
        source = "testcontainers"
        reason = (
            f"needs {service}: set {env_var} to its URL (`.ci/run` shows how to start one "
            "natively), or run a Docker engine that can start the image"
        )
        if not _docker_answers():
            _unavailable(f"{reason}; no Docker engine answered")
        try:
            url = start_container(stack)
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            _unavailable(f"{reason}; Docker could not start it: {type(exc).__name__}: {first_line}")
    try:
        probe(url)
    except Exception as exc:
        # A URL that was given but does not work is a mistake to fix, never a reason to skip.
        pytest.fail(
            f"{service} at {_redacted(url)} (from {source}) did not answer: "
            f"{type(exc).__name__}: {exc}",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg://...) of a PostgreSQL database the tests may empty."""
    with contextlib.ExitStack() as stack:
        yield _service_url(
            service="PostgreSQL",
            env_var=DATABASE_URL_VAR,
            start_container=_postgres_container,
            probe=_probe_postgres,
            stack=stack,
        )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL (redis://...) of a Redis database the tests may flush: one of its own per pytest-xdist
    worker (:func:`database_of_worker`), so parallel workers never share a queue or a flush."""
    with contextlib.ExitStack() as stack:
        url = _service_url(
            service="Redis",
            env_var=REDIS_URL_VAR,
            start_container=_redis_container,
            probe=_probe_redis,
            stack=stack,
        )
        yield database_of_worker(url, os.environ.get("PYTEST_XDIST_WORKER", ""))


REDIS_DATABASES = 16  # a Redis server's default number of databases


def database_of_worker(url: str, worker: str) -> str:
    """``url`` moved to the Redis database of pytest-xdist worker ``worker`` ("gw3": the given
    database plus 3, modulo 16); unchanged outside xdist (``worker`` empty)."""
    if not worker:
        return url
    parsed = urlsplit(url)
    given = int(parsed.path.strip("/") or 0)
    number = (given + int(worker.removeprefix("gw"))) % REDIS_DATABASES
    return urlunsplit(parsed._replace(path=f"/{number}"))


def _probe_mesh(url: str) -> None:
    response = httpx.get(f"{url}/messageexchange/_ping", timeout=PROBE_TIMEOUT_S)
    response.raise_for_status()
    if response.json().get("status") != "running":
        raise ValueError(f"not a MESH sandbox: _ping answered {response.text[:200]}")


def _mesh_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(MESH_SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="session")
def mesh_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (http://127.0.0.1:PORT) of a mesh-sandbox holding our mailboxes (infra/mesh/data).

    Started by infra/services/mesh-sandbox.sh (by `.ci/run`, or here for the session when
    DRB_TEST_MESH_URL is unset and .venv-mesh exists), it checks passwords: AUTH_MODE=full,
    SHARED_KEY drb-sandbox-key, every mailbox's password "password".
    """
    from tests.processes import free_port

    url = os.environ.get(MESH_URL_VAR, "").strip().rstrip("/")
    source = MESH_URL_VAR
    with contextlib.ExitStack() as stack:
        if not url:
            venv = Path(os.environ.get("MESH_VENV", REPO / ".venv-mesh"))
            if not (venv / "bin" / "python").exists():
                _unavailable(
                    f"needs mesh-sandbox: set {MESH_URL_VAR} to its URL (`.ci/run` shows how to "
                    "start one), or create its venv with `make .venv-mesh/bin/uvicorn` and the "
                    "tests start it themselves"
                )
            directory = str(tmp_path_factory.mktemp("mesh-sandbox"))
            port = free_port()
            stack.callback(_mesh_script, "stop", directory)  # a half-started one is stopped too
            started = _mesh_script("start", directory, str(port))
            if started.returncode != 0:
                pytest.fail(
                    f"mesh-sandbox did not start from {venv}: {started.stderr.strip()[-1000:]}",
                    pytrace=False,
                )
            url, source = f"http://127.0.0.1:{port}", str(MESH_SCRIPT.relative_to(REPO))
        try:
            _probe_mesh(url)
        except Exception as exc:
            pytest.fail(
                f"mesh-sandbox at {url} (from {source}) did not answer: "
                f"{type(exc).__name__}: {exc}",
                pytrace=False,
            )
        yield url
