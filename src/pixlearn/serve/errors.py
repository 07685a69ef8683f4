"""Every error the service answers is JSON ``{"error": {"code": ..., "message": ...}}``.

The message is one sentence naming the input and the fix; the code is a stable machine-readable
name (``image_decode_error``, ``not_found``, ``payload_too_large``...). The Open Inference Protocol
routes (``/v2``) keep that protocol's own ``{"error": "<message>"}``.

:class:`ApiError` carries its own status (and optional extra keys such as ``reasons``);
pixlearn's typed errors map to the 4xx that fits them; FastAPI's ``HTTPException`` and request
validation errors are reshaped to the same body. Only a bug in the service gives a 500.
"""

from __future__ import annotations

import json

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixlearn._core.errors import (
    ConfigError,
    ImageDecodeError,
    ImageNotFoundError,
    ImageTooLargeError,
    PixlearnError,
    ShapeError,
    UnknownNameError,
    UnsupportedFormatError,
)

__all__ = ["ApiError", "ModelNotFound", "ModelUnavailable", "status_for", "error_body", "error_response",
           "install_error_handlers"]

log = logging.getLogger("pixlearn.serve")


class ApiError(PixlearnError):
    """An error with an HTTP status; ``extra`` keys are added to the JSON body (e.g. ``reasons``)."""

    def __init__(self, message: str, *, status: int = 400, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.extra = dict(extra or {})
        self.headers = headers


class ModelNotFound(UnknownNameError):
    """No registered model has this name (404)."""


class ModelUnavailable(PixlearnError):
    """A registered model cannot be loaded (its files are gone or damaged): 503."""


# Most specific first: the first matching class decides.
_STATUS: list[tuple[type[BaseException], int]] = [
    (ModelNotFound, 404),
    (ModelUnavailable, 503),
    (ImageNotFoundError, 404),
    (ImageTooLargeError, 413),
    (UnsupportedFormatError, 415),
    (ImageDecodeError, 400),
    (UnknownNameError, 404),
    (ShapeError, 422),
    (ConfigError, 400),
    (PixlearnError, 400),
]


def status_for(exc: BaseException) -> int:
    """The HTTP status of a pixlearn error.

    Examples
    --------
    >>> status_for(ImageTooLargeError("x")), status_for(ApiError("y", status=429))
    (413, 429)
    """
    if isinstance(exc, ApiError):
        return exc.status
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
          500: "internal_error", 503: "unavailable", 504: "timeout"}


def error_code(exc: BaseException | None, status: int) -> str:
    """A stable code: the pixlearn error's class in snake case, else the status's name.

    >>> error_code(ImageDecodeError("x"), 400), error_code(None, 413)
    ('image_decode_error', 'payload_too_large')
    """
    if isinstance(exc, PixlearnError) and not isinstance(exc, ApiError):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    return _CODES.get(status, f"http_{status}")


async def send_error(send, status: int, message: str, *, path: str = "", code: str | None = None,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer an ASGI request with :func:`error_body` as JSON (for middleware that answers before the app runs)."""
    body = json.dumps(error_body(status, message, path=path, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def error_body(status: int, message: str, *, path: str = "", code: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of an error: ``{"error": {"code", "message"}}``, or ``{"error": message}`` under ``/v2``.

    >>> error_body(404, "no such model 'x'", path="/v1/models/x")
    {'error': {'code': 'not_found', 'message': "no such model 'x'"}}
    >>> error_body(404, "no such model 'x'", path="/v2/models/x")
    {'error': "no such model 'x'"}
    """
    if path.startswith("/v2"):
        return {"error": message, **(extra or {})}
    return {"error": {"code": code or _CODES.get(status, f"http_{status}"), "message": message}, **(extra or {})}


def error_response(status: int, message: str, *, path: str = "", code: str | None = None,
                   extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, path=path, code=code, extra=extra), status_code=status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header", "form")]
        where = ".".join(loc) or "request"
        msg = err.get("msg", "invalid")
        if err.get("type") == "missing":
            msg = "is required"
        parts.append(f"{where} {msg}" if msg == "is required" else f"{where}: {msg}")
    return "invalid request: " + "; ".join(parts) + " (see /docs for the expected fields)"


async def _pixlearn_handler(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    extra = exc.extra if isinstance(exc, ApiError) else None
    headers = exc.headers if isinstance(exc, ApiError) else None
    return error_response(status, str(exc) or type(exc).__name__, path=request.url.path, code=error_code(exc, status),
                          extra=extra, headers=headers)


async def _http_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such route {_request.method} {_request.url.path}; see /docs for the API"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{_request.method} is not allowed on {_request.url.path}; see /docs for the API"
    if isinstance(detail, dict) and "error" in detail:
        return JSONResponse(detail, status_code=exc.status_code, headers=getattr(exc, "headers", None))
    message = detail if isinstance(detail, str) else str(detail)
    return error_response(exc.status_code, message, path=_request.url.path, headers=getattr(exc, "headers", None))


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, _validation_message(exc), path=request.url.path)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    """500 with ``Connection: close``.

    Starlette raises the exception again after this answer (for the server's log) and uvicorn then
    closes the connection; without the header a client that reuses the connection from its pool
    sends its next request into a closed socket and gets ECONNRESET. With it, the client opens a
    new connection.
    """
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}) while handling {request.url.path}; "
                               "the server log has the traceback", path=request.url.path,
                          headers={"Connection": "close"})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that shape every error as ``{"error": {"code", "message"}}`` (``/v2``: ``{"error": ...}``)."""
    app.add_exception_handler(PixlearnError, _pixlearn_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
