"""Faces over files, folders and globs: one row per image, never dying on one bad file (what ``pixlearn faces`` runs).

Every function checks its options before the first image is read. A row holds ``path``, ``width``, ``height``,
``faces`` (one dict per face), ``count``, ``drawn`` (the written image or None) and ``error`` (why the file could not
be used, else None). :func:`face_table` flattens rows to one line per face for CSV and tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError

__all__ = ["TABLE_COLUMNS", "detect_files", "align_files", "identify_files", "enroll_files", "verify_files",
           "calibrate_folder", "face_table"]

#: Columns of :func:`face_table`.
TABLE_COLUMNS = ("path", "face", "x0", "y0", "x1", "y1", "score", "name", "distance", "error")

Sources = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def _paths(images: Sources) -> list[Path]:
    from pixlearn.io import expand_sources

    paths = [Path(p) for p, _ in expand_sources(images)]
    if not paths:
        raise ConfigError(f"no images found in {images if isinstance(images, (str, os.PathLike)) else ' '.join(map(str, images))}")
    return paths


def _targets(paths: Sequence[Path], folder: str | os.PathLike[str] | None, suffix: str = "") -> list[Path | None]:
    """The output file of each input in ``folder`` (``<stem><suffix>.<ext>``, ``a``, ``a-2``... for shared stems)."""
    from pixlearn.io import WRITE_FORMATS, unique_stem

    if folder is None:
        return [None] * len(paths)
    used: set[str] = set()
    out = []
    for p in paths:
        ext = p.suffix.lower() if p.suffix.lower() in WRITE_FORMATS else ".png"
        out.append(Path(folder) / f"{unique_stem(p.stem + suffix, used)}{ext}")
    return out


def _row(path: Path) -> dict[str, Any]:
    return {"path": str(path), "width": None, "height": None, "faces": [], "count": 0, "drawn": None, "error": None}


def _read(row: dict[str, Any], path: Path) -> np.ndarray | None:
    from pixlearn.io import read_image

    try:
        image = read_image(path)
    except (PixlearnError, OSError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return None
    row.update(height=int(image.shape[0]), width=int(image.shape[1]))
    return image


def _run(paths: Sequence[Path], work: Any, *, progress: bool | None, what: str) -> list[dict[str, Any]]:
    from pixlearn.engine.progress import progress_bar

    rows = []
    bar, task = progress_bar(progress, len(paths), what)
    with bar:
        for k, p in enumerate(paths):
            row = _row(p)
            image = _read(row, p)
            if image is not None:
                try:
                    work(k, image, row)
                except (PixlearnError, OSError) as exc:  # e.g. an image too large to scan with these options
                    row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            bar.advance(task)
    return rows


def _mkdir(folder: str | os.PathLike[str] | None) -> None:
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)


def detect_files(images: Sources, *, detector: str = "hog", upsample: int = 1, landmarks: bool = False,
                 draw: str | os.PathLike[str] | None = None, progress: bool | None = None) -> list[dict[str, Any]]:
    """Detect the faces of every image; ``faces`` rows hold ``box``, ``score``, ``detector`` (and the 5 ``landmarks``
    when asked). ``draw``: a folder for each image drawn with its boxes."""
    from pixlearn.io import write_image
    from pixlearn.ops.faces import check_detect_options, detect_faces
    from pixlearn.tasks.faces.draw import draw_faces
    from pixlearn.tasks.faces.embedding import landmarks as find_landmarks

    detector, upsample = check_detect_options(detector, upsample)
    paths = _paths(images)
    targets = _targets(paths, draw)
    _mkdir(draw)

    def work(k: int, image: np.ndarray, row: dict[str, Any]) -> None:
        faces = detect_faces(image, detector=detector, upsample=upsample)
        row["faces"] = [f.to_dict() for f in faces]
        if landmarks and faces:
            for d, pts in zip(row["faces"], find_landmarks(image, faces)):
                d["landmarks"] = np.round(pts, 2).tolist()
        row["count"] = len(faces)
        if targets[k] is not None:
            row["drawn"] = str(write_image(targets[k], draw_faces(image, row["faces"])))

    return _run(paths, work, progress=progress, what="detecting faces")


def align_files(images: Sources, out: str | os.PathLike[str], *, size: int = 150, padding: float = 0.25,
                detector: str = "hog", upsample: int = 1, progress: bool | None = None) -> list[dict[str, Any]]:
    """Write the aligned crop of every face to ``out`` as ``<stem>_face<k>.png`` (k = 1, 2, ... by detection score);
    ``faces`` rows hold ``box``, ``score`` and ``crop`` (the file written)."""
    from pixlearn.io import unique_stem, write_image
    from pixlearn.ops.faces import check_detect_options, detect_faces
    from pixlearn.tasks.faces.embedding import _check_align, align

    detector, upsample = check_detect_options(detector, upsample)
    size, padding = _check_align(size, padding)
    paths = _paths(images)
    _mkdir(out)
    used: set[str] = set()
    stems = [unique_stem(p.stem, used) for p in paths]

    def work(k: int, image: np.ndarray, row: dict[str, Any]) -> None:
        faces = detect_faces(image, detector=detector, upsample=upsample)
        crops = align(image, faces, size=size, padding=padding) if faces else []
        row["faces"] = []
        for j, (face, crop) in enumerate(zip(faces, crops), start=1):
            written = write_image(Path(out) / f"{stems[k]}_face{j}.png", crop)
            row["faces"].append({**face.to_dict(), "crop": str(written)})
        row["count"] = len(faces)

    return _run(paths, work, progress=progress, what="aligning faces")


def identify_files(gallery: Any, images: Sources, *, threshold: float | None = None, top_k: int = 1,
                   draw: str | os.PathLike[str] | None = None, progress: bool | None = None) -> list[dict[str, Any]]:
    """Identify every face of every image against ``gallery`` (a :class:`~pixlearn.tasks.faces.gallery.Gallery`);
    ``faces`` rows are :meth:`~pixlearn.tasks.faces.gallery.Gallery.identify`'s. An empty gallery stops before any
    image is read."""
    from pixlearn.io import write_image
    from pixlearn.tasks.faces.draw import draw_faces
    from pixlearn.tasks.faces.errors import GalleryError
    from pixlearn.tasks.faces.gallery import check_threshold

    if threshold is not None:
        threshold = check_threshold(threshold)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise ConfigError(f"top_k must be an integer in [1, 100], got {top_k!r}")
    if not gallery.people():
        raise GalleryError("the gallery holds no one; enroll people first (pixlearn faces enroll GALLERY NAME IMAGES)")
    paths = _paths(images)
    targets = _targets(paths, draw)
    _mkdir(draw)

    def work(k: int, image: np.ndarray, row: dict[str, Any]) -> None:
        row["faces"] = gallery.identify(image, threshold=threshold, top_k=top_k)
        row["count"] = len(row["faces"])
        if targets[k] is not None:
            row["drawn"] = str(write_image(targets[k], draw_faces(image, row["faces"])))

    return _run(paths, work, progress=progress, what="identifying faces")


def enroll_files(gallery: Any, name: str, images: Sources, *, keep_photos: bool = False,
                 progress: bool | None = None) -> dict[str, Any]:
    """Enrol ``name`` from image files, folders and globs (see :meth:`~pixlearn.tasks.faces.gallery.Gallery.enroll`)."""
    from pixlearn.tasks.faces.gallery import check_person_name

    check_person_name(name)
    return gallery.enroll(name, [str(p) for p in _paths(images)], keep_photos=keep_photos, progress=progress)


def verify_files(image_a: str | os.PathLike[str], image_b: str | os.PathLike[str], *, gallery: Any = None,
                 threshold: float | None = None, detector: str = "hog", upsample: int = 1) -> dict[str, Any]:
    """1:1 verification of two image files, with ``gallery``'s threshold (calibrated) when given, else ``threshold``
    or 0.6."""
    from pixlearn.tasks.faces.gallery import verify

    if gallery is not None:
        result = gallery.verify(str(image_a), str(image_b), threshold=threshold)
    else:
        result = verify(str(image_a), str(image_b), threshold=threshold, detector=detector, upsample=upsample)
    return {"image_a": str(image_a), "image_b": str(image_b), **result}


def calibrate_folder(gallery: Any, folder: str | os.PathLike[str], *, progress: bool | None = None) -> dict[str, Any]:
    """Calibrate ``gallery``'s threshold on a folder of person subfolders and store it; the calibration as a dict."""
    return gallery.calibrate(Path(folder), progress=progress).to_dict()


def face_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per face (``path``, ``face`` 1.., box corners, ``score``, ``name``, ``distance``), and one line with the
    ``error`` for each unreadable image; an image without faces gets a line with ``face`` 0."""
    out = []
    for r in rows:
        if r.get("error"):
            out.append({"path": r["path"], "face": None, "error": r["error"]})
            continue
        if not r["faces"]:
            out.append({"path": r["path"], "face": 0})
        for k, f in enumerate(r["faces"], start=1):
            x0, y0, x1, y1 = f["box"]
            out.append({"path": r["path"], "face": k, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "score": f.get("score"),
                        "name": f.get("name"), "distance": f.get("distance"), "error": None})
    return out
