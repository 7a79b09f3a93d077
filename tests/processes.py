"""Running `drb` as a real process in tests, and waiting for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

DRB = str(Path(sys.executable).with_name("drb"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def drb_env(**settings: str) -> dict[str, str]:
    """The test process's environment without DRB_ settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRB_")}
    env.update({f"DRB_{k.upper()}": v for k, v in settings.items()})
    return env


def run_drb(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRB, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_drb(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen([DRB, *args], env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, then wait; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``check`` until true; fail with the process log on timeout or if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.1)
    output = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"gave up waiting for {what}\n{output}")


def healthy(base: str) -> bool:
    """Whether the `drb serve` at ``base`` answers its health check."""
    try:
        return httpx.get(f"{base}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`drb serve` on a free port, once it answers: its address and process. Stopped (SIGTERM)
    afterwards; its exit code is then the process's ``returncode``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_drb("serve", "--port", str(port), env=env, log=log)
    try:
        wait_until(lambda: healthy(base), timeout=60, what="drb serve", log=log, process=server)
        yield base, server
    finally:
        stop(server)
