"""Restore files, folders and globs with any restorer, and name the outputs: numpy only (no torch).

One piece of code serves the torch restorer (:func:`pixlearn.tasks.restore.predict.restore_files`), the onnxruntime
one (:func:`pixlearn.export.runtime.restore_files`) and the Ray actors of ``--engine ray``, so their rows and files are
the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError

__all__ = ["IMAGE_SUFFIXES", "Restores", "output_paths", "restore_rows"]

#: An ``out`` ending so names one output file (one input image); anything else is a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


class Restores(Protocol):
    """What :func:`restore_rows` needs: ``restore(uint8 image) -> uint8 image``."""

    def restore(self, image: np.ndarray) -> np.ndarray: ...


def output_paths(found: list[tuple[Path, Path | None]], out: str | Path) -> list[Path]:
    """The output file of each ``(path, root)`` from :func:`pixlearn.io.expand_sources`: ``out`` itself when it names
    an image file (one input), else ``out/<path relative to its folder argument>.png`` (sub-folders mirrored).

    Raises
    ------
    ConfigError
        ``out`` names one file but there are several inputs.

    Examples
    --------
    >>> [str(p) for p in output_paths([(Path("in/a/x.jpg"), Path("in")), (Path("y.tif"), None)], "out")]
    ['out/a/x.png', 'out/y.png']
    >>> [str(p) for p in output_paths([(Path("x.jpg"), None)], "clean.png")]
    ['clean.png']
    """
    target = Path(out)
    if target.suffix.lower() in IMAGE_SUFFIXES:
        if len(found) > 1:
            raise ConfigError(f"{len(found)} images but --out {target} is one file; give a folder")
        return [target] * len(found)
    return [target / (p.relative_to(root) if root is not None else Path(p.name)).with_suffix(".png") for p, root in found]


def restore_rows(restorer: Restores, paths: list[Path], outs: list[Path], *, progress: bool | None = None) -> list[dict[str, Any]]:
    """Restore each of ``paths`` and write it to the matching ``outs`` entry; one row per input.

    A grey picture (three equal channels) is restored as one channel and stays grey. An unreadable file is reported in
    its row's ``error`` and does not stop the others.

    Returns
    -------
    list of dict
        ``{"path", "output", "width", "height", "out_width", "out_height", "seconds", "error"}`` per input.
    """
    from pixlearn.engine.progress import track
    from pixlearn.io import read_image, write_image

    rows = []
    it: Iterable[int] = track(range(len(paths)), description="restoring", progress=progress)
    for i in it:
        p, dst = paths[i], outs[i]
        row: dict[str, Any] = {"path": str(p), "output": None, "width": None, "height": None, "out_width": None,
                               "out_height": None, "seconds": None, "error": None}
        try:
            img = read_image(p)
            if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]):
                img = np.ascontiguousarray(img[..., 0])  # a grey picture stays grey
            t0 = time.perf_counter()
            res = restorer.restore(img)
            row["seconds"] = round(time.perf_counter() - t0, 4)
            write_image(dst, res)
            row.update(output=str(dst), width=img.shape[1], height=img.shape[0], out_width=res.shape[1], out_height=res.shape[0])
        except PixlearnError as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows
