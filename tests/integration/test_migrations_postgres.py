"""Migrations on PostgreSQL 15 (and SQLite): `drb migrate` for real, reversible, complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from services.catalogue.migrate import alembic_config
from services.catalogue.models import Base
from tests.processes import drb_env, run_drb

pytestmark = pytest.mark.integration

EXPECTED_TABLES = {
    "organisations",
    "tokens",
    "items",
    "datasets",
    "dataset_versions",
    "dataset_items",
    "jobs",
    "audit_events",
    "audit_head",
    "alembic_version",
}


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        value: str = request.getfixturevalue("fresh_postgres_url")
        return value
    return f"sqlite:///{tmp_path / 'm.sqlite3'}"


def test_drb_migrate_creates_the_schema_and_publishes(url: str, tmp_path: Path) -> None:
    env = drb_env(database_url=url, data_dir=str(tmp_path / "var"))
    first = run_drb("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "published ecds_attendance version 1" in first.stdout
    again = run_drb("migrate", env=env)
    assert again.returncode == 0, again.stderr

    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
        # The migrations and the models agree: nothing left for autogenerate to find.
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_migrations_downgrade_and_upgrade(url: str) -> None:
    engine = create_engine(url)
    config = alembic_config(url)
    try:
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        command.upgrade(config, "head")
        assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    finally:
        engine.dispose()
