"""A small pool of worker processes for the service's CPU work, where a task over its deadline is killed.

Python cannot stop a thread, so work handed to a thread at a request's deadline keeps a core busy
until it finishes on its own. :class:`WorkerPool` runs CPU-heavy calls (decoding, classical ops,
recipes, dominant colours, quality scores: numpy / OpenCV / scikit-image) in ``size`` processes
instead; when a request's deadline passes, the process running its call is killed (SIGKILL, then
reaped) and a fresh one takes its place, so the work really ends and the core is free again.
``concurrent.futures.ProcessPoolExecutor`` cannot do this: it has no way to stop one task, and a
killed worker breaks the whole executor.

- Workers are forked from a fork server that has imported numpy, OpenCV and ``pixlearn.ops``
  once, so a replacement is ready in milliseconds. Each uses one OpenCV thread (the processes are
  the parallelism), runs at a lower CPU priority than the server (so health probes and uploads are
  served at once under a CPU burst), ignores Ctrl-C (the server stops them) and dies with the server.
- Calls travel with cloudpickle, so a route may hand over a closure; results and errors come back
  with pickle. An exception raised in a worker is raised again in the server with its type and
  attributes (a pixlearn error keeps its HTTP status); a worker that dies (a crash, the kernel's
  OOM killer) answers :class:`WorkerCrashedError` and is replaced.
- :func:`run_cpu` is what routes call: it uses the pool of the request being served (set by the
  timeout middleware) and registers the call with the request's deadline; with no pool (``--workers
  0``, or outside a request) it runs the call in a thread.

Examples
--------
>>> import anyio, operator
>>> async def demo():
...     async with WorkerPool(1) as pool:
...         return await pool.run(operator.add, 2, 3)
>>> anyio.run(demo)
5
"""

from __future__ import annotations

import collections
import contextvars
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from pixlearn._core.errors import PixlearnError
from pixlearn.serve.errors import ApiError

__all__ = ["WorkerPool", "WorkerCrashedError", "run_cpu", "current_pool", "default_workers", "PRELOAD"]

log = logging.getLogger("pixlearn.serve.workers")

T = TypeVar("T")

#: Modules the fork server imports once, so that every worker starts with them loaded.
PRELOAD = ("numpy", "cv2", "pixlearn.io", "pixlearn.ops", "pixlearn.serve.workers")

#: How much lower the workers' CPU priority is than the server's (``nice``): under a CPU burst the event loop
#: still answers health probes and reads uploads at once; on an otherwise idle machine it changes nothing.
WORKER_NICENESS = 5

#: The pool of the request being served (set by :class:`~pixlearn.serve.limits.TimeoutMiddleware`).
current_pool: contextvars.ContextVar[WorkerPool | None] = contextvars.ContextVar("pixlearn_pool", default=None)


def default_workers() -> int:
    """The CPU cores this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class WorkerCrashedError(ApiError):
    """The worker process running a call died before answering (a crash, or killed from outside): 500."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=500)


# ---------------------------------------------------------------- inside a worker process
def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this worker when its parent (the fork server) goes away."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: the worker still exits when its pipe closes
        pass


def _portable_error(exc: BaseException) -> tuple[Any, ...]:
    """What travels back for an exception: the exception (pickle keeps its class, args and attributes, so
    ``ApiError.status`` survives) and its traceback as text."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
        return ("err", exc, text)
    except Exception:  # an unpicklable class or attribute: keep the type's name and the message
        return ("err", RuntimeError(f"{type(exc).__name__}: {exc}"), text)


def _cap_memory(limit_bytes: int | None) -> None:
    """Cap this process's address space (RLIMIT_AS): past it, allocations fail with MemoryError instead of
    growing until the kernel's OOM killer picks a victim."""
    if not limit_bytes:
        return
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = int(limit_bytes) if hard == resource.RLIM_INFINITY else min(int(limit_bytes), hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX, or a stricter limit is already set
        pass


def _out_of_memory(exc: BaseException, limit_bytes: int | None) -> ApiError | None:
    """A 413 for a call that ran out of memory (numpy's MemoryError, OpenCV's "Insufficient memory")."""
    text = str(exc)
    if not (isinstance(exc, MemoryError) or (type(exc).__name__ == "error" and (
            "Insufficient memory" in text or "Failed to allocate" in text))):
        return None
    cap = f"the limit of {limit_bytes / 2**20:,.0f} MB per worker (--worker-memory-mb)" if limit_bytes else \
        "the memory available"
    return ApiError(f"the request needs more memory than {cap}; send a smaller image or smaller option values",
                    status=413)


def _worker_main(conn: Any, memory_bytes: int | None = None) -> None:
    """A worker's loop: receive a pickled call, run it, send back ``("ok", result)`` or ``("err", ...)``."""
    import cloudpickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server: the server stops its workers
    _die_with_parent()
    try:  # the server's event loop (health, uploads, answers) gets a core before computation does
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        pass
    _cap_memory(memory_bytes)
    try:
        import cv2

        cv2.setNumThreads(1)  # one thread per worker: the processes are the parallelism
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            func, args, kwargs = cloudpickle.loads(message)
            out: tuple[Any, ...] = ("ok", func(*args, **kwargs))
        except Exception as exc:
            out = _portable_error(_out_of_memory(exc, memory_bytes) or exc)
        try:
            data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # the result itself cannot be pickled
            data = pickle.dumps(_portable_error(TypeError(f"the result cannot be sent back to the server: {exc}")))
        try:
            conn.send_bytes(data)
        except (EOFError, OSError):
            return


# ---------------------------------------------------------------- in the server
class _NotSent(Exception):
    """The call could not be pickled, so it never reached the worker."""


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, ctx: Any, memory_bytes: int | None = None) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        self.process = ctx.Process(target=_worker_main, args=(child, memory_bytes), name="pixlearn-worker",
                                   daemon=True)
        self.process.start()
        child.close()
        self.pid: int = int(self.process.pid)
        self.killed = False

    def call(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Send a call and wait for its answer (runs in a thread; the pipe is closed here if the worker dies)."""
        import cloudpickle

        try:  # here, off the event loop: an upload of megabytes is copied into the message
            message = cloudpickle.dumps((func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise _NotSent(f"{getattr(func, '__qualname__', func)!r} or its arguments cannot be sent to a worker "
                           f"process ({type(exc).__name__}: {exc}); run it with run_blocking instead") from exc
        try:
            self.conn.send_bytes(message)
            return pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self.conn.close()
            if self.killed:
                raise WorkerCrashedError("the worker was stopped") from None
            why = (f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0
                   and -code in signal.valid_signals() else f"exited with status {code}")
            raise WorkerCrashedError(f"the worker process running this request {why} before answering (out of "
                                     "memory, or a crash in a native library); the request was not completed, "
                                     "and a new worker has taken its place") from None

    def kill(self) -> None:
        """SIGKILL the process and reap it (its pid is gone when this returns)."""
        self.killed = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)

    def stop(self) -> None:
        """Ask an idle worker to leave (closing its pipe ends its loop), kill it if it does not."""
        self.killed = True
        try:
            self.conn.close()
        except OSError:
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()


class WorkerPool:
    """``size`` worker processes for CPU work; a call over its request's deadline is killed with its worker.

    Parameters
    ----------
    size : int
        Processes (>= 1); calls beyond them wait for a free worker, first come first served.
    memory_mb : float, optional
        Address-space cap of each worker (RLIMIT_AS): a call that needs more fails with a 413
        :class:`~pixlearn.serve.errors.ApiError` instead of growing the machine's memory. None: no cap.
    preload : sequence of str
        Modules the fork server imports before forking workers (see :data:`PRELOAD`).

    Use ``async with WorkerPool(n) as pool`` (or :meth:`start` / :meth:`shutdown`), then
    ``await pool.run(func, *args, **kwargs)``. ``pids`` lists the live workers.
    """

    def __init__(self, size: int, *, memory_mb: float | None = None,
                 preload: tuple[str, ...] | list[str] = PRELOAD) -> None:
        if int(size) < 1:
            raise ValueError(f"a worker pool needs at least 1 process, got size={size}")
        self.size = int(size)
        self.memory_bytes = int(memory_mb * 2**20) if memory_mb else None
        self.preload = list(preload)
        self._ctx: Any = None
        self._idle: collections.deque[_Worker] = collections.deque()
        self._busy: set[_Worker] = set()
        self._free: anyio.Semaphore | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: Workers killed because their call passed its deadline or was cancelled (a counter for tests and logs).
        self.killed = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> WorkerPool:
        """Start the fork server (first time only) and the workers; blocking, call it from a thread or at start-up."""
        if sys.platform.startswith("win"):  # pragma: no cover - no fork server on Windows
            self._ctx = multiprocessing.get_context("spawn")
        else:
            self._ctx = multiprocessing.get_context("forkserver")
            self._ctx.set_forkserver_preload(self.preload)
        workers = [_Worker(self._ctx, self.memory_bytes) for _ in range(self.size)]
        with self._lock:
            self._idle.extend(workers)
        self._free = anyio.Semaphore(self.size)
        self._limiter = anyio.CapacityLimiter(2 * self.size)  # abandoned calls of killed workers end at once
        return self

    def shutdown(self) -> None:
        """Stop every worker (idle ones leave, busy ones are killed); later calls raise RuntimeError."""
        with self._lock:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._busy.clear()
        for w in busy:
            w.kill()
        for w in idle:
            w.stop()

    async def __aenter__(self) -> WorkerPool:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await anyio.to_thread.run_sync(self.shutdown)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers, idle and busy."""
        with self._lock:
            return sorted(w.pid for w in [*self._idle, *self._busy])

    @property
    def busy(self) -> int:
        """Workers running a call now."""
        with self._lock:
            return len(self._busy)

    # ------------------------------------------------------------ running calls
    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` in a worker and return its result (or raise its exception).

        Waits for a free worker. If the request's deadline passes (see
        :class:`~pixlearn.serve.limits.Deadline`) or the caller is cancelled, the worker is killed at
        once and replaced; the work does not go on in the background.
        """
        from pixlearn.serve.limits import current_deadline

        if self._free is None or self._closed:
            raise RuntimeError("the worker pool is not running; start it first (async with WorkerPool(n))")
        await self._free.acquire()
        try:
            worker = self._take()
            deadline = current_deadline.get()
            forget = deadline.on_expire(functools.partial(self._kill, worker)) if deadline is not None else None
            try:
                assert self._limiter is not None
                out = await anyio.to_thread.run_sync(worker.call, func, args, kwargs, abandon_on_cancel=True,
                                                     limiter=self._limiter)
            except _NotSent as exc:
                self._give_back(worker)  # nothing reached the worker: it is fine
                raise TypeError(str(exc)) from exc.__cause__
            except BaseException:
                self._kill(worker)  # cancelled, over the deadline, or the worker died: it must not go on
                raise
            finally:
                if forget is not None:
                    forget()
            self._give_back(worker)
        finally:
            self._free.release()
        if out[0] == "ok":
            return out[1]
        _tag, exc, text = out
        if not isinstance(exc, PixlearnError):
            log.error("a worker call raised %s:\n%s", type(exc).__name__, text)
        raise exc

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool has been shut down")
            worker = self._idle.popleft()
            self._busy.add(worker)
            return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if self._closed:
                closed = True
            else:
                closed = False
                self._idle.append(worker)
        if closed:
            worker.stop()

    def _kill(self, worker: _Worker) -> None:
        """Kill a busy worker (once) and put a fresh one in its place."""
        with self._lock:
            if worker not in self._busy:
                return
            self._busy.discard(worker)
            closed = self._closed
        worker.kill()
        self.killed += 1
        log.info("worker %d killed (its call passed its deadline or was cancelled)", worker.pid)
        if closed:
            return
        fresh = _Worker(self._ctx, self.memory_bytes)
        with self._lock:
            if self._closed:
                closed = True
            else:
                self._idle.append(fresh)
        if closed:
            fresh.stop()


async def run_cpu(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run CPU-heavy ``func(*args, **kwargs)`` (numpy, OpenCV, scikit-image) off the event loop, killably.

    In a request, the call runs in the app's worker pool and is killed with its worker at the
    request's deadline. ``func`` and its arguments must pickle with cloudpickle (a closure over plain
    data is fine; a database engine or a loaded torch model is not: use
    :func:`~pixlearn.serve.deps.run_blocking` for those). Without a pool (``--workers 0``, or
    outside a request) the call runs in a thread, which the request waits for.
    """
    pool = current_pool.get()
    if pool is None:
        return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))
    return await pool.run(func, *args, **kwargs)
