"""Expand files, folders and globs into image paths, and iterate over them without dying on one bad file."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pixlearn._core.errors import ImageNotFoundError, PixlearnError
from pixlearn.io.image import DEFAULT_BACKGROUND, Mode, read_image

__all__ = ["IMAGE_EXTENSIONS", "expand_sources", "iter_images", "unique_stem"]

#: Extensions picked up when a folder or glob is expanded (case-insensitive).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})

_GLOB_CHARS = set("*?[")


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, else ``stem-2``, ``stem-3``... the first one not in ``used``, which it joins: the output names of
    inputs that share a name (from different folders), in input order.

    Examples
    --------
    >>> used = set()
    >>> [unique_stem(s, used) for s in ("a", "b", "a", "a")]
    ['a', 'b', 'a-2', 'a-3']
    """
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}-{k}", k + 1
    used.add(name)
    return name


def _is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def expand_sources(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
) -> list[tuple[Path, Path | None]]:
    """Expand files, folders and glob patterns into ``(path, root)`` pairs.

    A file named explicitly is kept whatever its extension (the content decides
    later); folders and globs contribute only files with an image extension.
    ``root`` is the folder a path was found under (``None`` for a file named
    directly), so callers can mirror sub-folder structure. Missing paths are kept
    so that the caller can report them. Order: as given, each folder sorted.

    Examples
    --------
    >>> expand_sources(["does-not-exist.png"])
    [(PosixPath('does-not-exist.png'), None)]
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out: list[tuple[Path, Path | None]] = []
    seen: set[Path] = set()

    def add(path: Path, root: Path | None) -> None:
        key = path.resolve() if path.exists() else path
        if key not in seen:
            seen.add(key)
            out.append((path, root))

    for src in sources:
        text = os.fspath(src)
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for child in sorted(path.glob(pattern)):
                if child.is_file() and _is_image_name(child) and not child.name.startswith("."):
                    add(child, path)
        elif path.is_file() or not (_GLOB_CHARS & set(text)):
            add(path, None)
        else:
            base = Path(text.split("*")[0].split("?")[0].split("[")[0])
            root = base if text.endswith(os.sep) or base.is_dir() else base.parent
            for match in sorted(glob.glob(text, recursive=True)):
                m = Path(match)
                if m.is_file() and _is_image_name(m):
                    add(m, root)
    return out


def iter_images(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    mode: Mode = "RGB",
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    max_pixels: int | None = None,
    recursive: bool = True,
) -> Iterator[tuple[Path, np.ndarray | PixlearnError]]:
    """Yield ``(path, image_or_error)`` for every image in files, folders and globs.

    A file that cannot be read yields its :class:`~pixlearn.PixlearnError` instead of
    an array, so one bad file never stops a batch. A glob or folder that matches
    nothing yields nothing; a named file that does not exist yields an
    :class:`~pixlearn.ImageNotFoundError`.

    Examples
    --------
    >>> [(p.name, type(r).__name__) for p, r in iter_images(["missing.jpg"])]
    [('missing.jpg', 'ImageNotFoundError')]
    """
    for path, _root in expand_sources(sources, recursive=recursive):
        if not path.exists():
            yield path, ImageNotFoundError(f"{path}: no such file or folder; check the path")
            continue
        try:
            yield path, read_image(path, mode=mode, background=background, max_pixels=max_pixels)
        except PixlearnError as exc:
            yield path, exc
