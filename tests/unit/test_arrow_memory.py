"""The process's Arrow memory pool."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from services.catalogue.arrow_memory import configure_arrow_memory


@pytest.fixture(autouse=True)
def restore_pool() -> Iterator[None]:
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


def test_jemalloc_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    pa.set_memory_pool(pa.system_memory_pool())
    assert configure_arrow_memory() == "jemalloc"
    assert pa.default_memory_pool().backend_name == "jemalloc"


def test_an_operators_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    pa.set_memory_pool(pa.system_memory_pool())
    assert configure_arrow_memory() == "system"
