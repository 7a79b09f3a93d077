"""Benchmark: region and national indicator charts over 20 fully held years (issue 22, SPC).

    .venv/bin/python bench/spc_values.py [--backends sqlite,postgresql]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:55432] [--years 20] [--repeat 5]

For each backend it makes an empty database (SQLite in a temporary directory; on PostgreSQL a
database ``drb_bench_values_<pid>`` created on ``--postgres-url`` and dropped at the end), migrates
it, and writes in bulk every English trust of the demo's ODS list (207) and an accepted A&E
monthly return (``ae_monthly``, revision 1) of each for every month of ``--years`` years to
2025-12: a ``submissions`` row each and its Parquet file in the store (a hard link to one file
per month, so that 50,000 returns take seconds to write; no item_values rows, as for returns
accepted before migration 0012).

Then, for ``ae_attendances`` over the whole span, national and one region (Y56, London):

- the peer, in the same run: the chart's values as read before item_values (the plan's sources,
  one Parquet file per (trust, month) read through ``extract_data``), ``--repeat`` times;
- the first read after the migration, which computes the values from the files and keeps them
  (once);
- ``indicators.monthly_series`` from item_values, ``--repeat`` times, its values compared with the
  peer's (they must be equal);
- ``GET /v1/indicators/ae_attendances/spc`` in process (the app, authentication, auditing and the
  chart), as an auditor, ``--repeat`` times.

Prints a Markdown table for docs/benchmarks.md. Not a test: it asserts only that the values
equal the peer's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import polars as pl  # noqa: E402
from auditor_scale import postgres_database, trusts  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import delete, func, insert, select  # noqa: E402

import schemas  # noqa: E402
from services.broker.app import create_app  # noqa: E402
from services.catalogue import extracts, indicators, store  # noqa: E402
from services.catalogue.db import build_engine, session_factory, session_scope  # noqa: E402
from services.catalogue.models import ItemValue, Organisation, Submission, new_id  # noqa: E402
from services.catalogue.periods import month_label  # noqa: E402
from services.catalogue.runtime import Runtime, boot  # noqa: E402
from services.catalogue.settings import Settings  # noqa: E402
from services.catalogue.states import OrgKind, SubmissionStatus  # noqa: E402
from tests.api_calls import bearer, register_organisation  # noqa: E402
from tests.databases import migrate_database  # noqa: E402
from tests.schema_samples import ae_monthly_sample  # noqa: E402

ITEM = "ae_attendances"
LAST_MONTH = 2025 * 12 + 11  # December 2025
ADMIN = "bench-spc-values-admin-token-0123456789"


def build(settings: Settings, years: int) -> int:
    """Every trust's A&E return for every month of ``years`` years: how many were written."""
    months = range(LAST_MONTH - 12 * years + 1, LAST_MONTH + 1)
    samples = settings.data_dir / "samples"
    samples.mkdir(parents=True)
    by_month: dict[str, Path] = {}
    for n, month in enumerate(months):
        label = month_label(month)
        frame = ae_monthly_sample(period=label)
        frame = frame.with_columns(pl.col("attendances") + (n * 37) % 500)
        by_month[label] = samples / f"{label}.parquet"
        frame.write_parquet(by_month[label])
    version = schemas.DATASETS["ae_monthly"].version
    listed = trusts()
    rows: list[dict[str, Any]] = []
    for code, _name, _region in listed:
        for label, sample in by_month.items():
            target = store.partition_path(
                settings, dataset="ae_monthly", period=label, org_code=code, revision=1
            )
            target.parent.mkdir(parents=True)
            os.link(sample, target)
            rows.append(
                {
                    "id": new_id(),
                    "org_code": code,
                    "dataset_code": "ae_monthly",
                    "dataset_version": version,
                    "period": label,
                    "status": SubmissionStatus.ACCEPTED,
                    "filename": "return.parquet",
                    "size_bytes": sample.stat().st_size,
                    "sha256": f"{code}{label}".ljust(64, "0"),
                    "format": "parquet",
                    "rows": 3,
                    "error_count": 0,
                    "revision": 1,
                    "data_path": store.relative(settings, target),
                }
            )
    engine = build_engine(settings.database_url or "")
    with session_scope(session_factory(engine)) as session:
        session.execute(
            insert(Organisation),
            [
                {"code": code, "name": name, "kind": OrgKind.TRUST, "region": region}
                for code, name, region in listed
            ],
        )
        for start in range(0, len(rows), 2000):
            session.execute(insert(Submission), rows[start : start + 2000])
    engine.dispose()
    return len(rows)


def parquet_values(runtime: Runtime, trusts_of: tuple[str, ...], first: int, last: int) -> Any:
    """The peer: the chart's values as monthly_series read them before item_values."""
    with runtime.factory() as session:
        found = extracts.plan(
            session=session,
            settings=runtime.settings,
            org_codes=list(trusts_of),
            months=list(range(first, last + 1)),
            items=[ITEM],
        )
    frame = (
        indicators._by_trust_and_month(found.sources, ITEM)
        .group_by("month")
        .agg(pl.col(ITEM).sum())
        .sort("month")
        .collect()
    )
    return {month: float(value) for month, value in frame.iter_rows()}


def table_values(runtime: Runtime, trusts_of: tuple[str, ...], first: int, last: int) -> Any:
    """The chart's values as monthly_series reads them now (and keeps, on a first read)."""
    scope = indicators.Scope(org_level="national", org_codes=trusts_of)
    with session_scope(runtime.factory) as session:
        series = indicators.monthly_series(
            session=session,
            settings=runtime.settings,
            item=ITEM,
            scope=scope,
            first=first,
            last=last,
        )
    return {p.period: p.value for p in series.points}


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and slowest wall time in ms over ``repeat`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), result


def run(backend: str, args: argparse.Namespace) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory(prefix="drb-bench-values-") as tmp:
        data_dir = Path(tmp)
        name = f"drb_bench_values_{os.getpid()}"
        url = (
            postgres_database(args.postgres_url, name, drop=False)
            if backend == "postgresql"
            else f"sqlite:///{data_dir / 'broker.sqlite3'}"
        )
        try:
            settings = Settings(
                data_dir=data_dir, database_url=url, redis_url=None, admin_token=ADMIN
            )
            migrate_database(url)
            started = time.perf_counter()
            returns = build(settings, args.years)
            print(f"{backend}: {returns} returns written in {time.perf_counter() - started:.0f} s")
            runtime = boot(settings)
            client = TestClient(create_app(runtime))
            auditor = register_organisation(client, bearer(ADMIN), "NAO", OrgKind.AUDITOR)
            first, last = LAST_MONTH - 12 * args.years + 1, LAST_MONTH
            span = f"{month_label(first)} to {month_label(last)}"
            with runtime.factory() as session:
                everyone = indicators._trusts_of(session, "national", "national")
                london = indicators._trusts_of(session, "region", "Y56")
            for org_code, trusts_of in (("national", everyone), ("Y56", london)):
                cells = f"{len(trusts_of)} trusts x {last - first + 1} months"
                p50, worst, peer = timed(
                    lambda t=trusts_of: parquet_values(runtime, t, first, last), args.repeat
                )
                lines.append(
                    f"| {backend} | {org_code}, {span} ({cells}) | Parquet, one file per"
                    f" (trust, month) (before; the peer) | {p50:.0f} ms | {worst:.0f} ms |"
                )
                once, _, kept = timed(lambda t=trusts_of: table_values(runtime, t, first, last), 1)
                lines.append(
                    f"| {backend} | {org_code} | first read after migration 0012 (computes"
                    f" and keeps the values) | {once:.0f} ms | |"
                )
                p50, worst, read = timed(
                    lambda t=trusts_of: table_values(runtime, t, first, last), args.repeat
                )
                assert read == peer == kept, "the values kept differ from the files'"
                lines.append(
                    f"| {backend} | {org_code} | `monthly_series` from item_values"
                    f" | {p50:.0f} ms | {worst:.0f} ms |"
                )
                query = {
                    "org_code": org_code,
                    "period_start": month_label(first),
                    "period_end": month_label(last),
                }
                p50, worst, answer = timed(
                    lambda q=query: client.get(
                        f"/v1/indicators/{ITEM}/spc", headers=auditor, params=q
                    ),
                    args.repeat,
                )
                assert answer.status_code == 200, answer.text
                assert len(answer.json()["points"]) == last - first + 1
                lines.append(
                    f"| {backend} | {org_code} | `GET /v1/indicators/{ITEM}/spc` (auditor;"
                    f" auth, audit, chart) | {p50:.0f} ms | {worst:.0f} ms |"
                )
                if org_code == "national":
                    # The region's first read is timed from an empty table too.
                    with session_scope(runtime.factory) as session:
                        kept_rows = session.scalar(select(func.count()).select_from(ItemValue))
                        session.execute(delete(ItemValue))
                    print(f"{backend}: {kept_rows} item values kept by the national read")
            runtime.close()
        finally:
            if backend == "postgresql":
                postgres_database(args.postgres_url, name, drop=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:55432")
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lines = []
    for backend in args.backends.split(","):
        lines.extend(run(backend, args))
    print("| backend | chart of ae_attendances | read | p50 | slowest |")
    print("|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
