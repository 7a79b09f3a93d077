"""`drb submit` against a real `drb serve`: progress, validation, and the errors table."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.processes import drb_env, free_port, run_drb, start_drb, stop, wait_until
from tests.schema_samples import ae_monthly_sample

ADMIN = "drb_e2e-admin-token-0123456789abcdef"


def test_submit_accepted_then_rejected(tmp_path: Path) -> None:
    env = drb_env(data_dir=str(tmp_path / "var"), admin_token=ADMIN)
    assert run_drb("migrate", env=env).returncode == 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    server = start_drb("serve", "--port", str(port), env=env, log=log)
    try:
        wait_until(lambda: _healthy(base), timeout=60, what="drb serve", log=log, process=server)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        httpx.post(
            f"{base}/v1/organisations",
            headers=admin,
            json={"code": "RJ1", "name": "RJ1", "kind": "trust", "region": "Y56"},
        )
        token = httpx.post(f"{base}/v1/organisations/RJ1/tokens", headers=admin).json()["token"]
        client_env = drb_env(url=base, token=token)

        good = tmp_path / "ae.csv"
        ae_monthly_sample().write_csv(good)
        accepted = run_drb(
            "submit", str(good), "--dataset", "ae_monthly", "--period", "2025-01", env=client_env
        )
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        assert "accepted: 3 rows, revision 1" in accepted.stdout

        bad = tmp_path / "bad.csv"
        bad.write_text(good.read_text().replace(",9120,", ",-9120,"))
        rejected = run_drb(
            "submit", str(bad), "--dataset", "ae_monthly", "--period", "2025-01", env=client_env
        )
        assert rejected.returncode == 1, rejected.stdout + rejected.stderr
        assert "rejected" in rejected.stdout
        assert "attendances" in rejected.stdout
        assert "-9120" in rejected.stdout

        no_token = run_drb(
            "submit",
            str(good),
            "--dataset",
            "ae_monthly",
            "--period",
            "2025-01",
            env=drb_env(url=base),
        )
        assert no_token.returncode == 1
        assert "DRB_TOKEN" in no_token.stderr
    finally:
        code = stop(server)
    assert code in (0, -signal.SIGTERM)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
