"""Running the validator: dramatiq worker threads plus the outbox sweep, in any process."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

import dramatiq

from services.catalogue import jobs
from services.catalogue.db import session_scope
from services.catalogue.extracts import MAINTAIN_JOB
from services.catalogue.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class WorkerHandle:
    """A started worker; ``stop()`` drains it."""

    worker: dramatiq.Worker
    sweeper: threading.Thread
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Stop sweeping and let the worker threads finish their current message."""
        self.stopping.set()
        self.sweeper.join(timeout=10)
        self.worker.stop(timeout=30_000)


def start(runtime: Runtime, *, threads: int) -> WorkerHandle:
    """Start worker threads on the runtime's broker and the periodic sweep."""
    from services.validator import actors  # after the broker is configured, never before

    actors.bind(runtime)
    worker = dramatiq.Worker(runtime.broker, worker_threads=threads, worker_timeout=200)
    worker.start()
    stopping = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_forever, args=(runtime, stopping), name="drb-sweep", daemon=True
    )
    handle = WorkerHandle(worker=worker, sweeper=sweeper, stopping=stopping)
    sweeper.start()
    return handle


def _sweep_forever(runtime: Runtime, stopping: threading.Event) -> None:
    next_maintenance = time.monotonic()
    while not stopping.is_set():
        if time.monotonic() >= next_maintenance:
            next_maintenance = time.monotonic() + runtime.settings.maintenance_interval_seconds
            try:
                _enqueue_maintenance(runtime)
            except Exception:
                log.exception("could not queue extract maintenance; trying again later")
        try:
            resent = jobs.sweep(
                factory=runtime.factory, send=runtime.send_job, stale_after=runtime.stale_after
            )
            if resent:
                log.info("sweep re-sent %d job(s)", resent)
        except Exception:
            log.exception("sweep failed; trying again next interval")
        stopping.wait(runtime.settings.sweep_interval_seconds)


def _enqueue_maintenance(runtime: Runtime) -> None:
    with session_scope(runtime.factory) as session:
        jobs.enqueue(session=session, kind=MAINTAIN_JOB)
        new_jobs = jobs.take_new_job_ids(session)
    runtime.relay(new_jobs)


def run_until_signalled(runtime: Runtime, *, threads: int) -> None:
    """Run the worker in the foreground until SIGINT or SIGTERM."""
    handle = start(runtime, threads=threads)
    done = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the worker", signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("validator worker running with %d thread(s)", threads)
    done.wait()
    handle.stop()
