"""Restoration pairs: ``degraded/`` (or ``noisy/``, ``input/``, ``lr/``, ``low/``) + ``clean/``
(or ``target/``, ``gt/``, ``hr/``, ``high/``) with matching file stems.

Each record's ``path`` is the degraded image and ``target_path`` its clean counterpart. Split
folders may sit above (``train/degraded``) or below (``degraded/train``) the pair folders. A
degraded image without a clean one is kept with a ``missing_target`` problem; clean images
without a degraded one are ignored. A pair whose image leads outside the dataset folder (a link
pointing out) is refused and counted in ``index.meta["refused"]`` unless ``allow_outside_root=True``.
"""

from __future__ import annotations

from pathlib import Path

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.formats._base import PathGuard, add_problem, find_dir, is_image_name, list_images, split_dirs, stem_key
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = ["NAME", "read", "sniff", "DEGRADED_DIRS", "CLEAN_DIRS"]

NAME = "paired"
DEGRADED_DIRS = ("degraded", "noisy", "input", "lr", "low", "blurred", "blur")
CLEAN_DIRS = ("clean", "target", "gt", "hr", "high", "sharp")


def _pair_dirs(root: Path) -> dict[str | None, tuple[Path, Path]]:
    deg, clean = find_dir(root, DEGRADED_DIRS), find_dir(root, CLEAN_DIRS)
    if deg is not None and clean is not None:
        dsplits, csplits = split_dirs(deg), split_dirs(clean)
        if dsplits:
            return {s: (d, csplits.get(s, clean / d.name)) for s, d in dsplits.items()}
        return {None: (deg, clean)}
    out: dict[str | None, tuple[Path, Path]] = {}
    for split, folder in split_dirs(root).items():
        d, c = find_dir(folder, DEGRADED_DIRS), find_dir(folder, CLEAN_DIRS)
        if d is not None and c is not None:
            out[split] = (d, c)
    return out


def _stems(folder: Path, limit: int) -> set[str]:
    out = set()
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_file() and is_image_name(p):
            out.add(p.stem)
            if len(out) >= limit:
                break
    return out


def sniff(root: Path) -> str | None:
    """Pair folders whose first images have namesakes on the other side (so that class folders
    that happen to be called ``clean``/``noisy`` are not taken for pairs)."""
    if not root.is_dir():
        return None
    pairs = _pair_dirs(root)
    if not pairs:
        return None
    deg_dir, clean_dir = next(iter(pairs.values()))
    stems = _stems(deg_dir, 50)
    if not stems or not stems & _stems(clean_dir, 10_000):
        return None
    d, c = next(iter(pairs.values()))
    splits = [s for s in pairs if s]
    return f"{d.name}/ + {c.name}/ pairs" + (f" for {', '.join(splits)}" if splits else "")


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Pair every degraded image with the clean image of the same stem."""
    root = Path(root)
    guard = PathGuard(root, allow_outside_root=allow_outside_root)
    pairs = _pair_dirs(root)
    if not pairs:
        raise ConfigError(
            f"{root}: no pair folders; expected {'/'.join(DEGRADED_DIRS)} next to {'/'.join(CLEAN_DIRS)}"
        )
    records = []
    for split, (deg_dir, clean_dir) in pairs.items():
        if not guard.folder(deg_dir):
            continue
        targets = {stem_key(p, clean_dir): p for p in list_images(clean_dir)} if guard.folder(clean_dir) else {}
        for image in list_images(deg_dir):
            key = stem_key(image, deg_dir)
            rec = Record(path=image, split=split, target_path=targets.get(key))
            if not guard.keep_record(rec, image.relative_to(deg_dir.parent).as_posix()):
                continue
            if rec.target_path is None:
                add_problem(rec, "missing_target", f"{image}: no clean image named {key}.* in {clean_dir}")
            records.append(rec)
    if not records and not guard.refused:
        raise ConfigError(f"{root}: the degraded folders hold no images")
    order = {s: i for i, s in enumerate(SPLITS)}
    records.sort(key=lambda r: order.get(r.split, len(SPLITS)))
    return guard.finish(DatasetIndex(root=root, format=NAME, task=Task.RESTORE, classes=[], records=records))
