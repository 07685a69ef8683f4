"""Classical segmenters (Otsu, adaptive threshold, k-means, watershed) scored like a trained network.

A classical method gives each pixel a *category* (dark / bright side of a threshold, a k-means
cluster ranked by brightness, inside / outside a watershed region) that means nothing about the
dataset's classes. :func:`fit_classic_segmenter` learns the meaning on the **training** images:
the category -> class map with the best training mean IoU (a majority vote would maximise pixel
accuracy, and on imbalanced data give every category the largest class), and where a method has
options (window size, polarity, marker distance), the variant with the best training mean IoU is
kept. The fitted segmenter is then scored on the **val** (or test) images it never saw, under the
same metrics as a network (:mod:`pixlearn.tasks.segment.metrics`). The split plan is a trained
network's (:func:`~pixlearn.tasks.segment.data.plan_segment_splits`), so with the same seed and
fractions both are scored on the same images.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name
from pixlearn.tasks.segment.metrics import IGNORE_INDEX, SegmentationScorer, scores_from_confusion

__all__ = ["CLASSIC_SEGMENTERS", "ClassicSegmenter", "fit_classic_segmenter", "evaluate_classic_segmentation"]


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _otsu(image: np.ndarray, **_: Any) -> np.ndarray:
    from pixlearn.ops.threshold import otsu

    return (otsu(image) > 0).astype(np.int64)


def _adaptive(image: np.ndarray, *, ksize: int, **_: Any) -> np.ndarray:
    from pixlearn.ops.threshold import adaptive_threshold

    return (adaptive_threshold(image, ksize=ksize, offset=2.0) > 0).astype(np.int64)


def _kmeans(image: np.ndarray, *, k: int, **_: Any) -> np.ndarray:
    from pixlearn.ops.segment import kmeans_labels

    labels, centres = kmeans_labels(image, k=k, seed=0)
    rank = np.argsort(np.argsort(centres.astype(np.float64).mean(axis=1), kind="stable"), kind="stable")
    return rank[labels].astype(np.int64)  # clusters ranked darkest (0) to brightest


def _watershed(image: np.ndarray, *, invert: bool, min_distance: int, **_: Any) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    from pixlearn.ops.segment import watershed_labels

    labels = watershed_labels(image, min_distance=min_distance, invert=invert)
    inside = (labels > 0) & ~find_boundaries(labels, mode="inner")
    return inside.astype(np.int64)  # 1: inside a region, 0: background or a line between regions


@dataclass(frozen=True)
class _Method:
    fn: Callable[..., np.ndarray]
    variants: Callable[[int], list[dict[str, Any]]]
    categories: Callable[[int], int]
    doc: str


#: Every classical segmenter: its function, the option variants tried on the training images, its categories.
CLASSIC_SEGMENTERS: dict[str, _Method] = {
    "otsu": _Method(_otsu, lambda c: [{}], lambda c: 2, "Otsu's global threshold (dark / bright)"),
    "adaptive_threshold": _Method(
        _adaptive, lambda c: [{"ksize": k} for k in (11, 31, 61)], lambda c: 2,
        "local (Gaussian-weighted) threshold; window 11, 31 or 61 px chosen on train",
    ),
    "kmeans": _Method(_kmeans, lambda c: [{"k": c}], lambda c: c, "k-means colour clusters (k = number of classes), ranked by brightness"),
    "watershed": _Method(
        _watershed, lambda c: [{"invert": inv, "min_distance": d} for inv in (False, True) for d in (5, 10, 20)], lambda c: 2,
        "watershed of the Otsu foreground's distance transform: region interiors vs background and dividing lines; "
        "polarity and marker distance chosen on train",
    ),
}


@dataclass
class ClassicSegmenter:
    """A classical method with its options and its learned category -> class map.

    ``predict(image)`` returns the (H, W) class-id mask.
    """

    method: str
    params: dict[str, Any]
    mapping: list[int]
    num_classes: int
    fit_seconds: float = 0.0
    train_mean_iou: float | None = None
    tried: list[dict[str, Any]] = field(default_factory=list)

    def categories(self, image: np.ndarray) -> np.ndarray:
        return CLASSIC_SEGMENTERS[self.method].fn(image, **self.params)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """The class-id mask of one uint8 image.

        Examples
        --------
        >>> seg = ClassicSegmenter("otsu", {}, mapping=[1, 0], num_classes=2)  # dark pixels are class 1
        >>> seg.predict(np.array([[10, 10, 200, 200]], np.uint8)).tolist()
        [[1, 1, 0, 0]]
        """
        return np.asarray(self.mapping, np.int64)[self.categories(image)]


def _load(index: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
    sample = index.load(i)
    return sample.image, np.asarray(sample.mask).astype(np.int64)


def _mean_iou(table: np.ndarray, mapping: Sequence[int]) -> float:
    """Mean IoU of a category -> class map, from the (categories, classes) pixel counts alone."""
    c = table.shape[1]
    cm = np.zeros((c, c), np.int64)  # rows true, columns predicted
    for cat, k in enumerate(mapping):
        cm[:, k] += table[cat]
    m = scores_from_confusion(cm)["mean_iou"]
    return -1.0 if m is None else float(m)


def _best_mapping(table: np.ndarray, *, limit: int = 4096) -> tuple[list[int], float | None]:
    """The category -> class map with the best training mean IoU (every map when there are at most ``limit``).

    A majority vote per category maximises pixel accuracy instead, and on imbalanced data maps every
    category to the largest class; searching the maps avoids that. With too many maps to try, each
    category starts from its majority class and is then improved one category at a time.
    """
    import itertools

    n_cat, c = table.shape
    majority = [int(np.argmax(row)) if row.sum() else 0 for row in table]
    if c**n_cat <= limit:
        best = max(itertools.product(range(c), repeat=n_cat), key=lambda m: _mean_iou(table, m))
        mapping = [int(k) for k in best]
    else:
        mapping = majority
        improved = True
        while improved:
            improved = False
            for cat in range(n_cat):
                for k in range(c):
                    trial = mapping[:cat] + [k] + mapping[cat + 1:]
                    if _mean_iou(table, trial) > _mean_iou(table, mapping) + 1e-12:
                        mapping, improved = trial, True
    score = _mean_iou(table, mapping)
    return mapping, None if score < 0 else score


def fit_classic_segmenter(
    method: str,
    images: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
) -> ClassicSegmenter:
    """Fit ``method`` on (image, true mask) pairs: the category -> class map and the best option variant.

    Parameters
    ----------
    method : {"otsu", "adaptive_threshold", "kmeans", "watershed"}
    images : sequence of (image, mask)
        Training images (uint8) and their class-id masks.
    num_classes : int

    Returns
    -------
    ClassicSegmenter

    Examples
    --------
    >>> img = np.zeros((8, 8), np.uint8); img[:, 4:] = 200
    >>> mask = np.zeros((8, 8), int); mask[:, :4] = 1  # the dark half is the object
    >>> seg = fit_classic_segmenter("otsu", [(img, mask)], num_classes=2)
    >>> seg.mapping, seg.predict(img)[0].tolist()
    ([1, 0], [1, 1, 1, 1, 0, 0, 0, 0])
    """
    method = check_name(method, CLASSIC_SEGMENTERS, what="classical segmenter")
    if not images:
        raise ConfigError(f"{method}: no training images to fit the category -> class map on")
    spec = CLASSIC_SEGMENTERS[method]
    n_cat = spec.categories(num_classes)
    t0 = time.perf_counter()
    best: ClassicSegmenter | None = None
    tried = []
    for params in spec.variants(num_classes):
        table = np.zeros((n_cat, num_classes), np.int64)
        for image, mask in images:
            c = spec.fn(image, **params)
            keep = mask != ignore_index if ignore_index is not None else np.ones(mask.shape, bool)
            table += np.bincount(c[keep] * num_classes + mask[keep], minlength=n_cat * num_classes).reshape(n_cat, num_classes)
        mapping, miou = _best_mapping(table)
        tried.append({"params": params, "train_mean_iou": miou})
        if best is None or (miou or 0.0) > (best.train_mean_iou or 0.0):
            best = ClassicSegmenter(method, dict(params), mapping, num_classes, train_mean_iou=miou)
    assert best is not None
    best.fit_seconds = time.perf_counter() - t0
    best.tried = tried
    return best


def evaluate_classic_segmentation(
    data: str | os.PathLike[str] | Any,
    method: str,
    *,
    split: str = "auto",
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit a classical segmenter on a mask dataset's training images and score it on its val (or test) images.

    Parameters
    ----------
    data : path or DatasetIndex
        A mask dataset (see :func:`~pixlearn.tasks.segment.data.read_segment_dataset`).
    method : {"otsu", "adaptive_threshold", "kmeans", "watershed"}
    split : {"auto", "val", "test"}, default "auto"
        auto: the test split when there is one, else val.
    val_fraction, test_fraction, seed
        The split plan of ``pixlearn train segment`` (same values: same images).

    Returns
    -------
    dict
        The scores (:func:`~pixlearn.tasks.segment.metrics.scores_from_confusion`) with ``method``,
        ``params``, ``mapping``, ``split``, ``n``, ``fit_seconds``, ``predict_seconds``,
        ``train_mean_iou`` and ``source``.
    """
    from pixlearn.tasks.segment.data import plan_segment_splits, read_segment_dataset

    method = check_name(method, CLASSIC_SEGMENTERS, what="classical segmenter")
    index = read_segment_dataset(data)
    splits = plan_segment_splits(index, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    if split == "auto":
        name, idx = (splits.test_name, splits.test) if splits.test else ("val", splits.val)
    elif split == "val":
        name, idx = "val", splits.val
    elif split in ("test", "holdout"):
        name, idx = splits.test_name, splits.test
    else:
        raise ConfigError(f"split must be auto, val or test, got {split!r}")
    if not idx:
        raise ConfigError(f"{index.root}: no {name} images to score on; set val_fraction / test_fraction above 0 or add a {name}/ split")
    num_classes = len(index.classes)
    ignore = index.meta.get("ignore_index", IGNORE_INDEX)
    train = [_load(index, i) for i in splits.train]
    seg = fit_classic_segmenter(method, train, num_classes=num_classes, ignore_index=ignore)
    scorer = SegmentationScorer(num_classes=num_classes, classes=index.classes, ignore_index=ignore)
    t0 = time.perf_counter()
    for i in idx:
        image, mask = _load(index, i)
        scorer.update(seg.predict(image), mask)
    predict_seconds = time.perf_counter() - t0
    out = scorer.scores()
    out.update(
        method=method, params=seg.params, mapping=seg.mapping, split=name, fit_seconds=round(seg.fit_seconds, 3),
        predict_seconds=round(predict_seconds, 3), train_mean_iou=seg.train_mean_iou, train_images=len(train),
        source=f"{index.root}: {splits.sources.get(name, name)}; fitted on {len(train)} train images ({splits.sources.get('train', '')})",
        description=CLASSIC_SEGMENTERS[method].doc,
    )
    return out
