"""Segmentation: k-means colour clusters, SLIC superpixels and marker-based watershed.

Each method comes twice: a registered op that returns a uint8 image (for recipes and
the CLI) and a ``*_labels`` function that returns the int32 label map (for code).
OpenCV does the k-means; scikit-image the superpixels and the watershed (imported on
first use, so ``import pixlearn.ops`` stays fast).
"""

from __future__ import annotations

from typing import Annotated, Any

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Range, register_op

__all__ = ["kmeans", "kmeans_labels", "slic", "slic_labels", "watershed", "watershed_labels"]


def _check_int(value: Any, *, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(check_range(int(value), name=name, low=low, high=high))


def _check_float(value: Any, *, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(check_range(float(value), name=name, low=low, high=high))


# --------------------------------------------------------------------------- k-means


def kmeans_labels(
    image: np.ndarray, *, k: int = 8, seed: int = 0, max_iter: int = 20, attempts: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the pixels' colours with k-means; return the label map and the centre colours.

    Every pixel of the image is clustered (no sampling) with OpenCV's ``cv2.kmeans``:
    k-means++ seeding, at most ``max_iter`` iterations or until centres move less than
    1 grey level, the best of ``attempts`` runs. The seed goes to ``cv2.setRNGSeed``,
    which also resets OpenCV's RNG of the calling thread.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey; grey images are clustered on the grey level.
    k : int, default 8
        Number of clusters, in [1, 256]; an image with fewer than ``k`` pixels uses one
        cluster per pixel.
    seed : int, default 0
        Seeds the initialisation: same image and seed, same result. In [0, 2**31 - 1].
    max_iter : int, default 20
        Most k-means iterations per attempt, in [1, 1000].
    attempts : int, default 1
        Independent runs; the most compact is kept. In [1, 100].

    Returns
    -------
    labels : ndarray of shape (H, W), int32
        Cluster index 0..k-1 of each pixel.
    centres : ndarray of shape (k, 3) for RGB or (k, 1) for grey, uint8
        Cluster centres rounded to the nearest colour; ``centres[labels]`` is the
        :func:`kmeans` image. A cluster may be empty when the image has fewer than
        ``k`` distinct colours.

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If an option is out of range.

    Examples
    --------
    >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 2:] = (200, 10, 10)
    >>> labels, centres = kmeans_labels(img, k=2)
    >>> sorted(map(tuple, centres.tolist()))
    [(0, 0, 0), (200, 10, 10)]
    >>> bool((labels[:, :2] == labels[0, 0]).all() and (labels[:, 2:] != labels[0, 0]).all())
    True
    """
    image = check_image(image)
    labels, centres = _kmeans(image, k, seed, max_iter, attempts)
    return labels.reshape(image.shape[:2]), centres


def _kmeans(
    image: np.ndarray, k: int, seed: int, max_iter: int, attempts: int
) -> tuple[np.ndarray, np.ndarray]:
    k = _check_int(k, name="k", low=1, high=256)
    seed = _check_int(seed, name="seed", low=0, high=2**31 - 1)
    max_iter = _check_int(max_iter, name="max_iter", low=1, high=1000)
    attempts = _check_int(attempts, name="attempts", low=1, high=100)
    samples = image.reshape(image.shape[0] * image.shape[1], -1).astype(np.float32)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, max_iter, 1.0)
    k = min(k, len(samples))
    _, labels, centres = cv2.kmeans(samples, k, None, criteria, attempts, cv2.KMEANS_PP_CENTERS)
    return labels, np.clip(np.rint(centres), 0, 255).astype(np.uint8)


@register_op("kmeans", category="segment", returns="image")
def kmeans(
    image: np.ndarray,
    *,
    k: Annotated[int, Range(1, 256)] = 8,
    seed: Annotated[int, Range(0, 2**31 - 1)] = 0,
    max_iter: Annotated[int, Range(1, 1000)] = 20,
    attempts: Annotated[int, Range(1, 100)] = 1,
) -> np.ndarray:
    """Colour quantisation: paint every pixel with the centre colour of its k-means cluster.

    See :func:`kmeans_labels` for the clustering and its options; this op returns
    ``centres[labels]``, an image with at most ``k`` distinct colours.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey.
    k : int, default 8
        Number of colours, in [1, 256].
    seed : int, default 0
        Seeds the initialisation, in [0, 2**31 - 1]: same image and seed, same output.
    max_iter : int, default 20
        Most k-means iterations per attempt, in [1, 1000].
    attempts : int, default 1
        Independent runs, the most compact kept, in [1, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If an option is out of range.

    Examples
    --------
    >>> img = np.zeros((2, 4, 3), np.uint8); img[:, 2:] = (200, 10, 10); img[0, 0] = (4, 0, 0)
    >>> kmeans(img, k=2)[:, :, 0].tolist()  # (0,0,0) and (4,0,0) merge into (1,0,0)
    [[1, 1, 200, 200], [1, 1, 200, 200]]
    """
    image = check_image(image)
    labels, centres = _kmeans(image, k, seed, max_iter, attempts)
    return centres[labels.ravel()].reshape(image.shape)


# --------------------------------------------------------------------------- SLIC


def slic_labels(
    image: np.ndarray, *, n_segments: int = 100, compactness: float = 10.0, sigma: float = 1.0
) -> np.ndarray:
    """SLIC superpixels (``skimage.segmentation.slic``): return the label map.

    RGB images are clustered in CIE L*a*b* (scikit-image's default); a grey image is
    first repeated into RGB, so ``compactness`` means the same for both.
    Connectivity is enforced, so every label is one connected region.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey.
    n_segments : int, default 100
        Approximate number of superpixels, in [1, 100000]; the result has roughly
        this many (SLIC starts from a grid and merges tiny fragments).
    compactness : float, default 10.0
        Colour versus space, in (0, 1000]: higher gives squarer superpixels,
        lower follows colour edges more closely.
    sigma : float, default 1.0
        Width of the Gaussian pre-smoothing in pixels, in [0, 100] (0: none).

    Returns
    -------
    ndarray of shape (H, W), int32
        Superpixel labels 1..n (no 0).

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If an option is out of range.

    Examples
    --------
    >>> img = np.zeros((40, 40, 3), np.uint8); img[:, 20:] = 255
    >>> labels = slic_labels(img, n_segments=4)
    >>> labels.shape, labels.dtype.name, int(labels.min())
    ((40, 40), 'int32', 1)
    """
    image = check_image(image)
    return _slic(image, n_segments, compactness, sigma)


def _slic(image: np.ndarray, n_segments: int, compactness: float, sigma: float) -> np.ndarray:
    from skimage.segmentation import slic as sk_slic

    n_segments = _check_int(n_segments, name="n_segments", low=1, high=100_000)
    compactness = _check_float(compactness, name="compactness", low=1e-6, high=1000.0)
    sigma = _check_float(sigma, name="sigma", low=0.0, high=100.0)
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    labels = sk_slic(
        rgb, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=1, channel_axis=-1
    )
    return labels.astype(np.int32, copy=False)


def _fill_mean(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each labelled region filled with its mean colour, rounded to the nearest integer."""
    flat = labels.ravel()
    counts = np.maximum(np.bincount(flat), 1)
    if image.ndim == 2:
        means = np.rint(np.bincount(flat, weights=image.ravel()) / counts).astype(np.uint8)
        return means[labels]
    channels = image.reshape(-1, image.shape[2])
    means = np.stack(
        [np.rint(np.bincount(flat, weights=channels[:, c]) / counts) for c in range(image.shape[2])], axis=1
    ).astype(np.uint8)
    return means[labels]


@register_op("slic", category="segment", returns="image")
def slic(
    image: np.ndarray,
    *,
    n_segments: Annotated[int, Range(1, 100_000)] = 100,
    compactness: Annotated[float, Range(0, 1000, low_open=True)] = 10.0,
    sigma: Annotated[float, Range(0, 100)] = 1.0,
) -> np.ndarray:
    """SLIC superpixels, each filled with its mean colour (a "mosaic" of the image).

    See :func:`slic_labels` for the segmentation and its options. Each superpixel is
    painted with the per-channel mean of its pixels, rounded to the nearest integer
    (``skimage.color.label2rgb(kind="avg")`` truncates instead).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey; the output has the same shape.
    n_segments : int, default 100
        Approximate number of superpixels, in [1, 100000].
    compactness : float, default 10.0
        Colour versus space, in (0, 1000]; higher gives squarer superpixels.
    sigma : float, default 1.0
        Gaussian pre-smoothing in pixels, in [0, 100].

    Returns
    -------
    ndarray, same shape as ``image``, uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If an option is out of range.

    Examples
    --------
    >>> img = np.zeros((40, 40, 3), np.uint8); img[:, 20:] = 200
    >>> out = slic(img, n_segments=4)
    >>> out.shape, int(out[:, :20].max()), int(out[:, 20:].min())  # no superpixel straddles the edge
    ((40, 40, 3), 0, 200)
    """
    image = check_image(image)
    return _fill_mean(image, _slic(image, n_segments, compactness, sigma))


# --------------------------------------------------------------------------- watershed


def watershed_labels(image: np.ndarray, *, min_distance: int = 10, invert: bool = False) -> np.ndarray:
    """Split touching objects: watershed of the distance transform with automatic markers.

    Steps: grey (luma) image -> Otsu threshold (``cv2.threshold``; foreground is the
    bright side, or the dark side with ``invert=True``) -> Euclidean distance to the
    background (``cv2.distanceTransform``) -> one marker per local maximum at least
    ``min_distance`` apart (``skimage.feature.peak_local_max``) ->
    ``skimage.segmentation.watershed`` of the negated distance, restricted to the
    foreground. Touching round objects whose centres are more than ``min_distance``
    apart come out as separate regions.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey; a 0/255 mask works too.
    min_distance : int, default 10
        Smallest distance in pixels between two markers, in [1, 10000]. Raise it if
        objects are over-split, lower it if touching objects stay merged.
    invert : bool, default False
        Take the dark side of the Otsu threshold as the foreground (dark objects on a
        light background).

    Returns
    -------
    ndarray of shape (H, W), int32
        0 for background, 1..n for the n regions.

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``min_distance`` is out of range.

    Examples
    --------
    >>> yy, xx = np.mgrid[:60, :100]
    >>> discs = ((yy - 30) ** 2 + (xx - 32) ** 2 < 400) | ((yy - 30) ** 2 + (xx - 66) ** 2 < 400)
    >>> labels = watershed_labels(discs.astype(np.uint8) * 255)
    >>> int(labels.max()), int(labels[30, 32]) != int(labels[30, 66]), int(labels[0, 0])
    (2, True, 0)
    """
    image = check_image(image)
    return _watershed(image, min_distance, invert)


def _watershed(image: np.ndarray, min_distance: int, invert: bool) -> np.ndarray:
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed as sk_watershed

    min_distance = _check_int(min_distance, name="min_distance", low=1, high=10_000)
    if not isinstance(invert, (bool, np.bool_)):
        raise ConfigError(f"invert must be True or False, got {invert!r}")
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    mode = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
    _, foreground = cv2.threshold(gray, 0, 255, mode | cv2.THRESH_OTSU)
    distance = cv2.distanceTransform(foreground, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    peaks = peak_local_max(distance, min_distance=min_distance, threshold_abs=0.5, exclude_border=False)
    if len(peaks) == 0:
        return np.zeros(gray.shape, np.int32)
    markers = np.zeros(gray.shape, np.int32)
    markers[peaks[:, 0], peaks[:, 1]] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    return sk_watershed(-distance, markers, mask=foreground > 0).astype(np.int32, copy=False)


@register_op("watershed", category="segment", returns="image")
def watershed(
    image: np.ndarray,
    *,
    min_distance: Annotated[int, Range(1, 10_000, image=True)] = 10,
    invert: bool = False,
    color: Annotated[tuple[int, int, int], Range(0, 255)] = (255, 0, 0),
) -> np.ndarray:
    """Watershed with automatic markers, drawn as region outlines over the image.

    See :func:`watershed_labels` for the segmentation and how to get the label map.
    The op returns an RGB copy of the image (a grey image is repeated into RGB) with
    the one-pixel-wide inner outline of every region painted in ``color``; pixels
    elsewhere are unchanged. Nothing is rescaled.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey; a 0/255 mask works too.
    min_distance : int, default 10
        Smallest distance in pixels between two markers, in [1, 10000] and at most
        ``2 * max(H, W) + 1`` (or 10).
    invert : bool, default False
        Segment the dark side of the Otsu threshold instead of the bright side.
    color : (int, int, int), default (255, 0, 0)
        RGB colour of the outlines, each 0..255.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If an option is out of range.

    Examples
    --------
    >>> mask = np.zeros((20, 20), np.uint8); mask[5:15, 5:15] = 255
    >>> out = watershed(mask)
    >>> out.shape, out[5, 10].tolist(), out[10, 10].tolist(), out[0, 0].tolist()
    ((20, 20, 3), [255, 0, 0], [255, 255, 255], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    image = check_image(image)
    try:
        rgb_color = tuple(int(c) for c in color)
    except (TypeError, ValueError):
        rgb_color = ()
    if len(rgb_color) != 3 or not all(0 <= c <= 255 for c in rgb_color):
        raise ConfigError(f"color must be (r, g, b) with each value in [0, 255], got {color!r}")
    labels = _watershed(image, min_distance, invert)
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    out[find_boundaries(labels, mode="inner")] = rgb_color
    return out
