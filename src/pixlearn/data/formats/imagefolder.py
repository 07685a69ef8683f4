"""ImageFolder: one sub-folder per class, optionally under ``train/ val/ test/`` (classification)."""

from __future__ import annotations

from pathlib import Path

from pixlearn._core.types import Task
from pixlearn.data.folder import scan_image_folder
from pixlearn.data.formats._base import is_image_name, split_dirs
from pixlearn.data.index import DatasetIndex, Record

__all__ = ["NAME", "read", "sniff"]

NAME = "imagefolder"

#: Folder names that belong to other layouts, never classes.
_STRUCTURAL = {"images", "labels", "masks", "annotations", "jpegimages", "imagesets"}


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Index ``root/<class>/*.jpg`` or ``root/<split>/<class>/*.jpg`` (see :func:`scan_image_folder`);
    images that lead outside ``root`` (links pointing out) are refused and counted in ``index.meta["refused"]``."""
    found = scan_image_folder(root, allow_outside_root=allow_outside_root)
    lookup = {name: i for i, name in enumerate(found.classes)}
    records = [Record(path=e.path, split=e.split, label=lookup[e.label]) for e in found.entries]
    meta = {"refused": {"outside_root": len(found.refused), "examples": list(found.refused[:5])}} if found.refused else {}
    return DatasetIndex(root=Path(root), format=NAME, task=Task.CLASSIFY, classes=list(found.classes), records=records, meta=meta)


def _has_images(folder: Path) -> bool:
    for p in folder.rglob("*"):
        if p.is_file() and is_image_name(p) and not p.name.startswith("."):
            return True
    return False


def sniff(root: Path) -> str | None:
    """Say what looks like class folders (sub-folders holding images), else None."""
    if not root.is_dir():
        return None
    splits = split_dirs(root)
    parents = list(splits.values()) or [root]
    classes = set()
    for parent in parents:
        for d in parent.iterdir():
            if d.is_dir() and not d.name.startswith(".") and d.name.lower() not in _STRUCTURAL and _has_images(d):
                classes.add(d.name)
    if not classes:
        return None
    where = f" under {', '.join(p.name + '/' for p in parents)}" if splits else ""
    return f"{len(classes)} class folder(s){where}"
