"""Who may see what is decided by comparing an organisation's kind (SECURITY.md), and what
happens next by comparing a status: each against an enum of ``services/catalogue/states.py``,
never against bare text, where a typo ("oversight-body") compares false for ever and silently
grants or denies.

Every module under ``services/`` is parsed; a comparison (``==``, ``!=``, ``in``) between a name
ending in ``kind`` or ``status`` and a string that is one of the enums' values fails here, as
does ``require("trust")``. Templates are checked the same way.
"""

from __future__ import annotations

import ast
import re
from enum import StrEnum
from pathlib import Path

from services.catalogue import states

ROOT = Path(__file__).resolve().parents[2]
KIND_VALUES = {member.value for member in states.OrgKind}
# Every ``…Status`` enum of states.py: a new one is checked without being listed here.
STATUS_VALUES = {
    member.value
    for name, enum in vars(states).items()
    if name.endswith("Status") and isinstance(enum, type) and issubclass(enum, StrEnum)
    for member in enum
}


def _subject(node: ast.expr) -> str | None:
    """``kind`` or ``status`` when the expression names one (``caller.kind``, ``job.status``)."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    if not isinstance(name, str):
        return None
    for subject in ("kind", "status"):
        if name == subject or name.endswith("_" + subject):
            return subject
    return None


def _strings(node: ast.expr) -> list[str]:
    """The string constants of ``"x"`` or of a literal tuple, list or set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for element in node.elts for s in _strings(element)]
    return []


def bare_literals(source: str, path: str) -> list[str]:
    """Each comparison of a kind or status with bare text in one module."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            subjects = {s for s in map(_subject, operands) if s is not None}
            texts = {t for operand in operands for t in _strings(operand)}
            if ("kind" in subjects and texts & KIND_VALUES) or (
                "status" in subjects and texts & STATUS_VALUES
            ):
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "require"
            and any(_strings(argument) for argument in node.args)
        ):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


# ``x.kind == "..."`` or ``x.status in ("...", ...)`` in a template: the text is checked below.
TEMPLATE_COMPARISON = re.compile(
    r"\b\w*(?P<subject>kind|status)\s*(?:==|!=|in)\s*\(?\s*(?P<texts>[\"'][^)%}]*)"
)


def bare_in_template(line: str) -> bool:
    """Whether a template line compares a kind or status with one of the enums' texts."""
    for match in TEMPLATE_COMPARISON.finditer(line):
        texts = set(re.findall(r"[\"']([a-z_]+)[\"']", match["texts"]))
        values = KIND_VALUES if match["subject"] == "kind" else STATUS_VALUES
        if texts & values:
            return True
    return False


def test_kinds_and_statuses_are_compared_with_their_enums() -> None:
    found = [
        line
        for module in sorted((ROOT / "services").rglob("*.py"))
        if "migrations" not in module.parts
        for line in bare_literals(module.read_text(encoding="utf-8"), str(module.relative_to(ROOT)))
    ]
    assert found == [], "compare with the enums of services/catalogue/states.py:\n" + "\n".join(
        found
    )


def test_templates_compare_kinds_and_statuses_with_the_enums() -> None:
    found = [
        f"{template.relative_to(ROOT)}:{number}"
        for template in sorted((ROOT / "services").rglob("*.html"))
        for number, line in enumerate(template.read_text(encoding="utf-8").splitlines(), 1)
        if bare_in_template(line)
    ]
    assert found == [], "use the enums (Jinja globals: OrgKind, SubmissionStatus, ...) in: " + (
        ", ".join(found)
    )


def test_the_check_sees_bare_text_and_not_the_enums_or_other_words() -> None:
    source = """
if caller.kind == "oversight_body": pass
if kind in ("trust", "auditor"): pass
if job.status != "done": pass
if "accepted" == submission.status: pass
Depends(require("trust"))
if caller.kind == OrgKind.TRUST: pass
if scope.org_level == "trust": pass
if breakdown == "trust": pass
if kind == "probe_of_nothing": pass
"""
    found = bare_literals(source, "example.py")
    assert [line.split(":")[1] for line in found] == ["2", "3", "4", "5", "6"]


def test_every_status_enum_is_checked() -> None:
    one_of_each = {"accepted", "withdrawn", "overdue", "running", "acknowledged", "sending"}
    assert one_of_each <= STATUS_VALUES


def test_the_template_check_sees_bare_text_and_not_the_enums_or_other_words() -> None:
    assert bare_in_template('{% if viewer.principal.kind == "oversight_body" %}')
    assert bare_in_template('{% if s.status == "accepted" %}<strong>')
    assert bare_in_template('{% elif e.delivery.status in ("delivered", "acknowledged") %}')
    assert not bare_in_template("{% if s.status == SubmissionStatus.ACCEPTED %}")
    assert not bare_in_template('{% if i.status == "covered" %}')  # coverage: not an enum
    assert not bare_in_template('{{ "Your requests" if kind_label == "x" else "y" }}')


def test_every_enum_member_a_template_names_exists() -> None:
    """A misspelt member raises only when its branch renders; this finds it before then."""
    named = re.compile(r"\b(OrgKind|[A-Z][A-Za-z]*Status)\.([A-Z_]+)\b")
    missing = [
        f"{template.relative_to(ROOT)}: {enum}.{member}"
        for template in sorted((ROOT / "services").rglob("*.html"))
        for enum, member in named.findall(template.read_text(encoding="utf-8"))
        if not hasattr(getattr(states, enum, None), member)
    ]
    assert missing == []
    assert named.findall("{% if s.status == SubmissionStatus.ACCEPTED %}") == [
        ("SubmissionStatus", "ACCEPTED")
    ]
