"""`drb serve` as a real process: the embedded default and the distributed mode."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.processes import drb_env, run_drb, serving

ADMIN = "drb_e2e-admin-token-0123456789abcdef"


def serve_and_check(env: dict[str, str], tmp_path: Path, mode: str) -> None:
    migrated = run_drb("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    log = tmp_path / "serve.log"
    with serving(env, log) as (base, server):
        assert httpx.get(f"{base}/v1/health").json() == {
            "status": "ok",
            "database": "ok",
            "queue": "ok",
            "mode": mode,
        }
        assert httpx.get(f"{base}/docs").status_code == 200
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Data request broker"
        headers = {"Authorization": f"Bearer {ADMIN}"}
        datasets = httpx.get(f"{base}/v1/datasets", headers=headers)
        assert datasets.status_code == 200
        assert len(datasets.json()) == 4
        assert httpx.get(f"{base}/v1/datasets").status_code == 401
    # uvicorn shuts down gracefully, then re-raises SIGTERM as the conventional exit status.
    assert server.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()


def test_serve_embedded(tmp_path: Path) -> None:
    env = drb_env(data_dir=str(tmp_path / "var"), admin_token=ADMIN)
    serve_and_check(env, tmp_path, "embedded")


@pytest.mark.integration
def test_serve_distributed(fresh_postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    env = drb_env(
        data_dir=str(tmp_path / "var"),
        admin_token=ADMIN,
        database_url=fresh_postgres_url,
        redis_url=redis_url,
    )
    serve_and_check(env, tmp_path, "distributed")
