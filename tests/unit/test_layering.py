"""Rule 1 of docs/architecture.md: queries live in ``services/catalogue/repositories/``.

Every module under ``services/`` is parsed (never imported) and each place that builds or runs
a SQLAlchemy query outside the repositories is a failure, unless its module is in ``ALLOWED``
below, with the reason. What counts as a query:

- a call to (or an import of) a statement constructor from ``sqlalchemy`` (``select``,
  ``insert``, ``update``, ``delete``, ``text``, ...), however it is imported or aliased;
- ``x.execute(...)``, ``x.scalars(...)``, ``x.scalar(...)``, ``x.query(...)`` on anything (a
  ``Session``, a ``Connection``);
- ``session.get(Model, key)``: a primary-key lookup is a query too; repositories have a ``get``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOSITORIES = "services/catalogue/repositories/"

# Modules (or folders, ending in "/") that may run SQL outside the repositories, and why.
ALLOWED = {
    # Engine and session plumbing: the SQLite PRAGMAs set on every new connection.
    "services/catalogue/db.py": "connection set-up (PRAGMAs), not a query of the data",
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
RUNNERS = frozenset({"execute", "scalars", "scalar", "query"})


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
