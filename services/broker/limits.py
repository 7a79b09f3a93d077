"""Request bodies: the caller is known before a byte of a body is read, and no body is too big.

FastAPI reads (and parses) a JSON body before it runs a route's dependencies, so checking the
token in a dependency comes too late: anyone could make the broker read and parse megabytes of
JSON. This pure ASGI middleware runs first:

- for a request with a body under ``/v1/`` (any method; a ``Content-Length`` above 0 or
  ``Transfer-Encoding: chunked``) it authenticates the bearer token before the body is touched
  (401 as the dependencies give it; 503 with Retry-After when the database does not answer)
  and leaves the principal in the request's state for them;
- it limits every body: ``multipart/form-data`` to ``POST /v1/submissions`` may carry
  ``DRB_MAX_UPLOAD_BYTES`` plus :data:`MULTIPART_OVERHEAD`; anything else (JSON, the web pages'
  forms) ``DRB_MAX_JSON_BYTES``. A declared length over the limit is refused with 413 at once;
  a chunked body is counted as it streams through and cut off with 413 as soon as it passes the
  limit: the application never receives the chunk that went over, and whatever it answers to
  the interruption is replaced by the 413. Nothing is buffered here, so uploads still stream.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.broker.dependencies import PRINCIPAL_STATE, authenticate_header
from services.broker.problems import Problem, database_unavailable, problem_response
from services.catalogue import auth
from services.catalogue.db import session_scope
from services.catalogue.runtime import Runtime

# Room for the multipart boundaries, part headers and the small text fields around the file.
MULTIPART_OVERHEAD = 1024 * 1024
UPLOAD_PATH = "/v1/submissions"
_LENGTH = re.compile(r"[0-9]{1,19}")  # ASCII digits only; 19 digits fit in a 64-bit integer


class BodyTooLarge(Exception):
    """Raised into the application by ``receive`` when a streamed body passes its limit."""


class BodyLimits:
    """Authenticate before reading a body under /v1/, and limit every body (see the module)."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw_length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        declared: int | None = None
        if raw_length is not None:
            if not _LENGTH.fullmatch(raw_length.strip()):
                await _answer(
                    Problem(400, "Content-Length must be a number of bytes.", type_="bad-request"),
                    scope,
                    receive,
                    send,
                )
                return
            declared = int(raw_length.strip())
        # HTTP/2 may send a body with neither header; every body is limited in any case.
        http2 = scope.get("http_version") == "2"
        has_body = chunked or bool(declared) or (declared is None and http2)
        if has_body and scope["path"].startswith("/v1/"):
            try:
                principal = await run_in_threadpool(self._authenticate, headers)
            except Problem as problem:
                await _answer(problem, scope, receive, send)
                return
            except Exception as error:
                # Outside the app's exception handlers: a database that does not answer is a
                # 503 with Retry-After here too, never a 500 or a 401.
                unavailable = database_unavailable(error)
                if unavailable is None:
                    raise
                await _answer(unavailable, scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE] = principal

        limit, setting = self._limit(scope, headers)
        if declared is not None and declared > limit:
            await _answer(_too_large(limit, setting), scope, receive, send)
            return
        guard = _Guard(
            scope=scope,
            receive=receive,
            send=send,
            limit=limit,
            refusal=_too_large(limit, setting),
        )
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            # The application may fail in any way once its body is cut off; the 413 is the answer.
            if not guard.exceeded:
                raise
        if guard.exceeded:
            await guard.refuse()

    def _authenticate(self, headers: Headers) -> auth.Principal:
        """The caller (in a worker thread: the lookup blocks), or a 401 Problem."""
        with session_scope(self.runtime.factory) as session:
            return authenticate_header(session=session, authorization=headers.get("authorization"))

    def _limit(self, scope: Scope, headers: Headers) -> tuple[int, str]:
        """The largest body this request may have, and the setting that says so."""
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if (
            scope["method"] == "POST"
            and scope["path"] == UPLOAD_PATH
            and media_type == "multipart/form-data"
        ):
            return self.runtime.settings.max_upload_bytes + MULTIPART_OVERHEAD, "upload"
        return self.runtime.settings.max_json_bytes, "json"


class _Guard:
    """The application's receive and send for one request: bytes counted, the 413 sent once."""

    def __init__(
        self, *, scope: Scope, receive: Receive, send: Send, limit: int, refusal: Problem
    ) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._limit = limit
        self._refusal = refusal
        self._received = 0
        self.exceeded = False
        self.started = False  # a response has begun (the application's, or the 413)

    async def receive(self) -> Message:
        """The next body message; BodyTooLarge (and no more bytes) once past the limit."""
        if self.exceeded:
            raise BodyTooLarge
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                self.exceeded = True
                raise BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        """Pass the application's response on; after a cut-off, send the 413 in its place."""
        if not self.exceeded:
            if message["type"] == "http.response.start":
                self.started = True
            await self._send(message)
        elif not self.started and message["type"] == "http.response.start":
            await self.refuse()
        # Anything else after a cut-off (the rest of the replaced response) is dropped.

    async def refuse(self) -> None:
        """Send the 413, unless a response has begun."""
        if not self.started:
            self.started = True
            await problem_response(self._refusal)(self._scope, _no_receive, self._send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    await problem_response(problem)(scope, receive, send)


def _too_large(limit: int, setting: str) -> Problem:
    if setting == "upload":
        detail = (
            f"The upload is larger than this broker accepts ({limit:,} bytes: DRB_MAX_UPLOAD_BYTES"
            " and room for the form). Split the return or ask the broker's stewards."
        )
    else:
        detail = (
            f"The request body is larger than this broker accepts ({limit:,} bytes,"
            " DRB_MAX_JSON_BYTES)."
        )
    return Problem(413, detail, type_="too-large", headers={"Connection": "close"})
