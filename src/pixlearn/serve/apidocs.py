"""The API's documentation: ``/docs`` (Swagger UI) and ``/redoc`` served offline, and the error answers in the schema.

The pages load Swagger UI and ReDoc from ``static/vendor/`` (see its README: npm's ``swagger-ui-dist``
and ``redoc``, under their licences), never from a CDN, and carry their own Content-Security-Policy:
the inline start-up script is allowed by its SHA-256 hash, nothing is loaded from elsewhere.

:func:`add_error_responses` writes into the OpenAPI schema, for every operation, the 4xx/5xx answers
the service's middleware and handlers can give it (401 with API keys, 403 cross-site, 413 over the
body limit, 429 busy, 504 timeout, ...) with their typed body: :class:`ErrorBody`
(``{"error": {"code", "message"}}``) under ``/v1``, :class:`OIPErrorBody` (``{"error": "..."}``) under ``/v2``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
    swagger_ui_default_parameters,
)
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ErrorDetail", "ErrorBody", "OIPErrorBody", "VENDOR_URL", "docs_csp", "add_error_responses",
           "install_docs"]

#: Where the vendored Swagger UI and ReDoc files are served (the app mounts ``static/`` at ``/static``).
VENDOR_URL = "/static/vendor"


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable machine-readable name: the pixlearn error (image_decode_error, "
                                  "model_not_found...) or the status's (bad_request, payload_too_large...).",
                      examples=["image_decode_error"])
    message: str = Field(description="One sentence naming the input, what was expected and the fix.",
                         examples=["image: not a supported image file (PNG, JPEG, WebP, TIFF, BMP, GIF)"])


class ErrorBody(BaseModel):
    """Every ``/v1`` error: ``{"error": {"code", "message"}}`` (a refused archive adds ``reasons``)."""

    model_config = ConfigDict(extra="allow")

    error: ErrorDetail
    reasons: list[str] | None = Field(None, description="A refused training archive: every problem found.")


class OIPErrorBody(BaseModel):
    """Every ``/v2`` (Open Inference Protocol) error: ``{"error": "<message>"}``."""

    error: str = Field(examples=["no model named 'cats'"])


# ------------------------------------------------------------------ error answers in the schema
_DESCRIPTIONS = {
    400: "Bad request: an option out of its range, a malformed body, or an input that cannot be decoded.",
    401: "No API key, or not one of the server's keys (only when the server was started with API keys).",
    403: "Refused: a state-changing request from another site's web page (allow its origin with --cors-origin), "
         "or a server path that may not be read.",
    404: "No such model, operation, job or version (in the path, or named in the options or the body).",
    408: "The request body did not arrive in time.",
    413: "The body, an image or an archive is over the server's limits.",
    415: "An unsupported image format or Content-Encoding.",
    422: "A required field is missing or has the wrong type, or an input has the wrong shape.",
    429: "Too many requests in flight: retry after Retry-After seconds.",
    503: "Not available now: a model cannot be loaded, or the server is starting or shutting down.",
    504: "The request took longer than the server's --timeout and was stopped.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer realm=\"pixlearn\"", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
}


def _statuses(path: str, method: str, op: dict[str, Any]) -> set[int]:
    """The error statuses one operation can answer."""
    from pixlearn.serve.auth import is_exempt
    from pixlearn.serve.limits import BYPASS_PATHS
    from pixlearn.serve.security import STATE_CHANGING

    params = op.get("parameters", [])
    has_body = "requestBody" in op
    has_query = any(p.get("in") == "query" for p in params)
    out: set[int] = set()
    if not is_exempt(path):
        out.add(401)
    if path not in BYPASS_PATHS:
        out |= {429, 504}
    if method.upper() in STATE_CHANGING:
        out.add(403)
    if has_body or has_query:  # an option out of range; an unknown model, op or recipe step named in them: 404
        out |= {400, 404, 422}
    if has_body:
        out |= {408, 413, 415}
    if any(p.get("in") == "path" for p in params):
        out |= {404, 422}
    if "/models" in path or method.upper() == "POST" or path == "/v2/health/ready":
        out.add(503)
    return out


def _schema_defs(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {model.__name__: schema, **defs}


def add_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers of every operation to an OpenAPI ``schema`` (in place; also returned).

    FastAPI's own 422 (``HTTPValidationError``) is replaced: the service reshapes validation errors.

    Examples
    --------
    >>> s = {"paths": {"/v1/ops/{op}": {"post": {"parameters": [{"in": "path", "name": "op"}],
    ...                                          "requestBody": {}, "responses": {"200": {}}}}}}
    >>> sorted(add_error_responses(s)["paths"]["/v1/ops/{op}"]["post"]["responses"])
    ['200', '400', '401', '403', '404', '408', '413', '415', '422', '429', '503', '504']
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_schema_defs(ErrorBody))
    components.update(_schema_defs(OIPErrorBody))
    for path, ops in schema.get("paths", {}).items():
        ref = "#/components/schemas/" + ("OIPErrorBody" if path.startswith("/v2") else "ErrorBody")
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            for status in sorted(_statuses(path, method, op)):
                entry = responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
                entry["content"] = {"application/json": {"schema": {"$ref": ref}}}
                if status in _HEADERS:
                    entry.setdefault("headers", _HEADERS[status])
    for unused in ("HTTPValidationError", "ValidationError"):  # in this order: the first refers to the second
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            components.pop(unused, None)
    return schema


# ------------------------------------------------------------------ offline docs pages
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _hashes(html: str) -> str:
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                    for s in _INLINE_SCRIPT.findall(html))


def docs_csp(html: str) -> str:
    """The Content-Security-Policy of a docs page: this server's files, plus the page's own inline scripts by hash.

    Styles may be inline (Swagger UI and ReDoc set them at run time); ReDoc's search runs in a
    ``blob:`` worker; images may be ``data:`` URLs.

    >>> docs_csp("<script>go()</script>").split("; ")[1]
    "script-src 'self' 'sha256-5KYv+PUboo5h+0+YAtGRPbwv5d/QxzHslP4YGnUaxRw='"
    """
    scripts = " ".join(filter(None, ["'self'", _hashes(html)]))
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    return HTMLResponse(html, headers={"Content-Security-Policy": docs_csp(html)})


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` from the vendored files (create the
    app with ``docs_url=None, redoc_url=None``), and document the error answers in ``app.openapi()``."""
    oauth2_url = docs_url + "/oauth2-redirect"
    favicon = f"{VENDOR_URL}/swagger-ui/favicon-32x32.png"
    # No validator badge: it would load an image from validator.swagger.io.
    parameters = {**swagger_ui_default_parameters, "validatorUrl": None}

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_csp(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI", oauth2_redirect_url=oauth2_url,
            swagger_js_url=f"{root}{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{VENDOR_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{favicon}", swagger_ui_parameters=parameters))

    @app.get(oauth2_url, include_in_schema=False)
    def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _with_csp(get_swagger_ui_oauth2_redirect_html())

    @app.get(redoc_url, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_csp(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{VENDOR_URL}/redoc/redoc.standalone.js", redoc_favicon_url=f"{root}{favicon}",
            with_google_fonts=False))

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
