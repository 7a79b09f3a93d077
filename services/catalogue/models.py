"""The catalogue's tables: one declarative model set shared by the API, the worker and Alembic."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.catalogue.states import (
    AskStatus,
    DeliveryStatus,
    JobStatus,
    NotificationStatus,
    OrgKind,
    RequestStatus,
    SubmissionStatus,
)

# Named constraints so that Alembic migrations are stable on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The kinds an organisation may be (``organisations.register`` refuses any other).
ORGANISATION_KINDS: tuple[OrgKind, ...] = tuple(OrgKind)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random identifier (UUID4 text)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC timestamps")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Organisation(Base):
    """A trust, oversight body, auditor or steward, identified by its ODS code."""

    __tablename__ = "organisations"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    region: Mapped[str | None] = mapped_column(String(8), index=True)
    delivery: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Token(Base):
    """A bearer token of one organisation; only its SHA-256 is kept."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_code: Mapped[str] = mapped_column(
        ForeignKey("organisations.code", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # Refused from then on; null only for the DRB_ADMIN_TOKEN (its setting is its lifetime).
    expires_at: Mapped[datetime | None]
    # What the token may do within its organisation beyond its kind's role (states.TokenRole):
    # "admin" issues and revokes the organisation's tokens. A list, so that roles can be added.
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Who issued it: the organisation and the token it used (both null for tokens issued before
    # revision 0009; the token null for what start-up issues, DRB_ADMIN_TOKEN).
    issued_by_org: Mapped[str | None] = mapped_column(String(16))
    issued_by_token: Mapped[str | None] = mapped_column(String(36))


class Item(Base):
    """One measure with one meaning, collected in one or more datasets."""

    __tablename__ = "items"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(64))
    value_type: Mapped[str] = mapped_column(String(20))
    aggregation: Mapped[str] = mapped_column(String(10))
    org_aggregation: Mapped[str] = mapped_column(String(10))
    disaggregation: Mapped[list[str]] = mapped_column(JSON, default=list)
    primary_dataset: Mapped[str] = mapped_column(ForeignKey("datasets.code"))
    # Other names analysts use for the same measure (for search and suggestions).
    synonyms: Mapped[list[str]] = mapped_column(JSON, default=list)


class Dataset(Base):
    """The shape of one return; its definitions are versioned in ``dataset_versions``."""

    __tablename__ = "datasets"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    period_type: Mapped[str] = mapped_column(String(10))
    current_version: Mapped[int] = mapped_column(Integer)
    # Burden parameters (Standard Cost Model): minutes per return and per item in it.
    base_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    minutes_per_item: Mapped[float] = mapped_column(Float, default=0.0)


class DatasetVersion(Base):
    """One published definition of a dataset, kept so that old submissions stay readable."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    dataset_code: Mapped[str] = mapped_column(ForeignKey("datasets.code"))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetItem(Base):
    """Which dataset carries which item (an item may be carried by several)."""

    __tablename__ = "dataset_items"

    dataset_code: Mapped[str] = mapped_column(ForeignKey("datasets.code"), primary_key=True)
    item_code: Mapped[str] = mapped_column(ForeignKey("items.code"), primary_key=True)


class Derivation(Base):
    """That an item can be computed from another dataset's rows (e.g. A&E counts from ECDS)."""

    __tablename__ = "derivations"

    item_code: Mapped[str] = mapped_column(ForeignKey("items.code"), primary_key=True)
    dataset_code: Mapped[str] = mapped_column(ForeignKey("datasets.code"), primary_key=True)
    method: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)


class Job(Base):
    """A transactional outbox row: work for the worker, sent to the queue after commit."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(64))
    # pending: not yet sent; sent: on the queue; running: claimed; done / failed: finished.
    status: Mapped[str] = mapped_column(String(10), default=JobStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Runs in a row whose process died while running it (jobs.MAX_DEATHS); a run that ends: 0.
    deaths: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # The queue it was sent to (services/catalogue/queue.identity): another one lost it.
    sent_to: Mapped[str | None] = mapped_column(String(64))
    # The worker running it and its lease, renewed by that worker's heartbeat.
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """An append-only, hash-chained record of a state change or a data access."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The token the actor used (null for the system, and for events before revision 0009).
    token_id: Mapped[str | None] = mapped_column(String(36))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row that serialises appends to the audit chain (locked while appending)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))


class DataRequest(Base):
    """What an oversight body asks for: items, population, periods, grain, and why."""

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    body_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    items: Mapped[list[str]] = mapped_column(JSON)
    # The population as asked (codes or a selector) and as resolved at registration.
    population: Mapped[Any] = mapped_column(JSON)
    org_codes: Mapped[list[str]] = mapped_column(JSON)
    period_start: Mapped[str] = mapped_column(String(7))
    period_end: Mapped[str] = mapped_column(String(7))
    period_type: Mapped[str] = mapped_column(String(10))
    org_level: Mapped[str] = mapped_column(String(10))
    due_days: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default=RequestStatus.ACTIVE, index=True)
    coverage: Mapped[dict[str, Any]] = mapped_column(JSON)
    returns_requested: Mapped[int] = mapped_column(Integer)
    minutes_requested: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]


class Ask(Base):
    """One return (dataset, trust, month) a trust must send, however many requests need it."""

    __tablename__ = "asks"
    # One row per key, ever: a cancelled ask that is needed again is reopened, not duplicated.
    __table_args__ = (
        UniqueConstraint("dataset_code", "org_code", "period"),
        # The burden ledger's order (month, dataset, trust): its pages are read from here.
        Index("ix_asks_period_dataset_org", "period", "dataset_code", "org_code", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_code: Mapped[str] = mapped_column(ForeignKey("datasets.code"))
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    due_date: Mapped[date] = mapped_column(Date)
    # The union of the items the linked requests need from this return.
    items: Mapped[list[str]] = mapped_column(JSON, default=list)
    # outstanding | submitted | accepted | cancelled (overdue is worked out when read)
    status: Mapped[str] = mapped_column(String(12), default=AskStatus.OUTSTANDING, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AskLink(Base):
    """That a request needs an ask, for which items, and the burden it bears for it."""

    __tablename__ = "ask_links"
    __table_args__ = (
        Index("ix_ask_links_request_id_active", "request_id", "active"),
        # An ask's links in the order its burden is shared out (the ledger's order within it).
        Index("ix_ask_links_ask_id_seq", "ask_id", "seq"),
    )

    ask_id: Mapped[str] = mapped_column(ForeignKey("asks.id"), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    # collects: the ask returns the items themselves; derives: the items are computed from it.
    role: Mapped[str] = mapped_column(String(10))
    items: Mapped[list[str]] = mapped_column(JSON)
    due_date: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    imposer: Mapped[bool] = mapped_column(Boolean, default=False)
    minutes_imposed: Mapped[float] = mapped_column(Float, default=0.0)
    seq: Mapped[int] = mapped_column(Integer, autoincrement=False)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class HeldRun(Base):
    """A run of consecutive months for which a dataset is held (accepted) for one trust."""

    __tablename__ = "held_runs"
    __table_args__ = (Index("ix_held_runs_dataset_org", "dataset_code", "org_code"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    dataset_code: Mapped[str] = mapped_column(ForeignKey("datasets.code"))
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    start_month: Mapped[int] = mapped_column(Integer)
    end_month: Mapped[int] = mapped_column(Integer)  # exclusive


class CoverageEpoch(Base):
    """A counter per dataset (and one for organisations), bumped when its coverage changes."""

    __tablename__ = "coverage_epochs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)


class Submission(Base):
    """One file a trust sent for a (dataset, month), and what validation made of it."""

    __tablename__ = "submissions"
    __table_args__ = (
        # The same bytes for the same return are one submission, however often they are sent.
        UniqueConstraint(
            "org_code", "dataset_code", "period", "sha256", name="uq_submissions_content"
        ),
        UniqueConstraint("org_code", "idempotency_key", name="uq_submissions_idempotency_key"),
        # Accepted revisions of a return are numbered 1, 2, ... without gaps or repeats.
        UniqueConstraint(
            "org_code", "dataset_code", "period", "revision", name="uq_submissions_revision"
        ),
        Index("ix_submissions_key", "org_code", "dataset_code", "period"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    dataset_code: Mapped[str] = mapped_column(ForeignKey("datasets.code"))
    dataset_version: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(7))
    # received | validating | accepted | rejected
    status: Mapped[str] = mapped_column(String(12), default=SubmissionStatus.RECEIVED, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    format: Mapped[str | None] = mapped_column(String(10))
    rows: Mapped[int | None] = mapped_column(Integer)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int | None] = mapped_column(Integer)
    supersedes_id: Mapped[str | None] = mapped_column(String(36))
    superseded_by_id: Mapped[str | None] = mapped_column(String(36))
    data_path: Mapped[str | None] = mapped_column(String(500))
    # Values far outside the trust's own history, found when accepted (submission_warnings).
    warnings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    validated_at: Mapped[datetime | None]


class ItemValue(Base):
    """An accepted return's value of one item for its trust and month, as a chart reads it.

    Over the trust's disaggregation, by the item's aggregation: what an indicator would compute
    from the return's Parquet file, kept so that a region or national chart is one query rather
    than a read of every return (issue 22). Keyed as a plan's source is: the submission, the item
    and whether it is derived (from a deriving dataset's return) or carried.
    """

    __tablename__ = "item_values"
    __table_args__ = (Index("ix_item_values_item_month_org", "item", "month", "org_code"),)

    submission_id: Mapped[str] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    derived: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    org_code: Mapped[str] = mapped_column(String(16))
    month: Mapped[str] = mapped_column(String(7))
    # False when the return has no rows for the trust (it then adds nothing to a chart's month).
    held: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float | None] = mapped_column(Float)


class SubmissionError(Base):
    """One row-level (or file-level) error of a rejected submission."""

    __tablename__ = "submission_errors"

    submission_id: Mapped[str] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row: Mapped[int | None] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(200))
    check: Mapped[str] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)


class Extract(Base):
    """One revision of the Parquet file a body receives for (request, period, item group)."""

    __tablename__ = "extracts"
    __table_args__ = (
        UniqueConstraint(
            "request_id", "period", "group_key", "revision", name="uq_extracts_revision"
        ),
        Index("ix_extracts_request", "request_id", "period", "group_key"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"))
    body_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    # The disaggregation columns the group's items share, comma-joined ("" for none).
    group_key: Mapped[str] = mapped_column(String(200))
    items: Mapped[list[str]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean)
    rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExtractDelivery(Base):
    """The delivery of one extract revision to one channel, tracked until acknowledged."""

    __tablename__ = "extract_deliveries"
    __table_args__ = (UniqueConstraint("extract_id", "channel", name="uq_extract_deliveries"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    extract_id: Mapped[str] = mapped_column(ForeignKey("extracts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(500))
    # pending | sent | delivered | acknowledged | failed
    status: Mapped[str] = mapped_column(String(14), default=DeliveryStatus.PENDING, index=True)
    message_id: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One message to one organisation on one day: a trust's reminder or a body's summary.

    At most one per (organisation, kind, day), whatever number of processes run the daily pass:
    the row is written before the message is sent, and a failed send is retried on the same row.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("org_code", "kind", "day", name="uq_notifications_daily"),
        Index("ix_notifications_day", "day"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    # trust_reminder | body_summary
    kind: Mapped[str] = mapped_column(String(20))
    day: Mapped[date] = mapped_column(Date)
    # files | mesh | email | api, and where: a folder URI, a MESH mailbox, an e-mail address.
    channel: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(500))
    # sending (claimed, being sent) | sent | failed (retried on the next pass) | cancelled
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.SENDING, index=True)
    message_id: Mapped[str | None] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    # The returns listed: [{dataset, period, org_code, due_date, overdue, days_left, ...}]
    asks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
