"""Request limits as pure ASGI middleware: body size (413), concurrency (429) and time (504).

- :class:`BodyLimitMiddleware` refuses a declared ``Content-Length`` over the limit before
  reading anything, and stops a body that streams past it (chunked uploads) with the same 413.
- :class:`ConcurrencyLimitMiddleware` answers 429 with ``Retry-After`` when ``max_concurrency``
  requests are already in flight; the health routes, the page and its files bypass the count,
  so probes keep answering under load.
- :class:`TimeoutMiddleware` answers 504 when a request has not produced its response within
  ``timeout_s``. Work already handed to a worker thread finishes in the background (Python
  cannot stop a thread), its result is dropped.
"""

from __future__ import annotations

import json

import anyio
from starlette.exceptions import HTTPException

from pixlearn.serve.errors import error_body

__all__ = ["BodyTooLarge", "BodyLimitMiddleware", "ConcurrencyLimitMiddleware", "TimeoutMiddleware", "BYPASS_PATHS"]

#: Paths that bypass the concurrency and time limits (cheap, and must answer while the service is busy).
BYPASS_PATHS = frozenset({"/v1/health", "/v2/health/live", "/v2/health/ready"})


def _bypass(path: str) -> bool:
    return path in BYPASS_PATHS or path == "/" or path.startswith("/static/")


async def _send_json(send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None, *,
                     path: str = "") -> None:
    body = json.dumps(error_body(status, message, path=path)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.3g} MB"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (an HTTPException, so FastAPI passes it on)."""

    def __init__(self, limit: int, path: str) -> None:
        super().__init__(413, f"request body to {path} is larger than the limit of {_mb(limit)}; send a smaller file "
                              "or start the server with a larger --max-body-mb")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, f"Content-Length {value!r} is not a number", path=scope["path"])
                    return
                if declared > self.max_bytes:
                    await _send_json(send, 413, f"request body to {path} is {_mb(declared)}, over the limit of "
                                                f"{_mb(self.max_bytes)}; send a smaller file or start the server "
                                                "with a larger --max-body-mb", path=scope["path"])
                    return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes, path)
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send_json(send, 413, str(exc.detail), path=scope["path"])


class ConcurrencyLimitMiddleware:
    """429 with ``Retry-After`` when ``limit`` requests are in flight (health and static bypass)."""

    def __init__(self, app, limit: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.limit = int(limit)
        self.retry_after = str(int(retry_after_s)).encode()
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _bypass(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _send_json(send, 429, f"the server is busy ({self.in_flight} requests in flight, the limit is "
                                        f"{self.limit}); retry after {self.retry_after.decode()} s "
                                        "(the limit is set with --concurrency)",
                             headers=[(b"retry-after", self.retry_after)], path=scope["path"])
            return
        self.in_flight += 1  # one event loop: no lock needed between the check and the increment
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class TimeoutMiddleware:
    """504 when a request runs longer than ``timeout_s`` (before its response started)."""

    def __init__(self, app, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = float(timeout_s)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _bypass(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with anyio.move_on_after(self.timeout_s) as scope_cancel:
            await self.app(scope, receive, tracking_send)
        if scope_cancel.cancelled_caught and not started:
            await _send_json(send, 504, f"{scope['method']} {scope['path']} took longer than the limit of "
                                        f"{self.timeout_s:g} s and was stopped; send a smaller input or start the "
                                        "server with a larger --timeout", path=scope["path"])
