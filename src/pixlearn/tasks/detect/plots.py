"""Detection figures: precision-recall curves per class, per-class AP bars, the confusion matrix with background, and
images with the truth beside the predictions (matplotlib's Agg canvas, no pyplot).

Every function takes the dict of :meth:`~pixlearn.tasks.detect.metrics.DetectionEvaluator.compute` (or a part of
it) and the name of the split it was measured on, which every title carries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_pr_curves", "plot_per_class_ap", "plot_confusion_matrix", "plot_examples", "plot_crops", "draw_boxes"]

def _figure(width: float, height: float) -> Any:
    from pixlearn.engine.plots import _figure as figure

    return figure(width, height)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    from pixlearn.engine.plots import _save as save

    return save(fig, path)


def plot_pr_curves(metrics: Mapping[str, Any], path: str | os.PathLike[str], *, split: str, prefix: str = "",
                   max_classes: int = 20) -> Path:
    """Precision against recall for each class at IoU 0.5 (left) and averaged over IoU 0.5:0.95 (right).

    Parameters
    ----------
    metrics : mapping
        :meth:`DetectionEvaluator.compute` output (its ``pr_curves``, ``per_class50`` and ``per_class``).
    split : str
        The split the curves were measured on (in the title).
    prefix : {"", "mask_"}
        Box curves, or the instance masks' (``mask_pr_curves``).
    max_classes : int, default 20
        The classes with the most truth objects are drawn; the legend says how many were left out.

    Examples
    --------
    >>> import tempfile
    >>> m = {"pr_curves": {"recall": [0.0, 0.5, 1.0], "iou50": {"cat": [1.0, 0.8, 0.0]},
    ...                    "iou50_95": {"cat": [0.7, 0.5, 0.0]}}, "per_class50": {"cat": 0.6}, "per_class": {"cat": 0.4}}
    >>> plot_pr_curves(m, Path(tempfile.mkdtemp()) / "pr.png", split="val").name
    'pr.png'
    """
    from pixlearn.tasks.detect.draw import class_color

    curves = metrics.get(prefix + "pr_curves") or {}
    recall = np.asarray(curves.get("recall") or [], np.float64)
    counts = metrics.get("per_class_objects") or {}
    order = {n: k for k, n in enumerate(curves.get("iou50") or {})}  # class index: its colour, as in drawn images
    names = [n for n, c in (curves.get("iou50") or {}).items() if c is not None]
    names.sort(key=lambda n: -int(counts.get(n, 0)))
    left_out = max(0, len(names) - max_classes)
    names = names[:max_classes]
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2)
    what = "mask" if prefix else "box"
    for ax, key, ap_key, title in ((axes[0], "iou50", "per_class50", "IoU 0.5"), (axes[1], "iou50_95", "per_class", "mean over IoU 0.5:0.95")):
        per = (curves.get(key) or {})
        aps = metrics.get(prefix + ap_key) or {}
        for name in names:
            p = per.get(name)
            if p is None:
                continue
            ap = aps.get(name)
            color = np.asarray(class_color(order[name])) / 255.0
            ax.plot(recall, np.asarray(p, np.float64), color=color, linewidth=1.4,
                    label=f"{name} (AP {ap:.3f})" if isinstance(ap, float) else name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{what} precision-recall, {title} ({split} split)", fontsize=9)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="lower left", title=f"+{left_out} classes not drawn" if left_out else None)
        else:
            ax.text(0.5, 0.5, "no class has truth objects", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_per_class_ap(metrics: Mapping[str, Any], path: str | os.PathLike[str], *, split: str, prefix: str = "",
                      max_classes: int = 40) -> Path:
    """Horizontal bars of AP50 and AP@[.5:.95] per class, best first (classes without truth are listed as such).

    Examples
    --------
    >>> import tempfile
    >>> m = {"per_class": {"cat": 0.4, "dog": None}, "per_class50": {"cat": 0.7, "dog": None}}
    >>> plot_per_class_ap(m, Path(tempfile.mkdtemp()) / "ap.png", split="test").name
    'ap.png'
    """
    per = metrics.get(prefix + "per_class") or {}
    per50 = metrics.get(prefix + "per_class50") or {}
    counts = metrics.get("per_class_objects") or {}
    names = sorted(per, key=lambda n: -(per50.get(n) if per50.get(n) is not None else -1.0))[:max_classes]
    fig = _figure(8, 1.2 + 0.32 * max(len(names), 1))
    ax = fig.subplots()
    y = np.arange(len(names))
    ap50 = [per50.get(n) if per50.get(n) is not None else 0.0 for n in names]
    ap = [per.get(n) if per.get(n) is not None else 0.0 for n in names]
    ax.barh(y - 0.2, ap50, height=0.4, color="#4c72b0", label="AP50")
    ax.barh(y + 0.2, ap, height=0.4, color="#dd8452", label="AP@[.5:.95]")
    labels = []
    for n in names:
        c = counts.get(n)
        labels.append(f"{n} (no truth)" if per.get(n) is None else (f"{n} ({c})" if c is not None else n))
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision")
    ax.set_title(f"{'mask' if prefix else 'box'} AP per class ({split} split; truth objects in brackets)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(confusion: Mapping[str, Any], path: str | os.PathLike[str], *, split: str,
                          max_classes: int = 30) -> Path:
    """The detection confusion matrix (rows true, columns predicted, background last) as counts on a colour scale.

    Parameters
    ----------
    confusion : mapping
        ``compute()["confusion_matrix"]``: ``labels``, ``matrix``, ``score_threshold``, ``iou_threshold``.

    Examples
    --------
    >>> import tempfile
    >>> cm = {"labels": ["cat", "background"], "matrix": [[3, 1], [2, 0]], "score_threshold": 0.25, "iou_threshold": 0.5}
    >>> plot_confusion_matrix(cm, Path(tempfile.mkdtemp()) / "cm.png", split="val").name
    'cm.png'
    """
    labels = list(confusion.get("labels") or [])
    matrix = np.asarray(confusion.get("matrix") or [[0]], np.int64)
    if len(labels) - 1 > max_classes:  # keep the classes with the most truths and predictions, and background
        weight = matrix[:-1].sum(axis=1) + matrix[:, :-1].sum(axis=0)
        keep = sorted(np.argsort(-weight, kind="stable")[:max_classes].tolist()) + [len(labels) - 1]
        matrix, labels = matrix[np.ix_(keep, keep)], [labels[k] for k in keep]
    n = len(labels)
    size = min(3.5 + 0.45 * n, 16)
    fig = _figure(size + 1.2, size)
    ax = fig.subplots()
    shown = np.log1p(matrix.astype(np.float64))
    image = ax.imshow(shown, cmap="Blues")
    high = shown.max() if shown.size else 0.0
    if n <= 25:
        for r in range(n):
            for c in range(n):
                ax.text(c, r, str(int(matrix[r, c])), ha="center", va="center", fontsize=8,
                        color="white" if high and shown[r, c] > 0.6 * high else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted class (background: missed truth)")
    ax.set_ylabel("true class (background: spurious detection)")
    ax.set_title(f"detection confusion matrix ({split} split; score >= {confusion.get('score_threshold')}, "
                 f"IoU >= {confusion.get('iou_threshold')})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="log(1 + count)")
    return _save(fig, path)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
               scores: np.ndarray | None = None, masks: np.ndarray | None = None,
               highlight: Sequence[int] = ()) -> np.ndarray:
    """A copy of RGB ``image`` with xyxy ``boxes`` (and tinted ``masks``) drawn in the class colours of
    :func:`pixlearn.tasks.detect.draw.draw_detections`, each labelled with its class (and score); boxes at indices
    ``highlight`` are drawn thicker, in white (the truth's missed objects in the report).

    Examples
    --------
    >>> out = draw_boxes(np.zeros((32, 32, 3), np.uint8), np.array([[2, 2, 20, 20]]), np.array([0]), ["cat"])
    >>> out.shape, bool(out.any())
    ((32, 32, 3), True)
    """
    import cv2

    from pixlearn.tasks.detect.draw import class_color

    out = np.ascontiguousarray(np.asarray(image, np.uint8)[..., :3]).copy()
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 320))
    if masks is not None:
        for m, lab in zip(masks, labels, strict=False):
            m = np.asarray(m, bool)
            if m.shape == (h, w) and m.any():
                out[m] = (0.6 * out[m] + 0.4 * np.asarray(class_color(lab))).astype(np.uint8)
    hi = set(int(i) for i in highlight)
    for i, (box, lab) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), labels, strict=True)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        color = (255, 255, 255) if i in hi else class_color(lab)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick + (1 if i in hi else 0))
        text = str(class_names[int(lab)]) + (f" {float(scores[i]):.2f}" if scores is not None else "")
        scale = 0.35 * thick
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 2 if y1 - th - 2 >= 0 else min(h - 1, y1 + th + 2)
        cv2.rectangle(out, (x1, ty - th - 1), (x1 + tw + 2, ty + base - 1), color, -1)
        cv2.putText(out, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _short(name: str, most: int = 40) -> str:
    """A file name cut to ``most`` characters (keeping its end) for a figure title."""
    return name if len(name) <= most else name[: most - 16] + "..." + name[-13:]


def _thumb(image: np.ndarray, longest: int = 480) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(1.0, longest / max(h, w))
    if scale >= 1.0:
        return image
    import cv2

    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def plot_examples(examples: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, split: str, title: str) -> Path:
    """One row per image: its truth (left) beside the detections (right) at the report's score threshold.

    Parameters
    ----------
    examples : sequence of mapping
        ``{"name", "image", "truth" (GroundTruth), "detections" (Detections), "caption"}``.
    title : str
        What these images are (e.g. "worst misses"); the split is added.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.tasks.detect.detections import Detections, GroundTruth
    >>> t = GroundTruth(np.array([[2, 2, 20, 20]]), np.array([0]), ("cat",), (32, 32))
    >>> d = Detections(np.array([[3, 3, 20, 20]]), np.array([0.9]), np.array([0]), ("cat",))
    >>> ex = {"name": "a.png", "image": np.zeros((32, 32, 3), np.uint8), "truth": t, "detections": d, "caption": ""}
    >>> plot_examples([ex], Path(tempfile.mkdtemp()) / "ex.png", split="val", title="examples").name
    'ex.png'
    """
    from pixlearn.tasks.detect.draw import draw_detections

    rows = max(len(examples), 1)
    fig = _figure(10, 3.6 * rows + 0.5)
    axes = fig.subplots(rows, 2, squeeze=False)
    for r, ex in enumerate(examples):
        truth, det = ex["truth"], ex["detections"]
        shown_truth = draw_boxes(ex["image"], truth.boxes, truth.labels, truth.class_names, masks=truth.masks,
                                 highlight=list(ex.get("highlight_truth") or ()))
        panels = (shown_truth, draw_detections(ex["image"], det))
        titles = (f"{_short(Path(str(ex['name'])).name)}: truth ({len(truth)} objects)",
                  f"predicted ({len(det)} with score >= {ex.get('score_threshold', 0.25)})")
        for c in range(2):
            ax = axes[r][c]
            ax.imshow(_thumb(panels[c]))
            ax.set_title(titles[c], fontsize=8)
            ax.axis("off")
        if ex.get("caption"):
            axes[r][1].text(0, -0.02, str(ex["caption"]), transform=axes[r][1].transAxes, fontsize=7, va="top")
    if not examples:
        for ax in axes[0]:
            ax.axis("off")
    fig.suptitle(f"{title} ({split} split): truth left, predictions right", fontsize=10)
    return _save(fig, path)


def plot_crops(items: Sequence[Mapping[str, Any]], key: str, path: str | os.PathLike[str], *, split: str, title: str,
               most: int = 12) -> Path:
    """Close-ups of single objects: for each ``(box, caption)`` in ``item[key]`` (``"miss_boxes"`` or ``"fp_boxes"``),
    a crop around the box (2.5 times its size, at least 64 px) of the image with the detections drawn and the box
    outlined in white; at most ``most`` crops, in the items' order.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.tasks.detect.detections import Detections
    >>> item = {"image": np.zeros((64, 64, 3), np.uint8), "detections": Detections.empty(["cat"]),
    ...         "miss_boxes": [(np.array([10, 10, 20, 30]), "cat: missed")]}
    >>> plot_crops([item], "miss_boxes", Path(tempfile.mkdtemp()) / "c.png", split="val", title="missed").name
    'c.png'
    """
    import cv2

    from pixlearn.tasks.detect.draw import draw_detections

    crops: list[tuple[np.ndarray, str]] = []
    for item in items:
        boxes = list(item.get(key) or ())
        if not boxes:
            continue
        drawn = draw_detections(item["image"], item["detections"], labels=False)
        h, w = drawn.shape[:2]
        for box, caption in boxes:
            if len(crops) >= most:
                break
            x1, y1, x2, y2 = (float(v) for v in box)
            side = max(64.0, 2.5 * max(x2 - x1, y2 - y1))
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = int(max(0, min(w - side, cx - side / 2))), int(max(0, min(h - side, cy - side / 2)))
            right, bottom = int(min(w, left + side)), int(min(h, top + side))
            panel = drawn.copy()
            cv2.rectangle(panel, (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2))), (255, 255, 255), 1)
            crops.append((panel[top:bottom, left:right], f"{_short(Path(str(item.get('name', ''))).name, 28)}\n{caption}"))
    cols = min(4, max(len(crops), 1))
    rows = max(1, -(-len(crops) // cols))
    fig = _figure(2.6 * cols, 2.9 * rows + 0.4)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (crop, caption) in zip(axes, crops, strict=False):
        ax.imshow(crop, interpolation="nearest")
        ax.set_title(caption, fontsize=7)
    fig.suptitle(f"{title} ({split} split): the object in white, detections in class colours", fontsize=9)
    return _save(fig, path)
