"""Tiled (SAHI-style sliced) detection: run any :class:`~pixlearn.tasks.detect.detections.Detector` on overlapping
windows of a large image, and on the whole image, then merge the boxes.

* :func:`tile_windows` -- the ``(x0, y0, x1, y1)`` windows of ``tile`` pixels that cover an image with a given overlap
  fraction (the last window of a row or column flush with the image edge).
* :class:`TiledDetector` -- a :class:`Detector` wrapping another one: every window is detected at the wrapped
  detector's own resolution (so small objects keep their pixels), boxes and masks are shifted back to the image,
  and the candidates are merged:

  1. a box that touches an *inner* window edge (one that is not the image border) is an object cut by the window;
     it is dropped when a whole box of the same class covers at least half of it (intersection over the cut box's
     own area >= 0.5), since that box saw the entire object;
  2. the cut boxes that remain (an object larger than the overlap, seen only in pieces) are stitched greedily per
     class into their union when pieces from different windows overlap and line up (their extents along one axis
     share at least half of the shorter one);
  3. class-wise NMS (:func:`torchvision.ops.batched_nms`) at ``iou`` over everything kept, then ``score`` and
  ``max_detections``.

* :func:`check_detect_options` -- the documented bounds of every detection inference option, as typed errors.

An image no larger than one tile is passed through to the wrapped detector unchanged.

Examples
--------
>>> tile_windows(100, 300, 128, 0.25)
[(0, 0, 128, 100), (96, 0, 224, 100), (172, 0, 300, 100)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.detect.detections import Detections, Detector

__all__ = ["TILE_RANGE", "OVERLAP_RANGE", "MAX_DETECTIONS", "tile_windows", "TiledDetector", "check_detect_options",
           "check_tiling"]

#: Allowed tile sizes (pixels) and overlap fractions.
TILE_RANGE = (64, 4096)
OVERLAP_RANGE = (0.0, 0.9)
#: The most detections one image may return.
MAX_DETECTIONS = 1000
#: Pixels from an inner window edge within which a box counts as cut by that edge.
_EDGE_MARGIN = 2.0


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return v


def check_detect_options(score: Any = 0.25, iou: Any = 0.5, max_detections: Any = 100) -> tuple[float, float, int]:
    """``(score, iou, max_detections)`` checked against their bounds: score in [0, 1], iou in (0, 1],
    max_detections an integer in [1, 1000].

    >>> check_detect_options(0.3, 0.6, 50)
    (0.3, 0.6, 50)
    >>> check_detect_options(score=1.5)
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: score must be in [0, 1] (a detection's minimum confidence), got 1.5; e.g. --score 0.25
    """
    s = _number(score, "score")
    if not 0.0 <= s <= 1.0:
        raise ConfigError(f"score must be in [0, 1] (a detection's minimum confidence), got {score}; e.g. --score 0.25")
    i = _number(iou, "iou")
    if not 0.0 < i <= 1.0:
        raise ConfigError(f"iou must be in (0, 1] (the NMS overlap above which the weaker box is dropped), got {iou}; "
                          "e.g. --iou 0.5")
    m = _number(max_detections, "max_detections")
    if m != int(m) or not 1 <= m <= MAX_DETECTIONS:
        raise ConfigError(f"max_detections must be an integer in [1, {MAX_DETECTIONS}], got {max_detections}; "
                          "e.g. --max-detections 100")
    return s, i, int(m)


def check_tiling(tile: Any, overlap: Any = 0.2) -> tuple[int, float]:
    """``(tile, overlap)`` checked: tile an integer in [64, 4096] pixels, overlap a fraction in [0, 0.9].

    >>> check_tiling(512, 0.2)
    (512, 0.2)
    """
    t = _number(tile, "tile")
    if t != int(t) or not TILE_RANGE[0] <= t <= TILE_RANGE[1]:
        raise ConfigError(f"tile must be an integer in [{TILE_RANGE[0]}, {TILE_RANGE[1]}] pixels, got {tile}; "
                          "e.g. --tile 640 (about the detector's input size)")
    o = _number(overlap, "overlap")
    if not OVERLAP_RANGE[0] <= o <= OVERLAP_RANGE[1]:
        raise ConfigError(f"overlap must be a fraction of the tile in [{OVERLAP_RANGE[0]}, {OVERLAP_RANGE[1]}], got {overlap}; "
                          "e.g. 0.2")
    return int(t), o


def _starts(length: int, tile: int, overlap_px: int) -> list[int]:
    if tile >= length:
        return [0]
    stride = max(tile - overlap_px, 1)
    n = -(-(length - tile) // stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


def tile_windows(h: int, w: int, tile: int, overlap: float = 0.2) -> list[tuple[int, int, int, int]]:
    """The ``(x0, y0, x1, y1)`` windows of at most ``tile`` x ``tile`` pixels covering an ``h`` x ``w`` image.

    Neighbouring windows share at least ``round(tile * overlap)`` pixels; the last window of each row and column ends
    exactly at the image edge; an image side shorter than ``tile`` gets one window of its own length. Windows are
    listed row by row.

    Parameters
    ----------
    h, w : int
        Image height and width (pixels, >= 1).
    tile : int
        Window side, in [64, 4096].
    overlap : float
        Shared fraction of a window, in [0, 0.9].

    Examples
    --------
    >>> tile_windows(64, 64, 128, 0.2)
    [(0, 0, 64, 64)]
    >>> [w[0] for w in tile_windows(100, 300, 100, 0.0)]
    [0, 100, 200]
    """
    tile, overlap = check_tiling(tile, overlap)
    if int(h) < 1 or int(w) < 1:
        raise ConfigError(f"image size must be positive, got {h} x {w}")
    ov = int(round(tile * overlap))
    ys = _starts(int(h), tile, ov)
    xs = _starts(int(w), tile, ov)
    return [(x0, y0, min(x0 + tile, int(w)), min(y0 + tile, int(h))) for y0 in ys for x0 in xs]


def _cut_flags(boxes: np.ndarray, window: tuple[int, int, int, int], h: int, w: int) -> np.ndarray:
    """Which image-coordinate boxes touch an inner edge of ``window`` (an edge that is not the image border)."""
    x0, y0, x1, y1 = window
    m = _EDGE_MARGIN
    cut = np.zeros(len(boxes), bool)
    if x0 > 0:
        cut |= boxes[:, 0] <= x0 + m
    if y0 > 0:
        cut |= boxes[:, 1] <= y0 + m
    if x1 < w:
        cut |= boxes[:, 2] >= x1 - m
    if y1 < h:
        cut |= boxes[:, 3] >= y1 - m
    return cut


def _inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection areas of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


class TiledDetector:
    """A :class:`Detector` that slices each image into overlapping windows (and, by default, also sees it whole).

    Parameters
    ----------
    detector : Detector
        Any detector; each window is passed to it as an image of its own.
    tile : int
        Window side in pixels, [64, 4096] (about the wrapped detector's input size works best).
    overlap : float, default 0.2
        Shared fraction of neighbouring windows, [0, 0.9]; objects smaller than the overlap are always seen whole
        in some window.
    full_image : bool, default True
        Also detect on the whole image (SAHI's "standard prediction"), which finds the objects larger than a window.
    batch : int, default 8
        Windows per call of the wrapped detector.

    Examples
    --------
    >>> class One:  # a detector that finds one 10 x 10 "dot" in the middle of whatever it is given
    ...     class_names, name = ("dot",), "one"
    ...     def predict(self, images, *, score=0.25, iou=0.5, max_detections=100):
    ...         return [Detections([[im.shape[1] / 2 - 5, im.shape[0] / 2 - 5, im.shape[1] / 2 + 5, im.shape[0] / 2 + 5]],
    ...                            [0.9], [0], self.class_names) for im in images]
    >>> d = TiledDetector(One(), tile=100, overlap=0.0, full_image=False).predict([np.zeros((100, 200, 3), np.uint8)])[0]
    >>> d.boxes.tolist(), d.meta["tiles"]
    ([[45.0, 45.0, 55.0, 55.0], [145.0, 45.0, 155.0, 55.0]], 2)
    """

    def __init__(self, detector: Detector, *, tile: int, overlap: float = 0.2, full_image: bool = True, batch: int = 8) -> None:
        if not hasattr(detector, "predict") or not hasattr(detector, "class_names"):
            raise ConfigError(f"TiledDetector wraps a Detector (class_names, name, predict), got {type(detector).__name__}")
        self.tile, self.overlap = check_tiling(tile, overlap)
        self.detector = detector
        self.full_image = bool(full_image)
        self.batch = max(1, int(batch))
        self.class_names = tuple(detector.class_names)
        self.name = f"{getattr(detector, 'name', 'detector')}@tile{self.tile}"

    def __getattr__(self, name: str) -> Any:
        """Anything else (``masks``, ``category_ids``, ``img_size``...) is the wrapped detector's."""
        if name.startswith("__") or name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)

    def windows(self, h: int, w: int) -> list[tuple[int, int, int, int]]:
        """The windows of an ``h`` x ``w`` image (see :func:`tile_windows`)."""
        return tile_windows(h, w, self.tile, self.overlap)

    def predict(self, images: Sequence[np.ndarray], *, score: float = 0.25, iou: float = 0.5,
                max_detections: int = 100) -> list[Detections]:
        """Detect in each RGB uint8 (H, W, 3) image window by window; boxes (and masks) on the image's own pixels."""
        score, iou, max_detections = check_detect_options(score, iou, max_detections)
        return [self._predict_one(np.asarray(im), score, iou, max_detections) for im in images]

    def _run(self, crops: list[np.ndarray], score: float, iou: float, max_detections: int) -> list[Detections]:
        out: list[Detections] = []
        for start in range(0, len(crops), self.batch):
            out.extend(self.detector.predict(crops[start:start + self.batch], score=score, iou=iou,
                                             max_detections=max_detections))
        return out

    def _predict_one(self, image: np.ndarray, score: float, iou: float, max_detections: int) -> Detections:
        if image.ndim < 2:
            raise ConfigError(f"detectors take RGB uint8 (H, W, 3) images, got shape {image.shape}")
        h, w = int(image.shape[0]), int(image.shape[1])
        windows = self.windows(h, w)
        if len(windows) == 1:
            det = self._run([image], score, iou, max_detections)[0]
            return Detections(det.boxes, det.scores, det.labels, self.class_names, det.masks, {**det.meta, "tiles": 1})
        crops = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in windows]
        per_window = self._run(crops, score, iou, max_detections)
        boxes, scores, labels, cut, source = [], [], [], [], []
        parts: list[tuple[Detections, tuple[int, int, int, int]]] = []  # (detections, window) in candidate order
        for k, (win, det) in enumerate(zip(windows, per_window, strict=True)):
            x0, y0, x1, y1 = win
            b = det.boxes + np.array([x0, y0, x0, y0], np.float32)
            boxes.append(b)
            scores.append(det.scores)
            labels.append(det.labels)
            cut.append(_cut_flags(b, win, h, w))
            source.append(np.full(len(det), k, np.int64))
            parts.append((det, win))
        if self.full_image:
            det = self._run([image], score, iou, max_detections)[0]
            boxes.append(det.boxes)
            scores.append(det.scores)
            labels.append(det.labels)
            cut.append(np.zeros(len(det), bool))
            source.append(np.full(len(det), len(windows), np.int64))
            parts.append((det, (0, 0, w, h)))
        b = np.concatenate(boxes).astype(np.float32)
        s = np.concatenate(scores).astype(np.float32)
        lab = np.concatenate(labels).astype(np.int64)
        b, s, lab, idx, groups = _merge(b, s, lab, np.concatenate(cut), np.concatenate(source), iou)
        order = np.argsort(-s[idx], kind="stable")[:max_detections]
        idx = idx[order]
        masks = None
        if all(d.masks is not None for d, _ in parts):  # pasted back only for the kept detections
            masks = np.stack([_paste(parts, [int(i), *groups.get(int(i), [])], h, w) for i in idx]) if len(idx) \
                else np.zeros((0, h, w), bool)
        out = Detections(b[idx], s[idx], lab[idx], self.class_names, masks,
                         {"tiles": len(windows), "full_image": self.full_image})
        return out.filter(min_score=score, max_detections=max_detections)


def _paste(parts: list[tuple[Detections, tuple[int, int, int, int]]], candidates: list[int], h: int, w: int) -> np.ndarray:
    """The (h, w) union of the masks of ``candidates`` (indices into the concatenated detections of ``parts``), each
    pasted at its window."""
    full = np.zeros((h, w), bool)
    for c in candidates:
        for det, (x0, y0, x1, y1) in parts:
            if c < len(det):
                full[y0:y1, x0:x1] |= det.masks[c, : y1 - y0, : x1 - x0]  # type: ignore[index]
                break
            c -= len(det)
    return full


def _lined_up(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two xyxy boxes intersect and share at least half the shorter extent along one axis (two pieces of one
    object cut by a window edge)."""
    ox = min(a[2], b[2]) - max(a[0], b[0])
    oy = min(a[3], b[3]) - max(a[1], b[1])
    if ox <= 0 or oy <= 0:
        return False
    wx = max(min(a[2] - a[0], b[2] - b[0]), 1e-6)
    wy = max(min(a[3] - a[1], b[3] - b[1]), 1e-6)
    return bool(ox / wx >= 0.5 or oy / wy >= 0.5)


def _merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, cut: np.ndarray, source: np.ndarray,
           iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Drop cut boxes covered by whole ones, stitch the remaining cut pieces, then class-wise NMS (see the module doc).

    Returns the (stitched) boxes, scores and labels of every candidate, the indices kept, and for each stitched
    candidate the pieces stitched into it.
    """
    import torch
    from torchvision.ops import batched_nms

    whole = np.flatnonzero(~cut)
    pieces = np.flatnonzero(cut)
    if len(pieces) and len(whole):
        inter = _inter(boxes[pieces], boxes[whole])
        ios = inter / np.maximum(_area(boxes[pieces])[:, None], 1e-6)
        same = labels[pieces][:, None] == labels[whole][None, :]
        pieces = pieces[~((ios >= 0.5) & same).any(1)]
    # greedy stitching of the remaining pieces (highest score first); a stitched box keeps growing, and keeps the
    # strongest piece's window, so a third window's piece may still join it
    b, s, lab = boxes.copy(), scores.copy(), labels.copy()
    groups: dict[int, list[int]] = {}
    merged_away: set[int] = set()
    order = [int(i) for i in pieces[np.argsort(-scores[pieces], kind="stable")]]
    for i in order:
        if i in merged_away:
            continue
        for j in order:
            if j == i or j in merged_away or lab[j] != lab[i] or source[j] == source[i]:
                continue
            if _lined_up(b[i], b[j]):
                b[i] = [min(b[i, 0], b[j, 0]), min(b[i, 1], b[j, 1]), max(b[i, 2], b[j, 2]), max(b[i, 3], b[j, 3])]
                s[i] = max(s[i], s[j])
                groups.setdefault(i, []).append(j)
                merged_away.add(j)
    keep = np.concatenate([whole, np.array([i for i in order if i not in merged_away], np.int64)]).astype(np.int64)
    if not len(keep):
        return b, s, lab, keep, groups
    kept = batched_nms(torch.from_numpy(b[keep]), torch.from_numpy(s[keep]), torch.from_numpy(lab[keep]), float(iou)).numpy()
    return b, s, lab, keep[kept], groups
