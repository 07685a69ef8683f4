"""Request limits as pure ASGI middleware: body size (413) and pace (408), concurrency (429) and time (504).

- :class:`BodyLimitMiddleware` refuses a declared ``Content-Length`` over the limit before
  reading anything, and stops a body that streams past it (chunked uploads) with the same 413.
  A body that stalls (no data for ``timeout_s``, e.g. a client that sends headers and then
  nothing) is answered 408 and its connection closed, so stalled uploads cannot hold the
  service's slots until the request timeout.
- :class:`ConcurrencyLimitMiddleware` lets ``limit`` requests run at once; up to ``max_queue``
  more wait (first come, first served, at most ``queue_timeout_s``) for a slot, and beyond that a
  request is answered 429 with ``Retry-After``. A slot is held until the request's work has
  ended, not only until its answer was sent. The health routes, the page and its files bypass
  the count, so probes keep answering under load.
- :class:`TimeoutMiddleware` answers 504 when a request has not produced its response within
  ``timeout_s``. CPU work running in the worker pool (:mod:`pixlearn.serve.workers`) is killed
  with its worker process first, so it ends with the answer. Work in a thread (model inference,
  database calls) cannot be stopped: the 504 is sent at the deadline and the request keeps its
  concurrency slot until the thread has returned. A request may :meth:`Deadline.commit` (e.g.
  a training job about to be stored): from then on the deadline no longer applies to it, so
  it never answers 504 for work that was done.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
from collections.abc import Callable

import anyio
from starlette.exceptions import HTTPException

from pixlearn.serve.errors import send_error

__all__ = ["BodyTooLarge", "BodyStalled", "BodyLimitMiddleware", "ConcurrencyLimitMiddleware", "TimeoutMiddleware",
           "Deadline", "current_deadline", "BYPASS_PATHS"]

log = logging.getLogger("pixlearn.serve")

#: Paths that bypass the concurrency and time limits (cheap, and must answer while the service is busy).
BYPASS_PATHS = frozenset({"/v1/health", "/v2/health/live", "/v2/health/ready"})

#: The deadline of the request being served (set by :class:`TimeoutMiddleware`).
current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("pixlearn_deadline", default=None)


def _bypass(path: str) -> bool:
    return path in BYPASS_PATHS or path == "/" or path.startswith("/static/")


async def _send_json(send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None, *,
                     path: str = "") -> None:
    await send_error(send, status, message, path=path, headers=headers)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.3g} MB"


class Deadline:
    """The time limit of one request, shared by :class:`TimeoutMiddleware` and the work the request runs.

    It is ``running`` until either the middleware calls :meth:`expire` at the deadline or the
    request calls :meth:`commit`; whichever comes first wins (thread-safe). Work that can be
    stopped registers a callback with :meth:`on_expire` (the worker pool kills the process).

    Examples
    --------
    >>> d = Deadline()
    >>> d.commit(), d.expire(), d.state
    (True, False, 'committed')
    >>> d = Deadline(); d.expire(), d.commit(), d.state
    (True, False, 'expired')
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = "running"
        #: Whether the deadline has passed (also for a committed request, which it no longer stops).
        self.passed = False
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0

    def commit(self) -> bool:
        """Lift the deadline for the rest of this request; False when it has already expired (then do nothing)."""
        with self._lock:
            if self.state == "expired":
                return False
            self.state = "committed"
            return True

    def expire(self) -> bool:
        """Mark the deadline passed and run the stop callbacks; False (and nothing done) when the request committed."""
        with self._lock:
            self.passed = True
            if self.state == "committed":
                return False
            self.state = "expired"
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a failing stop must not keep the others from running
                log.exception("stopping work at a request's deadline failed")
        return True

    @property
    def expired(self) -> bool:
        return self.state == "expired"

    def on_expire(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the deadline passes (at once if it has); returns a function that unregisters it."""
        with self._lock:
            if self.state != "expired":
                key = self._next
                self._next += 1
                self._callbacks[key] = callback
            else:
                key = None
        if key is None:
            callback()
            return lambda: None

        def forget() -> None:
            with self._lock:
                self._callbacks.pop(key, None)

        return forget


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (an HTTPException, so FastAPI passes it on)."""

    def __init__(self, limit: int, path: str) -> None:
        super().__init__(413, f"request body to {path} is larger than the limit of {_mb(limit)}; send a smaller file "
                              "or start the server with a larger --max-body-mb")


class BodyStalled(HTTPException):
    """Raised from ``receive`` when no body data came for ``timeout_s`` (408; the connection is closed)."""

    def __init__(self, timeout_s: float, path: str, received: int) -> None:
        super().__init__(408, f"the request body to {path} stalled: no data for {timeout_s:g} s after {received} "
                              "bytes; send the whole body without pausing, or start the server with a larger "
                              "--body-timeout", headers={"Connection": "close"})


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``; 408 for bodies that send nothing for ``timeout_s`` (None: no limit)."""

    def __init__(self, app, max_bytes: int, timeout_s: float | None = None) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout_s = float(timeout_s) if timeout_s else None

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
        body_done = False
        started = False

        async def limited_receive():
            nonlocal received, body_done
            if body_done or self.timeout_s is None:  # after the body, receive() waits for a disconnect: no limit
                message = await receive()
            else:
                message = None
                with anyio.move_on_after(self.timeout_s):
                    message = await receive()
                if message is None:
                    raise BodyStalled(self.timeout_s, path, received)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    body_done = True
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes, path)
            else:
                body_done = True
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyStalled) as exc:
            if started:
                raise
            headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
            await _send_json(send, exc.status_code, str(exc.detail), headers=headers, path=scope["path"])


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class ConcurrencyLimitMiddleware:
    """At most ``limit`` requests at once, ``max_queue`` more waiting up to ``queue_timeout_s``; then 429.

    A request keeps its slot until the app has returned, which (see :class:`TimeoutMiddleware`) is
    when its work has ended. Health routes and static files bypass the count.
    """

    def __init__(self, app, limit: int, retry_after_s: int = 1, *, max_queue: int = 0,
                 queue_timeout_s: float = 0.0) -> None:
        self.app = app
        self.limit = int(limit)
        self.max_queue = int(max_queue)
        self.queue_timeout_s = float(queue_timeout_s)
        self.retry_after = str(int(retry_after_s)).encode()
        self.in_flight = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return len(self._waiters)

    async def _refuse(self, scope, send, why: str) -> None:
        await _send_json(send, 429, f"the server is busy ({why}); retry after {self.retry_after.decode()} s "
                                    "(the limits are set with --concurrency and --queue)",
                         headers=[(b"retry-after", self.retry_after)], path=scope["path"])

    async def _acquire(self) -> bool:
        """Take a slot now, or wait for one in the queue; False when refused (queue full or wait too long)."""
        # one event loop: no lock needed between the checks and the updates
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self.max_queue or self.queue_timeout_s <= 0:
            return False
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            with anyio.move_on_after(self.queue_timeout_s):
                await waiter.event.wait()
        except BaseException:  # cancelled while waiting: give back a slot handed over meanwhile
            if waiter.granted:
                self._release()
            else:
                self._waiters.remove(waiter)
            raise
        if waiter.granted:  # in_flight was kept for us by _release
            return True
        self._waiters.remove(waiter)
        return False

    def _release(self) -> None:
        if self._waiters:  # hand the slot straight to the first waiter (in_flight stays)
            waiter = self._waiters.popleft()
            waiter.granted = True
            waiter.event.set()
        else:
            self.in_flight -= 1

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _bypass(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not await self._acquire():
            queued = len(self._waiters)
            why = (f"{self.in_flight} requests in flight, the limit is {self.limit}; {queued} waiting, the queue "
                   f"holds {self.max_queue}" if queued >= self.max_queue else
                   f"{self.in_flight} requests in flight, the limit is {self.limit}; no slot came free within "
                   f"{self.queue_timeout_s:g} s")
            await self._refuse(scope, send, why)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()


class TimeoutMiddleware:
    """504 when a request runs longer than ``timeout_s`` (before its response started).

    At the deadline the request's worker-pool calls are killed, the 504 is sent, and the app is
    cancelled; this middleware returns only once the app has (a call in a thread delays that until
    the thread ends, so the concurrency slot stays taken while the work runs). A request that
    committed its :class:`Deadline` runs to the end. ``pool`` (a callable returning the app's
    :class:`~pixlearn.serve.workers.WorkerPool` or None) makes the pool available to
    :func:`~pixlearn.serve.workers.run_cpu`.
    """

    #: How the watchdog waits out ``timeout_s`` (a test may put a fake clock here to decide when it passes).
    sleep = staticmethod(anyio.sleep)

    def __init__(self, app, timeout_s: float, pool: Callable[[], object] | None = None) -> None:
        self.app = app
        self.timeout_s = float(timeout_s)
        self.pool = pool

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _bypass(scope["path"]):
            await self.app(scope, receive, send)
            return
        from pixlearn.serve.workers import current_pool

        deadline = Deadline()
        started = False
        timed_out = False

        async def guarded_send(message) -> None:
            nonlocal started
            if timed_out:  # the client has its 504: whatever the app sends later is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        app_scope = anyio.CancelScope()

        async def watchdog() -> None:
            nonlocal timed_out
            await self.sleep(self.timeout_s)
            if not deadline.expire():  # committed: the request finishes, whatever it takes
                return
            app_scope.cancel()
            if not started:
                timed_out = True
                with anyio.CancelScope(shield=True):  # the app ending now must not cut the answer short
                    await _send_json(send, 504, f"{scope['method']} {scope['path']} took longer than the limit "
                                                f"of {self.timeout_s:g} s and was stopped; send a smaller input or "
                                                "start the server with a larger --timeout", path=scope["path"])

        tokens = (current_deadline.set(deadline), current_pool.set(self.pool() if self.pool is not None else None))
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watchdog)
                with app_scope:
                    try:
                        await self.app(scope, receive, guarded_send)
                    except Exception as exc:  # raised after the task group, not wrapped in an ExceptionGroup
                        error = exc
                tg.cancel_scope.cancel()
        finally:
            current_pool.reset(tokens[1])
            current_deadline.reset(tokens[0])
        if error is not None:
            if timed_out:  # the answer was the 504; what the abandoned work raised afterwards is only logged
                log.debug("%s %s failed after its 504: %r", scope["method"], scope["path"], error)
                return
            raise error
