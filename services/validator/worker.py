"""Running the validator: dramatiq worker threads plus the outbox sweep, in any process."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

import dramatiq
from redis.exceptions import RedisError

from services.catalogue import jobs
from services.catalogue.db import session_scope
from services.catalogue.runtime import Runtime
from services.catalogue.states import JobKind

log = logging.getLogger(__name__)


@dataclass
class WorkerHandle:
    """A started worker; ``stop()`` drains it."""

    worker: dramatiq.Worker
    sweeper: threading.Thread
    stopping: threading.Event = field(default_factory=threading.Event)
    heartbeat: threading.Thread | None = None
    heartbeat_stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Stop sweeping and let the worker threads finish their current message."""
        self.stopping.set()
        self.sweeper.join(timeout=10)
        self.worker.stop(timeout=30_000)
        # Leases are renewed until the last message is finished, then the heartbeat stops.
        self.heartbeat_stopping.set()
        if self.heartbeat is not None:
            self.heartbeat.join(timeout=10)


def start(runtime: Runtime, *, threads: int) -> WorkerHandle:
    """Start worker threads on the runtime's broker and the periodic sweep."""
    from services.validator import actors  # after the broker is configured, never before

    actors.bind(runtime)
    worker = dramatiq.Worker(runtime.broker, worker_threads=threads, worker_timeout=200)
    worker.start()
    stopping = threading.Event()
    heartbeat_stopping = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_forever, args=(runtime, stopping), name="drb-sweep", daemon=True
    )
    heartbeat = threading.Thread(
        target=_heartbeat_forever,
        args=(runtime.settings.job_heartbeat_seconds, heartbeat_stopping),
        name="drb-heartbeat",
        daemon=True,
    )
    handle = WorkerHandle(
        worker=worker,
        sweeper=sweeper,
        stopping=stopping,
        heartbeat=heartbeat,
        heartbeat_stopping=heartbeat_stopping,
    )
    heartbeat.start()
    sweeper.start()
    return handle


def _heartbeat_forever(interval: float, stopping: threading.Event) -> None:
    """Renew the leases of the jobs this process runs, so that no sweep takes them over.

    Its own thread: a sweep waiting on a queue that does not answer must not delay it.
    """
    while not stopping.wait(interval):
        try:
            jobs.LEASES.renew()
        except Exception:
            log.exception("could not renew job leases; trying again next heartbeat")


def _sweep_forever(runtime: Runtime, stopping: threading.Event) -> None:
    next_maintenance = time.monotonic()
    while not stopping.is_set():
        if time.monotonic() >= next_maintenance:
            next_maintenance = time.monotonic() + runtime.settings.maintenance_interval_seconds
            try:
                _enqueue_maintenance(runtime)
            except Exception:
                log.exception("could not queue maintenance and reminders; trying again later")
        try:
            resent = runtime.sweep()
            if resent:
                log.info("sweep re-sent %d job(s)", resent)
        except RedisError as error:
            # The queue is down: jobs stay as they are until it answers again.
            log.warning("sweep skipped: the queue does not answer (%s)", error)
        except Exception:
            log.exception("sweep failed; trying again next interval")
        stopping.wait(runtime.settings.sweep_interval_seconds)


def _enqueue_maintenance(runtime: Runtime) -> None:
    with session_scope(runtime.factory, relay=runtime.relay) as session:
        jobs.enqueue(session=session, kind=JobKind.MAINTAIN_EXTRACTS)
        if runtime.settings.reminders:  # once a day: the pass sends what today has not had
            jobs.enqueue(session=session, kind=JobKind.SEND_REMINDERS)


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
