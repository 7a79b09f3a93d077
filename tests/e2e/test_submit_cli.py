"""`drb submit` against a real `drb serve`: progress, validation, and the errors table."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.processes import drb_env, run_drb, serving, wait_until
from tests.schema_samples import ae_monthly_sample

ADMIN = "drb_e2e-admin-token-0123456789abcdef"


@contextmanager
def _served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A real `drb serve` with the trust RJ1: (its address, RJ1's token, its log)."""
    env = drb_env(data_dir=str(tmp_path / "var"), admin_token=ADMIN)
    assert run_drb("migrate", env=env).returncode == 0
    log = tmp_path / "serve.log"
    with serving(env, log) as (base, server):
        admin = {"Authorization": f"Bearer {ADMIN}"}
        httpx.post(
            f"{base}/v1/organisations",
            headers=admin,
            json={"code": "RJ1", "name": "RJ1", "kind": "trust", "region": "Y56"},
        )
        token = httpx.post(f"{base}/v1/organisations/RJ1/tokens", headers=admin).json()["token"]
        yield base, token, log
    assert server.returncode in (0, -signal.SIGTERM)


def test_submit_accepted_then_rejected(tmp_path: Path) -> None:
    with _served(tmp_path) as (base, token, _log):
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


def test_submit_shows_a_warning_for_a_value_far_outside_the_history(tmp_path: Path) -> None:
    with _served(tmp_path) as (base, token, log):
        trust = {"Authorization": f"Bearer {token}"}
        for n in range(12):  # a year of ordinary returns
            month = f"2024-{n + 1:02d}"
            frame = ae_monthly_sample(period=month)
            sent = httpx.post(
                f"{base}/v1/submissions",
                headers=trust,
                files={"file": ("ae.csv", frame.write_csv().encode(), "text/csv")},
                data={"dataset": "ae_monthly", "period": month},
            )
            assert sent.status_code == 202, sent.text
            wait_until(
                lambda location=sent.headers["Location"]: (
                    httpx.get(f"{base}{location}", headers=trust).json()["status"] == "accepted"
                ),
                timeout=30,
                what=f"{month} accepted",
                log=log,
            )
        typo = tmp_path / "typo.csv"
        ae_monthly_sample(period="2025-01").write_csv(typo)
        typo.write_text(typo.read_text().replace(",9120,", ",91200,"))  # an extra zero
        shown = run_drb(
            "submit",
            str(typo),
            "--dataset",
            "ae_monthly",
            "--period",
            "2025-01",
            env=drb_env(url=base, token=token),
        )
        assert shown.returncode == 0, shown.stdout + shown.stderr  # accepted: a warning only
        assert "accepted: 3 rows" in shown.stdout
        assert "warning" in shown.stdout
        assert "above the upper process limit" in " ".join(shown.stdout.split())
