"""API keys: with keys configured every route needs ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

The health routes, the web page (``/``, ``/static/*``) and the API docs stay open, so a load
balancer can probe the service and a person can load the page (which then asks for the key).
Every method is checked, ``HEAD`` and ``OPTIONS`` included. The one request that never reaches this
check is a CORS preflight from an origin allowed with ``--cors-origin``: browsers send preflights
without credentials, so :class:`pixlearn.serve.security.OriginPolicyMiddleware` answers them first
(the answer only lists the allowed methods and headers; the real request still needs the key).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from pixlearn.serve.errors import error_body

__all__ = ["EXEMPT_PATHS", "is_exempt", "ApiKeyMiddleware"]

#: Paths answered without a key.
EXEMPT_PATHS = frozenset({"/", "/v1/health", "/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect",
                          "/redoc", "/openapi.json", "/favicon.ico"})


def is_exempt(path: str) -> bool:
    """Whether ``path`` is open without a key.

    Examples
    --------
    >>> is_exempt("/static/app.js"), is_exempt("/v1/models"), is_exempt("/v2/health/live")
    (True, False, True)
    """
    return path in EXEMPT_PATHS or path.startswith("/static/")


def _key_from(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                bearer = text[7:].strip()
    return bearer


class ApiKeyMiddleware:
    """Pure ASGI middleware: 401 ``{"error": ...}`` unless the request carries one of ``keys``."""

    def __init__(self, app, keys: Iterable[str]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]

    def _valid(self, key: str | None) -> bool:
        if not key:
            return False
        given = key.encode()
        ok = False
        for k in self.keys:  # compare against every key in constant time
            ok |= hmac.compare_digest(given, k)
        return ok

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.keys or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = _key_from(scope["headers"])
        if self._valid(key):
            await self.app(scope, receive, send)
            return
        why = ("no key was sent; send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'" if not key else
               "the key sent is not one of the server's keys")
        body = json.dumps(error_body(401, f"missing or invalid API key for {scope['path']}: {why} "
                                          "(the server's keys are set with --api-key or PIXLEARN_API_KEYS)",
                                     path=scope["path"])).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="pixlearn"')]})
        await send({"type": "http.response.body", "body": body})
