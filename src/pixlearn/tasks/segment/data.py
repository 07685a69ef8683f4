"""A mask dataset ready for segmentation: checked, split into train / val / test, turned into torch datasets.

Any layout :func:`~pixlearn.data.readers.read_dataset` reads as a ``segment`` dataset works:
``images/`` + ``masks/``, ``<split>/images/`` + ``<split>/masks/``, the ISBI layout
``train/image/N.png`` + ``train/label/N.png``, or ``pixlearn data sample shapes DIR --task segment``.

Split policy (what every number in a run's report is measured on):

* ``train`` -- the dataset's ``train`` split (or every image when it has no splits), minus the
  held-out parts below; the only images the weights are fitted on.
* ``val`` -- the dataset's ``val`` split, else ``val_fraction`` of train drawn by a seeded
  permutation; used for early stopping and to pick the best epoch (unless the last epoch is kept).
* ``test`` -- the dataset's ``test`` split, else ``test_fraction`` of train (reported as
  ``holdout``); never used for training or model selection.

Training items are random crops of the training size (padded with the ignore label when an image
is smaller) flipped at random, the image and its mask moved together by torchvision.transforms.v2.
Validation and test items are whole images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Sample, Task
from pixlearn.data.index import DatasetIndex

__all__ = ["SegmentSplits", "SegmentCrop", "read_segment_dataset", "plan_segment_splits", "make_segment_dataset", "IGNORE_INDEX"]

IGNORE_INDEX = 255
_LAYOUT_HINT = (
    "a mask dataset: images/ + masks/ folders with matching file names (pixel value = class id, 255 = ignore), "
    "optionally under train/ val/ test/ (e.g. train/image/ + train/label/)"
)


def read_segment_dataset(data: str | os.PathLike[str] | DatasetIndex) -> DatasetIndex:
    """Index a mask dataset and check that it can train a segmenter.

    Records without a mask are left out (``pixlearn data check`` lists them).

    Raises
    ------
    ConfigError
        The path does not exist, is not a mask dataset, or has no image with a mask.

    Examples
    --------
    >>> read_segment_dataset("/no/such/folder")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: /no/such/folder: no such folder; --data must be a mask dataset: images/ + masks/ folders with matching file names (pixel value = class id, 255 = ignore), optionally under train/ val/ test/ (e.g. train/image/ + train/label/)
    """
    from pixlearn.data.readers import read_task_dataset

    index = read_task_dataset(data, Task.SEGMENT, layout=_LAYOUT_HINT, missing="no such folder")
    records = [r for r in index.records if r.mask_path is not None]
    if not records:
        raise ConfigError(f"{index.root}: no image has a mask; expected {_LAYOUT_HINT}")
    if len(index.classes) < 2:
        raise ConfigError(f"{index.root}: the masks hold a single class {index.classes}; segmentation needs at least 2 (e.g. background and object)")
    if len(index.classes) > IGNORE_INDEX:
        raise ConfigError(f"{index.root}: {len(index.classes)} classes; at most {IGNORE_INDEX} (255 is the ignore label)")
    if len(records) != len(index.records):
        from dataclasses import replace

        index = replace(index, records=records)
    return index


@dataclass
class SegmentSplits:
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


def plan_segment_splits(index: DatasetIndex, *, val_fraction: float, test_fraction: float, seed: int) -> SegmentSplits:
    """Decide the train / val / test record indices (see the module docstring).

    Examples
    --------
    >>> from pixlearn.data.index import Record
    >>> index = DatasetIndex(Path("."), "masks", Task.SEGMENT, ["bg", "fg"], [Record(Path(f"{i}.png")) for i in range(10)])
    >>> plan_segment_splits(index, val_fraction=0.2, test_fraction=0.1, seed=0).counts()
    {'train': 7, 'val': 2, 'holdout': 1}
    """
    by_split: dict[str | None, list[int]] = {}
    for i, r in enumerate(index.records):
        by_split.setdefault(r.split, []).append(i)
    has_val, has_test = bool(by_split.get("val")), bool(by_split.get("test"))
    pool = sorted(by_split.get("train", []) + by_split.get(None, []))
    if not pool:
        have = ", ".join(sorted(str(s) for s in by_split)) or "nothing"
        raise ConfigError(f"{index.root}: no training images (splits found: {have}); put them under train/ or use a folder without splits")
    origin = "train/" if by_split.get("train") else "all images"
    rng = np.random.default_rng(seed)
    order = [pool[i] for i in rng.permutation(len(pool))]
    n_val = 0 if has_val else int(round(val_fraction * len(pool)))
    n_test = 0 if has_test else int(round(test_fraction * len(pool)))
    if val_fraction > 0 and not has_val:
        n_val = max(n_val, 1)
    if test_fraction > 0 and not has_test:
        n_test = max(n_test, 1)
    if n_val + n_test >= len(pool):
        raise ConfigError(
            f"{index.root}: too few images ({len(pool)}) to hold out {n_val} for val and {n_test} for test and still train; "
            "add images, give val/ and test/ splits, or lower val_fraction / test_fraction"
        )
    sources: dict[str, str] = {"train": origin + (" minus the held-out images" if n_val + n_test else "")}
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
    train = sorted(order[n_val + n_test:])
    others = sorted(str(s) for s in by_split if s not in ("train", "val", "test", None))
    if others:
        sources["ignored"] = f"split(s) {', '.join(others)} are not used"
    return SegmentSplits(index, train, val, test, sources, test_name)


class SegmentCrop:
    """Random crop to ``size`` plus random flips, applied to an image and its mask together (``Sample -> Sample``).

    An image smaller than ``size`` is padded (image with 0, mask with ``fill_mask``, the ignore
    label), so the padding never counts in the loss. ``extra`` (an
    :class:`~pixlearn.data.augment.Augment`) runs after the crop, e.g. colour jitter or rotations.

    Examples
    --------
    >>> crop = SegmentCrop(16, hflip=0.5, vflip=0.5)
    >>> img = np.zeros((10, 40, 3), np.uint8); mask = np.ones((10, 40), np.uint8)
    >>> out = crop(Sample(image=img, mask=mask))
    >>> out.image.shape, out.mask.shape, sorted(np.unique(out.mask).tolist())
    ((16, 16, 3), (16, 16), [1, 255])
    """

    def __init__(self, size: int | tuple[int, int], *, hflip: float = 0.5, vflip: float = 0.5,
                 fill_mask: int = IGNORE_INDEX, extra: Any = None) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.hflip, self.vflip, self.fill_mask, self.extra = float(hflip), float(vflip), int(fill_mask), extra
        self._build()

    def _build(self) -> None:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        steps = [v2.RandomCrop(list(self.size), pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: self.fill_mask})]
        if self.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(self.hflip))
        if self.vflip > 0:
            steps.append(v2.RandomVerticalFlip(self.vflip))
        self._transform = v2.Compose(steps)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_transform"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build()

    def __repr__(self) -> str:
        return f"SegmentCrop(size={self.size}, hflip={self.hflip}, vflip={self.vflip}, extra={self.extra!r})"

    def __call__(self, sample: Sample) -> Sample:
        import torch
        from torchvision import tv_tensors

        image = np.asarray(sample.image)
        if sample.mask is None:
            raise ConfigError(f"{sample.path}: has no mask to crop with its image")
        img = torch.from_numpy(image.copy() if not image.flags.writeable else np.ascontiguousarray(image))
        img = img.unsqueeze(0) if img.ndim == 2 else img.permute(2, 0, 1)
        mask = np.asarray(sample.mask)
        if mask.dtype not in (np.uint8, np.int16, np.int32, np.int64):
            mask = mask.astype(np.int64)
        mask = mask.copy() if not mask.flags.writeable else np.ascontiguousarray(mask)
        img_t, mask_t = self._transform(tv_tensors.Image(img), tv_tensors.Mask(torch.from_numpy(mask)))
        out_img = img_t.as_subclass(torch.Tensor).permute(1, 2, 0).numpy()
        out_img = np.ascontiguousarray(out_img[..., 0] if image.ndim == 2 else out_img)
        out = sample.replace(image=out_img, mask=np.ascontiguousarray(mask_t.as_subclass(torch.Tensor).numpy()))
        if self.extra is not None:
            out = self.extra(out)
        return out


def make_segment_dataset(
    index: DatasetIndex,
    indices: Sequence[int],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    crop: int | tuple[int, int] | None = None,
    augment: Any = "flips",
) -> Any:
    """An :class:`~pixlearn.data.loader.ImageDataset` over some records.

    Parameters
    ----------
    crop : int or (height, width), optional
        Training: random crops of this size with flips (``augment``). ``None``: whole images, as
        they are (validation, test).
    augment : str or list, default "flips"
        ``"flips"`` (random crop + horizontal and vertical flips), ``"none"`` (random crop only),
        or a pixlearn augmentation preset / YAML file / list of steps, applied after the crop and
        flips (see :func:`~pixlearn.data.augment.build_augment`).
    """
    from pixlearn.data.loader import ImageDataset

    transform = None
    if crop is not None:
        extra = None
        flips = augment not in ("none", None, [])
        if augment not in ("flips", "none", None, []):
            from pixlearn.data.augment import build_augment

            extra = build_augment(augment, task="segment", img_size=None)
        transform = SegmentCrop(crop, hflip=0.5 if flips else 0.0, vflip=0.5 if flips else 0.0, extra=extra)
    return ImageDataset(index.subset(indices=list(indices)), transform=transform, mean=mean, std=std, task=Task.SEGMENT)
