"""A dataset as an index of records (paths + annotations), loaded into Samples on demand.

Every reader (ImageFolder, CSV, COCO, YOLO, VOC, mask folders, paired folders) produces a
:class:`DatasetIndex`; checks, splits, conversion and loaders all work on it. Nothing is
decoded until :meth:`DatasetIndex.load` is called, so indexing a million files is cheap.
Boxes in records are always absolute-pixel ``xyxy``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.types import Boxes, BoxFormat, Sample, Task

__all__ = ["Record", "DatasetIndex", "SPLITS"]

#: Split names pixlearn recognises, in order.
SPLITS = ("train", "val", "test")


@dataclass
class Record:
    """One example before decoding.

    ``boxes`` are (N, 4) float32 absolute-pixel xyxy with ``box_labels`` (N,) class indices;
    ``segmentations`` holds one COCO-style segmentation per box (a list of polygons
    ``[[x1, y1, x2, y2, ...], ...]`` or an RLE dict), decoded into instance masks on load;
    ``mask_path`` is a semantic mask image (pixel value = class id); ``target_path`` the clean
    image of a restoration pair; ``size`` is (H, W) when the annotations state it;
    ``group`` keeps near-identical images together when splitting.
    """

    path: Path
    split: str | None = None
    label: int | None = None
    boxes: np.ndarray | None = None
    box_labels: np.ndarray | None = None
    segmentations: list[Any] | None = None
    mask_path: Path | None = None
    target_path: Path | None = None
    size: tuple[int, int] | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetIndex:
    """Records plus what they mean: the class names, the task and where they came from.

    ``meta`` holds what a reader found about the whole dataset that a writer or loader needs
    (e.g. ``category_ids``: the original COCO category id of each class; ``mask_values``: a
    stored mask value -> class id map that :meth:`load` applies).
    """

    root: Path
    format: str
    task: Task
    classes: list[str]
    records: list[Record]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    # ------------------------------------------------------------ views
    def splits(self) -> dict[str, int]:
        """Record count per split name (``None`` for unsplit records)."""
        return dict(Counter(r.split for r in self.records))

    def subset(self, split: str | None = None, *, indices: list[int] | None = None) -> DatasetIndex:
        """A view with only one split's records, or only the given indices."""
        if indices is not None:
            records = [self.records[i] for i in indices]
        else:
            if split is not None and split not in {r.split for r in self.records}:
                have = sorted({str(r.split) for r in self.records})
                raise ConfigError(f"{self.root}: no '{split}' split; this dataset has {', '.join(have)}")
            records = [r for r in self.records if r.split == split]
        return replace(self, records=records)

    def with_splits(self, assignment: dict[int, str]) -> DatasetIndex:
        """A copy whose records carry the given split names (index -> split); the files are untouched."""
        records = [replace(r, split=assignment.get(i, r.split)) for i, r in enumerate(self.records)]
        return replace(self, records=records)

    def labels(self) -> list[int | None]:
        return [r.label for r in self.records]

    def fingerprint(self) -> str:
        """sha256 over sorted relative paths, sizes and labels: changes when the data does."""
        h = hashlib.sha256()
        for r in sorted(self.records, key=lambda r: str(r.path)):
            try:
                rel = r.path.relative_to(self.root)
                size = r.path.stat().st_size
            except (ValueError, OSError):
                rel, size = r.path, -1
            h.update(f"{rel}|{size}|{r.label}|{r.split}\n".encode())
        return h.hexdigest()

    # ------------------------------------------------------------ loading
    def load(self, i: int | Record) -> Sample:
        """Decode one record into a :class:`Sample` (raises a PixlearnError for unreadable files)."""
        from pixlearn.io import read_image

        rec = self.records[i] if isinstance(i, int) else i
        image = read_image(rec.path)
        h, w = image.shape[:2]
        sample = Sample(image=image, label=rec.label, path=rec.path, meta={"split": rec.split, "group": rec.group, **rec.meta})
        if rec.boxes is not None:
            sample.boxes = Boxes(rec.boxes, BoxFormat.XYXY, canvas_size=(h, w))
            sample.box_labels = np.asarray(rec.box_labels if rec.box_labels is not None else np.zeros(len(rec.boxes)), np.int64)
            if rec.segmentations is not None:
                from pixlearn.data.masks import decode_segmentation

                sample.masks = np.stack([decode_segmentation(s, (h, w)) for s in rec.segmentations]) if rec.segmentations else np.zeros((0, h, w), bool)
        if rec.mask_path is not None:
            from pixlearn.data.masks import MaskCoding
            from pixlearn.io import read_mask

            mask = read_mask(rec.mask_path)  # stored values (palette indices, not colours)
            if mask.shape != (h, w):
                raise ShapeError(f"{rec.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {rec.path} is {w}x{h}")
            # stored value -> class id (binary 0/255 sets: 255 -> 1), the rule of pixlearn.data.masks
            sample.mask = MaskCoding.from_meta(self.meta).to_class_ids(mask)
        if rec.target_path is not None:
            sample.target = read_image(rec.target_path)
        return sample
