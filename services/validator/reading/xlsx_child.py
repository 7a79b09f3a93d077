"""The XLSX reader's own process: ``python -I xlsx_child.py WORKBOOK ARROW_FILE MEMORY_BYTES``.

calamine, fastexcel's reader, aborts the process when an allocation fails, and no ``except`` can
catch an abort. It therefore runs here, in a child process whose address space is limited to
MEMORY_BYTES, so that a workbook the checks of ``xlsx_declared`` did not foresee ends this
process, never the worker or the API. The first sheet is written, every cell as text, to
ARROW_FILE (Arrow IPC), which the parent maps rather than copies.

This file is run as a script and imports nothing of the broker: starting it costs one Python
with pyarrow and fastexcel, not the whole validator. Exit codes are in ``EXIT_*``.
"""

from __future__ import annotations

import resource
import sys

EXIT_READ = 0
EXIT_UNREADABLE = 2  # the workbook is damaged: the reader's message is on stdout
EXIT_MEMORY = 3  # a MemoryError (an allocation refused without an abort)


def main(argv: list[str]) -> int:
    source, destination, memory = argv[1], argv[2], int(argv[3])
    # Before anything is imported: the limit holds for the libraries' arenas too.
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        import fastexcel
        import pyarrow as pa

        try:
            sheet = fastexcel.read_excel(source).load_sheet(
                0, header_row=None, dtypes="string", skip_whitespace_tail_rows=True
            )
            batch = sheet.to_arrow()
        except MemoryError:
            raise
        except Exception as error:  # fastexcel raises its own error types for damaged workbooks
            sys.stdout.write(str(error)[:2000])
            return EXIT_UNREADABLE
        with pa.OSFile(destination, "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
    except MemoryError:
        return EXIT_MEMORY
    return EXIT_READ


if __name__ == "__main__":
    sys.exit(main(sys.argv))
