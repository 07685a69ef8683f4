"""What the route modules share: the app's settings and registry, and running blocking work off the event loop.

Two ways to run work off the loop:

- :func:`run_cpu` for CPU-heavy numpy / OpenCV / scikit-image work (decoding, ops, recipes,
  colours, quality): it runs in the app's worker processes and is killed at the request's
  deadline (see :mod:`pixlearn.serve.workers`).
- :func:`run_blocking` for what cannot leave the process (torch models, the database, the
  registry): a thread. Python cannot stop a thread, so at the deadline the client gets its 504
  at once but the request keeps its concurrency slot until the thread has returned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request

from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.settings import ServeSettings
from pixlearn.serve.workers import run_cpu

__all__ = ["get_settings", "get_registry", "run_blocking", "run_cpu"]

T = TypeVar("T")


def get_settings(request: Request) -> ServeSettings:
    """The running app's settings (a FastAPI dependency)."""
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    """The running app's model registry (a FastAPI dependency)."""
    return request.app.state.registry


async def run_blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking ``func`` (torch inference, database and registry calls) in a worker thread.

    The thread is never abandoned: when the request's deadline passes, the timeout middleware
    answers 504 at once, and this call (with the request and its concurrency slot) ends when the
    thread does. CPU-heavy numpy/OpenCV work belongs in :func:`run_cpu`, which can be stopped.
    """
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))
