"""Clean images only, for restoration models trained on synthetic degradations.

Every image under the folder (recursively) is one record whose ``target_path`` is itself; the
degradation is synthesised when the sample is loaded. Top-level ``train/ val/ test/`` folders
(``valid``/``validation`` = val) become splits. An image that leads outside the dataset folder (a
link pointing out) is refused and counted in ``index.meta["refused"]`` unless ``allow_outside_root=True``.
"""

from __future__ import annotations

from pathlib import Path

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.formats._base import PathGuard, is_image_name, list_images, split_dirs
from pixlearn.data.index import DatasetIndex, Record

__all__ = ["NAME", "read", "sniff"]

NAME = "clean"


def sniff(root: Path) -> str | None:
    """Images directly in ``root`` (or directly in its split folders) and no sub-folders besides splits."""
    if not root.is_dir():
        return None
    splits = split_dirs(root)
    folders = list(splits.values()) or [root]
    others = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d not in folders]
    if others:
        return None
    count = 0
    for folder in folders:
        if any(d.is_dir() and not d.name.startswith(".") for d in folder.iterdir()) and folder is not root:
            return None
        count += sum(1 for p in folder.iterdir() if p.is_file() and is_image_name(p) and not p.name.startswith("."))
    return f"{count} image(s) and no labels" if count else None


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    guard = PathGuard(root, allow_outside_root=allow_outside_root)
    splits = split_dirs(root)
    groups = list(splits.items()) or [(None, root)]
    records = [
        Record(path=p, split=s, target_path=p)
        for s, folder in groups
        if guard.folder(folder)
        for p in list_images(folder)
        if guard.keep(p, p.relative_to(root).as_posix())
    ]
    if not records and not guard.refused:
        raise ConfigError(f"{root}: no images found")
    return guard.finish(DatasetIndex(root=root, format=NAME, task=Task.RESTORE, classes=[], records=records))
