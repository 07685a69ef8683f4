"""Morphology: erode, dilate, open, close and the morphological gradient (OpenCV).

Every op takes a uint8 (H, W) or (H, W, 3) image — a 0/255 mask is the usual input —
and returns a uint8 array of the same shape; colour images are filtered channel by
channel. The structuring element is ``shape`` ("rect", "ellipse" or "cross") of
``ksize`` x ``ksize`` pixels, centred, so ``ksize`` must be odd. Pixels outside the
image never win: erosion treats them as 255, dilation as 0 (OpenCV's defaults).
``iterations`` repeats of a ``ksize`` element act as one element of side
``(ksize - 1) * iterations + 1``, which must be at most :data:`MAX_REACH` (1025) and
``2 * max(H, W) + 1`` (OpenCV allocates that element whole for rect shapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Literal

import cv2
import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Kernel, Range, register_op

__all__ = ["erode", "dilate", "opening", "closing", "morph_gradient", "structuring_element", "MAX_REACH"]

Shape = Literal["rect", "ellipse", "cross"]

_SHAPES = {"rect": cv2.MORPH_RECT, "ellipse": cv2.MORPH_ELLIPSE, "cross": cv2.MORPH_CROSS}


@lru_cache(maxsize=64)
def _kernel(ksize: int, shape: str) -> np.ndarray:
    if shape not in _SHAPES:
        raise ConfigError(f"shape must be one of 'rect', 'ellipse', 'cross', got {shape!r}")
    if not _is_int(ksize) or ksize < 1 or ksize % 2 == 0:
        raise ConfigError(f"ksize must be an odd integer >= 1 (1, 3, 5, ...), got {ksize!r}")
    kernel = cv2.getStructuringElement(_SHAPES[shape], (int(ksize), int(ksize)))
    kernel.flags.writeable = False
    return kernel


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _iterations(iterations: int) -> int:
    if not _is_int(iterations) or iterations < 1:
        raise ConfigError(f"iterations must be an integer >= 1, got {iterations!r}")
    return int(iterations)


#: Largest side of the element that ``iterations`` repeats of a ``ksize`` element amount to. OpenCV
#: turns repeated rect erosions/dilations into one element of that side, allocated whole: 1025 is 1 MB.
MAX_REACH = 1025


def _check_reach(ksize: object, iterations: object, shape: tuple[int, ...] | None) -> None:
    """``(ksize - 1) * iterations + 1`` must be at most :data:`MAX_REACH` and ``2 * max(H, W) + 1``."""
    if not (_is_int(ksize) and _is_int(iterations)):
        return  # the ksize and iterations checks say what is wrong
    reach = (int(ksize) - 1) * int(iterations) + 1
    limit, where = MAX_REACH, ""
    if shape is not None and len(shape) >= 2:
        image_limit = max(2 * max(int(shape[0]), int(shape[1])) + 1, 3)
        if image_limit < limit:
            limit, where = image_limit, f" for this {int(shape[0])}x{int(shape[1])} image (2*max(H, W)+1)"
    if reach > limit:
        raise ConfigError(
            f"ksize={ksize} with iterations={iterations} amounts to one {reach}x{reach} element "
            f"((ksize - 1) * iterations + 1), over the limit of {limit}{where}; lower ksize or iterations"
        )


def _reach_constraint(options: Mapping[str, object], shape: tuple[int, ...] | None) -> None:
    _check_reach(options.get("ksize"), options.get("iterations"), shape)


def structuring_element(ksize: int = 3, shape: Shape = "rect") -> np.ndarray:
    """The uint8 0/1 structuring element the morphology ops use.

    Parameters
    ----------
    ksize : int, default 3
        Side in pixels; odd, >= 1.
    shape : {"rect", "ellipse", "cross"}, default "rect"

    Returns
    -------
    ndarray of shape (ksize, ksize), uint8 in {0, 1}
        A read-only array (it is cached).

    Raises
    ------
    ConfigError
        If ``ksize`` is not an odd integer >= 1 or ``shape`` is unknown.

    Examples
    --------
    >>> structuring_element(3, "cross").tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    return _kernel(ksize, shape)


@register_op("erode", category="morphology", returns="image", constraint=_reach_constraint)
def erode(image: np.ndarray, *, ksize: Annotated[int, Kernel(1, 255)] = 3, shape: Shape = "rect", iterations: Annotated[int, Range(1, 100)] = 1) -> np.ndarray:
    """Erode: each pixel becomes the minimum over the structuring element (bright regions shrink).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        A mask (0/255), a grey or an RGB image; channels are eroded independently.
    ksize : int, default 3
        Side of the structuring element in pixels; odd, in [1, 255], at most ``2 * max(H, W) + 1`` (or 3). A rect element of side
        ``ksize`` shrinks a bright square by ``ksize // 2`` pixels per side per iteration.
    shape : {"rect", "ellipse", "cross"}, default "rect"
        Shape of the structuring element.
    iterations : int, default 1
        How many times to erode; in [1, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``ksize`` or ``iterations`` is out of range, ``shape`` is unknown, or
        ``(ksize - 1) * iterations + 1`` exceeds 1025 or ``2 * max(H, W) + 1``.

    Examples
    --------
    >>> mask = np.zeros((7, 7), np.uint8); mask[1:6, 1:6] = 255
    >>> int((erode(mask, ksize=3) > 0).sum())  # 5x5 -> 3x3
    9
    """
    image = check_image(image)
    _check_reach(ksize, iterations, image.shape)
    return cv2.erode(image, _kernel(ksize, shape), iterations=_iterations(iterations))


@register_op("dilate", category="morphology", returns="image", constraint=_reach_constraint)
def dilate(image: np.ndarray, *, ksize: Annotated[int, Kernel(1, 255)] = 3, shape: Shape = "rect", iterations: Annotated[int, Range(1, 100)] = 1) -> np.ndarray:
    """Dilate: each pixel becomes the maximum over the structuring element (bright regions grow).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        A mask (0/255), a grey or an RGB image; channels are dilated independently.
    ksize : int, default 3
        Side of the structuring element in pixels; odd, in [1, 255], at most ``2 * max(H, W) + 1`` (or 3). A rect element of side
        ``ksize`` grows a bright square by ``ksize // 2`` pixels per side per iteration.
    shape : {"rect", "ellipse", "cross"}, default "rect"
        Shape of the structuring element.
    iterations : int, default 1
        How many times to dilate; in [1, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``ksize`` or ``iterations`` is out of range, ``shape`` is unknown, or
        ``(ksize - 1) * iterations + 1`` exceeds 1025 or ``2 * max(H, W) + 1``.

    Examples
    --------
    >>> mask = np.zeros((7, 7), np.uint8); mask[3, 3] = 255
    >>> int((dilate(mask, ksize=3) > 0).sum())  # 1x1 -> 3x3
    9
    """
    image = check_image(image)
    _check_reach(ksize, iterations, image.shape)
    return cv2.dilate(image, _kernel(ksize, shape), iterations=_iterations(iterations))


@register_op("open", category="morphology", returns="image", constraint=_reach_constraint)
def opening(image: np.ndarray, *, ksize: Annotated[int, Kernel(1, 255)] = 3, shape: Shape = "rect", iterations: Annotated[int, Range(1, 100)] = 1) -> np.ndarray:
    """Open (erode, then dilate): remove bright specks smaller than the structuring element.

    Registered as the op ``"open"``; the Python name is ``opening`` so that it does not
    shadow the built-in ``open``. With ``iterations=n`` it erodes n times, then dilates
    n times (OpenCV's ``morphologyEx``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        A mask (0/255), a grey or an RGB image; channels are processed independently.
    ksize : int, default 3
        Side of the structuring element in pixels; odd, in [1, 255], at most ``2 * max(H, W) + 1`` (or 3).
    shape : {"rect", "ellipse", "cross"}, default "rect"
        Shape of the structuring element.
    iterations : int, default 1
        Number of erosions, then of dilations; in [1, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``ksize`` or ``iterations`` is out of range, ``shape`` is unknown, or
        ``(ksize - 1) * iterations + 1`` exceeds 1025 or ``2 * max(H, W) + 1``.

    Examples
    --------
    >>> mask = np.zeros((9, 9), np.uint8); mask[1:5, 1:5] = 255; mask[7, 7] = 255
    >>> out = opening(mask, ksize=3)
    >>> int(out[7, 7]), int((out > 0).sum())  # the dot is gone, the 4x4 square stays
    (0, 16)
    """
    image = check_image(image)
    _check_reach(ksize, iterations, image.shape)
    return cv2.morphologyEx(image, cv2.MORPH_OPEN, _kernel(ksize, shape), iterations=_iterations(iterations))


@register_op("close", category="morphology", returns="image", constraint=_reach_constraint)
def closing(image: np.ndarray, *, ksize: Annotated[int, Kernel(1, 255)] = 3, shape: Shape = "rect", iterations: Annotated[int, Range(1, 100)] = 1) -> np.ndarray:
    """Close (dilate, then erode): fill dark holes and gaps smaller than the structuring element.

    Registered as the op ``"close"``; the Python name is ``closing``. With
    ``iterations=n`` it dilates n times, then erodes n times (OpenCV's ``morphologyEx``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        A mask (0/255), a grey or an RGB image; channels are processed independently.
    ksize : int, default 3
        Side of the structuring element in pixels; odd, in [1, 255], at most ``2 * max(H, W) + 1`` (or 3).
    shape : {"rect", "ellipse", "cross"}, default "rect"
        Shape of the structuring element.
    iterations : int, default 1
        Number of dilations, then of erosions; in [1, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``ksize`` or ``iterations`` is out of range, ``shape`` is unknown, or
        ``(ksize - 1) * iterations + 1`` exceeds 1025 or ``2 * max(H, W) + 1``.

    Examples
    --------
    >>> mask = np.full((9, 9), 255, np.uint8); mask[4, 4] = 0
    >>> int(closing(mask, ksize=3)[4, 4])  # the one-pixel hole is filled
    255
    """
    image = check_image(image)
    _check_reach(ksize, iterations, image.shape)
    return cv2.morphologyEx(image, cv2.MORPH_CLOSE, _kernel(ksize, shape), iterations=_iterations(iterations))


@register_op("morph_gradient", category="morphology", returns="image", constraint=_reach_constraint)
def morph_gradient(
    image: np.ndarray, *, ksize: Annotated[int, Kernel(1, 255)] = 3, shape: Shape = "rect", iterations: Annotated[int, Range(1, 100)] = 1
) -> np.ndarray:
    """Morphological gradient (dilation minus erosion): a band along every edge.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        A mask (0/255), a grey or an RGB image; channels are processed independently.
    ksize : int, default 3
        Side of the structuring element in pixels; odd, in [1, 255], at most ``2 * max(H, W) + 1`` (or 3). On a mask the band is
        ``2 * (ksize // 2)`` pixels wide: ``ksize // 2`` inside the edge and as many outside.
    shape : {"rect", "ellipse", "cross"}, default "rect"
        Shape of the structuring element.
    iterations : int, default 1
        Number of dilations and of erosions before the difference; in [1, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8
        ``dilate(image) - erode(image)``, never negative.

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``ksize`` or ``iterations`` is out of range, ``shape`` is unknown, or
        ``(ksize - 1) * iterations + 1`` exceeds 1025 or ``2 * max(H, W) + 1``.

    Examples
    --------
    >>> mask = np.zeros((7, 7), np.uint8); mask[2:5, 2:5] = 255
    >>> int((morph_gradient(mask, ksize=3) > 0).sum())  # 5x5 dilated minus the 1x1 eroded core
    24
    """
    image = check_image(image)
    _check_reach(ksize, iterations, image.shape)
    kernel = _kernel(ksize, shape)
    return cv2.morphologyEx(image, cv2.MORPH_GRADIENT, kernel, iterations=_iterations(iterations))
