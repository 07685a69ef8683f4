"""Restoration data: clean or paired folders, their splits, and the patch datasets the engine trains on.

* :func:`plan_restore_data` reads a folder (clean images, ``degraded/`` + ``clean/`` pairs, or
  any image folder whose images are taken as clean), decides grey or colour, and splits it
  into train / val / test (a folder's own split folders, else a seeded hold-out).
* :class:`PatchDataset` cuts many random patches per image per epoch (a random crop, one of the
  8 flips/rotations, then the degradation, all drawn from the item's seed) -- the patch-based
  training of DnCNN / EDSR.
* :class:`FixedPatchDataset` holds fixed, seeded validation pairs (a centre crop of each image,
  degraded once), so every epoch is scored on the same pixels.

Items are ``(degraded, clean, index)`` with float32 (C, h, w) / (C, H, W) tensors in [0, 1];
:func:`collate_pairs` stacks them into a :class:`~pixlearn.data.loader.Batch`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from pixlearn._core.errors import ConfigError, PixlearnError, ShapeError
from pixlearn.data.augment import sample_seed
from pixlearn.tasks.restore.degrade import Pipeline, modcrop

__all__ = [
    "PairSource",
    "RestoreData",
    "PatchDataset",
    "FixedPatchDataset",
    "collate_pairs",
    "detect_mode",
    "load_clean",
    "plan_restore_data",
]

Mode = Literal["L", "RGB"]


@dataclass(frozen=True)
class PairSource:
    """One image: its clean file and, for paired data, its degraded file."""

    clean: Path
    degraded: Path | None = None


@dataclass
class RestoreData:
    """A planned restoration dataset.

    Attributes
    ----------
    root : Path
    format : str
        ``paired`` (degraded + clean files) or ``clean`` (degradations synthesised).
    mode : {"L", "RGB"}
    train, val, test : list of PairSource
    sources : dict
        Where each split came from (``"val/ folder"``, ``"10% of train, seed 0"``...).
    scale : int
        Paired data: clean size / degraded size (1 unless super-resolution pairs).
    """

    root: Path
    format: str
    mode: Mode
    train: list[PairSource]
    val: list[PairSource]
    test: list[PairSource]
    sources: dict[str, str] = field(default_factory=dict)
    scale: int = 1
    fingerprint: str = ""

    @property
    def paired(self) -> bool:
        return self.format == "paired"


def load_clean(path: Path | str, mode: Mode) -> np.ndarray:
    """Decode an image as uint8 (H, W, C), C = 1 for ``"L"`` and 3 for ``"RGB"``."""
    from pixlearn.io import read_image

    img = read_image(path, mode=mode)
    return img[..., None] if img.ndim == 2 else img


def detect_mode(paths: Sequence[Path], *, limit: int = 8) -> Mode:
    """``"L"`` when the first ``limit`` readable images are all grey (R = G = B), else ``"RGB"``.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.io import write_image
    >>> p = Path(tempfile.mkdtemp()) / "g.png"; _ = write_image(p, np.zeros((4, 4), np.uint8))
    >>> detect_mode([p])
    'L'
    """
    from pixlearn.io import read_image

    seen = 0
    for p in paths:
        try:
            img = read_image(p)
        except PixlearnError:
            continue
        if img.ndim == 3 and not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])):
            return "RGB"
        seen += 1
        if seen >= limit:
            break
    return "L"


def _holdout(items: list[PairSource], fraction: float, seed: int) -> tuple[list[PairSource], list[PairSource]]:
    if fraction <= 0 or len(items) < 2:
        return items, []
    k = min(max(1, int(round(fraction * len(items)))), len(items) - 1)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:k])
    return [it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held]


def _paired_scale(src: PairSource) -> int:
    from pixlearn.io import image_info

    hi, lo = image_info(src.clean), image_info(src.degraded)  # type: ignore[arg-type]
    (hh, hw), (lh, lw) = (hi.height, hi.width), (lo.height, lo.width)
    if (hh, hw) == (lh, lw):
        return 1
    s = hh // lh if lh else 0
    if s < 2 or hw // lw != s or hh - s * lh >= s or hw - s * lw >= s:
        raise ShapeError(
            f"{src.degraded} is {lw}x{lh} but its clean image {src.clean} is {hw}x{hh}: paired images must have the same "
            "size, or the clean one an integer multiple (super-resolution pairs)"
        )
    return s


def plan_restore_data(
    root: str | Path,
    *,
    mode: Literal["auto", "L", "RGB"] = "auto",
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> RestoreData:
    """Read and split a restoration dataset.

    Parameters
    ----------
    root : path
        Clean images (optionally under ``train/ val/ test/``), or ``degraded/`` + ``clean/`` pairs
        (see :mod:`pixlearn.data.formats.paired`). Any other dataset layout is read with
        :func:`~pixlearn.data.readers.read_dataset` and its images are taken as clean.
    mode : {"auto", "L", "RGB"}
        Grey or colour; ``auto`` is grey when the first images are all grey.
    val_fraction, test_fraction : float
        Shares of the images held out (seeded) when the folder has no ``val/`` / ``test/`` split.
    seed : int

    Raises
    ------
    ConfigError
        No images, or a paired image without its clean counterpart.
    """
    from pixlearn.data.readers import read_dataset

    root = Path(root)
    index = read_dataset(root)
    paired = index.format == "paired"
    missing = [r.path for r in index.records if paired and r.target_path is None]
    if missing:
        raise ConfigError(f"{root}: {len(missing)} degraded image(s) have no clean counterpart, e.g. {missing[0]}")
    by_split: dict[str | None, list[PairSource]] = {}
    for r in index.records:
        src = PairSource(clean=Path(r.target_path), degraded=Path(r.path)) if paired else PairSource(clean=Path(r.path))
        by_split.setdefault(r.split, []).append(src)
    train = by_split.pop("train", []) + by_split.pop(None, [])
    val, test = by_split.pop("val", []), by_split.pop("test", [])
    if not train:
        raise ConfigError(f"{root}: no training images (found splits {sorted(str(s) for s in index.splits())})")
    sources = {"train": f"{root}" + (" (train/)" if any(r.split == "train" for r in index.records) else "")}
    sources["val"] = "val/ folder" if val else ""
    sources["test"] = "test/ folder" if test else ""
    if not test and test_fraction > 0:
        train, test = _holdout(train, test_fraction, seed + 1)
        sources["test"] = f"{test_fraction:.0%} of the training images held out (seed {seed})" if test else ""
    if not val and val_fraction > 0:
        train, val = _holdout(train, val_fraction, seed)
        sources["val"] = f"{val_fraction:.0%} of the training images held out (seed {seed})" if val else ""
    if mode == "auto":
        mode = detect_mode([s.clean for s in train])
    elif mode not in ("L", "RGB"):
        raise ConfigError(f"mode must be auto, L (grey) or RGB (colour), got {mode!r}")
    scale = _paired_scale(train[0]) if paired else 1
    return RestoreData(root, "paired" if paired else "clean", mode, train, val, test, sources, scale, index.fingerprint())


# ---------------------------------------------------------------- datasets
def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of an (H, W, C) array."""
    if k & 4:
        a = a[:, ::-1]
    return np.rot90(a, k & 3, axes=(0, 1))


def _to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


def _pad_to(a: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = max(h - a.shape[0], 0), max(w - a.shape[1], 0)
    if not ph and not pw:
        return a
    return np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


class _Images:
    """Decoded uint8 images, kept in memory up to ``cache_mb`` (each worker process keeps its own)."""

    def __init__(self, sources: Sequence[PairSource], mode: Mode, cache_mb: float) -> None:
        self.sources, self.mode = list(sources), mode
        self.budget = int(cache_mb * 2**20)
        self.used = 0
        self.cache: dict[tuple[int, bool], np.ndarray] = {}

    def get(self, i: int, degraded: bool = False) -> np.ndarray:
        key = (i, degraded)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        src = self.sources[i]
        img = load_clean(src.degraded if degraded else src.clean, self.mode)  # type: ignore[arg-type]
        if self.used + img.nbytes <= self.budget:
            self.cache[key] = img
            self.used += img.nbytes
        return img

    def __getstate__(self) -> dict[str, Any]:  # workers start with an empty cache
        return {**self.__dict__, "cache": {}, "used": 0}


class PatchDataset(Dataset):
    """Random (degraded, clean) patches: ``patches_per_image`` per image per epoch.

    Parameters
    ----------
    sources : sequence of PairSource
    mode : {"L", "RGB"}
    patch : int
        Side of the clean patch (rounded down to a multiple of ``scale``); the degraded patch is
        ``patch // scale``. Images smaller than a patch are mirrored up to it.
    patches_per_image : int
    pipeline : Pipeline, optional
        The degradation, for clean-only data (ignored for pairs).
    scale : int, default 1
        Clean size / degraded size (the pipeline's scale, or the pairs').
    augment : bool, default True
        Random flips and 90-degree rotations.
    cache_mb : float, default 1024
        Decoded images kept in memory (per process) up to this size.

    ``dataset[(i, seed)]`` (what :class:`~pixlearn.engine.sampling.EpochSampler` yields) draws the
    crop, the flip and the degradation from ``seed`` alone: reproducible whatever the workers.
    """

    def __init__(
        self,
        sources: Sequence[PairSource],
        *,
        mode: Mode,
        patch: int,
        patches_per_image: int = 16,
        pipeline: Pipeline | None = None,
        scale: int = 1,
        augment: bool = True,
        cache_mb: float = 1024.0,
    ) -> None:
        if not sources:
            raise ConfigError("a patch dataset needs at least one image")
        self.paired = sources[0].degraded is not None
        if not self.paired and pipeline is None:
            raise ConfigError("clean images need a degradation pipeline to make training pairs")
        self.scale = int(scale)
        self.patch = (int(patch) // self.scale) * self.scale
        if self.patch < max(self.scale, 4):
            raise ConfigError(f"patch {patch} is too small (at least 4 pixels and one multiple of the scale {scale})")
        if patches_per_image < 1:
            raise ConfigError(f"patches_per_image must be >= 1, got {patches_per_image}")
        self.ppi = int(patches_per_image)
        self.pipeline = pipeline
        self.augment = bool(augment)
        self.images = _Images(sources, mode, cache_mb)

    def __len__(self) -> int:
        return len(self.images.sources) * self.ppi

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, sample_seed(0, 0, key))
        i = index // self.ppi
        rng = np.random.default_rng(seed)
        p, s = self.patch, self.scale
        clean = self.images.get(i)
        if self.paired:
            deg = self.images.get(i, degraded=True)
            h, w = min(deg.shape[0] * s, clean.shape[0]), min(deg.shape[1] * s, clean.shape[1])
            clean = _pad_to(clean[:h, :w], p, p)
            deg = _pad_to(deg[: h // s, : w // s], p // s, p // s)
            y = int(rng.integers(0, (clean.shape[0] - p) // s + 1)) * s
            x = int(rng.integers(0, (clean.shape[1] - p) // s + 1)) * s
            c = clean[y:y + p, x:x + p].astype(np.float32) / 255.0
            d = deg[y // s:(y + p) // s, x // s:(x + p) // s].astype(np.float32) / 255.0
            if self.augment:
                k = int(rng.integers(8))
                c, d = _dihedral(c, k), _dihedral(d, k)
        else:
            clean = _pad_to(clean, p, p)
            y = int(rng.integers(0, clean.shape[0] - p + 1))
            x = int(rng.integers(0, clean.shape[1] - p + 1))
            c = clean[y:y + p, x:x + p].astype(np.float32) / 255.0
            if self.augment:
                c = _dihedral(c, int(rng.integers(8)))
            c = np.ascontiguousarray(c)
            d = self.pipeline(c, rng=rng)  # type: ignore[misc]
        return _to_chw(d), _to_chw(c), index


class FixedPatchDataset(Dataset):
    """Fixed validation pairs: a centre crop of every image (degraded once, seeded), all the same size.

    The crop side is ``min(crop, smallest image side)``, rounded down to a multiple of ``scale``.
    """

    def __init__(
        self,
        sources: Sequence[PairSource],
        *,
        mode: Mode,
        crop: int,
        pipeline: Pipeline | None = None,
        scale: int = 1,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise ConfigError("a validation dataset needs at least one image")
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        imgs = []
        for src in sources:
            c = load_clean(src.clean, mode)
            d = load_clean(src.degraded, mode) if src.degraded is not None else None
            if d is not None:
                c = c[: d.shape[0] * scale, : d.shape[1] * scale]
            imgs.append((c, d))
        side = min(crop, *(min(c.shape[:2]) for c, _ in imgs))
        side = (side // scale) * scale
        if side < scale:
            raise ShapeError(f"validation images are too small for scale {scale}")
        for k, (c, d) in enumerate(imgs):
            y = ((c.shape[0] - side) // 2 // scale) * scale
            x = ((c.shape[1] - side) // 2 // scale) * scale
            cc = c[y:y + side, x:x + side].astype(np.float32) / 255.0
            if d is not None:
                dd = d[y // scale:(y + side) // scale, x // scale:(x + side) // scale].astype(np.float32) / 255.0
            else:
                dd = pipeline(modcrop(cc, scale), seed=sample_seed(seed, 0, k))  # type: ignore[misc]
            pairs.append((dd, cc))
        self.side = side
        self.items = [(_to_chw(d), _to_chw(c)) for d, c in pairs]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = key[0] if isinstance(key, tuple) else key
        d, c = self.items[i]
        return d, c, i


def collate_pairs(items: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> Any:
    """Stack ``(degraded, clean, index)`` items into a :class:`~pixlearn.data.loader.Batch` (targets: clean)."""
    from pixlearn.data.loader import Batch

    if not items:
        return Batch(torch.empty((0, 1, 0, 0)), None, torch.empty(0, dtype=torch.int64))
    images = torch.stack([it[0] for it in items])
    targets = torch.stack([it[1] for it in items])
    return Batch(images, targets, torch.tensor([it[2] for it in items], dtype=torch.int64))
