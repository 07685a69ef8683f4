"""COCO JSON: boxes, polygon and RLE instance masks, crowd flags; one JSON per split.

Layouts found: ``annotations/*.json`` (``instances_train2017.json`` etc., images in
``train2017/``, ``images/``, ``images/<split>/``), a JSON next to its images (Roboflow's
``train/_annotations.coco.json``), or a JSON file given directly. The split comes from the
file (or its folder) name: ``instances_val.json`` -> ``val``; none -> unsplit.

Categories become contiguous class indices ordered by category id; the original ids are kept in
``index.meta["category_ids"]`` (and supercategories in ``index.meta["supercategories"]``) so a
writer can restore them. COCO ``bbox`` is ``[x, y, w, h]`` in continuous pixels and becomes
xyxy. Per record, ``meta`` keeps ``file_name``, ``image_id``, ``annotation_ids``, ``iscrowd`` and
``area`` (one per box; ``area`` as the file states it, None where it does not: COCO's evaluation sorts
objects into small, medium and large by it).

Every ``file_name`` must resolve inside the dataset folder: an image whose path leads out (absolute,
``..``, a link pointing out) is refused and counted in ``index.meta["refused"]`` unless
``allow_outside_root=True``; an annotation JSON found in the folder must lie inside it too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.formats._base import (
    AnnotationError,
    PathGuard,
    add_problem,
    check_boxes,
    check_image_exists,
    empty_boxes,
    image_size,
    split_from_name,
)
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = ["NAME", "read", "sniff", "find_jsons"]

NAME = "coco"
_HEAD = 1 << 20


def _looks_coco(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return False
    return head.lstrip()[:1] == b"{" and b'"images"' in head


def find_jsons(root: Path) -> list[Path]:
    """COCO annotation files for ``root``: itself if a file, else ``annotations/*.json``,
    ``*.json`` and ``<split>/*.json`` that look like COCO (``instances_*`` preferred)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    candidates: list[Path] = []
    for pattern in ("annotations/*.json", "*.json", "*/*.json"):
        candidates += sorted(root.glob(pattern))
    seen: set[Path] = set()
    found = []
    for p in candidates:
        if p in seen or p.name.startswith(".") or not p.is_file():
            continue
        seen.add(p)
        if p.parent != root and p.parent.name != "annotations" and split_from_name(p.parent.name) is None:
            continue
        if _looks_coco(p):
            found.append(p)
    instances = [p for p in found if p.name.startswith("instances")]
    return instances or found


def sniff(root: Path) -> str | None:
    if root.is_file():
        return f"COCO JSON {root.name}" if root.suffix.lower() == ".json" and _looks_coco(root) else None
    found = find_jsons(root)
    if not found:
        return None
    return "COCO JSON " + ", ".join(p.relative_to(root).as_posix() for p in found)


# ------------------------------------------------------------------ parsing
def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read ({exc})") from None
    except RecursionError:
        raise AnnotationError(f"{path}: nests too deeply to be a COCO file; it is not valid COCO JSON") from None
    except ValueError as exc:  # e.g. an integer of 5,000 digits
        raise AnnotationError(f"{path}: a value cannot be read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise AnnotationError(f"{path}: not a COCO file: expected an object with an 'images' list")
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise AnnotationError(f"{path}: '{key}' must be a list, got {type(data[key]).__name__}")
    if "categories" not in data:
        raise AnnotationError(f"{path}: no 'categories' list; COCO files name their categories")
    return data


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_field(obj: Any, key: str, path: Path, what: str) -> int:
    v = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise AnnotationError(f"{path}: {what}: '{key}' must be an integer, got {v!r}")
    return int(v)


def _check_segmentation(seg: Any, path: Path, what: str) -> bool:
    """Validate a segmentation; True when it has content."""
    if seg is None or seg == []:
        return False
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s >= 0 for s in size)):
            raise AnnotationError(f"{path}: {what}: RLE 'size' must be [height, width], got {size!r}")
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise AnnotationError(f"{path}: {what}: RLE 'counts' must be non-negative integers")
            if sum(counts) != size[0] * size[1]:
                raise AnnotationError(
                    f"{path}: {what}: RLE counts sum to {sum(counts)} but size {size[1]}x{size[0]} needs {size[0] * size[1]}"
                )
        elif not isinstance(counts, str):
            raise AnnotationError(f"{path}: {what}: RLE 'counts' must be a list of ints or a string, got {type(counts).__name__}")
        return True
    if isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                raise AnnotationError(f"{path}: {what}: a polygon must be a list of numbers [x1, y1, x2, y2, ...]")
            if len(poly) % 2:
                raise AnnotationError(f"{path}: {what}: a polygon has an odd number of coordinates ({len(poly)})")
        return True
    raise AnnotationError(f"{path}: {what}: 'segmentation' must be a list of polygons or an RLE object, got {type(seg).__name__}")


def _image_bases(json_path: Path, root: Path, split: str | None) -> list[Path]:
    d = json_path.parent
    top = d.parent if d.name == "annotations" else d
    stem = json_path.stem
    named = stem.split("_", 1)[1] if "_" in stem else stem  # instances_train2017 -> train2017
    bases = [top / named, top / "images" / named]
    if split:
        bases += [top / "images" / split, top / split]
    bases += [top / "images", d, top, root / "images", root]
    out: list[Path] = []
    for b in bases:
        if b not in out:
            out.append(b)
    return out


def _resolve(file_name: str, bases: list[Path], preferred: list[Path], guard: PathGuard) -> Path:
    """The first existing ``base / file_name``; candidates outside the dataset folder are not even probed."""
    rel = Path(file_name)
    if rel.is_absolute():
        return rel
    for base in preferred:
        if guard.inside(base / rel) and (base / rel).is_file():
            return base / rel
    for base in bases:
        if guard.inside(base / rel) and (base / rel).is_file():
            preferred.insert(0, base)
            return base / rel
    return (preferred or bases)[0] / rel


def _split_of(json_path: Path) -> str | None:
    split = split_from_name(json_path.name)
    if split is None and json_path.parent.name != "annotations":
        split = split_from_name(json_path.parent.name)
    return split


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Read every COCO JSON of ``root`` (see the module docstring) into one index."""
    root = Path(root)
    jsons = find_jsons(root)
    if not jsons:
        raise ConfigError(f"{root}: no COCO JSON found (looked for annotations/*.json, *.json and <split>/*.json)")
    data_root = root
    if root.is_file():
        data_root = root.parent.parent if root.parent.name == "annotations" else root.parent
    guard = PathGuard(data_root, allow_outside_root=allow_outside_root)
    if not root.is_file():
        for j in jsons:
            guard.file(j)
    splits = [_split_of(j) for j in jsons]
    seen_split: dict[str | None, Path] = {}
    for j, s in zip(jsons, splits):
        if s in seen_split:
            raise ConfigError(
                f"{root}: {seen_split[s].name} and {j.name} both hold the {s or 'unsplit'} annotations; "
                "pass one JSON file, or name them by split (instances_train.json, instances_val.json)"
            )
        seen_split[s] = j

    loaded = [(j, s, _load(j)) for j, s in zip(jsons, splits)]
    # categories: union by id, names must agree
    cats: dict[int, tuple[str, str | None, Path]] = {}
    for j, _, data in loaded:
        ids_here: set[int] = set()
        for k, cat in enumerate(data["categories"]):
            what = f"category #{k}"
            cid = _int_field(cat, "id", j, what)
            name = cat.get("name")
            if not isinstance(name, str) or not name:
                raise AnnotationError(f"{j}: category id {cid}: 'name' must be a non-empty string, got {name!r}")
            if cid in ids_here:
                raise AnnotationError(f"{j}: category id {cid} appears twice")
            ids_here.add(cid)
            if cid in cats and cats[cid][0] != name:
                raise AnnotationError(
                    f"{j}: category id {cid} is {name!r} but {cats[cid][2]} calls it {cats[cid][0]!r}; "
                    "the splits must share one category list"
                )
            cats.setdefault(cid, (name, cat.get("supercategory"), j))
    cat_ids = sorted(cats)
    cat_index = {cid: i for i, cid in enumerate(cat_ids)}

    instance = False
    records: list[Record] = []
    for j, split, data in loaded:
        images: dict[int, dict[str, Any]] = {}
        order: list[int] = []
        for k, img in enumerate(data["images"]):
            iid = _int_field(img, "id", j, f"image #{k}")
            if iid in images:
                raise AnnotationError(f"{j}: image id {iid} appears twice")
            fn = img.get("file_name")
            if not isinstance(fn, str) or not fn:
                raise AnnotationError(f"{j}: image id {iid}: 'file_name' must be a non-empty string, got {fn!r}")
            images[iid] = img
            order.append(iid)
        per_image: dict[int, list[dict[str, Any]]] = {iid: [] for iid in order}
        for k, ann in enumerate(data.get("annotations", [])):
            if not isinstance(ann, dict):
                raise AnnotationError(f"{j}: annotation #{k} is not an object")
            aid = ann.get("id", f"#{k}")
            what = f"annotation id {aid}"
            iid = _int_field(ann, "image_id", j, what)
            if iid not in images:
                raise AnnotationError(f"{j}: {what}: image_id {iid} is not in 'images'")
            cid = _int_field(ann, "category_id", j, what)
            if cid not in cats:
                raise AnnotationError(
                    f"{j}: {what}: category_id {cid} is not in 'categories' (ids: {', '.join(map(str, cat_ids))})"
                )
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                raise AnnotationError(f"{j}: {what}: 'bbox' must be 4 numbers [x, y, width, height], got {bbox!r}")
            if _check_segmentation(ann.get("segmentation"), j, what):
                instance = True
            per_image[iid].append(ann)

        bases = _image_bases(j, data_root, split)
        preferred: list[Path] = []
        for iid in order:
            img = images[iid]
            anns = per_image[iid]
            path = _resolve(img["file_name"], bases, preferred, guard)
            rec = Record(path=path, split=split)
            if not guard.keep(path, f"{j.name}: image id {iid}"):
                continue
            boxes, labels = empty_boxes()
            if anns:
                xywh = np.array([a["bbox"] for a in anns], np.float64)
                boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
                labels = np.array([cat_index[int(a["category_id"])] for a in anns], np.int64)
            rec.boxes, rec.box_labels = boxes, labels
            rec.meta.update(
                file_name=img["file_name"],
                image_id=iid,
                annotation_ids=[a.get("id") for a in anns],
                iscrowd=[int(a.get("iscrowd", 0) or 0) for a in anns],
                area=[float(a["area"]) if _is_number(a.get("area")) else None for a in anns],
            )
            rec.meta["_segs"] = [a.get("segmentation") or [] for a in anns]
            w, h = img.get("width"), img.get("height")
            exists = check_image_exists(rec, f"{j.name}: image id {iid}")
            if _is_number(w) and _is_number(h) and w > 0 and h > 0 and int(w) == w and int(h) == h:
                rec.size = (int(h), int(w))
            elif exists:
                try:
                    rec.size = image_size(path)
                except Exception:  # unreadable: data check reports it
                    rec.size = None
            where = f"{j.name}: image id {iid}"
            check_boxes(rec, where, [f"annotation id {a.get('id')}" for a in anns])
            for a, seg in zip(anns, rec.meta["_segs"]):
                if isinstance(seg, list) and any(len(p) < 6 for p in seg):
                    add_problem(
                        rec, "bad_polygon", f"{where}: annotation id {a.get('id')}: a polygon has fewer than 3 points",
                        severity="warning",
                    )
            records.append(rec)

    for rec in records:
        segs = rec.meta.pop("_segs")
        if instance:
            rec.segmentations = segs
    order_key = {s: i for i, s in enumerate(SPLITS)}
    records.sort(key=lambda r: order_key.get(r.split, len(SPLITS)))
    meta = {
        "category_ids": cat_ids,
        "supercategories": [cats[c][1] for c in cat_ids],
        "annotation_files": [str(j) for j in jsons],
    }
    index = DatasetIndex(
        root=data_root,
        format=NAME,
        task=Task.INSTANCE if instance else Task.DETECT,
        classes=[cats[c][0] for c in cat_ids],
        records=records,
        meta=meta,
    )
    return guard.finish(index)
