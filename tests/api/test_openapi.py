"""Every route's success body is described in ``/openapi.json``: a route returning an untyped
``dict[str, Any]`` (an empty schema, or an object with no properties) fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.broker.app import create_app
from services.catalogue.runtime import Runtime

NO_BODY = {"204", "304"}


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema


def untyped(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether a body's schema says nothing of it: ``{}``, or an object with no properties."""
    schema = _resolve(schema, document)
    if not schema:
        return True
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return any(untyped(part, document) for part in schema[key])
    if schema.get("type") == "array":
        return untyped(schema.get("items", {}), document)
    if schema.get("type") == "object" or "properties" in schema:
        return not schema.get("properties")
    return False


def api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every route in the OpenAPI document, with its full path (included routers too)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):  # an included router (FastAPI >= 0.160)
            inner = route.include_context.prefix
            yield from api_routes(list(route.original_router.routes), prefix + inner)
        elif isinstance(route, APIRoute) and route.include_in_schema:
            yield prefix + route.path_format, route


def test_every_json_success_has_a_typed_schema(runtime: Runtime, client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    routes = list(api_routes(list(create_app(runtime).routes)))
    assert len(routes) >= 30
    missing: list[str] = []
    for path, route in routes:
        for method in route.methods:
            operation = document["paths"][path][method.lower()]
            successes = {
                code: response
                for code, response in operation["responses"].items()
                if code.startswith("2")
            }
            assert successes, f"{method} {path}: no success response documented"
            for code, response in successes.items():
                if code in NO_BODY:
                    continue
                content = response.get("content")
                name = f"{method} {path} {code}"
                if not content:
                    missing.append(f"{name}: no content")
                    continue
                for media_type, body in content.items():
                    if "json" not in media_type:
                        continue  # CSV, Parquet: documented by their media type
                    if untyped(body.get("schema", {}), document):
                        missing.append(f"{name} {media_type}: no schema")
    assert not missing, "\n".join(missing)


def test_the_check_finds_an_untyped_body() -> None:
    document: dict[str, Any] = {
        "components": {"schemas": {"Free": {"type": "object", "additionalProperties": True}}}
    }
    assert untyped({}, document)
    assert untyped({"type": "object", "additionalProperties": True}, document)
    assert untyped({"type": "array", "items": {"$ref": "#/components/schemas/Free"}}, document)
    assert untyped({"anyOf": [{"type": "string"}, {}]}, document)
    assert not untyped({"type": "array", "items": {"type": "string"}}, document)
    assert not untyped({"type": "object", "properties": {"id": {"type": "string"}}}, document)
