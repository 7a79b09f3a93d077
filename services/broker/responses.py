"""The bodies the API answers with: one Pydantic model per response, so that `/openapi.json`
describes every one and no route returns an untyped dict.

The domain (``services.catalogue``) returns domain data; these models are the JSON. Times are
strings as the domain writes them (``datetime.isoformat()``: an offset, never a ``Z``), and a key
that a body leaves out when it has nothing to say (a delivery's ``message``, a bad event's
``at``) is an optional field that the route leaves unset (``response_model_exclude_unset``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from services.catalogue import asks, audit, extracts, submission_warnings, submissions
from services.catalogue.burden_report import BREAKDOWNS, FIGURES, Completion, LedgerRow, Report
from services.catalogue.models import (
    DataRequest,
    Extract,
    ExtractDelivery,
    Organisation,
    Submission,
    Token,
)
from services.catalogue.regions import REGIONS
from services.catalogue.states import DeliveryStatus

Timestamp = str  # ISO 8601 with an offset, as datetime.isoformat() writes it
Day = str  # YYYY-MM-DD
Answer = Literal["ok", "unavailable"]
Number = int | float  # a figure given as an int stays one on the wire (60, not 60.0)

# A channel took these deliveries: when it did is shown.
TAKEN = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.ACKNOWLEDGED)


class Out(BaseModel):
    """A response body: its fields are exactly the keys of the JSON."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------


class Health(Out):
    """Whether the database and the queue answer (200 when both do, else 503)."""

    status: Answer
    database: Answer
    queue: Answer
    mode: Literal["embedded", "distributed"]


# ---------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------


class ItemOut(Out):
    """One item: a measure with one meaning."""

    code: str
    name: str
    definition: str
    unit: str
    value_type: str
    aggregation: str
    org_aggregation: str
    disaggregation: list[str]
    primary_dataset: str
    datasets: list[str]
    derivable_from: list[str]


class ItemMatch(Out):
    """An item ranked by how closely it matches a search."""

    code: str
    name: str
    score: float
    matched: str


class DatasetSummary(Out):
    """A dataset in the list."""

    code: str
    version: int
    title: str
    period_type: str
    items: list[str]


class DatasetDefinition(BaseModel):
    """A dataset's definition as published (columns, checks, key, items, burden parameters,
    derivations), with when that version was published and every version there is.

    An older version keeps the shape it was published with, so keys beyond these may appear.
    """

    model_config = ConfigDict(extra="allow")

    code: str
    version: int
    title: str
    period_type: str
    key: list[str] = Field(default_factory=list)
    items: list[str] = Field(default_factory=list)
    columns: list[dict[str, Any]] = Field(default_factory=list)
    published_at: Timestamp
    versions: list[int]


class TableSchema(BaseModel):
    """A Frictionless Table Schema; the dataset's cross-field rules are in ``x-rules``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    fields: list[dict[str, Any]]
    primary_key: list[str] = Field(alias="primaryKey")
    missing_values: list[str] = Field(alias="missingValues")
    x_rules: list[dict[str, Any]] = Field(alias="x-rules")


# ---------------------------------------------------------------------------------------------
# Organisations and tokens
# ---------------------------------------------------------------------------------------------


class OrganisationOut(Out):
    """An organisation as the API shows it."""

    code: str
    name: str
    kind: str
    region: str | None
    region_name: str | None
    created_at: datetime

    @classmethod
    def of(cls, organisation: Organisation) -> OrganisationOut:
        """Build from a model row."""
        return cls(
            code=organisation.code,
            name=organisation.name,
            kind=organisation.kind,
            region=organisation.region,
            region_name=REGIONS.get(organisation.region or ""),
            created_at=organisation.created_at,
        )


class TokenIssued(Out):
    """A new token: shown once, stored only as a hash."""

    id: str
    token: str
    org_code: str
    label: str | None
    roles: list[str]
    created_at: datetime
    expires_at: datetime | None


class IssuedBy(Out):
    """Who issued a token: an organisation and the token it used (``token_id`` null for what
    start-up or an operator's command issued; both null for tokens issued before they were
    recorded: the audit log's ``token.issued`` event names the issuer)."""

    org_code: str | None
    token_id: str | None


class TokenInfo(Out):
    """A token's metadata (never the token)."""

    id: str
    org_code: str
    label: str | None
    roles: list[str]
    created_at: datetime
    issued_at: datetime
    issued_by: IssuedBy
    revoked: bool
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="Null only for the DRB_ADMIN_TOKEN.")

    @classmethod
    def of(cls, token: Token) -> TokenInfo:
        """A stored token's metadata."""
        return cls(
            id=token.id,
            org_code=token.org_code,
            label=token.label,
            roles=list(token.roles or []),
            created_at=token.created_at,
            issued_at=token.created_at,
            issued_by=IssuedBy(org_code=token.issued_by_org, token_id=token.issued_by_token),
            revoked=token.revoked_at is not None,
            revoked_at=token.revoked_at,
            expires_at=token.expires_at,
        )


class DeliverySet(Out):
    """An organisation's delivery channel as set."""

    code: str
    delivery: dict[str, Any] | None


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


class BurdenFigures(Out):
    """Returns and hours requested (had nothing been shared), imposed (new asks) and avoided."""

    returns_requested: int
    returns_imposed: int
    returns_avoided: int
    hours_requested: float
    hours_imposed: float
    hours_avoided: float


class CostedFigures(BurdenFigures):
    """The burden figures with the cost avoided, at the broker's hourly rate."""

    cost_avoided_gbp: float


class ItemCoverage(Out):
    """How many of an item's (trust, period) cells are held, scheduled, derivable or new."""

    item: str
    cells_requested: int
    cells_held: int
    cells_scheduled: int
    cells_derivable: int
    cells_new: int
    status: Literal["covered", "partial", "new"]


class Coverage(Out):
    """The coverage check per item, with totals."""

    items: list[ItemCoverage]
    cells_requested: int
    cells_held: int
    cells_scheduled: int
    cells_derivable: int
    cells_new: int


class AskCounts(Out):
    """How many of a request's asks are in each status now."""

    outstanding: int
    submitted: int
    accepted: int
    overdue: int
    cancelled: int


class AsksMade(Out):
    """The asks a registration imposed and those it joined."""

    created: int
    joined: int


class AsksWouldMake(Out):
    """The asks a dry run would impose."""

    would_create: int


class RequestOut(Out):
    """A registered request, its burden now, and (one request) how its asks stand."""

    id: str
    body: str
    status: str
    title: str
    purpose: str
    legal_basis: str
    items: list[str]
    organisations: list[str] | dict[str, str]
    org_count: int
    period_start: str
    period_end: str
    period_type: str
    org_level: str
    due_days: int
    created_at: Timestamp
    withdrawn_at: Timestamp | None
    coverage: Coverage
    burden: BurdenFigures
    asks: AskCounts | None = Field(default=None, description="Only for one request.")

    @classmethod
    def of(
        cls,
        request: DataRequest,
        *,
        burden: Mapping[str, object],
        asks: Mapping[str, int] | None = None,
    ) -> Self:
        """The request as registered, with its burden (and, given them, its asks)."""
        shown: dict[str, object] = {
            "id": request.id,
            "body": request.body_code,
            "status": request.status,
            "title": request.title,
            "purpose": request.purpose,
            "legal_basis": request.legal_basis,
            "items": request.items,
            "organisations": request.population,
            "org_count": len(request.org_codes),
            "period_start": request.period_start,
            "period_end": request.period_end,
            "period_type": request.period_type,
            "org_level": request.org_level,
            "due_days": request.due_days,
            "created_at": request.created_at.isoformat(),
            "withdrawn_at": request.withdrawn_at.isoformat() if request.withdrawn_at else None,
            "coverage": request.coverage,
            "burden": burden,
        }
        if asks is not None:
            shown["asks"] = asks
        return cls.model_validate(shown)


class RequestRegistered(RequestOut):
    """A request just registered, with the asks it made or joined."""

    asks: AsksMade  # type: ignore[assignment]


class RequestDryRun(Out):
    """What registering would do: nothing is recorded."""

    id: None
    status: Literal["dry_run"]
    org_count: int
    coverage: Coverage
    burden: BurdenFigures
    asks: AsksWouldMake


# ---------------------------------------------------------------------------------------------
# Asks and submissions
# ---------------------------------------------------------------------------------------------


class AskOut(Out):
    """One return asked of a trust, for every request that needs it."""

    id: str
    org_code: str
    dataset: str
    period: str
    due_date: Day
    status: str
    requested_by: list[str]
    items: list[str]
    created_at: Timestamp

    @classmethod
    def of(cls, shown: asks.Shown) -> AskOut:
        """The ask as API.md shows it."""
        ask = shown.ask
        return cls(
            id=ask.id,
            org_code=ask.org_code,
            dataset=ask.dataset_code,
            period=ask.period,
            due_date=ask.due_date.isoformat(),
            status=shown.status,
            requested_by=shown.requested_by,
            items=sorted(ask.items),
            created_at=ask.created_at.isoformat(),
        )


class SubmissionOut(Out):
    """A return sent, and what the validator made of it."""

    id: str
    org_code: str
    dataset: str
    dataset_version: int
    period: str
    status: str
    status_detail: str | None
    rows: int | None
    error_count: int
    revision: int | None
    supersedes: str | None
    superseded_by: str | None
    filename: str | None = Field(
        description="The name the trust gave the file; null for an auditor (a name can say a"
        " patient's or a person's)."
    )
    format: str | None
    size_bytes: int
    sha256: str | None = Field(
        description="The file's SHA-256; null for an auditor: a small file's hash can be"
        " matched to its few values by trying them."
    )
    received_at: Timestamp
    validated_at: Timestamp | None
    warnings: list[dict[str, Any]] = Field(
        description="Values far outside the trust's own history: {item, period, org_code, value,"
        " mean, upl, lpl, message}; an auditor's name the item and month only."
    )

    @classmethod
    def of(cls, submission: Submission, *, with_values: bool = True) -> SubmissionOut:
        """The submission; without ``with_values`` (auditors) its warnings name the item and
        month only, and neither the file's name nor its hash is given. ``status_detail`` says
        why a ``validating`` submission waits when it is the broker's doing (the store could
        not be written); otherwise null."""
        warnings = list(submission.warnings or [])
        if not with_values:
            warnings = [submission_warnings.message_without_values(w) for w in warnings]
        return cls(
            id=submission.id,
            org_code=submission.org_code,
            dataset=submission.dataset_code,
            dataset_version=submission.dataset_version,
            period=submission.period,
            status=submission.status,
            status_detail=submissions.status_detail(submission),
            rows=submission.rows,
            error_count=submission.error_count,
            revision=submission.revision,
            supersedes=submission.supersedes_id,
            superseded_by=submission.superseded_by_id,
            filename=submission.filename if with_values else None,
            format=submission.format,
            size_bytes=submission.size_bytes,
            sha256=submission.sha256 if with_values else None,
            received_at=submission.received_at.isoformat(),
            validated_at=(submission.validated_at.isoformat() if submission.validated_at else None),
            warnings=warnings,
        )


class SubmissionErrorOut(Out):
    """One row-level error; an auditor's has no value."""

    row: int | None
    column: str | None
    check: str
    value: str | None
    message: str


# ---------------------------------------------------------------------------------------------
# Extracts
# ---------------------------------------------------------------------------------------------


class DeliveryShown(Out):
    """How an extract revision was delivered, as its body sees it."""

    channel: str
    status: str
    message_id: str | None
    updated_at: Timestamp | None = Field(
        default=None, description="Once sent, delivered or acknowledged."
    )
    message: str | None = Field(default=None, description="When retrying or failed.")

    @classmethod
    def of(cls, delivery: ExtractDelivery) -> DeliveryShown:
        """The channel, a plain status and the message id, with no server path (a file is
        named by its file name alone) and no raw error; ``updated_at`` once it went, and a
        plain ``message`` while it is retried or once it failed."""
        message_id = delivery.message_id
        if message_id is not None and delivery.channel == "files":
            message_id = message_id.rstrip("/").rsplit("/", 1)[-1]
        shown = cls(channel=delivery.channel, status=delivery.status, message_id=message_id)
        if delivery.status in TAKEN:
            shown.updated_at = delivery.updated_at.isoformat()
        if delivery.status == DeliveryStatus.PENDING and delivery.last_error is not None:
            shown.message = extracts.DELIVERY_RETRYING
        elif delivery.status == DeliveryStatus.FAILED:
            shown.message = extracts.DELIVERY_FAILED
        return shown


class ExtractOut(Out):
    """One revision of an extract."""

    id: str
    request_id: str
    period: str
    key: list[str]
    items: list[str]
    revision: int
    complete: bool
    missing: list[Any]
    rows: int
    sha256: str
    created_at: Timestamp
    delivery: DeliveryShown | None

    @classmethod
    def of(cls, extract: Extract, delivery: ExtractDelivery | None) -> ExtractOut:
        """The revision, what it holds and how it was delivered."""
        return cls(
            id=extract.id,
            request_id=extract.request_id,
            period=extract.period,
            key=extract.manifest.get("key", []),
            items=extract.items,
            revision=extract.revision,
            complete=extract.complete,
            missing=extract.manifest.get("missing", []),
            rows=extract.rows,
            sha256=extract.sha256,
            created_at=extract.created_at.isoformat(),
            delivery=None if delivery is None else DeliveryShown.of(delivery),
        )


class ExtractManifest(BaseModel):
    """What an extract holds and where it came from."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    request_id: str
    period: str
    revision: int
    rows: int
    sha256: str
    key: list[str]
    items: list[str]
    sources: list[str]
    missing: list[Any]
    complete: bool
    dataset_versions: dict[str, Any]
    columns: list[dict[str, Any]] = Field(alias="schema")
    created_at: Timestamp


# ---------------------------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------------------------


class NotificationOut(Out):
    """A reminder or summary sent (stewards also see where it went and why it failed)."""

    id: str
    org_code: str
    kind: str
    day: Day
    channel: str
    target: str | None
    status: str
    message_id: str | None
    subject: str
    body: str
    asks: list[dict[str, Any]]
    attempts: int
    created_at: Timestamp
    sent_at: Timestamp | None
    message: str | None = Field(default=None, description="When failed.")
    error: str | None = Field(default=None, description="When failed; stewards only.")


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


class BodyFigures(CostedFigures):
    body: str


class TrustFigures(CostedFigures):
    org_code: str


class DatasetFigures(CostedFigures):
    dataset: str


class MonthFigures(CostedFigures):
    period: str


class DatasetBurden(Out):
    base_minutes: Number
    minutes_per_item: Number
    source: str


class BurdenParameters(Out):
    """The burden model's parameters, with their sources."""

    hourly_rate_gbp: float
    hourly_rate_source: str
    datasets: dict[str, DatasetBurden]


# The key of each breakdown's rows.
BREAKDOWN_KEYS = {"body": "body", "trust": "org_code", "dataset": "dataset", "month": "period"}


class BurdenBreakdowns(Out):
    """Burden requested, imposed and avoided: totals and breakdowns."""

    totals: CostedFigures
    by_body: list[BodyFigures]
    by_trust: list[TrustFigures]
    by_dataset: list[DatasetFigures]
    by_month: list[MonthFigures]

    @classmethod
    def of(cls, report: Report, hourly_rate: float) -> Self:
        """The report's figures at ``hourly_rate``, each breakdown sorted by its key."""
        shown: dict[str, Any] = {"totals": report.totals.figures(hourly_rate)}
        for name, attribute in BREAKDOWNS.items():
            shown[attribute] = [
                {BREAKDOWN_KEYS[name]: key, **tally.figures(hourly_rate)}
                for key, tally in sorted(report.by[name].items())
            ]
        return cls.model_validate(shown)

    def csv_rows(self) -> Iterator[list[object]]:
        """Rows of the CSV of API.md: breakdown, key, then the seven figures."""
        yield ["breakdown", "key", *FIGURES]
        totals = self.totals.model_dump()
        yield ["totals", "", *(totals[f] for f in FIGURES)]
        for name, attribute in BREAKDOWNS.items():
            for row in getattr(self, attribute):
                shown = row.model_dump()
                yield [name, shown[BREAKDOWN_KEYS[name]], *(shown[f] for f in FIGURES)]


class BurdenReport(BurdenBreakdowns):
    """The burden reduction report, with the burden model's parameters."""

    parameters: BurdenParameters


class LedgerEntry(Out):
    """A requested return, or a request's share of an ask."""

    request_id: str
    body: str
    entry: Literal["requested", "imposed"]
    dataset: str
    org_code: str
    period: str
    returns: int
    hours: float
    ask_id: str | None

    @classmethod
    def of(cls, row: LedgerRow) -> LedgerEntry:
        """The row, its minutes as hours (to 4 places)."""
        values = dataclasses.asdict(row)
        minutes = values.pop("minutes")
        return cls.model_validate({**values, "hours": round(minutes / 60, 4)})


class CompletenessCounts(Out):
    asks: int
    due: int
    returned: int
    on_time: int
    late: int
    outstanding: int
    overdue: int
    reporting_rate: float | None
    on_time_rate: float | None


class TrustCompleteness(CompletenessCounts):
    org_code: str


class DatasetCompleteness(CompletenessCounts):
    dataset: str


class Completeness(Out):
    """Asks due, returned, on time, late and outstanding, by trust and by dataset."""

    by_trust: list[TrustCompleteness]
    by_dataset: list[DatasetCompleteness]

    @classmethod
    def of(cls, per: Mapping[str, Mapping[str, Completion]]) -> Completeness:
        """Each trust's and each dataset's counts and rates, by code."""

        def rows(name: str, key_name: str) -> list[dict[str, object]]:
            return [
                {
                    key_name: key,
                    **CompletenessCounts.model_validate(counts, from_attributes=True).model_dump(),
                }
                for key, counts in sorted(per[name].items())
            ]

        return cls.model_validate(
            {"by_trust": rows("trust", "org_code"), "by_dataset": rows("dataset", "dataset")}
        )


# ---------------------------------------------------------------------------------------------
# The audit log
# ---------------------------------------------------------------------------------------------


class AuditEventOut(Out):
    """One event of the hash-chained log; a value that cannot be read is shown as stored."""

    id: int
    at: Timestamp | None
    actor: str | None
    token_id: str | None = Field(description="The token the actor used; null for the system.")
    person: str | None = Field(description="The person behind the token: null until people exist.")
    action: str | None
    subject_type: str | None
    subject_id: str | None
    detail: Any
    prev_hash: str | None
    hash: str | None

    @classmethod
    def of(cls, event: audit.StoredEvent) -> AuditEventOut:
        """The event as stored (a time as ISO 8601, an unreadable value as its stored text)."""
        values = event.values
        at = values["at"]
        return cls(
            id=event.id,
            at=at.isoformat() if isinstance(at, datetime) else at,
            actor=values["actor"],
            token_id=values["token_id"],
            person=None,
            action=values["action"],
            subject_type=values["subject_type"],
            subject_id=values["subject_id"],
            detail=values["detail"],
            prev_hash=values["prev_hash"],
            hash=values["hash"],
        )


class BadEventOut(Out):
    """Where the chain stops telling the truth, and why (``at``, ``action`` and ``after_id``
    only when known)."""

    id: int | None
    at: Timestamp | None = None
    action: str | None = None
    after_id: int | None = Field(default=None, description="A truncated chain's last event.")
    reason: str

    @classmethod
    def of(cls, bad: audit.BadEvent) -> BadEventOut:
        """Left unset (and so out of the body) what is not known."""
        known = {
            name: value
            for name, value in (("at", bad.at), ("action", bad.action), ("after_id", bad.after_id))
            if value is not None
        }
        return cls(id=bad.id, reason=bad.reason, **known)


class AuditCheck(Out):
    """The audit chain re-computed."""

    valid: bool
    events: int
    first_bad_event: BadEventOut | None
    first_invalid_id: int | None
    breaks: int = Field(description="How many breaks the chain has: every one is counted.")
    bad_events: list[BadEventOut] = Field(
        description=f"The first {audit.SHOWN_BREAKS} breaks, in the chain's order."
    )

    @classmethod
    def of(cls, check: audit.ChainCheck) -> AuditCheck:
        """The check's verdict."""
        return cls(
            valid=check.valid,
            events=check.events,
            first_bad_event=None if check.first_bad is None else BadEventOut.of(check.first_bad),
            first_invalid_id=check.first_bad_id,
            breaks=check.breaks,
            bad_events=[BadEventOut.of(bad) for bad in check.bad_events],
        )


class AuditHeadOut(Out):
    """The chain's head, to keep outside the database."""

    events: int
    last_id: int | None
    last_hash: str
    at: Timestamp
    signature: str | None


# ---------------------------------------------------------------------------------------------
# Measurement for improvement
# ---------------------------------------------------------------------------------------------


class SpcPointOut(Out):
    """A point of an XmR chart, with its segment's limits and the rule it triggers."""

    period: str
    value: Number
    mean: Number
    upl: Number
    lpl: Number
    upper_2sigma: Number
    lower_2sigma: Number
    rule: str
    point_type: str


class SpcChart(Out):
    """An XmR chart with the Making Data Count icons."""

    points: list[SpcPointOut]
    variation_icon: str
    assurance_icon: str
    short_series_warning: bool


class IndicatorChart(SpcChart):
    """The chart of an item held, with the months left out and the submissions drawn on."""

    item: str
    org_code: str
    org_level: str
    missing: list[str]
    sources: list[str]
    min_trusts: int | None = Field(
        description=(
            "Disclosure control: for an oversight body's region or national chart, every month"
            " shown adds up at least this many trusts' values (null: no minimum applies)."
        )
    )
    suppressed: list[str] = Field(
        description="Months held but not shown: fewer than min_trusts trusts have a value."
    )
