"""Benchmark: the auditors' pages at national scale (issue 22, "Scale of the auditors' pages").

    .venv/bin/python bench/auditor_scale.py [--backends sqlite,postgresql]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:55432] [--requests 100]
        [--years 5] [--repeat 5] [--seed 22]

For each backend it makes an empty database (SQLite in a temporary directory; on PostgreSQL a
database ``drb_bench_auditor_<pid>`` created on ``--postgres-url`` and dropped at the end), runs
``drb migrate``, and builds, through the domain operations (``data_requests.register`` and
``withdraw``, one unit of work each, with one coverage index, as ``drb serve`` would):

- every English trust of the ODS list the demo loads (ods_nhs_trusts_etr_2025.csv, 207), five
  oversight bodies and an auditor (with a token);
- ``--requests`` requests over ``--years`` years of months, each for 1 to 4 of the catalogue's
  items (every dataset with items), of every trust (one in five) or one NHS England region,
  for 6 to 36 months within the span; five are then withdrawn;
- accepted returns for 60% of the asks due: a ``submissions`` row each (revision 1, received
  up to 20 days either side of the due date) and the ask moved to ``accepted``, written in bulk
  as ``submissions.accept`` leaves them (the figures read no more than these columns; the
  Parquet files and held runs are not written).

Then it starts ``drb serve`` on the database, waits until its embedded worker has run the
jobs the build queued (extract refreshes), and times, over HTTP with the auditor's token
(``--repeat`` times each, median and slowest): ``GET /v1/reports/burden`` (JSON and CSV), the page
``/reports/burden``, ``GET /v1/reports/completeness``, the ledger's first page and a walk of
every page through its ``next`` links (``limit=10000``; before issue 22 the ledger was one
unpaginated answer), the ledger CSV, and the ledger page ``/reports/burden/ledger``.

The peer, in the same run and the same database: one plain SQL ``GROUP BY`` giving the imposed
returns and minutes of each trust (ask links joined to asks and active requests), the least any
implementation must read for the imposed half of ``by_trust``; its figures are compared with
the API's (they must be equal).

Prints the figures as JSON lines and a Markdown table for docs/benchmarks.md. Not a test: it
asserts only that the API's figures equal the peer's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

import schemas
from services.catalogue import auth, coverage_index, data_requests
from services.catalogue.coverage_index import CoverageIndex
from services.catalogue.db import build_engine, session_factory, session_scope
from services.catalogue.models import (
    Ask,
    AskLink,
    DataRequest,
    Job,
    Organisation,
    Submission,
    new_id,
)
from services.catalogue.periods import month_label
from services.catalogue.regions import REGIONS
from services.catalogue.states import (
    AskStatus,
    JobStatus,
    OrgKind,
    RequestStatus,
    SubmissionStatus,
)

ROOT = Path(__file__).resolve().parents[1]
DRB = str(Path(sys.executable).with_name("drb"))
ODS = ROOT / "services" / "catalogue" / "demo" / "ods_nhs_trusts_etr_2025.csv"
BODIES = ("CQC", "NHSE", "UKHSA", "NICE", "DHSC")
AUDITOR = "NAO"
LAST_MONTH = 2025 * 12 + 11  # December 2025
TODAY = datetime(2026, 3, 1, tzinfo=UTC)


def trusts() -> list[tuple[str, str, str]]:
    """(code, name, region) of every English trust in the demo's ODS list."""
    with ODS.open(newline="", encoding="utf-8") as handle:
        return [
            (row["org_code"], row["name"], row["national_grouping"])
            for row in csv.DictReader(handle)
            if row["national_grouping"] in REGIONS
        ]


def specs(count: int, years: int, seed: int) -> list[tuple[str, data_requests.RequestSpec]]:
    """``count`` requests of the bodies: national or regional, 12 months to the whole span."""
    rng = random.Random(seed)
    items = sorted(schemas.ITEMS)
    first = LAST_MONTH - 12 * years + 1
    found = []
    for n in range(count):
        length = rng.randint(6, 36)
        start = rng.randint(first, LAST_MONTH - length + 1)
        population: dict[str, str] = (
            {"kind": "trust"} if n % 5 == 0 else {"region": rng.choice(sorted(REGIONS))}
        )
        spec = data_requests.RequestSpec(
            title=f"Bench request {n}",
            purpose="bench",
            legal_basis="bench",
            items=tuple(rng.sample(items, rng.randint(1, 4))),
            organisations=population,
            period_start=month_label(start),
            period_end=month_label(start + length - 1),
            due_days=20,
        )
        found.append((BODIES[n % len(BODIES)], spec))
    return found


def build(url: str, *, requests: int, years: int, seed: int) -> tuple[dict[str, Any], str]:
    """Fill a migrated database; what was written, and the auditor's token."""
    engine = build_engine(url)
    factory = session_factory(engine)
    rng = random.Random(seed)
    with session_scope(factory) as session:
        for code, name, region in trusts():
            session.add(Organisation(code=code, name=name, kind=OrgKind.TRUST, region=region))
        for code in BODIES:
            session.add(Organisation(code=code, name=code, kind=OrgKind.OVERSIGHT_BODY))
        session.add(Organisation(code=AUDITOR, name="National Audit Office", kind=OrgKind.AUDITOR))
        session.flush()
        coverage_index.bump(session=session, key=coverage_index.ORGANISATIONS_KEY)
        _token, token = auth.issue_token(session=session, org_code=AUDITOR, actor="bench")
    index = CoverageIndex()
    registered: list[tuple[str, str]] = []
    for body, spec in specs(requests, years, seed):
        with session_scope(factory) as session:
            outcome = data_requests.register(
                session=session, index=index, body_code=body, spec=spec, dry_run=False
            )
            assert outcome.request is not None
            registered.append((outcome.request.id, body))
    for request_id, body in rng.sample(registered, 5):
        with session_scope(factory) as session:
            data_requests.withdraw(session=session, request_id=request_id, body_code=body)
    with session_scope(factory) as session:
        due = session.execute(
            select(Ask.id, Ask.org_code, Ask.dataset_code, Ask.period, Ask.due_date)
            .where(Ask.status == AskStatus.OUTSTANDING, Ask.due_date <= TODAY.date())
            .order_by(Ask.dataset_code, Ask.org_code, Ask.period)  # the same draws on each backend
        ).all()
        answered = [row for row in due if rng.random() < 0.6]
        versions = {code: d.version for code, d in schemas.DATASETS.items()}
        rows = []
        for ask_id, org, dataset, period, due_date in answered:
            received = datetime.combine(due_date, datetime.min.time(), UTC) + timedelta(
                days=rng.randint(-20, 20), seconds=rng.randint(0, 86399)
            )
            rows.append(
                {
                    "id": new_id(),
                    "org_code": org,
                    "dataset_code": dataset,
                    "dataset_version": versions[dataset],
                    "period": period,
                    "status": SubmissionStatus.ACCEPTED,
                    "filename": f"{org}-{period}.csv",
                    "size_bytes": 400,
                    "sha256": hashlib.sha256(ask_id.encode()).hexdigest(),
                    "format": "csv",
                    "rows": 3,
                    "error_count": 0,
                    "revision": 1,
                    "received_at": received,
                    "validated_at": received + timedelta(seconds=5),
                }
            )
        for start in range(0, len(rows), 2000):
            session.execute(insert(Submission), rows[start : start + 2000])
        ids = [row[0] for row in answered]
        for start in range(0, len(ids), 500):
            session.execute(
                update(Ask)
                .where(Ask.id.in_(ids[start : start + 500]))
                .values(status=AskStatus.ACCEPTED)
            )
    engine.dispose()
    counts, _ = built(url)
    return counts, token


def built(url: str) -> tuple[dict[str, Any], str]:
    """What a database holds, and a new token for its auditor."""
    engine = build_engine(url)
    factory = session_factory(engine)
    with session_scope(factory) as session:
        _token, token = auth.issue_token(session=session, org_code=AUDITOR, actor="bench")
        counts = {
            "trusts": len(trusts()),
            "requests": session.scalar(select(func.count()).select_from(DataRequest)),
            "active_requests": session.scalar(
                select(func.count())
                .select_from(DataRequest)
                .where(DataRequest.status == RequestStatus.ACTIVE)
            ),
            "asks": session.scalar(select(func.count()).select_from(Ask)),
            "ask_links": session.scalar(select(func.count()).select_from(AskLink)),
            "accepted_returns": session.scalar(select(func.count()).select_from(Submission)),
        }
    engine.dispose()
    return counts, token


def peer_by_trust(engine: Engine) -> tuple[float, dict[str, tuple[int, float]]]:
    """One plain GROUP BY: imposed returns and minutes per trust; (seconds, figures)."""
    query = text(
        "SELECT a.org_code, SUM(CASE WHEN l.imposer THEN 1 ELSE 0 END), SUM(l.minutes_imposed)"
        " FROM ask_links l JOIN asks a ON a.id = l.ask_id JOIN requests r ON r.id = l.request_id"
        " WHERE l.active AND r.status = 'active' GROUP BY a.org_code"
    )
    with engine.connect() as connection:
        started = time.perf_counter()
        rows = connection.execute(query).all()
        elapsed = time.perf_counter() - started
    return elapsed, {org: (int(n), float(m)) for org, n, m in rows}


def settled(url: str, timeout: float = 600) -> None:
    """Wait until the embedded worker has run every job the build queued (the extracts of the
    registered requests), so that the timings are the reports' and not the worker's."""
    engine = build_engine(url)
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                select(func.count())
                .select_from(Job)
                .where(Job.status.not_in([JobStatus.DONE, JobStatus.FAILED]))
            ).scalar_one()
            connection.rollback()
            if not waiting:
                break
            time.sleep(1)
    engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [DRB, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"drb serve did not start; see {log}")


def timed(call: Callable[[], httpx.Response], repeat: int) -> dict[str, Any]:
    """Median and slowest of ``repeat`` calls, and the size of the answer."""
    samples, size, status = [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - started)
        size, status = len(response.content), response.status_code
    return {
        "median_s": statistics.median(samples),
        "max_s": max(samples),
        "bytes": size,
        "status": status,
    }


NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


def walk(client: httpx.Client, path: str) -> dict[str, Any]:
    """Every page of a paginated answer through its Link: rel="next" (one page before)."""
    pages, rows, slowest, size = 0, 0, 0.0, 0
    started = time.perf_counter()
    url: str | None = path
    total = None
    while url is not None:
        page_started = time.perf_counter()
        response = client.get(url)
        if response.status_code == 422 and pages == 0:  # before issue 22: one unpaged answer
            response = client.get(path.partition("?")[0])
        slowest = max(slowest, time.perf_counter() - page_started)
        response.raise_for_status()
        pages += 1
        rows += len(response.json())
        size += len(response.content)
        total = response.headers.get("x-total-count", total)
        found = NEXT.search(response.headers.get("link", ""))
        url = found[1] if found else None
    return {
        "pages": pages,
        "rows": rows,
        "total_header": total,
        "seconds": time.perf_counter() - started,
        "slowest_page_s": slowest,
        "bytes": size,
    }


def measure(base: str, token: str, repeat: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    found: dict[str, Any] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=1800) as client:
        for name, path in (
            ("report_json", "/v1/reports/burden"),
            ("report_csv", "/v1/reports/burden?format=csv"),
            ("report_page", "/reports/burden"),
            ("completeness", "/v1/reports/completeness"),
            ("ledger_first_page", "/v1/reports/burden/ledger"),
            ("ledger_page", "/reports/burden/ledger"),
        ):
            found[name] = timed(lambda path=path: client.get(path), repeat)
            print(json.dumps({name: found[name]}), flush=True)
        found["ledger_walk"] = walk(client, "/v1/reports/burden/ledger?limit=10000")
        print(json.dumps({"ledger_walk": found["ledger_walk"]}), flush=True)
        found["ledger_csv"] = timed(lambda: client.get("/v1/reports/burden/ledger?format=csv"), 1)
        print(json.dumps({"ledger_csv": found["ledger_csv"]}), flush=True)
        found["report"] = client.get("/v1/reports/burden").json()
    return found


def postgres_database(server_url: str, name: str, *, drop: bool) -> str:
    """Create (or drop) database ``name`` on the server; its SQLAlchemy URL."""
    parsed = make_url(server_url)
    conninfo = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            connection.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drb-bench-auditor-") as tmp:
        data_dir = Path(tmp)
        name = f"drb_bench_auditor_{os.getpid()}"
        url = (
            postgres_database(args.postgres_url, name, drop=False)
            if backend == "postgresql"
            else f"sqlite:///{data_dir / 'broker.sqlite3'}"
        )
        env = {
            **os.environ,
            "DRB_DATA_DIR": str(data_dir),
            "DRB_DATABASE_URL": url if backend == "postgresql" else "",
            "DRB_REDIS_URL": "",
            "DRB_DEMO": "false",
            "DRB_RATE_LIMIT_PER_MINUTE": "0",
        }
        try:
            if backend == "sqlite" and args.sqlite_file:
                shutil.copyfile(args.sqlite_file, data_dir / "broker.sqlite3")
            subprocess.run([DRB, "migrate"], env=env, check=True, capture_output=True)
            started = time.perf_counter()
            if backend == "sqlite" and args.sqlite_file:
                counts, token = built(url)
            else:
                counts, token = build(url, requests=args.requests, years=args.years, seed=args.seed)
            counts["build_s"] = round(time.perf_counter() - started, 1)
            print(json.dumps({"backend": backend, **counts}), flush=True)
            server, base = serve(env, data_dir / "serve.log")
            settled(url)
            try:
                found = measure(base, token, args.repeat)
            finally:
                server.terminate()
                server.wait(timeout=60)
            engine = build_engine(url)
            peer = [peer_by_trust(engine) for _ in range(args.repeat)]
            engine.dispose()
        finally:
            if backend == "postgresql":
                postgres_database(args.postgres_url, name, drop=True)
    peer_s = statistics.median(p[0] for p in peer)
    figures = peer[0][1]
    shown = {row["org_code"]: row for row in found.pop("report")["by_trust"]}
    mismatched = [
        org
        for org, (returns, minutes) in figures.items()
        if shown[org]["returns_imposed"] != returns
        or abs(shown[org]["hours_imposed"] - round(minutes / 60, 2)) > 0.005
    ]
    print(json.dumps({"peer_group_by_s": peer_s, "peer_mismatched_trusts": mismatched}))
    assert not mismatched, mismatched
    return {"backend": backend, **counts, **found, "peer_s": peer_s}


def table(results: list[dict[str, Any]]) -> None:
    def cell(entry: dict[str, Any]) -> str:
        return f"{entry['median_s']:.2f} s ({entry['max_s']:.2f}), {entry['bytes'] / 1e6:.2f} MB"

    print()
    print("| | " + " | ".join(r["backend"] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    rows = [
        (
            "asks / ask links / active requests",
            lambda r: f"{r['asks']:,} / {r['ask_links']:,} / {r['active_requests']}",
        ),
        ("build (migrated, domain operations)", lambda r: f"{r['build_s']:.0f} s"),
        *(
            (
                name,
                lambda r, name=name: (
                    cell(r[name]) if r[name]["status"] == 200 else f"{r[name]['status']}"
                ),
            )
            for name in (
                "report_json",
                "report_csv",
                "report_page",
                "completeness",
                "ledger_first_page",
                "ledger_page",
                "ledger_csv",
            )
        ),
        (
            "ledger, every page (limit=10000)",
            lambda r: (
                f"{r['ledger_walk']['pages']} pages,"
                f" {r['ledger_walk']['rows']:,} rows, {r['ledger_walk']['seconds']:.1f} s, slowest"
                f" {r['ledger_walk']['slowest_page_s']:.2f} s"
            ),
        ),
        ("peer: imposed by trust, one GROUP BY", lambda r: f"{r['peer_s']:.2f} s"),
    ]
    for label, show in rows:
        print(f"| {label} | " + " | ".join(show(r) for r in results) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:55432/postgres"
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument(
        "--sqlite-file",
        help="measure a copy of this database (built by an earlier run) instead of building one",
    )
    args = parser.parse_args()
    results = [run(backend, args) for backend in args.backends.split(",")]
    table(results)


if __name__ == "__main__":
    main()
