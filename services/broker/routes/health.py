"""``GET /v1/health``: the one call that needs no token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.broker.dependencies import RuntimeDep
from services.catalogue.queue import queue_answers

router = APIRouter(tags=["health"])


@router.get("/v1/health", summary="Whether the database and the queue answer")
def health(runtime: RuntimeDep) -> JSONResponse:
    """``{"status": "ok"}`` with 200 once the database and the queue answer, else 503."""
    checks: dict[str, str] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        checks["database"] = "unavailable"
    checks["queue"] = "ok" if queue_answers(runtime.broker) else "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        **checks,
        "mode": "distributed" if runtime.settings.redis_url else "embedded",
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
