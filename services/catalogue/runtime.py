"""What a running process holds: settings, database and queue, built once by the entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import dramatiq
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from services.catalogue import auth, jobs, migrate, queue, submissions
from services.catalogue.arrow_memory import configure_arrow_memory
from services.catalogue.coverage_index import CoverageIndex
from services.catalogue.db import build_engine, session_factory, session_scope
from services.catalogue.errors import ServiceUnavailable
from services.catalogue.models import Job
from services.catalogue.settings import Settings
from services.catalogue.states import JobKind


@dataclass
class Runtime:
    """The process's connections; passed explicitly, never a module global."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    broker: dramatiq.Broker
    coverage: CoverageIndex = field(default_factory=CoverageIndex)
    # Set by `drb serve` (start_relayer): jobs are then relayed from a background thread.
    relayer: jobs.Relayer | None = None

    def send_job(self, job_id: str) -> None:
        """Send one job to the queue."""
        queue.send_job(self.broker, job_id)

    def queue_identity(self) -> str:
        """Which queue answers now (raises when it does not answer)."""
        return queue.identity(self.broker)

    def start_relayer(self) -> None:
        """Relay from now on in a background thread, in batches (the API's requests return
        without waiting for the queue)."""
        if self.relayer is None:
            self.relayer = jobs.Relayer(
                factory=self.factory, send=self.send_job, identify=self.queue_identity
            )

    def relay(self, job_ids: list[str]) -> None:
        """Send jobs committed by a unit of work."""
        if job_ids and self.relayer is not None:
            self.relayer.submit(job_ids)
        elif job_ids:
            jobs.relay(
                factory=self.factory,
                job_ids=job_ids,
                send=self.send_job,
                identify=self.queue_identity,
            )

    def sweep(self) -> int:
        """Re-send jobs never sent, lost with their queue, or abandoned by a dead worker."""
        return jobs.sweep(
            factory=self.factory,
            send=self.send_job,
            stale_after=self.stale_after,
            lease=self.lease,
            identify=self.queue_identity,
            on_give_up=self._give_up,
        )

    def _give_up(self, session: Session, job: Job) -> None:
        """Decide what a job given up was for: its submission is rejected, not left waiting."""
        if job.kind == JobKind.VALIDATE_SUBMISSION and job.subject_id is not None:
            submissions.give_up(
                session=session,
                settings=self.settings,
                submission_id=job.subject_id,
                attempts=job.attempts,
                deaths=job.deaths if job.deaths >= jobs.MAX_DEATHS else 0,
            )

    @property
    def stale_after(self) -> timedelta:
        """How long a sent job may stay unclaimed before the sweep sends it again."""
        return timedelta(seconds=self.settings.job_timeout_seconds)

    @property
    def lease(self) -> timedelta:
        """How long a running job's worker may go without a heartbeat before it is dead."""
        return timedelta(seconds=self.settings.job_lease_seconds)

    def close(self) -> None:
        """Send what is waiting to be relayed, then release connections."""
        if self.relayer is not None:
            self.relayer.close()
            self.relayer = None
        self.broker.close()
        self.engine.dispose()


def database_engine(settings: Settings) -> Engine:
    """An engine for the configured database, checked to answer."""
    engine = build_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        reason = str(error.orig if hasattr(error, "orig") else error).strip().splitlines()[0]
        setting = "DRB_DATABASE_URL" if settings.database_url else "DRB_DATA_DIR"
        raise ServiceUnavailable(
            f"the database at {setting} ({shown}) does not answer: {reason}"
        ) from error
    return engine


def boot(settings: Settings, *, bootstrap_admin: bool = True) -> Runtime:
    """Connect to the database and queue, check the schema, and bootstrap the admin token.

    ``bootstrap_admin`` is for the API server: it applies DRB_ADMIN_TOKEN (adds, rotates or
    revokes it), so a worker started with other settings never touches it.
    """
    configure_arrow_memory()
    engine = database_engine(settings)
    if not migrate.is_current(engine):
        engine.dispose()
        raise ServiceUnavailable("the database schema is not up to date: run `drb migrate` first")
    broker = queue.configure_broker(settings)
    factory = session_factory(engine)
    if bootstrap_admin:
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        try:
            # Also when unset: a DRB_ADMIN_TOKEN taken out of the settings stops working.
            with session_scope(factory) as session:
                auth.bootstrap_admin_token(session=session, admin_token=admin_token)
        except auth.AdminTokenRefused:
            broker.close()
            engine.dispose()
            raise
    return Runtime(settings=settings, engine=engine, factory=factory, broker=broker)
