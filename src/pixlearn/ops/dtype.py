"""Explicit dtype conversions: nothing is rescaled unless asked."""

from __future__ import annotations

from typing import Literal

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError

__all__ = ["to_uint8", "to_float"]


def to_uint8(image: np.ndarray, *, clip: bool = False, scale: Literal["none", "unit", "minmax", "uint16"] = "none") -> np.ndarray:
    """Convert an array to uint8, explicitly.

    Parameters
    ----------
    image : ndarray
        Any numeric array.
    clip : bool, default False
        Clip out-of-range values into 0..255. Without it, out-of-range values raise.
    scale : {"none", "unit", "minmax", "uint16"}
        ``"none"``: values are already 0..255. ``"unit"``: floats in [0, 1] are
        multiplied by 255. ``"minmax"``: stretch min..max to 0..255.
        ``"uint16"``: divide by 257 (65535 -> 255).

    Examples
    --------
    >>> to_uint8(np.array([0.0, 0.5, 1.0]), scale="unit").tolist()
    [0, 128, 255]
    >>> to_uint8(np.array([-3, 300]), clip=True).tolist()
    [0, 255]
    """
    arr = np.asarray(image)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if scale == "unit":
        arr = arr.astype(np.float64) * 255.0
    elif scale == "minmax":
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr.astype(np.float64) - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    elif scale == "uint16":
        arr = arr.astype(np.float64) / 257.0
    elif scale != "none":
        raise ConfigError(f"scale must be 'none', 'unit', 'minmax' or 'uint16', got {scale!r}")
    if arr.dtype == np.uint8:
        return arr
    if not clip and arr.size and (float(arr.min()) < 0 or float(arr.max()) > 255):
        raise ShapeError(
            f"values span {float(arr.min()):g}..{float(arr.max()):g}, outside 0..255; "
            "pass clip=True or a scale= mode to convert them explicitly"
        )
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(arr)
    return np.clip(arr, 0, 255).astype(np.uint8)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] (the one scaling this function does, by name).

    >>> to_float(np.array([0, 255], np.uint8)).tolist()
    [0.0, 1.0]
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ShapeError(f"to_float expects uint8, got {arr.dtype}")
    return arr.astype(np.float32) / 255.0
