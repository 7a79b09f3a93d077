"""The dramatiq broker, set in this one place before any actor module is imported.

With ``DRB_REDIS_URL`` the queue is Redis and ``drb worker`` processes consume it; without it,
a StubBroker with worker threads inside the API process does the same work (embedded mode).
"""

from __future__ import annotations

import secrets
import weakref

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from redis import Redis
from redis.exceptions import RedisError

from services.catalogue.errors import ServiceUnavailable
from services.catalogue.settings import Settings

QUEUE_NAME = "validator"
# A worker killed -9 takes with it the messages it had fetched but not yet started (dramatiq
# prefetches two per thread); their jobs are `sent`, not claimed, so no lease covers them.
# dramatiq puts a silent worker's messages back on the queue once it has missed heartbeats for
# this long, during its queue maintenance, which runs on this share (per million) of Redis
# commands: with the defaults (60 s, 0.1%) an idle pair of workers took 4.5 minutes
# (bench/deadline_day.py --kill-worker-at); with these, about 20 s. A busy live worker whose
# messages are put back early costs nothing: its running job is leased in the database, so the
# duplicate message is dropped, and a not-yet-started one is simply run by another worker.
REDIS_HEARTBEAT_TIMEOUT_MS = 15_000
REDIS_MAINTENANCE_CHANCE = 20_000


def configure_broker(settings: Settings) -> dramatiq.Broker:
    """Build the broker the settings ask for and make it dramatiq's global broker."""
    broker: dramatiq.Broker
    if settings.redis_url:
        check_redis(settings.redis_url)
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.redis_url,
            heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=REDIS_MAINTENANCE_CHANCE,
        )
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.declare_queue(QUEUE_NAME)
    # dramatiq would otherwise quietly make a RabbitMQ broker on first use.
    dramatiq.set_broker(broker)
    return broker


def check_redis(url: str) -> None:
    """Raise ServiceUnavailable, naming the setting, when Redis does not answer."""
    try:
        Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (RedisError, ValueError, OSError) as error:
        raise ServiceUnavailable(
            f"Redis at DRB_REDIS_URL={_redact(url)} does not answer: {error}"
        ) from error


def queue_answers(broker: dramatiq.Broker) -> bool:
    """True when the queue is reachable (the stub broker always is)."""
    if isinstance(broker, RedisBroker):
        try:
            return bool(broker.client.ping())
        except RedisError:
            return False
    return True


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


RUN_JOB_ACTOR = "run_job"

# The embedded queue lives and dies with its process (its broker object): a new id for each.
_STUB_IDS: weakref.WeakKeyDictionary[dramatiq.Broker, str] = weakref.WeakKeyDictionary()


def identity(broker: dramatiq.Broker) -> str:
    """Which queue this is: a job sent to another one (since restarted empty) was lost.

    Redis: its server's run id, new at every start (a Redis that persists its data to disk
    gets a new one too, and its jobs are then sent once more: harmless, runs are idempotent).
    Embedded: a random id per broker, so per process. Raises RedisError when Redis is down.
    """
    if isinstance(broker, RedisBroker):
        info = broker.client.info("server")
        return f"redis:{info['run_id']}"
    known = _STUB_IDS.get(broker)
    if known is None:
        known = _STUB_IDS.setdefault(broker, f"stub:{secrets.token_hex(8)}")
    return known


def send_job(broker: dramatiq.Broker, job_id: str) -> None:
    """Put one job id on the validator's queue (the actor lives in services/validator)."""
    broker.enqueue(
        dramatiq.Message(
            queue_name=QUEUE_NAME, actor_name=RUN_JOB_ACTOR, args=(job_id,), kwargs={}, options={}
        )
    )
