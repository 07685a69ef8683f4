"""CSV: a table with ``path,label[,split][,group]`` columns (classification).

The header row is required. Paths are relative to the CSV's folder, and must stay inside it: a row
whose path leads out (an absolute path, ``..``, a link pointing out) is refused and counted in
``index.meta["refused"]`` unless ``allow_outside_root=True``.
Class names are the distinct labels, sorted (numerically when every label is an integer).
An empty label leaves the record unlabelled; other columns are kept in ``record.meta["csv"]``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.formats._base import AnnotationError, SPLIT_ALIASES, PathGuard, check_image_exists, normalize_split
from pixlearn.data.index import DatasetIndex, Record

__all__ = ["NAME", "read", "sniff", "find_csv"]

NAME = "csv"
REQUIRED = ("path", "label")
OPTIONAL = ("split", "group")


def find_csv(root: Path) -> Path:
    """``root`` itself when it is a CSV file, else the single ``*.csv`` directly inside it."""
    if root.is_file():
        return root
    found = sorted(p for p in root.glob("*.csv") if p.is_file() and not p.name.startswith("."))
    if len(found) != 1:
        what = "no CSV file" if not found else f"{len(found)} CSV files ({', '.join(p.name for p in found)})"
        raise ConfigError(f"{root}: found {what}; pass the CSV file itself")
    return found[0]


def _header(path: Path) -> list[str] | None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            first = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return [c.strip().lower() for c in first] if first else None


def sniff(root: Path) -> str | None:
    """Name the CSV when ``root`` is (or holds exactly one) CSV with ``path`` and ``label`` columns."""
    if root.is_file():
        candidates = [root] if root.suffix.lower() == ".csv" else []
    elif root.is_dir():
        candidates = sorted(p for p in root.glob("*.csv") if p.is_file() and not p.name.startswith("."))
    else:
        return None
    hits = [p for p in candidates if set(REQUIRED) <= set(_header(p) or [])]
    if len(hits) == 1:
        return f"{hits[0].name} with path,label columns"
    return None


def _sort_classes(names: set[str]) -> list[str]:
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def read(root: Path, *, allow_outside_root: bool = False) -> DatasetIndex:
    """Read the CSV at ``root`` (a file, or a folder holding exactly one); see the module docstring."""
    path = find_csv(Path(root))
    base = path.parent
    guard = PathGuard(base, allow_outside_root=allow_outside_root)
    if Path(root).is_dir():
        guard.file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise AnnotationError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise AnnotationError(f"{path}: the file is empty; expected a header row 'path,label[,split][,group]'")
    header = [c.strip().lower() for c in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise AnnotationError(
            f"{path}: line 1: the header {','.join(rows[0])!r} lacks the column(s) {', '.join(missing)}; "
            "the first row must name the columns, e.g. 'path,label,split,group'"
        )
    if len(set(header)) != len(header):
        raise AnnotationError(f"{path}: line 1: repeated column names in the header {','.join(rows[0])!r}")
    col = {name: i for i, name in enumerate(header)}
    extra = [c for c in header if c not in REQUIRED + OPTIONAL]
    parsed: list[tuple[int, Path, str, str | None, str | None, dict[str, str]]] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise AnnotationError(f"{path}: line {lineno}: {len(row)} fields, but the header has {len(header)}")
        cell = {name: row[i].strip() for name, i in col.items()}
        if not cell["path"]:
            raise AnnotationError(f"{path}: line {lineno}: the path is empty")
        split = None
        if cell.get("split"):
            split = normalize_split(cell["split"])
            if split is None:
                raise AnnotationError(
                    f"{path}: line {lineno}: unknown split {cell['split']!r}; use one of "
                    f"{', '.join(sorted(set(SPLIT_ALIASES)))} or leave it empty"
                )
        image = Path(cell["path"])
        image = image if image.is_absolute() else base / image
        parsed.append((lineno, image, cell["label"], split, cell.get("group") or None, {c: cell[c] for c in extra}))
    if not parsed:
        raise AnnotationError(f"{path}: no data rows after the header")
    parsed = [row for row in parsed if guard.keep(row[1], f"{path.name}: line {row[0]}")]
    classes = _sort_classes({label for _, _, label, _, _, _ in parsed if label})
    lookup = {name: i for i, name in enumerate(classes)}
    records = []
    for lineno, image, label, split, group, more in parsed:
        rec = Record(path=image, split=split, label=lookup[label] if label else None, group=group)
        if more:
            rec.meta["csv"] = more
        check_image_exists(rec, f"{path.name}: line {lineno}")
        records.append(rec)
    index = DatasetIndex(root=base, format=NAME, task=Task.CLASSIFY, classes=classes, records=records, meta={"csv": str(path)})
    return guard.finish(index)
