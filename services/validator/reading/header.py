"""The header: which of the file's columns is each of the dataset's."""

from __future__ import annotations

import re
from collections.abc import Sequence

from schemas.model import Dataset
from services.validator.reading.records import ErrorRecord, FileError

# ---------------------------------------------------------------------------
# The header
# ---------------------------------------------------------------------------


def match_header(names: Sequence[str | None], dataset: Dataset) -> list[int]:
    """The file position of each dataset column; FileError naming every mismatch."""
    cleaned = [(name or "").replace("\ufeff", "").strip() for name in names]
    errors: list[ErrorRecord] = []
    seen: dict[str, int] = {}
    for name in cleaned:
        seen[name] = seen.get(name, 0) + 1
    wanted = [column.name for column in dataset.columns]
    missing = [name for name in wanted if name not in seen]
    extra = [name for name in dict.fromkeys(cleaned) if name not in wanted]
    # A header name that is the start or end of exactly one missing column's name, and the only
    # such name for it (NHS England's published A&E data calls department_type "type").
    shortened = {
        short: fits[0]
        for short in extra
        if len(fits := [name for name in missing if _part_of(short, name)]) == 1
        and sum(_part_of(other, fits[0]) for other in extra) == 1
    }
    for name in missing:
        message = f"the column {name} is missing"
        near = [other for other in extra if _loose(other) == _loose(name)]
        part = [short for short, full in shortened.items() if full == name]
        if near:
            message += f" (the file has {near[0]!r}: column names must match exactly)"
        elif part:
            message += f" (the file has {part[0]!r}: if that is it, rename it {name})"
        errors.append(_header_error(name, "missing_column", message))
    for position, name in enumerate(cleaned):
        if name in extra and cleaned.index(name) == position:
            if not name:
                message = f"column {position + 1} of the header has no name"
                errors.append(_header_error(None, "extra_column", message))
                continue
            message = f"{name} is not a column of {dataset.code}"
            near = [other for other in missing if _loose(other) == _loose(name)]
            near = near or ([shortened[name]] if name in shortened else [])
            separator = next((s for s in (";", "\t", "|") if s in name), None)
            if near:
                message += f"; did you mean {near[0]}?"
            elif separator is not None and len(cleaned) == 1:
                # A semicolon-separated export (common where a comma is the decimal mark).
                message += f"; the file seems to separate values by {separator!r}: use commas"
            else:
                message += f"; its columns are {_names(wanted)}"
            errors.append(_header_error(name, "extra_column", message))
    for name, count in seen.items():
        if count > 1 and name in wanted:
            message = f"the column {name} appears {count} times in the header"
            errors.append(_header_error(name, "duplicate_column", message))
    if errors:
        raise FileError(*errors)
    return [cleaned.index(name) for name in wanted]


def _part_of(short: str, name: str) -> bool:
    """Whether a header name is the start or end of a column's name (type: department_type)."""
    short, name = _loose(short), _loose(name)
    return len(short) >= 3 and short != name and (name.startswith(short) or name.endswith(short))


def _loose(name: str) -> str:
    """A column name compared without letter case, spaces or underscores, to suggest a fix."""
    return re.sub(r"[\s_-]+", "", name).lower()


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _header_error(column: str | None, check: str, message: str) -> ErrorRecord:
    return ErrorRecord(row=None, column=column, check=check, value=None, message=message)
