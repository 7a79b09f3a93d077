"""The demo: the NHS trusts in NHS England's 2016-2019 A&E data, three oversight bodies, an auditor.

The data files beside this module are public sector information licensed under the Open
Government Licence v3.0 (see ATTRIBUTION.md).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from services.catalogue import auth, coverage_index, data_requests, store, submissions
from services.catalogue.coverage_index import CoverageIndex
from services.catalogue.models import Organisation
from services.catalogue.regions import REGIONS
from services.catalogue.repositories import extracts as extract_repo
from services.catalogue.repositories import organisations as org_repo
from services.catalogue.repositories import requests as request_repo
from services.catalogue.repositories import submissions as submission_repo
from services.catalogue.settings import Settings
from services.catalogue.states import UNDECIDED, DeliveryStatus, OrgKind, RequestStatus

DATA_DIR = Path(__file__).parent
AE_FILE = DATA_DIR / "ae_attendances_2016_2019.csv"
ODS_2025 = DATA_DIR / "ods_nhs_trusts_etr_2025.csv"
ODS_2019 = DATA_DIR / "ods_nhs_trusts_etr_c2019.csv"
ACTOR = "DRB-DEMO"

# Trusts merged away before 2025 carry only the old regions; their government office region
# (gor_code) places them in today's NHS England region.
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

BODIES = (
    ("CQC", "Care Quality Commission", OrgKind.OVERSIGHT_BODY),
    ("NHSE", "NHS England", OrgKind.OVERSIGHT_BODY),
    ("UKHSA", "UK Health Security Agency", OrgKind.OVERSIGHT_BODY),
    ("NAO", "National Audit Office", OrgKind.AUDITOR),
    ("DRB-DEMO", "Broker stewards (demo)", OrgKind.STEWARD),
)
# Overlapping requests of the three bodies, over the months of the real A&E data, so that the
# coverage check has something to find: shared asks, derivable quarters and regions.
REQUESTS = (
    (
        "CQC",
        data_requests.RequestSpec(
            title="Urgent and emergency care in London: four-hour performance",
            purpose="Monitor A&E waiting times at London trusts ahead of inspections.",
            legal_basis=(
                "Health and Social Care Act 2008, section 64 (CQC powers to require information)"
            ),
            items=("ae_attendances", "ae_breaches"),
            organisations={"region": "Y56"},
            period_start="2018-04",
            period_end="2019-03",
            due_days=20,
        ),
    ),
    (
        "NHSE",
        data_requests.RequestSpec(
            title="Winter pressures: A&E activity and general and acute beds",
            purpose="Track winter demand and bed occupancy across every NHS trust.",
            legal_basis=(
                "Health and Social Care Act 2012, section 259 (NHS England data collections)"
            ),
            items=("ae_attendances", "ae_admissions", "beds_ga_available", "beds_ga_occupied"),
            organisations={"kind": "trust"},
            period_start="2018-10",
            period_end="2019-03",
            due_days=15,
        ),
    ),
    (
        "UKHSA",
        data_requests.RequestSpec(
            title="Emergency admissions surveillance, North West, by quarter",
            purpose="Regional surveillance of emergency admissions for seasonal illness.",
            legal_basis="Health Protection (Notification) Regulations 2010",
            items=("ae_admissions",),
            organisations={"region": "Y62"},
            period_start="2018-Q2",
            period_end="2019-Q1",
            period_type="quarter",
            org_level="region",
            due_days=30,
        ),
    ),
)

# Real monthly A&E returns sent through the submission path: London trusts from April to
# December 2018 (what CQC asks for, and part of NHS England's winter), North West trusts from
# October to December 2018 (UKHSA's fourth quarter), each after a year of HISTORY. One trust
# first sends NHS England's published layout as it is (column `type`, missing department rows):
# rejected with row-level errors, then corrected.
RETURNS = {
    "Y56": tuple(f"2018-{m:02d}" for m in range(4, 13)),
    "Y62": ("2018-10", "2018-11", "2018-12"),
}
# The year before any request's months (April 2017 to March 2018), held for the same trusts as
# data already collected: no body asked for it, but each trust's charts (/trusts/<code>) and the
# submission-time check then have 15 to 21 months of history, more than Making Data Count's 12.
HISTORY = (*(f"2017-{m:02d}" for m in range(4, 13)), "2018-01", "2018-02", "2018-03")
FIRST_ATTEMPT = ("RJ1", "2018-04")

# Trusts whose tokens the demo prints (all tokens are in the tokens file).
FEATURED_TRUSTS = ("RJ1", "R0A", "RRK")


@dataclass(frozen=True)
class DemoTrust:
    """A trust of the demo, with its current NHS England region."""

    code: str
    name: str
    region: str


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def trusts() -> list[DemoTrust]:
    """The English NHS trusts that appear in the A&E data, with name and region."""
    in_data = {row["org_code"] for row in _rows(AE_FILE)}
    current = {row["org_code"]: row for row in _rows(ODS_2025)}
    older = {row["org_code"]: row for row in _rows(ODS_2019)}
    found: list[DemoTrust] = []
    for code in sorted(in_data):
        if code in current and current[code]["national_grouping"] in REGIONS:
            row = current[code]
            found.append(DemoTrust(code, row["name"], row["national_grouping"]))
        elif code in older and older[code]["gor_code"] in GOR_TO_REGION:
            row = older[code]
            found.append(DemoTrust(code, row["name"], GOR_TO_REGION[row["gor_code"]]))
    return found


@dataclass
class DemoSummary:
    """What the seed did, and the tokens to try the demo with."""

    organisations_added: int = 0
    trusts: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    tokens_file: Path | None = None
    requests: list[str] = field(default_factory=list)

    def describe(self, *, base_url: str) -> str:
        """The text ``drb seed-demo`` prints."""
        lines = [
            f"Demo loaded: {self.trusts} NHS trusts from NHS England's A&E data (2016-2019), "
            f"{len(BODIES) - 2} oversight bodies, an auditor and a steward "
            f"({self.organisations_added} organisations added this time).",
            f"Demo tokens (all {len(self.tokens)} are in {self.tokens_file}):",
        ]
        for code in [b[0] for b in BODIES] + list(FEATURED_TRUSTS):
            if code in self.tokens:
                lines.append(f"  {code:<9} {self.kinds[code]:<15} {self.tokens[code]}")
        if self.requests:
            lines.append("Demo requests (overlapping, so later ones reuse earlier asks):")
            lines.extend(f"  {line}" for line in self.requests)
        example = self.tokens.get("NHSE", "")
        trust = self.tokens.get("RJ1", "")
        lines.append(
            "Try:\n"
            f"  curl -H 'Authorization: Bearer {example}' {base_url}/v1/requests\n"
            f"  curl -H 'Authorization: Bearer {trust}' {base_url}/v1/asks   (RJ1's asks)\n"
            f"  open {base_url}/docs and press 'Authorize' with a token above"
        )
        return "\n".join(lines)


def _load_tokens(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in loaded.items()}


def _save_tokens(path: Path, tokens: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # The demo keeps its plain tokens so that `make run` can print them again; owner-only.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(tokens, handle, indent=2, sort_keys=True)
    temporary.replace(path)


def seed(*, session: Session, tokens_file: Path) -> DemoSummary:
    """Register the demo organisations and give each a token; safe to run again."""
    summary = DemoSummary(tokens_file=tokens_file)
    wanted: list[Organisation] = [
        Organisation(code=code, name=name, kind=kind, region=None) for code, name, kind in BODIES
    ]
    demo_trusts = trusts()
    summary.trusts = len(demo_trusts)
    wanted += [
        Organisation(code=t.code, name=t.name, kind=OrgKind.TRUST, region=t.region)
        for t in demo_trusts
    ]
    existing = org_repo.existing_codes(session=session, codes=[o.code for o in wanted])
    for organisation in wanted:
        if organisation.code not in existing:
            session.add(organisation)
            summary.organisations_added += 1
        summary.kinds[organisation.code] = organisation.kind
    session.flush()
    if summary.organisations_added:
        coverage_index.bump(session=session, key=coverage_index.ORGANISATIONS_KEY)

    saved = _load_tokens(tokens_file)
    for organisation in wanted:
        kept = saved.get(organisation.code)
        principal = auth.authenticate(session=session, token=kept) if kept else None
        if kept is None or principal is None or principal.org_code != organisation.code:
            # The operator's own command: each demo token is its organisation's admin token,
            # so `make run` users issue their organisation's further tokens with it.
            _token, kept = auth.issue_system_token(
                session=session, org_code=organisation.code, actor=ACTOR, label="demo"
            )
        summary.tokens[organisation.code] = kept
    _save_tokens(tokens_file, summary.tokens)
    summary.requests = _register_requests(session)
    return summary


def ae_returns() -> list[tuple[str, str, str, bytes]]:
    """The demo's ae_monthly returns as CSV files: (org_code, period, filename, content)."""
    regions = {t.code: t.region for t in trusts()}
    figures: dict[tuple[str, str], dict[str, tuple[str, str, str]]] = {}
    for row in _rows(AE_FILE):
        period = row["period"][:7]
        region = regions.get(row["org_code"], "")
        if region in RETURNS and (period in RETURNS[region] or period in HISTORY):
            figures.setdefault((row["org_code"], period), {})[row["type"]] = (
                row["attendances"],
                row["breaches"],
                row["admissions"],
            )
    files: list[tuple[str, str, str, bytes]] = []
    for (org_code, period), by_type in sorted(figures.items()):
        if (org_code, period) == FIRST_ATTEMPT:
            published = io.StringIO()
            writer = csv.writer(published, lineterminator="\r\n")
            writer.writerow(["period", "org_code", "type", "attendances", "breaches", "admissions"])
            for kind, values in sorted(by_type.items()):
                writer.writerow([f"{period}-01", org_code, kind, *values])
            files.append(
                (org_code, period, "ae-published-layout.csv", published.getvalue().encode())
            )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(
            ["period", "org_code", "department_type", "attendances", "breaches", "admissions"]
        )
        # Every return has the three department rows; zeros where a trust has no such department.
        for kind in ("1", "2", "other"):
            writer.writerow([f"{period}-01", org_code, kind, *by_type.get(kind, ("0", "0", "0"))])
        files.append((org_code, period, f"ae-{org_code}-{period}.csv", out.getvalue().encode()))
    return files


def send_returns(*, session: Session, settings: Settings) -> list[str]:
    """Receive the demo returns as submissions (once); the ids of those still to validate."""
    pending: list[str] = []
    staging = store.staging_dir(settings)
    for org_code, period, filename, content in ae_returns():
        staged = staging / f"demo-{org_code}-{period}-{len(content)}"
        staged.write_bytes(content)
        upload = submissions.Upload(
            path=staged,
            filename=filename,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        submission, _created = submissions.receive(
            session=session,
            settings=settings,
            org_code=org_code,
            dataset_code="ae_monthly",
            period=period,
            upload=upload,
            idempotency_key=None,
        )
        staged.unlink(missing_ok=True)
        if submission.status in UNDECIDED:
            pending.append(submission.id)
    return pending


def _register_requests(session: Session) -> list[str]:
    """Register the demo requests not registered yet; a line on each."""
    lines = []
    index = CoverageIndex()
    for body, spec in REQUESTS:
        existing = [
            r
            for r in request_repo.list_all(session=session, body_code=body)
            if r.title == spec.title and r.status == RequestStatus.ACTIVE
        ]
        if existing:
            request = existing[0]
            coverage = request.coverage
            burden = data_requests.burden_now(session=session, request=request)
        else:
            outcome = data_requests.register(
                session=session, index=index, body_code=body, spec=spec, dry_run=False
            )
            coverage = outcome.check.coverage_dict()
            burden = dict(outcome.check.burden.figures())
            session.flush()
        total = int(coverage["cells_requested"]) or 1
        shares = ", ".join(
            f"{100 * int(coverage[key]) / total:.0f}% {key.removeprefix('cells_')}"
            for key in ("cells_held", "cells_scheduled", "cells_derivable", "cells_new")
            if coverage[key]
        )
        lines.append(
            f"{body}: {spec.title}: {total:,} cells ({shares}); "
            f"{burden['returns_requested']:,} returns requested, "
            f"{burden['returns_imposed']:,} asked, {burden['hours_avoided']} hours avoided"
        )
    return lines


def returns_summary(*, session: Session) -> str:
    """What happened to the demo's returns, in a few lines."""
    counts = submission_repo.counts_by_status(session=session)
    rejected = submission_repo.first_rejected(session=session)
    lines = [
        f"Real A&E returns sent through the validator: {counts.get('accepted', 0)} accepted, "
        f"{counts.get('rejected', 0)} rejected."
    ]
    if rejected is not None:
        lines.append(
            f"  {rejected.org_code} first sent NHS England's published layout for "
            f"{rejected.period}: see GET /v1/submissions/{rejected.id}/errors "
            f"(with {rejected.org_code}'s token)"
        )
    built = extract_repo.built_per_body(session=session)
    delivered = extract_repo.count_deliveries(
        session=session, statuses=(DeliveryStatus.DELIVERED, DeliveryStatus.ACKNOWLEDGED)
    )
    if built:
        shown = "; ".join(
            f"{body} {count} ({complete or 0} complete)" for body, count, complete in built
        )
        lines.append(f"Extracts built: {shown}; {delivered} delivered to var/outbox/<body>/.")
    return "\n".join(lines)
