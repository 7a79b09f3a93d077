"""The `drb` program: migrate, seed-demo, and clear one-line errors when a service is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from services.cli import app

runner = CliRunner()


def drb(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"DRB_DATA_DIR": str(tmp_path / "var"), "DRB_DATABASE_URL": "", "DRB_REDIS_URL": ""}


def test_migrate_is_idempotent(env: dict[str, str]) -> None:
    code, out, _ = drb("migrate", env=env)
    assert code == 0, out
    assert "published ae_monthly version 1" in out
    code, out, _ = drb("migrate", env=env)
    assert code == 0
    assert "published" not in out


def test_seed_demo_loads_the_trusts_and_keeps_its_tokens(env: dict[str, str]) -> None:
    assert drb("migrate", env=env)[0] == 0
    code, out, err = drb("seed-demo", env=env)
    assert code == 0, err
    assert "170 NHS trusts" in out
    tokens_file = Path(env["DRB_DATA_DIR"]) / "demo-tokens.json"
    tokens = json.loads(tokens_file.read_text())
    assert tokens_file.stat().st_mode & 0o077 == 0
    assert {"CQC", "NHSE", "UKHSA", "NAO", "RJ1"} <= set(tokens)
    assert tokens["NHSE"] in out

    engine = create_engine(f"sqlite:///{Path(env['DRB_DATA_DIR']) / 'broker.sqlite3'}")
    with engine.connect() as connection:
        kinds = dict(
            connection.execute(text("SELECT kind, count(*) FROM organisations GROUP BY kind")).all()
        )
        regions = connection.execute(
            text("SELECT count(*) FROM organisations WHERE kind = 'trust' AND region IS NULL")
        ).scalar_one()
    engine.dispose()
    assert kinds == {"trust": 170, "oversight_body": 3, "auditor": 1, "steward": 1}
    assert regions == 0

    # Three overlapping requests: the later ones reuse the earlier ones' asks.
    assert "NHSE: Winter pressures" in out
    assert "% scheduled" in out
    assert "% derivable" in out
    engine = create_engine(f"sqlite:///{Path(env['DRB_DATA_DIR']) / 'broker.sqlite3'}")
    with engine.connect() as connection:
        requests = connection.execute(text("SELECT count(*) FROM requests")).scalar_one()
        shared = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT ask_id FROM ask_links GROUP BY ask_id"
                " HAVING count(*) > 1) AS shared"
            )
        ).scalar_one()
        asks = connection.execute(text("SELECT count(*) FROM asks")).scalar_one()
    engine.dispose()
    assert requests == 3
    assert shared > 0
    # Real returns went through the validator: London trusts' A&E months are held, and the
    # first attempt in NHS England's published layout was rejected.
    assert "873 accepted, 1 rejected" in out
    assert "Extracts built: CQC 9 (9 complete)" in out
    outbox = Path(env["DRB_DATA_DIR"]) / "outbox"
    assert len(list((outbox / "CQC").glob("*.parquet"))) == 9
    assert list((outbox / "UKHSA").glob("*.parquet"))
    engine = create_engine(f"sqlite:///{Path(env['DRB_DATA_DIR']) / 'broker.sqlite3'}")
    with engine.connect() as connection:
        accepted_asks = connection.execute(
            text("SELECT count(*) FROM asks WHERE status = 'accepted'")
        ).scalar_one()
        checks = set(connection.execute(text('SELECT "check" FROM submission_errors')).scalars())
        (rejected_rows,) = connection.execute(
            text("SELECT rows FROM submissions WHERE status = 'rejected'")
        ).scalars()
    engine.dispose()
    assert accepted_asks == 279  # one ask per return, however many bodies asked
    assert checks == {"missing_column", "extra_column"}
    assert rejected_rows is not None  # refused for its header, its rows still counted
    assert rejected_rows > 0

    # A second run adds nothing and prints the same tokens.
    code, out, _ = drb("seed-demo", env=env)
    assert code == 0
    assert "0 organisations added" in out
    assert json.loads(tokens_file.read_text()) == tokens
    engine = create_engine(f"sqlite:///{Path(env['DRB_DATA_DIR']) / 'broker.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM requests")).scalar_one() == 3
        assert connection.execute(text("SELECT count(*) FROM asks")).scalar_one() == asks
    engine.dispose()


def test_demo_false_starts_empty(env: dict[str, str]) -> None:
    assert drb("migrate", env=env)[0] == 0
    code, out, _ = drb("seed-demo", env={**env, "DRB_DEMO": "false"})
    assert code == 0
    assert "starting empty" in out
    assert not (Path(env["DRB_DATA_DIR"]) / "demo-tokens.json").exists()


@pytest.mark.parametrize("command", ["serve", "migrate", "seed-demo"])
def test_unreachable_database_is_one_line_naming_the_setting(
    env: dict[str, str], command: str
) -> None:
    bad = {**env, "DRB_DATABASE_URL": "postgresql+psycopg://drb:secret@127.0.0.1:9/none"}
    code, _, err = drb(command, env=bad)
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith("drb: error:")
    assert "DRB_DATABASE_URL" in err
    assert "secret" not in err


def test_unmigrated_database_says_to_migrate(env: dict[str, str]) -> None:
    code, _, err = drb("serve", env=env)
    assert code == 1
    assert "drb migrate" in err


def test_worker_needs_redis(env: dict[str, str]) -> None:
    assert drb("migrate", env=env)[0] == 0
    code, _, err = drb("worker", env=env)
    assert code == 1
    assert "DRB_REDIS_URL" in err
    code, _, err = drb("worker", env={**env, "DRB_REDIS_URL": "redis://127.0.0.1:9/0"})
    assert code == 1
    assert err.count("\n") == 1
    assert "DRB_REDIS_URL" in err


def test_invalid_setting_is_named(env: dict[str, str]) -> None:
    code, _, err = drb("serve", env={**env, "DRB_PORT": "not-a-port"})
    assert code == 1
    assert "port" in err.lower()


def test_a_lease_shorter_than_two_heartbeats_is_refused(env: dict[str, str]) -> None:
    short = {**env, "DRB_JOB_LEASE_SECONDS": "8", "DRB_JOB_HEARTBEAT_SECONDS": "5"}
    code, _, err = drb("serve", env=short)
    assert code == 1
    assert "DRB_JOB_LEASE_SECONDS (8) must be at least twice DRB_JOB_HEARTBEAT_SECONDS (5)" in err
