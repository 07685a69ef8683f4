"""Semantic segmentation metrics from a confusion matrix: per-class IoU and Dice, mean IoU, pixel accuracy (no torch).

Every score comes from one confusion matrix summed over all the pixels of all the images scored
(the usual dataset-level definition, as in PASCAL VOC and Cityscapes), so a large image weighs
more than a small one. Pixels whose true label is ``ignore_index`` (255 by default) are left out.

Empty classes: a class absent from both the truth and the prediction has no IoU or Dice (its
union is empty): it is reported as ``None`` and left out of the means, never counted as 0 or 1.
A class that is absent from the truth but predicted somewhere scores 0.

Examples
--------
>>> import numpy as np
>>> true = np.array([[0, 0, 1, 1]])
>>> pred = np.array([[0, 1, 1, 1]])
>>> m = segmentation_metrics(pred, true, num_classes=2)
>>> m["per_class"]["1"]["iou"], m["per_class"]["1"]["dice"], m["pixel_accuracy"]
(0.6666666666666666, 0.8, 0.75)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError

__all__ = [
    "IGNORE_INDEX",
    "SegmentationScorer",
    "confusion_matrix",
    "scores_from_confusion",
    "segmentation_metrics",
    "HEADLINE_SEGMENTATION",
]

#: The conventional "ignore" label of semantic masks.
IGNORE_INDEX = 255
#: Scalar metrics shown first in tables and reports, in order.
HEADLINE_SEGMENTATION = ("mean_iou", "mean_dice", "pixel_accuracy", "foreground_iou", "foreground_dice")


def confusion_matrix(pred: np.ndarray, true: np.ndarray, *, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """The (C, C) int64 confusion matrix of one prediction: rows are true classes, columns predicted ones.

    Parameters
    ----------
    pred, true : ndarray of shape (H, W) (or any equal shapes), integer
        Class ids per pixel. ``true`` may hold ``ignore_index``, which is skipped; any other value
        outside ``0..num_classes-1`` in either array is an error.
    num_classes : int
    ignore_index : int or None, default 255

    Raises
    ------
    ShapeError
        Shapes differ or the arrays are not integer.
    ConfigError
        A class id out of range.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 255]), num_classes=2).tolist()
    [[1, 1], [0, 1]]
    """
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ShapeError(f"prediction and truth must have the same shape, got {pred.shape} and {true.shape}")
    for name, a in (("prediction", pred), ("truth", true)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise ShapeError(f"the {name} must hold integer class ids, got {a.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    t = true.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    for name, a in (("truth", t), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            bad = int(a.max() if a.max() >= num_classes else a.min())
            raise ConfigError(
                f"the {name} holds class id {bad}, outside 0..{num_classes - 1} ({num_classes} classes)"
                + (f"; {ignore_index} is the ignore label" if ignore_index is not None else "")
            )
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def _none(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def scores_from_confusion(cm: np.ndarray, *, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Every segmentation score of a (C, C) confusion matrix (rows true, columns predicted).

    Returns
    -------
    dict
        ``mean_iou``, ``mean_dice`` (means over classes with a defined score), ``pixel_accuracy``,
        ``mean_class_accuracy``, ``frequency_weighted_iou``, ``foreground_iou`` /
        ``foreground_dice`` (binary: class 1; several classes: classes 1..C-1 merged against
        class 0), ``pixels`` (scored pixels), ``num_classes``, ``classes`` and ``per_class``:
        ``{name: {"iou", "dice", "precision", "recall", "true_pixels", "predicted_pixels"}}``
        (``None`` where undefined), plus ``confusion_matrix``.

    Examples
    --------
    >>> m = scores_from_confusion(np.array([[5, 0, 0], [0, 3, 1], [0, 0, 0]]), classes=["bg", "a", "b"])
    >>> m["per_class"]["b"]["iou"], round(m["mean_iou"], 4), m["pixel_accuracy"]
    (0.0, 0.5833, 0.8888888888888888)
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ShapeError(f"a confusion matrix must be square (C, C), got {cm.shape}")
    c = cm.shape[0]
    names = [str(n) for n in classes] if classes is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ShapeError(f"{len(names)} class names for a {c}-class confusion matrix")
    tp = np.diag(cm).astype(np.float64)
    true_px = cm.sum(axis=1).astype(np.float64)
    pred_px = cm.sum(axis=0).astype(np.float64)
    union = true_px + pred_px - tp
    iou = np.array([_ratio(tp[k], union[k]) for k in range(c)])
    dice = np.array([_ratio(2 * tp[k], true_px[k] + pred_px[k]) for k in range(c)])
    total = float(cm.sum())
    per_class = {
        names[k]: {
            "iou": _none(iou[k]),
            "dice": _none(dice[k]),
            "precision": _none(_ratio(tp[k], pred_px[k])),
            "recall": _none(_ratio(tp[k], true_px[k])),
            "true_pixels": int(true_px[k]),
            "predicted_pixels": int(pred_px[k]),
        }
        for k in range(c)
    }
    defined = ~np.isnan(iou)
    recall = np.array([_ratio(tp[k], true_px[k]) for k in range(c)])
    freq = true_px / total if total > 0 else np.zeros(c)
    out: dict[str, Any] = {
        "mean_iou": _none(float(np.mean(iou[defined]))) if defined.any() else None,
        "mean_dice": _none(float(np.mean(dice[defined]))) if defined.any() else None,
        "pixel_accuracy": _none(_ratio(float(tp.sum()), total)),
        "mean_class_accuracy": _none(float(np.nanmean(recall))) if (~np.isnan(recall)).any() else None,
        "frequency_weighted_iou": _none(float(np.sum(freq[defined] * iou[defined]))) if total > 0 else None,
    }
    if c >= 2:  # foreground (every class but 0) against background (class 0)
        fg_tp = float(cm[1:, 1:].sum())
        fg_true, fg_pred = float(cm[1:, :].sum()), float(cm[:, 1:].sum())
        out["foreground_iou"] = _none(_ratio(fg_tp, fg_true + fg_pred - fg_tp))
        out["foreground_dice"] = _none(_ratio(2 * fg_tp, fg_true + fg_pred))
    out.update(pixels=int(total), num_classes=c, classes=names, per_class=per_class, confusion_matrix=cm.tolist())
    return out


class SegmentationScorer:
    """Accumulates one confusion matrix over many (prediction, truth) pairs; :meth:`scores` reads it.

    Examples
    --------
    >>> s = SegmentationScorer(num_classes=2, classes=["bg", "fg"])
    >>> s.update(np.zeros((2, 2), int), np.zeros((2, 2), int))  # an image with an empty foreground
    >>> s.scores()["per_class"]["fg"]["iou"] is None, s.scores()["mean_iou"]
    (True, 1.0)
    >>> s.update(np.ones((2, 2), int), np.ones((2, 2), int))
    >>> s.scores()["mean_iou"], s.images
    (1.0, 2)
    """

    def __init__(self, *, num_classes: int, classes: Sequence[str] | None = None, ignore_index: int | None = IGNORE_INDEX) -> None:
        self.num_classes = int(num_classes)
        self.classes = list(classes) if classes is not None else None
        self.ignore_index = ignore_index
        self.cm = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.images = 0

    def update(self, pred: np.ndarray, true: np.ndarray) -> None:
        self.cm += confusion_matrix(pred, true, num_classes=self.num_classes, ignore_index=self.ignore_index)
        self.images += 1

    def scores(self) -> dict[str, Any]:
        out = scores_from_confusion(self.cm, classes=self.classes)
        out["n"] = self.images
        return out


def segmentation_metrics(
    preds: np.ndarray | Iterable[np.ndarray],
    trues: np.ndarray | Iterable[np.ndarray],
    *,
    num_classes: int,
    classes: Sequence[str] | None = None,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict[str, Any]:
    """Scores of predicted masks against true masks (one (H, W) pair, or sequences of pairs of any sizes).

    See :func:`scores_from_confusion` for the keys; ``n`` is the number of images.

    Examples
    --------
    >>> true = np.zeros((4, 4), int); true[:2] = 1
    >>> pred = np.zeros((4, 4), int); pred[:1] = 1
    >>> m = segmentation_metrics(pred, true, num_classes=2, classes=["bg", "fg"])
    >>> m["per_class"]["fg"]["iou"], m["per_class"]["bg"]["iou"], m["mean_iou"]
    (0.5, 0.6666666666666666, 0.5833333333333333)
    """
    if isinstance(preds, np.ndarray) and isinstance(trues, np.ndarray) and preds.ndim == 2:
        preds, trues = [preds], [trues]
    scorer = SegmentationScorer(num_classes=num_classes, classes=classes, ignore_index=ignore_index)
    for p, t in zip(preds, trues, strict=True):
        scorer.update(p, t)
    return scorer.scores()
