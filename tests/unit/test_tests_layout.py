"""How tests/ is arranged (README, "Tests"): each test module in the folder of what it needs, and
test modules never import one another; what several share lives in a helper module.

A test module that imports another runs that module's fixtures and tests' set-up in a place
nobody looks for them, and ties one area (api) to another (integration) by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
AREAS = {"unit", "repositories", "api", "integration", "browser", "faults", "e2e", "concurrency"}


def modules_of_tests() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_every_test_module_is_in_an_area_folder() -> None:
    misplaced = [
        str(path.relative_to(TESTS))
        for path in modules_of_tests()
        if path.relative_to(TESTS).parts[0] not in AREAS
    ]
    assert misplaced == [], f"move these into one of {sorted(AREAS)}"


def test_no_test_module_imports_another() -> None:
    crossings = [
        f"{path.relative_to(TESTS)} imports {name}"
        for path in [*modules_of_tests(), *TESTS.rglob("conftest.py")]
        for name in sorted(imported_modules(path))
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert crossings == [], "move what is shared into a helper module (tests/*.py)"


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    module = tmp_path / "test_example.py"
    module.write_text("from tests.api.test_reminders import run\nimport tests.unit.test_x\n")
    assert imported_modules(module) >= {"tests.api.test_reminders", "tests.unit.test_x"}
