"""The detection task's shared vocabulary: what every detector returns and what every consumer reads.

A trained run (:mod:`pixlearn.tasks.detect.predict`), the out-of-the-box COCO detector
(:mod:`pixlearn.tasks.detect.yolox`), tiled inference (:mod:`pixlearn.tasks.detect.tiles`), the evaluator
(:mod:`pixlearn.tasks.detect.metrics`) and the service all speak :class:`Detections` and :class:`Detector`.
This module imports numpy only.

Conventions
-----------
* Boxes are absolute-pixel ``xyxy`` float32 on the image the caller passed (after undoing any resize or letterbox).
* ``labels`` are 0-based indices into the detector's ``class_names`` (no background class in the public API;
  torchvision's 1-based model labels are shifted at the model boundary).
* ``masks`` (instance segmentation only) are boolean ``(N, H, W)`` on the same image.
* Detections are sorted by descending score.

Examples
--------
>>> import numpy as np
>>> d = Detections(np.array([[1, 2, 10, 20]]), np.array([0.9]), np.array([0]), ("cat",))
>>> d.to_rows()
[{'box': [1.0, 2.0, 10.0, 20.0], 'score': 0.9, 'label': 0, 'class_name': 'cat'}]
>>> len(d.filter(min_score=0.95))
0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Detections", "Detector", "GroundTruth"]


@dataclass(frozen=True)
class Detections:
    """The detections of one image.

    Attributes
    ----------
    boxes : ndarray, (N, 4) float32
        Absolute-pixel xyxy on the input image.
    scores : ndarray, (N,) float32
    labels : ndarray, (N,) int64
        0-based indices into ``class_names``.
    class_names : tuple of str
        Every class the detector knows (not only those present).
    masks : ndarray, (N, H, W) bool, optional
        Instance masks, for instance-segmentation models.
    meta : dict
        Anything a producer wants to pass along (e.g. ``{"tiles": 6}``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    masks: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        labels = np.asarray(self.labels, np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(f"detections need one score and one label per box: {len(boxes)} boxes, "
                             f"{len(scores)} scores, {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(f"detection labels must index class_names (0..{len(self.class_names) - 1}), "
                             f"got {labels.min()}..{labels.max()}")
        masks = self.masks
        if masks is not None:
            masks = np.asarray(masks, bool)
            if masks.ndim != 3 or len(masks) != len(boxes):
                raise ValueError(f"instance masks must be (N, H, W) with N = {len(boxes)}, got {masks.shape}")
        order = np.argsort(-scores, kind="stable")
        object.__setattr__(self, "boxes", boxes[order])
        object.__setattr__(self, "scores", scores[order])
        object.__setattr__(self, "labels", labels[order])
        object.__setattr__(self, "masks", None if masks is None else masks[order])
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, class_names: Sequence[str], *, image_size: tuple[int, int] | None = None,
              with_masks: bool = False) -> Detections:
        """No detections (``image_size`` (H, W) gives an empty mask stack its shape when ``with_masks``)."""
        masks = np.zeros((0, *image_size), bool) if with_masks and image_size else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(class_names), masks)

    def select(self, keep: np.ndarray) -> Detections:
        """The detections at boolean or integer index ``keep``."""
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names,
                          None if self.masks is None else self.masks[keep], dict(self.meta))

    def filter(self, *, min_score: float = 0.0, max_detections: int | None = None,
               classes: Sequence[int] | None = None) -> Detections:
        """Those with ``score >= min_score`` (of ``classes`` when given), at most ``max_detections`` of them."""
        keep = self.scores >= min_score
        if classes is not None:
            keep &= np.isin(self.labels, np.asarray(list(classes), np.int64))
        index = np.flatnonzero(keep)
        if max_detections is not None:
            index = index[: max(0, int(max_detections))]
        return self.select(index)

    def to_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per detection: ``box`` (xyxy), ``score``, ``label``, ``class_name``."""
        return [{"box": [round(float(v), 2) for v in box], "score": round(float(s), 4), "label": int(lab),
                 "class_name": self.class_names[int(lab)]}
                for box, s, lab in zip(self.boxes, self.scores, self.labels, strict=True)]


@dataclass(frozen=True)
class GroundTruth:
    """The annotated objects of one image, as the evaluator reads them.

    ``boxes`` absolute-pixel xyxy (N, 4), ``labels`` 0-based class indices (N,), ``masks`` optional bool
    (N, H, W), ``iscrowd`` optional (N,) bool (COCO's crowd regions: matched but never counted as misses),
    ``image_size`` (H, W).

    >>> GroundTruth(np.zeros((0, 4)), np.zeros(0), ("cat",), (8, 8)).boxes.shape
    (0, 4)
    """

    boxes: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    masks: np.ndarray | None = None
    iscrowd: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        labels = np.asarray(self.labels, np.int64).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(f"ground truth needs one label per box: {len(boxes)} boxes, {len(labels)} labels")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        iscrowd = np.zeros(len(boxes), bool) if self.iscrowd is None else np.asarray(self.iscrowd, bool).reshape(-1)
        object.__setattr__(self, "iscrowd", iscrowd)
        if self.masks is not None:
            object.__setattr__(self, "masks", np.asarray(self.masks, bool))

    def __len__(self) -> int:
        return len(self.labels)


@runtime_checkable
class Detector(Protocol):
    """Anything that detects: a trained run's predictor, the COCO YOLOX-Nano, a tiled wrapper around either.

    ``predict`` takes decoded RGB uint8 ``(H, W, 3)`` images and returns one :class:`Detections` per image,
    already filtered by ``score`` and ``max_detections`` and with class-wise NMS at ``iou`` applied.
    """

    class_names: tuple[str, ...]
    name: str

    def predict(self, images: Sequence[np.ndarray], *, score: float = 0.25, iou: float = 0.5,
                max_detections: int = 100) -> list[Detections]: ...
