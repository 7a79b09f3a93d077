"""docker-compose.yml and infra/Dockerfile only run what the real `drb` accepts and CI exercises.

No Docker engine here can pull images, so compose itself never runs in CI; these checks keep it
from drifting away from the program that CI does run.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.core
import yaml

from services.catalogue.settings import Settings
from services.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

# The drb subcommands that CI runs for real, so that compose may rely on them:
#   serve    tests/e2e/test_serve.py
#   worker   tests/integration/test_worker_redis.py
#   migrate  tests/integration/test_migrations_postgres.py
CI_EXERCISED = frozenset({"serve", "worker", "migrate"})

# What each subcommand needs before it may start, as depends_on conditions.
_RUNTIME_NEEDS = {
    "postgres": "service_healthy",
    "redis": "service_healthy",
    "migrate": "service_completed_successfully",
}
NEEDS: dict[str, dict[str, str]] = {
    "migrate": {"postgres": "service_healthy"},
    "serve": _RUNTIME_NEEDS,
    "worker": _RUNTIME_NEEDS,
}


def _built_from_infra(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, str):
        build = {"context": build}
    if not isinstance(build, dict):
        return False
    dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    return bool(dockerfile.resolve().is_relative_to(ROOT / "infra"))


DRB_SERVICES = sorted(name for name, service in SERVICES.items() if _built_from_infra(service))


def _parse_drb(argv: Any) -> str:
    """Parse argv with the real `drb` without running it (unknown options fail); its subcommand."""
    assert isinstance(argv, list), f"exec (list) form expected, got {argv!r}"
    assert all(isinstance(arg, str) for arg in argv), argv
    assert argv[:1] == ["drb"], f"expected `drb SUBCOMMAND ...`, got {argv!r}"
    assert len(argv) >= 2, f"no subcommand in {argv!r}"
    name: str = argv[1]
    args: list[str] = argv[2:]
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert name in group.commands, f"`drb {name}` is not a command ({sorted(group.commands)})"
    with group.commands[name].make_context(name, args, resilient_parsing=False):
        pass
    return name


def _dockerfile_instructions(keyword: str) -> list[str]:
    lines = DOCKERFILE.read_text().splitlines()
    return [line.split(None, 1)[1] for line in lines if line.upper().startswith(f"{keyword} ")]


def test_the_app_services_are_built_from_infra() -> None:
    assert {"migrate", "broker", "validator"} <= set(DRB_SERVICES)


@pytest.mark.parametrize("name", DRB_SERVICES)
def test_service_runs_a_drb_command_that_ci_exercises(name: str) -> None:
    assert _parse_drb(SERVICES[name].get("command")) in CI_EXERCISED


def test_dockerfile_default_command_is_one_that_ci_exercises() -> None:
    *_, cmd = _dockerfile_instructions("CMD")
    assert _parse_drb(json.loads(cmd)) in CI_EXERCISED


def test_the_check_rejects_an_unknown_option() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse_drb(["drb", "serve", "--no-such-option"])


@pytest.mark.parametrize("name", DRB_SERVICES)
def test_service_waits_for_what_its_command_needs(name: str) -> None:
    depends_on = SERVICES[name].get("depends_on", {})
    assert isinstance(depends_on, dict), "depends_on needs conditions, so the long (map) form"
    needs = NEEDS.get(_parse_drb(SERVICES[name]["command"]), {})
    conditions = {dep: depends_on.get(dep, {}).get("condition") for dep in needs}
    assert conditions == needs


def test_every_awaited_health_has_a_check() -> None:
    for name, service in SERVICES.items():
        for dep, spec in service.get("depends_on", {}).items():
            if spec.get("condition") == "service_healthy":
                assert SERVICES[dep].get("healthcheck", {}).get("test"), f"{name} waits on {dep}"
    assert "pg_isready" in SERVICES["postgres"]["healthcheck"]["test"]


def test_validator_can_be_scaled() -> None:
    validator = SERVICES["validator"]
    assert "container_name" not in validator
    assert "ports" not in validator


@pytest.mark.parametrize("name", DRB_SERVICES)
def test_service_sets_only_real_settings(name: str) -> None:
    # Settings ignores unknown variables, so a misspelt DRB_ name would silently do nothing.
    known = {f"DRB_{field.upper()}" for field in Settings.model_fields}
    environment = SERVICES[name].get("environment", {})
    assert isinstance(environment, dict)
    unknown = {var for var in environment if var.startswith("DRB_")} - known
    assert not unknown, f"not settings of services.catalogue.settings.Settings: {sorted(unknown)}"


def test_dockerfile_copies_files_that_exist() -> None:
    sources: list[str] = []
    for copy in _dockerfile_instructions("COPY"):
        words = shlex.split(copy)
        if any(word.startswith("--from") for word in words):
            continue
        sources += [word for word in words if not word.startswith("--")][:-1]
    assert "requirements.lock" in sources
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert not missing, f"infra/Dockerfile copies files that are not in the repo: {missing}"
