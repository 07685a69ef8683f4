"""Dataset formats, one module each: ``read(root) -> DatasetIndex`` and ``sniff(root) -> str | None``.

Use :func:`pixlearn.data.readers.read_dataset`; these modules are its parts.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pixlearn.data.formats._base import AnnotationError

__all__ = ["FORMATS", "AnnotationError", "format_module"]

#: Format name -> module under ``pixlearn.data.formats``.
_MODULES = {
    "imagefolder": "imagefolder",
    "csv": "csvfile",
    "coco": "coco",
    "yolo": "yolo",
    "voc": "voc",
    "masks": "maskfolder",
    "paired": "paired",
    "clean": "clean",
}

#: Every dataset format pixlearn reads.
FORMATS: tuple[str, ...] = tuple(_MODULES)


def format_module(name: str) -> ModuleType:
    """The module that reads format ``name`` (validated with a did-you-mean)."""
    from pixlearn._core.names import check_name

    check_name(name, FORMATS, what="dataset format")
    return importlib.import_module(f"pixlearn.data.formats.{_MODULES[name]}")
