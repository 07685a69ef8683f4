"""The op registry: every classical op is a plain function registered by name.

An op is ``func(image, *, option=default, ...)``: the image first, options
keyword-only with type annotations (``int``, ``float``, ``bool``, ``Literal[...]``,
``tuple[int, int]``...). The registry reads the signature to validate options from
recipes and the CLI, with did-you-mean suggestions, before any image is touched.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name

__all__ = ["OpSpec", "register_op", "get_op", "list_ops", "Returns"]

#: What an op returns: an image (uint8, written as a file), a mask (uint8 0/255, H x W),
#: or data (JSON-able dict/list, e.g. dominant colours or quality scores).
Returns = Literal["image", "mask", "data"]


@dataclass(frozen=True)
class OpSpec:
    """A registered op: its function, category, what it returns and its options."""

    name: str
    func: Callable[..., Any]
    category: str
    returns: str
    summary: str
    options: dict[str, inspect.Parameter] = field(repr=False)
    hints: dict[str, Any] = field(repr=False)

    def __call__(self, image: Any, **options: Any) -> Any:
        return self.func(image, **options)

    def validate(self, options: dict[str, Any], *, where: str = "") -> dict[str, Any]:
        """Check option names and coerce values to the annotated types (strings from the CLI too)."""
        from pydantic import TypeAdapter, ValidationError

        prefix = f"{where}: " if where else ""
        clean: dict[str, Any] = {}
        for key, value in options.items():
            key_norm = key.replace("-", "_")
            if key_norm not in self.options:
                if not self.options:
                    raise ConfigError(f"{prefix}op '{self.name}' takes no options, got {key!r}")
                check_name(key_norm, list(self.options), what=f"option of op '{self.name}'")
            hint = self.hints.get(key_norm, Any)
            if isinstance(value, str) and _is_tuple(hint) and "," in value:
                value = [v.strip() for v in value.split(",")]
            try:
                clean[key_norm] = TypeAdapter(hint).validate_python(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ConfigError(
                    f"{prefix}op '{self.name}' option {key_norm!r}: {value!r} is invalid ({first['msg']}); "
                    f"expected {_describe(hint)}"
                ) from None
        return clean

    def describe_options(self) -> list[dict[str, Any]]:
        """Name, type and default of each option (for help and the REST API)."""
        out = []
        for name, p in self.options.items():
            out.append({
                "name": name,
                "type": _describe(self.hints.get(name, Any)),
                "default": None if p.default is inspect.Parameter.empty else p.default,
            })
        return out


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return origin in (tuple, list)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


_OPS: dict[str, OpSpec] = {}


def register_op(
    name: str | None = None, *, category: str, returns: Returns = "image"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as an op under ``name`` (default: the function's name)."""

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        op_name = name or func.__name__
        if op_name in _OPS and _OPS[op_name].func is not func:
            raise ConfigError(f"op {op_name!r} is registered twice")
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        options = {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        hints = typing.get_type_hints(func, include_extras=False)
        doc = inspect.getdoc(func) or ""
        _OPS[op_name] = OpSpec(
            name=op_name,
            func=func,
            category=category,
            returns=returns,
            summary=doc.splitlines()[0] if doc else "",
            options=options,
            hints={k: v for k, v in hints.items() if k in options},
        )
        return func

    return deco


def _load_all() -> None:
    import pixlearn.ops  # noqa: F401  (importing the package registers every op)


def get_op(name: str) -> OpSpec:
    """The op called ``name``; unknown names raise with the closest valid ones."""
    _load_all()
    check_name(name, list(_OPS), what="op")
    return _OPS[name]


def list_ops(category: str | None = None) -> list[OpSpec]:
    """Every registered op, sorted by category then name."""
    _load_all()
    specs = [s for s in _OPS.values() if category is None or s.category == category]
    return sorted(specs, key=lambda s: (s.category, s.name))
