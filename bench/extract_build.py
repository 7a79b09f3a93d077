"""Building a large extract from the Parquet store, against DuckDB's ``COPY ... TO`` (issue 5).

Run: .venv/bin/python bench/extract_build.py [--layout 1000x10000 ...] [--repeat 3] [--keep]

For each layout FILESxROWS it synthesises, under /tmp, a store of FILES accepted ``ae_monthly``
returns for one month (one per trust, in the store's layout
``store/dataset=ae_monthly/period=2025-01/org=CODE/rev=1.parquet``, the validator's column types
and zstd Parquet), ROWS rows each. Real returns have 3 rows; 10,000,000 rows of them would be
3.3 million files, so the 10-million-row layouts use fewer, larger files (their key is then not
unique, which nothing here relies on); the 3-row layout shows what the number of files costs.

It then builds the extract of a trust x month request for every trust (items ae_attendances,
ae_breaches, ae_admissions by department_type) in fresh processes, round robin, ``--repeat``
times each, and reports the median wall time of the work (imports and interpreter start
excluded), its CPU time (every thread; steadier than wall time when others load the machine) and
the peak RSS of the process (VmHWM of /proc/self/status at the end of the work):

- ``product``: ``extract_data.write(shape_rows(monthly_rows(sources, shape), shape), ...)``, as
  ``extracts._build`` calls it (sha256 of the file included; its share is reported);
- ``duckdb``, ``duckdb-1-thread``: ``COPY (SELECT ... FROM read_parquet([...], filename=true)
  JOIN sources USING (filename) ORDER BY org_code, department_type) TO ... (FORMAT parquet,
  COMPRESSION zstd)``, the same rows and columns: org code and submission id come from a small
  VALUES table of the plan's sources, as the product takes them from ``Source``; default threads
  (the number of cores) and ``SET threads=1``;
- ``polars-floor``: ``pl.scan_parquet(files).select(...).sink_parquet(...)``: reading and
  writing only (no per-file submission id, no sort), a floor, not an equivalent;
- ``prototype-scan``: ``monthly_rows`` rewritten as one ``scan_parquet`` over the files with
  ``include_file_paths`` joined to a frame of (path -> org, month, submission id), then the
  product's own ``shape_rows`` and ``write``;
- ``prototype-batched``: the same scan and join, by batches of files in org-code order of at
  most ``--batch-rows`` rows (from the submissions' row counts), each sorted and appended to one
  Parquet file: the product's row order with memory bounded by the batch, not the extract.

Checks that every equivalent variant wrote the same rows (counts and sums per org, submission,
department type) sorted by org_code, department_type, and prints Markdown tables with the size
of the data (rows, bytes in the store, the full result as Arrow) to judge "memory bounded".
Not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

DATASET = "ae_monthly"
MONTH = "2025-01"
ITEMS = ("ae_attendances", "ae_breaches", "ae_admissions")
KEY = ("department_type",)
VARIANTS = (
    "product",
    "duckdb",
    "duckdb-1-thread",
    "polars-floor",
    "prototype-scan",
    "prototype-batched",
)
EQUIVALENT = ("product", "duckdb", "duckdb-1-thread", "prototype-scan", "prototype-batched")
_SAME = "every equivalent variant wrote the same rows, sorted"
DEFAULT_LAYOUTS = ("1000x10000", "20000x3")


# ---------------------------------------------------------------------------
# The synthetic store
# ---------------------------------------------------------------------------


def _org_code(index: int) -> str:
    """R followed by 4 base-36 digits: a valid, distinct ODS-like code for up to 1.6M trusts."""
    return "R" + np.base_repr(index, 36).rjust(4, "0")


def build_store(root: Path, files: int, rows: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Write the store's files and return the plan's sources (org, month, submission, path)."""
    import schemas

    dataset = schemas.get_dataset(DATASET)
    # As the validator writes them: polars types at the oldest compat level, zstd.
    schema = (
        pl.DataFrame(schema=dataset.polars_schema())
        .to_arrow(compat_level=pl.CompatLevel.oldest())
        .schema
    )
    rng = np.random.default_rng(seed)
    department = pa.array(np.array(["1", "2", "other"])[np.arange(rows) % 3], pa.large_string())
    period = pa.array([MONTH] * rows, pa.large_string())
    sources = []
    for index in range(files):
        org = _org_code(index)
        attendances = rng.integers(0, 20_000, rows)
        table = pa.table(
            {
                "period": period,
                "org_code": pa.array([org] * rows, pa.large_string()),
                "department_type": department,
                "attendances": attendances,
                "breaches": attendances // 4,
                "admissions": attendances // 3,
            },
            schema=schema,
        )
        path = root / f"dataset={DATASET}" / f"period={MONTH}" / f"org={org}" / "rev=1.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        submission = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64, version=4))
        sources.append(
            {
                "org_code": org,
                "month": MONTH,
                "submission_id": submission,
                "path": str(path),
                "rows": rows,  # Submission.rows, which the plan could carry
            }
        )
    rng.shuffle(sources)  # the plan lists the request's trusts in no particular order
    return sources


# ---------------------------------------------------------------------------
# The variants (each runs in a child process)
# ---------------------------------------------------------------------------


def _shape() -> Any:
    from services.catalogue import extract_data

    return extract_data.Shape(
        items=ITEMS,
        key=KEY,
        period_label=MONTH,
        period_type="month",
        org_level="trust",
        regions={},
    )


def _product_sources(manifest: list[dict[str, Any]]) -> list[Any]:
    from services.catalogue import extract_data

    return [
        extract_data.Source(
            org_code=s["org_code"],
            month=s["month"],
            dataset=DATASET,
            submission_id=s["submission_id"],
            path=Path(s["path"]),
            items=ITEMS,
            derived=False,
        )
        for s in manifest
    ]


def _metadata() -> dict[str, str]:
    from services.catalogue import extract_data

    return extract_data.metadata_for(
        request_id="bench", revision=1, period=MONTH, items=ITEMS, versions={DATASET: 1}
    )


def _sha256_seconds(target: Path) -> float:
    """What write()'s hashing of the finished file costs (page cache warm, as in write())."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return time.perf_counter() - started


def run_product(manifest: list[dict[str, Any]], target: Path) -> dict[str, Any]:
    """The product path, as extracts._build calls it."""
    from services.catalogue import extract_data

    started = time.perf_counter()
    shape = _shape()
    frame = extract_data.shape_rows(
        extract_data.monthly_rows(_product_sources(manifest), shape), shape
    )
    planned = time.perf_counter()
    built = extract_data.write(frame, target, metadata=_metadata())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "plan_seconds": planned - started,
        "hash_seconds": _sha256_seconds(target),
        "rows": built.rows,
    }


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def run_duckdb(manifest: list[dict[str, Any]], target: Path, threads: int | None) -> dict[str, Any]:
    """COPY ... TO of the same selection, ordered as the product orders it."""
    import duckdb

    started = time.perf_counter()
    connection = duckdb.connect()
    if threads is not None:
        connection.execute(f"SET threads={threads}")
    values = ", ".join(
        f"('{_quoted(s['path'])}', '{s['org_code']}', '{s['submission_id']}')" for s in manifest
    )
    connection.execute(
        "CREATE TEMP TABLE sources (filename VARCHAR, org_code VARCHAR, submission_id VARCHAR)"
    )
    connection.execute(f"INSERT INTO sources VALUES {values}")
    files = "[" + ", ".join(f"'{_quoted(s['path'])}'" for s in manifest) + "]"
    connection.execute(
        f"""
        COPY (
            SELECT s.org_code, '{MONTH}' AS period, d.department_type,
                   d.attendances AS ae_attendances, d.breaches AS ae_breaches,
                   d.admissions AS ae_admissions, s.submission_id AS source_submission_id,
                   false AS derived
            FROM read_parquet({files}, filename=true) AS d JOIN sources AS s USING (filename)
            ORDER BY s.org_code, d.department_type
        ) TO '{target}' (FORMAT parquet, COMPRESSION zstd)
        """
    )
    seconds = time.perf_counter() - started
    used = connection.execute("SELECT current_setting('threads')").fetchone()
    return {
        "seconds": seconds,
        "rows": pq.read_metadata(target).num_rows,
        "threads": used[0] if used else None,
    }


def run_polars_floor(manifest: list[dict[str, Any]], target: Path) -> dict[str, Any]:
    """Read and write only: one scan, renamed columns, constants, no provenance, no sort."""
    started = time.perf_counter()
    (
        pl.scan_parquet([s["path"] for s in manifest])
        .select(
            "org_code",
            pl.lit(MONTH).alias("period"),
            "department_type",
            pl.col("attendances").alias("ae_attendances"),
            pl.col("breaches").alias("ae_breaches"),
            pl.col("admissions").alias("ae_admissions"),
            pl.lit(manifest[0]["submission_id"]).alias("source_submission_id"),
            pl.lit(False).alias("derived"),
        )
        .sink_parquet(target, compression="zstd")
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": pq.read_metadata(target).num_rows}


def _scanned(manifest: list[dict[str, Any]]) -> pl.LazyFrame:
    """Prototype monthly_rows for returns (not derived) of one dataset: one scan and a join.

    The (path -> org, month, submission) frame is as small as the plan; the files' own columns
    are read once, in one multi-file scan, instead of one scan node per file.
    """
    import schemas

    columns = schemas.get_dataset(DATASET).items
    sources = pl.LazyFrame(
        {
            "path": [s["path"] for s in manifest],
            "org_code": [s["org_code"] for s in manifest],
            "month": [s["month"] for s in manifest],
            "source_submission_id": [s["submission_id"] for s in manifest],
        }
    )
    return (
        pl.scan_parquet([s["path"] for s in manifest], include_file_paths="path")
        .select("path", *KEY, *(pl.col(columns[i]).alias(i) for i in ITEMS))
        .join(sources, on="path", how="inner")
        .drop("path")
        .with_columns(pl.lit(False).alias("derived"))
    )


def run_prototype_scan(manifest: list[dict[str, Any]], target: Path) -> dict[str, Any]:
    """The prototype monthly_rows, then the product's shape_rows and write."""
    from services.catalogue import extract_data

    started = time.perf_counter()
    shape = _shape()
    frame = extract_data.shape_rows(_scanned(manifest), shape)
    built = extract_data.write(frame, target, metadata=_metadata())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": built.rows}


def run_prototype_batched(
    manifest: list[dict[str, Any]], target: Path, batch_rows: int
) -> dict[str, Any]:
    """Batches of files in org order, each sorted, appended to one file: bounded memory.

    At trust x month grain each trust's rows come from its own file, so sorting each batch of
    whole trusts, taken in org-code order, gives the product's order (org_code, key). The next
    batch is computed while the previous one is written (as the validator does).
    """
    from concurrent.futures import ThreadPoolExecutor

    from services.catalogue import extract_data

    started = time.perf_counter()
    shape = _shape()
    ordered = sorted(manifest, key=lambda s: (s["org_code"], s["month"]))
    batches: list[list[dict[str, Any]]] = [[]]
    held = 0
    for source in ordered:
        if held + source["rows"] > batch_rows and batches[-1]:
            batches.append([])
            held = 0
        batches[-1].append(source)
        held += source["rows"]
    schema_metadata = {k.encode(): v.encode() for k, v in _metadata().items()}
    writer: pq.ParquetWriter | None = None
    pending = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        for batch in batches:
            table = (
                extract_data.shape_rows(_scanned(batch), shape)
                .collect(engine="streaming")
                .to_arrow(compat_level=pl.CompatLevel.oldest())  # the types sink_parquet writes
            )
            if pending is not None:
                pending.result()
            if writer is None:
                schema = table.schema.with_metadata(schema_metadata)
                writer = pq.ParquetWriter(target, schema, compression="zstd")
            pending = pool.submit(writer.write_table, table.replace_schema_metadata(None))
        if pending is not None:
            pending.result()
    assert writer is not None
    writer.close()
    digest = hashlib.sha256()  # as write() does
    with target.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": pq.read_metadata(target).num_rows,
        "batches": len(batches),
    }


def child(variant: str, manifest_path: Path, target: Path, batch_rows: int) -> dict[str, Any]:
    """Run one variant (in a fresh process)."""
    manifest = json.loads(manifest_path.read_text())
    import duckdb  # noqa: F401  (every child pays the same imports before the clock starts)

    from services.catalogue import extract_data  # noqa: F401

    runs = {
        "product": lambda: run_product(manifest, target),
        "duckdb": lambda: run_duckdb(manifest, target, None),
        "duckdb-1-thread": lambda: run_duckdb(manifest, target, 1),
        "polars-floor": lambda: run_polars_floor(manifest, target),
        "prototype-scan": lambda: run_prototype_scan(manifest, target),
        "prototype-batched": lambda: run_prototype_batched(manifest, target, batch_rows),
    }
    if variant not in runs:
        raise SystemExit(f"unknown variant {variant}")
    cpu = time.process_time()  # every thread of the process: less sensitive to others' load
    result = runs[variant]()
    result["cpu_seconds"] = time.process_time() - cpu
    return result


def _run_child(variant: str, manifest: Path, target: Path, batch_rows: int) -> dict[str, Any]:
    """One variant in a fresh interpreter: its figures plus its own peak RSS and the load."""
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        str(manifest),
        str(target),
        str(batch_rows),
    ]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output, errors = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{variant} failed ({process.returncode}):\n{errors}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mib"] = result.pop("peak_kib") / 1024
    result["rss_before_mib"] = result.pop("rss_before_kib") / 1024
    result["process_seconds"] = wall
    result["load"] = load
    result["stderr"] = sorted({line for line in errors.splitlines() if line.strip()})
    return result


# ---------------------------------------------------------------------------
# Checks and sizes (in the parent, after the timed runs)
# ---------------------------------------------------------------------------


def _summary(path: Path) -> pl.DataFrame:
    keys = ["org_code", "period", "department_type", "source_submission_id", "derived"]
    return (
        pl.scan_parquet(path)
        .group_by(keys)
        .agg(pl.len().alias("n"), *(pl.col(i).sum() for i in ITEMS))
        .sort(keys)
        .collect()
    )


def _is_sorted(path: Path) -> bool:
    org, key = pl.col("org_code"), pl.col("department_type")
    ordered = (org > org.shift()) | ((org == org.shift()) & (key >= key.shift()))
    result = pl.scan_parquet(path).select(ordered.fill_null(True).all()).collect().item()
    return bool(result)


def check(outputs: dict[str, Path]) -> list[str]:
    """Problems, if any: same columns, same rows, sorted, for every equivalent variant."""
    problems = []
    reference = _summary(outputs["product"]) if "product" in outputs else None
    schema = pl.read_parquet_schema(outputs["product"]) if "product" in outputs else None
    for variant, path in outputs.items():
        if variant not in EQUIVALENT:
            continue
        if schema is not None and pl.read_parquet_schema(path) != schema:
            problems.append(f"{variant}: columns {pl.read_parquet_schema(path)} != {schema}")
        if reference is not None and not _summary(path).equals(reference):
            problems.append(f"{variant}: rows differ from the product's")
        if not _is_sorted(path):
            problems.append(f"{variant}: not sorted by org_code, department_type")
    return problems


def arrow_bytes(path: Path) -> int:
    """Size of the whole result as Arrow (pyarrow's types), summed batch by batch."""
    return sum(batch.nbytes for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 20))


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def bench_layout(
    layout: str, variants: list[str], repeat: int, batch_rows: int, keep: bool
) -> None:
    """Build the store, time the variants round robin, check and print the figures."""
    files, rows = (int(part) for part in layout.split("x"))
    directory = Path(tempfile.mkdtemp(prefix="extract_build_", dir="/tmp"))
    try:
        started = time.perf_counter()
        store = directory / "store"
        sources = build_store(store, files, rows)
        manifest = directory / "sources.json"
        manifest.write_text(json.dumps(sources))
        made = time.perf_counter() - started
        total_rows = files * rows
        print(
            f"\n### {files:,} files x {rows:,} rows = {total_rows:,} rows"
            f" (store {_mib(_tree_bytes(store))}, written in {made:.0f} s;"
            f" load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        outputs = {v: directory / "out" / f"{v}.parquet" for v in variants}
        (directory / "out").mkdir()
        for attempt in range(repeat):
            for variant in variants:
                outputs[variant].unlink(missing_ok=True)
                figures = _run_child(variant, manifest, outputs[variant], batch_rows)
                if figures["rows"] != total_rows:
                    raise SystemExit(f"{variant} wrote {figures['rows']} rows, not {total_rows}")
                results[variant].append(figures)
                print(
                    f"  run {attempt + 1} {variant}: {figures['seconds']:.2f} s"
                    f" (CPU {figures['cpu_seconds']:.2f} s), {figures['peak_rss_mib']:,.0f} MiB"
                    f" (load {figures['load']:.2f})",
                    flush=True,
                )
        problems = check(outputs)
        reference = "product" if "product" in outputs else variants[0]
        result_arrow = arrow_bytes(outputs[reference])
        print(
            f"\nResult: {total_rows:,} rows, {_mib(outputs[reference].stat().st_size)} as"
            f" zstd Parquet, {_mib(result_arrow)} as Arrow; store {_mib(_tree_bytes(store))}"
            f" in {files:,} files. Equivalence: {'; '.join(problems) or _SAME}."
        )
        loads = [r["load"] for runs in results.values() for r in runs]
        print(
            f"1-minute load average at the start of each run: {min(loads):.2f} to {max(loads):.2f}"
        )
        median = {v: statistics.median(r["seconds"] for r in results[v]) for v in variants}
        print()
        print(
            "| variant | time, median (min-max) | CPU time, median | peak RSS, median (max)"
            " | time / DuckDB 2 threads | time / DuckDB 1 thread |"
        )
        print("|---|---|---|---|---|---|")
        for variant in variants:
            runs = results[variant]
            seconds = [r["seconds"] for r in runs]
            rss = [r["peak_rss_mib"] for r in runs]
            ratios = [
                f"{median[variant] / median[d]:.2f}" if d in median else "-"
                for d in ("duckdb", "duckdb-1-thread")
            ]
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            print(
                f"| {variant} | {median[variant]:.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"
                f" | {cpu:.2f} s | {statistics.median(rss):,.0f} MiB ({max(rss):,.0f})"
                f" | {' | '.join(ratios)} |"
            )
        extra = []
        if "product" in results:
            runs = results["product"]
            plan = statistics.median(r["plan_seconds"] for r in runs)
            digest = statistics.median(r["hash_seconds"] for r in runs)
            extra.append(
                f"product: building the lazy plan {plan:.2f} s, sha256 of the file {digest:.2f} s"
            )
        if "prototype-batched" in results:
            extra.append(
                f"prototype-batched: {results['prototype-batched'][0]['batches']} batches of"
                f" <= {batch_rows:,} rows"
            )
        for variant in variants:
            messages = {m for r in results[variant] for m in r["stderr"]}
            if messages:
                extra.append(f"{variant} stderr: {' / '.join(sorted(messages))[:300]}")
        before = statistics.median(r["rss_before_mib"] for runs in results.values() for r in runs)
        extra.append(f"RSS of a child after its imports, before the work: {before:,.0f} MiB")
        for line in extra:
            print(f"- {line}")
    finally:
        if keep:
            print(f"(kept {directory})")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    """Parse the arguments; in a child, run one variant and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", action="append", help="FILESxROWS (repeatable)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--keep", action="store_true", help="keep the store and outputs")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        variant, manifest, target, batch_rows = arguments.child
        result = {"rss_before_kib": _status_kib("VmRSS")}
        result |= child(variant, Path(manifest), Path(target), int(batch_rows))
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
        result["peak_kib"] = _status_kib("VmHWM")
        print(json.dumps(result))
        return
    variants = [v for v in arguments.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    print(
        f"polars {pl.__version__}, pyarrow {pa.__version__},"
        f" duckdb {__import__('duckdb').__version__}, {os.cpu_count()} cores;"
        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    started = time.perf_counter()
    for layout in arguments.layout or DEFAULT_LAYOUTS:
        bench_layout(layout, variants, arguments.repeat, arguments.batch_rows, arguments.keep)
    print(
        f"\nTotal {time.perf_counter() - started:.0f} s;"
        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
