"""A labelled dataset ready for classification: checked, split into train / val / test, turned into torch datasets.

Split policy (what every number in a run's report is measured on):

* ``train`` -- the dataset's ``train`` split (or all its images when it has no splits), minus
  whatever is held out below; the only images the weights are fitted on.
* ``val`` -- the dataset's ``val`` split, else ``val_fraction`` of train held out with
  :func:`~pixlearn.data.splits.stratified_split`; used for early stopping and to pick the best
  epoch, so its scores are *not* unbiased test scores.
* ``test`` -- the dataset's ``test`` split, else ``test_fraction`` of train held out the same way
  (reported as ``holdout``); never used for training, early stopping or model selection.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.index import DatasetIndex

__all__ = ["ClassifySplits", "read_classify_dataset", "plan_splits", "fold_splits", "make_dataset"]

_LAYOUT_HINT = "a folder with one sub-folder of images per class (optionally under train/ val/ test/), or a CSV with path,label columns"


def read_classify_dataset(data: str | os.PathLike[str] | DatasetIndex) -> DatasetIndex:
    """Index a labelled dataset and check that it can train a classifier.

    Raises
    ------
    ConfigError
        The path does not exist, holds no labelled images, is not a classification dataset, or
        has fewer than two classes; the message says what was found and what is expected.

    Examples
    --------
    >>> read_classify_dataset("/no/such/folder")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: /no/such/folder: no such folder or file; --data must be a folder with one sub-folder of images per class (optionally under train/ val/ test/), or a CSV with path,label columns
    """
    from pixlearn.data.readers import read_task_dataset

    index = read_task_dataset(data, Task.CLASSIFY, layout=_LAYOUT_HINT,
                              wrong=f"not labelled for classification; train classify needs {_LAYOUT_HINT}")
    labelled = [r for r in index.records if r.label is not None]
    if not labelled:
        raise ConfigError(f"{index.root}: holds no labelled images; expected {_LAYOUT_HINT}")
    counts = Counter(r.label for r in labelled)
    if len(index.classes) < 2 or len(counts) < 2:
        names = [index.classes[c] for c in counts] if index.classes else []
        raise ConfigError(
            f"{index.root}: found a single class ({', '.join(repr(n) for n in names)}, {len(labelled)} images); "
            "a classifier needs at least 2 classes: add one sub-folder of images per class"
        )
    return index


@dataclass
class ClassifySplits:
    """Record indices of each split of ``index``, with a line saying where each split came from."""

    index: DatasetIndex
    train: list[int]
    val: list[int]
    test: list[int]
    sources: dict[str, str] = field(default_factory=dict)
    test_name: str = "test"

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), self.test_name: len(self.test)}

    def class_counts(self, split: str) -> list[int]:
        idx = {"train": self.train, "val": self.val, "test": self.test, self.test_name: self.test}[split]
        c = Counter(self.index.records[i].label for i in idx)
        return [int(c.get(k, 0)) for k in range(len(self.index.classes))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "sources": dict(self.sources),
            "per_class": {
                name: dict(zip(self.index.classes, self.class_counts(name if name != self.test_name else "test")))
                for name in ("train", "val", self.test_name)
            },
        }


def _carve(labels: list[int], fractions: dict[str, float], seed: int) -> dict[str, list[int]]:
    """Stratified hold-outs of the given fractions; returns positions into ``labels`` per name (+ 'train')."""
    from pixlearn.data.splits import stratified_split

    names = [n for n, f in fractions.items() if f > 0]
    if not names:
        return {"train": list(range(len(labels)))}
    ratios = [1.0 - sum(fractions[n] for n in names)] + [fractions[n] for n in names]
    out = stratified_split(labels, ratios=ratios, seed=seed)
    keys = list(out)  # train, val[, test]
    return {"train": out[keys[0]], **{n: out[k] for n, k in zip(names, keys[1:])}}


def plan_splits(index: DatasetIndex, *, val_fraction: float, test_fraction: float, seed: int) -> ClassifySplits:
    """Decide the train / val / test record indices (see the module docstring for the policy).

    Examples
    --------
    >>> from pixlearn.data.index import Record
    >>> recs = [Record(Path(f"{i}.png"), label=i % 2) for i in range(20)]
    >>> index = DatasetIndex(Path("."), "imagefolder", Task.CLASSIFY, ["a", "b"], recs)
    >>> s = plan_splits(index, val_fraction=0.1, test_fraction=0.2, seed=0)
    >>> s.counts(), s.test_name
    ({'train': 14, 'val': 2, 'holdout': 4}, 'holdout')
    """
    by_split: dict[str | None, list[int]] = {}
    for i, r in enumerate(index.records):
        if r.label is not None:
            by_split.setdefault(r.split, []).append(i)
    has_val, has_test = bool(by_split.get("val")), bool(by_split.get("test"))
    pool = by_split.get("train", []) + by_split.get(None, [])
    others = sorted(str(s) for s in by_split if s not in ("train", "val", "test", None))
    if not pool:
        have = ", ".join(sorted(str(s) for s in by_split)) or "nothing"
        raise ConfigError(f"{index.root}: no training images (splits found: {have}); put them under train/ or use a folder without splits")
    origin = "train/" if by_split.get("train") else "all images"
    fractions = {"val": 0.0 if has_val else val_fraction, "test": 0.0 if has_test else test_fraction}
    labels = [int(index.records[i].label) for i in pool]  # type: ignore[arg-type]
    carved = _carve(labels, fractions, seed)
    train = sorted(pool[p] for p in carved["train"])
    sources: dict[str, str] = {"train": f"{origin}" + (" minus the held-out images" if any(fractions.values()) else "")}
    if has_val:
        val = sorted(by_split["val"])
        sources["val"] = "the dataset's val split"
    else:
        val = sorted(pool[p] for p in carved.get("val", []))
        sources["val"] = (
            f"{val_fraction:.0%} of {origin} held out (stratified_split, seed {seed})" if val_fraction > 0 else "none (val_fraction=0)"
        )
    if has_test:
        test, test_name = sorted(by_split["test"]), "test"
        sources["test"] = "the dataset's test split"
    else:
        test, test_name = sorted(pool[p] for p in carved.get("test", [])), "holdout"
        sources["holdout"] = (
            f"{test_fraction:.0%} of {origin} held out (stratified_split, seed {seed})" if test_fraction > 0 else "none (test_fraction=0)"
        )
    if others:
        sources["ignored"] = f"split(s) {', '.join(others)} are not used"
    if not has_test and test_fraction > 0 and not test:
        raise ConfigError(
            f"{index.root}: too few images ({len(pool)}) to hold out {test_fraction:.0%} for the test score; "
            "add images, give a test/ split, or set test_fraction=0"
        )
    missing = [index.classes[c] for c in range(len(index.classes)) if c not in {index.records[i].label for i in train}]
    if missing:
        raise ConfigError(
            f"{index.root}: class(es) {missing} have no training images; every class needs images in train/"
        )
    return ClassifySplits(index, train, val, test, sources, test_name)


def fold_splits(splits: ClassifySplits, *, folds: int, seed: int) -> list[ClassifySplits]:
    """k-fold cross-validation over train + val (the test split stays out of every fold).

    Fold ``i`` validates (early stopping, best epoch) on its ``1/k`` part and trains on the rest.

    Raises
    ------
    ConfigError
        Fewer images than folds.
    """
    from dataclasses import replace

    from pixlearn.engine.kfold import fold_splits as engine_fold_splits

    pool = sorted(splits.train + splits.val)
    labels = [int(splits.index.records[i].label) for i in pool]  # type: ignore[arg-type]
    return engine_fold_splits(replace(splits, train=pool, val=[]), folds=folds, seed=seed, labels=labels)  # stratified by class


def make_dataset(
    index: DatasetIndex,
    indices: Sequence[int],
    *,
    img_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    augment: Any = None,
) -> Any:
    """An :class:`~pixlearn.data.loader.ImageDataset` over some records: resized, normalised, augmented when asked."""
    from pixlearn.data.augment import build_augment
    from pixlearn.data.loader import ImageDataset

    transform = build_augment(augment, task="classify", img_size=img_size) if augment not in (None, "none", []) else None
    return ImageDataset(index.subset(indices=list(indices)), transform=transform, img_size=img_size, mean=mean, std=std)
