"""The preprocessing a model expects (input size, mean, std, interpolation), carried by the model itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess", "get_preprocess"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocess:
    """How pixels become a model input: resize to ``input_size``, scale to [0, 1], ``(x - mean) / std``.

    Attributes
    ----------
    input_size : (C, H, W)
        Channels and the (height, width) the model was built for or trained at.
    mean, std : tuple of float
        Per-channel statistics in [0, 1] units.
    interpolation : {"nearest", "bilinear", "bicubic"}
        Resize filter.
    crop_pct : float
        Centre-crop fraction used at evaluation by timm recipes (1.0: no crop).

    Examples
    --------
    >>> p = Preprocess((3, 32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    >>> p.img_size, p.with_size(16).input_size
    ((32, 32), (3, 16, 16))
    >>> Preprocess.from_dict(p.to_dict()) == p
    True
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 3 or min(size) < 1:
            raise ConfigError(f"input_size must be (channels, height, width) of positive ints, got {self.input_size!r}")
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != size[0] or len(std) != size[0]:
            raise ConfigError(f"mean and std need one value per channel ({size[0]}), got mean={mean} std={std}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std must be positive, got {std}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(f"interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {self.interpolation!r}")
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "crop_pct", float(self.crop_pct))

    @property
    def img_size(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.input_size[1], self.input_size[2])

    def with_size(self, img_size: int | Sequence[int]) -> Preprocess:
        """The same preprocessing at another (height, width) (an int means square)."""
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        return replace(self, input_size=(self.input_size[0], int(h), int(w)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        known = {"input_size", "mean", "std", "interpolation", "crop_pct"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown preprocessing key(s) {sorted(unknown)}; expected {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


def _from_timm_cfg(cfg: Mapping[str, Any]) -> Preprocess:
    interp = str(cfg.get("interpolation") or "bilinear")
    return Preprocess(
        input_size=tuple(cfg.get("input_size") or (3, 224, 224)),  # type: ignore[arg-type]
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
        interpolation=interp if interp in _INTERPOLATIONS else "bilinear",
        crop_pct=float(cfg.get("crop_pct") or 1.0),
    )


def get_preprocess(model: Any) -> Preprocess:
    """Read back the preprocessing a model expects.

    Works on every model :func:`~pixlearn.models.create_model` returns (it records what the
    model was built or trained with) and on plain timm models (their ``pretrained_cfg``).

    Raises
    ------
    ConfigError
        For a module that carries no preprocessing.

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> get_preprocess(create_model("pixlearn_smallcnn", num_classes=3)).input_size
    (3, 32, 32)
    """
    spec = getattr(model, "pixlearn_spec", None)
    if spec is not None:
        return spec.preprocess
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, Mapping):
        return _from_timm_cfg(cfg)
    raise ConfigError(
        f"{type(model).__name__} carries no preprocessing config; build it with pixlearn.models.create_model"
    )
