"""Benchmark: one return sent as an API client sends it, by several versions of the code.

Run (a minute or two; one benchmark at a time):

    .venv/bin/python bench/http_submit.py [--variants REV[+h11],...] [--repeat 5]
        [--polls 0.02] [--rows 1000000]

Starts one embedded ``drb serve`` (``submission_pipeline.Broker``) per variant, all at once:
``.`` is the working tree, ``REV`` a commit's code (``git archive``, ahead of the editable
install on PYTHONPATH), and ``+h11`` hides httptools and uvloop from uvicorn (it then runs h11
on asyncio, as before they were dependencies). Then, round after round and variant after
variant in turn (so that the machine's drift touches them alike), it posts a fresh copy of the
1M-row ecds CSV and of its Parquet twin (``POST /v1/submissions``, then ``GET`` every poll
interval until decided). Prints medians of the wall time, the time to the 202, the server's
validation time (``validated_at - received_at``) and the tail. Used to measure one change at a
time (docs/benchmarks.md, issue 14); the full comparison against frictionless and the floor is
``submission_pipeline.py``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import _ecds  # noqa: E402
import submission_pipeline as pipeline  # noqa: E402
from deadline_day import export  # noqa: E402

# Modules that fail to import: uvicorn's "auto" then takes h11 and asyncio.
HIDDEN = ("httptools", "uvloop")


def _environment(variant: str, root: Path) -> str | None:
    """PYTHONPATH for a variant's ``drb`` processes (None: the working tree as installed)."""
    revision, _, option = variant.partition("+")
    paths = []
    if option == "h11":
        hidden = root / "hidden"
        hidden.mkdir()
        for name in HIDDEN:
            (hidden / f"{name}.py").write_text(f"raise ImportError('{name} hidden by the bench')\n")
        paths.append(str(hidden))
    elif option:
        raise SystemExit(f"unknown option +{option} (only +h11)")
    if revision != ".":
        paths.append(str(export(revision, root)))
    return ":".join(paths) or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--variants", default=".", help="comma-separated: . | REV | REV+h11")
    parser.add_argument("--polls", default="0.02", help="poll intervals, seconds")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    polls = [float(p) for p in args.polls.split(",")]
    with tempfile.TemporaryDirectory(prefix="drb-http-", dir="/tmp") as work:
        root = Path(work)
        csv, parquet = root / "ecds.csv", root / "ecds.parquet"
        _ecds.write_csv(csv, args.rows)
        _ecds.write_parquet(parquet, args.rows)
        variants = args.variants.split(",")
        copies = args.repeat * len(polls) * len(variants)
        files = {
            "csv": pipeline.csv_variants(csv, copies),
            "parquet": pipeline.parquet_variants(parquet, copies),
        }
        brokers = {}
        for number, variant in enumerate(variants):
            place = root / f"variant-{number}"
            place.mkdir()
            broker = pipeline.Broker(place / "broker")
            path = _environment(variant, place)
            if path:
                broker.env["PYTHONPATH"] = path
            brokers[variant] = broker
        runs: dict[tuple[str, str, float], list[dict[str, object]]] = {}
        try:
            for broker in brokers.values():
                broker.start()
            copy = 0
            for _ in range(args.repeat):
                for poll in polls:
                    for variant, broker in brokers.items():
                        for kind, paths in files.items():
                            runs.setdefault((variant, kind, poll), []).append(
                                broker.post(paths[copy], poll=poll)
                            )
                        copy += 1
        finally:
            for broker in brokers.values():
                broker.stop()
    print("| code | file | poll every | end to end | to 202 | validation (server) | tail |")
    print("|---|---|---|---|---|---|---|")
    for (variant, kind, poll), outcomes in runs.items():

        def median(key: str, outcomes: list[dict[str, object]] = outcomes) -> float:
            return statistics.median(float(str(o[key])) for o in outcomes)

        print(
            f"| {variant} | {kind} | {poll:g} s | {median('wall'):.2f} s | {median('to_202'):.2f} s"
            f" | {median('validation'):.2f} s | {median('tail'):.2f} s |"
        )


if __name__ == "__main__":
    main()
