"""The op registry: every classical op is a plain function registered by name.

An op is ``func(image, *, option=default, ...)``: the image first, options
keyword-only with type annotations (``int``, ``float``, ``bool``, ``Literal[...]``,
``tuple[int, int]``...). Every numeric option declares its documented range once, in
its annotation: ``sigma: Annotated[float, Range(0, 100, low_open=True)] = 1.0`` or,
for a kernel size, ``ksize: Annotated[int, Kernel(3, 255)] = 3``. The registry reads
the signature to validate options from recipes, the CLI and the service (names with
did-you-mean suggestions, types, finite values inside the range) before any image is
touched, and checks the image-relative bounds (a kernel no larger than the image) when
the op is called through its :class:`OpSpec`, before any work. What one range cannot say
(a kernel size times an iteration count) is the op's ``constraint``, run with the ranges.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import operator
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name

__all__ = ["OpSpec", "Range", "Kernel", "register_op", "get_op", "list_ops", "Returns"]

#: A check across options: ``constraint(options, shape)`` raises ConfigError (see :func:`register_op`).
Constraint = Callable[[Mapping[str, Any], "tuple[int, ...] | None"], None]

#: What an op returns: an image (uint8, written as a file), a mask (uint8 0/255, H x W),
#: or data (JSON-able dict/list, e.g. dominant colours or quality scores).
Returns = Literal["image", "mask", "data"]


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Range:
    """The documented bounds of a numeric op option (every int and float option has one).

    ``low <= value <= high`` (``low < value`` with ``low_open``); values in ``also`` are
    allowed besides (e.g. ``0``: "derive it from sigma"). Floats must be finite. ``odd``
    asks for odd integers. ``image`` marks a kernel size: when the op runs on an H x W
    image the value must also be at most ``2 * max(H, W) + 1`` (a kernel that size
    already covers the whole image from any pixel) unless it is the option's default.
    A tuple option's range applies to each of its values.

    Examples
    --------
    >>> Range(0, 100, low_open=True).describe()
    '(0, 100]'
    >>> Kernel(1, 255, also=(0,)).describe()
    '0 or odd in [1, 255], at most 2*max(H, W)+1'
    >>> Range(0, 100, low_open=True).problem(float("inf"))
    'is not a finite number'
    """

    low: float
    high: float
    low_open: bool = False
    odd: bool = False
    also: tuple[float, ...] = ()
    image: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ConfigError(f"Range needs finite bounds low <= high, got ({self.low}, {self.high})")

    def describe(self) -> str:
        """The range in interval notation, e.g. ``(0, 100]`` or ``odd in [3, 255]``."""
        text = f"{'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}]"
        if self.odd:
            text = f"odd in {text}"
        if self.also:
            text = " or ".join(_num(a) for a in self.also) + " or " + text
        if self.image:
            text += ", at most 2*max(H, W)+1"
        return text

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is outside the range (None when it is inside; None and non-numbers pass)."""
        if isinstance(value, (tuple, list)):
            for item in value:
                if (p := self.problem(item)) is not None:
                    return p
            return None
        if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        if isinstance(value, numbers.Integral):
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                return "is not a finite number"
        if value in self.also:
            return None
        if value < self.low or value > self.high or (self.low_open and value == self.low):
            return "is out of range"
        if self.odd and value % 2 != 1:
            return "is not odd"
        return None

    def image_limit(self, shape: tuple[int, ...], default: Any) -> int | None:
        """The largest value allowed on an image of ``shape`` (None: no image-relative bound)."""
        if not self.image or len(shape) < 2:
            return None
        limit = 2 * max(int(shape[0]), int(shape[1])) + 1
        if isinstance(default, numbers.Real) and not isinstance(default, bool):
            limit = max(limit, int(default))
        return limit


def Kernel(low: int, high: int, *, also: tuple[int, ...] = (), odd: bool = True) -> Range:  # noqa: N802
    """The range of a kernel size: odd integers in ``[low, high]``, bounded by the image at call time."""
    return Range(low, high, odd=odd, also=also, image=True)


@dataclass(frozen=True)
class OpSpec:
    """A registered op: its function, category, what it returns, its options and their ranges."""

    name: str
    func: Callable[..., Any]
    category: str
    returns: str
    summary: str
    options: dict[str, inspect.Parameter] = field(repr=False)
    hints: dict[str, Any] = field(repr=False)
    ranges: dict[str, Range] = field(default_factory=dict, repr=False)
    constraint: Constraint | None = field(default=None, repr=False)

    def __call__(self, image: Any, **options: Any) -> Any:
        """Run the op after checking the options' ranges and image-relative bounds (no coercion)."""
        if options:
            self.check(options, shape=getattr(image, "shape", None))
        return self.func(image, **options)

    def validate(self, options: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
        """Check option names, coerce values to the annotated types (strings from the CLI or a
        query too) and check each value against its documented range; returns the clean options.

        Raises :class:`ConfigError` naming the option, the range and the fix (an unknown name
        raises :class:`UnknownNameError` with the closest names).
        """
        from pydantic import ValidationError

        prefix = f"{where}: " if where else ""
        clean: dict[str, Any] = {}
        for key, value in options.items():
            key_norm = str(key).replace("-", "_")
            if key_norm not in self.options:
                if not self.options:
                    raise ConfigError(f"{prefix}op '{self.name}' takes no options, got {key!r}")
                check_name(key_norm, list(self.options), what=f"option of op '{self.name}'")
            hint = self.hints.get(key_norm, Any)
            if isinstance(value, str) and _is_tuple(hint) and "," in value:
                value = [v.strip() for v in value.split(",")]
            try:
                clean[key_norm] = _adapter(hint).validate_python(value)
            except (ValidationError, ValueError, TypeError) as exc:
                msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                raise ConfigError(
                    f"{prefix}op '{self.name}' option {key_norm!r}: {_short(value)} is invalid ({msg}); "
                    f"expected {self._expected(key_norm)}"
                ) from None
        self.check(clean, where=where)
        return clean

    def check(self, options: Mapping[str, Any], *, shape: tuple[int, ...] | None = None, where: str = "") -> None:
        """Raise :class:`ConfigError` if a value is outside its range, or (given the image
        ``shape``) above its image-relative bound; values are not coerced."""
        prefix = f"{where}: " if where else ""
        for key, value in options.items():
            rng = self.ranges.get(key)
            if rng is None:
                continue
            problem = rng.problem(value)
            if problem is not None:
                raise ConfigError(
                    f"{prefix}op '{self.name}' option {key!r}: {_short(value)} {problem}; "
                    f"expected {self._expected(key)}; {self._fix(key)}"
                )
            if shape is None or value is None:
                continue
            limit = rng.image_limit(shape, self._default(key))
            if limit is not None and isinstance(value, numbers.Real) and value > limit:
                h, w = int(shape[0]), int(shape[1])
                raise ConfigError(
                    f"{prefix}op '{self.name}' option {key!r}: {_short(value)} is too large for this {h}x{w} "
                    f"(height x width) image: at most {limit} (2*max(H, W)+1: a larger kernel covers no more "
                    f"of the image); use {key}={limit} or less"
                )
        if self.constraint is not None:
            merged = {name: self._default(name) for name in self.options} | dict(options)
            try:
                self.constraint(merged, shape)
            except ConfigError as exc:
                raise ConfigError(f"{prefix}op '{self.name}': {exc}") from None

    def describe_options(self) -> list[dict[str, Any]]:
        """Name, type, default and documented range of each option (for help and the REST API).

        ``range`` is the interval as text (None for options that are not numbers), ``min`` and
        ``max`` its bounds.
        """
        out = []
        for name in self.options:
            rng = self.ranges.get(name)
            out.append({
                "name": name,
                "type": _describe(self.hints.get(name, Any)),
                "default": self._default(name),
                "range": rng.describe() if rng else None,
                "min": rng.low if rng else None,
                "max": rng.high if rng else None,
            })
        return out

    # ------------------------------------------------------------ helpers
    def _default(self, name: str) -> Any:
        p = self.options[name]
        return None if p.default is inspect.Parameter.empty else p.default

    def _expected(self, name: str) -> str:
        text = _describe(self.hints.get(name, Any))
        rng = self.ranges.get(name)
        if rng is None:
            return text
        described = rng.describe()
        if _is_tuple(self.hints.get(name, Any)):
            return f"{text}, each in {described}" if described[0] in "([" else f"{text}, each {described}"
        return f"{text} in {described}" if described[0] in "([" else f"{text}, {described}"

    def _fix(self, name: str) -> str:
        default = self._default(name)
        if default is None:
            return "use a value in that range"
        shown = ",".join(_num(v) for v in default) if isinstance(default, (tuple, list)) else _num(default)
        return f"use a value in that range, e.g. {name}={shown} (the default)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@lru_cache(maxsize=None)
def _adapter(hint: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(hint)


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


def _split(hint: Any) -> tuple[Any, Range | None]:
    """``hint`` without its ``Annotated`` layers, and the first :class:`Range` found in them."""
    if typing.get_origin(hint) is Annotated:
        base, *meta = typing.get_args(hint)
        base, inner = _split(base)
        found = next((m for m in meta if isinstance(m, Range)), None)
        return base, found or inner
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if not args or origin is Literal:
        return hint, None
    split = [_split(a) if a is not Ellipsis else (a, None) for a in args]
    found = next((r for _, r in split if r is not None), None)
    bases = tuple(b for b, _ in split)
    if origin is typing.Union or origin is types.UnionType:
        return functools.reduce(operator.or_, bases), found
    return origin[bases] if origin is not None else hint, found


def _numeric(hint: Any) -> bool:
    """True if ``hint`` is or holds an ``int`` or ``float`` (bool does not count)."""
    if hint is int or hint is float:
        return True
    if typing.get_origin(hint) is Literal:
        return False
    return any(_numeric(a) for a in typing.get_args(hint) if a is not Ellipsis)


_RST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")
_RST_REF = re.compile(r"`([^`]+)`_?")


def plain_text(text: str) -> str:
    """A docstring line without reStructuredText markup (roles, ``literals``, `refs`).

    >>> plain_text("Canny edge map (``cv2.Canny``), see :func:`otsu_threshold`.")
    'Canny edge map (cv2.Canny), see otsu_threshold.'
    """
    text = _RST_ROLE.sub(r"\1", text)
    text = _RST_LITERAL.sub(r"\1", text)
    return _RST_REF.sub(r"\1", text)


_OPS: dict[str, OpSpec] = {}


def register_op(
    name: str | None = None, *, category: str, returns: Returns = "image", constraint: Constraint | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as an op under ``name`` (default: the function's name).

    ``constraint(options, shape)`` checks what one option's range cannot say (e.g. a kernel size times
    an iteration count): it gets every option (defaults filled in) and the image shape (None when
    validating before the image is known) and raises :class:`ConfigError`; the registry runs it with
    the ranges, before any work.
    """

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        op_name = name or func.__name__
        if op_name in _OPS and _OPS[op_name].func is not func:
            raise ConfigError(f"op {op_name!r} is registered twice")
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        options = {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        hints = typing.get_type_hints(func, include_extras=True)
        bases: dict[str, Any] = {}
        ranges: dict[str, Range] = {}
        for key in options:
            bases[key], rng = _split(hints.get(key, Any))
            if rng is not None:
                ranges[key] = rng
            elif _numeric(bases[key]):
                raise ConfigError(
                    f"op {op_name!r} option {key!r} is a number without a documented range; annotate it as "
                    f"Annotated[{_describe(bases[key])}, Range(low, high)]"
                )
        doc = inspect.getdoc(func) or ""
        _OPS[op_name] = OpSpec(
            name=op_name,
            func=func,
            category=category,
            returns=returns,
            summary=plain_text(doc.splitlines()[0]) if doc else "",
            options=options,
            hints=bases,
            ranges=ranges,
            constraint=constraint,
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
