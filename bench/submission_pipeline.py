"""Benchmark: a 1,000,000-row ecds_attendance return through the whole submission path (issue 4).

Run (about 10-15 minutes on the 2-core reference machine; one benchmark at a time):

    .venv/bin/python bench/submission_pipeline.py [--rows 1000000] [--big-rows 20000000]
        [--skip-big] [--skip-frictionless] [--skip-distributed] [--out DIR]

On the same generated files (``bench/_ecds.py``: valid rows for RJ1, January 2025, seeded) it
times, each comparator in a fresh child process so that each peak RSS is its own:

- end to end: ``drb submit`` (a real process) of the CSV and of the Parquet against a real
  ``drb serve``, embedded (SQLite, validator in the serve process) and distributed (PostgreSQL,
  Redis, ``drb worker --threads 1``), wall time from the start of ``drb submit`` to its exit on
  ``accepted``; each file is sent 3 times (as 3 byte-different variants, since the broker answers
  an identical file with the first submission);
- frictionless ``validate`` of the CSV with the dataset's published Table Schema
  (``table_schema(dataset)``, as served; its ``x-rules`` are ignored by frictionless), and with
  the same schema but an explicit datetime format, on a 100,000-row slice;
- pandera on the pandas backend: an equivalent ``pandera.pandas.DataFrameSchema`` built from the
  dataset's columns and rules, on a frame read with ``pandas.read_csv``;
- the floor: pyarrow reads the file with typed columns, then one pandera-polars validation with
  ``pandera_schema(dataset, org_code="RJ1", period="2025-01")``;
- the validator's own stage: ``validate_file`` (read, convert, validate, write Parquet).

Memory: the worker's idle RSS before the first upload, its peak (VmHWM, reset before each
submission through /proc/PID/clear_refs) while validating, and the Arrow table's size; then the
big CSV through ``validate_file`` in a child process and through the worker.

Temporary files live under /tmp and are deleted unless ``--out`` is given. The distributed run
uses its own database (``drb_bench``, dropped and created) and its own Redis database number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import _ecds  # noqa: E402

DATASET = "ecds_attendance"
ORG = "RJ1"
PERIOD = "2025-01"
DRB = str(Path(sys.executable).with_name("drb"))
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20
GIB = 2**30
FRICTIONLESS_SLICE = 100_000
POLL_SECONDS = 0.02  # how often the HTTP client asks for the status
BAD_ROWS = 10_000  # broken rows in the file that must be rejected


# ---------------------------------------------------------------------------
# Measuring: memory of a process, CPU used by other processes
# ---------------------------------------------------------------------------


def status_bytes(pid: int, field: str) -> int:
    """A memory figure (VmRSS, VmHWM) of a process from /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples a process's VmRSS every 20 ms: the peak, and when it came (a cross-check)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = status_bytes(self.pid, "VmRSS")
            except (OSError, KeyError):
                return
            if rss > self.peak:
                self.peak, self.peak_at = rss, time.perf_counter() - self.started
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, CPU ticks including waited-for children) for every process."""
    found: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        found[int(entry.name)] = (int(fields[1]), ticks)
    return found


def _busy_ticks() -> int:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4]  # without idle and iowait


def _own_ticks(stats: dict[int, tuple[int, int]]) -> int:
    """CPU ticks of this process and its descendants (children's after exit come via cutime)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


class OthersCpu:
    """How many cores other processes kept busy (on average) while a block ran."""

    def __enter__(self) -> OthersCpu:
        self.cores = 0.0
        self._wall = time.perf_counter()
        self._busy = _busy_ticks()
        self._own = _own_ticks(_proc_stats())
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self._wall
        busy = _busy_ticks() - self._busy
        own = _own_ticks(_proc_stats()) - self._own
        self.cores = max(busy - own, 0) / HZ / max(wall, 1e-9)


def code_fingerprint() -> str:
    """Short hashes of the validator's modules: others may edit them while the run goes on."""
    import hashlib

    parts = []
    validator = ROOT / "services" / "validator"
    for name in ("validation.py", "reading"):
        path = validator / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:10]
        parts.append(f"{name} {digest if files else 'none'}")
    return ", ".join(parts)


def machine_snapshot() -> str:
    """Load average and the processes using CPU now (other engineers' tests, for instance)."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    top = subprocess.run(
        ["top", "-bn1", "-o", "%CPU"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    busy = []
    for line in top[7:]:
        parts = line.split(None, 11)
        if len(parts) == 12 and float(parts[8].replace(",", ".")) >= 5:
            busy.append(f"{parts[11][:40]} ({parts[8]}%)")
    return f"load average {' '.join(load)}; busy: {', '.join(busy) or 'nothing'}"


# ---------------------------------------------------------------------------
# Comparators, each run in a child process (``--child``)
# ---------------------------------------------------------------------------


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    from schemas import get_dataset

    kinds = {
        "integer": pa.int64(),
        "string": pa.string(),
        "datetime": pa.timestamp("us"),
        "boolean": pa.bool_(),
        "date": pa.date32(),
    }
    return {column.name: kinds[column.dtype] for column in get_dataset(DATASET).columns}


def child_floor(path: Path, repeat: int) -> dict[str, Any]:
    """pyarrow typed read (CSV or Parquet), then one pandera-polars validation, ``repeat`` times."""
    import polars as pl
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from schemas import get_dataset
    from schemas.compile.pandera_schema import pandera_schema

    schema = pandera_schema(get_dataset(DATASET), org_code=ORG, period=PERIOD)
    options = pa_csv.ConvertOptions(column_types=_arrow_types())
    reads, checks, nbytes = [], [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        if path.suffix == ".csv":
            table = pa_csv.read_csv(path, convert_options=options)
        else:
            table = pq.read_table(path)
        read = time.perf_counter()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        schema.validate(frame, lazy=True)  # raises SchemaErrors on any failure
        reads.append(read - started)
        checks.append(time.perf_counter() - read)
        nbytes = table.nbytes
        del table, frame
    totals = [r + c for r, c in zip(reads, checks, strict=True)]
    return {"seconds": totals, "read": reads, "validate": checks, "arrow_bytes": nbytes}


def child_validator(path: Path, repeat: int, chunk_rows: int) -> dict[str, Any]:
    """validate_file with write_to (read, convert, validate, write zstd Parquet)."""
    from schemas import get_dataset
    from services.catalogue.arrow_memory import configure_arrow_memory
    from services.validator.validation import validate_file

    configure_arrow_memory()  # as drb serve and drb worker do at start
    dataset = get_dataset(DATASET)
    idle = status_bytes(os.getpid(), "VmRSS")
    seconds, peak, peak_at = [], 0, 0.0
    out = path.with_name(f"validated-{os.getpid()}.parquet")
    for _ in range(repeat):
        with RssSampler(os.getpid()) as sampler:
            started = time.perf_counter()
            report = validate_file(
                path=path,
                filename=path.name,
                dataset=dataset,
                org_code=ORG,
                period=PERIOD,
                write_to=out,
                chunk_rows=chunk_rows,
            )
            took = time.perf_counter() - started
        if report.status != "accepted":
            raise SystemExit(f"validate_file rejected the file: {report.errors[:5]}")
        seconds.append(took)
        if sampler.peak > peak:
            peak, peak_at = sampler.peak, sampler.peak_at / took
        written = out.stat().st_size
        out.unlink()
    return {
        "seconds": seconds,
        "rows": report.rows,
        "idle_rss": idle,
        "sampled_peak_rss": peak,
        "peak_at_fraction": peak_at,
        "written_bytes": written,
    }


def pandas_schema(org_code: str, period: str) -> Any:
    """The dataset as a pandera pandas-backend schema: the same columns, checks and rules."""
    import pandas as pd
    import pandera.pandas as ppa

    from schemas import get_dataset
    from schemas.model import (
        InRange,
        InSubmissionPeriod,
        Length,
        NotBefore,
        NotEmpty,
        NotGreaterThan,
        OneOf,
        Pattern,
        SubmittedBy,
    )

    dataset = get_dataset(DATASET)
    dtypes = {"integer": "int64", "string": "str", "boolean": "bool", "datetime": "datetime64[us]"}
    checks: dict[str, list[Any]] = {column.name: [] for column in dataset.columns}
    frame_checks: list[Any] = []
    for column in dataset.columns:
        for check in column.checks:
            if isinstance(check, InRange):
                compiled = ppa.Check.in_range(check.min, check.max)
            elif isinstance(check, OneOf):
                compiled = ppa.Check.isin(list(check.values))
            elif isinstance(check, Length):
                compiled = ppa.Check.str_length(check.exact, check.exact)
            elif isinstance(check, Pattern):
                compiled = ppa.Check.str_matches(f"^(?:{check.regex})$")
            else:
                raise NotImplementedError(check)
            checks[column.name].append(compiled)
    start = pd.Timestamp(f"{period}-01")
    end = start + pd.offsets.MonthBegin(1)
    for rule in dataset.rules:
        if isinstance(rule, SubmittedBy):
            checks[rule.column].append(ppa.Check.equal_to(org_code, name=rule.name))
        elif isinstance(rule, InSubmissionPeriod):
            # The same month test as the polars rule, written vectorised for pandas.
            checks[rule.column].append(
                ppa.Check(lambda s: (s >= start) & (s < end), name=rule.name)
            )
        elif isinstance(rule, NotBefore | NotGreaterThan):
            name, other = rule.column, rule.other
            passes = (
                (lambda df, c=name, o=other: df[c] >= df[o])
                if isinstance(rule, NotBefore)
                else (lambda df, c=name, o=other: df[c] <= df[o])
            )
            frame_checks.append(ppa.Check(passes, name=rule.name))
        elif isinstance(rule, NotEmpty):
            frame_checks.append(ppa.Check(lambda df: len(df) > 0, name=rule.name))
        else:
            raise NotImplementedError(rule)
    return ppa.DataFrameSchema(
        {
            column.name: ppa.Column(
                dtypes[column.dtype], checks=checks[column.name], nullable=column.nullable
            )
            for column in dataset.columns
        },
        checks=frame_checks,
        unique=list(dataset.key),
        strict=True,
        coerce=False,
    )


def child_pandas(path: Path, repeat: int) -> dict[str, Any]:
    """pandas.read_csv (C engine, explicit dtypes), then the pandas-backend schema, lazily."""
    import pandas as pd

    from schemas import get_dataset

    dataset = get_dataset(DATASET)
    schema = pandas_schema(ORG, PERIOD)
    kinds = {"integer": "int64", "string": "str", "boolean": "bool"}
    dtype = {c.name: kinds[c.dtype] for c in dataset.columns if c.dtype in kinds}
    dates = [c.name for c in dataset.columns if c.dtype == "datetime"]
    reads, checks = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        frame = pd.read_csv(path, dtype=dtype, parse_dates=dates, date_format=_ecds.DATETIME_FORMAT)
        read = time.perf_counter()
        schema.validate(frame, lazy=True)
        reads.append(read - started)
        checks.append(time.perf_counter() - read)
        del frame
    totals = [r + c for r, c in zip(reads, checks, strict=True)]
    return {"seconds": totals, "read": reads, "validate": checks}


def child_frictionless(path: Path, repeat: int, variant: str) -> dict[str, Any]:
    """frictionless validate(resource) with the dataset's Table Schema."""
    from frictionless import Resource, Schema, validate

    from schemas import get_dataset
    from schemas.compile.publication import table_schema

    descriptor = table_schema(get_dataset(DATASET))  # x-rules: frictionless ignores them
    if variant == "explicit":
        for field in descriptor["fields"]:
            if field["type"] == "datetime":
                field["format"] = _ecds.DATETIME_FORMAT
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        # frictionless refuses absolute paths as unsafe; the folder goes in basepath.
        resource = Resource(
            path=path.name, basepath=str(path.parent), schema=Schema.from_descriptor(descriptor)
        )
        report = validate(resource)
        seconds.append(time.perf_counter() - started)
        if not report.valid:
            raise SystemExit(f"frictionless found errors: {report.flatten(['type', 'note'])[:5]}")
    return {"seconds": seconds, "rows": report.tasks[0].stats.get("rows")}


def run_child(stage: str, path: Path, repeat: int = 3, **extra: Any) -> dict[str, Any]:
    """Run one comparator in a fresh interpreter; its figures, its peak RSS, others' CPU."""
    arguments = json.dumps({"stage": stage, "path": str(path), "repeat": repeat, **extra})
    with OthersCpu() as others:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", arguments], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        output = process.stdout.read()
        code = process.wait()
    if code != 0:
        raise SystemExit(f"{stage} on {path.name} failed")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["others_cores"] = others.cores
    return result


def child_main(arguments: str) -> None:
    spec = json.loads(arguments)
    path, repeat = Path(spec["path"]), int(spec["repeat"])
    stage = spec["stage"]
    if stage == "floor":
        result = child_floor(path, repeat)
    elif stage == "validator":
        result = child_validator(path, repeat, int(spec["chunk_rows"]))
    elif stage == "pandas":
        result = child_pandas(path, repeat)
    elif stage == "frictionless":
        result = child_frictionless(path, repeat, spec["variant"])
    else:
        raise SystemExit(f"unknown stage {stage}")
    # This process's own peak: not ru_maxrss, which Linux carries over from the parent at exec.
    result["peak_rss"] = status_bytes(os.getpid(), "VmHWM")
    print(json.dumps(result))


# ---------------------------------------------------------------------------
# End to end: drb serve (and drb worker), drb submit
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Broker:
    """A real broker: ``drb migrate``, ``drb serve`` and, when distributed, ``drb worker``."""

    def __init__(
        self,
        root: Path,
        *,
        database_url: str = "",
        redis_url: str = "",
        max_upload_bytes: int = 8 * GIB,
    ) -> None:
        self.root = root
        self.distributed = bool(redis_url)
        self.admin = "drb-bench-admin-" + secrets.token_hex(16)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRB_")}
        self.env |= {
            "DRB_DATA_DIR": str(root / "var"),
            "DRB_DATABASE_URL": database_url,
            "DRB_ADMIN_TOKEN": self.admin,
            "DRB_DEMO": "false",
            "DRB_MAX_UPLOAD_BYTES": str(max_upload_bytes),
        }
        if redis_url:
            self.env["DRB_REDIS_URL"] = redis_url
        self.serve: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.token = ""

    def start(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)  # a fresh broker (--out keeps old ones)
        self.root.mkdir(parents=True)
        migrated = subprocess.run(
            [DRB, "migrate"], env=self.env, capture_output=True, text=True, check=False
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"drb migrate failed: {migrated.stderr[-2000:]}")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.serve = self._start("serve.log", "serve", "--port", str(port))
        if self.distributed:
            self.worker = self._start("worker.log", "worker", "--threads", "1")
        self._wait(self._healthy, "drb serve", self.root / "serve.log")
        if self.worker is not None:
            self._wait(
                lambda: "worker running" in (self.root / "worker.log").read_text(errors="replace"),
                "drb worker",
                self.root / "worker.log",
            )
        import httpx

        admin = {"Authorization": f"Bearer {self.admin}"}
        created = httpx.post(
            f"{self.base}/v1/organisations",
            headers=admin,
            json={"code": ORG, "name": "Bench trust", "kind": "trust", "region": "Y56"},
        )
        created.raise_for_status()
        reply = httpx.post(f"{self.base}/v1/organisations/{ORG}/tokens", headers=admin)
        reply.raise_for_status()
        self.token = reply.json()["token"]
        time.sleep(2)  # let start-up settle before idle memory is read

    def _start(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        handle = (self.root / log).open("wb")
        return subprocess.Popen([DRB, *args], env=self.env, stdout=handle, stderr=subprocess.STDOUT)

    def _healthy(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.base}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, check: Any, what: str, log: Path) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if check():
                return
            if any(p is not None and p.poll() is not None for p in (self.serve, self.worker)):
                break
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")

    @property
    def validator_pid(self) -> int:
        process = self.worker or self.serve
        assert process is not None
        return process.pid

    def submit(self, path: Path) -> dict[str, Any]:
        """`drb submit` of the file, timed; the server's timestamps split the wall time."""
        import httpx

        pid = self.validator_pid
        exact = reset_peak(pid)
        with OthersCpu() as others, RssSampler(pid) as sampler:
            started = time.time()
            done = subprocess.run(
                [
                    DRB,
                    "submit",
                    str(path),
                    "--dataset",
                    DATASET,
                    "--period",
                    PERIOD,
                    "--url",
                    self.base,
                    "--token",
                    self.token,
                    "--timeout",
                    "3600",
                ],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            ended = time.time()
        found = re.search(r"submission (\S+):", done.stdout)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"drb submit failed ({done.returncode}):\n{done.stdout[-3000:]}")
        submission = httpx.get(
            f"{self.base}/v1/submissions/{found[1]}",
            headers={"Authorization": f"Bearer {self.token}"},
        ).json()
        received = _epoch(submission["received_at"])
        validated = _epoch(submission["validated_at"])
        return {
            "wall": ended - started,
            "upload": received - started,
            "validation": validated - received,
            "tail": ended - validated,
            "status": submission["status"],
            "rows": submission["rows"],
            "peak_rss": status_bytes(pid, "VmHWM") if exact else sampler.peak,
            "peak_exact": exact,
            "others_cores": others.cores,
        }

    def post(self, path: Path, *, poll: float = POLL_SECONDS) -> dict[str, Any]:
        """The file sent as an API client does (``POST /v1/submissions``, then ``GET`` every
        ``poll`` seconds until it is decided), timed from the first byte sent."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=3600) as client:
            started = time.time()
            with path.open("rb") as file:
                sent = client.post(
                    "/v1/submissions",
                    data={"dataset": DATASET, "period": PERIOD},
                    files={"file": (path.name, file)},
                )
            answered = time.time()
            sent.raise_for_status()
            location = f"/v1/submissions/{sent.json()['id']}"
            while (submission := client.get(location).json())["status"] not in (
                "accepted",
                "rejected",
            ):
                time.sleep(poll)
            ended = time.time()
        received = _epoch(submission["received_at"])
        validated = _epoch(submission["validated_at"])
        return {
            "wall": ended - started,
            "to_202": answered - started,
            "upload": received - started,
            "validation": validated - received,
            "tail": ended - validated,
            "status": submission["status"],
            "rows": submission["rows"],
            "errors": submission["error_count"],
        }

    def stop(self) -> None:
        for process in (self.worker, self.serve):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _epoch(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the broker stores UTC
    return moment.timestamp()


@contextmanager
def bench_database(admin_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the distributed run (dropped afterwards)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def bench_redis(url: str) -> Iterator[str]:
    """The Redis database number for the run; emptied afterwards only if it was empty before."""
    import redis

    client = redis.Redis.from_url(url)
    was_empty = client.dbsize() == 0
    try:
        yield url
    finally:
        if was_empty:
            client.flushdb()
        client.close()


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def csv_variants(path: Path, count: int) -> list[Path]:
    """Byte-different copies of a CSV (k extra blank lines at the end, which readers skip)."""
    paths = [path]
    for k in range(1, count):
        copy = path.with_name(f"{path.stem}-v{k}{path.suffix}")
        shutil.copyfile(path, copy)
        with copy.open("ab") as file:
            file.write(b"\n" * k)
        paths.append(copy)
    return paths


def parquet_variants(path: Path, count: int) -> list[Path]:
    """Byte-different copies of a Parquet file (a key-value metadata entry)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    paths = [path]
    for k in range(1, count):
        copy = path.with_name(f"{path.stem}-v{k}{path.suffix}")
        pq.write_table(
            table.replace_schema_metadata({"bench-variant": str(k)}),
            copy,
            compression="snappy",
            row_group_size=_ecds.BLOCK_ROWS,
        )
        paths.append(copy)
    return paths


def csv_head(path: Path, rows: int, target: Path) -> Path:
    """The header and the first ``rows`` rows of a CSV."""
    with path.open("rb") as source, target.open("wb") as out:
        for _ in range(rows + 1):
            out.write(source.readline())
    return target


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def mib(value: float) -> str:
    return f"{value / MIB:,.0f} MiB"


def log(message: str) -> None:
    print(message, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=20_000_000)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-big-worker", action="store_true", help="big file: child only")
    parser.add_argument("--skip-frictionless", action="store_true")
    parser.add_argument("--skip-distributed", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=100_000,
        help="validate_file chunk_rows (the worker passes 100,000 in validator/submissions.py)",
    )
    parser.add_argument("--out", type=Path, help="keep the files here")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DRB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:55499/postgres"
        ),
        help="an admin connection; the run creates and drops its own database drb_bench",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("DRB_BENCH_REDIS", "redis://127.0.0.1:56399/7"),
        help="Redis URL with a database number no one else uses",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        work = args.out
    else:
        work = Path(tempfile.mkdtemp(prefix="drb-bench-", dir="/tmp"))
    try:
        run(args, work)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    import pyarrow.parquet as pq

    repeat = args.repeat
    notes: list[str] = [f"at start: {machine_snapshot()}; code: {code_fingerprint()}"]
    log(notes[0])
    rows = args.rows
    csv = work / f"ecds_{rows}.csv"
    parquet = work / f"ecds_{rows}.parquet"
    started = time.perf_counter()
    csv_size = _ecds.write_csv(csv, rows) if not csv.exists() else csv.stat().st_size
    parquet_size = (
        _ecds.write_parquet(parquet, rows) if not parquet.exists() else parquet.stat().st_size
    )
    arrow_bytes = pq.read_table(parquet).nbytes
    log(
        f"{rows:,} rows: CSV {mib(csv_size)}, Parquet {mib(parquet_size)}, Arrow table"
        f" {mib(arrow_bytes)} (generated in {time.perf_counter() - started:.1f} s)"
    )
    bad = work / f"ecds_{rows}_bad.csv"
    if not bad.exists():
        _ecds.write_bad_csv(bad, rows, BAD_ROWS)
    big = work / f"ecds_{args.big_rows}.csv"
    if not args.skip_big and not big.exists():
        started = time.perf_counter()
        _ecds.write_csv(big, args.big_rows)
        log(
            f"{args.big_rows:,} rows: CSV {mib(big.stat().st_size)}"
            f" in {time.perf_counter() - started:.0f} s"
        )

    results: dict[str, Any] = {}

    # -- the comparators, each in its own process ---------------------------------------
    extra: dict[str, Any]
    for name, stage, path, extra in [
        ("floor_csv", "floor", csv, {}),
        ("floor_parquet", "floor", parquet, {}),
        ("validator_csv", "validator", csv, {"chunk_rows": args.chunk_rows}),
        ("validator_parquet", "validator", parquet, {"chunk_rows": args.chunk_rows}),
        ("pandas_csv", "pandas", csv, {}),
    ]:
        results[name] = run_child(stage, path, repeat, **extra)
        log(
            f"{name}: {[round(s, 2) for s in results[name]['seconds']]} s,"
            f" peak RSS {mib(results[name]['peak_rss'])},"
            f" others busy {results[name]['others_cores']:.2f} cores"
        )
    if not args.skip_frictionless:
        results["frictionless_csv"] = run_child("frictionless", csv, 1, variant="served")
        log(f"frictionless (served schema): {results['frictionless_csv']['seconds'][0]:.1f} s")
        head = csv_head(csv, min(FRICTIONLESS_SLICE, rows), work / "slice.csv")
        slice_result = run_child("frictionless", head, 1, variant="explicit")
        results["frictionless_explicit_slice"] = slice_result
        log(
            f"frictionless (explicit datetime format, {slice_result['rows']:,} rows):"
            f" {slice_result['seconds'][0]:.1f} s"
        )

    # -- the client's own start-up, part of every `drb submit` ---------------------------
    startups = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run([DRB, "submit", "--help"], capture_output=True, check=True)
        startups.append(time.perf_counter() - began)
    results["cli_startup"] = startups
    log(f"drb submit --help: {[round(s, 2) for s in startups]} s")

    # -- end to end ------------------------------------------------------------------------
    variants = {"csv": csv_variants(csv, repeat), "parquet": parquet_variants(parquet, repeat)}
    # The HTTP client's copies differ from drb submit's (the broker answers a file it already
    # has with its first submission).
    posted = {
        "csv": csv_variants(csv, 2 * repeat)[repeat:],
        "parquet": parquet_variants(parquet, 2 * repeat)[repeat:],
        "bad_csv": csv_variants(bad, repeat),
    }
    modes: list[str] = ["embedded"] + ([] if args.skip_distributed else ["distributed"])
    big_worker: dict[str, Any] | None = None
    for mode in modes:
        with _mode(mode, args, work) as broker:
            idle = status_bytes(broker.validator_pid, "VmRSS")
            runs: dict[str, list[dict[str, Any]]] = {"csv": [], "parquet": []}
            for kind in ("csv", "parquet"):
                for path in variants[kind]:
                    outcome = broker.submit(path)
                    runs[kind].append(outcome)
                    log(
                        f"{mode} {kind} {path.name}: {outcome['wall']:.2f} s"
                        f" (upload {outcome['upload']:.2f}, validation {outcome['validation']:.2f},"
                        f" tail {outcome['tail']:.2f}), peak {mib(outcome['peak_rss'])},"
                        f" others {outcome['others_cores']:.2f} cores"
                    )
            results[f"e2e_{mode}"] = {"idle": idle, "runs": runs}
            http: dict[str, list[dict[str, Any]]] = {kind: [] for kind in posted}
            for kind, paths in posted.items():
                for path in paths:
                    outcome = broker.post(path)
                    http[kind].append(outcome)
                    log(
                        f"{mode} HTTP {kind} {path.name}: {outcome['status']} in"
                        f" {outcome['wall']:.2f} s (202 after {outcome['to_202']:.2f}, upload"
                        f" {outcome['upload']:.2f}, validation {outcome['validation']:.2f},"
                        f" tail {outcome['tail']:.2f}; {outcome['errors']} errors)"
                    )
            results[f"http_{mode}"] = http
            if mode == "distributed" and not args.skip_big and not args.skip_big_worker:
                idle_before_big = status_bytes(broker.validator_pid, "VmRSS")
                big_worker = broker.submit(big)
                big_worker["idle"] = idle_before_big
                log(
                    f"distributed big CSV: {big_worker['wall']:.1f} s,"
                    f" peak {mib(big_worker['peak_rss'])}"
                )
    if not args.skip_big:
        results["big_validator"] = run_child("validator", big, 1, chunk_rows=args.chunk_rows)
        log(
            f"big validate_file: {results['big_validator']['seconds'][0]:.1f} s,"
            f" peak {mib(results['big_validator']['peak_rss'])}"
        )
    notes.append(f"at end: {machine_snapshot()}; code: {code_fingerprint()}")
    log(notes[-1])
    report(args, results, arrow_bytes, csv_size, parquet_size, big_worker, notes)


@contextmanager
def _mode(mode: str, args: argparse.Namespace, work: Path) -> Iterator[Broker]:
    if mode == "embedded":
        broker = Broker(work / "embedded")
        try:
            broker.start()
            yield broker
        finally:
            broker.stop()
        return
    with bench_database(args.postgres, "drb_bench") as database_url, bench_redis(args.redis) as url:
        broker = Broker(work / "distributed", database_url=database_url, redis_url=url)
        try:
            broker.start()
            yield broker
        finally:
            broker.stop()


def report(
    args: argparse.Namespace,
    results: dict[str, Any],
    arrow_bytes: int,
    csv_size: int,
    parquet_size: int,
    big_worker: dict[str, Any] | None,
    notes: list[str],
) -> None:
    rows = args.rows
    label = f"{rows:,}-row"
    lines = [
        "",
        f"### {rows:,} rows (CSV {mib(csv_size)}, Parquet {mib(parquet_size)},"
        f" Arrow table {mib(arrow_bytes)})",
        "",
        "| what | CSV | Parquet | peak RSS of its process | others' CPU (cores) |",
        "|---|---|---|---|---|",
    ]

    def e2e(mode: str, kind: str, part: str = "wall") -> float:
        return median([run[part] for run in results[f"e2e_{mode}"]["runs"][kind]])

    for mode in ("embedded", "distributed"):
        if f"e2e_{mode}" not in results:
            continue
        runs = results[f"e2e_{mode}"]["runs"]
        peak = max(run["peak_rss"] for kind in runs for run in runs[kind])
        busy = max(run["others_cores"] for kind in runs for run in runs[kind])
        cells = []
        for kind in ("csv", "parquet"):
            cells.append(
                f"{seconds(e2e(mode, kind))} (upload {e2e(mode, kind, 'upload'):.2f},"
                f" validation {e2e(mode, kind, 'validation'):.2f},"
                f" tail {e2e(mode, kind, 'tail'):.2f})"
            )
        who = "serve" if mode == "embedded" else "worker"
        lines.append(
            f"| end to end, `drb submit` to accepted ({mode}) | {cells[0]} | {cells[1]} |"
            f" {mib(peak)} ({who}) | {busy:.2f} |"
        )

    def http(mode: str, kind: str, part: str = "wall") -> float:
        return median([run[part] for run in results[f"http_{mode}"][kind]])

    for mode in ("embedded", "distributed"):
        if f"http_{mode}" not in results:
            continue
        cells = [
            f"{seconds(http(mode, kind))} (202 after {http(mode, kind, 'to_202'):.2f},"
            f" validation {http(mode, kind, 'validation'):.2f},"
            f" tail {http(mode, kind, 'tail'):.2f})"
            for kind in ("csv", "parquet", "bad_csv")
        ]
        lines.append(
            f"| end to end, HTTP client (POST, then GET every {POLL_SECONDS * 1000:.0f} ms) to"
            f" accepted ({mode}) | {cells[0]} | {cells[1]} | - | - |"
        )
        lines.append(
            f"| the same CSV with {BAD_ROWS:,} bad rows, HTTP client to rejected ({mode}) |"
            f" {cells[2]} | - | - | - |"
        )
    if "frictionless_csv" in results:
        f = results["frictionless_csv"]
        lines.append(
            f"| frictionless `validate`, published Table Schema | {seconds(f['seconds'][0])} | - |"
            f" {mib(f['peak_rss'])} | {f['others_cores']:.2f} |"
        )
        s = results["frictionless_explicit_slice"]
        lines.append(
            f"| frictionless `validate`, explicit datetime format (first {s['rows']:,} rows,"
            f" times {rows / s['rows']:g}) | {seconds(s['seconds'][0] * rows / s['rows'])}"
            f" (extrapolated) | - | {mib(s['peak_rss'])} ({s['rows']:,} rows) |"
            f" {s['others_cores']:.2f} |"
        )
    p = results["pandas_csv"]
    lines.append(
        f"| pandera, pandas backend (read_csv + validate) | {seconds(median(p['seconds']))}"
        f" ({median(p['read']):.2f} + {median(p['validate']):.2f}) | - | {mib(p['peak_rss'])} |"
        f" {p['others_cores']:.2f} |"
    )
    fc, fp = results["floor_csv"], results["floor_parquet"]
    lines.append(
        f"| floor: pyarrow typed read + one pandera-polars validation |"
        f" {seconds(median(fc['seconds']))}"
        f" ({median(fc['read']):.2f} + {median(fc['validate']):.2f})"
        f" | {seconds(median(fp['seconds']))}"
        f" ({median(fp['read']):.2f} + {median(fp['validate']):.2f})"
        f" | {mib(max(fc['peak_rss'], fp['peak_rss']))} |"
        f" {max(fc['others_cores'], fp['others_cores']):.2f} |"
    )
    vc, vp = results["validator_csv"], results["validator_parquet"]
    lines.append(
        f"| validator stage: `validate_file` (read, validate, write Parquet;"
        f" chunk_rows={args.chunk_rows:,}) |"
        f" {seconds(median(vc['seconds']))} | {seconds(median(vp['seconds']))} |"
        f" {mib(vc['peak_rss'])} (CSV), {mib(vp['peak_rss'])} (Parquet) |"
        f" {max(vc['others_cores'], vp['others_cores']):.2f} |"
    )
    lines.append("")
    lines.append(f"Each time is the median of {args.repeat} runs, except frictionless (one run).")
    lines.append(
        f"`drb submit --help` (the client's start-up, inside every end-to-end time and its"
        f" upload part): {median(results['cli_startup']):.2f} s."
    )

    # -- memory ------------------------------------------------------------------------
    memory: list[str] = []
    worker_ratio = None
    if "e2e_distributed" in results:
        d = results["e2e_distributed"]
        idle = d["idle"]
        csv_peaks = [run["peak_rss"] for run in d["runs"]["csv"]]
        pq_peaks = [run["peak_rss"] for run in d["runs"]["parquet"]]
        worker_ratio = (max(csv_peaks) - idle) / arrow_bytes
        memory += [
            "",
            "| worker (`drb worker --threads 1`) | RSS | above idle | / Arrow table |",
            "|---|---|---|---|",
            f"| idle, before the first upload | {mib(idle)} | - | - |",
            f"| peak, {label} CSV (first; max of {len(csv_peaks)}) | {mib(csv_peaks[0])};"
            f" {mib(max(csv_peaks))} | {mib(max(csv_peaks) - idle)} | {worker_ratio:.2f} |",
            f"| peak, {label} Parquet (max of {len(pq_peaks)}) | {mib(max(pq_peaks))} |"
            f" {mib(max(pq_peaks) - idle)} | {(max(pq_peaks) - idle) / arrow_bytes:.2f} |",
        ]
    vc = results["validator_csv"]
    memory.append(
        f"\nvalidate_file alone on the {label} CSV (child process): idle {mib(vc['idle_rss'])},"
        f" peak {mib(vc['peak_rss'])}, (peak - idle) / Arrow ="
        f" {(vc['peak_rss'] - vc['idle_rss']) / arrow_bytes:.2f}."
    )
    big = results.get("big_validator")
    if big is not None:
        memory += [
            "",
            f"| {args.big_rows:,}-row CSV | wall | peak RSS | idle RSS | peak came at |",
            "|---|---|---|---|---|",
            f"| `validate_file` in a child process | {seconds(big['seconds'][0])} |"
            f" {mib(big['peak_rss'])} | {mib(big['idle_rss'])} |"
            f" {big['peak_at_fraction']:.0%} of the run |",
        ]
        if big_worker is not None:
            memory.append(
                "| through `drb submit` and the worker (end to end) |"
                f" {seconds(big_worker['wall'])}"
                f" (upload {big_worker['upload']:.1f}, validation {big_worker['validation']:.1f}) |"
                f" {mib(big_worker['peak_rss'])} | {mib(big_worker['idle'])} | - |"
            )

    # -- goals -------------------------------------------------------------------------
    goals = ["", "| goal | figure | met |", "|---|---|---|"]
    if "frictionless_csv" in results and "e2e_embedded" in results:
        friction = results["frictionless_csv"]["seconds"][0]
        sliced = results["frictionless_explicit_slice"]
        explicit = sliced["seconds"][0] * rows / sliced["rows"]
        for mode in ("embedded", "distributed"):
            if f"e2e_{mode}" not in results:
                continue
            wall = e2e(mode, "csv")
            ratio = friction / wall
            goals.append(
                f"| end to end ({mode}, CSV) >= 50x faster than frictionless | {ratio:.0f}x"
                f" ({seconds(friction)} / {seconds(wall)}; {explicit / wall:.0f}x against the"
                f" explicit-format frictionless) | {'yes' if ratio >= 50 else 'no'} |"
            )
    for mode in ("embedded", "distributed"):
        if f"http_{mode}" not in results:
            continue
        if "frictionless_csv" in results:
            friction = results["frictionless_csv"]["seconds"][0]
            wall = http(mode, "csv")
            goals.append(
                f"| HTTP client end to end ({mode}, CSV) >= 50x faster than frictionless |"
                f" {friction / wall:.0f}x ({seconds(friction)} / {seconds(wall)}) |"
                f" {'yes' if friction / wall >= 50 else 'no'} |"
            )
        floor = median(results["floor_parquet"]["seconds"])
        wall = http(mode, "parquet")
        goals.append(
            f"| HTTP client end to end ({mode}, Parquet) <= 1.5x the floor | {wall / floor:.2f}x"
            f" ({seconds(wall)} / {seconds(floor)}) | {'yes' if wall / floor <= 1.5 else 'no'} |"
        )
        bad, good = http(mode, "bad_csv"), http(mode, "csv")
        goals.append(
            f"| rejecting {BAD_ROWS:,} bad rows ({mode}) <= 1.5x accepting the clean file |"
            f" {bad / good:.2f}x ({seconds(bad)} / {seconds(good)}) |"
            f" {'yes' if bad / good <= 1.5 else 'no'} |"
        )
    for kind in ("csv", "parquet"):
        stage = median(results[f"validator_{kind}"]["seconds"])
        floor = median(results[f"floor_{kind}"]["seconds"])
        goals.append(
            f"| validator stage <= 2x the floor ({kind}) | {stage / floor:.2f}x"
            f" ({seconds(stage)} / {seconds(floor)}) | {'yes' if stage / floor <= 2 else 'no'} |"
        )
    if worker_ratio is not None:
        goals.append(
            f"| worker (peak - idle) <= 3x Arrow table ({label} CSV) | {worker_ratio:.2f}x |"
            f" {'yes' if worker_ratio <= 3 else 'no'} |"
        )
    if big is not None:
        peak = max(big["peak_rss"], big_worker["peak_rss"] if big_worker else 0)
        goals.append(
            f"| {args.big_rows:,} rows validated with peak RSS < 2 GiB |"
            f" {mib(peak)} | {'yes' if peak < 2 * GIB else 'no'} |"
        )
    print("\n".join(lines + memory + goals))
    print("\n" + "\n".join(f"- {note}" for note in notes))
    print("\nraw results (JSON):")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
