"""Lazy re-export facades for packages whose code moved (``pixlearn.train``, ``pixlearn.eval``).

A facade package holds no code of its own: :func:`lazy_exports` resolves its public names from their new modules on
first use, and :func:`moved_modules` makes ``import pixlearn.train.segment`` (a module that moved) fail with a
``ModuleNotFoundError`` that names the new place instead of a bare "No module named".
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports", "moved_modules"]


def lazy_exports(package: str, names: Mapping[str, str], namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import ``names[name]`` (a module path) on first use.

    Examples
    --------
    >>> ns: dict = {}
    >>> getattr_, dir_ = lazy_exports("demo", {"ConfigError": "pixlearn._core.errors"}, ns)
    >>> getattr_("ConfigError").__name__, "ConfigError" in dir_()
    ('ConfigError', True)
    >>> getattr_("nope")
    Traceback (most recent call last):
    AttributeError: module 'demo' has no attribute 'nope'
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__


class _MovedFinder(importlib.abc.MetaPathFinder):
    def __init__(self, moved: Mapping[str, str]) -> None:
        self.moved = dict(moved)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        new = self.moved.get(fullname)
        if new is not None:
            raise ModuleNotFoundError(f"{fullname} moved to {new}: import it from there", name=fullname)
        return None


def moved_modules(moved: Mapping[str, str]) -> None:
    """Make importing any old module path in ``moved`` raise ``ModuleNotFoundError`` naming its new module.

    Examples
    --------
    >>> moved_modules({"pixlearn._core.old_demo": "pixlearn._core.errors"})
    >>> import pixlearn._core.old_demo
    Traceback (most recent call last):
    ModuleNotFoundError: pixlearn._core.old_demo moved to pixlearn._core.errors: import it from there
    """
    for finder in sys.meta_path:
        if isinstance(finder, _MovedFinder):
            finder.moved.update(moved)
            return
    sys.meta_path.insert(0, _MovedFinder(moved))
