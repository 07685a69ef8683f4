"""Draw keypoints, matches, edges and segments over images, for looking at results.

Every function returns a new uint8 (H, W, 3) RGB image and leaves its inputs
untouched. They take a second array (keypoints, an edge map, labels), so they
are plain functions rather than registered ops.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops.features import Keypoints

__all__ = ["draw_keypoints", "draw_matches", "overlay_edges", "overlay_segments"]


def _rgb_copy(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """A contiguous RGB copy of a checked uint8 grey or RGB image."""
    image = check_image(image, name=name, channels=(1, 3))
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2))
    return image.copy(order="C")


def _color(value: Any, *, name: str = "color") -> tuple[int, int, int]:
    try:
        rgb = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an (r, g, b) triple of ints in 0..255, got {value!r}") from None
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ConfigError(f"{name} must be an (r, g, b) triple of ints in 0..255, got {value!r}")
    return rgb  # type: ignore[return-value]


def _cv_keypoints(kp: Keypoints, *, name: str) -> list[cv2.KeyPoint]:
    if not isinstance(kp, Keypoints):
        raise ShapeError(f"{name} must be Keypoints (from sift() or orb()), got {type(kp).__name__}")
    return [
        cv2.KeyPoint(float(x), float(y), float(max(s, 1.0)), float(a), float(r))
        for (x, y), s, a, r in zip(kp.points, kp.size, kp.angle, kp.response)
    ]


def draw_keypoints(
    image: np.ndarray,
    keypoints: Keypoints,
    *,
    color: tuple[int, int, int] = (0, 255, 0),
) -> np.ndarray:
    """Draw each keypoint as a circle of its size with a line showing its orientation.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image the keypoints were found in.
    keypoints : Keypoints
        From :func:`~pixlearn.ops.features.sift` or :func:`~pixlearn.ops.features.orb`.
    color : tuple of int (r, g, b), default (0, 255, 0)
        Drawing colour.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new RGB image.

    Examples
    --------
    >>> from pixlearn.ops.features import orb
    >>> from skimage import data
    >>> img = data.camera()
    >>> out = draw_keypoints(img, orb(img, max_features=20))
    >>> out.shape, out.dtype, bool((out != img[..., None]).any())
    ((512, 512, 3), dtype('uint8'), True)
    """
    canvas = _rgb_copy(image)
    kps = _cv_keypoints(keypoints, name="keypoints")
    return cv2.drawKeypoints(
        canvas, kps, canvas, color=_color(color), flags=cv2.DRAW_MATCHES_FLAGS_DRAW_RICH_KEYPOINTS
    )


def draw_matches(
    image_a: np.ndarray,
    kp_a: Keypoints,
    image_b: np.ndarray,
    kp_b: Keypoints,
    matches: np.ndarray,
    *,
    color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Put two images side by side and join each matched keypoint pair with a line.

    Parameters
    ----------
    image_a, image_b : ndarray of shape (H, W) or (H, W, 3), uint8
        The two images.
    kp_a, kp_b : Keypoints
        Their keypoints.
    matches : ndarray of shape (M, 2), int
        Index pairs ``(i, j)``: ``kp_a[i]`` matches ``kp_b[j]`` (from
        :func:`~pixlearn.ops.features.match_descriptors`).
    color : tuple of int (r, g, b) or None, default None
        Line colour; ``None`` draws each match in a random colour.

    Returns
    -------
    ndarray of shape (max(Ha, Hb), Wa + Wb, 3), uint8
        A new RGB image, ``image_a`` on the left.

    Examples
    --------
    >>> from pixlearn.ops.features import orb, match_descriptors
    >>> from skimage import data
    >>> img = data.camera()
    >>> kp = orb(img, max_features=50)
    >>> m, _ = match_descriptors(kp, kp)
    >>> draw_matches(img, kp, img[:300], kp, m[:0]).shape
    (512, 1024, 3)
    """
    a = _rgb_copy(image_a, name="image_a")
    b = _rgb_copy(image_b, name="image_b")
    ka = _cv_keypoints(kp_a, name="kp_a")
    kb = _cv_keypoints(kp_b, name="kp_b")
    pairs = np.asarray(matches)
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ShapeError(f"matches must be an (M, 2) integer array of index pairs, got {pairs.shape} {pairs.dtype}")
    if len(pairs) and (
        pairs.min() < 0 or pairs[:, 0].max() >= len(ka) or pairs[:, 1].max() >= len(kb)
    ):
        raise ShapeError(
            f"matches index past the keypoints: kp_a has {len(ka)}, kp_b has {len(kb)}, "
            f"matches reach ({int(pairs[:, 0].max())}, {int(pairs[:, 1].max())})"
        )
    dm = [cv2.DMatch(int(i), int(j), 0.0) for i, j in pairs]
    match_color = _color(color) if color is not None else (-1, -1, -1, -1)
    out = cv2.drawMatches(
        a, ka, b, kb, dm, None, matchColor=match_color, flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS
    )
    return np.ascontiguousarray(out[..., :3], dtype=np.uint8)


def overlay_edges(
    image: np.ndarray,
    edges: np.ndarray,
    *,
    color: tuple[int, int, int] = (255, 0, 0),
) -> np.ndarray:
    """Paint the non-zero pixels of an edge map over an image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image.
    edges : ndarray of shape (H, W), bool or uint8
        Edge map (e.g. from Canny); every non-zero pixel is painted.
    color : tuple of int (r, g, b), default (255, 0, 0)
        Paint colour.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new RGB image.

    Examples
    --------
    >>> img = np.zeros((4, 4), np.uint8)
    >>> e = np.zeros((4, 4), bool); e[1, 2] = True
    >>> overlay_edges(img, e)[1, 2].tolist(), overlay_edges(img, e)[0, 0].tolist()
    ([255, 0, 0], [0, 0, 0])
    """
    canvas = _rgb_copy(image)
    if not isinstance(edges, np.ndarray) or edges.shape != canvas.shape[:2]:
        shape = getattr(edges, "shape", type(edges).__name__)
        raise ShapeError(f"edges must have the image's shape {canvas.shape[:2]}, got {shape}")
    if edges.dtype != np.bool_ and edges.dtype != np.uint8:
        raise ShapeError(f"edges must be bool or uint8, got {edges.dtype}")
    canvas[edges.astype(bool)] = _color(color)
    return canvas


def overlay_segments(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    alpha: float = 0.4,
    boundaries: bool = True,
) -> np.ndarray:
    """Tint each segment of a label image in its own colour and outline the segments.

    Calls :func:`skimage.color.label2rgb` (every label is tinted, label 0
    included) and :func:`skimage.segmentation.mark_boundaries` (yellow outlines).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image.
    labels : ndarray of shape (H, W), int
        Segment label of each pixel (e.g. from SLIC, watershed or k-means).
    alpha : float, default 0.4
        Opacity of the tint in [0, 1]; 0 leaves the colours as they are.
    boundaries : bool, default True
        Draw segment outlines.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new RGB image.

    Examples
    --------
    >>> img = np.full((8, 8, 3), 128, np.uint8)
    >>> lab = np.zeros((8, 8), int); lab[:, 4:] = 1
    >>> out = overlay_segments(img, lab)
    >>> out.shape, out.dtype, bool((out != img).any())
    ((8, 8, 3), dtype('uint8'), True)
    """
    canvas = _rgb_copy(image)
    lab = np.asarray(labels)
    if lab.shape != canvas.shape[:2]:
        raise ShapeError(f"labels must have the image's shape {canvas.shape[:2]}, got {lab.shape}")
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        raise ShapeError(f"labels must be an integer array, got {lab.dtype}")
    alpha = check_range(float(alpha), name="alpha", low=0.0, high=1.0)
    from skimage.color import label2rgb
    from skimage.segmentation import mark_boundaries

    lab = lab.astype(np.int64)
    out = canvas.astype(np.float64) / 255.0
    if alpha > 0:
        out = label2rgb(lab, out, alpha=alpha, bg_label=-1, image_alpha=1.0, kind="overlay", saturation=1.0)
    if boundaries:
        out = mark_boundaries(out, lab, color=(1.0, 1.0, 0.0), mode="inner")
    return np.clip(np.rint(np.asarray(out) * 255.0), 0, 255).astype(np.uint8)
