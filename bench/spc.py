"""SPC at its bounds: the linear chart against the first version, and the API calls over the demo.

Run: .venv/bin/python bench/spc.py [--demo /tmp/drb-spc-demo] [--repeat 20]

1. ``spc.chart`` against its peer, the first version (tests/spc_reference.py: a sliding window
   per point, a list search per rebase), on the same random series: at the bounds the API now
   takes (240 points, 20 rebases) and at the issue's input (10,000 points, 4,999 rebases).
2. ``POST /v1/spc`` and ``GET /v1/indicators/{item}/spc`` in process (the app, its database and
   the demo's real returns, authentication and auditing included): at the bounds, and past
   them (the issue's inputs, now a 422).

The demo (``drb migrate`` and ``drb seed-demo``, about a minute) is made in ``--demo`` the first
time and reused after.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from fastapi.testclient import TestClient  # noqa: E402

from services.broker.app import create_app  # noqa: E402
from services.catalogue import spc  # noqa: E402
from services.catalogue.periods import month_label  # noqa: E402
from services.catalogue.runtime import boot  # noqa: E402
from services.catalogue.settings import Settings  # noqa: E402
from tests.spc_reference import reference_chart  # noqa: E402


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and worst wall time in ms over ``repeat`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), result


def series(count: int, rebases: int) -> tuple[list[spc.Point], list[str]]:
    """Random monthly values from 2000-01 and evenly spaced rebases."""
    rng = random.Random(7)
    points = [
        spc.Point(period=month_label(2000 * 12 + n), value=rng.gauss(100, 10)) for n in range(count)
    ]
    step = count // (rebases + 1)
    return points, [points[step * n].period for n in range(1, rebases + 1)]


def bench_chart(repeat: int) -> None:
    print("| input | linear `spc.chart` p50 / max | first version p50 / max | same result |")
    print("|---|---|---|---|")
    for count, rebases, note in (
        (spc.MAX_POINTS, spc.MAX_REBASES, "at the bounds"),
        (10_000, 4_999, "the issue's input"),
    ):
        points, rebase = series(count, rebases)
        times = max(1, repeat // 10) if count > spc.MAX_POINTS else repeat
        new50, new_max, new = timed(functools.partial(spc.chart, points, rebase=rebase), times)
        old50, old_max, old = timed(
            functools.partial(reference_chart, points, rebase=rebase), times
        )
        print(
            f"| {count:,} points, {rebases:,} rebases ({note}) | {new50:.1f} / {new_max:.1f} ms"
            f" | {old50:.1f} / {old_max:.1f} ms | {new == old} |"
        )


def demo(directory: Path) -> dict[str, str]:
    """The demo's tokens, seeding it first when ``directory`` has none."""
    tokens = directory / "demo-tokens.json"
    if not tokens.exists():
        directory.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DRB_DATA_DIR": str(directory)}
        drb = str(ROOT / ".venv" / "bin" / "drb")
        subprocess.run([drb, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([drb, "seed-demo"], env=env, check=True, capture_output=True)
    loaded: dict[str, str] = json.loads(tokens.read_text())
    return loaded


def bench_api(directory: Path, repeat: int) -> None:
    tokens = demo(directory)
    runtime = boot(Settings(data_dir=directory), bootstrap_admin=False)
    client = TestClient(create_app(runtime))
    nao = {"Authorization": f"Bearer {tokens['NAO']}"}
    at_bounds, rebase = series(spc.MAX_POINTS, spc.MAX_REBASES)
    issue, issue_rebase = series(10_000, 4_999)

    def post(points: list[spc.Point], rebase: list[str]) -> Any:
        body = {"points": [{"period": p.period, "value": p.value} for p in points]}
        return client.post("/v1/spc", headers=nao, json={**body, "rebase": rebase})

    def indicator(org_code: str, start: str, end: str) -> Any:
        query = {"org_code": org_code, "period_start": start, "period_end": end}
        return client.get("/v1/indicators/ae_attendances/spc", headers=nao, params=query)

    last = f"{2000 + spc.MAX_YEARS - 1}-12"
    calls: list[tuple[str, Callable[[], Any]]] = [
        (
            f"POST /v1/spc, {spc.MAX_POINTS} points, {spc.MAX_REBASES} rebases",
            lambda: post(at_bounds, rebase),
        ),
        ("POST /v1/spc, 10,000 points, 4,999 rebases", lambda: post(issue, issue_rebase)),
        (f"indicator RJ1, 2000-01 to {last}", lambda: indicator("RJ1", "2000-01", last)),
        (f"indicator Y56 (London), 2000-01 to {last}", lambda: indicator("Y56", "2000-01", last)),
        (f"indicator national, 2000-01 to {last}", lambda: indicator("national", "2000-01", last)),
        (
            "indicator national, 1900-01 to 2999-12",
            lambda: indicator("national", "1900-01", "2999-12"),
        ),
    ]
    print()
    print("| call (as NAO, the demo's auditor) | status | p50 | max |")
    print("|---|---|---|---|")
    for name, call in calls:
        p50, worst, answer = timed(call, repeat)
        print(f"| {name} | {answer.status_code} | {p50:.0f} ms | {worst:.0f} ms |")
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("/tmp/drb-spc-demo"))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    bench_chart(args.repeat)
    bench_api(args.demo, args.repeat)


if __name__ == "__main__":
    main()
