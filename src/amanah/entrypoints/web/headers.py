"""ASGI middleware adding the browser-hardening headers to every response.

* ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'``: no page of the
  bank's site can be framed by another site (clickjacking the login, consent or withdraw buttons);
* ``Referrer-Policy: no-referrer``: secure-link and link tokens in URLs never leak in ``Referer``;
* ``X-Content-Type-Options: nosniff``: responses are only ever what their content type says.

A header a route already set is left as it is (e.g. a route's own, stricter CSP).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
