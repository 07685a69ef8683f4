"""Typed sample parts shared by every layer: boxes with their format and canvas, and the Sample.

No torch here: arrays are numpy. ``pixlearn.data`` turns them into torchvision tv_tensors
for augmentation and batching.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ShapeError

__all__ = ["BoxFormat", "Boxes", "Sample", "Task"]


class BoxFormat(str, enum.Enum):
    """How a box's four numbers are read, in pixels: corners, corner + size, or centre + size."""

    XYXY = "xyxy"
    XYWH = "xywh"
    CXCYWH = "cxcywh"


class Task(str, enum.Enum):
    """What a dataset's labels support."""

    CLASSIFY = "classify"
    DETECT = "detect"
    SEGMENT = "segment"
    INSTANCE = "instance"
    RESTORE = "restore"


@dataclass(frozen=True)
class Boxes:
    """Boxes in absolute pixels on a canvas of ``(height, width)``.

    Examples
    --------
    >>> b = Boxes(np.array([[10, 20, 30, 40]]), BoxFormat.XYWH, canvas_size=(100, 200))
    >>> b.to(BoxFormat.XYXY).data.tolist()
    [[10.0, 20.0, 40.0, 60.0]]
    """

    data: np.ndarray
    format: BoxFormat
    canvas_size: tuple[int, int]

    def __post_init__(self) -> None:
        arr = np.asarray(self.data, dtype=np.float32).reshape(-1, 4) if np.size(self.data) else np.zeros((0, 4), np.float32)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ShapeError(f"boxes must have shape (N, 4), got {np.shape(self.data)}")
        object.__setattr__(self, "data", arr)
        object.__setattr__(self, "format", BoxFormat(self.format))
        h, w = self.canvas_size
        object.__setattr__(self, "canvas_size", (int(h), int(w)))

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def to(self, fmt: BoxFormat | str) -> Boxes:
        """The same boxes in another format."""
        fmt = BoxFormat(fmt)
        if fmt == self.format:
            return self
        xyxy = self._xyxy()
        if fmt == BoxFormat.XYXY:
            out = xyxy
        elif fmt == BoxFormat.XYWH:
            out = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        else:
            out = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return Boxes(out, fmt, self.canvas_size)

    def _xyxy(self) -> np.ndarray:
        d = self.data
        if self.format == BoxFormat.XYXY:
            return d.copy()
        if self.format == BoxFormat.XYWH:
            return np.concatenate([d[:, :2], d[:, :2] + d[:, 2:]], axis=1)
        return np.concatenate([d[:, :2] - d[:, 2:] / 2, d[:, :2] + d[:, 2:] / 2], axis=1)


@dataclass
class Sample:
    """One loaded example: the image and whatever labels its dataset has.

    Attributes
    ----------
    image : ndarray of shape (H, W, 3), uint8 RGB
    label : int, optional
        Class index (classification), into the dataset's ``classes``.
    boxes : Boxes, optional
        Object boxes (detection); ``box_labels`` holds one class index per box.
    masks : ndarray of shape (N, H, W), bool, optional
        One instance mask per box.
    mask : ndarray of shape (H, W), integer class ids, optional
        Semantic segmentation mask.
    target : ndarray, optional
        The clean image of a restoration pair (same layout as ``image``).
    path : Path, optional
        Where the image came from.
    meta : dict
        Anything else (split, group id, source annotations).
    """

    image: np.ndarray
    label: int | None = None
    boxes: Boxes | None = None
    box_labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    mask: np.ndarray | None = None
    target: np.ndarray | None = None
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Sample:
        return replace(self, **changes)
