"""Plots of a classifier's training and scores: curves, PR curves, per-class bars, the worst mistakes (no torch).

Every function writes one PNG (parent folders created) and returns its path; titles name the
split the numbers come from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ShapeError
from pixlearn.engine.plots import _figure, _save, plot_lr_find
from pixlearn.tasks.classify.metrics import _as_indices, _as_scores

__all__ = ["plot_training_curves", "plot_pr_curves", "plot_per_class", "plot_mistakes", "plot_lr_find", "worst_mistakes"]


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    vals = []
    for r in rows:
        v = r.get(key)
        try:
            vals.append(float(v) if v not in (None, "") else np.nan)
        except (TypeError, ValueError):
            vals.append(np.nan)
    return np.asarray(vals, dtype=np.float64)


def plot_training_curves(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str = "training curves") -> Path:
    """Loss (train and val), val accuracy / macro F1 and the learning rate per epoch (rows of ``metrics.csv``).

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.5, "lr": 0.1},
    ...         {"epoch": 2, "train_loss": 0.7, "val_loss": 0.8, "val_accuracy": 0.6, "lr": 0.05}]
    >>> plot_training_curves(rows, Path(tempfile.mkdtemp()) / "c.png").suffix
    '.png'
    """
    epoch = _column(rows, "epoch")
    fig = _figure(12.0, 3.8)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for key, label in (("train_loss", "train loss (train split, training mode)"), ("val_loss", "val loss (val split)")):
        y = _column(rows, key)
        if np.isfinite(y).any():
            ax1.plot(epoch, y, marker="o", markersize=3, label=label)
    ax1.set_xlabel("epoch")
    ax1.set_title("loss")
    ax1.legend(fontsize=7)
    for key, label in (("val_accuracy", "val accuracy"), ("val_macro_f1", "val macro F1")):
        y = _column(rows, key)
        if np.isfinite(y).any():
            ax2.plot(epoch, y, marker="o", markersize=3, label=label)
    ax2.set_xlabel("epoch")
    ax2.set_title("validation scores (val split)")
    ax2.set_ylim(0, 1.01)
    if ax2.lines:
        ax2.legend(fontsize=7)
    head_lr = _column(rows, "lr")
    for key, label in (("lr", "head lr"), ("backbone_lr", "backbone lr")):
        y = _column(rows, key)
        if key == "backbone_lr" and np.allclose(np.nan_to_num(y, nan=-1.0), np.nan_to_num(head_lr, nan=-1.0)):
            continue  # one learning rate for the whole model
        if np.isfinite(y).any():
            ax3.plot(epoch, y, marker="o", markersize=3, label=label)
    ax3.set_xlabel("epoch")
    ax3.set_title("learning rate (end of epoch)")
    if any(np.isfinite(_column(rows, "lr"))) and np.nanmin(_column(rows, "lr")) > 0:
        ax3.set_yscale("log")
    if ax3.lines:
        ax3.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_pr_curves(
    y_true: Sequence[Any] | np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    split: str = "test",
) -> Path:
    """One-vs-rest precision-recall curves with average precision, one per class.

    Examples
    --------
    >>> import tempfile
    >>> s = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    >>> plot_pr_curves([0, 0, 1, 1], s, ["a", "b"], Path(tempfile.mkdtemp()) / "pr.png").name
    'pr.png'
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    classes = list(classes)
    yt = _as_indices(y_true, classes, name="y_true")
    s = _as_scores(scores, yt.shape[0], len(classes))
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot()
    aps = []
    for c, name in enumerate(classes):
        pos = yt == c
        if not pos.any() or pos.all():
            continue
        precision, recall, _ = precision_recall_curve(pos, s[:, c])
        ap = float(average_precision_score(pos, s[:, c]))
        aps.append(ap)
        ax.plot(recall, precision, linewidth=1.2, label=f"{name} (AP {ap:.3f})")
    mean = f" - mean AP {np.mean(aps):.3f}" if aps else ""
    ax.set_title(f"precision-recall, one-vs-rest ({split} split){mean}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    if 0 < len(aps) <= 20:
        ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_per_class(metrics: Mapping[str, Any], path: str | os.PathLike[str], *, split: str = "test") -> Path:
    """Grouped bars of precision, recall and F1 per class from a :func:`classification_metrics` dict.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.tasks.classify.metrics import classification_metrics
    >>> m = classification_metrics([0, 1, 1], [0, 1, 0], classes=["a", "b"])
    >>> plot_per_class(m, Path(tempfile.mkdtemp()) / "pc.png").name
    'pc.png'
    """
    per_class = metrics.get("per_class") or {}
    names = list(per_class)
    if not names:
        raise ShapeError("metrics has no per_class entries to plot")
    x = np.arange(len(names))
    width = 0.27
    fig = _figure(min(max(6.0, 0.6 * len(names) + 2.0), 24.0), 4.2)
    ax = fig.add_subplot()
    for k, key in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * width, [per_class[n][key] for n in names], width, label=key)
    ax.set_xticks(x, labels=names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"per-class precision / recall / F1 ({split} split)")
    ax.legend(fontsize=8, ncols=3, loc="lower right")
    return _save(fig, path)


def worst_mistakes(y_true: np.ndarray, probs: np.ndarray, *, k: int = 16) -> list[int]:
    """Indices of the wrong predictions made with the most confidence (highest predicted-class probability).

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    >>> worst_mistakes(np.array([1, 1, 0, 0]), p)
    [0, 2]
    """
    y = np.asarray(y_true)
    p = np.asarray(probs)
    ok = ~np.isnan(p).any(axis=1) & (y >= 0)
    pred = np.where(ok, np.nan_to_num(p).argmax(axis=1), -1)
    wrong = np.flatnonzero(ok & (pred != y))
    conf = np.nan_to_num(p)[wrong, pred[wrong]]
    order = np.argsort(-conf, kind="stable")
    return [int(i) for i in wrong[order][:k]]


def plot_mistakes(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "worst mistakes",
    ncols: int = 4,
) -> Path:
    """A grid of images with captions (e.g. the most confident wrong predictions); a note when there are none.

    Examples
    --------
    >>> import tempfile
    >>> img = np.zeros((8, 8, 3), np.uint8)
    >>> plot_mistakes([img, img], ["true a / pred b 0.9", "true b / pred a 0.8"], Path(tempfile.mkdtemp()) / "m.png").name
    'm.png'
    """
    n = len(images)
    if n != len(captions):
        raise ShapeError(f"{n} images but {len(captions)} captions")
    if n == 0:
        fig = _figure(5.0, 1.5)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes on this split", ha="center", va="center")
        ax.set_title(title, fontsize=9)
        return _save(fig, path)
    cols = max(1, min(ncols, n))
    rows = -(-n // cols)
    fig = _figure(2.4 * cols, 2.6 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax in axes:
        ax.axis("off")
    for ax, img, cap in zip(axes, images, captions):
        arr = np.asarray(img)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(cap, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
