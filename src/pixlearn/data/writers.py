"""Write a detection / instance :class:`~pixlearn.data.index.DatasetIndex` as COCO, YOLO or Pascal VOC.

Each writer lays out a fresh folder -- images (hard-linked when source and destination share a
file system, else copied; never moved, never re-encoded) and annotations -- that the matching
reader reads back:

* COCO: ``annotations/instances_<split>.json`` (``instances.json`` when unsplit) and
  ``images/<split>/...``; the original category, image and annotation ids are restored when the
  index came from COCO, polygons and RLE are written as they are.
* YOLO: ``data.yaml`` + ``images/<split>/`` + ``labels/<split>/*.txt`` with 7-decimal
  normalised coordinates; instance masks become polygons (RLE is traced, several parts are
  joined by zero-width bridges as Ultralytics does, an instance without a mask becomes its
  box's rectangle). Reading YOLO back, a polygon's box is its extent.
* VOC: ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/<split>.txt`` + ``classes.txt``
  (class order), boxes as 1-based whole pixels (see :mod:`pixlearn.data.formats.voc`).

A destination that is not empty is refused unless ``overwrite=True``, which first removes only
the writer's own entries (``images/``, ``labels/``, ``annotations/``, ...). A destination
holding any of the source's images is always refused. Every file is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = ["WriteResult", "write_coco", "write_yolo", "write_voc", "WRITERS"]

#: Decimals of YOLO's normalised coordinates (1e-7 of the image side).
YOLO_DECIMALS = 7


@dataclass
class WriteResult:
    """What a writer wrote: where, in which format, how many images and objects, and notes on
    anything the format cannot hold (or records skipped)."""

    dst: Path
    format: str
    images: int = 0
    annotations: int = 0
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ shared helpers
def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from pixlearn.io.atomic import create_temp_beside

    fd, tmp = create_temp_beside(path)  # 0o666 less the umask, not mkstemp's 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _place_image(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (copy across file systems); an existing ``dst`` is unlinked
    first so that writing never goes through an old link into someone's file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _prepare(index: DatasetIndex, dst: Path, *, overwrite: bool, owned: tuple[str, ...], fmt: str) -> Path:
    if index.task not in (Task.DETECT, Task.INSTANCE):
        raise ConfigError(
            f"{fmt.upper()} holds boxes, but this {index.format} dataset is a {index.task.value} dataset "
            "(no boxes); convert detection or instance-segmentation data"
        )
    dst = Path(dst)
    real = os.path.realpath(dst)
    if _inside(real, os.path.realpath(index.root)):
        raise ConfigError(f"{dst}: the destination lies inside the source dataset {index.root}; write to a folder outside it")
    for rec in index.records:
        for p in (rec.path, rec.mask_path, rec.target_path):
            if p is not None and _inside(os.path.realpath(p), real):
                raise ConfigError(
                    f"{dst}: the destination holds source files ({p}); write to a folder outside the source dataset"
                )
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()):
        if not overwrite:
            raise ConfigError(f"{dst}: the destination is not empty; choose an empty folder or pass overwrite=True (--overwrite)")
        for name in owned:
            p = dst / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    return dst


def _size(rec: Record) -> tuple[int, int] | None:
    if rec.size is not None:
        return int(rec.size[0]), int(rec.size[1])
    from pixlearn.data.formats._base import image_size

    try:
        return image_size(rec.path)
    except Exception:  # unreadable: the record is skipped with a note
        return None


def _usable(index: DatasetIndex, result: WriteResult) -> list[tuple[Record, tuple[int, int]]]:
    """Records whose image exists and whose size is known (others are skipped with a note)."""
    out, missing = [], []
    for rec in index.records:
        size = _size(rec) if rec.path.is_file() else None
        if size is None:
            missing.append(rec.path)
        else:
            out.append((rec, size))
    if missing:
        shown = ", ".join(str(p) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        result.notes.append(f"skipped {len(missing)} record(s) whose image is missing or unreadable: {shown}")
    return out


def _relative_names(records: list[Record]) -> list[str]:
    """A destination name per record: its path relative to the records' common folder
    (duplicates get ``_2``, ``_3`` ...)."""
    if not records:
        return []
    parents = [os.path.abspath(r.path.parent) for r in records]
    try:
        common = os.path.commonpath(parents)
    except ValueError:  # different drives
        common = None
    names: list[str] = []
    used: set[str] = set()
    for rec in records:
        rel = Path(os.path.relpath(os.path.abspath(rec.path), common)).as_posix() if common else rec.path.name
        name, k = rel, 2
        while name in used:
            stem = Path(rel)
            name = (stem.parent / f"{stem.stem}_{k}{stem.suffix}").as_posix()
            k += 1
        used.add(name)
        names.append(name)
    return names


def _by_split(items: list[tuple[Record, tuple[int, int]]]) -> dict[str | None, list[tuple[Record, tuple[int, int]]]]:
    groups: dict[str | None, list[tuple[Record, tuple[int, int]]]] = defaultdict(list)
    for item in items:
        groups[item[0].split].append(item)
    order = [s for s in SPLITS if s in groups] + sorted(str(s) for s in groups if s is not None and s not in SPLITS)
    if None in groups:
        order.append(None)  # type: ignore[arg-type]
    return {s: groups[s] for s in order}


def _meta_list(rec: Record, key: str, n: int) -> list[Any] | None:
    v = rec.meta.get(key)
    return list(v) if isinstance(v, (list, tuple)) and len(v) == n else None


def _boxes(rec: Record) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.zeros((0, 4), np.float64) if rec.boxes is None else np.asarray(rec.boxes, np.float64).reshape(-1, 4)
    if rec.box_labels is None:
        labels = np.zeros(len(boxes), np.int64)
    else:
        labels = np.asarray(rec.box_labels, np.int64).reshape(-1)
    return boxes, labels


def _unique_ints(values: list[Any] | None) -> bool:
    return values is not None and all(isinstance(v, int) and not isinstance(v, bool) for v in values) and len(set(values)) == len(values)


def _note_crowd(index: DatasetIndex, result: WriteResult, fmt: str) -> None:
    crowd = sum(sum(1 for v in (r.meta.get("iscrowd") or []) if v) for r in index.records)
    if crowd:
        result.notes.append(f"{crowd} crowd annotation(s) (iscrowd=1) written as ordinary boxes: {fmt} has no crowd flag")


# ------------------------------------------------------------------ COCO
def write_coco(
    index: DatasetIndex,
    dst: str | os.PathLike[str],
    *,
    copy_images: bool = True,
    overwrite: bool = False,
) -> WriteResult:
    """Write a detection / instance index as COCO JSON: one ``annotations/instances_<split>.json`` per split.

    Parameters
    ----------
    index : DatasetIndex
        A ``detect`` or ``instance`` dataset (from :func:`~pixlearn.data.readers.read_dataset`).
    dst : path
        An empty (or new) folder.
    copy_images : bool, default True
        Place the images under ``images/<split>/`` (hard links where possible, else copies).
        False writes the annotations only, with the same ``file_name`` values.
    overwrite : bool, default False
        Write into a non-empty ``dst``, replacing ``annotations/`` and ``images/``.

    Returns
    -------
    WriteResult

    Raises
    ------
    ConfigError
        Not a box dataset, a non-empty destination without ``overwrite``, or a destination
        holding source images.

    Examples
    --------
    >>> import tempfile, numpy as np, pixlearn
    >>> from pixlearn.data.index import Record, DatasetIndex
    >>> from pixlearn._core.types import Task
    >>> src = Path(tempfile.mkdtemp())
    >>> img = pixlearn.write_image(src / "a.png", np.zeros((32, 48, 3), np.uint8))
    >>> rec = Record(img, split="train", boxes=np.array([[4, 5, 20, 30]], np.float32), box_labels=np.array([0]))
    >>> index = DatasetIndex(src, "coco", Task.DETECT, ["cat"], [rec])
    >>> out = write_coco(index, Path(tempfile.mkdtemp()) / "coco")
    >>> (out.images, out.annotations), sorted(p.name for p in (out.dst / "annotations").iterdir())
    ((1, 1), ['instances_train.json'])
    """
    from pixlearn.data.masks import segmentation_area

    result = WriteResult(Path(dst), "coco")
    dst = _prepare(index, Path(dst), overwrite=overwrite, owned=("annotations", "images"), fmt="coco")
    ids = index.meta.get("category_ids")
    cat_ids = list(ids) if _unique_ints(ids) and len(ids) == len(index.classes) else list(range(1, len(index.classes) + 1))
    supers = index.meta.get("supercategories")
    categories = []
    for k, (cid, name) in enumerate(zip(cat_ids, index.classes)):
        cat: dict[str, Any] = {"id": cid, "name": name}
        if isinstance(supers, list) and len(supers) == len(index.classes) and supers[k] is not None:
            cat["supercategory"] = supers[k]
        categories.append(cat)
    instance = index.task is Task.INSTANCE
    for split, items in _by_split(_usable(index, result)).items():
        records = [r for r, _ in items]
        names = _relative_names(records)
        src_img_ids = [r.meta.get("image_id") for r in records]
        keep_img_ids = _unique_ints(src_img_ids)
        src_ann_ids = [a for r in records for a in (r.meta.get("annotation_ids") or [])]
        n_boxes = sum(len(_boxes(r)[0]) for r in records)
        keep_ann_ids = _unique_ints(src_ann_ids) and len(src_ann_ids) == n_boxes
        images, annotations = [], []
        folder = dst / "images" / split if split else dst / "images"
        for k, ((rec, (h, w)), name) in enumerate(zip(items, names)):
            image_id = rec.meta["image_id"] if keep_img_ids else k + 1
            images.append({"id": image_id, "file_name": name, "width": w, "height": h})
            if copy_images:
                _place_image(rec.path, folder / name)
            boxes, labels = _boxes(rec)
            crowd = _meta_list(rec, "iscrowd", len(boxes)) or [0] * len(boxes)
            ann_ids = rec.meta.get("annotation_ids") if keep_ann_ids else None
            segs = rec.segmentations if rec.segmentations is not None and len(rec.segmentations) == len(boxes) else None
            for j, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
                x1, y1, x2, y2 = box
                bbox = [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)]
                ann: dict[str, Any] = {
                    "id": ann_ids[j] if ann_ids else len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[int(label)],
                    "bbox": bbox,
                    "area": round(max(bbox[2], 0) * max(bbox[3], 0), 3),
                    "iscrowd": int(bool(crowd[j])),
                }
                seg = segs[j] if segs is not None else None
                if seg:
                    ann["segmentation"] = seg
                    ann["area"] = round(segmentation_area(seg, (h, w)), 3)
                elif instance:
                    ann["segmentation"] = []
                annotations.append(ann)
        name = f"instances_{split}.json" if split else "instances.json"
        doc = {
            "info": {"description": f"written by pixlearn from {index.format} ({index.root})"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        _write_text(dst / "annotations" / name, json.dumps(doc, separators=(",", ":")))
        result.images += len(images)
        result.annotations += len(annotations)
    if not copy_images:
        result.notes.append("images not written (copy_images=False): put them under images/ as the file_name values say")
    return result


# ------------------------------------------------------------------ YOLO
def _merge_polygons(polys: list[np.ndarray]) -> np.ndarray:
    """Join several polygons into one outline with zero-width bridges (from the first polygon's
    first vertex to each other polygon's nearest vertex, around it, and back)."""
    base = polys[0]
    out = [base, base[:1]]
    anchor = base[0]
    for p in polys[1:]:
        k = int(np.argmin(((p - anchor) ** 2).sum(axis=1)))
        ring = np.concatenate([p[k:], p[:k]])
        out += [ring, ring[:1], base[:1]]
    return np.concatenate(out)


def _instance_polygon(seg: Any, box: list[float], size: tuple[int, int]) -> np.ndarray:
    from pixlearn.data.masks import decode_segmentation, mask_to_polygons

    if isinstance(seg, dict):
        seg = mask_to_polygons(decode_segmentation(seg, size))
    polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in (seg or []) if len(p) >= 6]
    if not polys:
        x1, y1, x2, y2 = box
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)
    return polys[0] if len(polys) == 1 else _merge_polygons(polys)


def _fmt(v: float) -> str:
    return f"{v:.{YOLO_DECIMALS}f}"


def write_yolo(
    index: DatasetIndex,
    dst: str | os.PathLike[str],
    *,
    copy_images: bool = True,
    overwrite: bool = False,
) -> WriteResult:
    """Write a detection / instance index in the YOLO (Ultralytics) layout.

    ``data.yaml`` lists ``names`` and the split folders (``train: images/train`` ...; an unsplit
    dataset goes to ``images/`` + ``labels/`` with ``train`` and ``val`` both naming it). Each
    image gets a ``.txt`` (empty for images without objects) with ``class cx cy w h`` lines, or
    ``class x1 y1 ...`` polygon lines for instance datasets, normalised with 7 decimals.

    Parameters and errors are as for :func:`write_coco` (``overwrite`` replaces ``data.yaml``,
    ``images/`` and ``labels/``).

    Examples
    --------
    >>> import tempfile, numpy as np, pixlearn
    >>> from pixlearn.data.index import Record, DatasetIndex
    >>> from pixlearn._core.types import Task
    >>> src = Path(tempfile.mkdtemp())
    >>> img = pixlearn.write_image(src / "a.png", np.zeros((32, 48, 3), np.uint8))
    >>> rec = Record(img, split="train", boxes=np.array([[0, 0, 24, 16]], np.float32), box_labels=np.array([0]))
    >>> out = write_yolo(DatasetIndex(src, "coco", Task.DETECT, ["cat"], [rec]), Path(tempfile.mkdtemp()) / "y")
    >>> (out.dst / "labels" / "train" / "a.txt").read_text()
    '0 0.2500000 0.2500000 0.5000000 0.5000000\\n'
    """
    import yaml

    result = WriteResult(Path(dst), "yolo")
    dst = _prepare(index, Path(dst), overwrite=overwrite, owned=("data.yaml", "images", "labels"), fmt="yolo")
    items = _usable(index, result)
    splits = {r.split for r, _ in items}
    unsplit = splits <= {None}
    if not unsplit and None in splits:
        n = sum(1 for r, _ in items if r.split is None)
        result.notes.append(f"{n} unsplit record(s) written to the train split (YOLO folders are per split)")
        items = [(r if r.split is not None else _with_split(r, "train"), s) for r, s in items]
    other = sorted({str(r.split) for r, _ in items} - set(SPLITS) - {"None"})
    if other:
        raise ConfigError(f"YOLO's data.yaml knows only train/val/test splits; this index also has {', '.join(other)}")
    instance = index.task is Task.INSTANCE
    for split, group in _by_split(items).items():
        records = [r for r, _ in group]
        names = _relative_names(records)
        sub = Path(split) if split else Path()
        for (rec, (h, w)), name in zip(group, names):
            if copy_images:
                _place_image(rec.path, dst / "images" / sub / name)
            boxes, labels = _boxes(rec)
            segs = rec.segmentations if rec.segmentations is not None and len(rec.segmentations) == len(boxes) else None
            lines = []
            for j, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
                if instance:
                    pts = _instance_polygon(segs[j] if segs is not None else None, box, (h, w)) / (w, h)
                    lines.append(f"{label} " + " ".join(_fmt(v) for v in pts.reshape(-1)))
                else:
                    x1, y1, x2, y2 = box
                    vals = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
                    lines.append(f"{label} " + " ".join(_fmt(v) for v in vals))
            _write_text((dst / "labels" / sub / name).with_suffix(".txt"), "".join(line + "\n" for line in lines))
            result.images += 1
            result.annotations += len(lines)
    present = [s for s in SPLITS if any(r.split == s for r, _ in items)]
    doc: dict[str, Any] = {}
    if unsplit:
        doc.update(train="images", val="images")
    else:
        doc.update({s: f"images/{s}" for s in present})
        if "val" not in present:
            result.notes.append("no val split: Ultralytics wants one (make splits with pixlearn data split)")
    doc["nc"] = len(index.classes)
    doc["names"] = {i: n for i, n in enumerate(index.classes)}
    header = f"# written by pixlearn from {index.format}; paths are relative to this file's folder\n"
    _write_text(dst / "data.yaml", header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    _note_crowd(index, result, "YOLO")
    if not copy_images:
        result.notes.append("images not written (copy_images=False): put them under images/ beside labels/")
    return result


def _with_split(rec: Record, split: str) -> Record:
    from dataclasses import replace

    return replace(rec, split=split)


# ------------------------------------------------------------------ VOC
def write_voc(
    index: DatasetIndex,
    dst: str | os.PathLike[str],
    *,
    copy_images: bool = True,
    overwrite: bool = False,
) -> WriteResult:
    """Write a detection index as Pascal VOC XML.

    Images go flat into ``JPEGImages/`` under unique ids (their stems; sub-folders are joined
    with ``_``), one ``Annotations/<id>.xml`` each, ``ImageSets/Main/<split>.txt`` per split and
    ``classes.txt`` for the class order. Boxes become 1-based whole pixels: ``xmin = round(x1) + 1``,
    ``xmax = round(x2)``. Instance masks are not kept (VOC XML holds boxes). ``difficult``,
    ``truncated`` and ``pose`` are restored when the index came from VOC.

    Parameters and errors are as for :func:`write_coco`; class names must be unique (VOC names
    objects by class name).

    Examples
    --------
    >>> import tempfile, numpy as np, pixlearn
    >>> from pixlearn.data.index import Record, DatasetIndex
    >>> from pixlearn._core.types import Task
    >>> src = Path(tempfile.mkdtemp())
    >>> img = pixlearn.write_image(src / "a.png", np.zeros((32, 48, 3), np.uint8))
    >>> rec = Record(img, boxes=np.array([[0, 0, 24, 16]], np.float32), box_labels=np.array([0]))
    >>> out = write_voc(DatasetIndex(src, "coco", Task.DETECT, ["cat"], [rec]), Path(tempfile.mkdtemp()) / "v")
    >>> "<xmin>1</xmin>" in (out.dst / "Annotations" / "a.xml").read_text()
    True
    """
    import xml.etree.ElementTree as ET

    result = WriteResult(Path(dst), "voc")
    dupes = sorted({n for n in index.classes if index.classes.count(n) > 1})
    if dupes:
        raise ConfigError(f"VOC names objects by class name, but these names repeat: {', '.join(dupes)}")
    dst = _prepare(
        index, Path(dst), overwrite=overwrite, owned=("Annotations", "JPEGImages", "ImageSets", "classes.txt"), fmt="voc"
    )
    items = _usable(index, result)
    names = _relative_names([r for r, _ in items])
    used: set[str] = set()
    sets: dict[str, list[str]] = defaultdict(list)
    for (rec, (h, w)), rel in zip(items, names):
        flat = Path(rel.replace("/", "_"))
        ident, k = flat.stem, 2
        while ident in used:
            ident = f"{flat.stem}_{k}"
            k += 1
        used.add(ident)
        filename = ident + rec.path.suffix
        if copy_images:
            _place_image(rec.path, dst / "JPEGImages" / filename)
        if rec.split is not None:
            sets[str(rec.split)].append(ident)
        boxes, labels = _boxes(rec)
        difficult = _meta_list(rec, "difficult", len(boxes)) or [0] * len(boxes)
        truncated = _meta_list(rec, "truncated", len(boxes)) or [0] * len(boxes)
        pose = _meta_list(rec, "pose", len(boxes)) or ["Unspecified"] * len(boxes)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = filename
        ET.SubElement(ET.SubElement(root, "source"), "database").text = f"pixlearn ({index.format})"
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(w)
        ET.SubElement(size, "height").text = str(h)
        ET.SubElement(size, "depth").text = "3"
        ET.SubElement(root, "segmented").text = "0"
        for j, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = index.classes[int(label)]
            ET.SubElement(obj, "pose").text = str(pose[j] or "Unspecified")
            ET.SubElement(obj, "truncated").text = str(int(truncated[j] or 0))
            ET.SubElement(obj, "difficult").text = str(int(difficult[j] or 0))
            bnd = ET.SubElement(obj, "bndbox")
            x1, y1, x2, y2 = box
            for tag, v in (("xmin", round(x1) + 1), ("ymin", round(y1) + 1), ("xmax", round(x2)), ("ymax", round(y2))):
                ET.SubElement(bnd, tag).text = str(int(v))
        ET.indent(root)
        _write_text(dst / "Annotations" / f"{ident}.xml", ET.tostring(root, encoding="unicode") + "\n")
        result.images += 1
        result.annotations += len(boxes)
    for split, idents in sets.items():
        _write_text(dst / "ImageSets" / "Main" / f"{split}.txt", "".join(i + "\n" for i in idents))
    _write_text(dst / "classes.txt", "".join(n + "\n" for n in index.classes))
    if index.task is Task.INSTANCE:
        result.notes.append("instance masks not written: VOC XML holds boxes only (convert to coco or yolo to keep them)")
    _note_crowd(index, result, "VOC")
    if not copy_images:
        result.notes.append("images not written (copy_images=False): put them in JPEGImages/ under the <filename> names")
    return result


#: Output format -> writer.
WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}
