"""Request-scoped dependencies: the runtime, a unit-of-work session, the calling principal."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.broker.problems import Problem
from services.catalogue import auth
from services.catalogue.db import SESSION_SLOTS_PER_PROCESS, UnitOfWork
from services.catalogue.runtime import Runtime
from services.catalogue.states import OrgKind

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="drb"'}


async def get_runtime(request: Request) -> Runtime:
    """The process runtime the app was built with (async: no worker thread for a lookup)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class SessionSlots:
    """How many requests of this process may hold a database session at once.

    A request's session lives across several worker-thread calls (its dependencies, the
    endpoint, the commit), and holds its pooled connection in between, while waiting for a
    thread. Unbounded, that deadlocks under load: every thread waits for a connection while every
    connection waits for a thread, until the pool's timeout answers 503 (seen on deadline day).
    Requests wait here instead, on the event loop, holding neither; the rest of the pool is left
    for the work done within one thread call (authentication before a body, recording an upload,
    relaying its jobs), which always finishes.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()

    def __call__(self) -> asyncio.Semaphore:
        """This event loop's semaphore (a test may run the app on several loops in turn)."""
        loop = asyncio.get_running_loop()
        semaphore = self._by_loop.get(loop)
        if semaphore is None:
            semaphore = self._by_loop[loop] = asyncio.Semaphore(self.slots)
        return semaphore


SESSION_SLOTS = SessionSlots(SESSION_SLOTS_PER_PROCESS)


async def get_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """One transaction per request: committed before the response, jobs relayed after commit."""
    async with SESSION_SLOTS():
        work = UnitOfWork(runtime.factory, relay=runtime.relay)
        try:
            yield work.session
        except BaseException:
            # Shielded: a cancelled request still returns its connection, rolled back.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(work.roll_back)
            raise
        # Shielded: the commit runs in its thread to the end, and the session is used by no
        # other thread meanwhile. A commit that fails rolls back, closes the session and raises.
        with anyio.CancelScope(shield=True):
            new_jobs = await run_in_threadpool(work.commit)
        if new_jobs:
            await run_in_threadpool(work.relay, new_jobs)


# scope="function" ends the unit of work before the response is sent, so a failed commit
# is reported to the client instead of after a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Declares the scheme in OpenAPI (the "Authorize" button of /docs); errors are ours, below.
_bearer_scheme = HTTPBearer(auto_error=False, description="A token issued to your organisation.")


# Where services/broker/limits.py leaves the principal it found before reading a body.
PRINCIPAL_STATE = "drb_principal"


def authenticate_header(*, session: Session, authorization: str | None) -> auth.Principal:
    """The principal of an ``Authorization: Bearer`` header, or a 401 Problem."""
    if not authorization:
        raise Problem(
            401,
            "Send the header 'Authorization: Bearer <token>'.",
            type_="unauthenticated",
            headers=BEARER_CHALLENGE,
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "The Authorization header must use the Bearer scheme.",
            type_="unauthenticated",
            headers=BEARER_CHALLENGE,
        )
    principal = auth.authenticate(session=session, token=token.strip())
    if principal is None:
        expired = auth.expired_at(session=session, token=token.strip())
        if expired is not None:
            raise Problem(
                401,
                f"The token expired at {expired.isoformat(timespec='seconds')}; "
                "ask your organisation's admin for a new one.",
                type_="token-expired",
                headers={
                    "WWW-Authenticate": 'Bearer realm="drb", error="invalid_token", '
                    'error_description="The token expired"'
                },
            )
        raise Problem(
            401,
            "The token is unknown or has been revoked.",
            type_="unauthenticated",
            headers=BEARER_CHALLENGE,
        )
    return principal


def get_principal(
    request: Request,
    session: SessionDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> auth.Principal:
    """The authenticated caller, or 401 (found once: before the body, when there is one)."""
    found: auth.Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if found is None:
        authorization = request.headers.get("authorization")
        found = authenticate_header(session=session, authorization=authorization)
    return auth.acting(session, found)  # every event it audits names its token


PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]


def require(*kinds: OrgKind) -> Callable[[auth.Principal], Awaitable[auth.Principal]]:
    """A dependency that lets through only organisations of the given kinds (else 403)."""
    allowed = ", ".join(kinds)

    async def dependency(principal: PrincipalDep) -> auth.Principal:  # no I/O: no thread
        if principal.kind not in kinds:
            raise Problem(
                403,
                f"This needs the role {allowed}; the token belongs to a {principal.kind}.",
                type_="forbidden",
            )
        return principal

    return dependency


StewardDep = Annotated[auth.Principal, Depends(require(OrgKind.STEWARD))]
