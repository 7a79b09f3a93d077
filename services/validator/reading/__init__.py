"""Reading a submitted return: its format, its header, then its rows as typed chunks.

Formats are recognised by content, never by name: Parquet (``PAR1`` at both ends), XLSX (a ZIP
holding ``[Content_Types].xml`` and ``xl/workbook.xml``), otherwise CSV text. Every format is
read in chunks of ``chunk_rows`` rows and every value is converted with polars, column by column:

- whole numbers: digits with an optional sign (``12``, ``-3``, ``+7``; ``12.0`` too, as Excel and
  pandas write whole numbers); not ``1.5``, ``1e3`` or ``12,345``; at most 2^63 - 1;
- true or false: ``true``/``false``, ``1``/``0``, ``yes``/``no`` in any letter case;
- dates and times: ``YYYY-MM-DD HH:MM``, ``YYYY-MM-DD HH:MM:SS`` or with a fraction of a second,
  with a space or ``T`` between date and time, local time with no time zone;
- ``period``: ``YYYY-MM``, ``YYYY-MM-01`` or the first of the month as a date (an Excel date
  cell, a Parquet date or midnight timestamp) becomes ``YYYY-MM``; anything else is left as it is
  for the schema's pattern and period checks to report;
- an empty cell is null (the schema then says the value must not be empty).

Parquet columns of other types are converted where the meaning is certain (any integer type to
whole numbers, integral floats, 0/1 to booleans, dates to timestamps, anything to text). Times
with a time zone are refused: the datasets hold local clock times, and turning an aware time into
naive UTC would move summer times by an hour and could move an arrival into another month.

The package, by job:

- ``records``: what reading yields (``Chunk``, ``RaggedRow``) and its errors (``ErrorRecord``,
  ``FileError``);
- ``sniffing``: the format from the content (``detect_format``);
- ``sources``, ``csv_source``, ``parquet_source``, ``xlsx_source``: each format's header and
  rows as Arrow tables, and the limits that refuse a hostile file before it is read;
  ``xlsx_declared`` (every size a workbook's XML declares, checked in bounded memory) and
  ``xlsx_child`` (the XLSX reader's own process, with a memory limit);
- ``header``: which file column is each dataset column (``match_header``);
- ``conversion``: values to the dataset's types (``cast_table``, ``convert``);
- ``reader``: ``ReturnReader``, the chunks of a return whatever its format.
"""

from __future__ import annotations

from services.validator.reading.conversion import convert
from services.validator.reading.csv_source import first_invalid_utf8, locate_ragged
from services.validator.reading.header import match_header
from services.validator.reading.parquet_source import PARQUET_MAX_ROW_GROUPS, check_parquet_limits
from services.validator.reading.reader import ReturnReader
from services.validator.reading.records import ErrorRecord, FileError
from services.validator.reading.sniffing import detect_format
from services.validator.reading.sources import MAX_COLUMNS
from services.validator.reading.xlsx_source import check_xlsx_limits

__all__ = [
    "MAX_COLUMNS",
    "PARQUET_MAX_ROW_GROUPS",
    "ErrorRecord",
    "FileError",
    "ReturnReader",
    "check_parquet_limits",
    "check_xlsx_limits",
    "convert",
    "detect_format",
    "first_invalid_utf8",
    "locate_ragged",
    "match_header",
]
