"""Hand-crafted image features: HOG, LBP, colour histograms, SIFT/ORB keypoints, matching, homography.

Every function takes a uint8 (H, W) grey or (H, W, 3) RGB image and calls
scikit-image or OpenCV; none of them return JSON-able data, so none is a
registered op. Keypoint coordinates are ``(x, y)`` = (column, row), the
OpenCV convention, unlike image indexing which is (row, column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError, ShapeError

__all__ = [
    "Keypoints",
    "hog",
    "lbp_histogram",
    "color_histogram",
    "sift",
    "orb",
    "match_descriptors",
    "find_homography",
    "LBPMethod",
]

LBPMethod = Literal["default", "ror", "uniform", "nri_uniform"]


def _gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) luma of a checked grey or RGB image."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def _pair(value: Any, *, name: str) -> tuple[int, int]:
    """Accept an int or a pair of positive ints (rows, cols)."""
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        r, c = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or a pair of ints (rows, cols), got {value!r}") from None
    if r < 1 or c < 1:
        raise ConfigError(f"{name} must be positive, got {(r, c)}")
    return r, c


# ---------------------------------------------------------------- dense descriptors


def hog(
    image: np.ndarray,
    *,
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (2, 2),
) -> np.ndarray:
    """Histogram of oriented gradients (Dalal & Triggs), as one feature vector.

    Calls :func:`skimage.feature.hog` with L2-Hys block normalisation. For an RGB
    image the gradient at each pixel is taken from the channel with the largest
    magnitude.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image.
    orientations : int, default 9
        Number of orientation bins over 0..180 degrees.
    pixels_per_cell : tuple of int (rows, cols), default (8, 8)
        Cell size in pixels.
    cells_per_block : tuple of int (rows, cols), default (2, 2)
        Block size in cells; each block is normalised on its own.

    Returns
    -------
    ndarray of shape (D,), float32
        ``D = n_blocks_r * n_blocks_c * cells_per_block[0] * cells_per_block[1] * orientations``
        with ``n_blocks_r = H // pixels_per_cell[0] - cells_per_block[0] + 1`` (columns alike).

    Raises
    ------
    ShapeError
        If the image is not uint8 (H, W) / (H, W, 3), or smaller than one block.
    ConfigError
        If an option is out of range.

    Examples
    --------
    >>> img = np.zeros((64, 64), np.uint8); img[:, 32:] = 255
    >>> v = hog(img)
    >>> v.shape, v.dtype
    ((1764,), dtype('float32'))
    """
    image = check_image(image, channels=(1, 3))
    if int(orientations) < 1:
        raise ConfigError(f"orientations must be >= 1, got {orientations}")
    ppc = _pair(pixels_per_cell, name="pixels_per_cell")
    cpb = _pair(cells_per_block, name="cells_per_block")
    need = (ppc[0] * cpb[0], ppc[1] * cpb[1])
    if image.shape[0] < need[0] or image.shape[1] < need[1]:
        raise ShapeError(
            f"image of shape {image.shape[:2]} is smaller than one HOG block ({need[0]}, {need[1]}) "
            f"= pixels_per_cell {ppc} x cells_per_block {cpb}; resize the image or use smaller cells"
        )
    from skimage.feature import hog as _sk_hog

    vec = _sk_hog(
        image,
        orientations=int(orientations),
        pixels_per_cell=ppc,
        cells_per_block=cpb,
        block_norm="L2-Hys",
        feature_vector=True,
        channel_axis=-1 if image.ndim == 3 else None,
    )
    return np.asarray(vec, dtype=np.float32)


_LBP_BINS = {
    "default": lambda p: 2**p,
    "ror": lambda p: 2**p,
    "uniform": lambda p: p + 2,
    "nri_uniform": lambda p: p * (p - 1) + 3,
}


def lbp_histogram(
    image: np.ndarray,
    *,
    points: int = 8,
    radius: float = 1.0,
    method: LBPMethod = "uniform",
) -> np.ndarray:
    """Normalised histogram of local binary pattern codes (a texture descriptor).

    Calls :func:`skimage.feature.local_binary_pattern` on the grey image and
    counts the codes.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image (RGB is converted to luma first).
    points : int, default 8
        Number of circularly symmetric neighbours P (1..24).
    radius : float, default 1.0
        Radius R of the neighbour circle in pixels.
    method : {"default", "ror", "uniform", "nri_uniform"}, default "uniform"
        Code type (see scikit-image). ``"uniform"`` gives ``P + 2`` bins,
        ``"nri_uniform"`` ``P (P - 1) + 3``, the others ``2 ** P``.

    Returns
    -------
    ndarray of shape (B,), float32
        Histogram that sums to 1.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> h = lbp_histogram(rng.integers(0, 256, (32, 32), dtype=np.uint8))
    >>> h.shape, round(float(h.sum()), 5)
    ((10,), 1.0)
    """
    image = check_image(image, channels=(1, 3))
    if method not in _LBP_BINS:
        from pixlearn._core.names import check_name

        check_name(str(method), list(_LBP_BINS), what="LBP method")
    points = int(points)
    if not 1 <= points <= 24:
        raise ConfigError(f"points must be in [1, 24], got {points}")
    check_range(float(radius), name="radius", low=0.5)
    from skimage.feature import local_binary_pattern

    codes = local_binary_pattern(_gray(image), points, float(radius), method=method)
    n_bins = _LBP_BINS[method](points)
    hist = np.bincount(codes.astype(np.int64).ravel(), minlength=n_bins)[:n_bins].astype(np.float64)
    return (hist / hist.sum()).astype(np.float32)


def color_histogram(
    image: np.ndarray,
    *,
    bins: int = 8,
    space: Literal["rgb", "hsv"] = "hsv",
) -> np.ndarray:
    """Normalised joint 3-D colour histogram, flattened.

    Calls :func:`cv2.calcHist` over the three channels together, so the vector
    has ``bins ** 3`` entries (index ``(c0 * bins + c1) * bins + c2``). In
    ``"hsv"`` each channel spans its full range (hue 0..360 degrees).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W), uint8
        RGB image; a grey image is taken as RGB with three equal channels.
    bins : int, default 8
        Bins per channel (1..64).
    space : {"rgb", "hsv"}, default "hsv"
        Colour space the histogram is taken in.

    Returns
    -------
    ndarray of shape (bins ** 3,), float32
        Histogram that sums to 1.

    Examples
    --------
    >>> red = np.zeros((4, 4, 3), np.uint8); red[..., 0] = 255
    >>> h = color_histogram(red, bins=4, space="rgb")
    >>> h.shape, int(h.argmax()), float(h.max())
    ((64,), 48, 1.0)
    """
    image = check_image(image, channels=(1, 3))
    bins = int(bins)
    if not 1 <= bins <= 64:
        raise ConfigError(f"bins must be in [1, 64], got {bins}")
    if space not in ("rgb", "hsv"):
        from pixlearn._core.names import check_name

        check_name(str(space), ["rgb", "hsv"], what="colour space")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image)
    if space == "hsv":
        conv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)  # hue scaled to 0..255
    else:
        conv = image
    hist = cv2.calcHist([conv], [0, 1, 2], None, [bins] * 3, [0, 256, 0, 256, 0, 256])
    hist = hist.ravel().astype(np.float64)
    return (hist / hist.sum()).astype(np.float32)


# ---------------------------------------------------------------- keypoints


@dataclass(frozen=True, eq=False)
class Keypoints:
    """Detected keypoints and their descriptors.

    Attributes
    ----------
    points : ndarray of shape (N, 2), float32
        Keypoint centres as ``(x, y)`` = (column, row) in pixels, the OpenCV
        convention. Note the order: ``image[int(y), int(x)]`` is the pixel.
    size : ndarray of shape (N,), float32
        Diameter of the meaningful neighbourhood, in pixels.
    angle : ndarray of shape (N,), float32
        Dominant orientation in degrees, clockwise from the x axis (-1 if none).
    response : ndarray of shape (N,), float32
        Detector response (strength); larger is stronger.
    descriptors : ndarray of shape (N, D)
        float32 for SIFT (D = 128), uint8 for ORB (D = 32 bytes = 256 bits).
    """

    points: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    response: np.ndarray
    descriptors: np.ndarray
    detector: str = field(default="")

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists), without the descriptors."""
        return {
            "detector": self.detector,
            "count": len(self),
            "points": self.points.tolist(),
            "size": self.size.tolist(),
            "angle": self.angle.tolist(),
            "response": self.response.tolist(),
        }

    @classmethod
    def _from_cv(cls, kps: Any, desc: np.ndarray | None, *, detector: str, width: int) -> Keypoints:
        n = len(kps)
        dtype = np.float32 if detector == "sift" else np.uint8
        if desc is None or n == 0:
            desc = np.zeros((0, width), dtype)
        return cls(
            points=np.array([k.pt for k in kps], np.float32).reshape(n, 2),
            size=np.array([k.size for k in kps], np.float32),
            angle=np.array([k.angle for k in kps], np.float32),
            response=np.array([k.response for k in kps], np.float32),
            descriptors=np.ascontiguousarray(desc, dtype=dtype),
            detector=detector,
        )


def _check_max_features(max_features: int) -> int:
    value = int(max_features)
    if value < 1:
        raise ConfigError(f"max_features must be >= 1, got {max_features}")
    return value


def sift(image: np.ndarray, *, max_features: int = 1000) -> Keypoints:
    """Detect SIFT keypoints and compute their 128-d float descriptors (:func:`cv2.SIFT_create`).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image (RGB is converted to luma first).
    max_features : int, default 1000
        Keep at most this many keypoints, the strongest first.

    Returns
    -------
    Keypoints
        ``points`` as (x, y), ``descriptors`` float32 of shape (N, 128).

    Examples
    --------
    >>> from skimage import data
    >>> kp = sift(data.camera(), max_features=50)
    >>> len(kp), kp.points.shape[1], kp.descriptors.shape[1], kp.descriptors.dtype
    (50, 2, 128, dtype('float32'))
    """
    image = check_image(image, channels=(1, 3))
    detector = cv2.SIFT_create(nfeatures=_check_max_features(max_features))
    kps, desc = detector.detectAndCompute(_gray(image), None)
    # SIFT may return a few more than asked when keypoints tie; keep the strongest
    kp = Keypoints._from_cv(kps, desc, detector="sift", width=128)
    if len(kp) > max_features:
        keep = np.argsort(-kp.response, kind="stable")[: int(max_features)]
        kp = Keypoints(
            kp.points[keep], kp.size[keep], kp.angle[keep], kp.response[keep], kp.descriptors[keep], "sift"
        )
    return kp


def orb(image: np.ndarray, *, max_features: int = 500) -> Keypoints:
    """Detect ORB keypoints and compute their 256-bit binary descriptors (:func:`cv2.ORB_create`).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image (RGB is converted to luma first).
    max_features : int, default 500
        Keep at most this many keypoints.

    Returns
    -------
    Keypoints
        ``points`` as (x, y), ``descriptors`` uint8 of shape (N, 32).

    Examples
    --------
    >>> from skimage import data
    >>> kp = orb(data.camera(), max_features=100)
    >>> len(kp) <= 100, kp.descriptors.shape[1], kp.descriptors.dtype
    (True, 32, dtype('uint8'))
    """
    image = check_image(image, channels=(1, 3))
    detector = cv2.ORB_create(nfeatures=_check_max_features(max_features))
    kps, desc = detector.detectAndCompute(_gray(image), None)
    return Keypoints._from_cv(kps, desc, detector="orb", width=32)


# ---------------------------------------------------------------- matching and geometry


def _descriptors(value: Any, *, name: str) -> np.ndarray:
    desc = value.descriptors if isinstance(value, Keypoints) else value
    if not isinstance(desc, np.ndarray) or desc.ndim != 2:
        shape = getattr(desc, "shape", type(desc).__name__)
        raise ShapeError(f"{name} must be Keypoints or an (N, D) descriptor array, got {shape}")
    if desc.dtype not in (np.float32, np.uint8):
        raise ShapeError(
            f"{name} descriptors must be float32 (SIFT) or uint8 (ORB), got {desc.dtype}"
        )
    return np.ascontiguousarray(desc)


def match_descriptors(
    a: Keypoints | np.ndarray,
    b: Keypoints | np.ndarray,
    *,
    ratio: float = 0.75,
    cross_check: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Match descriptors of ``a`` to ``b`` by brute force with Lowe's ratio test.

    The distance follows the descriptor dtype: L2 for float32 (SIFT), Hamming
    for uint8 (ORB). A match ``i -> j`` is kept when its distance is below
    ``ratio`` times the distance to the second-best candidate in ``b`` (a sole
    candidate passes), and, with ``cross_check``, when ``i`` is also the best
    match of ``j`` in ``a``.

    Parameters
    ----------
    a, b : Keypoints or ndarray of shape (N, D)
        Descriptors (float32 or uint8, the same dtype and D for both).
    ratio : float, default 0.75
        Lowe's ratio in (0, 1]; 1 turns the test off.
    cross_check : bool, default False
        Keep only mutual best matches.

    Returns
    -------
    matches : ndarray of shape (M, 2), int64
        Index pairs ``(i, j)``: descriptor ``a[i]`` matches ``b[j]``; sorted by distance.
    distances : ndarray of shape (M,), float32
        Descriptor distance of each match.

    Raises
    ------
    ShapeError
        If the descriptors have a bad shape, dtype, or differ between ``a`` and ``b``.

    Examples
    --------
    >>> d = np.eye(4, 8, dtype=np.float32)
    >>> m, dist = match_descriptors(d, d[::-1].copy())
    >>> m.tolist(), dist.tolist()
    ([[0, 3], [1, 2], [2, 1], [3, 0]], [0.0, 0.0, 0.0, 0.0])
    """
    da = _descriptors(a, name="a")
    db = _descriptors(b, name="b")
    if da.dtype != db.dtype or da.shape[1] != db.shape[1]:
        raise ShapeError(
            f"a and b descriptors differ: a is {da.dtype} (N, {da.shape[1]}), b is {db.dtype} (N, {db.shape[1]}); "
            "match SIFT with SIFT and ORB with ORB"
        )
    ratio = check_range(float(ratio), name="ratio", low=0.0, high=1.0)
    if ratio == 0:
        raise ConfigError("ratio must be in (0, 1], got 0")
    empty = (np.zeros((0, 2), np.int64), np.zeros((0,), np.float32))
    if len(da) == 0 or len(db) == 0:
        return empty
    norm = cv2.NORM_HAMMING if da.dtype == np.uint8 else cv2.NORM_L2
    matcher = cv2.BFMatcher(norm, crossCheck=False)
    pairs: list[tuple[int, int, float]] = []
    for cand in matcher.knnMatch(da, db, k=2):
        if not cand:
            continue
        best = cand[0]
        if len(cand) > 1 and ratio < 1.0 and not best.distance < ratio * cand[1].distance:
            continue
        pairs.append((best.queryIdx, best.trainIdx, float(best.distance)))
    if cross_check and pairs:
        back = {m.queryIdx: m.trainIdx for m in matcher.match(db, da)}
        pairs = [p for p in pairs if back.get(p[1]) == p[0]]
    if not pairs:
        return empty
    pairs.sort(key=lambda p: (p[2], p[0]))
    matches = np.array([(i, j) for i, j, _ in pairs], np.int64)
    distances = np.array([d for _, _, d in pairs], np.float32)
    return matches, distances


def _points(value: Any, *, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, Keypoints) else value.points.astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"{name} must have shape (N, 2) of (x, y) points, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ShapeError(f"{name} contains NaN or infinite coordinates")
    return arr


def find_homography(
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    *,
    ransac_threshold: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate the 3x3 homography mapping ``src_pts`` onto ``dst_pts`` with RANSAC.

    Calls :func:`cv2.findHomography` with ``cv2.RANSAC``.

    Parameters
    ----------
    src_pts, dst_pts : array-like of shape (N, 2)
        Matched points as ``(x, y)``, N >= 4; row ``k`` of each is one match
        (e.g. ``kp_a.points[matches[:, 0]]`` and ``kp_b.points[matches[:, 1]]``).
    ransac_threshold : float, default 3.0
        Largest reprojection error in pixels for a match to count as an inlier.

    Returns
    -------
    homography : ndarray of shape (3, 3), float64
        ``H`` with ``H[2, 2] == 1``; ``[x', y', w]^T = H [x, y, 1]^T`` maps src onto dst.
    inliers : ndarray of shape (N,), bool
        Which matches agree with ``H``.

    Raises
    ------
    ShapeError
        With fewer than 4 matches, mismatched lengths, or points too degenerate
        (e.g. collinear) for any homography.

    Examples
    --------
    >>> src = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5]], float)
    >>> H, inliers = find_homography(src, src + [2, 3])
    >>> np.round(H, 6).tolist()[0], bool(inliers.all())
    ([1.0, 0.0, 2.0], True)
    """
    src = _points(src_pts, name="src_pts")
    dst = _points(dst_pts, name="dst_pts")
    if src.shape[0] != dst.shape[0]:
        raise ShapeError(f"src_pts and dst_pts must have the same length, got {src.shape[0]} and {dst.shape[0]}")
    if src.shape[0] < 4:
        raise ShapeError(
            f"find_homography needs at least 4 point matches, got {src.shape[0]}; "
            "detect more keypoints (max_features) or loosen the ratio test"
        )
    check_range(float(ransac_threshold), name="ransac_threshold", low=0.0)
    H, mask = cv2.findHomography(src, dst, cv2.RANSAC, float(ransac_threshold))
    if H is None or mask is None:
        raise ShapeError(
            f"no homography fits the {src.shape[0]} point matches (degenerate, e.g. collinear or repeated points)"
        )
    return np.asarray(H, np.float64), mask.ravel().astype(bool)
