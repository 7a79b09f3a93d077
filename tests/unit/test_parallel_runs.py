"""The suite runs in parallel (pytest-xdist): what keeps parallel workers apart (tests/conftest.py,
tests/service_urls.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.conftest import xdist_groups
from tests.service_urls import database_of_worker


def test_each_worker_has_its_own_redis_database() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert database_of_worker(url, "") == url
    assert database_of_worker(url, "gw0") == "redis://127.0.0.1:6379/0"
    assert database_of_worker(url, "gw2") == "redis://127.0.0.1:6379/2"
    assert database_of_worker("redis://:pw@host:1/5", "gw3") == "redis://:pw@host:1/8"
    assert database_of_worker("redis://host:1", "gw1") == "redis://host:1/1"
    assert database_of_worker("redis://host:1/15", "gw1") == "redis://host:1/0"


def item(nodeid: str, *fixtures: str) -> Any:
    return SimpleNamespace(nodeid=nodeid, path=Path(nodeid.split("::")[0]), fixturenames=fixtures)


def test_a_module_runs_on_one_worker_and_shared_services_run_together() -> None:
    groups = xdist_groups(
        [
            item("tests/api/test_a.py::one"),
            item("tests/api/test_a.py::two"),
            item("tests/integration/test_m.py::plain"),
            item("tests/integration/test_m.py::sends", "mesh_url"),
            item("tests/integration/test_n.py::sends", "mesh_url", "postgres_url"),
            item("tests/faults/test_f.py::kill"),
            item("tests/faults/test_g.py::restart", "redis_url"),
        ]
    )
    assert groups == {
        "tests/api/test_a.py": "tests/api/test_a.py",
        # a module with one MESH test goes whole to the MESH group, with the others that use it
        "tests/integration/test_m.py": "mesh",
        "tests/integration/test_n.py": "mesh",
        "tests/faults/test_f.py": "faults",
        "tests/faults/test_g.py": "faults",
    }
