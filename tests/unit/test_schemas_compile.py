"""How definitions (``schemas.model``) and what they compile to (``schemas.compile``) are split."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from schemas import DATASETS, get_dataset
from schemas.compile.pandera_schema import pandera_schema
from schemas.compile.polars_checks import compiled_checks
from schemas.compile.publication import constraints
from schemas.model import InRange, Length, OneOf, Pattern
from tests.schema_samples import ORG_CODE, PERIOD

ROOT = Path(__file__).resolve().parents[2]


def _pandera_loaded_after(*modules: str) -> bool:
    """Whether importing the modules in a fresh interpreter loads pandera."""
    code = "; ".join(
        [
            *(f"import {module}" for module in modules),
            "import sys",
            "print('pandera' in sys.modules)",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.strip() == "True"


def test_reading_and_publishing_definitions_does_not_import_pandera() -> None:
    assert not _pandera_loaded_after(
        "schemas",
        "schemas.model",
        "schemas.compile",
        "schemas.compile.polars_checks",
        "schemas.compile.publication",
        "schemas.compile.derive",
    )
    # The check can see pandera: the pandera compiler loads it.
    assert _pandera_loaded_after("schemas.compile.pandera_schema")


@pytest.mark.parametrize("code", list(DATASETS))
@pytest.mark.parametrize("context", [{}, {"org_code": ORG_CODE, "period": PERIOD}])
def test_the_pandera_schema_holds_the_compiled_checks(code: str, context: dict[str, str]) -> None:
    dataset = get_dataset(code)
    schema = pandera_schema(dataset, **context)
    in_schema = [(None, check.name) for check in schema.checks] + [
        (name, check.name) for name, column in schema.columns.items() for check in column.checks
    ]
    compiled = [(check.column, check.name) for check in compiled_checks(dataset, **context)]
    assert sorted(in_schema, key=str) == sorted(compiled, key=str)
    assert len(set(compiled)) == len(compiled)


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (InRange(min=0, max=9), {"minimum": 0, "maximum": 9}),
        (OneOf(values=("1", "2")), {"enum": ["1", "2"]}),
        (Length(exact=3), {"minLength": 3, "maxLength": 3}),
        (Pattern(regex="[A-Z]{3}", hint="three capitals"), {"pattern": "[A-Z]{3}"}),
    ],
)
def test_each_check_kind_has_table_schema_constraints(
    check: InRange | OneOf | Length | Pattern, expected: dict[str, object]
) -> None:
    assert constraints(check) == expected
