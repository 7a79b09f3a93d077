"""Item values kept in the database (item_values) are exactly those computed from the returns'
Parquet files, for every item of every dataset: carried, derived, revised, and for returns
accepted before they were kept (filled by the first read); charts read the same either way."""

from __future__ import annotations

import io

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

import schemas
from services.catalogue import extracts, indicators
from services.catalogue.models import ItemValue, Submission
from services.catalogue.periods import parse_month
from services.catalogue.runtime import Runtime
from services.catalogue.states import SubmissionStatus
from services.validator import worker
from tests.api_calls import Headers, send, settled
from tests.conftest import register
from tests.schema_samples import valid_sample

MONTHS = ("2025-01", "2025-03")  # months of 31 days: the ECDS sample spans 30
# Trust -> its region and the datasets it sends (an A&E return or only patient-level ECDS, which
# the A&E counts are derived from; both at once, when the A&E return is the one read).
TRUSTS = {
    "RV1": ("Y56", ("ae_monthly", "ecds_attendance", "beds_monthly", "rtt_monthly")),
    "RV2": ("Y56", ("ecds_attendance", "beds_monthly", "rtt_monthly")),
    "RV3": ("Y58", ("ae_monthly", "beds_monthly", "rtt_monthly")),
}


def send_parquet(
    client: TestClient, trust: Headers, content: bytes, dataset: str, period: str
) -> None:
    sent = send(client, trust, content, filename="r.parquet", dataset=dataset, period=period)
    assert sent.status_code == 202, sent.text
    assert settled(client, trust, sent.json()["id"])["status"] == "accepted"


def parquet_of(dataset: str, org_code: str, period: str, bump: int) -> bytes:
    """A valid return, each count raised by ``bump`` (months differ; ECDS's are as sampled, its
    fields being tied to one another)."""
    frame = valid_sample(dataset, org_code=org_code, period=period)
    numbers = [
        name
        for name, dtype in frame.schema.items()
        if dtype.is_integer() and dataset != "ecds_attendance"
    ]
    frame = frame.with_columns(pl.col(c) + bump for c in numbers)
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture
def held(client: TestClient, running_worker: worker.WorkerHandle) -> dict[str, Headers]:
    """Every trust's returns for both months, then a revision of RV3's A&E return of January."""
    headers = {
        code: register(client, code, "trust", region) for code, (region, _) in TRUSTS.items()
    }
    for n, (code, (_, datasets)) in enumerate(TRUSTS.items()):
        for m, period in enumerate(MONTHS):
            for dataset in datasets:
                content = parquet_of(dataset, code, period, bump=10 * n + m)
                send_parquet(client, headers[code], content, dataset, period)
    revised = parquet_of("ae_monthly", "RV3", "2025-01", bump=500)
    send_parquet(client, headers["RV3"], revised, "ae_monthly", "2025-01")
    return headers


def from_parquet(runtime: Runtime, item: str, org_codes: list[str]) -> dict[tuple[str, str], float]:
    """(trust, month) -> the item's value, computed from the current returns' files."""
    months = [parse_month(m) for m in MONTHS]
    with runtime.factory() as session:
        found = extracts.plan(
            session=session,
            settings=runtime.settings,
            org_codes=org_codes,
            months=months,
            items=[item],
        )
    frame = indicators._by_trust_and_month(found.sources, item).collect()
    return {(str(c), str(m)): float(v) for c, m, v in frame.iter_rows() if v is not None}


def charted(
    runtime: Runtime, item: str, org_code: str
) -> tuple[dict[str, float], dict[str, float]]:
    """The chart of ``org_code`` over both months, and each trust's value in January (ranking)."""
    level = indicators.level_of(org_code)
    first, last = parse_month(MONTHS[0]), parse_month(MONTHS[-1])
    with runtime.factory() as session:
        trusts = indicators._trusts_of(session, level, org_code)
        scope = indicators.Scope(org_level=level, org_codes=trusts)
        series = indicators.monthly_series(
            session=session,
            settings=runtime.settings,
            item=item,
            scope=scope,
            first=first,
            last=last,
        )
        ranked = indicators.values_by_trust(
            session=session, settings=runtime.settings, item=item, month=first, org_codes=trusts
        )
        session.commit()
    return {p.period: p.value for p in series.points}, ranked


def kept_rows(runtime: Runtime) -> dict[tuple[str, str, bool], tuple[str, str, bool, float | None]]:
    with runtime.factory() as session:
        rows = session.execute(select(ItemValue)).scalars()
        return {
            (r.submission_id, r.item, r.derived): (r.org_code, r.month, r.held, r.value)
            for r in rows
        }


@pytest.mark.parametrize("lost", [False, True], ids=["kept-when-accepted", "filled-by-a-read"])
def test_kept_values_are_those_of_the_parquet_files_for_every_item(
    runtime: Runtime, held: dict[str, Headers], lost: bool
) -> None:
    if lost:
        # Returns accepted before the values were kept (migration 0012) have none.
        with runtime.factory() as session:
            session.execute(delete(ItemValue))
            session.commit()
    codes = sorted(TRUSTS)
    for item in schemas.ITEMS:
        expected = from_parquet(runtime, item, codes)
        assert len(expected) == len(codes) * len(MONTHS), item  # every trust holds the item
        chart, ranked = charted(runtime, item, indicators.NATIONAL)
        assert chart == {
            month: sum(v for (_, m), v in expected.items() if m == month) for month in MONTHS
        }, item
        assert ranked == {c: v for (c, m), v in expected.items() if m == MONTHS[0]}, item
        region, _ = charted(runtime, item, "Y56")
        assert region == {
            month: sum(v for (c, m), v in expected.items() if m == month and c != "RV3")
            for month in MONTHS
        }, item
        for code in codes:
            own, _ = charted(runtime, item, code)
            assert own == {m: v for (c, m), v in expected.items() if c == code}, (item, code)
    # Every accepted return has a row for each item it carries or derives, equal to its file's.
    kept = kept_rows(runtime)
    with runtime.factory() as session:
        accepted = session.scalars(
            select(Submission).where(Submission.status == SubmissionStatus.ACCEPTED)
        ).all()
        settings = runtime.settings
        for submission in accepted:
            for item, spec in schemas.ITEMS.items():
                for derived in (False, True):
                    carries = spec.primary_dataset == submission.dataset_code
                    derives = submission.dataset_code in schemas.datasets_deriving(item)
                    if (derives if derived else carries) and not (
                        lost and submission.superseded_by_id
                    ):
                        source = extracts.extract_data.Source(
                            org_code=submission.org_code,
                            month=submission.period,
                            dataset=submission.dataset_code,
                            submission_id=submission.id,
                            path=extracts.store.absolute(settings, submission.data_path or ""),
                            items=(item,),
                            derived=derived,
                        )
                        if lost and (derived and submission.org_code == "RV1"):
                            continue  # never read: RV1's A&E return is the one charted
                        value = (
                            indicators._by_trust_and_month([source], item)
                            .collect()[item]
                            .cast(pl.Float64)
                            .to_list()
                        )
                        key = (submission.id, item, derived)
                        assert kept[key] == (
                            submission.org_code,
                            submission.period,
                            True,
                            value[0],
                        ), key
    revision = [s for s in accepted if s.supersedes_id is not None]
    assert len(revision) == 1  # RV3's January A&E return, read in place of the first


def test_drb_migrate_keeps_the_values_of_returns_accepted_before(
    runtime: Runtime, held: dict[str, Headers]
) -> None:
    """The backfill (`drb migrate`) keeps every current return's values as acceptance would have,
    so that no chart's first read computes them from the files; a second run finds nothing."""
    kept_when_accepted = kept_rows(runtime)
    current = {
        key: row for key, row in kept_when_accepted.items() if key[0] not in superseded_ids(runtime)
    }
    with runtime.factory() as session:
        session.execute(delete(ItemValue))
        session.commit()
    filled = indicators.backfill_values(factory=runtime.factory, settings=runtime.settings)
    assert filled == len({key[0] for key in current})
    assert kept_rows(runtime) == current
    assert indicators.backfill_values(factory=runtime.factory, settings=runtime.settings) == 0


def superseded_ids(runtime: Runtime) -> set[str]:
    with runtime.factory() as session:
        return set(
            session.scalars(select(Submission.id).where(Submission.superseded_by_id.is_not(None)))
        )
