"""Scale-out: pixlearn predict and pixlearn process on Ray Data (``--engine ray``).

Nothing here imports Ray until a job runs (``pip install 'pixlearn[ray]'`` installs it), and the names below
load their modules on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["MAX_WORKERS", "Engine", "RayConnectionError", "RayNotInstalledError", "ray_cluster", "ray_predict", "ray_process"]

_WHERE = {"MAX_WORKERS": "cluster", "Engine": "cluster", "RayConnectionError": "cluster", "RayNotInstalledError": "cluster",
          "ray_cluster": "cluster", "ray_predict": "predict", "ray_process": "process"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"pixlearn.scale.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'pixlearn.scale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
