"""What every dataset reader shares: the annotation error, split names, image lookup, problem notes."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import AnnotationError, ConfigError, PixlearnError
from pixlearn.data.index import SPLITS, Record

__all__ = [
    "AnnotationError",
    "SPLIT_ALIASES",
    "normalize_split",
    "split_from_name",
    "add_problem",
    "check_boxes",
    "image_size",
    "list_images",
    "is_image_name",
    "stem_key",
    "find_dir",
    "parse_xml",
    "empty_boxes",
    "split_dirs",
    "check_image_exists",
]

#: Folder/file/column names accepted for each split (lower case).
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}

#: Boxes may stick out of the image by this many pixels (rounding, VOC's 1-based edges) before
#: a problem is noted.
BOX_TOLERANCE = 1.0




def normalize_split(name: str | None) -> str | None:
    """``"valid"``/``"validation"`` -> ``"val"`` etc.; ``None`` for names that are not a split."""
    if name is None:
        return None
    return SPLIT_ALIASES.get(name.strip().lower())


def split_from_name(name: str) -> str | None:
    """The split a file or folder name states: ``instances_train2017.json`` -> ``"train"``.

    Examples
    --------
    >>> split_from_name("instances_val2017.json"), split_from_name("annotations.json")
    ('val', None)
    """
    stem = name.split(".")[0]
    for token in re.split(r"[_\-\s.]+", stem.lower()):
        split = SPLIT_ALIASES.get(token.rstrip("0123456789"))
        if split:
            return split
    return None


def add_problem(record: Record, code: str, message: str, *, severity: str = "error") -> None:
    """Note a problem that ``data check`` should report, without failing the read.

    Problems are dicts ``{"code", "severity", "message"}`` appended to ``record.meta["problems"]``;
    codes: ``missing_image``, ``box_outside``, ``box_degenerate``, ``bad_polygon``, ``missing_mask``,
    ``missing_target``, ``labels_dropped``.
    """
    record.meta.setdefault("problems", []).append({"code": code, "severity": severity, "message": message})


def empty_boxes() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def check_boxes(record: Record, where: str, ids: Iterable[Any] | None = None) -> None:
    """Note degenerate boxes and boxes outside ``record.size`` in ``record.meta["problems"]``."""
    if record.boxes is None or not len(record.boxes):
        return
    ids = list(ids) if ids is not None else list(range(len(record.boxes)))
    h, w = record.size if record.size is not None else (None, None)
    for (x1, y1, x2, y2), ident in zip(record.boxes.tolist(), ids):
        box = f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
        if not (x2 > x1 and y2 > y1):
            add_problem(record, "box_degenerate", f"{where}: {ident}: degenerate box {box} (xyxy) has no area")
        elif h is not None and (
            x1 < -BOX_TOLERANCE or y1 < -BOX_TOLERANCE or x2 > w + BOX_TOLERANCE or y2 > h + BOX_TOLERANCE
        ):
            add_problem(record, "box_outside", f"{where}: {ident}: box {box} (xyxy) lies outside the {w}x{h} image")


def check_image_exists(record: Record, where: str) -> bool:
    """Note ``missing_image`` when ``record.path`` is not a file; True when it is."""
    if record.path.is_file():
        return True
    add_problem(record, "missing_image", f"{where}: image file {record.path} does not exist")
    return False


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image as decoded (EXIF rotation applied), read from its header."""
    from pixlearn.io import image_info

    info = image_info(path)
    if info.orientation in (5, 6, 7, 8):
        return info.width, info.height
    return info.height, info.width


def is_image_name(path: Path | str) -> bool:
    from pixlearn.io import IMAGE_EXTENSIONS

    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` by extension, sorted, hidden files and folders skipped."""
    out = []
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_name(name):
                out.append(Path(dirpath) / name)
    return sorted(out)


def stem_key(path: Path, base: Path) -> str:
    """Path relative to ``base`` without its extension, for matching image and label files."""
    return path.relative_to(base).with_suffix("").as_posix()


def find_dir(parent: Path, names: Iterable[str]) -> Path | None:
    """The first sub-folder of ``parent`` whose name matches one of ``names`` (case-insensitive)."""
    if not parent.is_dir():
        return None
    children = {p.name.lower(): p for p in parent.iterdir() if p.is_dir()}
    for name in names:
        if name.lower() in children:
            return children[name.lower()]
    return None


def split_dirs(root: Path) -> dict[str, Path]:
    """Split folders directly under ``root`` (``valid``/``validation`` count as ``val``).

    Raises :class:`ConfigError` when two folders name the same split.
    """
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for child in sorted(root.iterdir()):
        split = normalize_split(child.name) if child.is_dir() else None
        if split is None:
            continue
        if split in out:
            raise ConfigError(f"{root}: both {out[split].name}/ and {child.name}/ are the '{split}' split; keep one")
        out[split] = child
    return {s: out[s] for s in SPLITS if s in out}


def parse_xml(path: Path):
    """Parse an XML annotation safely: documents with a DTD or entities are refused.

    Uses ``defusedxml`` when it is installed; otherwise the raw text is checked for
    ``<!DOCTYPE``/``<!ENTITY`` before the standard library parses it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lowered = data[:1_000_000].lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise AnnotationError(
            f"{path}: XML with a DOCTYPE or ENTITY declaration is refused (entity expansion is unsafe); "
            "remove the declaration"
        )
    try:
        import defusedxml.ElementTree as ET  # type: ignore[import-not-found]
    except ImportError:
        import xml.etree.ElementTree as ET
    try:
        return ET.fromstring(data)
    except PixlearnError:
        raise
    except Exception as exc:  # ParseError, defusedxml's DTD/entity errors
        raise AnnotationError(f"{path}: not well-formed XML ({exc})") from None
