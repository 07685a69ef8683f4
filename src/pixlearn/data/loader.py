"""Batches for training: a torch Dataset over a DatasetIndex, a skip-and-report collate, seeded loaders.

Images are decoded through :meth:`DatasetIndex.load` (the safe reader) every time they are
needed; nothing decoded is cached, so memory stays flat over an epoch. A file that cannot be
read mid-epoch does not stop training: :class:`ImageDataset` returns a :class:`Skipped` marker
for it (falsy, like ``None``), :func:`collate_skip_none` leaves it and any ``None`` out of the
batch and carries the path and error in ``batch.skipped`` (the report travels with the batch,
so it works across worker processes), and the loader made by :func:`make_loader` gathers them
for :func:`loader_skipped`.

Reproducibility: :func:`make_loader` draws the order from ``(seed, epoch)`` and gives every
item the seed ``sample_seed(seed, epoch, index)`` for its augmentation, so two loaders with the
same seed yield identical batches, whatever their number of workers.

Images stay uint8 through decoding and augmentation; the collate turns the stacked batch into
float32 in [0, 1] (normalised when ``mean``/``std`` are given) in one vectorised step.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from pixlearn._core.errors import ConfigError, PixlearnError, ShapeError
from pixlearn._core.types import Boxes, BoxFormat, Sample, Task
from pixlearn.data.augment import (
    Augment,
    _normalizer,
    _resize_to,
    _sanitize,
    _seeded,
    _size_pair,
    _targets,
    _task,
    _to_tv,
    sample_seed,
)
from pixlearn.data.index import DatasetIndex

__all__ = [
    "Batch",
    "ImageDataset",
    "Item",
    "SeededSampler",
    "Skipped",
    "SkippingLoader",
    "collate_skip_none",
    "loader_skipped",
    "make_loader",
    "seed_worker",
]

log = logging.getLogger("pixlearn.data")


class Item(NamedTuple):
    """One prepared example: uint8 (C, H, W) image, plain-tensor targets, its index in the dataset."""

    image: torch.Tensor
    targets: dict[str, torch.Tensor]
    index: int


@dataclass
class Skipped:
    """An example that could not be loaded: where it is and why. Falsy, so ``if item:`` skips it."""

    index: int
    path: str
    error: str

    def __bool__(self) -> bool:
        return False


class ImageDataset(Dataset):
    """A torch Dataset over a :class:`DatasetIndex`, decoding each image when asked.

    Parameters
    ----------
    index : DatasetIndex
    transform : callable, optional
        ``Sample -> Sample``, typically :func:`~pixlearn.data.augment.build_augment`'s result.
    img_size : int or (height, width), optional
        Final size of every image (and its targets). Default: the transform's ``img_size``;
        without either, images keep their size and a batch needs them all equal.
    task : Task or str, optional
        Default: the index's task. Detection/instance items always carry ``boxes`` (maybe empty).
    mean, std : sequence of float, optional
        Normalisation applied by the collate (``(x - mean) / std`` on [0, 1] values).

    ``dataset[i]`` returns an :class:`Item`, or a :class:`Skipped` marker when the file cannot be
    decoded. ``dataset[(i, seed)]`` (what :class:`SeededSampler` yields) seeds the augmentation.
    """

    def __init__(
        self,
        index: DatasetIndex,
        *,
        transform: Callable[[Sample], Sample] | None = None,
        img_size: int | tuple[int, int] | None = None,
        task: Task | str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(index, DatasetIndex):
            raise ConfigError(
                f"ImageDataset needs a DatasetIndex (from read_dataset), got {type(index).__name__}"
            )
        if transform is not None and not callable(transform):
            raise ConfigError(
                f"transform must be callable (Sample -> Sample), got {type(transform).__name__}"
            )
        self.index = index
        self.transform = transform
        size = _size_pair(img_size)
        if size is None and isinstance(transform, Augment):
            size = transform.img_size
        self.img_size = size
        self.task = _task(task) if task is not None else index.task
        _normalizer(mean, std, 3)  # validate now, not in a worker
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> Item | Skipped:
        index, seed = key if isinstance(key, tuple) else (key, None)
        record = self.index.records[index]
        try:
            sample = self.index.load(record)
        except (PixlearnError, OSError) as exc:
            return Skipped(int(index), str(record.path), f"{type(exc).__name__}: {exc}")
        return self.prepare(sample, index=int(index), seed=seed)

    def prepare(self, sample: Sample, *, index: int = -1, seed: int | None = None) -> Item:
        """Augment (seeded when ``seed`` is given), resize and split a loaded sample into tensors."""
        if self.task in (Task.DETECT, Task.INSTANCE) and sample.boxes is None:
            h, w = sample.image.shape[:2]
            sample = sample.replace(
                boxes=Boxes(np.zeros((0, 4), np.float32), BoxFormat.XYXY, (h, w)),
                box_labels=np.zeros(0, np.int64),
            )
        if isinstance(self.transform, Augment):
            tv = self.transform.apply_tv(_to_tv(sample), seed=seed)
        else:
            if self.transform is not None:
                with _seeded(seed):
                    sample = self.transform(sample)
            tv = _to_tv(sample)
        resized = _resize_to(tv, self.img_size)
        if resized is not tv or not isinstance(self.transform, Augment):  # Augment has sanitised already
            tv = _sanitize(resized)
        return Item(tv["image"].as_subclass(torch.Tensor), _targets(tv, sample), index)


class SeededSampler(Sampler):
    """Yields ``(index, seed)`` pairs: a (shuffled) order drawn from ``(seed, epoch)`` and one seed per item.

    The epoch advances by one on every pass; :meth:`set_epoch` sets the next pass's epoch.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, -1))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = range(self.n)
        for i in order:
            yield (i, sample_seed(self.seed, epoch, i))


@dataclass
class Batch:
    """A collated batch.

    Attributes
    ----------
    images : Tensor of shape (N, C, H, W), float32
        In [0, 1], or normalised when the dataset has ``mean``/``std``.
    targets : Tensor or list of dict or None
        Classification: int64 (N,) labels; semantic segmentation: int64 (N, H, W) masks;
        restoration: float32 (N, C, H, W) clean images in [0, 1]; detection / instance
        segmentation: one dict per image with ``boxes`` float32 (K, 4) xyxy, ``labels`` int64
        (K,) and ``masks`` uint8 (K, H, W) (torchvision's convention).
    indices : Tensor of shape (N,), int64
        Dataset indices of the images.
    skipped : list of Skipped
        Examples of this batch that could not be decoded.

    ``images, targets = batch`` unpacks the first two.
    """

    images: torch.Tensor
    targets: Any
    indices: torch.Tensor
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __iter__(self) -> Iterator[Any]:
        yield self.images
        yield self.targets

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        t = self.targets
        if isinstance(t, torch.Tensor):
            t = fn(t)
        elif isinstance(t, list):
            t = [{k: fn(v) for k, v in d.items()} for d in t]
        return Batch(fn(self.images), t, self.indices, self.skipped)

    def to(self, device: Any, *, non_blocking: bool = False) -> Batch:
        return self._map(lambda x: x.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:  # called by DataLoader(pin_memory=True)
        return self._map(lambda x: x.pin_memory())


def _shared_empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor, in shared memory when built inside a DataLoader worker (no copy on the way out)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel, device="cpu")
    return torch.empty(0, dtype=dtype).new(storage).view(*shape)


def _stack_images(
    images: list[torch.Tensor], stats: tuple[torch.Tensor, torch.Tensor] | None
) -> torch.Tensor:
    """Stack uint8 (C, H, W) images into float32 (N, C, H, W): ``x / 255``, or ``x * scale + shift``.

    Each image is converted while it is copied into the batch (one pass, whatever its strides),
    then scaled in place: three times faster than stacking, then converting, then normalising.
    """
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise ShapeError(
            f"images in a batch differ in size {sorted(shapes)[:3]}; give img_size= to ImageDataset or build_augment"
        )
    out = _shared_empty((len(images), *images[0].shape), torch.float32)
    for i, x in enumerate(images):
        out[i].copy_(x)
    if stats is None:
        out.mul_(1 / 255)
    else:
        out.mul_(stats[0]).add_(stats[1])
    return out


def collate_skip_none(
    items: Sequence[Item | Skipped | None],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Batch:
    """Collate :class:`Item` s into a :class:`Batch`, leaving out ``None`` and :class:`Skipped` entries.

    Skipped entries are reported in ``batch.skipped``. A batch with nothing left has
    ``len(batch) == 0`` and an empty ``images`` tensor.
    """
    good = [it for it in items if isinstance(it, Item)]
    skipped = [it for it in items if isinstance(it, Skipped)]
    indices = torch.tensor([it.index for it in good], dtype=torch.int64)
    if not good:
        return Batch(torch.empty((0, 3, 0, 0)), None, indices, skipped)
    stats = None
    if mean is not None or std is not None:
        scale, shift = _normalizer(mean, std, good[0].image.shape[0])
        stats = (scale.unsqueeze(0), shift.unsqueeze(0))
    images = _stack_images([it.image for it in good], stats)
    first = good[0].targets
    targets: Any
    try:
        if "boxes" in first:
            targets = [it.targets for it in good]
        elif "mask" in first:
            targets = torch.stack([it.targets["mask"] for it in good]).to(torch.int64)
        elif "target" in first:
            targets = _stack_images([it.targets["target"] for it in good], None)
        elif "label" in first:
            targets = torch.stack([it.targets["label"] for it in good])
        else:
            targets = None
    except KeyError as exc:
        raise ShapeError(
            f"examples in one batch carry different targets (one lacks {exc}); check the dataset's labels"
        ) from None
    return Batch(images, targets, indices, skipped)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed numpy and ``random`` from the worker's torch seed; one OpenCV thread."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


_END = object()


class SkippingLoader(DataLoader):
    """A DataLoader that gathers each epoch's skipped files in ``skipped`` (see :func:`loader_skipped`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[Skipped] = []

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        skipped: list[Skipped] = []
        self.skipped = skipped
        batches = super().__iter__()
        while True:
            if self.num_workers == 0:
                # Per-image ops are tiny: intra-op threads only contend (8x slower on a busy
                # 2-core machine). Worker processes run with one thread; so does this fetch.
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    batch = next(batches, _END)
                finally:
                    torch.set_num_threads(threads)
            else:
                batch = next(batches, _END)
            if batch is _END:
                return
            if isinstance(batch, Batch) and batch.skipped:
                for s in batch.skipped:
                    log.warning("skipped %s: %s", s.path, s.error)
                skipped.extend(batch.skipped)
            yield batch


def loader_skipped(loader: DataLoader) -> list[Skipped]:
    """The files skipped during the loader's current or last epoch (empty for other loaders)."""
    return list(getattr(loader, "skipped", []))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    drop_last: bool = False,
    pin_memory: bool = False,
    multiprocessing_context: str | None = None,
) -> SkippingLoader:
    """A seeded DataLoader over ``dataset`` that skips and reports unreadable files.

    Parameters
    ----------
    dataset : ImageDataset or any map-style Dataset
    batch_size : int
    shuffle : bool
        A new order every epoch, drawn from ``(seed, epoch)``.
    workers : int
        Worker processes (0: load in this process). Workers persist across epochs.
    seed : int
        With an :class:`ImageDataset`, item ``i`` of epoch ``e`` is augmented with
        ``sample_seed(seed, e, i)``: the same seed gives the same batches with any ``workers``.
    drop_last : bool
    pin_memory : bool
    multiprocessing_context : {"fork", "forkserver", "spawn"}, optional
        Default: "forkserver" (a plain fork can deadlock workers once OpenCV threads have run).

    Returns
    -------
    SkippingLoader
        Yields :class:`Batch` es; :func:`loader_skipped` lists what the epoch skipped.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
    generator = torch.Generator().manual_seed(int(seed))
    sampler: Sampler
    if isinstance(dataset, ImageDataset):
        sampler = SeededSampler(len(dataset), shuffle=shuffle, seed=seed)
        collate = functools.partial(collate_skip_none, mean=dataset.mean, std=dataset.std)
    else:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        collate = collate_skip_none
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {
            "persistent_workers": True,
            "worker_init_fn": seed_worker,
            # forkserver by default: a plain fork of a process whose OpenCV/OpenMP thread pools
            # have run can deadlock its workers (seen in the test suite under pytest-xdist)
            "multiprocessing_context": multiprocessing_context or "forkserver",
        }
    return SkippingLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
        **extra,
    )
