"""Pascal VOC: ``Annotations/*.xml`` + ``JPEGImages/`` + optional ``ImageSets/Main/{train,val,test}.txt``.

``annotations/*.xml`` beside ``images/`` (the layout of many exports) reads the same way.

VOC ``bndbox`` values are 1-based pixel indices with inclusive ends: ``xmin=1, xmax=10`` is
the first ten pixel columns. In pixlearn's continuous xyxy (pixel ``c`` covers ``[c, c+1)``)
that box is ``[0, 10]``, so reading subtracts 1 from ``xmin``/``ymin`` and keeps ``xmax``/``ymax``
(the convention of Detectron2 and torchvision's VOC evaluation); :func:`write_voc` does the
inverse and rounds to whole pixels (so a round trip moves a box edge by at most half a pixel).

Class names come from ``classes.txt`` (or ``labels.txt`` / ``labelmap.txt``) next to
``Annotations/`` when present, which fixes their order; otherwise the object names found,
sorted (the official 20 VOC classes are alphabetical). Per record, ``meta`` keeps the
annotation file, ``difficult``, ``truncated`` and ``pose`` per box. XML with a DTD or entity
declaration is refused.

Everything stays inside the dataset folder: an annotation whose ``<filename>`` (or whose XML file,
through a link) leads out is refused and counted in ``index.meta["refused"]``, and a class or split
list that leads out is an error -- unless ``allow_outside_root=True``. ``classes.txt`` is looked
for beside ``Annotations/`` and in the folder above it when that is still inside the dataset folder.
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
    check_boxes,
    check_image_exists,
    empty_boxes,
    find_dir,
    image_size,
    is_image_name,
    parse_xml,
)
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = ["NAME", "read", "sniff", "find_voc_root", "CLASS_FILES"]

NAME = "voc"
CLASS_FILES = ("classes.txt", "labels.txt", "labelmap.txt")


#: Image folder names, in order: VOC's own, then the ``images/`` many exports (Roboflow, Kaggle) put beside
#: ``annotations/*.xml``.
IMAGE_DIRS = ("JPEGImages", "images")


def _image_dir(folder: Path) -> Path | None:
    """VOC's image folder in ``folder``: ``JPEGImages/``, else ``images/`` when ``Annotations/`` holds XML files."""
    found = find_dir(folder, IMAGE_DIRS[:1])
    if found is not None:
        return found
    ann = find_dir(folder, ["Annotations"])
    if ann is not None and any(p.suffix.lower() == ".xml" for p in ann.iterdir()):
        return find_dir(folder, IMAGE_DIRS[1:])
    return None


def _is_voc(folder: Path) -> bool:
    return find_dir(folder, ["Annotations"]) is not None and _image_dir(folder) is not None


def find_voc_root(root: Path) -> Path | None:
    """``root`` when it holds ``Annotations/`` + ``JPEGImages/``, else the single such folder one or two levels down
    (``VOCdevkit/VOC2012``)."""
    if not root.is_dir():
        return None
    if _is_voc(root):
        return root
    for depth in ("*", "*/*"):
        hits = [p for p in sorted(root.glob(depth)) if p.is_dir() and _is_voc(p)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            return None
    return None


def sniff(root: Path) -> str | None:
    found = find_voc_root(root)
    if found is None:
        return None
    where = "" if found == root else f" in {found.relative_to(root).as_posix()}/"
    images = _image_dir(found)
    return f"Annotations/ + {images.name if images is not None else 'JPEGImages'}/{where}"


def _text(node: Any, tag: str) -> str | None:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _number(node: Any, tag: str, xml: Path, what: str) -> float:
    raw = _text(node, tag)
    if raw is None:
        raise AnnotationError(f"{xml}: {what}: <{tag}> is missing")
    try:
        return float(raw)
    except ValueError:
        raise AnnotationError(f"{xml}: {what}: <{tag}> is {raw!r}, not a number") from None


def _flag(node: Any, tag: str) -> int:
    raw = _text(node, tag)
    try:
        return int(float(raw)) if raw else 0
    except ValueError:
        return 0


def _read_classes(voc: Path, guard: PathGuard) -> tuple[list[str], Path] | tuple[None, None]:
    folders = [voc] + ([voc.parent] if guard.inside(voc.parent) else [])
    for name in CLASS_FILES:
        for folder in folders:
            p = folder / name
            if p.is_file():
                guard.file(p)
                names = [line.split(":")[0].strip() for line in p.read_text(encoding="utf-8").splitlines()]
                names = [n for n in names if n and not n.startswith("#")]
                if name == "labelmap.txt" and names[:1] == ["background"]:
                    names = names[1:]
                return names, p
    return None, None


def _read_sets(voc: Path, guard: PathGuard) -> dict[str, str]:
    main = voc / "ImageSets" / "Main"
    lists: dict[str, list[str]] = {}
    for split in ("train", "val", "test", "trainval"):
        p = main / f"{split}.txt"
        if p.is_file():
            guard.file(p)
            lists[split] = [line.split()[0] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if "trainval" in lists and not ({"train", "val"} & set(lists)):
        lists["train"] = lists["trainval"]
    lists.pop("trainval", None)
    out: dict[str, str] = {}
    for split in SPLITS:
        for ident in lists.get(split, []):
            out.setdefault(ident, split)
    return out


def _find_image(images_dir: Path, filename: str | None, stem: str, guard: PathGuard) -> Path:
    if filename:
        p = images_dir / filename
        if not guard.inside(p):
            return p  # refused by the caller, never probed
        if p.is_file():
            return p
    for p in sorted(images_dir.glob(f"{stem}.*")):
        if is_image_name(p):
            return p
    return images_dir / (filename or f"{stem}.jpg")


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Read a Pascal VOC folder (see the module docstring)."""
    root = Path(root)
    voc = find_voc_root(root)
    if voc is None:
        raise ConfigError(f"{root}: no Annotations/ + JPEGImages/ folders; this is not a Pascal VOC dataset")
    guard = PathGuard(root, allow_outside_root=allow_outside_root)
    ann_dir = find_dir(voc, ["Annotations"]) or voc / "Annotations"
    img_dir = _image_dir(voc) or voc / "JPEGImages"
    fixed, class_file = _read_classes(voc, guard)
    sets = _read_sets(voc, guard)
    listable = guard.folder(ann_dir) and guard.folder(img_dir)  # folders that link out are not listed
    xmls = sorted(p for p in ann_dir.glob("*.xml") if not p.name.startswith(".")) if listable else []
    parsed = []
    seen_names: set[str] = set()
    for xml in xmls:
        if not guard.keep(xml, xml.name, "the annotation file"):
            continue
        doc = parse_xml(xml)
        if doc.tag != "annotation":
            raise AnnotationError(f"{xml}: the root element is <{doc.tag}>, expected <annotation>")
        objects = []
        for k, obj in enumerate(doc.findall("object"), start=1):
            name = _text(obj, "name")
            what = f"object {k}"
            if not name:
                raise AnnotationError(f"{xml}: {what}: <name> is missing or empty")
            bnd = obj.find("bndbox")
            if bnd is None:
                raise AnnotationError(f"{xml}: {what} ({name}): <bndbox> is missing")
            coords = [_number(bnd, t, xml, f"{what} ({name})") for t in ("xmin", "ymin", "xmax", "ymax")]
            if fixed is not None and name not in fixed:
                raise AnnotationError(
                    f"{xml}: {what}: class {name!r} is not in {class_file} ({', '.join(fixed)})"
                )
            seen_names.add(name)
            objects.append((name, coords, _flag(obj, "difficult"), _flag(obj, "truncated"), _text(obj, "pose")))
        size = doc.find("size")
        hw = None
        if size is not None:
            try:
                w, h = int(float(_text(size, "width") or 0)), int(float(_text(size, "height") or 0))
            except ValueError:
                raise AnnotationError(f"{xml}: <size> width/height are not numbers") from None
            hw = (h, w) if h > 0 and w > 0 else None
        parsed.append((xml, _text(doc, "filename"), objects, hw))

    classes = list(fixed) if fixed is not None else sorted(seen_names)
    lookup = {n: i for i, n in enumerate(classes)}
    records = []
    for xml, filename, objects, hw in parsed:
        rec = Record(path=_find_image(img_dir, filename, xml.stem, guard), split=sets.get(xml.stem))
        if not guard.keep(rec.path, xml.name):
            continue
        exists = check_image_exists(rec, xml.name)
        rec.size = hw
        if hw is None and exists:
            try:
                rec.size = image_size(rec.path)
            except Exception:  # unreadable: data check reports it
                rec.size = None
        boxes, labels = empty_boxes()
        if objects:
            c = np.asarray([o[1] for o in objects], np.float64)
            boxes = np.stack([c[:, 0] - 1, c[:, 1] - 1, c[:, 2], c[:, 3]], axis=1).astype(np.float32)
            labels = np.asarray([lookup[o[0]] for o in objects], np.int64)
        rec.boxes, rec.box_labels = boxes, labels
        rec.meta.update(
            annotation_path=str(xml),
            difficult=[o[2] for o in objects],
            truncated=[o[3] for o in objects],
            pose=[o[4] for o in objects],
        )
        check_boxes(rec, xml.name, [f"object {k} ({o[0]})" for k, o in enumerate(objects, start=1)])
        records.append(rec)
    order = {s: i for i, s in enumerate(SPLITS)}
    records.sort(key=lambda r: order.get(r.split, len(SPLITS)))
    return guard.finish(DatasetIndex(root=voc, format=NAME, task=Task.DETECT, classes=classes, records=records))
