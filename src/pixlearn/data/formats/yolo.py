"""YOLO: ``data.yaml`` + ``images/<split>/*.jpg`` + ``labels/<split>/*.txt`` (boxes or polygons).

``data.yaml`` gives ``names`` (a list, or a dict ``{0: name, ...}``) and the ``train:``,
``val:``, ``test:`` image folders (or ``.txt`` lists of images), relative to ``path:`` or,
without it, to the yaml's folder. Each image's labels are in the parallel ``labels/`` folder,
one object per line: ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 ...`` (a polygon,
Ultralytics segmentation), coordinates normalised to [0, 1]. The image size needed to turn them
into pixels is read from each image's header (no decoding). A polygon's box is its extent.

Without a yaml, ``images/`` + ``labels/`` folders are read too, with class names from
``classes.txt`` / ``obj.names`` when present (else ``"0"``, ``"1"``, ...). When ``train`` and
``val`` name the same images the dataset is read as unsplit.

Everything stays inside the dataset folder (the yaml's): a ``train``/``val``/``test`` entry that
leads out (absolute, ``..``, a link pointing out) is an error, a ``path:`` that leads out is not
used, and an image of a list file, or an image whose label file, leads out is refused and counted
in ``index.meta["refused"]`` -- unless ``allow_outside_root=True``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.formats._base import (
    OUTSIDE_HINT_CLI,
    OUTSIDE_HINT_PYTHON,
    AnnotationError,
    PathGuard,
    add_problem,
    check_boxes,
    check_image_exists,
    empty_boxes,
    find_dir,
    hinted,
    image_size,
    is_image_name,
    list_images,
    split_dirs,
)
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = ["NAME", "read", "sniff", "find_yaml", "label_path_for"]

NAME = "yolo"
YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
NAME_FILES = ("classes.txt", "obj.names", "classes.names")


def _yaml_load(path: Path) -> Any:
    from pixlearn._core.safe_yaml import load_yaml_file

    try:  # bounded size, depth and values, no anchors/aliases: a dataset may come from an upload
        return load_yaml_file(path, max_bytes=1 << 20, max_depth=32, max_nodes=200_000, error=AnnotationError)
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read ({exc})") from None


def find_yaml(root: Path) -> Path | None:
    """``root`` if it is a yaml file, else ``data.yaml``/``dataset.yaml`` in it, else its only yaml with ``names``."""
    if root.is_file():
        return root if root.suffix.lower() in (".yaml", ".yml") else None
    if not root.is_dir():
        return None
    for name in YAML_NAMES:
        if (root / name).is_file():
            return root / name
    hits = []
    for p in sorted(list(root.glob("*.yaml")) + list(root.glob("*.yml"))):
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if any(line.startswith("names:") for line in text.splitlines()):
            hits.append(p)
    return hits[0] if len(hits) == 1 else None


def sniff(root: Path) -> str | None:
    y = find_yaml(root)
    if y is not None:
        return f"YOLO {y.name}"
    if root.is_dir() and find_dir(root, ["images"]) and find_dir(root, ["labels"]):
        return "images/ + labels/ folders"
    return None


def label_path_for(image: Path) -> Path:
    """The label file of an image: the last ``images`` folder of its path replaced by ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].lower() == "images":
            parts[i] = "Labels" if parts[i][0].isupper() else "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _names(raw: Any, nc: Any, path: Path) -> list[str] | None:
    if raw is None:
        if isinstance(nc, int) and nc > 0:
            return [str(i) for i in range(nc)]
        return None
    if isinstance(raw, list):
        names = [str(n) for n in raw]
    elif isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: 'names' keys must be class ids 0, 1, ..., got {list(raw)!r}") from None
        if keys != list(range(len(keys))):
            raise AnnotationError(f"{path}: 'names' ids must run 0..{len(keys) - 1} without gaps, got {keys}")
        lookup = {int(k): v for k, v in raw.items()}
        names = [str(lookup[k]) for k in keys]
    else:
        raise AnnotationError(f"{path}: 'names' must be a list or a mapping id -> name, got {type(raw).__name__}")
    if isinstance(nc, int) and nc != len(names):
        raise AnnotationError(f"{path}: nc is {nc} but 'names' lists {len(names)} classes")
    return names


def _outside_entry(y: Path, key: str, extra: str = "") -> AnnotationError:
    return hinted(
        AnnotationError,
        f"{y}: {key}: the entry leads outside the dataset folder{extra}; name folders or list files inside "
        "it, relative to the yaml",
        python=OUTSIDE_HINT_PYTHON,
        cli=OUTSIDE_HINT_CLI,
        sep=", ",
    )


def _resolve_entry(entry: str, base: Path, yaml_dir: Path, guard: PathGuard) -> tuple[Path | None, bool]:
    """The existing folder or list file an entry names (or None), and whether a candidate was left
    out because it leads outside the dataset folder (those are never probed)."""
    p = Path(entry)
    tries = [p] if p.is_absolute() else [base / p, yaml_dir / p]
    stripped = Path(*[part for part in p.parts if part != ".."]) if ".." in p.parts and not p.is_absolute() else None
    if stripped is not None:
        tries += [yaml_dir / stripped, base / stripped]
    inside = [t for t in tries if guard.inside(t)]
    for t in inside:
        if t.exists():
            return t, len(inside) < len(tries)
    return None, len(inside) < len(tries)


def _images_of(source: Path, guard: PathGuard) -> list[Path]:
    if source.is_dir():
        return list_images(source)
    if source.suffix.lower() == ".txt":
        out = []
        for lineno, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                q = Path(line)
                q = q if q.is_absolute() else source.parent / q
                if guard.keep(q, f"{source.name}: line {lineno}"):
                    out.append(q)
        return out
    return [source] if is_image_name(source) else []


def _split_sources(y: Path, data: dict[str, Any], guard: PathGuard) -> dict[str, list[Path]]:
    yaml_dir = y.parent
    base = yaml_dir
    outside_base = False
    if data.get("path"):
        p = Path(str(data["path"]))
        cand = p if p.is_absolute() else yaml_dir / p
        if not guard.inside(cand):
            outside_base = True  # not used (nor probed): entries are looked up beside the yaml
        elif cand.is_dir():
            base = cand
    out: dict[str, list[Path]] = {}
    for key in ("train", "val", "valid", "test"):
        value = data.get(key)
        if not value:
            continue
        split = "val" if key == "valid" else key
        entries = value if isinstance(value, list) else [value]
        paths = []
        for entry in entries:
            resolved, outside = _resolve_entry(str(entry), base, yaml_dir, guard)
            if resolved is None and split == "test":
                continue  # a declared but absent test set is common (Ultralytics skips it too)
            if resolved is None and outside:
                raise _outside_entry(y, key)
            if resolved is None and outside_base:
                raise _outside_entry(y, key, " ('path:' names a folder outside it, which is not used)")
            if resolved is None:
                raise ConfigError(f"{y}: {key}: {entry} does not exist (looked under {base} and {yaml_dir})")
            paths += _images_of(resolved, guard)
        out.setdefault(split, []).extend(paths)
    if not out:
        raise AnnotationError(f"{y}: no 'train', 'val' or 'test' entry; name the image folders, e.g. 'train: images/train'")
    return out


def _parse_labels(label: Path, names: list[str] | None, kpt: bool) -> list[tuple[int, list[float], int]]:
    try:
        text = label.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{label}: cannot read ({exc})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            raise AnnotationError(f"{label}: line {lineno}: expected numbers 'class cx cy w h', got {s!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise AnnotationError(f"{label}: line {lineno}: NaN or infinite value in {s!r}")
        n = len(vals)
        if not (n == 5 or (kpt and n > 5) or (n >= 7 and (n - 1) % 2 == 0)):
            raise AnnotationError(
                f"{label}: line {lineno}: {n} values; expected 5 (class cx cy w h) or an odd count >= 7 "
                "(class x1 y1 x2 y2 x3 y3 ...) for a polygon"
            )
        cls = vals[0]
        if not cls.is_integer() or cls < 0 or (names is not None and cls >= len(names)):
            have = f"0..{len(names) - 1}" if names else "a non-negative integer"
            raise AnnotationError(f"{label}: line {lineno}: class {parts[0]!r} is not a class id ({have})")
        rows.append((int(cls), vals[1:5] if (n == 5 or kpt) else vals[1:], lineno))
    return rows


def _read_names_file(folder: Path, guard: PathGuard) -> list[str] | None:
    for name in NAME_FILES:
        p = folder / name
        if p.is_file():
            guard.file(p)
            return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return None


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Read a YOLO dataset from its yaml (or an ``images/`` + ``labels/`` folder); see the module docstring."""
    root = Path(root)
    y = find_yaml(root)
    meta: dict[str, Any] = {}
    kpt = False
    guard = PathGuard(y.parent if y is not None else root, allow_outside_root=allow_outside_root)
    if y is not None:
        if root.is_dir():
            guard.file(y)
        data = _yaml_load(y)
        if not isinstance(data, dict):
            raise AnnotationError(f"{y}: expected a mapping with 'names' and 'train'/'val' entries")
        names = _names(data.get("names"), data.get("nc"), y)
        if names is None:
            raise AnnotationError(f"{y}: no 'names'; list the class names, e.g. 'names: [cat, dog]'")
        sources = _split_sources(y, data, guard)
        kpt = "kpt_shape" in data
        data_root = y.parent
        meta["yaml"] = str(y)
    else:
        images_dir = find_dir(root, ["images"])
        if images_dir is None or find_dir(root, ["labels"]) is None:
            raise ConfigError(f"{root}: no data.yaml and no images/ + labels/ folders; this is not a YOLO dataset")
        names = _read_names_file(root, guard)
        subs = split_dirs(images_dir) if guard.folder(images_dir) else {}
        if subs:
            sources = {s: list_images(d) for s, d in subs.items() if guard.folder(d)}
        else:
            sources = {"": list_images(images_dir) if guard.inside(images_dir) else []}
        data_root = root

    # train and val naming the same images (a single unsplit folder) -> unsplit
    keys = list(sources)
    if len(keys) > 1 and all(set(sources[k]) == set(sources[keys[0]]) for k in keys):
        sources = {"": sources[keys[0]]}

    parsed: list[tuple[Record, list[tuple[int, list[float], int]], Path]] = []
    max_cls = -1
    for split_key, images in sources.items():
        split = split_key or None
        for image in sorted(images):
            rec = Record(path=image, split=split)
            label = label_path_for(image)
            where = f"{split or 'images'}: {image.name}"
            if not (guard.keep(image, where) and guard.keep(label, where, "its label file")):
                continue
            rows = _parse_labels(label, names, kpt) if label.is_file() else []
            rec.meta["label_path"] = str(label)
            max_cls = max([max_cls] + [r[0] for r in rows])
            parsed.append((rec, rows, label))
    if names is None:
        names = [str(i) for i in range(max_cls + 1)]

    instance = any(len(coords) > 4 for _, rows, _ in parsed for _, coords, _ in rows)
    records = []
    for rec, rows, label in parsed:
        boxes, labels = empty_boxes()
        segs: list[Any] = []
        if check_image_exists(rec, label.name):
            try:
                rec.size = image_size(rec.path)
            except Exception:  # unreadable: data check reports it
                rec.size = None
        if rows and rec.size is None:
            add_problem(
                rec, "labels_dropped",
                f"{label}: {len(rows)} object(s) dropped: their image {rec.path.name} is missing or unreadable, "
                "so its size (needed to turn normalised coordinates into pixels) is unknown",
            )
            rows = []
        if rows:
            h, w = rec.size
            box_list, label_list = [], []
            for cls, coords, _ in rows:
                if len(coords) == 4:
                    cx, cy, bw, bh = coords
                    box_list.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
                    segs.append([])
                else:
                    pts = np.asarray(coords, np.float64).reshape(-1, 2) * (w, h)
                    box_list.append([*pts.min(axis=0), *pts.max(axis=0)])
                    segs.append([[round(float(v), 4) for v in pts.reshape(-1)]])
                label_list.append(cls)
            boxes = np.asarray(box_list, np.float32)
            labels = np.asarray(label_list, np.int64)
        rec.boxes, rec.box_labels = boxes, labels
        if instance:
            rec.segmentations = segs
        check_boxes(rec, label.name, [f"line {ln}" for _, _, ln in rows])
        records.append(rec)
    order = {s: i for i, s in enumerate(SPLITS)}
    records.sort(key=lambda r: order.get(r.split, len(SPLITS)))
    index = DatasetIndex(
        root=data_root, format=NAME, task=Task.INSTANCE if instance else Task.DETECT, classes=names, records=records, meta=meta
    )
    return guard.finish(index)
