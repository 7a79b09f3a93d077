"""Shared fixtures: settings in a temporary data dir, a migrated runtime, an HTTP client."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.broker.app import create_app
from services.catalogue import jobs, logs
from services.catalogue.models import Job
from services.catalogue.runtime import Runtime, boot
from services.catalogue.settings import Settings
from services.catalogue.states import WAITING
from services.validator import handlers, worker
from tests.api_calls import Headers, bearer, register_organisation

pytest_plugins = ["tests.service_urls", "tests.databases"]

ADMIN_TOKEN = "drb_test-admin-token-" + "x" * 20


# Tests run in parallel (pytest-xdist, `--dist loadgroup`: the Makefile's pytest target), a module
# to a worker, so that a module's fixtures (its broker, its served `drb`) are built once. Modules
# that share something outside the run go to one worker, one after another: the MESH tests share
# the sandbox's mailboxes, and the fault tests kill and restart processes and time recoveries,
# which they should do without another fault test's load beside them. Each worker has its own
# databases (tests/databases.py) and its own Redis database (tests/service_urls.py).
SHARED_GROUPS = {"mesh_url": "mesh"}
GROUPED_FOLDERS = {"faults": "faults"}


def xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """Each test module's group (one worker, in order): see :data:`SHARED_GROUPS`."""
    groups: dict[str, str] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        shared = GROUPED_FOLDERS.get(item.path.parent.name) or next(
            (group for fixture, group in SHARED_GROUPS.items() if fixture in item.fixturenames),
            None,
        )
        if shared is not None or module not in groups:
            groups[module] = shared or module
    return groups


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its module's xdist group (a no-op without ``--dist loadgroup``)."""
    groups = xdist_groups(items)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid.split("::", 1)[0]]))


@pytest.fixture(autouse=True)
def _no_json_log_handler_left() -> Iterator[None]:
    """A test that runs `drb` in-process (logs.configure) takes its JSON handler away after it.

    That handler writes to the test's captured stderr, closed once the test ends: left on the
    root logger, a later test's log line (a worker thread's, say) fails with "I/O operation on
    closed file".
    """
    level = logging.getLogger().level
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, logs.JsonFormatter):
            root.removeHandler(handler)
    root.setLevel(level)


@contextmanager
def module_broker(request: pytest.FixtureRequest, root: Path) -> Iterator[TestClient]:
    """A whole broker (a copy of the migrated database, two worker threads, the app) for a
    module's tests, on SQLite or PostgreSQL as ``request.param`` says: its client, empty but for
    the steward."""
    # tests.databases is a plugin this conftest names: imported here, after pytest rewrote it.
    from tests.databases import migrated_copy

    with ExitStack() as stack:
        url = stack.enter_context(migrated_copy(request, request.param, root))
        settings = settings_for(root, url)
        runtime = boot(settings)
        stack.callback(runtime.close)
        handle = worker.start(runtime, threads=2)
        stack.callback(handle.stop)
        yield stack.enter_context(TestClient(create_app(runtime), raise_server_exceptions=False))


def register(client: TestClient, code: str, kind: str, region: str | None = None) -> Headers:
    """Register an organisation as the bootstrap steward and issue its first token, its admin's
    (which issues its other tokens: ``tests.api_calls.issue_token``): that token's headers."""
    return register_organisation(client, bearer(ADMIN_TOKEN), code, kind, region)


def organisations(
    client: TestClient, specs: list[tuple[str, str, str | None]]
) -> dict[str, Headers]:
    """Register each (code, kind, region) as the steward, each with its admin token: their
    headers."""
    return {code: register(client, code, kind, region) for code, kind, region in specs}


def settings_for(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for one test: its own data dir and database, embedded queue, the admin token
    and a quick sweep; ``overrides`` change any of them (a test module's own fixture)."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": database_url,
        "redis_url": None,
        "admin_token": ADMIN_TOKEN,
        "sweep_interval_seconds": 0.2,
        # The worker's daily reminder pass would write notifications (and audit events) at any
        # moment of any test with a worker; tests/api/test_reminders.py turns it on to test it.
        "reminders": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, catalogue_url: str) -> Settings:
    """Settings for one test: its own data dir and migrated database, embedded queue."""
    return settings_for(tmp_path, catalogue_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A booted runtime over the settings' database (migrated: ``catalogue_url``)."""
    booted = boot(settings)
    try:
        yield booted
    finally:
        booted.close()


@pytest.fixture
def running_worker(runtime: Runtime) -> Iterator[worker.WorkerHandle]:
    """The in-process validator (embedded mode), started and stopped around the test."""
    handle = worker.start(runtime, threads=2)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """An HTTP client for the app; server errors become responses, as for a real client."""
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def run_pending(runtime: Runtime, kind: str) -> list[str]:
    """Run every pending or sent job of a kind by hand (no worker): each one's outcome, or the
    name of the exception it raised (a delivery that may work later raises, for the queue)."""
    with runtime.factory() as session:
        ids = session.scalars(select(Job.id).where(Job.kind == kind, Job.status.in_(WAITING)))
        waiting = list(ids)
    outcomes = []
    for job_id in waiting:
        try:
            outcomes.append(
                jobs.run(
                    factory=runtime.factory,
                    job_id=job_id,
                    handlers=handlers.HANDLERS,
                    stale_after=timedelta(seconds=0),
                    settings=runtime.settings,
                )
            )
        except Exception as error:
            outcomes.append(type(error).__name__)
    return outcomes


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers of the bootstrap steward (DRB_ADMIN_TOKEN)."""
    return bearer(ADMIN_TOKEN)


@pytest.fixture
def make_org(client: TestClient, admin: dict[str, str]) -> Callable[..., dict[str, str]]:
    """Register an organisation and return the headers of its first token (its admin's)."""

    def _make(code: str, kind: str, region: str | None = None) -> dict[str, str]:
        return register_organisation(client, admin, code, kind, region)

    return _make


T = TypeVar("T")


def run_async(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run(func, *args)`` on a thread of its own; its result.

    The browser tests' session-scoped Playwright keeps an event loop running on the main thread
    for the whole session, and anyio (rightly) refuses to start a second one there.
    """
    import anyio

    failure: list[BaseException] = []
    result: list[T] = []

    def target() -> None:
        try:
            result.append(anyio.run(func, *args))
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target, name="run-async")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
