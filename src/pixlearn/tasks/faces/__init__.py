"""Faces: detection (dlib HOG or MMOD CNN), 5-point landmarks and aligned crops, 128-d embeddings, a gallery of
enrolled people with 1:N identification and 1:1 verification, and threshold calibration on labelled pairs.

* :mod:`~pixlearn.tasks.faces.embedding` -- :func:`landmarks`, :func:`align`, :func:`embed` (:class:`FaceEmbedding`);
  detection itself is :func:`pixlearn.ops.faces.detect_faces` (:class:`~pixlearn.ops.faces.FaceBox`), and
  anonymising is the ``blur_faces`` op.
* :mod:`~pixlearn.tasks.faces.gallery` -- :class:`Gallery` over a :class:`GalleryStore` (the storage protocol; the local
  one-file :class:`FileGalleryStore`): ``enroll``, ``identify``, ``verify``, ``calibrate``, ``people``, ``delete``.
* :mod:`~pixlearn.tasks.faces.calibration` -- :func:`calibrate` (:class:`Calibration`: threshold, ROC AUC, EER, FAR, FRR).
* :mod:`~pixlearn.tasks.faces.files` -- files, folders and globs for the CLI, one row per image, never dying on one
  bad file; :mod:`~pixlearn.tasks.faces.draw` -- boxes with names.

Every name above is importable from this package (``from pixlearn.tasks.faces import Gallery``); they load on first
use, so importing the package loads neither dlib, OpenCV nor a model. The package registers itself as the
ready-made task ``faces`` (:func:`pixlearn.tasks.registry.tool`), the way the CLI and the service reach it.
The models are the CC0 files of ``face_recognition_models``; the 68-point landmark model is never used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pixlearn.tasks.registry import ToolSpec, register_tool

#: Public name -> the submodule that defines it (loaded on first access).
_LAZY = {
    "FaceEmbedding": "embedding", "landmarks": "embedding", "align": "embedding", "embed": "embedding", "distances": "embedding",
    "Gallery": "gallery", "GalleryStore": "gallery", "FileGalleryStore": "gallery", "check_person_name": "gallery",
    "DEFAULT_THRESHOLD": "gallery", "check_threshold": "gallery", "MemoryGalleryStore": "gallery", "verify": "gallery",
    "open_gallery": "gallery",
    "Calibration": "calibration", "calibrate": "calibration",
    "FaceError": "errors", "NoFaceError": "errors", "GalleryError": "errors", "GalleryNotFoundError": "errors",
}

__all__ = sorted(_LAZY)

SPEC = register_tool(ToolSpec(
    name="faces",
    summary="Faces: detect (HOG or CNN), 5-point landmarks, aligned crops, 128-d embeddings; a gallery to enroll, "
            "identify (1:N) and verify (1:1) people with calibrated thresholds.",
    package="pixlearn.tasks.faces",
    entry={
        "detect": "pixlearn.tasks.faces.files:detect_files",
        "align": "pixlearn.tasks.faces.files:align_files",
        "identify": "pixlearn.tasks.faces.files:identify_files",
        "table": "pixlearn.tasks.faces.files:face_table",
        "enroll": "pixlearn.tasks.faces.files:enroll_files",
        "verify": "pixlearn.tasks.faces.files:verify_files",
        "calibrate": "pixlearn.tasks.faces.files:calibrate_folder",
        "gallery": "pixlearn.tasks.faces.gallery:Gallery",
        "verify_images": "pixlearn.tasks.faces.gallery:verify",
        "memory_store": "pixlearn.tasks.faces.gallery:MemoryGalleryStore",
        "check_person_name": "pixlearn.tasks.faces.gallery:check_person_name",
        "check_threshold": "pixlearn.tasks.faces.gallery:check_threshold",
        "gallery_error": "pixlearn.tasks.faces.errors:GalleryError",
        "open_gallery": "pixlearn.tasks.faces.gallery:open_gallery",
        "file_store": "pixlearn.tasks.faces.gallery:FileGalleryStore",
        "embed": "pixlearn.tasks.faces.embedding:embed",
        "draw": "pixlearn.tasks.faces.draw:draw_faces",
    },
))


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
