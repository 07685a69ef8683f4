"""Argument checks whose errors show what was expected and what was received."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError

__all__ = ["check_image", "check_range", "probability_logit"]

_UINT8 = np.dtype(np.uint8)
_GREY_OR_RGB = (1, 3)
_UINT8_ONLY = (np.uint8,)


def check_image(
    image: object,
    *,
    name: str = "image",
    channels: Iterable[int] = _GREY_OR_RGB,
    dtypes: Iterable[type | np.dtype] = _UINT8_ONLY,
) -> np.ndarray:
    """Return ``image`` if it is an (H, W) or (H, W, C) array with an allowed C and dtype.

    ``channels`` lists the allowed channel counts; 1 means a 2-D (H, W) array (an
    (H, W, 1) array is accepted and squeezed).

    Examples
    --------
    >>> check_image(np.zeros((2, 3), np.uint8)).shape
    (2, 3)
    >>> check_image(np.zeros((2, 3), np.float32))
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ShapeError: image must have dtype uint8, got float32; convert explicitly, e.g. to_uint8(image, clip=True)
    """
    if (  # fast path (~0.3 us) for the common case: a plain uint8 grey or RGB array
        type(image) is np.ndarray
        and image.dtype is _UINT8
        and channels is _GREY_OR_RGB
        and dtypes is _UINT8_ONLY
        and image.size
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3))
    ):
        return image
    channels = tuple(channels)
    dtypes = tuple(np.dtype(d) for d in dtypes)
    if not isinstance(image, np.ndarray):
        raise ShapeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1 and 1 in channels:
        image = image[..., 0]
    shapes = " or ".join("(H, W)" if c == 1 else f"(H, W, {c})" for c in channels)
    if image.ndim == 2:
        ok = 1 in channels
    elif image.ndim == 3:
        ok = image.shape[2] in channels and image.shape[2] != 1
    else:
        ok = False
    if not ok:
        raise ShapeError(f"{name} must have shape {shapes}, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ShapeError(f"{name} is empty (shape {image.shape})")
    if image.dtype not in dtypes:
        allowed = " or ".join(d.name for d in dtypes)
        raise ShapeError(
            f"{name} must have dtype {allowed}, got {image.dtype}; convert explicitly, e.g. to_uint8(image, clip=True)"
        )
    return image


def check_range(value: float, *, name: str, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` if ``low <= value <= high`` (either bound may be None), else raise ConfigError.

    >>> check_range(0.5, name="sigma", low=0)
    0.5
    """
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def probability_logit(threshold: float) -> float:
    """The logit of a decision threshold in (0, 1): ``sigmoid(z) > t`` exactly when ``z > log(t / (1 - t))``.

    Examples
    --------
    >>> probability_logit(0.5), round(probability_logit(0.6), 4)
    (0.0, 0.4055)
    >>> probability_logit(1.0)
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: a decision threshold is a probability strictly between 0 and 1, got 1.0
    """
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise ConfigError(f"a decision threshold is a probability strictly between 0 and 1, got {threshold!r}")
    return 0.0 if t == 0.5 else math.log(t / (1.0 - t))
