"""Fault tests' fixtures: dedicated services a test may break, and `drb` processes.

The PostgreSQL and Redis here are the test's own (infra/services/postgres.sh and redis.sh on free
ports), never the shared ones of the session: stopping, emptying or restarting them disturbs no
other test. Where the binaries are missing the test is skipped with the reason, or fails when
DRB_REQUIRE_SERVICES or CI is set (tests/service_urls.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.databases import migrate_database
from tests.processes import drb_env, free_port, healthy, start_drb, stop, wait_until
from tests.service_urls import _unavailable

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "infra" / "services"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
ADMIN = "drb_faults-admin-token-0123456789abcdef"


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVICES / name), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _service_dir(prefix: str) -> Path:
    """A directory the postgres user can enter (tmp_path's parents may be private to root)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    return directory


@dataclass
class DedicatedRedis:
    """A Redis of one test, without persistence: stopping it loses every message."""

    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        done = _script("redis.sh", "start", str(self.directory), str(self.port))
        assert done.returncode == 0, f"redis did not start: {done.stderr[-2000:]}"

    def stop(self) -> None:
        done = _script("redis.sh", "stop", str(self.directory))
        assert done.returncode == 0, f"redis did not stop: {done.stderr[-2000:]}"

    def restart_empty(self) -> None:
        """Stop, delete any dump, start again: the same address, no data, a new run id."""
        self.stop()
        for dump in (*self.directory.glob("*.rdb"), *self.directory.glob("appendonly*")):
            if dump.is_dir():
                shutil.rmtree(dump)
            else:
                dump.unlink()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def run_id(self) -> str:
        info = self.client().info("server")
        return str(info["run_id"])


@dataclass
class DedicatedPostgres:
    """A PostgreSQL server of one test; ``url`` is its database drb_test, migrated."""

    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/drb_test"

    def start(self) -> None:
        done = _script("postgres.sh", "start", str(self.directory), str(self.port))
        assert done.returncode == 0, f"postgres did not start: {done.stderr[-2000:]}"

    def stop(self) -> None:
        done = _script("postgres.sh", "stop", str(self.directory))
        assert done.returncode == 0, f"postgres did not stop: {done.stderr[-2000:]}"

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def dedicated_redis() -> Iterator[DedicatedRedis]:
    """A Redis of this test only (start/stop/restart_empty, url), stopped afterwards."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        _unavailable("needs redis-server and redis-cli (apt-get install redis-server)")
    server = DedicatedRedis(directory=_service_dir("drb-fault-redis-"), port=free_port())
    try:
        server.start()
        yield server
    finally:
        _script("redis.sh", "stop", str(server.directory))
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    """A PostgreSQL 15 of this test only (start/stop/restart, url of a migrated database)."""
    if not (PG_BIN / "initdb").exists():
        _unavailable(f"needs PostgreSQL 15 under {PG_BIN} (apt-get install postgresql-15)")
    server = DedicatedPostgres(directory=_service_dir("drb-fault-pg-"), port=free_port())
    try:
        server.start()
        migrate_database(server.url)
        yield server
    finally:
        _script("postgres.sh", "stop", str(server.directory))
        shutil.rmtree(server.directory, ignore_errors=True)


@dataclass
class Served:
    """A running `drb serve`: its process, base URL and log."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path


@dataclass
class DrbProcesses:
    """Starts `drb serve` / `drb worker` processes with DRB_ settings; all are ended afterwards.

    ``settings`` are common DRB_ settings (lower-case names without the prefix, as
    tests.processes.drb_env takes them); each start may add or override some.
    """

    directory: Path
    settings: dict[str, str] = field(default_factory=dict)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    count: int = 0

    def env(self, **overrides: str) -> dict[str, str]:
        return drb_env(**{"admin_token": ADMIN, **self.settings, **overrides})

    def _log(self, name: str) -> Path:
        self.count += 1
        return self.directory / f"{self.count:02d}-{name}.log"

    def serve(
        self, *, timeout: float = 60, slow_validation: float | None = None, **overrides: str
    ) -> Served:
        """`drb serve` on a free port, once /v1/health answers 200.

        ``slow_validation``: every validation first sleeps this long (tests/faults/slow_drb.py).
        """
        port = free_port()
        log = self._log("serve")
        process = self._start(
            "serve", "--port", str(port), env=self.env(**overrides), log=log, slow=slow_validation
        )
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: healthy(base),
            timeout=timeout,
            what="drb serve to answer",
            log=log,
            process=process,
        )
        return Served(process=process, base=base, log=log)

    def worker(
        self, *, threads: int = 2, slow_validation: float | None = None, **overrides: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """`drb worker` (started, not awaited: it consumes once it is up)."""
        log = self._log("worker")
        process = self._start(
            "worker",
            "--threads",
            str(threads),
            env=self.env(**overrides),
            log=log,
            slow=slow_validation,
        )
        return process, log

    def _start(
        self, *args: str, env: dict[str, str], log: Path, slow: float | None
    ) -> subprocess.Popen[bytes]:
        if slow is None:
            process = start_drb(*args, env=env, log=log)
        else:
            env = {**env, "DRB_TEST_SLOW_VALIDATION_SECONDS": str(slow)}
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    [sys.executable, "-m", "tests.faults.slow_drb", *args],
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                )
        self.started.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no shutdown, no clean-up, as a crash or an OOM kill."""
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def close(self) -> None:
        for process in reversed(self.started):
            with contextlib.suppress(Exception):
                stop(process, timeout=15)


@pytest.fixture
def drb_processes(tmp_path: Path) -> Iterator[DrbProcesses]:
    """`drb serve` / `drb worker` subprocesses of this test (logs in tmp_path), ended afterwards."""
    processes = DrbProcesses(directory=tmp_path)
    try:
        yield processes
    finally:
        processes.close()


def wait_for(check: object, *, timeout: float, what: str) -> float:
    """Poll ``check()`` until true; the seconds it took. Fails after ``timeout``."""
    assert callable(check)
    started = time.monotonic()
    wait_until(check, timeout=timeout, what=what)
    return time.monotonic() - started
