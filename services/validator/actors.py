"""Queue actors. Import only after ``catalogue.queue.configure_broker`` has set the broker."""

from __future__ import annotations

import dramatiq

from services.catalogue import jobs
from services.catalogue.queue import QUEUE_NAME, RUN_JOB_ACTOR
from services.catalogue.runtime import Runtime
from services.validator.handlers import HANDLERS

_runtime: Runtime | None = None


def bind(runtime: Runtime) -> None:
    """Give the actors their runtime and make sure the runtime's broker knows them."""
    global _runtime
    _runtime = runtime
    if RUN_JOB_ACTOR not in runtime.broker.get_declared_actors():
        # Tests build several brokers in one process; the actor follows the newest.
        run_job.broker = runtime.broker
        runtime.broker.declare_actor(run_job)


@dramatiq.actor(actor_name=RUN_JOB_ACTOR, queue_name=QUEUE_NAME, max_retries=3, min_backoff=1_000)
def run_job(job_id: str) -> None:
    """Run the job with this id (messages carry ids; the database holds the state)."""
    if _runtime is None:
        raise RuntimeError("the validator's actors were imported but not bound to a runtime")
    jobs.run(
        factory=_runtime.factory,
        job_id=job_id,
        handlers=HANDLERS,
        stale_after=_runtime.stale_after,
        settings=_runtime.settings,
        relay=_runtime.relay,
    )
