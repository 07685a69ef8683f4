"""Semantic mask folders: ``images/`` + ``masks/`` with matching file stems (pixel value = class id).

Layouts: ``images/`` + ``masks/``; ``images/<split>/`` + ``masks/<split>/``; or
``<split>/images/`` + ``<split>/masks/``. A mask matches an image with the same path relative to
its folder, any extension, optionally with a ``_mask`` suffix (``cat1.jpg`` <-> ``cat1.png`` or
``cat1_mask.png``). Class names come from ``classes.txt`` (one name per line, line ``i`` is
class id ``i``) or ``classes.yaml`` (a list, a mapping ``id: name`` or ``{names: ...}``);
without one, every mask is decoded once to find the largest class id and the classes are named
``"0"``, ``"1"``, .... Mask values follow :data:`pixlearn.data.masks.MASK_RULE`: 255 is the
"ignore" label and never a class -- except in binary sets saved as 0/255 (every mask holds only
those two values, and a class map, if any, names two classes): then 255 is the foreground,
unnamed classes are ``background`` and ``foreground``, and ``index.meta`` records the coding
(``mask_coding: "binary255"``, ``mask_values: {0: 0, 255: 1}``) that :meth:`DatasetIndex.load`
uses to map 255 to class 1.

An image or mask that leads outside the dataset folder (a link pointing out) is refused and counted
in ``index.meta["refused"]``, and a class map that does is an error -- unless ``allow_outside_root=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.formats._base import (
    AnnotationError,
    PathGuard,
    add_problem,
    find_dir,
    is_image_name,
    list_images,
    split_dirs,
    stem_key,
)
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = ["NAME", "read", "sniff", "IGNORE_INDEX"]

NAME = "masks"
IMAGE_DIRS = ("images", "image", "imgs", "img")
#: Mask folder names; a candidate counts only when it holds image files (YOLO's labels/ holds
#: .txt files, COCO's annotations/ .json files).
MASK_DIRS = ("masks", "mask", "label", "labels", "annotations", "gt", "groundtruth", "segmentations")
MASK_SUFFIXES = ("", "_mask", "-mask", "_seg")
#: Mask value that marks pixels to ignore (not a class).
IGNORE_INDEX = 255


def _holds_images(folder: Path) -> bool:
    return any(p.is_file() and is_image_name(p) for p in folder.rglob("*"))


def _mask_dir(parent: Path) -> Path | None:
    for name in MASK_DIRS:
        d = find_dir(parent, [name])
        if d is not None and _holds_images(d):
            return d
    return None


def _pairs_of_dirs(root: Path) -> dict[str | None, tuple[Path, Path]]:
    images, masks = find_dir(root, IMAGE_DIRS), _mask_dir(root)
    if images is not None and masks is not None:
        isplits, msplits = split_dirs(images), split_dirs(masks)
        if isplits:
            return {s: (d, msplits.get(s, masks / d.name)) for s, d in isplits.items()}
        return {None: (images, masks)}
    out: dict[str | None, tuple[Path, Path]] = {}
    for split, folder in split_dirs(root).items():
        i, m = find_dir(folder, IMAGE_DIRS), _mask_dir(folder)
        if i is not None and m is not None:
            out[split] = (i, m)
    return out


def sniff(root: Path) -> str | None:
    if not root.is_dir():
        return None
    pairs = _pairs_of_dirs(root)
    if not pairs:
        return None
    if list(pairs) == [None]:
        i, m = pairs[None]
        return f"{i.name}/ + {m.name}/"
    return "images/ + masks/ for " + ", ".join(str(s) for s in pairs)


def _load_class_map(root: Path, guard: PathGuard) -> list[str] | None:
    txt = root / "classes.txt"
    if txt.is_file():
        guard.file(txt)
        return [line.strip() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
    for name in ("classes.yaml", "classes.yml"):
        p = root / name
        if not p.is_file():
            continue
        from pixlearn._core.safe_yaml import load_yaml_file

        try:  # bounded size, depth and values, no anchors/aliases
            data: Any = load_yaml_file(p, max_depth=16, error=AnnotationError)
        except OSError as exc:
            raise AnnotationError(f"{p}: cannot read ({exc})") from None
        if isinstance(data, dict) and "names" in data:
            data = data["names"]
        if isinstance(data, list):
            return [str(n) for n in data]
        if isinstance(data, dict):
            try:
                table = {int(k): str(v) for k, v in data.items()}
            except (TypeError, ValueError):
                raise AnnotationError(f"{p}: keys must be class ids (integers), got {list(data)!r}") from None
            table.pop(IGNORE_INDEX, None)
            keys = sorted(table)
            if keys != list(range(len(keys))):
                raise AnnotationError(f"{p}: class ids must run 0..{len(keys) - 1} without gaps (255 = ignore), got {keys}")
            return [table[k] for k in keys]
        raise AnnotationError(f"{p}: expected a list of class names or a mapping id -> name")
    return None


def _mask_index(mask_dir: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in list_images(mask_dir):
        key = stem_key(p, mask_dir)
        if key not in out or p.suffix.lower() == ".png":
            out[key] = p
    return out


def _mask_values(records: list[Record]) -> set[int]:
    """Every value the records' masks hold (palette masks by index); unreadable masks are skipped (data check reports them)."""
    from pixlearn.io import read_mask

    seen: set[int] = set()
    for rec in records:
        if rec.mask_path is None:
            continue
        try:
            seen.update(int(v) for v in np.unique(read_mask(rec.mask_path)))
        except Exception:
            continue
    return seen


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Read an images/ + masks/ folder (see the module docstring)."""
    root = Path(root)
    pairs = _pairs_of_dirs(root)
    if not pairs:
        raise ConfigError(f"{root}: no images/ + masks/ folders; this is not a mask-folder dataset")
    guard = PathGuard(root, allow_outside_root=allow_outside_root)
    classes = _load_class_map(root, guard)
    records = []
    for split, (image_dir, mask_dir) in pairs.items():
        if not guard.folder(image_dir):
            continue
        masks = _mask_index(mask_dir) if guard.folder(mask_dir) else {}
        for image in list_images(image_dir):
            key = stem_key(image, image_dir)
            mask = next((masks[key + s] for s in MASK_SUFFIXES if key + s in masks), None)
            rec = Record(path=image, split=split, mask_path=mask)
            if not guard.keep_record(rec, image.relative_to(image_dir.parent).as_posix()):
                continue
            if mask is None:
                add_problem(rec, "missing_mask", f"{image}: no mask named {key}.png (or {key}_mask.png) in {mask_dir}")
            records.append(rec)
    if not records and not guard.refused:
        raise ConfigError(f"{root}: the images folders hold no images")
    from pixlearn.data.masks import mask_coding

    meta: dict[str, Any] = {}
    if classes is None or len(classes) == 2:  # the values decide (binary 0/255 or class indices)
        seen = _mask_values(records)
        coding = mask_coding(seen, num_classes=None if classes is None else len(classes))
        if classes is None:
            if coding.kind == "binary255":
                classes = ["background", "foreground"]
            else:
                top = max(seen - {IGNORE_INDEX}, default=0)
                classes = [str(i) for i in range(top + 1)]
            meta["classes_from"] = "mask values"
    else:
        coding = mask_coding((), num_classes=len(classes))
    meta.update(coding.to_meta())
    order = {s: i for i, s in enumerate(SPLITS)}
    records.sort(key=lambda r: order.get(r.split, len(SPLITS)))
    return guard.finish(DatasetIndex(root=root, format=NAME, task=Task.SEGMENT, classes=classes, records=records, meta=meta))
