"""Read any supported dataset layout into a :class:`~pixlearn.data.index.DatasetIndex`.

========== ========= ==========================================================================
format     task      layout
========== ========= ==========================================================================
imagefolder classify ``<class>/*.jpg``, optionally under ``train/ val/ test/``
csv        classify  a CSV with ``path,label[,split][,group]`` columns (paths relative to it)
coco       detect /  ``annotations/*.json`` (COCO), images in ``images/`` or beside the JSON;
           instance  polygons and RLE become instance masks
yolo       detect /  ``data.yaml`` + ``images/<split>/`` + ``labels/<split>/*.txt``
           instance
voc        detect    ``Annotations/*.xml`` + ``JPEGImages/`` (+ ``ImageSets/Main/*.txt``)
masks      segment   ``images/`` + ``masks/`` with matching stems (pixel value = class id)
paired     restore   ``degraded/`` (``noisy/``, ``input/``, ``lr/``) + ``clean/`` (``target/``, ``gt/``, ``hr/``)
clean      restore   a folder of clean images (degradations are synthesised when loading)
========== ========= ==========================================================================

Every box in the index is absolute-pixel xyxy. A malformed annotation raises
:class:`AnnotationError` naming the file and the line or annotation id; problems that
``pixlearn data check`` reports instead (a missing image, a box outside its image, a degenerate
box) are kept in ``record.meta["problems"]`` as ``{"code", "severity", "message"}`` dicts.
Reading never writes anything.

Every path a dataset names stays inside the dataset folder: a record whose image, mask or target
resolves outside it (an absolute path, ``..``, a link pointing out) is refused -- left out of the
index, counted in ``index.meta["refused"]`` and described without the outside path -- and a
dataset whose every record is refused is an error. ``allow_outside_root=True`` (the CLI's
``--allow-outside-root``) lifts this for local use; the service never does.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name
from pixlearn._core.types import Task
from pixlearn.data.formats import FORMATS, AnnotationError, format_module
from pixlearn.data.formats._base import allow_outside_root_default, hinted, outside_root_allowed
from pixlearn.data.index import SPLITS, DatasetIndex

__all__ = [
    "read_task_dataset",
    "FORMATS",
    "AnnotationError",
    "read_dataset",
    "detect_format",
    "describe_dataset",
    "outside_root_allowed",
]

#: Formats identified by a file or folder only they use, tried first.
_STRONG = ("yolo", "voc", "coco", "masks", "paired", "csv")
#: Formats recognised by the absence of anything else (plain image folders), tried last.
_WEAK = ("imagefolder", "clean")
_FILE_FORMATS = {".csv": "csv", ".json": "coco", ".yaml": "yolo", ".yml": "yolo"}


def _listing(root: Path, limit: int = 8) -> str:
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return "nothing readable"
    if not entries:
        return "nothing (the folder is empty)"
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:limit]]
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(names) + more


def detect_format(root: str | os.PathLike[str]) -> str:
    """Tell which dataset format ``root`` holds, when only one fits.

    Parameters
    ----------
    root : path
        A dataset folder, or an annotation file (``.json`` COCO, ``.yaml`` YOLO, ``.csv``).

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    ConfigError
        When ``root`` does not exist, nothing fits, or several formats fit; the message says what
        was found and lists the formats to pass as ``format=`` (its ``cli_message`` names
        ``--from`` instead).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/cat/1.png", "train/dog/2.png", "val/cat/3.png"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True); (root / name).touch()
    >>> detect_format(root)
    'imagefolder'
    """
    root = Path(root)
    choices = ", ".join(FORMATS)
    if not root.exists():
        raise ConfigError(f"{root}: does not exist")
    if root.is_file():
        fmt = _FILE_FORMATS.get(root.suffix.lower())
        if fmt is None:
            what = f"a {root.suffix} file" if root.suffix else "a file without an extension"
            raise ConfigError(
                f"{root}: cannot tell the dataset format of {what}; "
                "give a dataset folder, a COCO .json, a YOLO .yaml or a .csv"
            )
        return fmt
    found = {name: desc for name in _STRONG if (desc := format_module(name).sniff(root))}
    if not found:
        found = {name: desc for name in _WEAK if (desc := format_module(name).sniff(root))}
    if len(found) == 1:
        return next(iter(found))
    if not found:
        raise hinted(
            ConfigError,
            f"{root}: cannot tell the dataset format; it holds {_listing(root)}. Known formats: {choices}",
            python="pass format= to choose one",
            cli="choose one with --from FORMAT",
        )
    what = "; ".join(f"{name} ({desc})" for name, desc in found.items())
    raise hinted(
        ConfigError,
        f"{root}: the dataset format is ambiguous: it looks like {what}",
        python=f"pass format= to choose one of {choices}",
        cli=f"choose one with --from FORMAT ({choices})",
        sep=". ",
    )


def read_dataset(
    root: str | os.PathLike[str], *, format: str | None = None, allow_outside_root: bool | None = None
) -> DatasetIndex:
    """Index a dataset: paths, labels, boxes, masks and splits; no image is decoded.

    Parameters
    ----------
    root : path
        The dataset folder (or its annotation file: a COCO ``.json``, a YOLO ``.yaml``, a ``.csv``).
    format : str, optional
        One of :data:`FORMATS`; detected from the layout when omitted (see :func:`detect_format`).
    allow_outside_root : bool, optional
        Read records whose paths lead outside the dataset folder (absolute paths, ``..``, links
        pointing out). Default False -- they are refused and counted in
        ``index.meta["refused"]`` -- or what an enclosing :func:`outside_root_allowed` says.
        Only for local use: never for data from someone else.

    Returns
    -------
    DatasetIndex
        ``classes`` in class-index order, ``task``, and one record per image with boxes as
        absolute-pixel xyxy.

    Raises
    ------
    UnknownNameError
        ``format`` is not a known format (the message suggests the closest).
    ConfigError
        The layout does not fit the format, the format cannot be detected, or every record was
        refused because its path leads outside the dataset folder.
    AnnotationError
        A malformed annotation; the message names the file and the line or annotation id.

    Examples
    --------
    >>> import tempfile, numpy as np, pixlearn
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("train/cat/1.png", "train/dog/2.png", "valid/dog/3.png"):
    ...     _ = pixlearn.write_image(root / name, np.zeros((4, 4, 3), np.uint8))
    >>> index = read_dataset(root)
    >>> index.format, index.task.value, index.classes, index.splits()
    ('imagefolder', 'classify', ['cat', 'dog'], {'train': 2, 'val': 1})
    """
    root = Path(root)
    if format is None:
        format = detect_format(root)
    else:
        format = check_name(str(format).lower(), FORMATS, what="dataset format")
        if not root.exists():
            raise ConfigError(f"{root}: does not exist")
    return format_module(format).read(root, allow_outside_root=allow_outside_root_default(allow_outside_root))


def describe_dataset(index: DatasetIndex) -> dict[str, Any]:
    """A small JSON-ready summary of an index: format, task, classes, counts per split and class.

    Per split, ``images`` counts records; ``per_class`` counts images per class (classify) or
    objects per class (detect / instance); ``objects`` counts boxes. ``problems`` counts the
    reader's notes by code; ``refused`` counts the records left out by reason (``outside_root``).

    Examples
    --------
    >>> import tempfile, numpy as np, pixlearn
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("a/1.png", "a/2.png", "b/3.png"):
    ...     _ = pixlearn.write_image(root / name, np.zeros((4, 4, 3), np.uint8))
    >>> describe_dataset(read_dataset(root))["splits"]
    {'all': {'images': 3, 'per_class': {'a': 2, 'b': 1}}}
    """
    present = {r.split for r in index.records}
    order = [s for s in SPLITS if s in present] + sorted(str(s) for s in present - set(SPLITS) - {None})
    if None in present:
        order.append(None)  # type: ignore[arg-type]
    splits: dict[str, Any] = {}
    boxes = index.task in (Task.DETECT, Task.INSTANCE)
    for split in order:
        records = [r for r in index.records if r.split == split]
        entry: dict[str, Any] = {"images": len(records)}
        if index.task is Task.CLASSIFY:
            c = Counter(r.label for r in records)
            entry["per_class"] = {name: c.get(i, 0) for i, name in enumerate(index.classes)}
            if c.get(None):
                entry["unlabelled"] = c[None]
        elif boxes:
            c = Counter(int(v) for r in records if r.box_labels is not None for v in r.box_labels)
            entry["objects"] = sum(c.values())
            entry["per_class"] = {name: c.get(i, 0) for i, name in enumerate(index.classes)}
        splits["all" if split is None else str(split)] = entry
    problems = Counter(
        (p.get("code", "reader") if isinstance(p, dict) else "reader")
        for r in index.records
        for p in r.meta.get("problems", ())
    )
    return {
        "root": str(index.root),
        "format": index.format,
        "task": index.task.value,
        "num_classes": len(index.classes),
        "classes": list(index.classes),
        "images": len(index.records),
        "splits": splits,
        "problems": dict(problems),
        "refused": {k: v for k, v in (index.meta.get("refused") or {}).items() if k != "examples"},
        **_mask_coding_summary(index),
    }


def _mask_coding_summary(index: DatasetIndex) -> dict[str, Any]:
    """Semantic-mask sets: what their values mean (the rule of :mod:`pixlearn.data.masks`)."""
    if index.task is not Task.SEGMENT:
        return {}
    from pixlearn.data.masks import MaskCoding

    coding = MaskCoding.from_meta(index.meta)
    meaning = ("0 = background, 255 = foreground (a binary 0/255 set)" if coding.kind == "binary255"
               else f"value = class index (0..{len(index.classes) - 1}), 255 = ignore")
    return {"mask_coding": coding.kind, "mask_values": meaning}


def read_task_dataset(
    data: str | os.PathLike[str] | DatasetIndex, task: Task, *, layout: str, missing: str = "no such folder or file",
    wrong: str | None = None,
) -> DatasetIndex:
    """The prologue every task's dataset reader shares: an index passes through, a path must exist and is read with
    :func:`read_dataset`, and the dataset must be one of ``task``.

    Parameters
    ----------
    layout : str
        What ``--data`` must be, for the messages.
    missing : str
        The words for a path that does not exist.
    wrong : str, optional
        The end of the message for a dataset of another task (default ``"not <layout>"``).

    Raises
    ------
    ConfigError
        A path that does not exist, or a dataset of another task; the message names the path and the layout.

    Examples
    --------
    >>> read_task_dataset("/no/such/dir", Task.SEGMENT, layout="images/ + masks/", missing="no such folder")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: /no/such/dir: no such folder; --data must be images/ + masks/
    """
    if isinstance(data, DatasetIndex):
        index = data
    else:
        path = Path(data)
        if not path.exists():
            raise ConfigError(f"{path}: {missing}; --data must be {layout}")
        index = read_dataset(path)
    if Task(index.task) is not task:
        raise ConfigError(f"{index.root}: holds a dataset in the {index.format} format ({Task(index.task).value}), "
                          + (wrong or f"not {layout}"))
    return index
