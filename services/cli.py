"""The ``drb`` program: the one entry point that wires settings, the API and the worker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from services.catalogue.errors import ServiceUnavailable

if TYPE_CHECKING:  # imported when used: pydantic-settings costs `drb submit` a third of a second
    from sqlalchemy.engine import Engine

    from services.catalogue.settings import Settings

app = typer.Typer(
    name="drb",
    help="Data request broker: ask NHS trusts once, share what is already held.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    from services.catalogue.settings import Settings

    try:
        return Settings()
    except Exception as error:  # pydantic's ValidationError, with the variable it names
        _fail(f"invalid setting: {error}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"drb: error: {message}", err=True)
    raise typer.Exit(code=1)


def _engine(settings: Settings) -> Engine:
    from services.catalogue.runtime import database_engine

    try:
        return database_engine(settings)
    except ServiceUnavailable as error:
        _fail(str(error))


def _logging(level: str = "INFO") -> None:
    from services.catalogue import logs

    logs.configure(level)  # JSON lines on stderr, tokens and passwords masked


@app.command()
def migrate() -> None:
    """Create or upgrade the catalogue database and publish the dataset definitions."""
    from services.catalogue import datasets, indicators
    from services.catalogue import migrate as migrations
    from services.catalogue.db import session_factory, session_scope
    from services.catalogue.runtime import database_engine

    settings = _settings()
    try:
        engine = database_engine(settings)
    except ServiceUnavailable as error:
        _fail(str(error))
    try:
        migrations.upgrade(engine)
        factory = session_factory(engine)
        with session_scope(factory) as session:
            published = datasets.publish(session=session)
        filled = indicators.backfill_values(factory=factory, settings=settings)
    finally:
        engine.dispose()
    typer.echo(f"database up to date: {engine.url.render_as_string(hide_password=True)}")
    for line in published:
        typer.echo(f"  {line}")
    if filled:
        typer.echo(f"  kept the item values of {filled} return(s) accepted before they were kept")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (DRB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (DRB_PORT).")] = None,
) -> None:
    """Serve the HTTP API; without DRB_REDIS_URL the validator runs in this process too."""
    import uvicorn

    from services.broker.app import create_app
    from services.catalogue import logs, store
    from services.catalogue.runtime import boot
    from services.validator import worker

    _logging()
    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    try:
        runtime = boot(settings)
    except ServiceUnavailable as error:
        _fail(str(error))
    # Partial uploads of API processes killed mid-stream (never submissions): removed.
    store.remove_abandoned_uploads(settings)
    # Requests answer without waiting for the queue; jobs are relayed in batches behind them.
    runtime.start_relayer()
    handle = None if settings.redis_url else worker.start(runtime, threads=settings.worker_threads)
    base = f"http://{host}:{port}"
    typer.echo(
        f"Data request broker on {base}\n"
        f"  API docs:   {base}/docs\n"
        f"  health:     {base}/v1/health\n"
        f"  mode:       {'distributed (Redis queue)' if handle is None else 'embedded'}"
    )
    # Stopped from the app's shutdown: uvicorn re-raises SIGTERM once it has shut down.
    hooks = [handle.stop] if handle is not None else []
    uvicorn.run(
        create_app(runtime, on_shutdown=[*hooks, runtime.close]),
        host=host,
        port=port,
        log_level="info",
        log_config=logs.uvicorn_log_config("INFO"),  # JSON; access lines without query strings
        # The app believes X-Forwarded-* only from DRB_TRUSTED_PROXIES (create_app); uvicorn's
        # own default would believe them from any local process.
        proxy_headers=False,
    )


@app.command()
def worker(
    threads: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker threads (DRB_WORKER_THREADS).")
    ] = None,
) -> None:
    """Run the validator: consume jobs from Redis (DRB_REDIS_URL) until stopped."""
    from services.catalogue.runtime import boot
    from services.validator import worker as validator

    _logging()
    settings = _settings()
    if not settings.redis_url:
        _fail(
            "DRB_REDIS_URL is not set: `drb worker` consumes the Redis queue "
            "(without Redis, `drb serve` runs the validator in its own process)"
        )
    try:
        runtime = boot(settings, bootstrap_admin=False)  # DRB_ADMIN_TOKEN is `drb serve`'s
    except ServiceUnavailable as error:
        _fail(str(error))
    try:
        validator.run_until_signalled(runtime, threads=threads or settings.worker_threads)
    finally:
        runtime.close()


@app.command("audit-head")
def audit_head() -> None:
    """Print the audit chain's head as JSON, signed with DRB_AUDIT_SIGNING_KEY, to keep elsewhere.

    Run it daily from cron into storage the database host cannot write; verify later with
    GET /v1/audit-events/verify?anchor_id=LAST_ID&anchor_hash=LAST_HASH (docs/audit.md).
    """
    import json

    from services.catalogue import audit
    from services.catalogue.db import session_factory, session_scope
    from services.catalogue.runtime import database_engine

    settings = _settings()
    try:
        engine = database_engine(settings)
    except ServiceUnavailable as error:
        _fail(str(error))
    key = audit.signing_key(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            head = audit.current_head(session=session, key=key)
    finally:
        engine.dispose()
    if key is None:
        typer.echo("drb: DRB_AUDIT_SIGNING_KEY is not set: the head is not signed", err=True)
    typer.echo(json.dumps(head, sort_keys=True))


@app.command()
def remind() -> None:
    """Send today's deadline reminders (trusts) and summaries (bodies) not yet sent; print them.

    The worker sends them daily on its own (DRB_REMINDERS, from DRB_REMINDER_HOUR); running
    this as well sends nothing twice: one message per organisation a day, failed ones again.
    """
    import json
    from datetime import date

    from services.catalogue import reminders
    from services.catalogue.db import session_factory

    _logging("WARNING")
    settings = _settings()
    engine = _engine(settings)
    try:
        handled = reminders.run_pass(
            factory=session_factory(engine), settings=settings, today=date.today()
        )
    finally:
        engine.dispose()
    typer.echo(json.dumps(handled, indent=2, sort_keys=True))
    failed = [n for n in handled if n["status"] == "failed"]
    if failed:
        _fail(f"{len(failed)} of {len(handled)} not sent; run `drb remind` again to retry them")


@app.command("seed-demo")
def seed_demo(
    tokens_file: Annotated[
        Path | None, typer.Option(help="Where the demo tokens are kept (default: data dir).")
    ] = None,
) -> None:
    """Load the demo (real NHS England A&E data, trusts, bodies); skipped when DRB_DEMO=false."""
    from services.catalogue import demo
    from services.catalogue.db import session_factory, session_scope
    from services.catalogue.repositories import jobs as job_repo
    from services.catalogue.runtime import database_engine

    settings = _settings()
    if not settings.demo:
        typer.echo("DRB_DEMO=false: starting empty, no demo loaded.")
        return
    try:
        engine = database_engine(settings)
    except ServiceUnavailable as error:
        _fail(str(error))
    factory = session_factory(engine)
    try:
        with session_scope(factory) as session:
            summary = demo.seed(
                session=session, tokens_file=tokens_file or settings.data_dir / "demo-tokens.json"
            )
            pending = demo.send_returns(session=session, settings=settings)
            job_ids = job_repo.waiting_for(session=session, subject_ids=pending)
        # The trusts' returns go through the validator here, and the extracts they complete are
        # built and delivered, so the demo starts with held data and delivered extracts.
        ran = _drain_jobs(factory, settings, first=job_ids)
        with session_scope(factory) as session:
            returns = demo.returns_summary(session=session)
    finally:
        engine.dispose()
    typer.echo(summary.describe(base_url=f"http://{settings.host}:{settings.port}"))
    typer.echo(returns)
    typer.echo(f"({ran} jobs run: validations, extract builds and deliveries.)")


def _drain_jobs(factory: Any, settings: Settings, *, first: list[str]) -> int:
    """Run queued jobs in this process until none is left (the demo's set-up)."""
    from services.catalogue import jobs
    from services.catalogue.repositories import jobs as job_repo
    from services.validator.handlers import HANDLERS

    ran = 0
    queue = list(first)
    for _round in range(20):
        for job_id in queue:
            jobs.run(
                factory=factory,
                job_id=job_id,
                handlers=HANDLERS,
                stale_after=timedelta(seconds=settings.job_timeout_seconds),
                settings=settings,
            )
            ran += 1
        with factory() as session:
            queue = job_repo.pending_work(session=session)
        if not queue:
            break
    return ran


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    dataset: Annotated[str, typer.Option(help="Dataset code, e.g. ae_monthly.")],
    period: Annotated[str, typer.Option(help="The month of the return, YYYY-MM.")],
    url: Annotated[
        str, typer.Option(envvar="DRB_URL", help="The broker's address (DRB_URL).")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(envvar="DRB_TOKEN", help="Your trust's token (DRB_TOKEN).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retried upload safe: sent once, however often.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for validation and show the result.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for validation.")] = 600.0,
) -> None:
    """Send a return with a progress bar, then show validation and any errors."""
    from services import submit_client

    if not token:
        _fail("no token: pass --token or set DRB_TOKEN to your trust's token")
    code = submit_client.run(
        file=file,
        dataset=dataset,
        period=period,
        url=url.rstrip("/"),
        token=token,
        idempotency_key=idempotency_key,
        wait=wait,
        timeout=timeout,
    )
    raise typer.Exit(code=code)
