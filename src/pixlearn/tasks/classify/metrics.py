"""Classification metrics in one JSON schema and their plots: confusion matrix, ROC curves (no torch).

:func:`classification_metrics` is shared by every classifier pixlearn trains
(classic and deep), so their ``metrics.json`` files compare field by field.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.engine.plots import _figure

__all__ = [
    "classification_metrics",
    "plot_confusion_matrix",
    "plot_roc_curves",
]


def _as_indices(y: Any, classes: Sequence[Any], *, name: str) -> np.ndarray:
    """Class indices (int64) from integer indices or from labels that are members of ``classes``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    n_classes = len(classes)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ConfigError(
                f"{name} holds class index {int(arr.max() if arr.max() >= n_classes else arr.min())} "
                f"outside 0..{n_classes - 1} ({n_classes} classes)"
            )
        return arr.astype(np.int64)
    lookup = {c: i for i, c in enumerate(classes)}
    lookup.update({str(c): i for i, c in enumerate(classes)})
    out = np.empty(arr.shape[0], np.int64)
    for k, label in enumerate(arr.tolist()):
        idx = lookup.get(label)
        if idx is None:
            raise ConfigError(f"{name} holds label {label!r}, which is not one of the classes {list(classes)!r}")
        out[k] = idx
    return out


def _as_scores(scores: Any, n: int, n_classes: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1 and n_classes == 2:
        s = np.stack([-s, s], axis=1)  # a binary decision score for classes[1]
    if s.shape != (n, n_classes):
        raise ShapeError(f"scores must have shape (N, C) = ({n}, {n_classes}), got {s.shape}")
    if not np.isfinite(s).all():
        raise ShapeError("scores contain NaN or infinite values")
    return s


def _roc_auc_per_class(y: np.ndarray, scores: np.ndarray) -> list[float | None]:
    from sklearn.metrics import roc_auc_score

    out: list[float | None] = []
    for c in range(scores.shape[1]):
        positive = y == c
        if positive.all() or not positive.any():
            out.append(None)  # undefined without both positives and negatives
        else:
            out.append(float(roc_auc_score(positive, scores[:, c])))
    return out


def classification_metrics(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    *,
    classes: Sequence[Any],
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, F1, per-class P/R/F1, confusion matrix, top-5 and ROC AUC.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (N,)
        Integer class indices into ``classes``, or labels that are members of
        ``classes``.
    classes : sequence of str
        Class names; their order fixes the confusion matrix and score columns.
    scores : ndarray of shape (N, C), optional
        Per-class scores (probabilities or decision values; larger means more
        likely), columns in ``classes`` order. For two classes an (N,) score of
        ``classes[1]`` is accepted. Enables ``roc_auc_macro`` and, with more than
        5 classes, ``top5_accuracy``.

    Returns
    -------
    dict
        Plain JSON types only::

            {"n", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
             "top5_accuracy" (scores given and C > 5), "roc_auc_macro" (scores given),
             "per_class": {cls: {"precision", "recall", "f1", "support"}},
             "confusion_matrix": [[...]] (rows true, columns predicted), "classes": [...]}

        ``macro_f1`` and ``balanced_accuracy`` average over the classes present
        in ``y_true`` or ``y_pred`` (scikit-learn's convention); ``per_class``
        lists every class. ``roc_auc_macro`` is one-vs-rest, averaged over the
        classes that have both positives and negatives in ``y_true`` (``None``
        when there are none). An undefined precision/recall (0/0) counts as 0.

    Raises
    ------
    ShapeError
        If lengths or score shapes disagree.
    ConfigError
        If a label is not one of ``classes``, or there are no samples.

    Examples
    --------
    >>> m = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], classes=["a", "b"])
    >>> m["accuracy"], m["confusion_matrix"], m["per_class"]["b"]["precision"]
    (0.75, [[1, 1], [0, 2]], 0.6666666666666666)
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, top_k_accuracy_score

    classes = list(classes)
    if not classes:
        raise ConfigError("classes must name at least one class")
    if len(set(map(str, classes))) != len(classes):
        raise ConfigError(f"classes must be unique, got {classes!r}")
    yt = _as_indices(y_true, classes, name="y_true")
    yp = _as_indices(y_pred, classes, name="y_pred")
    if yt.shape != yp.shape:
        raise ShapeError(f"y_true and y_pred must have the same length, got {yt.shape[0]} and {yp.shape[0]}")
    n = int(yt.shape[0])
    if n == 0:
        raise ConfigError("no samples to score (y_true is empty)")
    n_classes = len(classes)
    all_labels = np.arange(n_classes)
    present = np.union1d(yt, yp)

    cm = confusion_matrix(yt, yp, labels=all_labels)
    prec, rec, f1, support = precision_recall_fscore_support(yt, yp, labels=all_labels, zero_division=0)
    recall_present = [rec[c] for c in np.unique(yt)]
    out: dict[str, Any] = {
        "n": n,
        "accuracy": float(np.mean(yt == yp)),
        "balanced_accuracy": float(np.mean(recall_present)),
        "macro_f1": float(f1_score(yt, yp, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(yt, yp, labels=present, average="weighted", zero_division=0)),
    }
    if scores is not None:
        s = _as_scores(scores, n, n_classes)
        if n_classes > 5:
            out["top5_accuracy"] = float(top_k_accuracy_score(yt, s, k=5, labels=all_labels))
        aucs = [a for a in _roc_auc_per_class(yt, s) if a is not None]
        out["roc_auc_macro"] = float(np.mean(aucs)) if aucs else None
    out["per_class"] = {
        str(c): {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }
    out["confusion_matrix"] = cm.astype(int).tolist()
    out["classes"] = [str(c) for c in classes]
    return out


# ---------------------------------------------------------------- plots


def plot_confusion_matrix(
    cm: Sequence[Sequence[int]] | np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    normalize: bool = False,
) -> Path:
    """Save a confusion-matrix heat map as a PNG.

    Parameters
    ----------
    cm : array-like of shape (C, C), int
        Counts, rows true class, columns predicted class.
    classes : sequence of str
        The C class names.
    path : path
        Output PNG (parent folders are created).
    normalize : bool, default False
        Divide each row by its total, so the diagonal shows per-class recall.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> out = plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], Path(tempfile.mkdtemp()) / "cm.png")
    >>> out.read_bytes()[:4]
    b'\\x89PNG'
    """
    m = np.asarray(cm, dtype=np.float64)
    n_classes = len(classes)
    if m.shape != (n_classes, n_classes):
        raise ShapeError(f"cm must have shape ({n_classes}, {n_classes}) for {n_classes} classes, got {m.shape}")
    if normalize:
        rows = m.sum(axis=1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = min(max(4.0, 0.45 * n_classes + 2.5), 24.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(float(m.max()), 1.0))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n_classes)
    ax.set_xticks(ticks, labels=[str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(ticks, labels=[str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    if n_classes <= 30:
        threshold = (1.0 if normalize else max(float(m.max()), 1.0)) / 2
        for i in range(n_classes):
            for j in range(n_classes):
                text = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > threshold else "black")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_roc_curves(
    y_true: Sequence[Any] | np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Save one-vs-rest ROC curves, one per class with its AUC, as a PNG.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        Class indices or labels (as in :func:`classification_metrics`).
    scores : ndarray of shape (N, C)
        Per-class scores, columns in ``classes`` order.
    classes : sequence of str
        The C class names.
    path : path
        Output PNG (parent folders are created).

    Returns
    -------
    Path
        ``path``. Classes with no positive or no negative sample are left out.

    Examples
    --------
    >>> import tempfile
    >>> s = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    >>> plot_roc_curves([0, 0, 1, 1], s, ["a", "b"], Path(tempfile.mkdtemp()) / "roc.png").suffix
    '.png'
    """
    from sklearn.metrics import roc_curve

    classes = list(classes)
    yt = _as_indices(y_true, classes, name="y_true")
    s = _as_scores(scores, yt.shape[0], len(classes))
    aucs = _roc_auc_per_class(yt, s)
    fig = _figure(6.5, 5.5)
    ax = fig.add_subplot()
    for c, auc in enumerate(aucs):
        if auc is None:
            continue
        fpr, tpr, _ = roc_curve(yt == c, s[:, c])
        ax.plot(fpr, tpr, linewidth=1.2, label=f"{classes[c]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    valid = [a for a in aucs if a is not None]
    macro = f" - macro AUC {np.mean(valid):.3f}" if valid else ""
    ax.set_title(f"ROC, one-vs-rest{macro}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    if 0 < len(valid) <= 20:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out




