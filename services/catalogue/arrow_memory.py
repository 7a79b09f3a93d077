"""The process's Arrow memory pool: jemalloc, which returns freed memory to the system promptly.

pyarrow's default pool (mimalloc in current wheels) keeps freed pages for reuse, so a worker that
streams a large return through many short-lived chunks grows well past what it holds at any
moment: 1M ECDS rows peaked 240 MiB above idle with mimalloc and 165 MiB with jemalloc, at the
same speed (bench/submission_pipeline.py). An operator's ARROW_DEFAULT_MEMORY_POOL is respected.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa


def configure_arrow_memory() -> str:
    """Use jemalloc for Arrow unless the environment chose a pool; the pool's name in use."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        # A pyarrow built without jemalloc keeps its default.
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    name: str = pa.default_memory_pool().backend_name
    return name
