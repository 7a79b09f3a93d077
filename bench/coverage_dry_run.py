"""Benchmark: dry runs of a 500-item request against a large catalogue, through `drb serve`.

Builds, in a temporary data dir, a catalogue of 20,000 items (500 datasets of 40 items) with
held cells at 1x (50 million), 10x (500 million) and 100x (5 billion) the issue's figure, stored
as runs of months per (dataset, trust), then times `POST /v1/requests?dry_run=true` over HTTP:
500 items x 220 trusts x 36 months at each scale, and 500 items x every registered organisation
(30,220) x 36 months at 100x.

    .venv/bin/python bench/coverage_dry_run.py [--scales 1,10,100] [--repeat 40]

Prints a Markdown table for docs/benchmarks.md. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DRB = str(Path(sys.executable).with_name("drb"))
ADMIN = "drb_bench-admin-token-0123456789"
DATASETS, ITEMS_PER_DATASET = 500, 40
TRUSTS, PROVIDERS = 220, 30_000
REGIONS = ("Y56", "Y58", "Y59", "Y60", "Y61", "Y62", "Y63")
FIRST_MONTH = 2016 * 12  # January 2016
REQUEST_START = 2023 * 12  # the request covers 2023-01 to 2025-12


def build(data_dir: Path, scale: int, seed: int = 7) -> dict[str, int]:
    """Migrate a fresh SQLite catalogue and fill it; returns what was written."""
    env = {**os.environ, "DRB_DATA_DIR": str(data_dir), "DRB_DATABASE_URL": ""}
    subprocess.run([DRB, "migrate"], env=env, check=True, capture_output=True)
    rng = random.Random(seed)
    db = sqlite3.connect(data_dir / "broker.sqlite3")
    db.execute("PRAGMA synchronous=OFF")
    db.executemany(
        "INSERT INTO datasets (code, title, period_type, current_version, base_minutes,"
        " minutes_per_item) VALUES (?, ?, 'month', 1, ?, ?)",
        [(f"d{d:03d}", f"Dataset {d}", 60.0, 10.0) for d in range(DATASETS)],
    )
    items = [
        (f"i{d:03d}_{i:02d}", f"d{d:03d}")
        for d in range(DATASETS)
        for i in range(ITEMS_PER_DATASET)
    ]
    db.executemany(
        "INSERT INTO items (code, name, definition, unit, value_type, aggregation,"
        " org_aggregation, disaggregation, primary_dataset, synonyms)"
        " VALUES (?, ?, ?, 'count', 'integer', 'sum', 'sum', '[]', ?, '[]')",
        [(code, f"Measure {code}", f"Synthetic measure {code}", ds) for code, ds in items],
    )
    db.executemany(
        "INSERT INTO dataset_items (dataset_code, item_code) VALUES (?, ?)",
        [(ds, code) for code, ds in items],
    )
    trusts = [f"T{t:04d}" for t in range(TRUSTS)]
    providers = [f"P{p:05d}" for p in range(PROVIDERS)] if scale >= 100 else []
    now = "2026-01-01 00:00:00"
    db.executemany(
        "INSERT INTO organisations (code, name, kind, region, created_at)"
        " VALUES (?, ?, 'trust', ?, ?)",
        [(c, c, REGIONS[n % 7], now) for n, c in enumerate(trusts + providers)],
    )
    # Held months per (dataset, trust): about 11.4 at 1x (50 million cells in all), ten times
    # that at 10x; at 100x the trusts keep the 10x runs and 30,000 providers add the rest.
    trust_len = 11.4 * min(scale, 10)
    cells = 0

    def runs(orgs: list[str], mean_len: float) -> list[tuple[str, str, int, int]]:
        nonlocal cells
        rows = []
        for d in range(DATASETS):
            for org in orgs:
                length = max(1, round(rng.uniform(0.8, 1.2) * mean_len))
                start = FIRST_MONTH + rng.randrange(0, max(1, 126 - length))
                rows.append((f"d{d:03d}", org, start, start + length))
                cells += length * ITEMS_PER_DATASET
        return rows

    db.executemany(
        "INSERT INTO held_runs (dataset_code, org_code, start_month, end_month)"
        " VALUES (?, ?, ?, ?)",
        runs(trusts, trust_len),
    )
    if providers:
        remaining = 5_000_000_000 - cells
        provider_len = remaining / (DATASETS * PROVIDERS * ITEMS_PER_DATASET)
        chunk = 2_000
        for start in range(0, PROVIDERS, chunk):
            db.executemany(
                "INSERT INTO held_runs (dataset_code, org_code, start_month, end_month)"
                " VALUES (?, ?, ?, ?)",
                runs(providers[start : start + chunk], provider_len),
            )
    # Written behind the broker's back: move every epoch on so no snapshot is stale.
    db.execute("INSERT OR IGNORE INTO coverage_epochs (key, epoch) VALUES ('~catalogue', 0)")
    db.execute("UPDATE coverage_epochs SET epoch = epoch + 1")
    db.commit()
    runs_count = db.execute("SELECT count(*) FROM held_runs").fetchone()[0]
    db.close()
    return {"held_cells": cells, "held_runs": runs_count, "organisations": len(trusts + providers)}


def request_body(organisations: object, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    items = rng.sample(
        [f"i{d:03d}_{i:02d}" for d in range(DATASETS) for i in range(ITEMS_PER_DATASET)], 500
    )
    return {
        "title": "bench",
        "purpose": "bench",
        "legal_basis": "bench",
        "items": items,
        "organisations": organisations,
        "period_start": "2023-01",
        "period_end": "2025-12",
    }


def time_dry_runs(base: str, body: dict[str, object], repeat: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {BODY_TOKEN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        started = time.perf_counter()
        first = client.post("/v1/requests?dry_run=true", json=body)
        cold = time.perf_counter() - started
        first.raise_for_status()
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.post("/v1/requests?dry_run=true", json=body)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
    coverage = first.json()["coverage"]
    samples.sort()
    return {
        "cold_s": cold,
        "p50_ms": statistics.median(samples) * 1000,
        "p95_ms": samples[max(0, round(0.95 * len(samples)) - 1)] * 1000,
        "cells": coverage["cells_requested"],
        "held": coverage["cells_held"],
    }


BODY_TOKEN = ""


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DRB_DATA_DIR": str(data_dir),
        "DRB_DATABASE_URL": "",
        "DRB_ADMIN_TOKEN": ADMIN,
        "DRB_REDIS_URL": "",
    }
    log = (data_dir / "serve.log").open("wb")
    server = subprocess.Popen(
        [DRB, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("drb serve did not start")


def main() -> None:
    global BODY_TOKEN
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--port", type=int, default=8971)
    args = parser.parse_args()
    rows = []
    for scale in [int(s) for s in args.scales.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"drb-bench-{scale}x-") as tmp:
            data_dir = Path(tmp)
            started = time.perf_counter()
            built = build(data_dir, scale)
            build_s = time.perf_counter() - started
            server = serve(data_dir, args.port)
            try:
                base = f"http://127.0.0.1:{args.port}"
                admin = {"Authorization": f"Bearer {ADMIN}"}
                httpx.post(
                    f"{base}/v1/organisations",
                    headers=admin,
                    timeout=30,
                    json={"code": "BENCH", "name": "Bench body", "kind": "oversight_body"},
                )
                BODY_TOKEN = httpx.post(
                    f"{base}/v1/organisations/BENCH/tokens", headers=admin, timeout=30
                ).json()["token"]
                trusts = [f"T{t:04d}" for t in range(TRUSTS)]
                result = time_dry_runs(base, request_body(trusts, 1), args.repeat)
                rows.append(
                    {
                        "scale": f"{scale}x",
                        "population": "220 trusts",
                        **built,
                        "build_s": build_s,
                        **result,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                if scale >= 100:
                    result = time_dry_runs(
                        base, request_body({"kind": "trust"}, 1), max(10, args.repeat // 4)
                    )
                    rows.append(
                        {
                            "scale": f"{scale}x",
                            "population": "all 30,220 organisations",
                            **built,
                            "build_s": build_s,
                            **result,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                server.terminate()
                server.wait(timeout=60)
    print()
    print(
        "| held cells | held runs | population | cells requested | cold (first, loads index) "
        "| p50 | p95 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['held_cells']:,} ({r['scale']}) | {r['held_runs']:,} | {r['population']} "
            f"| {r['cells']:,} | {r['cold_s']:.1f} s | {r['p50_ms']:.0f} ms "
            f"| {r['p95_ms']:.0f} ms |"
        )


if __name__ == "__main__":
    main()
