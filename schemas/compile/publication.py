"""The forms of a dataset definition the API serves: the JSON definition (and its fingerprint),
the Frictionless Table Schema and the CSV template."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, assert_never

from schemas.model import (
    CONTEXT_RULES,
    ColumnCheck,
    Dataset,
    InRange,
    Length,
    OneOf,
    Pattern,
    Rule,
)


def definition(dataset: Dataset) -> dict[str, Any]:
    """The full JSON-ready definition served at GET /v1/datasets/{code}."""
    return {
        "code": dataset.code,
        "version": dataset.version,
        "title": dataset.title,
        "description": dataset.description,
        "period_type": dataset.period_type,
        "has_period_column": dataset.has_period_column,
        "key": list(dataset.key),
        "items": list(dataset.items),
        "item_columns": dict(dataset.items),
        "columns": [
            {
                "name": column.name,
                "type": column.dtype,
                "required": column.required,
                "nullable": column.nullable,
                "description": column.description,
                "checks": [_check_entry(check) for check in column.checks],
            }
            for column in dataset.columns
        ],
        "rules": [_rule_entry(rule) for rule in dataset.rules],
        "burden": {
            "base_minutes": dataset.burden.base_minutes,
            "minutes_per_item": dataset.burden.minutes_per_item,
            "source": dataset.burden.source,
        },
        "derivations": [
            {
                "item": d.item,
                "method": d.method,
                "description": d.description,
                "group_by": list(d.group_by),
                "time_column": d.time_column,
            }
            for d in dataset.derivations
        ],
    }


def fingerprint(dataset: Dataset) -> str:
    """sha256 hex of the canonical JSON of definition(), to version datasets in the database."""
    canonical = json.dumps(
        definition(dataset), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def table_schema(dataset: Dataset) -> dict[str, Any]:
    """The definition as a Frictionless Table Schema; cross-field rules go in x-rules."""
    fields: list[dict[str, Any]] = []
    for column in dataset.columns:
        column_constraints: dict[str, Any] = {"required": not column.nullable}
        for check in column.checks:
            column_constraints.update(constraints(check))
        entry: dict[str, Any] = {
            "name": column.name,
            "type": column.dtype,
            "description": column.description,
            "constraints": column_constraints,
        }
        if column.dtype == "datetime":
            # Table Schema's default datetime format demands a UTC "Z"; returns use local time.
            entry["format"] = "any"
        fields.append(entry)
    return {
        "fields": fields,
        "primaryKey": list(dataset.key),
        "missingValues": [""],
        "x-rules": [
            {**_rule_entry(rule), "description": _rule_sentence(rule)} for rule in dataset.rules
        ],
    }


def constraints(check: ColumnCheck) -> dict[str, Any]:
    """A column check as Table Schema constraints."""
    match check:
        case InRange():
            return {"minimum": check.min, "maximum": check.max}
        case OneOf():
            return {"enum": list(check.values)}
        case Length():
            return {"minLength": check.exact, "maxLength": check.exact}
        case Pattern():
            return {"pattern": check.regex}
        case _:
            assert_never(check)


def template_csv(dataset: Dataset) -> str:
    """The header row of a return, CRLF-terminated as in RFC 4180."""
    return ",".join(column.name for column in dataset.columns) + "\r\n"


def _params(check: ColumnCheck | Rule) -> dict[str, Any]:
    """A check's parameters as JSON-ready values."""
    return {
        spec.name: _plain(getattr(check, spec.name))
        for spec in dataclasses.fields(check)
        if spec.metadata.get("published", True)
    }


def _plain(value: Any) -> Any:
    """Tuples as lists, so definitions compare equal to their JSON round trip."""
    return list(value) if isinstance(value, tuple) else value


def _check_entry(check: ColumnCheck) -> dict[str, Any]:
    """A column check in definition()."""
    return {"name": check.name, **_params(check), "description": check.describe()}


def _rule_entry(rule: Rule) -> dict[str, Any]:
    """A rule in definition()."""
    return {
        "name": rule.name,
        "column": rule.column,
        **_params(rule),
        "needs_submission": isinstance(rule, CONTEXT_RULES),
        "description": rule.describe(),
    }


def _rule_sentence(rule: Rule) -> str:
    """A rule as a sentence that names its column."""
    return rule.describe() if rule.column is None else f"{rule.column} {rule.describe()}"
