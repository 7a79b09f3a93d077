"""Sources: a file's header and its data rows as Arrow tables, one kind per format."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa

from schemas.model import Column

# More columns than this cannot be a return of any dataset; it bounds the CSV reader's type map.
MAX_COLUMNS = 1_000

# ---------------------------------------------------------------------------
# Sources: a header and raw Arrow batches, one per format
# ---------------------------------------------------------------------------


_COUNT_ROWS = 65_536  # rows a table when a refused file's rows are counted


class Source:
    """A file's header names and its data rows as Arrow tables, in file column order."""

    header: list[str]

    def tables(self, rows: int) -> Iterator[pa.Table]:
        """Data rows in tables of ``rows`` rows (the last may be shorter)."""
        raise NotImplementedError

    def check_types(self, positions: Sequence[int], columns: Sequence[Column]) -> None:
        """FileError if a column's stored type cannot hold the dataset's type."""

    def count_rows(self) -> int:
        """The data rows (read through to the end: only for a file that is refused)."""
        return sum(table.num_rows for table in self.tables(_COUNT_ROWS))

    def close(self) -> None:
        """Release the file."""


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The same rows regrouped into tables of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)
