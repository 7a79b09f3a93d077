"""Validating a submitted file against a dataset, chunk by chunk, in bounded memory.

Each chunk is converted (``reading``) and validated with the dataset's pandera schema on a
collected polars DataFrame, lazily, so that every failure is reported. Rules about the whole file
are checked once at the end instead: the key's uniqueness (every row's key is kept, compactly),
rules that compare rows with each other (``all_values_present``) and ``not_empty``.

Three threads share the work: one reads and converts the next chunk, the caller's checks this
one, and one writes the previous one to Parquet; at most one chunk waits at each hand-over, so
memory does not grow with the file. Rows are written while the file is clean; a rejected file
leaves nothing behind. Errors are listed up to ``max_errors``; past that, reading stops at the
end of the chunk and the last record says how many more were found.
"""

from __future__ import annotations

import functools
import io
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import numpy as np
import pandera.polars as pa
import polars as pl
import pyarrow as arrow
import pyarrow.parquet as pq

from schemas.compile.pandera_schema import pandera_schema
from schemas.compile.polars_checks import compiled_checks
from schemas.model import (
    UNIQUE_KEY,
    AllValuesPresent,
    Dataset,
    InSubmissionPeriod,
    NotBefore,
    NotEmpty,
    NotGreaterThan,
    SubmittedBy,
)
from services.catalogue.states import SubmissionStatus
from services.validator.reading.reader import ReturnReader
from services.validator.reading.records import (
    VALUE_CHARS,
    Chunk,
    ErrorRecord,
    FileError,
    Format,
    RaggedRow,
)
from services.validator.reading.sniffing import detect_format

__all__ = ["ErrorRecord", "FileError", "Report", "validate_file"]

Status: TypeAlias = Literal[SubmissionStatus.ACCEPTED, SubmissionStatus.REJECTED]
_Item = TypeVar("_Item")

# Seed of the key hash; any fixed value, so that equal keys hash alike in every chunk.
_KEY_HASH_SEED = 20_250_101
# How many rows of one duplicated key a message lists.
_ROWS_LISTED = 5


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of validating one file."""

    status: Status
    # Data rows read: 0 for a header alone; None when the rows could not be read at all.
    rows: int | None
    errors: list[ErrorRecord] = field(default_factory=list)
    # Every error found; more than len(errors) when the list was cut at max_errors.
    error_count: int = 0
    format: Format | None = None


def validate_file(
    *,
    path: Path,
    filename: str,
    dataset: Dataset,
    org_code: str,
    period: str,
    write_to: Path | None = None,
    chunk_rows: int = 500_000,
    max_errors: int = 10_000,
) -> Report:
    """Validate the file as the trust's return of the dataset for the period; write it if it passes.

    On acceptance ``write_to`` holds the rows as Parquet with exactly the dataset's columns and
    types, as pyarrow reads them back: written as zstd, or (a Parquet return already so, whose
    values need no converting) the file itself, linked; on rejection nothing is left there.
    """
    output = _ParquetOutput(write_to, dataset) if write_to is not None else None
    validation = _Validation(
        path=path,
        filename=filename,
        dataset=dataset,
        org_code=org_code,
        period=period,
        chunk_rows=max(chunk_rows, 1),
        max_errors=max(max_errors, 1),
        output=output,
    )
    try:
        report = validation.run()
        if output is not None and report.status == SubmissionStatus.ACCEPTED:
            output.commit(again=validation.frames_again)
    except BaseException:
        if output is not None:
            output.discard()
        raise
    if output is not None and report.status != SubmissionStatus.ACCEPTED:
        output.discard()
    return report


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


class _Validation:
    """The state of validating one file: errors so far, every key, rows of whole-file rules."""

    def __init__(
        self,
        *,
        path: Path,
        filename: str,
        dataset: Dataset,
        org_code: str,
        period: str,
        chunk_rows: int,
        max_errors: int,
        output: _ParquetOutput | None,
    ) -> None:
        self.path = path
        self.filename = filename
        self.dataset = dataset
        self.org_code = org_code
        self.period = period
        self.chunk_rows = chunk_rows
        self.output = output
        self.errors = _Errors(max_errors)
        self.shortcut = _Shortcut(dataset, org_code=org_code, period=period)
        self.position = {column.name: i for i, column in enumerate(dataset.columns)}
        self.keys = _KeyIndex(dataset)
        self.group_rules = [rule for rule in dataset.rules if isinstance(rule, AllValuesPresent)]
        self.group_columns = list(dict.fromkeys(c for r in self.group_rules for c in r.reads()))
        self.group_parts: list[pl.DataFrame] = []
        # Data rows checked so far (the reader may be a chunk ahead).
        self.rows_checked = 0
        self._descriptions: dict[tuple[str | None, str], str | None] = {}

    @functools.cached_property
    def schema(self) -> pa.DataFrameSchema:
        """The pandera schema, built only for a chunk that fails the shortcut (most never do)."""
        return _chunk_schema(self.dataset, org_code=self.org_code, period=self.period)

    def run(self) -> Report:
        """Read, check and (while clean) write every chunk, then check the whole file."""
        try:
            file_format = detect_format(self.path, filename=self.filename)
        except FileError as error:
            return self._unreadable(error, file_format=None)
        try:
            reader = self._open(file_format)
        except FileError as error:
            return self._unreadable(error, file_format=file_format)
        if self.output is not None and reader.stored_as(self.output.read_back_schema):
            # Parquet already as the store keeps it: unless a value needs converting, the file
            # itself is kept, rather than written again (most of a Parquet return's time).
            reader.compare_with_file = True
            self.output.keep_source(self.path)
        with reader:
            try:
                stopped = self._read(reader)
            except FileError as error:
                return self._unreadable(error, file_format=reader.format)
            rows = self.rows_checked + reader.ragged_count
            if not stopped:
                self._check_whole_file(reader, rows)
            ragged = reader.locate_ragged() if reader.ragged_count else []
        self._add_ragged(reader, ragged)
        return self._report(rows=rows, file_format=reader.format, stopped=stopped)

    def frames_again(self) -> Iterator[pl.DataFrame]:
        """The file's rows converted once more, chunk by chunk (to write an accepted file that
        was to be kept as it is, when a value turned out to need converting)."""
        with self._open(detect_format(self.path, filename=self.filename)) as reader:
            for chunk in reader.chunks():
                yield chunk.frame

    def _open(self, file_format: Format) -> ReturnReader:
        """The file opened for reading (FileError if its header or types are wrong)."""
        return ReturnReader(
            self.path,
            file_format=file_format,
            dataset=self.dataset,
            chunk_rows=self.chunk_rows,
            max_errors=self.errors.cap,
        )

    def _read(self, reader: ReturnReader) -> bool:
        """Check every chunk; True if reading stopped early because the error list is full."""
        # Reading and converting are each about as long as checking and writing together, so
        # each has a thread: the critical path is the longest step, not the sum of the first two.
        with (
            _ReadAhead(reader.tables(), name="drb-read") as tables,
            _ReadAhead(reader.converted(tables), name="drb-convert") as chunks,
        ):
            return self._check_chunks(chunks, reader)

    def _check_chunks(self, chunks: Iterable[Chunk], reader: ReturnReader) -> bool:
        for chunk in chunks:
            if self.output is not None and self.errors.count == 0 and not reader.ragged_count:
                # Written while the chunk is checked, on the writer's thread; thrown away with
                # the rest of the file if this chunk or a later one fails.
                self.output.write(chunk.frame, as_stored=chunk.as_stored)
            self._check_chunk(chunk.frame, chunk.offset, chunk.cast_errors)
            self.rows_checked = chunk.offset + chunk.frame.height
            self.keys.add(chunk.frame)
            if self.group_columns:
                self.group_parts.append(chunk.frame.select(self.group_columns))
            found = self.errors.count + reader.ragged_count
            if self.output is not None and found:
                self.output.discard()  # the file is rejected: stop writing at once
            if found >= self.errors.cap:
                return True
        return False

    def _check_chunk(self, frame: pl.DataFrame, offset: int, cast_errors: pl.DataFrame) -> None:
        """Record the chunk's conversion failures and pandera's failures, in row order."""
        if cast_errors.is_empty() and self.shortcut.passes(frame):
            return
        failures = self.shortcut.failures(frame)
        if failures is None:
            failures = _pandera_failures(self.schema, frame)
        if not cast_errors.is_empty():
            # A cell that would not convert is null; pandera's not_nullable would say it again.
            failures = failures.join(
                cast_errors.select("index", "column", nulled=pl.lit(True)),
                on=["index", "column"],
                how="left",
            ).filter(~(pl.col("nulled").fill_null(False) & (pl.col("check") == "not_nullable")))
        problems = pl.concat(
            [
                cast_errors.select(
                    "index",
                    "column",
                    check=pl.lit("dtype"),
                    value=pl.col("value"),
                    message=pl.col("message"),
                ),
                failures.select(
                    "index",
                    "column",
                    "check",
                    value=pl.lit(None, dtype=pl.String),
                    message=pl.lit(None, dtype=pl.String),
                ),
            ]
        )
        if problems.is_empty():
            return
        self.errors.count += problems.height
        room = self.errors.room
        if room <= 0:
            return
        order = pl.col("column").replace_strict(self.position, default=-1, return_dtype=pl.Int64)
        listed = problems.sort(pl.col("index"), order, nulls_last=False, maintain_order=True).head(
            room
        )
        cells = self._cells(frame, listed)
        quoted = {name: dtype == pl.String for name, dtype in frame.schema.items()}
        for index, column, check, value, message in listed.iter_rows():
            row = None if index is None else offset + index + 1
            if message is not None:
                record = ErrorRecord(row, column, check, value, message)
            else:
                record = self._pandera_record(cells, quoted, row, index, column, check)
            self.errors.records.append(record)

    def _cells(self, frame: pl.DataFrame, listed: pl.DataFrame) -> dict[str, dict[int, Any]]:
        """The values the listed failures name, by column and row index: gathered a column at a
        time (a cell at a time costs more than the check itself when thousands fail)."""
        named = listed.filter(pl.col("message").is_null() & pl.col("index").is_not_null())
        cells: dict[str, dict[int, Any]] = {}
        for (column,), rows in named.group_by("column"):
            if column not in self.position:
                continue
            indices = rows.get_column("index").unique()
            reads = [column, *(rule.other for rule in self._comparisons.get(column, ()))]
            for name in reads:
                gathered = frame.get_column(name).gather(indices).to_list()
                cells.setdefault(name, {}).update(zip(indices.to_list(), gathered, strict=True))
        return cells

    @functools.cached_property
    def _comparisons(self) -> dict[str, list[NotGreaterThan | NotBefore]]:
        """The rules comparing a column with another, by the column they are reported against."""
        found: dict[str, list[NotGreaterThan | NotBefore]] = {}
        for rule in self.dataset.rules:
            if isinstance(rule, NotGreaterThan | NotBefore):
                found.setdefault(rule.column, []).append(rule)
        return found

    @functools.cached_property
    def _rules(self) -> dict[tuple[str | None, str], Any]:
        """The dataset's rules by the (column, check) their failures are reported under."""
        return {(rule.column, rule.name): rule for rule in reversed(self.dataset.rules)}

    def _described(self, column: str | None, check: str) -> str | None:
        """The check's words (the dataset's own, remembered: thousands of failures share them)."""
        key = (column, check)
        if key not in self._descriptions:
            self._descriptions[key] = self.dataset.describe_check(column=column, check=check)
        return self._descriptions[key]

    def _pandera_record(
        self,
        cells: dict[str, dict[int, Any]],
        quoted: dict[str, bool],
        row: int | None,
        index: int | None,
        column: str,
        check: str,
    ) -> ErrorRecord:
        """An error record for one of pandera's failures, its message naming the values."""
        if column not in self.position:  # a frame-level failure
            message = self._described(column, check) or check
            return ErrorRecord(row, None, check, None, message)
        value = None if index is None else _text(cells[column][index])
        rule = self._rules.get((column, check))
        shown = _shown(value, quoted=quoted[column])
        if isinstance(rule, NotGreaterThan | NotBefore) and index is not None:
            other = _text(cells[rule.other][index])
            relation = "more than" if isinstance(rule, NotGreaterThan) else "before"
            message = f"{column} {shown} is {relation} {rule.other} {other}"
        elif isinstance(rule, SubmittedBy):
            message = (
                f"{column} {shown} is not the submitting organisation's own code {self.org_code}"
            )
        elif isinstance(rule, InSubmissionPeriod):
            message = f"{column} {shown} is not in the submission's period {self.period}"
        elif check == "not_nullable":
            message = f"{column} is empty: it must have a value"
        else:
            described = self._described(column, check)
            message = f"{column} {shown} {described or f'fails the check {check}'}"
        return ErrorRecord(row, column, check, value, message)

    # -- the whole file --------------------------------------------------------

    def _check_whole_file(self, reader: ReturnReader, rows: int) -> None:
        """not_empty, key uniqueness across chunks, and rules that compare rows."""
        if rows == 0:
            self.errors.add(
                ErrorRecord(None, None, NotEmpty.name, None, "the file has no data rows")
            )
            return
        self._check_unique_key(reader.format)
        self._check_groups()

    def _check_unique_key(self, file_format: Format) -> None:
        """One error for each row whose key an earlier row already has."""
        repeated = self.keys.repeated()
        if repeated.is_empty():
            return
        if not self.keys.exact:
            repeated = self._key_values(repeated["row"], file_format)
        key = list(self.dataset.key)
        groups = repeated.group_by(key).agg(pl.col("row").sort().alias("rows"))
        later = (
            groups.with_columns(pl.col("rows").list.slice(1).alias("row"))
            .explode("row")
            .drop_nulls("row")
            .sort("row")
        )
        self.errors.count += later.height
        names = ",".join(key)
        for values in later.head(max(self.errors.room, 0)).iter_rows(named=True):
            texts = [_text(values[name]) or "" for name in key]
            described = ", ".join(f"{n} {v}" for n, v in zip(key, texts, strict=True))
            rows: list[int] = values["rows"]
            listed = _and([str(r) for r in rows[:_ROWS_LISTED]])
            more = f" and {len(rows) - _ROWS_LISTED} more" if len(rows) > _ROWS_LISTED else ""
            message = f"{described} appears {len(rows)} times: rows {listed}{more}"
            self.errors.records.append(
                ErrorRecord(values["row"], names, UNIQUE_KEY, ", ".join(texts), message)
            )

    def _key_values(self, rows: pl.Series, file_format: Format) -> pl.DataFrame:
        """The exact key of each of those rows, reading the file again (only on a hash match)."""
        wanted = np.sort(rows.to_numpy())
        parts: list[pl.DataFrame] = []
        with self._open(file_format) as reader:
            for chunk in reader.chunks():
                first, last = np.searchsorted(
                    wanted, [chunk.offset + 1, chunk.offset + 1 + len(chunk.frame)]
                )
                if first == last:
                    continue
                here = wanted[first:last]
                picked = chunk.frame.select(self.dataset.key)[here - chunk.offset - 1]
                parts.append(picked.with_columns(row=pl.Series(here)))
                if last == len(wanted):
                    break
        return pl.concat(parts)

    def _check_groups(self) -> None:
        """Rules that need every row of a group (all_values_present), on the kept columns."""
        if not self.group_parts:
            return
        kept = pl.concat(self.group_parts).with_row_index("row", offset=1)
        self.group_parts = []
        for rule in self.group_rules:
            passes = rule.expression(org_code=self.org_code, period=self.period)
            if passes is None:
                continue
            failing = kept.filter(~passes)
            if failing.is_empty():
                continue
            self.errors.count += failing.height
            present = failing.group_by(list(rule.per)).agg(pl.col(rule.column).unique())
            absent = {
                tuple(values[p] for p in rule.per): [
                    v for v in rule.values if v not in values[rule.column]
                ]
                for values in present.iter_rows(named=True)
            }
            for values in failing.head(max(self.errors.room, 0)).iter_rows(named=True):
                group = tuple(values[p] for p in rule.per)
                where = " and ".join(
                    f"{p} {_text(v)}" for p, v in zip(rule.per, group, strict=True)
                )
                missing = _and(absent[group])
                message = (
                    f"there is no row with {rule.column} {missing} for {where}:"
                    f" {rule.column} {rule.describe()}"
                )
                value = _text(values[rule.column])
                self.errors.records.append(
                    ErrorRecord(values["row"], rule.column, rule.name, value, message)
                )

    # -- the report ------------------------------------------------------------

    def _add_ragged(self, reader: ReturnReader, located: Sequence[RaggedRow]) -> None:
        """Errors for CSV rows with the wrong number of fields, at their rows in the file."""
        if located:
            # Other errors were numbered without the skipped rows; number them as in the file.
            skipped = [place.row for place in located if place.row is not None]
            self.errors.records = _renumbered(self.errors.records, skipped)
        width = reader.header_width
        # Where the second read could not find a row (it disagrees with pyarrow), say what
        # pyarrow saw, without a place.
        rows = list(located) + reader.ragged[len(located) :]
        for ragged in rows:
            where = f"line {ragged.line}" if ragged.line is not None else "a line"
            message = (
                f"{where} has {ragged.fields} fields but the header has {width}:"
                " look for an unquoted comma or a missing value"
            )
            value = ragged.text[:VALUE_CHARS]
            self.errors.add(ErrorRecord(ragged.row, None, "field_count", value, message))
        self.errors.count += max(reader.ragged_count - len(rows), 0)

    def _unreadable(self, error: FileError, *, file_format: Format | None) -> Report:
        """A file that could not be read: only the errors that say why."""
        return Report(
            status=SubmissionStatus.REJECTED,
            rows=error.rows,
            errors=list(error.errors),
            error_count=len(error.errors),
            format=file_format,
        )

    def _report(self, *, rows: int, file_format: Format, stopped: bool) -> Report:
        """The report: errors in order, and a last record if the list was cut."""
        records = sorted(self.errors.records, key=self._order)
        count = max(self.errors.count, len(records))
        unlisted = count - len(records)
        if stopped:
            more = f"at least {unlisted} more were found and not listed, and " if unlisted else ""
            records.append(
                ErrorRecord(
                    None,
                    None,
                    "max_errors",
                    None,
                    f"the report stops at {self.errors.cap} errors: {more}rows after row {rows}"
                    " were not checked",
                )
            )
        elif unlisted > 0:
            records.append(
                ErrorRecord(
                    None, None, "max_errors", None, f"and {unlisted} more errors not listed"
                )
            )
        return Report(
            status=SubmissionStatus.REJECTED if count else SubmissionStatus.ACCEPTED,
            rows=rows,
            errors=records,
            error_count=count,
            format=file_format,
        )

    def _order(self, record: ErrorRecord) -> tuple[int, int, int]:
        """File-level errors first, then by row and by the column's place in the dataset."""
        position = self.position.get(record.column or "", -1)
        return (0 if record.row is None else 1, record.row or 0, position)


@dataclass(slots=True)
class _Errors:
    """Error records up to the cap, and the count of every error found."""

    cap: int
    records: list[ErrorRecord] = field(default_factory=list)
    count: int = 0

    @property
    def room(self) -> int:
        """How many more records may be listed."""
        return self.cap - len(self.records)

    def add(self, record: ErrorRecord) -> None:
        """Count one error and list it while there is room."""
        self.count += 1
        if self.room > 0:
            self.records.append(record)


class _ReadAhead(Generic[_Item]):
    """Items (tables, chunks) made on a thread of their own while the previous one is used.

    pyarrow and polars release the GIL, so reading the next chunk overlaps validating this one.
    The thread makes its next item only once the previous one has been taken, so at most two are
    alive at each hand-over. The thread is stopped and joined on exit, before the file is closed.
    """

    def __init__(self, items: Iterator[_Item], *, name: str) -> None:
        self.items = items
        self.ready: queue.Queue[tuple[_Item | None, BaseException | None]] = queue.Queue()
        self.turn = threading.Semaphore(1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Iterator[_Item]:
        self.thread.start()
        return self._consume()

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()

    def _produce(self) -> None:
        try:
            while self._wait_turn():
                item = next(self.items, None)
                self.ready.put((item, None))
                if item is None:
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self.ready.put((None, error))

    def _wait_turn(self) -> bool:
        while not self.stopping.is_set():
            if self.turn.acquire(timeout=0.05):
                return True
        return False

    def _consume(self) -> Iterator[_Item]:
        while True:
            item, error = self.ready.get()
            if error is not None:
                raise error
            if item is None:
                return
            self.turn.release()  # make the next item while this one is used
            yield item


# ---------------------------------------------------------------------------
# Keys across the whole file
# ---------------------------------------------------------------------------


class _KeyIndex:
    """Every row's key, kept compactly, to find duplicates across all chunks.

    A single whole-number key is kept as it is (8 bytes a row). Other keys are kept as a 64-bit
    hash of their values; rows whose hashes match are then compared on their exact values.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.key = list(dataset.key)
        self.exact = len(self.key) == 1 and dataset.column(self.key[0]).dtype == "integer"
        self.parts: list[pl.Series] = []

    def add(self, frame: pl.DataFrame) -> None:
        """Keep the chunk's keys; a key with an empty part is left out (already an error)."""
        if self.exact:
            self.parts.append(frame.get_column(self.key[0]))
            return
        incomplete = pl.any_horizontal(pl.col(self.key).is_null())
        hashed = pl.struct(self.key).hash(seed=_KEY_HASH_SEED)
        self.parts.append(frame.select(pl.when(~incomplete).then(hashed)).to_series())

    def repeated(self) -> pl.DataFrame:
        """Rows (1-based) whose key or key hash another row has: ``row``, and the key if exact."""
        if not self.parts:
            return pl.DataFrame(schema={"row": pl.Int64})
        keys = pl.concat(self.parts, rechunk=False)
        self.parts = []
        present = keys.drop_nulls()
        if present.n_unique() == len(present):
            return pl.DataFrame(schema={"row": pl.Int64})  # the usual case, found cheaply
        column = self.key[0] if self.exact else "hash"
        found = (
            pl.DataFrame({column: keys})
            .with_row_index("row", offset=1)
            .filter(pl.col(column).is_not_null() & pl.col(column).is_duplicated())
            .with_columns(pl.col("row").cast(pl.Int64))
        )
        return found if self.exact else found.select("row")


# ---------------------------------------------------------------------------
# Pandera
# ---------------------------------------------------------------------------


# Checked once over the whole file at the end, not chunk by chunk.
_WHOLE_FILE = frozenset({UNIQUE_KEY, NotEmpty.name, AllValuesPresent.name})


def _chunk_schema(dataset: Dataset, *, org_code: str, period: str) -> pa.DataFrameSchema:
    """The dataset's schema without the checks that need the whole file (checked at the end)."""
    schema = pandera_schema(dataset, org_code=org_code, period=period)
    schema = schema.update_columns(
        {
            name: {"checks": [check for check in column.checks if check.name not in _WHOLE_FILE]}
            for name, column in schema.columns.items()
        }
    )
    schema.checks = [check for check in schema.checks if check.name not in _WHOLE_FILE]
    return schema


class _Shortcut:
    """The chunk schema's checks in one polars pass: a chunk that passes them all skips pandera,
    and a chunk that fails gets pandera's failure cases from the same expressions.

    Most chunks of most returns are clean; pandera's value is its failure report. So a chunk whose
    columns and types are the dataset's, with no empty cell in a column that needs a value and
    every check true on every row, passes without pandera. A chunk that fails is described here
    too, exactly as pandera's polars backend would (``failures``): each check is the same
    expression pandera evaluates, a null result passes (pandera's ``ignore_na``), an empty cell
    (or NaN) in a column that needs a value is ``not_nullable``, and the cases come column by
    column, in pandera's order. pandera itself is asked only for a chunk whose columns or types
    are not the dataset's (never, once converted), so a rejected file costs about what an
    accepted one does.
    """

    def __init__(self, dataset: Dataset, *, org_code: str, period: str) -> None:
        self.schema = pl.Schema(dataset.polars_schema())
        checks = [
            check
            for check in compiled_checks(dataset, org_code=org_code, period=period)
            if check.name not in _WHOLE_FILE
        ]
        # (column, check, true where a row fails), per column in the schema's order: its
        # emptiness first, then its checks and the rules reported against it, as pandera runs them.
        self.failing: list[tuple[str, str, pl.Expr]] = []
        for column in dataset.columns:
            if not column.nullable:
                self.failing.append((column.name, "not_nullable", _empty(column.name, column)))
            self.failing.extend(
                (column.name, check.name, check.expression.not_().fill_null(False))
                for check in checks
                if check.column == column.name
            )
        frame_checks = [check for check in checks if check.column is None]
        self.tests = [
            *((~empty).all() for _, name, empty in self.failing if name == "not_nullable"),
            *(c.expression.fill_null(False).all() for c in checks),
        ]
        self.describes_all = not frame_checks

    def passes(self, frame: pl.DataFrame) -> bool:
        """True if pandera would find nothing wrong with the chunk."""
        if frame.schema != self.schema:
            return False
        results = frame.select(test.alias(f"t{i}") for i, test in enumerate(self.tests))
        return all(results.row(0))

    def failures(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        """pandera's failure cases for the chunk (``index``, ``column``, ``check``), or None if
        only pandera can say (the chunk's columns or types are not the dataset's)."""
        if frame.schema != self.schema or not self.describes_all:
            return None
        masks = frame.select(
            expression.alias(f"f{i}") for i, (_, _, expression) in enumerate(self.failing)
        )
        parts = [
            pl.DataFrame(
                {"index": rows.cast(pl.Int64), "column": column, "check": check},
                schema=_FAILURE_SCHEMA,
            )
            for i, (column, check, _) in enumerate(self.failing)
            if (rows := masks.get_column(f"f{i}").arg_true()).len()
        ]
        return pl.concat(parts) if parts else pl.DataFrame(schema=_FAILURE_SCHEMA)


_FAILURE_SCHEMA = {"index": pl.Int64, "column": pl.String, "check": pl.String}


def _empty(name: str, column: Any) -> pl.Expr:
    """True where a cell that needs a value has none (NaN counts as none, as in pandera)."""
    empty = pl.col(name).is_null()
    if column.polars_dtype in (pl.Float32, pl.Float64):
        empty = empty | pl.col(name).is_nan().fill_null(False)
    return empty


def _pandera_failures(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """pandera's failure cases for the chunk: ``index``, ``column``, ``check`` (empty if none)."""
    # A collected DataFrame, not a LazyFrame: pandera checks a LazyFrame's names and types only.
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases: pl.DataFrame = errors.failure_cases
        return cases.select(
            pl.col("index").cast(pl.Int64), pl.col("column").cast(pl.String), "check"
        )
    return pl.DataFrame(schema={"index": pl.Int64, "column": pl.String, "check": pl.String})


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


class _ParquetOutput:
    """Validated rows written chunk by chunk to a partial file, renamed into place on acceptance.

    Writing (encoding and zstd) runs on a thread of its own while the next chunk is read and
    checked; pyarrow releases the GIL. One write at most is pending, so memory stays bounded.
    """

    def __init__(self, write_to: Path, dataset: Dataset) -> None:
        self.write_to = write_to
        self.partial = write_to.with_name(write_to.name + ".partial")
        empty = pl.DataFrame(schema=dataset.polars_schema())
        self.schema = empty.to_arrow(compat_level=pl.CompatLevel.newest()).schema
        self.text_columns = [c.name for c in dataset.columns if c.dtype == "string"]
        self.other_columns = [c.name for c in dataset.columns if c.dtype != "string"]
        self.writer: pq.ParquetWriter | None = None
        self.pending: Future[None] | None = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drb-parquet")
        self.discarded = False
        # A file to keep as it is instead of writing the rows (keep_source), while every chunk
        # is exactly its rows; once one is not, the rows are written at commit (``rewrite``).
        self.source: Path | None = None
        self.rewrite = False

    @functools.cached_property
    def read_back_schema(self) -> arrow.Schema:
        """The columns of a file this output writes, as pyarrow reads them back."""
        buffer = io.BytesIO()
        with self._writer(buffer):
            pass
        return pq.read_schema(arrow.BufferReader(buffer.getvalue())).remove_metadata()

    def keep_source(self, source: Path) -> None:
        """Keep ``source`` (Parquet that reads as ``read_back_schema``) rather than writing the
        rows, unless a chunk written later is not exactly its rows."""
        self.source = source

    def write(self, frame: pl.DataFrame, *, as_stored: bool = False) -> None:
        """Append the chunk as one row group (in the background)."""
        if self.discarded:
            return
        if self.source is not None:
            if as_stored:
                return  # the source file holds these rows already
            self.source = None  # a converted value: the rows are written after all, at commit
            self.rewrite = True
            return
        if self.rewrite:
            return
        self._wait()
        if self.writer is None:
            self.writer = self._open()
        self.pending = self.thread.submit(_write_row_group, self.writer, frame)

    def commit(self, *, again: Callable[[], Iterable[pl.DataFrame]]) -> None:
        """Move the finished file to ``write_to`` (an empty file of the right schema if no rows):
        the kept source file itself, or the rows written, ``again`` giving them once more when
        keeping the source was given up."""
        self._wait()
        if self.source is not None:
            self.thread.shutdown()
            self.write_to.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(self.source, self.partial)
            os.replace(self.partial, self.write_to)
            return
        if self.rewrite:
            self.rewrite = False
            for frame in again():
                self.write(frame)
            self._wait()
        writer = self.writer or self._open()
        writer.close()
        self.writer = None
        self.thread.shutdown()
        os.replace(self.partial, self.write_to)

    def discard(self) -> None:
        """Stop writing and leave nothing at ``write_to``."""
        self.discarded = True
        with suppress(Exception):
            self._wait()
        if self.writer is not None:
            with suppress(Exception):
                self.writer.close()
            self.writer = None
        self.thread.shutdown()
        self.partial.unlink(missing_ok=True)
        self.write_to.unlink(missing_ok=True)

    def _open(self) -> pq.ParquetWriter:
        self.write_to.parent.mkdir(parents=True, exist_ok=True)
        return self._writer(self.partial)

    def _writer(self, where: Path | io.BytesIO) -> pq.ParquetWriter:
        # Dictionary encoding pays for codes (text columns: a few distinct values) but not for
        # ids, times and counts: limited to text it writes 1M ECDS rows a third faster, and smaller.
        # Min/max statistics are kept where they help a reader skip row groups (numbers, times);
        # on codes they cost 15% of the writing and skip nothing, a file being one trust's month.
        # Text goes to pyarrow as polars holds it (string views, no copy) and is stored as plain
        # Parquet UTF-8; without the Arrow schema in the file, every reader reads it as string.
        return pq.ParquetWriter(
            where,
            self.schema,
            compression="zstd",
            use_dictionary=self.text_columns,
            write_statistics=self.other_columns,
            store_schema=False,
        )

    def _wait(self) -> None:
        """Wait for the pending write; its error, if any, is raised here."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a second name of ``source`` (a copy across file systems)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_row_group(writer: pq.ParquetWriter, frame: pl.DataFrame) -> None:
    """Write the chunk through pyarrow (on the writer's thread)."""
    writer.write_table(frame.to_arrow(compat_level=pl.CompatLevel.newest()))


# ---------------------------------------------------------------------------
# Wording
# ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A cell as a person would write it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:VALUE_CHARS]


def _shown(value: str | None, *, quoted: bool) -> str:
    """A value inside a sentence: text in quotes, numbers and times as they are."""
    if value is None:
        return "(empty)"
    return f"'{value}'" if quoted else value


def _and(words: Sequence[str]) -> str:
    """a, b and c."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _renumbered(records: list[ErrorRecord], skipped: Sequence[int]) -> list[ErrorRecord]:
    """Records numbered by rows read, renumbered as rows of the file (skipped rows counted)."""
    # The i-th skipped row (0-based) is file row skipped[i]; a read row r comes after it when
    # r >= skipped[i] - i, so its file row is r plus the number of such skipped rows.
    thresholds = np.asarray(sorted(skipped), dtype=np.int64) - np.arange(len(skipped))
    renumbered = []
    for record in records:
        if record.row is None:
            renumbered.append(record)
            continue
        shift = int(np.searchsorted(thresholds, record.row, side="right"))
        renumbered.append(replace(record, row=record.row + shift))
    return renumbered
