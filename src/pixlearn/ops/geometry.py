"""Geometry: resize, crop, pad, rotate and flip uint8 images (OpenCV).

Conventions, as everywhere in pixlearn: arrays are indexed (row, col); sizes are
``(height, width)``; offsets are ``top`` (rows) and ``left`` (columns). Every op takes
a uint8 (H, W) or (H, W, 3) RGB image and returns a new uint8 array with the same
number of channels (never a view of the input). ``fill`` is a grey level 0..255 used
on every channel wherever new pixels appear.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import cv2
import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Range, register_op

__all__ = ["resize", "crop", "pad", "rotate", "flip", "MAX_SIDE"]

#: Largest output side (pixels) that resize, pad and rotate will produce.
MAX_SIDE = 16384

Interpolation = Literal["auto", "nearest", "linear", "cubic", "area", "lanczos"]
RotateInterpolation = Literal["nearest", "linear", "cubic", "lanczos"]

_INTERP = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
_ROTATE_INTERP = {k: v for k, v in _INTERP.items() if k != "area"}
_BORDER = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101, "edge": cv2.BORDER_REPLICATE}
_FLIP = {"horizontal": 1, "vertical": 0, "both": -1}
_ROT90 = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def _choice(value: str, table: dict[str, int], name: str) -> int:
    try:
        return table[value]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in table)
        raise ConfigError(f"{name} must be one of {valid}, got {value!r}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _fill(fill: int) -> tuple[int, int, int, int]:
    if not _is_int(fill) or not 0 <= fill <= 255:
        raise ConfigError(f"fill must be an integer grey level in [0, 255], got {fill!r}")
    f = int(fill)
    return (f, f, f, f)


_FILLS = [(f, f, f, f) for f in range(256)]


def _size(size: tuple[int, int] | None) -> tuple[int, int]:
    if size is None:
        raise ConfigError("resize needs size=(height, width), e.g. size=(224, 224)")
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (height, width), two integers, got {size!r}") from None
    if not (_is_int(h) and _is_int(w)):
        raise ConfigError(f"size must be (height, width), two integers, got {size!r}")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ConfigError(f"size (height, width) must each be in [1, {MAX_SIDE}], got {(int(h), int(w))}")
    return int(h), int(w)


@register_op("resize", category="geometry", returns="image")
def resize(
    image: np.ndarray,
    *,
    size: Annotated[tuple[int, int] | None, Range(1, MAX_SIDE)] = None,
    mode: Literal["exact", "keep_aspect", "pad"] = "exact",
    interpolation: Interpolation = "auto",
    fill: Annotated[int, Range(0, 255)] = 0,
) -> np.ndarray:
    """Resize to ``size = (height, width)``: exactly, keeping the aspect ratio, or letterboxed.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    size : (int, int)
        Target ``(height, width)`` in pixels — rows first, like ``image.shape`` —
        each in [1, MAX_SIDE]. Required.
    mode : {"exact", "keep_aspect", "pad"}, default "exact"
        ``"exact"``: output is exactly ``size`` (the aspect ratio may change).
        ``"keep_aspect"``: scale by ``min(height / H, width / W)``, so the output fits
        inside ``size`` with one side equal to it and the aspect ratio kept within a pixel.
        ``"pad"``: as ``"keep_aspect"``, then pad with ``fill`` to exactly ``size``, the
        content centred (an odd leftover pixel goes to the bottom / right).
    interpolation : {"auto", "nearest", "linear", "cubic", "area", "lanczos"}, default "auto"
        OpenCV's ``INTER_*`` method. ``"auto"`` uses ``"area"`` when no side grows
        (the anti-aliased choice for shrinking) and ``"linear"`` otherwise.
        Use ``"nearest"`` for masks and label maps.
    fill : int, default 0
        Grey level 0..255 of the padding in ``mode="pad"``.

    Returns
    -------
    ndarray of shape (h, w) or (h, w, 3), uint8
        ``(h, w) == size`` for "exact" and "pad"; ``h <= height`` and ``w <= width`` for "keep_aspect".

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``size`` is missing or out of range, or an option is not one of its values.

    Examples
    --------
    >>> img = np.zeros((100, 200, 3), np.uint8)
    >>> resize(img, size=(50, 50)).shape
    (50, 50, 3)
    >>> resize(img, size=(50, 50), mode="keep_aspect").shape
    (25, 50, 3)
    >>> resize(img, size=(50, 50), mode="pad").shape
    (50, 50, 3)
    """
    image = check_image(image)
    out_h, out_w = _size(size)
    if mode not in ("exact", "keep_aspect", "pad"):
        raise ConfigError(f"mode must be one of 'exact', 'keep_aspect', 'pad', got {mode!r}")
    h, w = image.shape[:2]
    if mode == "exact":
        new_h, new_w = out_h, out_w
    else:
        scale = min(out_h / h, out_w / w)
        new_h = min(out_h, max(1, round(h * scale)))
        new_w = min(out_w, max(1, round(w * scale)))
    if interpolation == "auto":
        flag = cv2.INTER_AREA if new_h <= h and new_w <= w else cv2.INTER_LINEAR
    else:
        flag = _choice(interpolation, _INTERP, "interpolation")
    border = _fill(fill) if mode == "pad" else None
    out = cv2.resize(image, (new_w, new_h), interpolation=flag)
    if mode == "pad" and (new_h != out_h or new_w != out_w):
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        out = cv2.copyMakeBorder(
            out, top, out_h - new_h - top, left, out_w - new_w - left, cv2.BORDER_CONSTANT, value=border
        )
    return out


@register_op("crop", category="geometry", returns="image")
def crop(
    image: np.ndarray,
    *,
    top: Annotated[int, Range(0, 2**31 - 1)] = 0,
    left: Annotated[int, Range(0, 2**31 - 1)] = 0,
    height: Annotated[int | None, Range(1, 2**31 - 1)] = None,
    width: Annotated[int | None, Range(1, 2**31 - 1)] = None,
) -> np.ndarray:
    """Crop the box of ``height`` x ``width`` pixels whose top-left corner is (``top``, ``left``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    top, left : int, default 0
        Row and column of the box's top-left pixel; ``0 <= top < H``, ``0 <= left < W``.
    height, width : int or None, default None
        Box size in pixels, >= 1; None means "to the bottom" / "to the right edge".
        The box must lie inside the image: ``top + height <= H``, ``left + width <= W``.

    Returns
    -------
    ndarray of shape (height, width) or (height, width, 3), uint8
        A new contiguous array (a copy, not a view of ``image``).

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If the box is empty or reaches outside the image (the message gives the image size).

    Examples
    --------
    >>> img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    >>> crop(img, top=1, left=2, height=2, width=3).tolist()
    [[7, 8, 9], [12, 13, 14]]
    """
    image = check_image(image)
    h, w = image.shape[:2]
    try:
        bottom = h if height is None else top + height
        right = w if width is None else left + width
        if 0 <= top < bottom <= h and 0 <= left < right <= w:
            return image[top:bottom, left:right].copy()  # slicing rejects non-integers (TypeError)
    except TypeError:
        raise ConfigError(
            f"crop top, left, height, width must be integers (height, width may be None), "
            f"got {(top, left, height, width)!r}"
        ) from None
    raise ConfigError(
        f"crop box top={top}, left={left}, height={height}, width={width} must lie inside the "
        f"{h}x{w} (height x width) image with height, width >= 1: need 0 <= top, top + height <= {h}, "
        f"0 <= left, left + width <= {w}"
    )


@register_op("pad", category="geometry", returns="image")
def pad(
    image: np.ndarray,
    *,
    top: Annotated[int, Range(0, MAX_SIDE)] = 0,
    bottom: Annotated[int, Range(0, MAX_SIDE)] = 0,
    left: Annotated[int, Range(0, MAX_SIDE)] = 0,
    right: Annotated[int, Range(0, MAX_SIDE)] = 0,
    mode: Literal["constant", "reflect", "edge"] = "constant",
    fill: Annotated[int, Range(0, 255)] = 0,
) -> np.ndarray:
    """Pad each side by the given number of pixels, with a constant, a reflection or the edge.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    top, bottom, left, right : int, default 0
        Pixels added on each side, in [0, MAX_SIDE]; the output must stay within MAX_SIDE per side.
    mode : {"constant", "reflect", "edge"}, default "constant"
        ``"constant"``: the grey level ``fill``. ``"reflect"``: mirror without repeating
        the edge pixel (``numpy.pad(mode="reflect")``, OpenCV's ``BORDER_REFLECT_101``).
        ``"edge"``: repeat the edge pixel (``numpy.pad(mode="edge")``, ``BORDER_REPLICATE``).
    fill : int, default 0
        Grey level 0..255 for ``mode="constant"`` (all channels).

    Returns
    -------
    ndarray of shape (H + top + bottom, W + left + right[, 3]), uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If a side is negative, the output too large, or ``mode``/``fill`` invalid.

    Examples
    --------
    >>> pad(np.array([[1, 2, 3]], np.uint8), left=2, mode="reflect").tolist()
    [[3, 2, 1, 2, 3]]
    >>> pad(np.array([[1, 2, 3]], np.uint8), right=1, fill=9).tolist()
    [[1, 2, 3, 9]]
    """
    image = check_image(image)
    border = _choice(mode, _BORDER, "mode")
    value = _FILLS[fill] if type(fill) is int and 0 <= fill <= 255 else _fill(fill)
    if not (type(top) is int and type(bottom) is int and type(left) is int and type(right) is int):
        for name, v in (("top", top), ("bottom", bottom), ("left", left), ("right", right)):
            if not _is_int(v):
                raise ConfigError(f"pad {name} must be an integer >= 0, got {v!r}")
        top, bottom, left, right = int(top), int(bottom), int(left), int(right)
    h, w = image.shape[:2]
    if (top | bottom | left | right) < 0:  # any negative
        raise ConfigError(
            f"pad sizes must be >= 0, got top={top}, bottom={bottom}, left={left}, right={right}"
        )
    if h + top + bottom > MAX_SIDE or w + left + right > MAX_SIDE:
        raise ConfigError(
            f"padded size {(h + top + bottom, w + left + right)} (height, width) exceeds MAX_SIDE={MAX_SIDE}"
        )
    return cv2.copyMakeBorder(image, top, bottom, left, right, border, value=value)


@register_op("rotate", category="geometry", returns="image")
def rotate(
    image: np.ndarray,
    *,
    angle: Annotated[float, Range(-360, 360)] = 0.0,
    expand: bool = False,
    interpolation: RotateInterpolation = "linear",
    fill: Annotated[int, Range(0, 255)] = 0,
) -> np.ndarray:
    """Rotate by ``angle`` degrees counter-clockwise about the image centre.

    Positive angles turn the picture counter-clockwise as displayed (row 0 at the
    top), like ``cv2.getRotationMatrix2D``, ``skimage.transform.rotate`` and
    ``np.rot90``. Multiples of 90 degrees with ``expand=True`` (or on a square image)
    are exact pixel permutations: ``rotate(img, angle=90, expand=True)`` equals
    ``np.rot90(img)`` and ``angle=-90`` equals ``np.rot90(img, -1)``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    angle : float, default 0.0
        Degrees, counter-clockwise, in [-360, 360].
    expand : bool, default False
        False: keep the H x W canvas (corners are cut off). True: enlarge the canvas
        to hold the whole rotated image.
    interpolation : {"nearest", "linear", "cubic", "lanczos"}, default "linear"
        OpenCV's ``INTER_*`` method for angles that are not multiples of 90.
    fill : int, default 0
        Grey level 0..255 of the uncovered pixels.

    Returns
    -------
    ndarray, uint8
        Shape ``image.shape`` when ``expand=False``; otherwise the bounding box of the
        rotated image (``(W, H)`` for 90 and 270 degrees).

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``angle`` is not finite or an option is not one of its values.

    Examples
    --------
    >>> img = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> rotate(img, angle=90, expand=True).tolist()
    [[2, 5], [1, 4], [0, 3]]
    >>> rotate(np.zeros((100, 200), np.uint8), angle=30, expand=True).shape
    (187, 223)
    """
    image = check_image(image)
    flag = _choice(interpolation, _ROTATE_INTERP, "interpolation")
    value = _fill(fill)
    angle = float(angle)
    if not math.isfinite(angle):
        raise ConfigError(f"angle must be a finite number of degrees, got {angle!r}")
    h, w = image.shape[:2]
    quarter, rest = divmod(angle, 90.0)
    if rest == 0.0 and (expand or h == w or int(quarter) % 2 == 0):
        k = int(quarter) % 4
        return image.copy() if k == 0 else cv2.rotate(image, _ROT90[k])
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    out_w, out_h = w, h
    if expand:
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        out_w, out_h = round(h * sin + w * cos), round(h * cos + w * sin)
        if out_w > MAX_SIDE or out_h > MAX_SIDE:
            raise ConfigError(f"rotated canvas {(out_h, out_w)} (height, width) exceeds MAX_SIDE={MAX_SIDE}")
        matrix[0, 2] += (out_w - 1) / 2.0 - cx
        matrix[1, 2] += (out_h - 1) / 2.0 - cy
    return cv2.warpAffine(
        image, matrix, (out_w, out_h), flags=flag, borderMode=cv2.BORDER_CONSTANT, borderValue=value
    )


@register_op("flip", category="geometry", returns="image")
def flip(
    image: np.ndarray, *, direction: Literal["horizontal", "vertical", "both"] = "horizontal"
) -> np.ndarray:
    """Mirror the image left-right, top-bottom or both.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    direction : {"horizontal", "vertical", "both"}, default "horizontal"
        ``"horizontal"``: left-right, like ``np.fliplr`` (columns reversed).
        ``"vertical"``: top-bottom, like ``np.flipud`` (rows reversed).
        ``"both"``: both, the same as a 180-degree rotation.

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``direction`` is not one of its values.

    Examples
    --------
    >>> flip(np.array([[1, 2], [3, 4]], np.uint8)).tolist()
    [[2, 1], [4, 3]]
    >>> flip(np.array([[1, 2], [3, 4]], np.uint8), direction="vertical").tolist()
    [[3, 4], [1, 2]]
    """
    image = check_image(image)
    return cv2.flip(image, _choice(direction, _FLIP, "direction"))
