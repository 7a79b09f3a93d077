"""``GET /v1/health``: the one call that needs no token."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.broker.dependencies import RuntimeDep
from services.broker.responses import Answer, Health
from services.catalogue.queue import queue_answers

router = APIRouter(tags=["health"])


@router.get(
    "/v1/health",
    summary="Whether the database and the queue answer",
    responses={503: {"model": Health, "description": "The database or the queue does not answer."}},
)
def health(runtime: RuntimeDep, response: Response) -> Health:
    """``{"status": "ok"}`` with 200 once the database and the queue answer, else 503."""
    database: Answer
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError:
        database = "unavailable"
    queue: Answer = "ok" if queue_answers(runtime.broker) else "unavailable"
    healthy = database == queue == "ok"
    if not healthy:
        response.status_code = 503
    return Health(
        status="ok" if healthy else "unavailable",
        database=database,
        queue=queue,
        mode="distributed" if runtime.settings.redis_url else "embedded",
    )
