"""Rule 1 of docs/architecture.md: queries live in ``services/catalogue/repositories/``, and
the broker (routes and pages) never calls a repository: it calls domain operations, which hold
the rules of who may see what.

Every module under ``services/`` is parsed (never imported) and each place that builds or runs
a SQLAlchemy query outside the repositories is a failure, unless its module is in ``ALLOWED``
below, with the reason. What counts as a query:

- a call to (or an import of) a statement constructor from ``sqlalchemy`` (``select``,
  ``insert``, ``update``, ``delete``, ``text``, ...), however it is imported or aliased;
- ``x.execute(...)``, ``x.exec_driver_sql(...)``, ``x.scalars(...)``, ``x.scalar(...)``,
  ``x.query(...)`` on anything (a ``Session``, a ``Connection``);
- ``session.get(Model, key)``: a primary-key lookup is a query too; repositories have a ``get``.

And no module under ``services/broker/`` imports ``services.catalogue.repositories`` (or one of
its modules) in any form: ``import``, ``from ... import``, relative, ``import_module``, or an
attribute of an imported ``services.catalogue``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOSITORIES = "services/catalogue/repositories/"
BROKER = "services/broker/"
REPOSITORY_PACKAGE = "services.catalogue.repositories"

# Modules (or folders, ending in "/") that may run SQL outside the repositories, and why.
ALLOWED = {
    # Engine and session plumbing: the SQLite PRAGMAs set on every new connection, and
    # BEGIN IMMEDIATE (db.write_lock), which takes SQLite's write lock before a transaction reads.
    "services/catalogue/db.py": "connection set-up (PRAGMAs) and the write lock, no data",
    # `drb serve|worker` refuse to start on a database that does not answer: SELECT 1.
    "services/catalogue/runtime.py": "start-up check that the database answers (SELECT 1)",
    # GET /v1/health: whether the database answers, on a connection of its own (SELECT 1).
    "services/broker/routes/health.py": "health check (SELECT 1), no session, no data",
    # Alembic's schema migrations write the schema (and move data once, in SQL of their time).
    "services/catalogue/migrations/": "schema migrations",
}

CONSTRUCTORS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "exists",
        "union",
        "union_all",
        "intersect",
        "except_",
        "values",
        "table",
        "column",
        "literal_column",
    }
)
RUNNERS = frozenset({"execute", "exec_driver_sql", "scalars", "scalar", "query"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _sqlalchemy_names(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Local names bound to sqlalchemy's constructors (alias -> name), and local names of
    sqlalchemy modules (``import sqlalchemy as sa``)."""
    names: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in CONSTRUCTORS:
                    names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy":
                    modules.add(alias.asname or alias.name.split(".")[0])
    return names, modules


def _is_session_get(call: ast.Call) -> bool:
    """``<...session>.get(Model, key)``: a receiver named like a session, a class first."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr == "get" and len(call.args) >= 2):
        return False
    receiver = ast.unparse(func.value).rsplit(".", 1)[-1].lower()
    first = call.args[0]
    return "session" in receiver and isinstance(first, ast.Name) and first.id[:1].isupper()


def findings_in(source: str, path: str) -> list[Finding]:
    """Every query construct in one module's source."""
    tree = ast.parse(source, filename=path)
    names, modules = _sqlalchemy_names(tree)
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in CONSTRUCTORS:
                    found.append(
                        Finding(path, node.lineno, f"imports {alias.name} from sqlalchemy")
                    )
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in names:
            found.append(Finding(path, node.lineno, f"{names[func.id]}(...)"))
        elif isinstance(func, ast.Attribute):
            owner = ast.unparse(func.value)
            built = owner.split(".")[0] in modules and func.attr in CONSTRUCTORS
            if built or func.attr in RUNNERS:
                found.append(Finding(path, node.lineno, f"{owner}.{func.attr}(...)"))
            elif _is_session_get(node):
                found.append(
                    Finding(path, node.lineno, f"{owner}.get({ast.unparse(node.args[0])}, ...)")
                )
    return sorted(found, key=lambda f: (f.line, f.what))


def _matches(path: str, entry: str) -> bool:
    return path == entry or (entry.endswith("/") and path.startswith(entry))


def _allowed(path: str) -> bool:
    return any(_matches(path, entry) for entry in ALLOWED)


def all_findings(root: Path) -> list[Finding]:
    """Every query construct outside the repositories, under ``root/services``."""
    found: list[Finding] = []
    for module in sorted((root / "services").rglob("*.py")):
        path = module.relative_to(root).as_posix()
        if not path.startswith(REPOSITORIES):
            found.extend(findings_in(module.read_text(encoding="utf-8"), path))
    return found


def test_queries_live_in_the_repositories() -> None:
    outside = [f for f in all_findings(ROOT) if not _allowed(f.path)]
    assert not outside, (
        "Queries belong in services/catalogue/repositories/ (docs/architecture.md, rule 1); "
        "move these there and call them from a domain operation:\n"
        + "\n".join(str(f) for f in outside)
    )


def test_every_allowance_is_still_needed() -> None:
    """An entry of ALLOWED whose module no longer runs SQL goes: the list stays what it says."""
    found = all_findings(ROOT)
    used = {entry for entry in ALLOWED if any(_matches(f.path, entry) for f in found)}
    assert set(ALLOWED) == used, f"no longer needed: {sorted(set(ALLOWED) - used)}"


def test_the_check_sees_each_kind_of_query() -> None:
    """The detector itself: each way of writing a query is found, and look-alikes are not."""
    source = """
import sqlalchemy as sa
from sqlalchemy import select as pick, text, update
from sqlalchemy.dialects.postgresql import insert

def queries(session, connection, ctx):
    session.execute(update(Job).values(status="done"))
    session.scalars(pick(Job)).all()
    ctx.session.scalar(sa.select(Job.id))
    connection.execute(text("SELECT 1"))
    session.execute(insert(Job).values(id="x"))
    session.get(Job, "j1")
    session.query(Job).all()

def not_queries(frame, settings, cache):
    frame.select("a").group_by("b")
    settings.get("key", None)
    cache.get(key, None)
"""
    found = findings_in(source, "example.py")
    kinds = {f.what for f in found}
    assert {
        "imports select from sqlalchemy",
        "imports text from sqlalchemy",
        "imports update from sqlalchemy",
        "imports insert from sqlalchemy",
        "update(...)",
        "select(...)",
        "sa.select(...)",
        "text(...)",
        "insert(...)",
        "session.execute(...)",
        "session.scalars(...)",
        "ctx.session.scalar(...)",
        "connection.execute(...)",
        "session.get(Job, ...)",
        "session.query(...)",
    } <= kinds
    assert all(f.line < 15 for f in found), [str(f) for f in found if f.line >= 15]


# -- the broker calls domain operations, never a repository -------------------------------------


def _is_repositories(name: str) -> bool:
    return name == REPOSITORY_PACKAGE or name.startswith(REPOSITORY_PACKAGE + ".")


def _absolute(node: ast.ImportFrom, path: str) -> str:
    """The module an ``ImportFrom`` names, relative imports resolved against ``path``."""
    if not node.level:
        return node.module or ""
    package = path.removesuffix(".py").split("/")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def repository_imports(source: str, path: str) -> list[Finding]:
    """Every way one module's source reaches ``services.catalogue.repositories``."""
    tree = ast.parse(source, filename=path)
    bound: dict[str, str] = {}  # local name -> the module or object it stands for
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_repositories(alias.name):
                    found.append(Finding(path, node.lineno, f"import {alias.name}"))
                local = alias.asname or alias.name.split(".")[0]
                bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if _is_repositories(module) or _is_repositories(full):
                    found.append(Finding(path, node.lineno, f"from {module} import {alias.name}"))
                bound[alias.asname or alias.name] = full
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func).rsplit(".", 1)[-1]
            first = node.args[0] if node.args else None
            if (
                name in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _is_repositories(first.value)
            ):
                found.append(Finding(path, node.lineno, f"{name}({first.value!r})"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "repositories":
            head, _, rest = ast.unparse(node).partition(".")
            dotted = f"{bound.get(head, head)}.{rest}"
            if _is_repositories(dotted):
                found.append(Finding(path, node.lineno, f"uses {dotted}"))
    return sorted(found, key=lambda f: (f.line, f.what))


def test_the_broker_never_imports_a_repository() -> None:
    found = [
        finding
        for module in sorted((ROOT / BROKER).rglob("*.py"))
        for finding in repository_imports(
            module.read_text(encoding="utf-8"), module.relative_to(ROOT).as_posix()
        )
    ]
    assert not found, (
        "Routes and pages call domain operations, never a repository (docs/architecture.md, "
        "rule 1); give each of these a function in services/catalogue/:\n"
        + "\n".join(str(f) for f in found)
    )


def test_the_check_sees_each_way_of_importing_a_repository() -> None:
    """The detector itself: each import form is found, and look-alikes are not."""
    source = """
from services.catalogue.repositories import asks as ask_repo
from services.catalogue.repositories.tokens import get
from services.catalogue import repositories
from services.catalogue import audit, repositories as repos
import services.catalogue.repositories.requests
import services.catalogue.repositories as r
from ...catalogue.repositories import submissions
from ...catalogue import repositories as relative
importlib.import_module("services.catalogue.repositories.organisations")
import services.catalogue
import services.catalogue as cat
rows = services.catalogue.repositories.asks.with_bodies(session=s)
rows = cat.repositories.asks.with_bodies(session=s)

from services.catalogue import asks, data_requests
from services.catalogue.repositories_notes import x
import services.catalogue.auth
from ..web import repositories
settings.repositories.clear()
importlib.import_module("services.catalogue.submissions")
"""
    found = repository_imports(source, "services/broker/routes/example.py")
    assert [f.line for f in found] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14], [str(f) for f in found]
