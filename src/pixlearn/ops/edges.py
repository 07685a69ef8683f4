"""Edge detection: gradient magnitudes (Sobel, Scharr, Laplacian) and Canny edge maps.

Every op takes a uint8 (H, W) or (H, W, 3) RGB image; RGB is first converted to grey
luma (0.299 R + 0.587 G + 0.114 B). The result is a uint8 (H, W) image.

How magnitudes become uint8: the OpenCV response is multiplied by ``scale``, made
absolute, rounded and **clipped** at 255 (``cv2.convertScaleAbs``). With the default
``scale=None`` the kernel is normalised by the sum of its positive weights, so a straight
step of height ``d`` grey levels gives ``d`` for Sobel and Scharr. Nothing is stretched
to the image's own min..max unless you ask with ``stretch=True``.
"""

from __future__ import annotations

import functools
from typing import Annotated

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Range, register_op

__all__ = ["sobel", "scharr", "laplacian", "canny", "canny_thresholds"]



_checked = check_image  # has a fast path for plain uint8 grey/RGB arrays


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _aperture(ksize: int, *, allowed: tuple[int, ...]) -> int:
    if ksize not in allowed:
        raise ConfigError(f"ksize must be one of {', '.join(map(str, allowed))}, got {ksize}")
    return ksize


@functools.lru_cache(maxsize=None)
def _deriv_gain(ksize: int) -> float:
    """Sum of the positive weights of OpenCV's first-derivative kernel (4 for 3x3 Sobel, 16 for Scharr)."""
    kx, ky = cv2.getDerivKernels(1, 0, ksize)
    return float(kx[kx > 0].sum() * ky.sum())


_LAPLACIAN_GAIN = {1: 4.0, 3: 8.0, 5: 56.0, 7: 600.0}  # sum of positive weights of cv2.Laplacian's kernel


def _magnitude_to_uint8(gx: np.ndarray, gy: np.ndarray, scale: float, stretch: bool) -> np.ndarray:
    mag = cv2.magnitude(gx, gy)
    if stretch:
        return cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    return cv2.convertScaleAbs(mag, alpha=scale)


def _check_scale(scale: float | None, default: float) -> float:
    if scale is None:
        return 1.0 / default
    if not scale > 0:
        raise ConfigError(f"scale must be > 0 (or None for a normalised kernel), got {scale}")
    return scale


@register_op("sobel", category="edges")
def sobel(
    image: np.ndarray,
    *,
    ksize: Annotated[int, Range(1, 7, odd=True)] = 3,
    scale: Annotated[float | None, Range(0, 1000, low_open=True)] = None,
    stretch: bool = False,
) -> np.ndarray:
    """Sobel gradient magnitude ``sqrt(gx**2 + gy**2)`` as uint8, clipped at 255.

    ``gx`` and ``gy`` are ``cv2.Sobel`` derivatives (float32) of the grey image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    ksize : {1, 3, 5, 7}, default 3
        Sobel aperture size.
    scale : float or None, default None
        Multiplier on the raw OpenCV response, in (0, 1000]. None divides by the kernel's
        positive weight sum (4 for ``ksize=3``), so a step of ``d`` levels gives ``d``.
    stretch : bool, default False
        Instead of ``scale``, stretch this image's min..max magnitude to 0..255.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8
        ``min(255, round(scale * magnitude))``, or the stretched magnitude.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``ksize`` is not 1, 3, 5 or 7 or ``scale <= 0``.

    Examples
    --------
    >>> img = np.zeros((5, 6), np.uint8); img[:, 3:] = 100
    >>> sobel(img)[2]
    array([  0,   0, 100, 100,   0,   0], dtype=uint8)
    """
    image = _checked(image)
    _aperture(ksize, allowed=(1, 3, 5, 7))
    alpha = _check_scale(scale, _deriv_gain(ksize))
    gray = _gray(image)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=ksize)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=ksize)
    return _magnitude_to_uint8(gx, gy, alpha, stretch)


@register_op("scharr", category="edges")
def scharr(
    image: np.ndarray, *, scale: Annotated[float | None, Range(0, 1000, low_open=True)] = None, stretch: bool = False
) -> np.ndarray:
    """Scharr gradient magnitude ``sqrt(gx**2 + gy**2)`` as uint8, clipped at 255.

    The 3x3 Scharr kernel (``cv2.Scharr``) is more rotation-invariant than the 3x3 Sobel.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    scale : float or None, default None
        Multiplier on the raw OpenCV response, in (0, 1000]. None divides by 16 (the kernel's
        positive weight sum), so a step of ``d`` levels gives ``d``.
    stretch : bool, default False
        Instead of ``scale``, stretch this image's min..max magnitude to 0..255.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``scale <= 0``.

    Examples
    --------
    >>> img = np.zeros((5, 6), np.uint8); img[:, 3:] = 100
    >>> scharr(img)[2]
    array([  0,   0, 100, 100,   0,   0], dtype=uint8)
    """
    image = _checked(image)
    alpha = _check_scale(scale, 16.0)
    gray = _gray(image)
    gx = cv2.Scharr(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Scharr(gray, cv2.CV_32F, 0, 1)
    return _magnitude_to_uint8(gx, gy, alpha, stretch)


@register_op("laplacian", category="edges")
def laplacian(
    image: np.ndarray,
    *,
    ksize: Annotated[int, Range(1, 7, odd=True)] = 1,
    scale: Annotated[float | None, Range(0, 1000, low_open=True)] = None,
    stretch: bool = False,
) -> np.ndarray:
    """Absolute Laplacian ``|d2/dx2 + d2/dy2|`` as uint8, clipped at 255 (``cv2.Laplacian``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    ksize : {1, 3, 5, 7}, default 1
        Aperture size; 1 is the 4-neighbour kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``.
    scale : float or None, default None
        Multiplier on the raw OpenCV response, in (0, 1000]. None divides by the kernel's
        positive weight sum (4 for ``ksize=1``, 8 for 3, 56 for 5, 600 for 7), so no
        response can exceed 255 and a single bright pixel of height ``d`` gives ``d``.
    stretch : bool, default False
        Instead of ``scale``, stretch this image's min..max absolute response to 0..255.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``ksize`` is not 1, 3, 5 or 7 or ``scale <= 0``.

    Examples
    --------
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 200
    >>> laplacian(img)[1:4, 1:4]
    array([[  0,  50,   0],
           [ 50, 200,  50],
           [  0,  50,   0]], dtype=uint8)
    """
    image = _checked(image)
    _aperture(ksize, allowed=(1, 3, 5, 7))
    gain = _LAPLACIAN_GAIN[ksize]
    alpha = _check_scale(scale, gain)
    gray = _gray(image)
    ddepth = cv2.CV_16S if 255 * gain < 32767 else cv2.CV_32F  # exact and faster while it cannot overflow
    lap = cv2.Laplacian(gray, ddepth, ksize=ksize)
    if stretch:
        return cv2.normalize(np.abs(lap), None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    return cv2.convertScaleAbs(lap, alpha=alpha)


def _median_level(gray: np.ndarray) -> float:
    """Exact median of a uint8 grey image (same value as ``np.median``), from its histogram."""
    cdf = np.cumsum(cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel().astype(np.float64))
    n = gray.size
    lower = int(np.searchsorted(cdf, (n - 1) // 2 + 1, side="left"))
    upper = int(np.searchsorted(cdf, n // 2 + 1, side="left"))
    return (lower + upper) / 2.0


def _auto_thresholds(gray: np.ndarray, spread: float) -> tuple[int, int]:
    m = _median_level(gray)
    return int(max(0.0, (1.0 - spread) * m)), int(min(255.0, (1.0 + spread) * m))


def canny_thresholds(image: np.ndarray, *, spread: float = 0.33) -> tuple[int, int]:
    """The thresholds ``canny`` uses when none are given, by the median rule.

    With ``m`` the median grey level: ``low = int(max(0, (1 - spread) * m))`` and
    ``high = int(min(255, (1 + spread) * m))`` (``int`` truncates).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    spread : float, default 0.33
        Relative width of the band around the median, ``0 <= spread <= 1`` (the
        "sigma" of the usual auto-Canny recipe).

    Returns
    -------
    tuple of two ints
        ``(low, high)``.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``spread`` is outside [0, 1].

    Examples
    --------
    >>> canny_thresholds(np.full((4, 4), 100, np.uint8))
    (67, 133)
    """
    image = _checked(image)
    check_range(spread, name="spread", low=0, high=1)
    return _auto_thresholds(_gray(image), spread)


@register_op("canny", category="edges", returns="mask")
def canny(
    image: np.ndarray,
    *,
    low: Annotated[int | None, Range(0, 1_000_000)] = None,
    high: Annotated[int | None, Range(0, 1_000_000)] = None,
    spread: Annotated[float, Range(0, 1)] = 0.33,
    ksize: Annotated[int, Range(3, 7, odd=True)] = 3,
    l2_gradient: bool = False,
) -> np.ndarray:
    """Canny edge map (``cv2.Canny``): thin edges as 255 on 0, thresholds automatic or given.

    Gradients of magnitude above ``high`` are edges; those between ``low`` and ``high``
    are edges only if connected to one. Without ``low``/``high`` they come from the median
    grey level ``m`` (see :func:`canny_thresholds`): ``low = (1 - spread) * m``,
    ``high = (1 + spread) * m``. No blur is applied first: run ``gaussian`` before on
    noisy images.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image (converted to luma).
    low, high : int or None, default None
        Hysteresis thresholds on the gradient magnitude of the ``ksize`` Sobel kernel,
        ``0 <= low <= high <= 1_000_000``. Give both or neither.
    spread : float, default 0.33
        Median-rule band width used when no thresholds are given, in [0, 1].
    ksize : {3, 5, 7}, default 3
        Sobel aperture size.
    l2_gradient : bool, default False
        Use the exact L2 gradient magnitude instead of ``|gx| + |gy|``.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8
        Mask: 255 on edge pixels, 0 elsewhere.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If only one of ``low``/``high`` is given, ``low > high``, a threshold is
        negative, ``spread`` is outside [0, 1] or ``ksize`` is not 3, 5 or 7.

    Examples
    --------
    >>> img = np.zeros((12, 12), np.uint8); img[3:9, 3:9] = 200
    >>> (canny(img, low=50, high=150)[5] > 0).astype(int)  # a row through the square: its two sides
    array([0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    """
    image = _checked(image)
    _aperture(ksize, allowed=(3, 5, 7))
    gray = _gray(image)
    if low is None and high is None:
        check_range(spread, name="spread", low=0, high=1)
        low, high = _auto_thresholds(gray, spread)
    elif low is None or high is None:
        raise ConfigError(f"give both low and high thresholds or neither, got low={low}, high={high}")
    else:
        check_range(low, name="low", low=0)
        check_range(high, name="high", low=low)
    return cv2.Canny(gray, low, high, apertureSize=ksize, L2gradient=l2_gradient)
