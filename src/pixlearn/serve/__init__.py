"""The REST service and its static web page: ``create_app(ServeSettings(...))`` or ``pixlearn serve``.

Importing this package loads nothing heavy (no FastAPI, no torch): names resolve on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "create_app": "app",
    "ServeSettings": "settings",
    "ModelRegistry": "registry",
    "make_engine": "db",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pixlearn.serve' has no attribute {name!r}")
    value = getattr(import_module(f"pixlearn.serve.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
