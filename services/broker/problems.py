"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.catalogue.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
)

log = logging.getLogger(__name__)

# Seconds a client is asked to wait (Retry-After) while the database does not answer.
DATABASE_RETRY_AFTER = 5

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://data-request-broker.nhs.example/problems/"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An HTTP error with a machine-readable type and a detail a person can act on."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or _TITLES.get(status, "Error")
        self.errors = errors
        self.headers = headers
        self.extra = extra


def problem_response(problem: Problem) -> JSONResponse:
    """Render a Problem as ``application/problem+json``."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.type if problem.type else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    body.update(problem.extra)
    return JSONResponse(
        body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers
    )


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "kind") -> "kind"; query and path parameters keep their source for clarity.
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    if isinstance(exc, NotFound):
        return problem_response(Problem(404, exc.detail, type_="not-found"))
    if isinstance(exc, AlreadyExists | Conflict):
        return problem_response(Problem(409, exc.detail, type_="conflict"))
    if isinstance(exc, Forbidden):
        return problem_response(Problem(403, exc.detail, type_="forbidden"))
    if isinstance(exc, Invalid):
        problem = Problem(422, exc.detail, type_="invalid", errors=exc.errors)
        problem.extra = dict(exc.extra)
        return problem_response(problem)
    return problem_response(Problem(400, exc.detail))


def _validation_error(error: dict[str, Any]) -> dict[str, Any]:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        # loc is ("body", character offset): name the body and say where the JSON broke.
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error", "not valid JSON")
        return {"field": "body", "message": f"not valid JSON at character {position}: {reason}"}
    return {"field": _field(loc), "message": error.get("msg", "invalid")}


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_error(error) for error in exc.errors()]
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return problem_response(
        Problem(422, f"The request is not valid: check {fields}.", type_="invalid", errors=errors)
    )


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(Problem(exc.status_code, detail, headers=headers))


def database_unavailable(error: BaseException) -> Problem | None:
    """503 with ``Retry-After`` when ``error`` says the database does not answer, else None.

    The one place that decides it, for the routes and for the middleware that authenticates
    before a body is read: SQLAlchemy's OperationalError and InterfaceError (a server stopped
    or restarting, a connection broken mid-transaction, SQLite busy), a connection the pool
    found dead, a pool with no connection free in time, and psycopg's own errors of that kind
    should one escape unwrapped. Nothing was changed by the failed request (its transaction
    rolled back), so the client may send it again, with the same Idempotency-Key.
    """
    if not _is_unavailable(error):
        return None
    return Problem(
        503,
        "The database does not answer at the moment; nothing was changed. Send the request"
        f" again in {DATABASE_RETRY_AFTER} seconds (with the same Idempotency-Key).",
        type_="unavailable",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


def _unavailable_types() -> tuple[type[Exception], ...]:
    found: list[type[Exception]] = [
        OperationalError,
        InterfaceError,
        DisconnectionError,
        PoolTimeout,
    ]
    try:
        import psycopg
    except ImportError:  # a SQLite-only installation
        pass
    else:
        found += [psycopg.OperationalError, psycopg.InterfaceError]
    return tuple(found)


_UNAVAILABLE = _unavailable_types()
# The handlers' keys: every DBAPIError (a dropped connection may surface as another kind, with
# connection_invalidated set); the rest of them remain 500s.
_DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, *_UNAVAILABLE)


def _is_unavailable(error: BaseException) -> bool:
    if isinstance(error, _UNAVAILABLE):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


# The SQLSTATE of a unique violation (PostgreSQL), and how SQLite words one.
_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = "UNIQUE constraint failed"


def conflicting_write(error: BaseException) -> Problem | None:
    """A 409 for a unique key that another call took between this call's check and its commit.

    Where the domain checks first (an organisation's code, an upload's copy), two calls at the
    same moment can both pass the check; the database's unique key then keeps the second out.
    That is a conflict the caller can resolve by asking again, not a fault of ours: nothing of
    the call was kept (its unit of work rolled back).
    """
    if not isinstance(error, IntegrityError):
        return None
    original = error.orig
    if getattr(original, "sqlstate", None) != _UNIQUE_VIOLATION and _SQLITE_UNIQUE not in str(
        original
    ):
        return None
    return Problem(
        409,
        "Another call changed the same record at the same moment, so nothing of this one was"
        " kept. Send it again: it will be answered against what the other call made.",
        type_="conflict",
    )


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    problem = database_unavailable(exc)
    what = "database unavailable"
    if problem is None:
        problem, what = conflicting_write(exc), "a concurrent call took the same unique key"
    if problem is None:
        return await _on_unexpected(request, exc)
    log.warning(
        "%s in %s %s (%s)",
        what,
        request.method,
        request.url.path,
        type(exc).__name__,
        extra={"method": request.method, "path": request.url.path},
    )
    return problem_response(problem)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The path without its query string, which may hold anything a client put there.
    log.exception(
        "unhandled error in %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path},
    )
    return problem_response(
        Problem(500, "Something went wrong on our side; it has been logged.", type_="internal")
    )


def install(app: FastAPI) -> None:
    """Make every error the app raises a problem details response."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for database_error in _DATABASE_ERRORS:
        app.add_exception_handler(database_error, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
