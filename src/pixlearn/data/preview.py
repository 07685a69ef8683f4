"""A contact sheet of a dataset: (optionally augmented) samples with their labels, boxes and masks drawn.

Each cell shows one sample letterboxed into ``cell`` x ``cell`` pixels, its class name (or file
name) as a caption, its boxes with their class names, and its semantic / instance masks as
translucent colour overlays. Colours are RGB, one per class, the same in every cell.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn._core.types import Sample, Task
from pixlearn.data.index import DatasetIndex

__all__ = ["PALETTE", "draw_sample", "preview_grid"]

#: One RGB colour per class id (cycled): distinct, readable on photos.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
)
_BACKGROUND = (24, 24, 24)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ALPHA = 0.45


def _colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[int(class_id) % len(PALETTE)]


def _name(classes: list[str], class_id: Any) -> str:
    i = int(class_id)
    return classes[i] if 0 <= i < len(classes) else str(i)


def _text(
    canvas: np.ndarray,
    text: str,
    org: tuple[int, int],
    *,
    scale: float,
    colour: tuple[int, int, int],
    band: bool,
) -> None:
    """Put ``text`` with its baseline-left corner at ``org``, on a filled band for legibility."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = org
    h, w = canvas.shape[:2]
    x = max(0, min(x, w - tw - 2))
    y = max(th + 2, min(y, h - base - 1))
    if band:
        cv2.rectangle(canvas, (x, y - th - 2), (x + tw + 2, y + base), colour, thickness=-1)
        ink = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
    else:
        ink = colour
    cv2.putText(canvas, text, (x + 1, y - 1), _FONT, scale, ink, 1, cv2.LINE_AA)


def _overlay(canvas: np.ndarray, where: np.ndarray, colour: tuple[int, int, int]) -> None:
    if where.any():
        canvas[where] = (canvas[where] * (1 - _ALPHA) + np.asarray(colour, np.float32) * _ALPHA).astype(
            np.uint8
        )


def draw_sample(
    sample: Sample, classes: list[str], *, cell: int = 160, caption: str | None = None
) -> np.ndarray:
    """One preview cell: the sample letterboxed into ``cell`` x ``cell`` with its labels drawn.

    Returns
    -------
    ndarray of shape (cell, cell, 3), uint8 RGB
    """
    image = sample.image if sample.image.ndim == 3 else np.repeat(sample.image[..., None], 3, axis=2)
    image = image[..., :3]
    h, w = image.shape[:2]
    s = cell / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    shown = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    if sample.mask is not None:
        mask = cv2.resize(
            np.asarray(sample.mask, np.int32).astype(np.float32), (nw, nh), interpolation=cv2.INTER_NEAREST
        ).astype(np.int64)
        for class_id in np.unique(mask):
            if class_id not in (0, 255):  # background and the usual "ignore" value stay clear
                _overlay(shown, mask == class_id, _colour(class_id))
    labels = np.asarray(
        sample.box_labels if sample.box_labels is not None else np.zeros(len(sample.boxes or ())), np.int64
    )
    if sample.masks is not None:
        for m, class_id in zip(np.asarray(sample.masks), labels):
            small = cv2.resize(m.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
            _overlay(shown, small, _colour(class_id))
    if sample.boxes is not None and len(sample.boxes):
        thickness = 1 if cell < 200 else 2
        for (x1, y1, x2, y2), class_id in zip(sample.boxes.to("xyxy").data * s, labels):
            colour = _colour(class_id)
            p1, p2 = (round(float(x1)), round(float(y1))), (round(float(x2)) - 1, round(float(y2)) - 1)
            cv2.rectangle(shown, p1, p2, colour, thickness)
            _text(shown, _name(classes, class_id), (p1[0], p1[1]), scale=0.35, colour=colour, band=True)
    canvas = np.full((cell, cell, 3), _BACKGROUND, np.uint8)
    top, left = (cell - nh) // 2, (cell - nw) // 2
    canvas[top : top + nh, left : left + nw] = shown
    if caption is None:
        caption = (
            _name(classes, sample.label)
            if sample.label is not None
            else (sample.path.name if sample.path else "")
        )
    if caption:
        _text(
            canvas,
            caption,
            (2, cell - 3),
            scale=0.4,
            colour=_colour(sample.label) if sample.label is not None else (255, 255, 255),
            band=True,
        )
    return canvas


def _unreadable(name: str, cell: int) -> np.ndarray:
    canvas = np.full((cell, cell, 3), _BACKGROUND, np.uint8)
    cv2.line(canvas, (0, 0), (cell - 1, cell - 1), (90, 90, 90), 1)
    cv2.line(canvas, (0, cell - 1), (cell - 1, 0), (90, 90, 90), 1)
    _text(canvas, "unreadable", (4, cell // 2), scale=0.45, colour=(230, 25, 75), band=True)
    _text(canvas, name, (2, cell - 3), scale=0.35, colour=(255, 255, 255), band=True)
    return canvas


def preview_grid(
    index: DatasetIndex,
    *,
    augment: Any = "none",
    n: int = 16,
    cols: int = 4,
    seed: int = 0,
    cell: int = 160,
) -> np.ndarray:
    """Draw a grid of ``n`` samples picked at random (by ``seed``) from ``index``.

    Parameters
    ----------
    index : DatasetIndex
    augment : str, path, list or mapping
        An augmentation preset or pipeline (see :func:`~pixlearn.data.augment.build_augment`);
        ``"none"`` shows the samples as they are. Validated before any image is read.
    n : int
        Number of samples (fewer when the dataset is smaller).
    cols : int
        Cells per row.
    seed : int
        Picks the samples and seeds each one's augmentation.
    cell : int
        Side of one square cell in pixels.

    Returns
    -------
    ndarray of shape (rows * cell, min(cols, k) * cell, 3), uint8 RGB
        ``k`` = number of samples shown, ``rows = ceil(k / cols)``. Unreadable files show as a
        crossed cell marked "unreadable".

    Raises
    ------
    ConfigError
        Bad ``n``/``cols``/``cell``, an empty dataset, or a bad augmentation.
    """
    from pixlearn.data.augment import build_augment, sample_seed

    for name, value, low in (("n", n, 1), ("cols", cols, 1), ("cell", cell, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    aug = build_augment(augment, task=index.task)
    if len(index) == 0:
        raise ConfigError(f"{index.root}: the dataset has no images to preview")
    k = min(n, len(index))
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(index), size=k, replace=False).tolist())
    rows = math.ceil(k / cols)
    width = min(cols, k)
    grid = np.full((rows * cell, width * cell, 3), _BACKGROUND, np.uint8)
    show_names = index.task != Task.CLASSIFY
    for slot, i in enumerate(picks):
        record = index.records[i]
        try:
            sample = index.load(record)
        except PixlearnError:
            tile = _unreadable(record.path.name, cell)
        else:
            if aug.steps:
                sample = aug(sample, seed=sample_seed(seed, 0, i))
            caption = record.path.name if show_names and sample.label is None else None
            tile = draw_sample(sample, index.classes, cell=cell, caption=caption)
        r, c = divmod(slot, cols)
        grid[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = tile
    return grid
