"""Thresholding: fixed, Otsu, multi-level Otsu and adaptive (local) thresholds.

Every op takes a uint8 (H, W) or (H, W, 3) RGB image; RGB is first converted to grey
luma (0.299 R + 0.587 G + 0.114 B). Binary results are uint8 (H, W) masks of 0 and 255,
with 255 where the grey level is **above** the threshold (``invert=True`` swaps them).
``otsu_threshold`` and ``multi_otsu_thresholds`` return the threshold values themselves.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Kernel, Range, register_op

__all__ = [
    "threshold",
    "otsu",
    "otsu_threshold",
    "multi_otsu",
    "multi_otsu_thresholds",
    "adaptive_threshold",
]



_checked = check_image  # has a fast path for plain uint8 grey/RGB arrays


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _binary(invert: bool) -> int:
    return cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY


@register_op("threshold", category="threshold", returns="mask")
def threshold(image: np.ndarray, *, value: Annotated[int, Range(0, 255)] = 127, invert: bool = False) -> np.ndarray:
    """Fixed threshold: 255 where the grey level is above ``value``, else 0 (``cv2.threshold``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    value : int, default 127
        Threshold in grey levels, ``0 <= value <= 255``; pixels equal to it are 0.
    invert : bool, default False
        Return 255 where the grey level is ``<= value`` instead.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8
        Mask of 0 and 255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``value`` is outside 0..255.

    Examples
    --------
    >>> threshold(np.array([[10, 127, 128, 250]], np.uint8), value=127)
    array([[  0,   0, 255, 255]], dtype=uint8)
    """
    image = _checked(image)
    check_range(value, name="value", low=0, high=255)
    return cv2.threshold(_gray(image), value, 255, _binary(invert))[1]


def otsu_threshold(image: np.ndarray) -> int:
    """Otsu's threshold of the grey levels: the level that best separates two classes.

    Computed by OpenCV (``cv2.threshold`` with ``THRESH_OTSU``); pixels above the
    returned level form the bright class.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).

    Returns
    -------
    int
        Threshold in 0..255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.

    Examples
    --------
    >>> img = np.array([[20, 22, 24, 200, 202, 204]], np.uint8)
    >>> 24 <= otsu_threshold(img) < 200
    True
    """
    image = _checked(image)
    return int(cv2.threshold(_gray(image), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[0])


@register_op("otsu", category="threshold", returns="mask")
def otsu(image: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """Binarise with Otsu's automatic threshold: 255 above it, else 0 (see :func:`otsu_threshold`).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    invert : bool, default False
        Return 255 on the dark class instead.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8
        Mask of 0 and 255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.

    Examples
    --------
    >>> otsu(np.array([[20, 22, 24, 200, 202, 204]], np.uint8))
    array([[  0,   0,   0, 255, 255, 255]], dtype=uint8)
    """
    image = _checked(image)
    return cv2.threshold(_gray(image), 0, 255, _binary(invert) | cv2.THRESH_OTSU)[1]


def _multi_otsu(gray: np.ndarray, classes: int) -> np.ndarray:
    from skimage.filters import threshold_multiotsu

    check_range(classes, name="classes", low=2, high=5)
    try:
        return threshold_multiotsu(gray, classes=classes)
    except ValueError as exc:  # e.g. fewer distinct grey levels than classes
        raise ConfigError(f"multi-Otsu with classes={classes} failed on this image: {exc}") from None


def multi_otsu_thresholds(image: np.ndarray, *, classes: int = 3) -> list[int]:
    """The ``classes - 1`` multi-level Otsu thresholds (``skimage.filters.threshold_multiotsu``).

    Like Otsu's threshold, each value is the last level of the darker class: pixel ``v``
    belongs to class ``k`` when ``t[k-1] < v <= t[k]``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    classes : int, default 3
        Number of classes, ``2 <= classes <= 5``. The search grows fast with it:
        milliseconds up to 4 classes, a few seconds for 5.

    Returns
    -------
    list of int
        Increasing thresholds in 0..255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``classes`` is out of range or the image has fewer grey levels than classes.

    Examples
    --------
    >>> img = np.repeat(np.array([[10, 120, 240]], np.uint8), 4, axis=0)
    >>> t = multi_otsu_thresholds(img, classes=3)
    >>> t
    [10, 120]
    """
    image = _checked(image)
    return [int(t) for t in _multi_otsu(_gray(image), classes)]


@register_op("multi_otsu", category="threshold")
def multi_otsu(
    image: np.ndarray, *, classes: Annotated[int, Range(2, 5)] = 3, output: Literal["levels", "labels"] = "levels"
) -> np.ndarray:
    """Split the grey levels into ``classes`` classes by multi-level Otsu thresholds.

    Thresholds come from ``skimage.filters.threshold_multiotsu`` (see
    :func:`multi_otsu_thresholds`); the classes are written with one ``cv2.LUT`` pass.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    classes : int, default 3
        Number of classes, ``2 <= classes <= 5``. The search grows fast with it:
        milliseconds up to 4 classes, a few seconds for 5.
    output : {"levels", "labels"}, default "levels"
        ``"levels"``: class ``k`` is drawn as grey ``round(255 * k / (classes - 1))``
        (0, 128, 255 for 3 classes), an image you can look at. ``"labels"``: class
        indices ``0 .. classes - 1``, for use as a label map.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8
        Darkest class 0, brightest class ``classes - 1`` (or 255 with ``"levels"``).

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``classes`` is out of range or the image has fewer grey levels than classes.

    Examples
    --------
    >>> img = np.repeat(np.array([[10, 120, 240]], np.uint8), 4, axis=0)
    >>> multi_otsu(img, classes=3)[0]
    array([  0, 128, 255], dtype=uint8)
    >>> multi_otsu(img, classes=3, output="labels")[0]
    array([0, 1, 2], dtype=uint8)
    """
    image = _checked(image)
    if output not in ("levels", "labels"):
        raise ConfigError(f"output must be 'levels' or 'labels', got {output!r}")
    gray = _gray(image)
    labels = np.digitize(np.arange(256), _multi_otsu(gray, classes), right=True)  # v > t: next class
    table = labels if output == "labels" else np.rint(labels * (255.0 / (classes - 1)))
    return cv2.LUT(gray, table.astype(np.uint8))


@register_op("adaptive_threshold", category="threshold", returns="mask")
def adaptive_threshold(
    image: np.ndarray,
    *,
    method: Literal["mean", "gaussian"] = "gaussian",
    ksize: Annotated[int, Kernel(3, 255)] = 11,
    offset: Annotated[float, Range(-255, 255)] = 2.0,
    invert: bool = False,
) -> np.ndarray:
    """Local threshold: 255 where a pixel is above its neighbourhood mean minus ``offset``.

    ``cv2.adaptiveThreshold``: the local mean is over a ``ksize`` x ``ksize`` window,
    plain (``"mean"``) or Gaussian-weighted (``"gaussian"``). Copes with uneven lighting
    where one global threshold fails.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    method : {"mean", "gaussian"}, default "gaussian"
        How the neighbourhood mean is weighted.
    ksize : int, default 11
        Window width in pixels, odd, in [3, 255] and at most ``2 * max(H, W) + 1`` (or 11).
    offset : float, default 2.0
        Grey levels subtracted from the local mean (OpenCV's ``C``), in [-255, 255].
    invert : bool, default False
        Return 255 where the pixel is at or below the local threshold instead.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8
        Mask of 0 and 255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``ksize`` is even or below 3, or ``method`` is unknown.

    Examples
    --------
    >>> img = np.full((9, 9), 100, np.uint8); img[4, 4] = 120
    >>> mask = adaptive_threshold(img, method="mean", ksize=3, offset=-5.0)
    >>> int(mask[4, 4]), int(mask[0, 0])
    (255, 0)
    """
    image = _checked(image)
    if method not in ("mean", "gaussian"):
        raise ConfigError(f"method must be 'mean' or 'gaussian', got {method!r}")
    if ksize < 3 or ksize % 2 == 0:
        raise ConfigError(f"ksize must be an odd integer >= 3, got {ksize}")
    kind = cv2.ADAPTIVE_THRESH_MEAN_C if method == "mean" else cv2.ADAPTIVE_THRESH_GAUSSIAN_C
    return cv2.adaptiveThreshold(_gray(image), 255, kind, _binary(invert), ksize, offset)
