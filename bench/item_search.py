"""Latency of item search and code suggestions over a 20,000-item catalogue.

Run: .venv/bin/python bench/item_search.py [--items 20000] [--queries 200] [--seed 7]

Builds synthetic items (NHS-like names, synonyms and definitions, from a fixed seed) plus the 9
real ones, then times ItemIndex.search and ItemIndex.suggest on a mix of queries: real analysts'
phrases, misspelt and shortened names of catalogue items, and unrelated text.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time
from collections.abc import Callable, Sequence

import schemas
from schemas.model import Item
from services.catalogue.item_search import ItemIndex

_TOPICS = [
    "a&e",
    "attendances",
    "admissions",
    "breaches",
    "ambulance",
    "handover",
    "response",
    "category",
    "calls",
    "incidents",
    "conveyance",
    "beds",
    "occupied",
    "available",
    "closed",
    "escalation",
    "critical",
    "care",
    "adult",
    "paediatric",
    "neonatal",
    "maternity",
    "births",
    "caesarean",
    "stillbirths",
    "mental",
    "health",
    "detentions",
    "crisis",
    "referrals",
    "waiting",
    "list",
    "rtt",
    "incomplete",
    "pathways",
    "clock",
    "stops",
    "diagnostics",
    "mri",
    "ct",
    "endoscopy",
    "audiology",
    "cancer",
    "urgent",
    "suspected",
    "referrals",
    "treatment",
    "days",
    "faster",
    "diagnosis",
    "standard",
    "outpatient",
    "appointments",
    "first",
    "follow-up",
    "virtual",
    "did",
    "not",
    "attend",
    "elective",
    "daycase",
    "inpatient",
    "spells",
    "discharges",
    "delayed",
    "transfers",
    "no",
    "criteria",
    "to",
    "reside",
    "length",
    "of",
    "stay",
    "stranded",
    "patients",
    "readmissions",
    "mortality",
    "hsmr",
    "shmi",
    "infections",
    "mrsa",
    "c",
    "difficile",
    "e",
    "coli",
    "falls",
    "pressure",
    "ulcers",
    "complaints",
    "staff",
    "vacancies",
    "sickness",
    "absence",
    "agency",
    "bank",
    "nurses",
    "doctors",
    "turnover",
    "training",
    "appraisal",
    "flu",
    "vaccinations",
    "covid",
    "tests",
    "community",
    "contacts",
    "district",
    "nursing",
    "virtual",
    "wards",
    "gp",
    "referrals",
    "111",
    "calls",
    "999",
    "urgent",
    "treatment",
    "centre",
    "minor",
    "injuries",
    "unit",
    "type",
    "1",
    "type",
    "2",
    "type",
    "3",
    "hours",
    "weeks",
    "days",
    "over",
    "under",
    "within",
    "total",
    "number",
    "rate",
    "percentage",
    "proportion",
    "median",
    "mean",
]
_ANALYST_QUERIES = (
    "A&E attendences",
    "emergency department attendances",
    "4 hour breaches",
    "four hour waits",
    "bed occupancy",
    "critical care beds occupied",
    "52 week waits",
    "18 weeks RTT",
    "emergency admissions",
    "staff sickness absence",
    "prescribing costs",
    "ambulance handover delays over 60 minutes",
    "cancer 62 day waits",
    "delayed discharges",
    "MRSA bacteraemia cases",
)


def _pseudo_word(rng: random.Random) -> str:
    """A made-up word, so that the vocabulary is as wide as a real catalogue's."""
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 11)))


def _phrase(rng: random.Random, vocabulary: Sequence[str], low: int, high: int) -> str:
    """Words drawn evenly from the vocabulary."""
    return " ".join(rng.choices(vocabulary, k=rng.randint(low, high)))


def synthetic_items(count: int, rng: random.Random) -> list[Item]:
    """`count` made-up items with distinct codes, words drawn as in real text (Zipf's law)."""
    vocabulary = list(_TOPICS) + [_pseudo_word(rng) for _ in range(6000)]
    # A few words are in thousands of texts (as "attendances" would be), most in a handful.
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]

    def phrase(low: int, high: int) -> str:
        return " ".join(rng.choices(vocabulary, weights, k=rng.randint(low, high)))

    items = []
    for number in range(count):
        name = phrase(2, 6)
        words = "".join(c if c.isalnum() else " " for c in name.lower()).split()
        items.append(
            Item(
                # A code starts with a letter: "111 calls ..." -> "n111_calls_..."
                code=("n" if words[0][0].isdigit() else "") + "_".join([*words[:3], str(number)]),
                name=name.capitalize(),
                definition=phrase(20, 45).capitalize() + ".",
                unit="count",
                value_type="integer",
                aggregation="sum",
                org_aggregation="sum",
                disaggregation=(),
                primary_dataset="synthetic",
                synonyms=tuple(phrase(2, 5) for _ in range(rng.randint(0, 4))),
            )
        )
    return items


def _misspell(text: str, rng: random.Random) -> str:
    """The text with one letter changed."""
    position = rng.randrange(len(text))
    return text[:position] + rng.choice(string.ascii_lowercase) + text[position + 1 :]


def search_queries(items: Sequence[Item], count: int, rng: random.Random) -> list[str]:
    """Analysts' phrases, misspelt or shortened item names, and unrelated text."""
    queries = list(_ANALYST_QUERIES)
    while len(queries) < count:
        item = rng.choice(items)
        kind = rng.randrange(3)
        if kind == 0:
            queries.append(_misspell(item.name, rng))
        elif kind == 1:
            queries.append(" ".join(item.name.split()[:2]))
        else:
            queries.append(_phrase(rng, _TOPICS, 1, 5))
    return queries[:count]


def suggest_codes(items: Sequence[Item], count: int, rng: random.Random) -> list[str]:
    """Misspelt, extended and unknown item codes."""
    codes = ["ae_attendence", "ae_attendances_total", "bed_occupancy", "rtt_52_weeks", "zzzz"]
    while len(codes) < count:
        item = rng.choice(items)
        kind = rng.randrange(3)
        if kind == 0:
            codes.append(_misspell(item.code, rng))
        elif kind == 1:
            codes.append(item.code + "_total")
        else:
            codes.append("_".join(rng.choices(_TOPICS, k=3)).replace("&", ""))
    return codes[:count]


def _latencies(call: Callable[[str], object], inputs: Sequence[str]) -> list[float]:
    """Milliseconds taken by each call."""
    for text in inputs[:10]:
        call(text)  # warm-up: first calls pay for lazy set-up in numpy and rapidfuzz
    timings = []
    for text in inputs:
        start = time.perf_counter()
        call(text)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def _report(label: str, timings: list[float]) -> None:
    """p50 and p95 of the timings."""
    cuts = statistics.quantiles(timings, n=100)
    print(
        f"{label:<8} n={len(timings)}  p50 {statistics.median(timings):6.2f} ms"
        f"  p95 {cuts[94]:6.2f} ms  max {max(timings):6.2f} ms"
    )


def main() -> None:
    """Build the catalogue, time searches and suggestions, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    items = [*schemas.ITEMS.values(), *synthetic_items(arguments.items, rng)]

    start = time.perf_counter()
    index = ItemIndex(items)
    built = (time.perf_counter() - start) * 1000
    texts = sum(2 + len(item.synonyms) for item in items)
    print(
        f"catalogue: {len(index)} items, {texts} names, synonyms and codes; built in {built:.0f} ms"
    )

    _report("search", _latencies(index.search, search_queries(items, arguments.queries, rng)))
    _report("suggest", _latencies(index.suggest, suggest_codes(items, arguments.queries, rng)))


if __name__ == "__main__":
    main()
