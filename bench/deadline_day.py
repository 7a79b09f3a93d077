"""Benchmark: deadline day, every trust sends its monthly return at once (issue 11).

Run (a few minutes on the 2-core reference machine; one benchmark at a time):

    .venv/bin/python bench/deadline_day.py [--trusts 220] [--apis 2] [--workers 2]
        [--worker-threads 2] [--period 2019-03] [--poll-interval 1.0]
        [--kill-worker-at SECONDS [--restart-worker]] [--env DRB_NAME=VALUE ...] [--out DIR]

In a temporary directory it starts its own PostgreSQL 15 and Redis (infra/services/postgres.sh
and redis.sh, on free loopback ports), runs ``drb migrate``, starts ``--apis`` ``drb serve``
processes (each on its own port) and ``--workers`` ``drb worker`` processes, all with
DRB_REDIS_URL (the distributed mode), and registers, through the API as a steward: the trusts
(the demo's real English NHS trust codes: every trust of ODS's 2025 list, then trusts of the
2019 list, up to ``--trusts``), a token for each, and NHS England with one request asking every
trust for ``ae_monthly`` (the three ``ae_*`` items) for ``--period``.

Then locust (bench/locustfile_deadline.py, headless, one user per trust, all spawned in the
first second) sends each trust's return once: the three department rows of ``ae_monthly``, the
trust's real figures for the month from NHS England's A&E data where it has them (the demo's
file), the sample return's figures otherwise; the users are spread over the API processes in
turn, and each polls its submission until it is validated.

Measured: 202s per second (trusts / the time from the first upload to the last 202), p50/p99
time to 202 and to ``accepted`` (seen by the client; and from the database: ``received_at`` to
``validated_at``), errors (any answer but 200/202 to an upload or 200 to a poll, and broken
connections), lost (submissions not ``accepted`` at the end: from the clients' last poll and from
the database). ``--kill-worker-at S`` sends SIGKILL to the first worker S seconds after the load
starts (``--restart-worker`` starts a new one at once) and reports the time from the kill until
every submission is accepted.

Rate limits stay at their defaults unless ``--env`` sets them (they are per token, shared
through Redis: one upload and a poll a second per trust are within them). Prints Markdown
tables for docs/benchmarks.md. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DRB = str(BIN / "drb")
LOCUST = str(BIN / "locust")
DEMO = ROOT / "services" / "catalogue" / "demo"
SERVICES = ROOT / "infra" / "services"
REGIONS = ("Y56", "Y58", "Y59", "Y60", "Y61", "Y62", "Y63")
# The 2019 list's government office regions in today's NHS England regions (as the demo).
GOR_TO_REGION = {
    "A": "Y63",
    "D": "Y63",
    "B": "Y62",
    "E": "Y60",
    "F": "Y60",
    "G": "Y61",
    "H": "Y56",
    "J": "Y59",
    "K": "Y58",
}
# tests/schema_samples.py's ae_monthly_sample: for trusts without real figures for the month.
SAMPLE = {"1": ("9120", "2104", "2561"), "2": ("310", "0", "4"), "other": ("4012", "37", "12")}
BODY = "NHSE"


# ---------------------------------------------------------------------------
# The trusts and their returns
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """A trust of the run: its code, name, region, and the return it sends."""

    code: str
    name: str
    region: str
    figures: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def return_csv(self, period: str) -> str:
        """The three department rows of ae_monthly, as a trust's spreadsheet would export."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(
            ["period", "org_code", "department_type", "attendances", "breaches", "admissions"]
        )
        for kind in ("1", "2", "other"):
            values = self.figures.get(kind) or (SAMPLE[kind] if not self.figures else ("0",) * 3)
            writer.writerow([f"{period}-01", self.code, kind, *values])
        return out.getvalue()


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def trusts(count: int, period: str) -> list[Trust]:
    """``count`` real English NHS trusts: ODS's 2025 list first, then the 2019 one."""
    figures: dict[str, dict[str, tuple[str, str, str]]] = {}
    for row in _rows(DEMO / "ae_attendances_2016_2019.csv"):
        if row["period"][:7] == period:
            figures.setdefault(row["org_code"], {})[row["type"]] = (
                row["attendances"],
                row["breaches"],
                row["admissions"],
            )
    found: dict[str, Trust] = {}
    for row in _rows(DEMO / "ods_nhs_trusts_etr_2025.csv"):
        if row["national_grouping"] in REGIONS:
            code = row["org_code"]
            found[code] = Trust(code, row["name"], row["national_grouping"], figures.get(code, {}))
    for row in _rows(DEMO / "ods_nhs_trusts_etr_c2019.csv"):
        code = row["org_code"]
        if code not in found and row["gor_code"] in GOR_TO_REGION:
            region = GOR_TO_REGION[row["gor_code"]]
            found[code] = Trust(code, row["name"], region, figures.get(code, {}))
    chosen = sorted(found.values(), key=lambda t: t.code)[:count]
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} trusts in the demo's lists, not {count}")
    return chosen


# ---------------------------------------------------------------------------
# Services and processes
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def services(work: Path) -> Iterator[tuple[str, str]]:
    """Our own PostgreSQL and Redis on free loopback ports: (database URL, Redis URL)."""
    pg_dir, redis_dir = work / "postgres", work / "redis"
    pg_port, redis_port = free_port(), free_port()
    started: list[tuple[str, Path]] = []
    try:
        for script, directory, port in (
            ("postgres.sh", pg_dir, pg_port),
            ("redis.sh", redis_dir, redis_port),
        ):
            subprocess.run(
                ["bash", str(SERVICES / script), "start", str(directory), str(port)],
                check=True,
                capture_output=True,
                text=True,
            )
            started.append((script, directory))
        yield (
            f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/drb_test",
            f"redis://127.0.0.1:{redis_port}/0",
        )
    finally:
        for script, directory in reversed(started):
            subprocess.run(
                ["bash", str(SERVICES / script), "stop", str(directory)],
                check=False,
                capture_output=True,
            )


class Cluster:
    """``drb serve`` x apis and ``drb worker`` x workers over one database and one Redis."""

    def __init__(
        self,
        work: Path,
        *,
        database_url: str,
        redis_url: str,
        extra: dict[str, str],
        source: Path | None = None,
    ):
        self.work = work
        self.admin = "drb-bench-admin-" + secrets.token_hex(16)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRB_")}
        if source is not None:  # the code of one commit, ahead of the editable install
            self.env["PYTHONPATH"] = str(source)
        self.env |= {
            "DRB_DATA_DIR": str(work / "var"),
            "DRB_DATABASE_URL": database_url,
            "DRB_REDIS_URL": redis_url,
            "DRB_ADMIN_TOKEN": self.admin,
            "DRB_DEMO": "false",
            **extra,
        }
        self.database_url = database_url
        self.apis: list[subprocess.Popen[bytes]] = []
        self.hosts: list[str] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started_workers = 0

    def start(self, *, apis: int, workers: int, threads: int) -> None:
        migrated = subprocess.run(
            [DRB, "migrate"], env=self.env, capture_output=True, text=True, check=False
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"drb migrate failed: {migrated.stderr[-2000:]}")
        for number in range(apis):
            port = free_port()
            self.apis.append(self._start(f"serve-{number}.log", "serve", "--port", str(port)))
            self.hosts.append(f"http://127.0.0.1:{port}")
        self.threads = threads
        for _ in range(workers):
            self.start_worker()
        for host, log in zip(self.hosts, range(apis), strict=True):
            self._wait(lambda h=host: self._healthy(h), f"drb serve {host}", f"serve-{log}.log")

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = f"worker-{self.started_workers}.log"
        self.started_workers += 1
        process = self._start(log, "worker", "--threads", str(self.threads))
        self.workers.append(process)
        self._wait(
            lambda: "worker running" in (self.work / log).read_text(errors="replace"),
            "drb worker",
            log,
        )
        return process

    def _start(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        handle = (self.work / log).open("wb")
        return subprocess.Popen([DRB, *args], env=self.env, stdout=handle, stderr=subprocess.STDOUT)

    @staticmethod
    def _healthy(host: str) -> bool:
        try:
            return httpx.get(f"{host}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, check: Any, what: str, log: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        text = (self.work / log).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} did not start:\n{text}")

    def stop(self) -> None:
        for process in [*self.apis, *self.workers]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.apis, *self.workers]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A set-up call, waiting out 429s (the steward's own rate limit)."""
    for _ in range(30):
        response = client.request(method, url, **kwargs)
        if response.status_code != 429:
            response.raise_for_status()
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    raise RuntimeError(f"{method} {url}: still 429")


def register(cluster: Cluster, chosen: list[Trust], period: str) -> dict[str, str]:
    """The trusts, their tokens, and NHS England's request; returns code -> token."""
    host = cluster.hosts[0]
    admin = {"Authorization": f"Bearer {cluster.admin}"}
    tokens: dict[str, str] = {}
    with httpx.Client(base_url=host, headers=admin, timeout=30) as client:
        _call(
            client,
            "POST",
            "/v1/organisations",
            json={"code": BODY, "name": "NHS England", "kind": "oversight_body"},
        )
        body_token = _call(client, "POST", f"/v1/organisations/{BODY}/tokens").json()["token"]
        for trust in chosen:
            _call(
                client,
                "POST",
                "/v1/organisations",
                json={
                    "code": trust.code,
                    "name": trust.name,
                    "kind": "trust",
                    "region": trust.region,
                },
            )
            reply = _call(client, "POST", f"/v1/organisations/{trust.code}/tokens")
            tokens[trust.code] = reply.json()["token"]
        _call(
            client,
            "POST",
            "/v1/requests",
            headers={"Authorization": f"Bearer {body_token}"},
            json={
                "title": "A&E activity, every trust, deadline day",
                "purpose": "Monthly A&E attendances, four-hour breaches and admissions.",
                "legal_basis": "Health and Social Care Act 2012, section 259",
                "items": ["ae_attendances", "ae_breaches", "ae_admissions"],
                "organisations": {"kind": "trust"},
                "period_start": period,
                "period_end": period,
                "due_days": 20,
            },
        )
    return tokens


# ---------------------------------------------------------------------------
# Watching the database
# ---------------------------------------------------------------------------


def _pg_url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def status_counts(database_url: str, period: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(_pg_url(database_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT status, count(*) FROM submissions WHERE dataset_code = 'ae_monthly'"
            " AND period = %s GROUP BY status",
            (period,),
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def server_times(database_url: str, period: str) -> list[tuple[datetime, datetime | None, str]]:
    """(received_at, validated_at, status) of every submission of the run."""
    import psycopg

    with psycopg.connect(_pg_url(database_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT received_at, validated_at, status FROM submissions"
            " WHERE dataset_code = 'ae_monthly' AND period = %s",
            (period,),
        ).fetchall()
    return [(r[0], r[1], str(r[2])) for r in rows]


def job_counts(database_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(_pg_url(database_url), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT kind || ' ' || status, count(*), sum(attempts) FROM jobs GROUP BY 1"
        ).fetchall()
    return {f"{name} (attempts {attempts})": int(count) for name, count, attempts in rows}


class Watcher:
    """Samples the submissions' statuses every 0.25 s; notes when all are accepted."""

    def __init__(self, database_url: str, period: str, expected: int) -> None:
        self.database_url, self.period, self.expected = database_url, period, expected
        self.all_accepted_at: float | None = None
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                counts = status_counts(self.database_url, self.period)
            except Exception:  # a benchmark keeps watching through a hiccup
                counts = {}
            now = time.time()
            self.samples.append((now, counts))
            if counts.get("accepted", 0) >= self.expected and self.all_accepted_at is None:
                self.all_accepted_at = now
            self._stop.wait(0.25)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores ({cpu}), {memory:.1f} GiB; load average before: {load}"


def export(revision: str, work: Path) -> Path:
    """The tree of ``revision`` (``git archive``), for the drb processes to import."""
    source = work / "src"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    return source


def commit(revision: str | None) -> str:
    if revision is not None:
        return subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", revision],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()[:100]
    head = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "services"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return head[:100] + (" (+ uncommitted changes under services/)" if dirty else "")


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    extra = dict(item.split("=", 1) for item in args.env)
    chosen = trusts(args.trusts, args.period)
    result: dict[str, Any] = {
        "machine": machine(),
        "commit": commit(args.commit),
        "settings": extra,
    }
    source = export(args.commit, work) if args.commit else args.source
    if args.source:
        result["commit"] += f" (code from {args.source})"
    with services(work) as (database_url, redis_url):
        cluster = Cluster(
            work, database_url=database_url, redis_url=redis_url, extra=extra, source=source
        )
        try:
            cluster.start(apis=args.apis, workers=args.workers, threads=args.worker_threads)
            tokens = register(cluster, chosen, args.period)
            config = {
                "hosts": cluster.hosts,
                "period": args.period,
                "poll_interval": args.poll_interval,
                "trusts": [
                    {
                        "code": t.code,
                        "token": tokens[t.code],
                        "filename": f"ae-{t.code}-{args.period}.csv",
                        "csv": t.return_csv(args.period),
                    }
                    for t in chosen
                ],
            }
            (work / "config.json").write_text(json.dumps(config))
            result |= drive(args, work, cluster, database_url)
        finally:
            cluster.stop()
    return result


def drive(
    args: argparse.Namespace, work: Path, cluster: Cluster, database_url: str
) -> dict[str, Any]:
    """Run locust against the cluster (with the fault, if asked) and gather the figures."""
    env = {
        **os.environ,
        "DRB_DEADLINE_CONFIG": str(work / "config.json"),
        "DRB_DEADLINE_RESULTS": str(work / "results.json"),
    }
    command = [
        LOCUST,
        "-f",
        str(ROOT / "bench" / "locustfile_deadline.py"),
        "--headless",
        "--users",
        str(args.trusts),
        "--spawn-rate",
        str(args.trusts),
        "--run-time",
        f"{args.run_time}s",
        "--host",
        cluster.hosts[0],
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "5",
    ]
    kill: dict[str, float] = {}

    def fault(started: float) -> None:
        time.sleep(max(0.0, started + args.kill_worker_at - time.time()))
        victim = cluster.workers[0]
        try:  # its CPU time, which reaping moves to this script's children (the load tool's)
            used = psutil.Process(victim.pid).cpu_times()
            kill["victim_cpu"] = used.user + used.system
        except psutil.Error:
            kill["victim_cpu"] = 0.0
        victim.send_signal(signal.SIGKILL)
        kill["at"] = time.time()
        victim.wait()
        if args.restart_worker:
            cluster.start_worker()
            kill["restarted"] = time.time()

    with Watcher(database_url, args.period, args.trusts) as watcher:
        cpu_before = cpu_seconds(cluster)
        started = time.time()
        if args.kill_worker_at is not None:
            threading.Thread(target=fault, args=(started,), daemon=True).start()
        locust = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        ended = time.time()
        # Clients that gave up (--run-time) leave the rest to the database: wait for it.
        deadline = time.time() + args.settle
        while watcher.all_accepted_at is None and time.time() < deadline:
            time.sleep(0.5)
        cpu_after = cpu_seconds(cluster)
        cpu_wall = time.time() - started
    (work / "locust.out").write_text(locust.stdout + locust.stderr)
    records: list[dict[str, Any]] = json.loads((work / "results.json").read_text())
    counts = status_counts(database_url, args.period)
    rows = server_times(database_url, args.period)
    to_202 = [r["to_202"] for r in records if "to_202" in r]
    to_done = [r["to_done"] for r in records if r.get("status") == "accepted"]
    first = min(r["started"] for r in records) if records else started
    last_202 = max((r["started"] + r["to_202"] for r in records if "to_202" in r), default=first)
    server = [(v - r).total_seconds() for r, v, s in rows if v is not None and s == "accepted"]
    received = [r for r, _v, _s in rows]
    validated = [v for _r, v, s in rows if v is not None and s == "accepted"]
    figures: dict[str, Any] = {
        "locust_rc": locust.returncode,
        "locust_summary": _summary(locust.stdout + locust.stderr),
        "trusts": args.trusts,
        "received_202": len(to_202),
        "wall_to_last_202": last_202 - first,
        "per_second_202": len(to_202) / max(last_202 - first, 1e-9),
        "p50_to_202": percentile(to_202, 50),
        "p99_to_202": percentile(to_202, 99),
        "max_to_202": max(to_202, default=float("nan")),
        "p50_to_accepted": percentile(to_done, 50),
        "p99_to_accepted": percentile(to_done, 99),
        "max_to_accepted": max(to_done, default=float("nan")),
        "server_p50": percentile(server, 50),
        "server_p99": percentile(server, 99),
        "server_span": (
            (max(validated) - min(received)).total_seconds() if validated and received else None
        ),
        "errors": sum(len(r["errors"]) for r in records),
        "error_kinds": sorted({e for r in records for e in r["errors"]}),
        "client_not_accepted": args.trusts - sum(1 for r in records if r["status"] == "accepted"),
        "db_counts": counts,
        "db_not_accepted": args.trusts - counts.get("accepted", 0),
        "jobs": job_counts(database_url),
        "load_wall": ended - started,
        "cpu_wall": cpu_wall,
        "cpu": {group: cpu_after[group] - cpu_before.get(group, 0.0) for group in cpu_after},
    }
    if kill:
        figures["cpu"]["drb worker"] += kill["victim_cpu"]
        figures["cpu"]["load tool (locust)"] -= kill["victim_cpu"]
    figures["accepted_per_second"] = (
        len(validated) / figures["server_span"] if figures["server_span"] else None
    )
    if kill:
        done_at = watcher.all_accepted_at
        figures["kill_after"] = kill["at"] - started
        figures["restarted"] = "restarted" in kill
        at_kill = [c for t, c in watcher.samples if t <= kill["at"]]
        figures["at_kill"] = at_kill[-1] if at_kill else {}
        figures["recovery"] = (done_at - kill["at"]) if done_at else None
    return figures


def cpu_seconds(cluster: Cluster) -> dict[str, float]:
    """CPU time (user + system) used so far by each group of processes of the run.

    PostgreSQL's backends are summed over the ``postgres`` processes alive now (a backend that
    has exited takes its time with it; the pools keep theirs open); the load tool's is
    ``resource``'s account of this script's finished children (locust, once it has exited).
    """
    groups: dict[str, float] = {"drb serve": 0.0, "drb worker": 0.0, "postgres": 0.0, "redis": 0.0}
    members = {
        **{process.pid: "drb serve" for process in cluster.apis},
        **{process.pid: "drb worker" for process in cluster.workers},
    }
    for process in psutil.process_iter(["pid", "name"]):
        name = process.info["name"] or ""
        group = members.get(process.info["pid"]) or (
            "postgres" if name == "postgres" else "redis" if name.startswith("redis") else None
        )
        if group is None:
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        groups[group] += times.user + times.system
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    groups["load tool (locust)"] = children.ru_utime + children.ru_stime
    return groups


def _summary(text: str) -> str:
    """Locust's own table of requests (the lines from 'Type' to the aggregated line)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("Type")), None)
    if start is None:
        return text[-2000:]
    end = next((i for i in range(start, len(lines)) if "Aggregated" in lines[i]), len(lines) - 1)
    return "\n".join(lines[start : end + 1])


def seconds(value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    goal = [
        ("submissions/s to 202", ">= 100", f"{r['per_second_202']:.1f}"),
        ("p99 time to 202", "< 1 s", seconds(r["p99_to_202"])),
        ("returns accepted", f"{args.trusts}", str(r["db_counts"].get("accepted", 0))),
        ("lost (client / database)", "0", f"{r['client_not_accepted']} / {r['db_not_accepted']}"),
    ]
    lines = [
        f"Machine: {r['machine']}",
        f"Commit: {r['commit']}",
        f"Settings: {args.apis} x drb serve, {args.workers} x drb worker --threads "
        f"{args.worker_threads}, poll every {args.poll_interval} s, "
        f"extra: {r['settings'] or 'none (defaults)'}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| trusts (one upload each) | {r['trusts']} |",
        f"| 202s | {r['received_202']} in {r['wall_to_last_202']:.2f} s |",
        f"| submissions/s to 202 | {r['per_second_202']:.1f} |",
        f"| time to 202, p50 / p99 / max | {seconds(r['p50_to_202'])} / "
        f"{seconds(r['p99_to_202'])} / {seconds(r['max_to_202'])} |",
        f"| time to accepted (client, polling every {args.poll_interval} s), p50 / p99 / max | "
        f"{seconds(r['p50_to_accepted'])} / {seconds(r['p99_to_accepted'])} / "
        f"{seconds(r['max_to_accepted'])} |",
        f"| received to validated (database), p50 / p99 | {seconds(r['server_p50'])} / "
        f"{seconds(r['server_p99'])} |",
        "| accepted/s (first received to last validated) | "
        + (f"{r['accepted_per_second']:.1f}" if r["accepted_per_second"] else "n/a")
        + " |",
        f"| errors | {r['errors']} {', '.join(r['error_kinds'])} |",
        f"| not accepted: clients / database | {r['client_not_accepted']} / "
        f"{r['db_not_accepted']} ({r['db_counts']}) |",
        f"| jobs at the end | {r['jobs']} |",
    ]
    if "kill_after" in r:
        lines += [
            f"| worker SIGKILLed at | {r['kill_after']:.1f} s into the load "
            f"({'restarted at once' if r['restarted'] else 'not restarted'}); statuses then: "
            f"{r['at_kill']} |",
            f"| kill to every return accepted | {seconds(r['recovery'])} |",
        ]
    lines += [
        "| CPU used from the first upload to the last accept (core-seconds) | "
        + ", ".join(f"{group} {value:.1f}" for group, value in r["cpu"].items())
        + f" (in {r['cpu_wall']:.1f} s of wall time) |",
    ]
    lines += ["", "| goal | wanted | measured |", "|---|---|---|"]
    lines += [f"| {name} | {want} | {got} |" for name, want, got in goal]
    lines += ["", "Locust's own table:", "```", r["locust_summary"], "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trusts", type=int, default=220)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=2)
    parser.add_argument("--period", default="2019-03", help="the month asked for (YYYY-MM)")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--run-time", type=int, default=900, help="locust's cap, seconds")
    parser.add_argument(
        "--settle", type=float, default=900, help="after locust, seconds to wait for the rest"
    )
    parser.add_argument("--kill-worker-at", type=float, help="SIGKILL worker 1 after S seconds")
    parser.add_argument("--restart-worker", action="store_true", help="and start a new one")
    parser.add_argument(
        "--env", action="append", default=[], help="DRB_NAME=VALUE for every drb process"
    )
    parser.add_argument(
        "--commit",
        help="run the drb processes on this commit's code (git archive), not the working tree",
    )
    parser.add_argument(
        "--source", type=Path, help="run the drb processes on this tree's code (experiments)"
    )
    parser.add_argument("--out", type=Path, help="keep logs and results here")
    args = parser.parse_args()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        work = args.out
    else:
        work = Path(tempfile.mkdtemp(prefix="drb-deadline-", dir="/tmp"))
    work.chmod(0o755)  # postgres.sh runs the server as the postgres user when we are root
    try:
        result = run(args, work)
        print(report(args, result), flush=True)
        (work / "figures.json").write_text(json.dumps(result, indent=2, default=str))
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
