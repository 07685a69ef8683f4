"""Recipes: a YAML list of ops with options, validated before any image is touched.

A recipe file looks like this::

    name: edges
    steps:
      - gaussian: {sigma: 1.5}
      - canny: {low: 50, high: 150}
    output: {format: png}

A step is a bare op name (``- grayscale``), a one-key mapping (``- canny: {low: 50}``) or a
mapping with ``op`` (``- {op: canny, low: 50}``). A top-level list is a recipe of steps.
A :class:`Recipe` is a plain value: call it on an image, pickle it to worker processes,
or reuse it as preprocessing in training and serving.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name

__all__ = ["Step", "Recipe", "OutputSpec", "builtin_recipes", "load_recipe"]

_TOP_KEYS = ("name", "description", "steps", "output")
_OUTPUT_KEYS = ("format", "quality")
_OUTPUT_FORMATS = ("same", "png", "jpg", "jpeg", "webp", "tiff", "tif", "bmp")
_BUILTIN_DIR = Path(__file__).with_name("recipes")
#: Limits on recipe YAML (a recipe is a short list of steps; these are far above any real one).
RECIPE_LIMITS = {"max_bytes": 256 * 1024, "max_depth": 16, "max_nodes": 20_000}


@dataclass(frozen=True)
class Step:
    """One op of a recipe with its validated options."""

    op: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {self.op: dict(self.options)} if self.options else {self.op: None}


@dataclass(frozen=True)
class OutputSpec:
    """How processed images are written: ``format`` ("same" keeps the input's) and JPEG/WebP ``quality``."""

    format: str = "png"
    quality: int = 95

    def extension(self, source: Path) -> str:
        if self.format == "same":
            suffix = source.suffix.lower()
            return suffix if suffix in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp") else ".png"
        return {"jpeg": ".jpg", "tif": ".tiff"}.get(self.format, f".{self.format}")


@dataclass(frozen=True)
class Recipe:
    """An ordered list of validated steps; calling it applies them to an image.

    Examples
    --------
    >>> import numpy as np
    >>> r = Recipe.from_dict({"steps": [{"gaussian": {"sigma": 1.0}}, "canny"]})
    >>> [s.op for s in r.steps], r.returns
    (['gaussian', 'canny'], 'mask')
    >>> r(np.zeros((16, 16, 3), np.uint8)).shape
    (16, 16)
    """

    steps: tuple[Step, ...]
    name: str = "recipe"
    description: str = ""
    output: OutputSpec = OutputSpec()

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, spec: Any, *, source: str = "recipe") -> Recipe:
        """Build and validate a recipe from parsed YAML (a mapping or a list of steps)."""
        from pixlearn.ops._registry import get_op

        if isinstance(spec, list):
            spec = {"steps": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: a recipe is a mapping with 'steps' (or a list of steps), got {type(spec).__name__}")
        for key in spec:
            check_name(str(key), _TOP_KEYS, what=f"recipe key in {source}")
        raw_steps = spec.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ConfigError(f"{source}: 'steps' must be a non-empty list of ops, e.g. [gaussian: {{sigma: 1.5}}, canny]")
        steps: list[Step] = []
        for i, raw in enumerate(raw_steps, 1):
            where = f"{source}: step {i}"
            op_name, options = _parse_step(raw, where)
            try:
                op = get_op(op_name)
                clean = op.validate(options, where=where)
            except ConfigError as exc:
                msg = str(exc)
                raise type(exc)(msg if msg.startswith(where) else f"{where}: {msg}") from None
            if op.returns == "data" and i != len(raw_steps):
                raise ConfigError(f"{where}: '{op_name}' returns data, not an image, so it can only be the last step")
            steps.append(Step(op_name, clean))
        output = _parse_output(spec.get("output"), source)
        return cls(
            steps=tuple(steps),
            name=str(spec.get("name") or Path(source).stem or "recipe"),
            description=str(spec.get("description") or ""),
            output=output,
        )

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "recipe") -> Recipe:
        """Parse recipe YAML within :data:`RECIPE_LIMITS` (no anchors/aliases, bounded size, depth and values)."""
        from pixlearn._core.safe_yaml import load_yaml

        return cls.from_dict(load_yaml(text, what=source, **RECIPE_LIMITS), source=source)

    @classmethod
    def load(cls, path_or_name: str | os.PathLike[str]) -> Recipe:
        """Load a recipe file, or a built-in recipe by name (see :func:`builtin_recipes`)."""
        path = Path(path_or_name)
        if not path.exists():
            builtins = builtin_recipes()
            text = str(path_or_name)
            if text in builtins:
                path = builtins[text]
            elif path.suffix.lower() in (".yaml", ".yml") or os.sep in text:
                raise ConfigError(f"{text}: no such recipe file; check the path, or use a built-in recipe: {', '.join(sorted(builtins))}")
            else:
                check_name(text, list(builtins), what="built-in recipe (or recipe file)")
        from pixlearn._core.safe_yaml import read_text_limited

        try:  # a regular file of at most RECIPE_LIMITS["max_bytes"] (never a FIFO or device)
            text = read_text_limited(path, max_bytes=RECIPE_LIMITS["max_bytes"])
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the recipe ({exc})") from None
        return cls.from_yaml(text, source=str(path))

    # ------------------------------------------------------------ use
    @property
    def returns(self) -> str:
        """What the last step returns: "image", "mask" or "data"."""
        from pixlearn.ops._registry import get_op

        return get_op(self.steps[-1].op).returns

    def __call__(self, image: np.ndarray) -> Any:
        from pixlearn.ops._registry import get_op

        out: Any = image
        for step in self.steps:  # OpSpec.__call__ checks the image-relative bounds before the op runs
            out = get_op(step.op)(out, **step.options)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **({"description": self.description} if self.description else {}),
            "steps": [s.to_dict() for s in self.steps],
            "output": {"format": self.output.format, "quality": self.output.quality},
        }

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _parse_step(raw: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, str):
        return raw.strip(), {}
    if isinstance(raw, Mapping):
        if "op" in raw:
            options = {k: v for k, v in raw.items() if k != "op"}
            return str(raw["op"]), options
        if len(raw) == 1:
            (name, options), = raw.items()
            if options is None:
                options = {}
            if not isinstance(options, Mapping):
                raise ConfigError(f"{where}: options of '{name}' must be a mapping like {{sigma: 1.5}}, got {options!r}")
            return str(name), dict(options)
    raise ConfigError(f"{where}: a step is an op name, {{op_name: {{options}}}} or {{op: op_name, ...}}; got {raw!r}")


def _parse_output(raw: Any, source: str) -> OutputSpec:
    if raw is None:
        return OutputSpec()
    if isinstance(raw, str):
        raw = {"format": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: 'output' must be a mapping like {{format: png, quality: 95}}")
    for key in raw:
        check_name(str(key), _OUTPUT_KEYS, what=f"output key in {source}")
    fmt = check_name(str(raw.get("format", "png")).lower().lstrip("."), _OUTPUT_FORMATS, what=f"output format in {source}")
    quality = raw.get("quality", 95)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"{source}: output quality must be an integer in 1..100, got {quality!r}")
    return OutputSpec(format=fmt, quality=quality)


def builtin_recipes() -> dict[str, Path]:
    """The recipes that ship with pixlearn, by name."""
    return {p.stem: p for p in sorted(_BUILTIN_DIR.glob("*.yaml"))}


def load_recipe(recipe: Recipe | str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any]) -> Recipe:
    """Accept a Recipe, a path or built-in name, or an already-parsed mapping/list."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, (str, os.PathLike)):
        return Recipe.load(recipe)
    return Recipe.from_dict(recipe)
