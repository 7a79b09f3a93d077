"""Rate limits per token: a token bucket per caller, answering 429 with ``Retry-After``.

A pure ASGI middleware, so that a refused request is answered before anything reads its body or
looks its token up. The caller is the SHA-256 of its bearer token (no database lookup); a request
without one is keyed by its client address. Every 401 also costs the client address a token of
its own bucket, and an address whose bucket is empty is refused whatever token it sends, so that
guessing tokens is limited too.

Reads (every route but the exempt ones) and uploads (``POST /v1/submissions``) have separate
buckets, of ``DRB_RATE_LIMIT_PER_MINUTE`` and ``DRB_UPLOAD_RATE_LIMIT_PER_MINUTE`` tokens,
refilled evenly over a minute; 0 turns a limit off. In the embedded mode the buckets live in
this process's memory; with ``DRB_REDIS_URL`` every API process shares them through Redis (one
Lua script, so that each check is atomic).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
from fastapi import FastAPI
from redis import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.broker.problems import Problem, problem_response
from services.catalogue.settings import Settings

log = logging.getLogger(__name__)

UPLOAD_PATH = "/v1/submissions"
# Never limited: the health check (load balancers poll it) and the pages' static assets.
EXEMPT_PATHS = frozenset({"/v1/health"})
EXEMPT_PREFIXES = ("/assets/",)
REDIS_PREFIX = "drb:ratelimit:"
MAX_MEMORY_KEYS = 100_000


@dataclass(frozen=True)
class Charge:
    """``cost`` tokens from the bucket ``key`` of ``per_minute`` tokens (cost 0: only check
    that the bucket is not empty)."""

    key: str
    per_minute: int
    cost: int = 1


class Buckets(Protocol):
    """Where the buckets live: this process's memory or Redis."""

    def take(self, charges: Sequence[Charge]) -> float:
        """Take every charge, or none: 0.0 when allowed, else the seconds until it would be."""
        ...


def _refilled(level: float, at: float, now: float, per_minute: int) -> tuple[float, float]:
    if now > at:
        return min(float(per_minute), level + (now - at) * per_minute / 60.0), now
    return level, at


@dataclass
class _Bucket:
    level: float
    at: float
    per_minute: int

    def full_at(self) -> float:
        """When this bucket is full again (and so no different from a missing one)."""
        return self.at + (self.per_minute - self.level) * 60.0 / self.per_minute


class MemoryBuckets:
    """Token buckets in this process (thread-safe); idle buckets that have refilled are dropped,
    and at most ``max_keys`` are kept (the least recently used go first)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_MEMORY_KEYS
    ) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, charges: Sequence[Charge]) -> float:
        with self._lock:
            now = self.clock()
            states: list[tuple[Charge, float, float]] = []
            wait = 0.0
            for charge in charges:
                bucket = self._buckets.get(charge.key)
                level, at = (
                    (float(charge.per_minute), now)
                    if bucket is None
                    else _refilled(bucket.level, bucket.at, now, charge.per_minute)
                )
                need = max(charge.cost, 1)
                if level < need:
                    wait = max(wait, (need - level) * 60.0 / charge.per_minute)
                states.append((charge, level, at))
            if wait > 0:
                return wait
            for charge, level, at in states:
                if charge.cost > 0:
                    self._buckets[charge.key] = _Bucket(level - charge.cost, at, charge.per_minute)
                    self._buckets.move_to_end(charge.key)
            self._evict(now)
            return 0.0

    def _evict(self, now: float) -> None:
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) <= self.max_keys and oldest.full_at() > now:
                return
            del self._buckets[key]


# KEYS: the buckets; ARGV: now (seconds), then per key its tokens per minute and its cost.
# All or nothing: either every charge is taken, or none is and the longest wait is returned.
_TAKE = """
local now = tonumber(ARGV[1])
local states = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local per_minute = tonumber(ARGV[i * 2])
  local cost = tonumber(ARGV[i * 2 + 1])
  local rate = per_minute / 60
  local stored = redis.call('HMGET', key, 'level', 'at')
  local level, at = tonumber(stored[1]), tonumber(stored[2])
  if level == nil or at == nil then
    level, at = per_minute, now
  elseif now > at then
    level, at = math.min(per_minute, level + (now - at) * rate), now
  end
  local need = math.max(cost, 1)
  if level < need then
    wait = math.max(wait, (need - level) / rate)
  end
  states[i] = {level, at, per_minute, cost, rate}
end
if wait > 0 then
  return tostring(wait)
end
for i, key in ipairs(KEYS) do
  local s = states[i]
  if s[4] > 0 then
    local level = s[1] - s[4]
    local exact = '%.17g'  -- tostring keeps only 14 digits, and a rounded 'at' loses time
    redis.call('HSET', key, 'level', string.format(exact, level), 'at', string.format(exact, s[2]))
    redis.call('EXPIRE', key, math.ceil((s[3] - level) / s[5]) + 1)
  end
end
return '0'
"""


class RedisBuckets:
    """Token buckets shared by every API process through Redis; each key expires once its
    bucket has refilled. If Redis does not answer, requests are let through (and logged)."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._script = self._client.register_script(_TAKE)

    def take(self, charges: Sequence[Charge]) -> float:
        args: list[Any] = [repr(self.clock())]
        for charge in charges:
            args += [charge.per_minute, charge.cost]
        try:
            wait = self._script(keys=[REDIS_PREFIX + c.key for c in charges], args=args)
        except RedisError as error:
            log.warning("rate limit not checked: Redis did not answer (%s)", type(error).__name__)
            return 0.0
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()


@dataclass
class RateLimits:
    """The limits in force and where their buckets live."""

    buckets: Buckets
    reads_per_minute: int
    uploads_per_minute: int

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] | None = None
    ) -> RateLimits:
        """Shared through Redis in the distributed mode, in memory in the embedded one."""
        buckets: Buckets
        if settings.redis_url:
            buckets = RedisBuckets(settings.redis_url, clock=clock or time.time)
        else:
            buckets = MemoryBuckets(clock=clock or time.monotonic)
        return cls(
            buckets=buckets,
            reads_per_minute=settings.rate_limit_per_minute,
            uploads_per_minute=settings.upload_rate_limit_per_minute,
        )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def _too_many(wait: float, *, upload: bool) -> Problem:
    seconds = max(1, math.ceil(wait))
    what = "uploads" if upload else "requests"
    return Problem(
        429,
        f"Too many {what} in the last minute from this token or address. "
        f"Try again in {seconds} second{'s' if seconds != 1 else ''}.",
        type_="rate-limited",
        title="Too many requests",
        headers={"Retry-After": str(seconds)},
    )


class RateLimitMiddleware:
    """Refuse a caller over its limit with 429 before its request is read or authenticated."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        limits = self.limits
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        per_minute = limits.uploads_per_minute if upload else limits.reads_per_minute
        client = scope.get("client")
        address = f"address:{client[0] if client else 'unknown'}"
        failures = f"auth-failures:{_digest(address)}"
        token = _bearer(scope)
        caller = f"token:{_digest(token)}" if token else address
        charges = []
        if per_minute > 0:
            bucket = "uploads" if upload else "reads"
            charges.append(Charge(f"{bucket}:{_digest(caller)}", per_minute))
        if limits.reads_per_minute > 0:  # an address that failed to authenticate too often
            charges.append(Charge(failures, limits.reads_per_minute, cost=0))
        if charges:
            wait = await self._take(charges)
            if wait > 0:
                await problem_response(_too_many(wait, upload=upload))(scope, receive, send)
                return
        if limits.reads_per_minute <= 0:
            await self.app(scope, receive, send)
            return

        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status == 401:
                await self._take([Charge(failures, limits.reads_per_minute)])

    async def _take(self, charges: list[Charge]) -> float:
        if isinstance(self.limits.buckets, MemoryBuckets):
            return self.limits.buckets.take(charges)  # no I/O: a lock held for microseconds
        return await anyio.to_thread.run_sync(self.limits.buckets.take, charges)


def install(
    app: FastAPI, settings: Settings, *, clock: Callable[[], float] | None = None
) -> RateLimits:
    """Add the rate limit to ``app`` (kept as ``app.state.rate_limits``)."""
    limits = RateLimits.from_settings(settings, clock=clock)
    app.state.rate_limits = limits
    app.add_middleware(RateLimitMiddleware, limits=limits)
    return limits
