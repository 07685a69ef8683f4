"""Intensity adjustments: brightness, contrast, gamma, stretching, histogram equalisation, grey, invert.

Every op takes a uint8 (H, W) or (H, W, 3) RGB image and returns a uint8 image of the
same shape (``grayscale`` returns (H, W)). Point operations run as one OpenCV lookup
table (``cv2.LUT``) or ``cv2.convertScaleAbs`` pass; results are rounded to the nearest
integer and saturated to 0..255 — values are clipped, never rescaled behind your back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Range, register_op

__all__ = [
    "brightness",
    "contrast",
    "gamma",
    "auto_contrast",
    "equalize",
    "clahe",
    "grayscale",
    "invert",
]



_checked = check_image  # has a fast path for plain uint8 grey/RGB arrays


_LEVELS = np.arange(256, dtype=np.float64)
_LEVELS.flags.writeable = False


def _lut(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a float table of 256 output levels: round to nearest, clip to 0..255, one cv2.LUT pass."""
    return cv2.LUT(image, np.clip(np.rint(table), 0, 255).astype(np.uint8))


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _histogram(image: np.ndarray) -> np.ndarray:
    """Counts of the 256 levels over every pixel and channel (float64, length 256)."""
    flat = image if image.ndim == 2 else image.reshape(image.shape[0], -1)
    return cv2.calcHist([flat], [0], None, [256], [0, 256]).ravel().astype(np.float64)


@register_op("brightness", category="adjust")
def brightness(image: np.ndarray, *, factor: Annotated[float, Range(0, 100)] = 1.0) -> np.ndarray:
    """Scale brightness: every channel value is multiplied by ``factor`` and clipped to 255.

    Same meaning as ``torchvision.transforms.functional.adjust_brightness`` and PIL's
    ``ImageEnhance.Brightness``: 0 gives black, 1 the original, 2 twice as bright.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    factor : float, default 1.0
        Multiplier, in [0, 100].

    Returns
    -------
    ndarray of the same shape, dtype uint8
        ``min(255, round(image * factor))`` (``cv2.convertScaleAbs``).

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``factor < 0``.

    Examples
    --------
    >>> brightness(np.array([[100, 200]], np.uint8), factor=1.5)
    array([[150, 255]], dtype=uint8)
    """
    image = _checked(image)
    check_range(factor, name="factor", low=0)
    return cv2.convertScaleAbs(image, alpha=factor)


@register_op("contrast", category="adjust")
def contrast(image: np.ndarray, *, factor: Annotated[float, Range(0, 100)] = 1.0) -> np.ndarray:
    """Scale contrast around the mean grey level: ``mean + factor * (image - mean)``, clipped.

    Same meaning as ``torchvision.transforms.functional.adjust_contrast`` and PIL's
    ``ImageEnhance.Contrast``: 0 gives a flat grey image at the mean luma, 1 the
    original, 2 doubles the distances from the mean. The mean is that of the luma
    (0.299 R + 0.587 G + 0.114 B) over the whole image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    factor : float, default 1.0
        Contrast factor, in [0, 100].

    Returns
    -------
    ndarray of the same shape, dtype uint8
        Rounded to the nearest level and clipped to 0..255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``factor < 0``.

    Examples
    --------
    >>> contrast(np.array([[100, 150]], np.uint8), factor=2.0)  # mean 125
    array([[ 75, 175]], dtype=uint8)
    """
    image = _checked(image)
    check_range(factor, name="factor", low=0)
    means = cv2.mean(image)
    mean = means[0] if image.ndim == 2 else 0.299 * means[0] + 0.587 * means[1] + 0.114 * means[2]
    return _lut(image, factor * _LEVELS + (1.0 - factor) * mean)


@register_op("gamma", category="adjust")
def gamma(image: np.ndarray, *, gamma: Annotated[float, Range(0, 100, low_open=True)] = 1.0) -> np.ndarray:
    """Gamma-correct intensities: ``255 * (image / 255) ** gamma``, rounded.

    ``gamma < 1`` brightens the dark tones, ``gamma > 1`` darkens them, ``1`` is the
    identity. Same formula as ``skimage.exposure.adjust_gamma`` (gain 1), applied as
    one lookup table.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    gamma : float, default 1.0
        Exponent, in (0, 100].

    Returns
    -------
    ndarray of the same shape, dtype uint8
        0 stays 0 and 255 stays 255.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``gamma <= 0``.

    Examples
    --------
    >>> gamma(np.array([[0, 64, 255]], np.uint8), gamma=0.5)
    array([[  0, 128, 255]], dtype=uint8)
    """
    image = _checked(image)
    _positive(gamma, "gamma")
    return _lut(image, 255.0 * np.power(_LEVELS / 255.0, gamma))


@register_op("auto_contrast", category="adjust")
def auto_contrast(image: np.ndarray, *, percentiles: Annotated[tuple[float, float], Range(0, 100)] = (1.0, 99.0)) -> np.ndarray:
    """Stretch intensities so the given low/high percentiles map to 0 and 255 (clipped beyond).

    The percentiles are taken over all pixels and channels together (so colours keep
    their balance), as the levels ``lo``/``hi`` where the cumulative histogram first
    reaches ``p / 100`` of the values (NumPy's ``method="inverted_cdf"``). Then
    ``out = round(255 * (image - lo) / (hi - lo))``, clipped to 0..255. This is the
    ``skimage.exposure.rescale_intensity(image, in_range=(lo, hi))`` recipe, run as one
    lookup table. An image whose two percentiles coincide (e.g. a flat image) is
    returned unchanged (as a copy).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    percentiles : tuple of two floats, default (1.0, 99.0)
        Low and high percentile, ``0 <= low < high <= 100``. ``(0, 100)`` stretches
        the exact min..max range.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If the percentiles are out of range or not increasing.

    Examples
    --------
    >>> auto_contrast(np.array([[50, 100, 150]], np.uint8), percentiles=(0, 100))
    array([[  0, 128, 255]], dtype=uint8)
    """
    image = _checked(image)
    p_low, p_high = percentiles
    check_range(p_low, name="percentiles[0]", low=0, high=100)
    check_range(p_high, name="percentiles[1]", low=0, high=100)
    if not p_low < p_high:
        raise ConfigError(f"percentiles must be increasing (low < high), got {tuple(percentiles)}")
    cdf = np.cumsum(_histogram(image))
    total = cdf[-1]
    lo = int(np.searchsorted(cdf, max(p_low / 100.0 * total, 1.0), side="left"))
    hi = int(np.searchsorted(cdf, max(p_high / 100.0 * total, 1.0), side="left"))
    if hi <= lo:
        return image.copy()
    return _lut(image, (_LEVELS - lo) * 255.0 / (hi - lo))


def _on_luma(image: np.ndarray, func: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a grey -> grey ``func`` to the Y channel of YCrCb and convert back to RGB."""
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = func(cv2.extractChannel(ycc, 0))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _per_channel(image: np.ndarray, func: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a grey -> grey ``func`` to each channel and merge them back."""
    return cv2.merge([func(channel) for channel in cv2.split(image)])


@register_op("equalize", category="adjust")
def equalize(image: np.ndarray, *, per_channel: bool = False) -> np.ndarray:
    """Equalise the histogram so the levels spread over 0..255 (``cv2.equalizeHist``).

    Grey images are equalised directly. RGB images are equalised on their luma (the Y
    of YCrCb), which keeps hues; ``per_channel=True`` equalises R, G and B separately
    instead (PIL's ``ImageOps.equalize`` behaviour), which can shift colours.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    per_channel : bool, default False
        RGB only: equalise each channel on its own instead of the luma.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.

    Examples
    --------
    >>> img = np.array([[100, 101, 102, 103]], np.uint8)
    >>> equalize(img)
    array([[  0,  85, 170, 255]], dtype=uint8)
    """
    image = _checked(image)
    if image.ndim == 2:
        return cv2.equalizeHist(image)
    if per_channel:
        return _per_channel(image, cv2.equalizeHist)
    return _on_luma(image, cv2.equalizeHist)


@register_op("clahe", category="adjust")
def clahe(
    image: np.ndarray,
    *,
    clip_limit: Annotated[float, Range(0, 1000, low_open=True)] = 2.0,
    tile: Annotated[tuple[int, int], Range(1, 256)] = (8, 8),
    per_channel: bool = False,
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV ``createCLAHE``).

    The image is cut into a grid of ``tile`` tiles; each tile's histogram is clipped at
    ``clip_limit`` times the mean bin count, equalised, and the results are blended
    bilinearly. RGB images are processed on their luma (Y of YCrCb) unless
    ``per_channel=True``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    clip_limit : float, default 2.0
        Histogram clip limit, in (0, 1000]; larger means stronger contrast (and noise).
    tile : tuple of two ints, default (8, 8)
        Number of tiles along (rows, columns), each in [1, 256] — a grid size, not a
        size in pixels (OpenCV's ``tileGridSize``, which is given as (columns, rows)).
    per_channel : bool, default False
        RGB only: equalise each channel on its own instead of the luma.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``clip_limit <= 0`` or a tile count is below 1.

    Examples
    --------
    >>> img = np.tile(np.arange(100, 132, dtype=np.uint8), (32, 1))
    >>> out = clahe(img, clip_limit=4.0, tile=(2, 2))
    >>> out.shape, out.dtype, int(np.ptp(out)) > int(np.ptp(img))
    ((32, 32), dtype('uint8'), True)
    """
    image = _checked(image)
    _positive(clip_limit, "clip_limit")
    if len(tile) != 2:
        raise ConfigError(f"tile must be (rows, cols), got {tile!r}")
    rows, cols = int(tile[0]), int(tile[1])
    check_range(rows, name="tile[0] (rows)", low=1)
    check_range(cols, name="tile[1] (cols)", low=1)
    apply = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(cols, rows)).apply
    if image.ndim == 2:
        return apply(image)
    if per_channel:
        return _per_channel(image, apply)
    return _on_luma(image, apply)


@register_op("grayscale", category="adjust")
def grayscale(image: np.ndarray) -> np.ndarray:
    """Convert RGB to grey luma: ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601), rounded.

    This is OpenCV's ``COLOR_RGB2GRAY`` and PIL's ``convert("L")``. A grey image is
    returned as a copy.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        RGB (or already grey) image.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.

    Examples
    --------
    >>> grayscale(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8))
    array([[ 76, 150,  29]], dtype=uint8)
    """
    image = _checked(image)
    if image.ndim == 2:
        return image.copy()
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


@register_op("invert", category="adjust")
def invert(image: np.ndarray) -> np.ndarray:
    """Invert intensities: ``255 - image`` on every channel (``cv2.bitwise_not``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.

    Examples
    --------
    >>> invert(np.array([[0, 100, 255]], np.uint8))
    array([[255, 155,   0]], dtype=uint8)
    """
    image = _checked(image)
    return cv2.bitwise_not(image)
