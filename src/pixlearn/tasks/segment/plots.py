"""Segmentation figures: image / true mask / predicted mask overlays and training curves (matplotlib, no pyplot)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn.tasks.segment.metrics import IGNORE_INDEX

__all__ = ["plot_overlays", "plot_segment_curves"]


def _thumb(image: np.ndarray, longest: int = 320) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(1.0, longest / max(h, w))
    if scale >= 1.0:
        return image
    import cv2

    interp = cv2.INTER_AREA if image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3 else cv2.INTER_NEAREST
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)


def plot_overlays(
    examples: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, float | None]],
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str],
    split: str = "val",
) -> Path:
    """One row per image: the image, its true mask and the predicted mask tinted over it (fixed class colours).

    Examples
    --------
    >>> import tempfile
    >>> img = np.zeros((16, 16, 3), np.uint8); m = np.zeros((16, 16), int); m[4:12, 4:12] = 1
    >>> plot_overlays([("a.png", img, m, m, 1.0)], Path(tempfile.mkdtemp()) / "o.png", classes=["bg", "fg"]).suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pixlearn.tasks.segment.predict import PALETTE, overlay_mask

    rows = max(len(examples), 1)
    fig = Figure(figsize=(9.6, 3.2 * rows + 0.6), dpi=100)
    axes = fig.subplots(rows, 3, squeeze=False)
    for r, (name, image, true, pred, miou) in enumerate(examples):
        shown_true = np.where(true == IGNORE_INDEX, 0, true)
        panels = (image, overlay_mask(image, shown_true), overlay_mask(image, pred))
        titles = (Path(name).name, "true mask", "predicted" + (f" (IoU {miou:.3f})" if miou is not None else ""))
        for c in range(3):
            ax = axes[r][c]
            ax.imshow(_thumb(np.asarray(panels[c])), cmap="gray" if np.asarray(panels[c]).ndim == 2 else None)
            ax.set_title(titles[c], fontsize=8)
            ax.axis("off")
    handles = [Patch(color=PALETTE[(k - 1) % len(PALETTE)] / 255.0, label=str(classes[k])) for k in range(1, len(classes))]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(f"{split} images: true and predicted masks (background untinted)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_segment_curves(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str = "training curves") -> Path:
    """Train / val loss and val mean IoU, Dice and pixel accuracy per epoch (rows of ``metrics.csv``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    def col(key: str) -> np.ndarray:
        out = []
        for r in rows:
            v = r.get(key)
            try:
                out.append(float(v) if v not in (None, "") else np.nan)
            except (TypeError, ValueError):
                out.append(np.nan)
        return np.asarray(out, np.float64)

    epoch = col("epoch")
    fig = Figure(figsize=(10, 3.6), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for key, label in (("train_loss", "train loss (train crops)"), ("val_loss", "val loss (whole val images)")):
        y = col(key)
        if np.isfinite(y).any():
            ax1.plot(epoch, y, marker="o", markersize=3, label=label)
    ax1.set_xlabel("epoch")
    ax1.set_title("loss")
    ax1.legend(fontsize=7)
    for key, label in (("val_miou", "val mean IoU"), ("val_dice", "val mean Dice"), ("val_pixel_accuracy", "val pixel accuracy")):
        y = col(key)
        if np.isfinite(y).any():
            ax2.plot(epoch, y, marker="o", markersize=3, label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1.01)
    ax2.set_title("validation scores (val split)")
    if ax2.lines:
        ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
