"""What the route modules share: the app's settings and registry, and running blocking work off the event loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request

from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.settings import ServeSettings

__all__ = ["get_settings", "get_registry", "run_blocking"]

T = TypeVar("T")


def get_settings(request: Request) -> ServeSettings:
    """The running app's settings (a FastAPI dependency)."""
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    """The running app's model registry (a FastAPI dependency)."""
    return request.app.state.registry


async def run_blocking(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run CPU-heavy ``func`` (decoding, ops, torch inference) in a worker thread.

    Unlike ``run_in_threadpool``, a request that times out is answered at once: the thread is
    abandoned (it finishes in the background and its result is dropped).
    """
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs), abandon_on_cancel=True)
