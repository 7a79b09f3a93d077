"""The connection as the client made it: TLS ended by a trusted proxy, and HSTS over https.

Behind a TLS proxy the broker sees plain http from the proxy. ``DRB_TRUSTED_PROXIES`` names the
proxies whose ``X-Forwarded-Proto`` and ``X-Forwarded-For`` are believed (uvicorn's
ProxyHeadersMiddleware); from anyone else the headers change nothing, so a client cannot claim
https or another address. Once the scheme is https, by the connection or a trusted proxy, every
response carries ``Strict-Transport-Security`` (``DRB_HSTS_MAX_AGE``; 0 leaves it out) and the
web session cookie is ``Secure`` (services/broker/web/pages.py).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.catalogue.settings import Settings


class StrictTransportSecurity:
    """Adds ``Strict-Transport-Security`` to every https response (RFC 6797)."""

    def __init__(self, app: ASGIApp, *, max_age: int) -> None:
        self.app = app
        self.value = f"max-age={max_age}; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Strict-Transport-Security"] = self.value
            await send(message)

        await self.app(scope, receive, send_with_header)


def trusted_proxies(settings: Settings) -> list[str]:
    """DRB_TRUSTED_PROXIES as uvicorn's list of hosts and networks (empty: trust none)."""
    return [entry for entry in settings.trusted_proxies.split(",") if entry]


def install(app: FastAPI, settings: Settings) -> None:
    """Wrap ``app``: proxy headers first (outermost), then HSTS on what is https."""
    if settings.hsts_max_age > 0:
        app.add_middleware(StrictTransportSecurity, max_age=settings.hsts_max_age)
    # Added last, so it runs first: everything inside sees the client's scheme and address.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies(settings))
