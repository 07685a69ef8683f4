"""Browser-facing protection as pure ASGI middleware: cross-site request refusal, CORS, security headers.

A server on ``127.0.0.1`` without an API key can be reached by any web page its user visits: the
browser sends the page's cross-site POST (a form or a ``fetch``) to it. Browsers label such requests
with an ``Origin`` header (and ``Sec-Fetch-Site``), which a page cannot forge, so:

- :class:`OriginPolicyMiddleware` answers 403 to a state-changing request (POST, PUT, PATCH, DELETE)
  whose ``Origin`` is not the server's own (scheme and ``Host`` header) nor one of the origins allowed
  with ``--cors-origin``; without ``Origin``, a ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site``
  is refused the same way. Requests from programs (curl, tritonclient, Python) send neither header and
  pass. Requests from an allowed origin go through Starlette's ``CORSMiddleware``, which adds the CORS
  answer headers and answers their preflight (``OPTIONS``) itself, before the API-key check: a browser
  never sends credentials on a preflight. Other origins get no CORS headers at all.
- :class:`SecurityHeadersMiddleware` adds ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy (:data:`PAGE_CSP`, unless the
  response set its own, as the API docs pages do) to every response, errors included.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from pixlearn._core.errors import ConfigError
from pixlearn.serve.errors import send_error

__all__ = ["PAGE_CSP", "STATE_CHANGING", "SECURITY_HEADERS", "LOOPBACK_HOSTS", "normalize_origin", "normalize_host",
           "OriginPolicyMiddleware", "HostCheckMiddleware", "SecurityHeadersMiddleware", "hide_paths",
           "install_security"]

#: Methods that change state on the server: refused from a cross-site page.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: The web page's policy (sent on every response that does not carry its own): scripts, styles and
#: requests from this server only; images may also be ``data:``/``blob:`` URLs (previews, op results).
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

#: Headers every response carries.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: The names a loopback server answers to by default (``pixlearn serve`` on 127.0.0.1, localhost or ::1).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _canonical(scheme: str, host: str, port: int | None) -> str:
    scheme, host = scheme.lower(), host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def normalize_origin(origin: str) -> str:
    """``origin`` as ``scheme://host[:port]`` (lower case, default port dropped); ConfigError when it is not one.

    Examples
    --------
    >>> normalize_origin("HTTPS://App.Example.com:443/")
    'https://app.example.com'
    >>> normalize_origin("http://localhost:5173")
    'http://localhost:5173'
    >>> normalize_origin("*")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: --cors-origin '*': expected an origin such as https://app.example.com or http://localhost:5173 (scheme http or https, a host, an optional port, no path); '*' would let every web page use the service: list the origins instead
    """
    text = str(origin).strip()
    fix = ("expected an origin such as https://app.example.com or http://localhost:5173 "
           "(scheme http or https, a host, an optional port, no path)")
    if text == "*":
        raise ConfigError(f"--cors-origin '*': {fix}; '*' would let every web page use the service: list the origins "
                          "instead")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"--cors-origin {text!r}: {fix}") from None
    if (parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or parts.username or parts.password):
        raise ConfigError(f"--cors-origin {text!r}: {fix}")
    return _canonical(parts.scheme, parts.hostname, port)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1").strip()
    return None


def own_origin(scope) -> str | None:
    """The origin this request was addressed to: its scheme and its ``Host`` header (else the socket's address).

    >>> own_origin({"scheme": "http", "headers": [(b"host", b"127.0.0.1:8000")], "server": ("127.0.0.1", 8000)})
    'http://127.0.0.1:8000'
    """
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    host = _header(scope, b"host")
    if host:
        try:
            parts = urlsplit(f"{scheme}://{host}")
            return _canonical(scheme, parts.hostname or "", parts.port) if parts.hostname else None
        except ValueError:
            return None
    server = scope.get("server")
    if server and server[1] is not None:
        return _canonical(scheme, str(server[0]), int(server[1]))
    return None


def _sent_origin(value: str) -> str | None:
    """The browser's ``Origin`` header, canonical; None for ``null`` or anything that is not an origin."""
    try:
        return normalize_origin(value)
    except ConfigError:
        return None


class OriginPolicyMiddleware:
    """403 for state-changing requests from other sites; CORS answers for the ``allowed`` origins.

    Parameters
    ----------
    app : ASGI app
    allowed : iterable of str
        Origins (``scheme://host[:port]``) whose pages may use the service (``--cors-origin``).
    """

    def __init__(self, app, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(normalize_origin(o) for o in allowed)
        self.cors = None
        if self.allowed:
            from starlette.middleware.cors import CORSMiddleware

            self.cors = CORSMiddleware(
                app, allow_origins=sorted(self.allowed), allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"], allow_credentials=False, max_age=600,
                expose_headers=["Retry-After", "WWW-Authenticate", "Inference-Header-Content-Length"])

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin_header = _header(scope, b"origin")
        origin = _sent_origin(origin_header) if origin_header is not None else None
        if origin is not None and origin in self.allowed:
            await self.cors(scope, receive, send)  # type: ignore[misc]  # allowed implies self.cors
            return
        if scope["method"] in STATE_CHANGING:
            why = self._refusal(scope, origin_header, origin)
            if why:
                await self._refuse(scope, send, why)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(scope, origin_header: str | None, origin: str | None) -> str | None:
        if origin_header is not None:
            if origin is not None and origin == own_origin(scope):
                return None
            return f"it comes from a page at {origin_header!r}, not from this server's own pages"
        fetch_site = (_header(scope, b"sec-fetch-site") or "").lower()
        if fetch_site in ("cross-site", "same-site"):
            return f"the browser marked it Sec-Fetch-Site: {fetch_site} (a page of another site sent it)"
        return None

    @staticmethod
    async def _refuse(scope, send, why: str) -> None:
        message = (f"{scope['method']} {scope['path']} refused: {why}; a web page on another origin may only use this "
                   "service when the server is started with --cors-origin ORIGIN (programs that send no Origin "
                   "header, such as curl or Python clients, are not affected)")
        await send_error(send, 403, message, path=scope["path"], code="cross_site_request", headers=[(b"vary", b"Origin")])


def normalize_host(name: str) -> str:
    """A host name for ``--allowed-host``: lower case, without brackets or port; ConfigError when it is not one.

    Examples
    --------
    >>> normalize_host("LocalHost")
    'localhost'
    >>> normalize_host("[::1]")
    '::1'
    >>> normalize_host("example.com:8000")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: --allowed-host 'example.com:8000': expected a host name or address without scheme, port or path, e.g. pixlearn.example.com or 192.168.1.20
    """
    text = str(name).strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    ok = bool(text) and len(text) <= 253 and all(c.isalnum() or c in ".-_" for c in text.replace(":", ""))
    if not ok or (":" in text and text.count(":") < 2):  # one colon is a port; IPv6 has two or more
        raise ConfigError(f"--allowed-host {name!r}: expected a host name or address without scheme, port or path, "
                          "e.g. pixlearn.example.com or 192.168.1.20")
    return text


def _request_host(scope) -> str | None:
    host = _header(scope, b"host")
    if host is None:
        return None
    try:
        name = urlsplit(f"http://{host}").hostname
    except ValueError:
        return ""
    return (name or "").lower()


class HostCheckMiddleware:
    """421 for a request whose ``Host`` header is not one of ``allowed`` (DNS-rebinding protection).

    A page on ``http://attacker.example`` can make its name resolve to 127.0.0.1 and then call the
    service as if it were same-origin; its requests still carry ``Host: attacker.example``. ``pixlearn
    serve`` on a loopback address therefore answers only to :data:`LOOPBACK_HOSTS` (plus ``--allowed-host``
    names). A request without a ``Host`` header (HTTP/1.0) is let through: browsers always send one.
    """

    def __init__(self, app, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(normalize_host(h) for h in allowed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.allowed:
            await self.app(scope, receive, send)
            return
        host = _request_host(scope)
        if host is None or host in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = (_header(scope, b"host") or "")[:100]
        message = (f"Host {shown!r} is not a name this server answers to (it answers to "
                   f"{', '.join(sorted(self.allowed))}); open the page through one of those, or start the server "
                   "with --allowed-host NAME")
        await send_error(send, 421, message, path=scope["path"], code="misdirected_request")


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` and a Content-Security-Policy (``csp`` unless the response has one)."""

    def __init__(self, app, csp: str = PAGE_CSP) -> None:
        self.app = app
        self.csp = csp.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", self.csp))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def hide_paths(text: str, storage: str | Path, *, extra: Iterable[tuple[str | Path, str]] = ()) -> str:
    """``text`` with the server's absolute paths replaced by names: ``extra`` (path, name) pairs first,
    then the storage folder (``<storage>``) and the Python installation (``<python>``).

    API answers and the job logs served over the API go through it, so a client never learns where
    the service keeps its files.

    Examples
    --------
    >>> hide_paths("wrote /srv/px/models/cats-1/weights", "/srv/px")
    'wrote <storage>/models/cats-1/weights'
    >>> hide_paths("/data/runs/pets: no such run folder", "/srv/px", extra=[("/data/runs/pets", "pets")])
    'pets: no such run folder'
    """
    pairs = [(str(p), name) for p, name in extra]
    pairs += [(str(storage), "<storage>"), (os.path.realpath(storage), "<storage>")]
    pairs += [(p, "<python>") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]
    for path, name in sorted(pairs, key=lambda pn: -len(pn[0])):  # longest first: a path inside another
        if len(path) > 1:
            text = text.replace(path, name)
    return text


def install_security(app, *, cors_origins: Iterable[str] = (), allowed_hosts: Iterable[str] = ()) -> None:
    """Add the middlewares to a Starlette/FastAPI ``app``; call it after every other ``add_middleware``.

    They become the outermost layers: the headers go on every answer (401, 413, 429, 504 included), and
    a request for another host name or from another site is refused before the API key, the body or the
    concurrency slot is looked at. An empty ``allowed_hosts`` checks no ``Host`` header.
    """
    app.add_middleware(OriginPolicyMiddleware, allowed=list(cors_origins))
    app.add_middleware(HostCheckMiddleware, allowed=list(allowed_hosts))
    app.add_middleware(SecurityHeadersMiddleware)
