"""Mask values and instance masks: the one rule for what a semantic mask's values mean
(:func:`mask_coding`, :class:`MaskCoding`), and COCO-style segmentations (polygons, RLE) and back.

Semantic masks (:data:`MASK_RULE`): a dataset whose masks hold only the values 0 and 255 is
binary -- 0 background, 255 foreground (class 1) -- unless a class map names more than two
classes; in every other dataset a value is a class index and 255 marks pixels to ignore. The
mask-folder reader decides this once per dataset and records it in ``index.meta``; ``data
check``, ``data info``, training and prediction read it from there.

Coordinates are continuous pixels: pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``,
so its centre is ``(col + 0.5, row + 0.5)``. A polygon covers a pixel when the pixel's centre lies
inside it -- the same rule pycocotools uses, so masks match COCO evaluation.

RLE is COCO's run-length encoding in column-major (Fortran) order, counts alternating
background/foreground runs starting with background. Both the uncompressed form
(``{"size": [h, w], "counts": [int, ...]}``) and the compressed string form are read; pycocotools
is used when installed, otherwise a small pure-numpy codec that produces identical strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pixlearn._core.errors import ShapeError

__all__ = [
    "IGNORE_INDEX",
    "MASK_RULE",
    "MaskCoding",
    "mask_coding",
    "decode_segmentation",
    "decode_rle",
    "encode_rle",
    "mask_to_polygons",
    "segmentation_area",
    "segmentation_bbox",
    "rle_counts",
]


def _coco_mask():
    try:
        from pycocotools import mask as coco_mask
    except ImportError:  # optional: the pure-numpy codec below takes over
        return None
    return coco_mask


def _coco_decode(coco, rle: dict[str, Any]) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # pycocotools' decode trips numpy 2's __array__ copy deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco.decode(rle).astype(bool)


# ------------------------------------------------------------------ RLE strings (pycocotools' format)
def _counts_from_string(s: str | bytes) -> list[int]:
    """Decode COCO's compressed RLE string (LEB128-like, 6 bits per char, deltas from counts[i-2])."""
    data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p = 0
    n = len(data)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {chr(data[p])!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _counts_to_string(counts: Sequence[int]) -> str:
    """Encode run lengths as COCO's compressed RLE string (inverse of :func:`_counts_from_string`)."""
    out = bytearray()
    for i, c in enumerate(counts):
        x = int(c)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(ch + 48)
    return out.decode("ascii")


def rle_counts(rle: dict[str, Any]) -> list[int]:
    """The run lengths of an RLE dict, compressed or not.

    Examples
    --------
    >>> rle_counts({"size": [2, 2], "counts": [1, 2, 1]})
    [1, 2, 1]
    >>> rle_counts(encode_rle(np.array([[0, 1], [1, 0]], bool)))
    [1, 2, 1]
    """
    counts = rle.get("counts")
    if isinstance(counts, (str, bytes)):
        return _counts_from_string(counts)
    if isinstance(counts, (list, tuple)):
        return [int(c) for c in counts]
    raise ValueError(f"RLE 'counts' must be a string or a list of ints, got {type(counts).__name__}")


def _rle_size(rle: dict[str, Any]) -> tuple[int, int]:
    size = rle.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"RLE 'size' must be [height, width], got {size!r}")
    return int(size[0]), int(size[1])


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Decode one COCO RLE dict into a bool mask of its stated ``size``.

    Examples
    --------
    >>> decode_rle({"size": [2, 3], "counts": [1, 2, 3]}).astype(int).tolist()
    [[0, 1, 0], [1, 0, 0]]
    """
    h, w = _rle_size(rle)
    coco = _coco_mask()
    if coco is not None:
        counts = rle.get("counts")
        if isinstance(counts, (list, tuple)):
            if sum(int(c) for c in counts) != h * w:
                raise ValueError(f"RLE counts sum to {sum(counts)} but size {h}x{w} needs {h * w}")
            obj = coco.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
        elif isinstance(counts, (str, bytes)):
            counts_b = counts.encode("ascii") if isinstance(counts, str) else counts
            total = sum(_counts_from_string(counts_b))
            if total != h * w:
                raise ValueError(f"RLE counts sum to {total} but size {h}x{w} needs {h * w}")
            obj = {"size": [h, w], "counts": counts_b}
        else:
            rle_counts(rle)  # raises the explanatory error
        return _coco_decode(coco, obj)
    counts = rle_counts(rle)
    if any(c < 0 for c in counts):
        raise ValueError("RLE counts must not be negative")
    total = sum(counts)
    if total != h * w:
        raise ValueError(f"RLE counts sum to {total} but size {h}x{w} needs {h * w}")
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((w, h)).T.copy()


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a bool (H, W) mask as compressed COCO RLE: ``{"size": [h, w], "counts": str}``.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Non-zero pixels are foreground.

    Returns
    -------
    dict
        JSON-ready (``counts`` is a ``str``), identical to pycocotools' ``encode``.

    Examples
    --------
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> rle = encode_rle(m)
    >>> rle["size"], bool((decode_rle(rle) == m).all())
    ([4, 5], True)
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ShapeError(f"encode_rle takes one (H, W) mask, got shape {mask.shape}")
    h, w = mask.shape
    coco = _coco_mask()
    if coco is not None:
        rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}
    flat = mask.astype(bool).T.reshape(-1)
    counts: list[int] = []
    if flat.size:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        bounds = np.concatenate([[0], change, [flat.size]])
        runs = np.diff(bounds).tolist()
        counts = ([0] if flat[0] else []) + runs
    return {"size": [int(h), int(w)], "counts": _counts_to_string(counts)}


# ------------------------------------------------------------------ polygons
def _polygon_list(seg: Any) -> list[np.ndarray]:
    polys = []
    for poly in seg:
        arr = np.asarray(poly, dtype=np.float64).reshape(-1)
        if arr.size % 2:
            raise ValueError(f"a polygon needs x, y pairs; got {arr.size} numbers")
        if arr.size >= 6:
            polys.append(arr.reshape(-1, 2))
    return polys


def _fill_polygons(polys: list[np.ndarray], h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    if not polys:
        return mask
    coco = _coco_mask()
    if coco is not None:
        rles = coco.frPyObjects([p.reshape(-1).tolist() for p in polys], h, w)
        return _coco_decode(coco, coco.merge(rles))
    from skimage.draw import polygon as fill

    for p in polys:  # pixel centres at (c + 0.5, r + 0.5): shift the polygon by half a pixel
        rr, cc = fill(p[:, 1] - 0.5, p[:, 0] - 0.5, shape=(h, w))
        mask[rr, cc] = True
    return mask


def decode_segmentation(seg: Any, size: tuple[int, int]) -> np.ndarray:
    """Rasterise one COCO-style segmentation into a bool (H, W) mask.

    Parameters
    ----------
    seg : list of polygons, or RLE dict
        Polygons ``[[x1, y1, x2, y2, ...], ...]`` in continuous pixel coordinates (their union is
        the mask), or RLE ``{"size": [h, w], "counts": [...] or "str"}``. ``None`` or ``[]``
        gives an empty mask.
    size : (height, width)
        The image size; an RLE's own ``size`` must match it.

    Returns
    -------
    ndarray of shape (H, W), bool

    Raises
    ------
    ShapeError
        An RLE whose size differs from ``size``.
    ValueError
        A malformed polygon or RLE (odd number of coordinates, counts not summing to h*w).

    Examples
    --------
    >>> m = decode_segmentation([[1, 1, 4, 1, 4, 3, 1, 3]], (4, 6))
    >>> m.astype(int).tolist()
    [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
    >>> bool((decode_segmentation(encode_rle(m), (4, 6)) == m).all())
    True
    """
    h, w = int(size[0]), int(size[1])
    if seg is None or (isinstance(seg, (list, tuple)) and len(seg) == 0):
        return np.zeros((h, w), bool)
    if isinstance(seg, dict):
        rh, rw = _rle_size(seg)
        if (rh, rw) != (h, w):
            raise ShapeError(f"RLE size is {rw}x{rh} (w x h) but the image is {w}x{h}")
        return decode_rle(seg)
    if isinstance(seg, (list, tuple)):
        if all(isinstance(v, (int, float)) for v in seg):  # a single flat polygon
            seg = [seg]
        return _fill_polygons(_polygon_list(seg), h, w)
    raise ValueError(f"a segmentation is a list of polygons or an RLE dict, got {type(seg).__name__}")


def _drop_collinear(pts: np.ndarray) -> np.ndarray:
    while len(pts) > 3:
        prev = np.roll(pts, 1, axis=0)
        nxt = np.roll(pts, -1, axis=0)
        cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (nxt[:, 0] - pts[:, 0])
        keep = np.abs(cross) > 1e-9
        if keep.all() or keep.sum() < 3:
            break
        pts = pts[keep]
    return pts


def mask_to_polygons(mask: np.ndarray, *, tolerance: float = 0.0) -> list[list[float]]:
    """Outlines of a bool mask's parts as COCO polygons (holes are filled in).

    The outline runs half-way between foreground and background pixel centres (marching
    squares at level 0.5), so every foreground centre lies inside it and every background centre
    outside: ``decode_segmentation(mask_to_polygons(m), m.shape)`` gives back ``m`` exactly when
    ``m`` has no holes. Straight runs are merged into single edges.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
    tolerance : float, default 0
        Douglas-Peucker simplification in pixels (0 keeps the outline exact).

    Returns
    -------
    list of list of float
        ``[[x1, y1, x2, y2, ...], ...]`` in continuous pixel coordinates, one per part.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:3] = True
    >>> polys = mask_to_polygons(m)
    >>> len(polys), bool((decode_segmentation(polys, m.shape) == m).all())
    (1, True)
    """
    from skimage.measure import approximate_polygon, find_contours

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ShapeError(f"mask_to_polygons takes one (H, W) mask, got shape {mask.shape}")
    padded = np.pad(mask.astype(np.float32) > 0, 1).astype(np.float32)
    polys: list[list[float]] = []
    for c in find_contours(padded, 0.5):
        x = c[:, 1] - 1 + 0.5  # undo the padding, then index -> continuous (pixel centre at +0.5)
        y = c[:, 0] - 1 + 0.5
        signed = float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        if signed >= 0:  # a hole (wound the other way round)
            continue
        pts = np.stack([x, y], axis=1)
        if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
            pts = pts[:-1]
        pts = _drop_collinear(pts)
        if tolerance > 0 and len(pts) > 3:
            closed = approximate_polygon(np.concatenate([pts, pts[:1]]), tolerance=tolerance)
            pts = closed[:-1]
        if len(pts) >= 3:
            polys.append([round(float(v), 3) for v in pts.reshape(-1)])
    return polys


def segmentation_area(seg: Any, size: tuple[int, int] | None = None) -> float:
    """Foreground pixel count of a segmentation (RLE: from the counts; polygons: rasterised, or
    the shoelace area when ``size`` is unknown).

    Examples
    --------
    >>> segmentation_area([[0, 0, 4, 0, 4, 2, 0, 2]], (4, 4))
    8.0
    >>> segmentation_area({"size": [2, 2], "counts": [1, 3]})
    3.0
    """
    if not seg:
        return 0.0
    if isinstance(seg, dict):
        return float(sum(rle_counts(seg)[1::2]))
    if size is not None:
        return float(decode_segmentation(seg, size).sum())
    total = 0.0
    for p in _polygon_list(seg if not all(isinstance(v, (int, float)) for v in seg) else [seg]):
        x, y = p[:, 0], p[:, 1]
        total += 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return total


def segmentation_bbox(seg: Any) -> np.ndarray | None:
    """The xyxy extent of a segmentation (polygon vertices, or the RLE's foreground pixels).

    Examples
    --------
    >>> segmentation_bbox([[1, 2, 5, 2, 3, 7]]).tolist()
    [1.0, 2.0, 5.0, 7.0]
    """
    if not seg:
        return None
    if isinstance(seg, dict):
        m = decode_rle(seg)
        if not m.any():
            return None
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)
    polys = _polygon_list(seg if not all(isinstance(v, (int, float)) for v in seg) else [seg])
    if not polys:
        return None
    pts = np.concatenate(polys)
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


# ------------------------------------------------------------------ semantic mask values: the one rule
#: The mask value that marks pixels to leave out of the loss and the metrics (not a class).
IGNORE_INDEX = 255

#: The rule, as shown in ``--help`` of ``data check``, ``data info`` and ``train segment``.
MASK_RULE = (
    "Mask values: if every mask holds only 0 and 255 (and the class map, if any, names two classes), "
    "the set is binary: 0 is background, 255 is foreground (class 1). Otherwise each value is a class "
    "index (0, 1, 2, ...) and 255 marks pixels to ignore. Palette PNG masks are read by index, not colour."
)


@dataclass(frozen=True)
class MaskCoding:
    """How a dataset's stored mask values map to class ids -- decided once by :func:`mask_coding`.

    ``kind`` is ``"binary255"`` (0 = background, 255 = class 1, nothing ignored) or ``"index"``
    (value = class id, :data:`IGNORE_INDEX` ignored). Readers, ``data check``, training and
    prediction all use this one object, so they cannot disagree about 255.
    """

    kind: Literal["binary255", "index"] = "index"

    @property
    def ignore_index(self) -> int | None:
        """The stored value that is not a class (``None`` for a binary 0/255 set)."""
        return None if self.kind == "binary255" else IGNORE_INDEX

    @property
    def values(self) -> dict[int, int] | None:
        """Stored value -> class id where they differ (``{0: 0, 255: 1}`` for binary sets), else ``None``."""
        return {0: 0, 255: 1} if self.kind == "binary255" else None

    def to_class_ids(self, mask: np.ndarray) -> np.ndarray:
        """Stored values -> class ids (the ignore value stays as it is).

        Examples
        --------
        >>> MaskCoding("binary255").to_class_ids(np.array([0, 255], np.uint8)).tolist()
        [0, 1]
        """
        values = self.values
        if not values:
            return mask
        lut = np.arange(65536 if mask.dtype == np.uint16 else 256, dtype=mask.dtype)
        for stored, cls in values.items():
            lut[stored] = cls
        return lut[mask]

    def to_stored(self, class_ids: np.ndarray) -> np.ndarray:
        """Class ids -> the dataset's own stored values (for writing predicted masks).

        Examples
        --------
        >>> MaskCoding("binary255").to_stored(np.array([0, 1], np.uint8)).tolist()
        [0, 255]
        >>> MaskCoding("index").to_stored(np.array([0, 2], np.uint8)).tolist()
        [0, 2]
        """
        if self.kind == "binary255":
            return np.where(np.asarray(class_ids) > 0, 255, 0).astype(np.uint8)
        return np.asarray(class_ids)

    def classes_present(self, values: Iterable[int]) -> set[int]:
        """The class ids that stored ``values`` stand for (the ignore value left out).

        Examples
        --------
        >>> sorted(MaskCoding("binary255").classes_present([0, 255]))
        [0, 1]
        >>> sorted(MaskCoding("index").classes_present([0, 2, 255]))
        [0, 2]
        """
        values_map = self.values or {}
        ignore = self.ignore_index
        return {values_map.get(int(v), int(v)) for v in values if int(v) != ignore}

    def to_meta(self) -> dict[str, Any]:
        """The ``DatasetIndex.meta`` entries that carry this coding."""
        return {"mask_coding": self.kind, "mask_values": self.values, "ignore_index": self.ignore_index}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> MaskCoding:
        """The coding recorded in a dataset's ``meta`` or a run's model card (index coding when absent)."""
        meta = meta or {}
        kind = meta.get("mask_coding")
        if kind is None and meta.get("mask_values"):  # older indexes: {0: 0, 255: 1}
            values = {int(k): int(v) for k, v in dict(meta["mask_values"]).items()}
            kind = "binary255" if values == {0: 0, 255: 1} else "index"
        if kind not in (None, "binary255", "index"):
            raise ValueError(f"unknown mask coding {kind!r}; expected 'binary255' or 'index'")
        return cls(kind or "index")


def mask_coding(values: Iterable[int], *, num_classes: int | None = None) -> MaskCoding:
    """Decide a dataset's mask coding from the set of values its masks hold (see :data:`MASK_RULE`).

    Parameters
    ----------
    values : iterable of int
        Every value seen in the dataset's masks.
    num_classes : int, optional
        The number of classes a class map names (``None``: no class map).

    Examples
    --------
    >>> mask_coding({0, 255}).kind, mask_coding({0, 1, 255}).kind, mask_coding({0, 255}, num_classes=3).kind
    ('binary255', 'index', 'index')
    >>> mask_coding({0}).kind
    'index'
    """
    seen = {int(v) for v in values}
    binary = IGNORE_INDEX in seen and seen <= {0, IGNORE_INDEX} and num_classes in (None, 2)
    return MaskCoding("binary255" if binary else "index")
