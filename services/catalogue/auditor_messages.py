"""Submission errors as an auditor sees them: what failed, never a value of the file.

A trust's error messages name the values that failed ("breaches 987654 is more than attendances
9120"), its file's name, bytes of text that is not UTF-8, or what the CSV reader quoted from a
line. An auditor may see what was wrong with a return but never its row data (API.md), so each
error is worded again, when it is read, from its check and its column alone, in the words of the
dataset's own definition ("breaches must not be more than attendances"). Nothing stored with the
error other than those two is used: a message that is not built here cannot leak.

A column is shown only if it is one of the dataset's columns (or its key): the column of a header
error is what the file's header holds, which may be a row of data when the header is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.model import UNIQUE_KEY, Dataset

# File-level checks of the reader and the validator (services/validator), by check name.
_FILE_MESSAGES = {
    "empty_file": "the file is empty",
    "encoding": "the file is not UTF-8 text: it must be saved as CSV UTF-8",
    "format": (
        "the file is not in an accepted format or is damaged: returns are sent as CSV,"
        " Parquet or XLSX"
    ),
    "csv": "the file could not be read as CSV",
    "too_large": "the XLSX workbook is larger than the limit for workbooks",
    "unsafe_zip": "the XLSX workbook was refused as unsafe to open (a possible zip bomb)",
    "unsafe_xlsx": "the XLSX workbook was refused as unsafe to read: it declares sizes over the"
    " limits for workbooks",
    "unsafe_parquet": "the Parquet file was refused as unsafe to read (a possible decompression"
    " bomb)",
    "not_empty": "the file has no data rows",
    "field_count": "a row of the file has a different number of fields from its header",
    "max_errors": "more errors were found than are listed",
    "internal": "the file could not be validated because of an error in the broker",
    "column_in_dataframe": "a column of the dataset is missing",
    "column_in_schema": "the file has a column that is not one of the dataset's",
}


@dataclass(frozen=True)
class Shown:
    """The column and the message of one error, for an auditor."""

    column: str | None
    message: str


def value_free(
    *, dataset: Dataset | None, row: int | None, column: str | None, check: str
) -> Shown:
    """The error worded from its check and column only (no value, name or text of the file)."""
    names = () if dataset is None else tuple(c.name for c in dataset.columns)
    if check == UNIQUE_KEY:
        return _unique_key(dataset)
    known = column if column in names else None
    if check == "missing_column":
        message = f"the column {known} is missing" if known else "a column is missing"
        return Shown(known, message)
    if check == "extra_column":
        # The column is the file's own header cell: not shown.
        what = f"a column of {dataset.code}" if dataset is not None else "a column of the dataset"
        return Shown(None, f"the header has a column that is not {what}")
    if check == "duplicate_column":
        subject = f"the column {known}" if known else "a column"
        return Shown(known, f"{subject} appears more than once in the header")
    if check == "field_count":
        return Shown(None, _FILE_MESSAGES[check])
    if known is None or dataset is None:
        message = _FILE_MESSAGES.get(check) or _described(dataset, None, check)
        return Shown(None, message)
    if check == "dtype":
        words = _type_words(dataset, known)
        if row is None:  # a Parquet column whose stored type cannot hold the dataset's
            return Shown(known, f"the file stores {known} in a type that cannot hold {words}")
        return Shown(known, f"{known} must be {words}")
    if check == "not_nullable":
        return Shown(known, f"{known} must not be empty")
    return Shown(known, f"{known} {_described(dataset, known, check)}")


def _unique_key(dataset: Dataset | None) -> Shown:
    if dataset is None:
        return Shown(None, "the row's key appears in an earlier row: each key must appear once")
    described = dataset.describe_check(column=None, check=UNIQUE_KEY)
    return Shown(",".join(dataset.key), f"the row's key appears in an earlier row: {described}")


def _described(dataset: Dataset | None, column: str | None, check: str) -> str:
    """The dataset's own statement of the check, or its name."""
    described = None if dataset is None else dataset.describe_check(column=column, check=check)
    if described:
        return described
    return f"fails the check {check}" if column else f"the file fails the check {check}"


def _type_words(dataset: Dataset, column: str) -> str:
    """'a whole number', 'a date and time'... in the definition's words."""
    found = dataset.column(column)
    described = dataset.describe_check(column=column, check=f"dtype({found.dtype})")
    return (described or f"must be of type {found.dtype}").removeprefix("must be ")
