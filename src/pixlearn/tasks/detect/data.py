"""Detection data: the dataset reader, splits, box statistics, repeat-factor sampling, tiles and the torch Dataset.

* :func:`read_detect_dataset` -- a COCO / YOLO / VOC folder (or an index) with boxes, checked.
* :func:`plan_detect_splits` -- train / val / test record indices (the dataset's own splits, else seeded shares).
* :func:`box_sizes` -- the training boxes' widths and heights in network pixels (what anchors are fitted to).
* :func:`repeat_factors` -- LVIS-style repeat factors for class imbalance.
* :func:`auto_tile` / :func:`tile_items` -- tiled training items for large images with small objects.
* :class:`DetectDataset` -- decodes with pixlearn's safe I/O, crops the tile, augments boxes and masks together
  (:mod:`pixlearn.data.augment`), letterboxes to ``img_size`` and gives torchvision's targets (1-based labels).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.index import DatasetIndex

__all__ = ["DETECT_AUGMENT", "DetectSplits", "read_detect_dataset", "has_masks", "plan_detect_splits", "image_size", "box_sizes", "expand_repeats",
           "repeat_factors", "auto_tile", "tile_items", "window_of", "DetectDataset"]

#: The default training augmentation (``augment: detect``): an SSD-style zoom crop that keeps boxes, a horizontal flip
#: and a mild colour jitter.
DETECT_AUGMENT: list[dict[str, dict[str, Any]]] = [
    {"zoom_crop": {"scale": [0.5, 1.0], "p": 0.5}},
    {"hflip": {"p": 0.5}},
    {"color": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2}},
]
_LAYOUT = "a COCO (_annotations.coco.json / annotations/*.json), YOLO (images/ + labels/ + data.yaml) or Pascal VOC (images + annotations/*.xml) folder"


def read_detect_dataset(data: str | os.PathLike[str] | DatasetIndex) -> DatasetIndex:
    """The detection dataset at ``data`` (boxes, and instance masks where it has polygons).

    Raises
    ------
    ConfigError
        No such folder, a dataset of another task, or no box in any image.
    """
    from pixlearn.data.readers import read_dataset

    if isinstance(data, DatasetIndex):
        index = data
    else:
        path = Path(data)
        if not path.exists():
            raise ConfigError(f"{path}: no such folder; --data must be {_LAYOUT}")
        index = read_dataset(path)
    if Task(index.task) not in (Task.DETECT, Task.INSTANCE):
        raise ConfigError(f"{index.root}: holds a dataset in the {index.format} format ({Task(index.task).value}), not {_LAYOUT}")
    if not index.classes:
        raise ConfigError(f"{index.root}: the annotations name no class; add the category names")
    if not any(r.boxes is not None and len(r.boxes) for r in index.records):
        raise ConfigError(f"{index.root}: no image has a box ({len(index)} images read); a detector needs annotated objects: "
                          "check that the annotation files sit where the reader looks (VOC annotations/*.xml, YOLO labels/*.txt, COCO json)")
    return index


def has_masks(index: DatasetIndex) -> bool:
    """True when the objects carry instance masks (COCO polygons or RLE)."""
    return Task(index.task) is Task.INSTANCE or any(r.segmentations for r in index.records)


@dataclass
class DetectSplits:
    """Record indices of each split of ``index``, with a line saying where each split came from."""

    index: DatasetIndex
    train: list[int]
    val: list[int]
    test: list[int]
    sources: dict[str, str] = field(default_factory=dict)
    test_name: str = "test"

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), self.test_name: len(self.test)}

    def to_dict(self) -> dict[str, Any]:
        paths = {name: [str(self.index.records[i].path) for i in idx] for name, idx in (("val", self.val), (self.test_name, self.test))}
        return {"counts": self.counts(), "sources": dict(self.sources), "files": paths}


def plan_detect_splits(index: DatasetIndex, *, val_fraction: float, test_fraction: float, seed: int) -> DetectSplits:
    """The dataset's own ``val``/``test`` splits (``valid`` reads as val), else seeded shares of the training images.

    >>> from pixlearn.data.index import Record
    >>> index = DatasetIndex(Path("."), "voc", Task.DETECT, ["a"], [Record(Path(f"{i}.jpg")) for i in range(10)])
    >>> plan_detect_splits(index, val_fraction=0.2, test_fraction=0.1, seed=0).counts()
    {'train': 7, 'val': 2, 'holdout': 1}
    """
    alias = {"valid": "val", "validation": "val"}
    by_split: dict[str | None, list[int]] = {}
    for i, r in enumerate(index.records):
        by_split.setdefault(alias.get(str(r.split), r.split), []).append(i)
    has_val, has_test = bool(by_split.get("val")), bool(by_split.get("test"))
    pool = sorted(by_split.get("train", []) + by_split.get(None, []))
    if not pool:
        have = ", ".join(sorted(str(s) for s in by_split)) or "nothing"
        raise ConfigError(f"{index.root}: no training images (splits found: {have}); put them under train/ or use a folder without splits")
    origin = "train/" if by_split.get("train") else "all images"
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    n_val = 0 if has_val else (max(int(round(val_fraction * len(pool))), 1) if val_fraction > 0 else 0)
    n_test = 0 if has_test else (max(int(round(test_fraction * len(pool))), 1) if test_fraction > 0 else 0)
    if n_val + n_test >= len(pool):
        raise ConfigError(f"{index.root}: too few images ({len(pool)}) to hold out {n_val} for val and {n_test} for test and still train; "
                          "add images, give val/ and test/ splits, or lower val_fraction / test_fraction")
    sources = {"train": origin + (" minus the held-out images" if n_val + n_test else "")}
    if has_val:
        val = sorted(by_split["val"])
        sources["val"] = "the dataset's val split"
    else:
        val = sorted(order[:n_val])
        sources["val"] = f"{val_fraction:.0%} of {origin} held out (seeded permutation, seed {seed})" if n_val else "none (val_fraction=0)"
    if has_test:
        test, test_name = sorted(by_split["test"]), "test"
        sources["test"] = "the dataset's test split"
    else:
        test, test_name = sorted(order[n_val:n_val + n_test]), "holdout"
        sources["holdout"] = f"{test_fraction:.0%} of {origin} held out (seeded permutation, seed {seed})" if n_test else "none (test_fraction=0)"
    return DetectSplits(index, sorted(order[n_val + n_test:]), val, test, sources, test_name)


# ---------------------------------------------------------------- statistics
def image_size(index: DatasetIndex, i: int) -> tuple[int, int]:
    """(H, W) of record ``i``: from the annotations when they state it, else the image header."""
    rec = index.records[i]
    if rec.size is not None:
        return int(rec.size[0]), int(rec.size[1])
    from PIL import Image

    try:
        with Image.open(rec.path) as im:
            w, h = im.size
    except OSError:
        return (0, 0)
    return int(h), int(w)


def box_sizes(index: DatasetIndex, indices: Sequence[int], *, img_size: int, tile: int | None = None) -> np.ndarray:
    """Widths and heights (N, 2) of the boxes of ``indices`` in network pixels (after the letterbox to ``img_size``;
    with ``tile``, images larger than a tile are seen tile by tile at tile / img_size)."""
    out = []
    for i in indices:
        rec = index.records[i]
        if rec.boxes is None or not len(rec.boxes):
            continue
        h, w = image_size(index, i)
        side = max(h, w)
        if side <= 0:
            continue
        seen = min(side, tile) if tile else side
        b = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
        out.append(np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1) * (img_size / seen))
    return np.concatenate(out) if out else np.zeros((0, 2))


def repeat_factors(index: DatasetIndex, indices: Sequence[int], *, threshold: float | None) -> tuple[list[float], dict[str, Any]]:
    """LVIS repeat factors of the training images: ``r(image) = max over its classes of max(1, sqrt(t / f(class)))``,
    ``f`` the share of training images that hold the class.

    ``threshold`` None picks ``t`` = a quarter of the commonest class's share when the rarest class's share is at
    least 4x smaller, else 0 (off). Returns the factors and a summary (``t``, per-class shares, ``on``).

    >>> from pixlearn.data.index import Record
    >>> recs = [Record(Path(f"{i}.jpg"), boxes=np.zeros((1, 4)), box_labels=np.array([0 if i else 1])) for i in range(10)]
    >>> f, info = repeat_factors(DatasetIndex(Path("."), "voc", Task.DETECT, ["a", "b"], recs), range(10), threshold=None)
    >>> info["on"], round(f[0], 2), f[1]
    (True, 1.5, 1.0)
    """
    classes = [str(c) for c in index.classes]
    present = []
    for i in indices:
        lab = index.records[i].box_labels
        present.append(set(np.asarray(lab, np.int64).tolist()) if lab is not None else set())
    n = max(len(present), 1)
    share = {k: sum(k in p for p in present) / n for k in range(len(classes))}
    seen = {k: v for k, v in share.items() if v > 0}
    t = threshold
    if t is None:
        t = (max(seen.values()) / 4) if seen and min(seen.values()) * 4 <= max(seen.values()) else 0.0
    factors = [max([1.0] + [math.sqrt(t / share[k]) for k in p if share.get(k)]) if t > 0 else 1.0 for p in present]
    info = {"on": bool(t > 0 and any(f > 1 for f in factors)), "threshold": round(float(t), 4),
            "class_share": {classes[k]: round(v, 4) for k, v in share.items()}, "images_per_epoch": round(sum(factors), 1)}
    return factors, info


def expand_repeats(indices: Sequence[Any], factors: Sequence[float], *, seed: int) -> list[Any]:
    """Each item ``floor(r)`` times, plus once more with probability ``r - floor(r)`` (seeded: the same list every run)."""
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for item, r in zip(indices, factors, strict=True):
        k = int(math.floor(r)) + int(rng.random() < r - math.floor(r))
        out.extend([item] * max(k, 1))
    return out


# ---------------------------------------------------------------- tiles
def auto_tile(index: DatasetIndex, indices: Sequence[int], *, img_size: int) -> tuple[int, str]:
    """The tile side for training on ``indices`` (0: whole images) and why.

    Tiles (of ``img_size`` pixels: objects keep their resolution) when the median image is larger than 1.5 x
    ``img_size`` and the median box would shrink below 16 network pixels in the letterboxed whole image.
    """
    sides, boxes = [], []
    for i in list(indices)[:256]:
        h, w = image_size(index, i)
        if not h:
            continue
        sides.append(max(h, w))
        rec = index.records[i]
        if rec.boxes is not None and len(rec.boxes):
            b = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
            boxes.extend((np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)) * img_size / max(h, w)).tolist())
    if not sides or not boxes:
        return 0, "no tiles (no boxes to measure)"
    side, box = float(np.median(sides)), float(np.median(boxes))
    if side > 1.5 * img_size and box < 16:
        return img_size, (f"tiles of {img_size} px: the median box would be {box:.0f} px in the {img_size}-px letterbox of the "
                          f"median {side:.0f}-px image (--tile 0 trains on whole images)")
    return 0, f"whole images (median box {box:.0f} px at {img_size} px; --tile N trains on tiles)"


def window_of(h: int, w: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Tile windows ``(x0, y0, x1, y1)`` covering an (h, w) image, from :func:`pixlearn.tasks.detect.tiles.tile_windows`."""
    from pixlearn.tasks.detect.tiles import tile_windows

    return [tuple(int(v) for v in win) for win in tile_windows(h, w, tile, overlap)]  # type: ignore[misc]


def tile_items(index: DatasetIndex, indices: Sequence[int], *, tile: int, overlap: float) -> list[tuple[int, tuple[int, int, int, int] | None]]:
    """``(record, window)`` training items: one per tile of images larger than ``tile``, whole smaller images."""
    items: list[tuple[int, tuple[int, int, int, int] | None]] = []
    for i in indices:
        h, w = image_size(index, i)
        if not tile or max(h, w) <= tile or not h:
            items.append((i, None))
            continue
        items.extend((i, win) for win in window_of(h, w, tile, overlap))
    return items


# ---------------------------------------------------------------- the torch dataset
def _crop(sample: Any, window: tuple[int, int, int, int], *, keep: float = 0.5) -> Any:
    """The part of ``sample`` inside ``window``: boxes clipped to it, those with less than ``keep`` of their area left dropped."""
    from pixlearn._core.types import Boxes, BoxFormat

    x0, y0, x1, y1 = window
    image = np.ascontiguousarray(sample.image[y0:y1, x0:x1])
    h, w = image.shape[:2]
    changes: dict[str, Any] = {"image": image}
    if sample.boxes is not None:
        b = sample.boxes.to(BoxFormat.XYXY).data.astype(np.float32)
        area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
        c = b - np.array([x0, y0, x0, y0], np.float32)
        c[:, 0::2] = np.clip(c[:, 0::2], 0, w)
        c[:, 1::2] = np.clip(c[:, 1::2], 0, h)
        left = np.clip(c[:, 2] - c[:, 0], 0, None) * np.clip(c[:, 3] - c[:, 1], 0, None)
        ok = (left >= keep * np.maximum(area, 1e-6)) & (left > 0)
        changes["boxes"] = Boxes(c[ok], BoxFormat.XYXY, (h, w))
        labels = sample.box_labels if sample.box_labels is not None else np.zeros(len(b), np.int64)
        changes["box_labels"] = np.asarray(labels)[ok]
        if sample.masks is not None:
            changes["masks"] = np.ascontiguousarray(np.asarray(sample.masks)[ok][:, y0:y1, x0:x1])
    return sample.replace(**changes)


class DetectDataset:
    """A torch Dataset of detection items: ``dataset[(k, seed)]`` -> :class:`~pixlearn.data.loader.Item` (or Skipped).

    Parameters
    ----------
    index : DatasetIndex
    items : list of (record index, window or None)
        What to load: a record, optionally only its tile window ``(x0, y0, x1, y1)``.
    img_size : int
        Images are letterboxed to ``img_size`` x ``img_size`` (longer side resized, zeros bottom/right).
    augment : spec or None
        A :func:`pixlearn.data.augment.build_augment` spec (``"detect"`` is :data:`DETECT_AUGMENT`); None for none.
    masks : bool
        Give instance masks (Mask R-CNN); else they are not decoded.

    Targets are torchvision's: ``boxes`` float32 (K, 4) xyxy in network pixels, ``labels`` int64 1-based,
    ``masks`` uint8 (K, S, S) when ``masks``.
    """

    def __init__(self, index: DatasetIndex, items: Sequence[tuple[int, tuple[int, int, int, int] | None]], *, img_size: int,
                 augment: Any = None, masks: bool = False) -> None:
        from pixlearn.data.augment import build_augment
        from pixlearn.data.loader import ImageDataset

        self.index, self.items, self.img_size, self.masks = index, list(items), int(img_size), bool(masks)
        task = Task.INSTANCE if self.masks else Task.DETECT
        spec = DETECT_AUGMENT if augment == "detect" else augment
        transform = build_augment(spec, task=task) if spec not in (None, "none", []) else None
        self._prep = ImageDataset(index, transform=transform, task=task)
        self.mean = self.std = None  # the network normalises

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        import torch
        import torch.nn.functional as F

        from pixlearn._core.errors import PixlearnError
        from pixlearn.data.loader import Item, Skipped

        k, seed = key if isinstance(key, tuple) else (key, None)
        i, window = self.items[k]
        rec = self.index.records[i]
        try:
            sample = self.index.load(rec)
        except (PixlearnError, OSError) as exc:
            return Skipped(int(k), str(rec.path), f"{type(exc).__name__}: {exc}")
        if not self.masks and sample.masks is not None:
            sample = sample.replace(masks=None)
        if window is not None:
            sample = _crop(sample, window)
        item = self._prep.prepare(sample, index=int(k), seed=seed)
        img = item.image
        h, w = img.shape[-2:]
        s = self.img_size
        scale = s / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        out = torch.zeros((img.shape[0], s, s), dtype=torch.uint8)
        if (nh, nw) != (h, w):
            resized = F.interpolate(img.unsqueeze(0).float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
            out[:, :nh, :nw] = resized[0].round().clamp(0, 255).to(torch.uint8)
        else:
            out[:, :nh, :nw] = img
        t = item.targets
        boxes = t["boxes"].float() * torch.tensor([nw / w, nh / h, nw / w, nh / h])
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        targets = {"boxes": boxes[keep], "labels": t["labels"][keep].long() + 1}
        if self.masks:
            m = t.get("masks")
            full = torch.zeros((int(keep.sum()), s, s), dtype=torch.uint8)
            if m is not None and len(m):
                m = m[keep]
                if len(m):
                    full[:, :nh, :nw] = F.interpolate(m.unsqueeze(1).float(), size=(nh, nw), mode="nearest")[:, 0].to(torch.uint8)
            targets["masks"] = full
        return Item(out, targets, int(k))
