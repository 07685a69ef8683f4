"""The errors of the faces task (all :class:`~pixlearn._core.errors.PixlearnError`, so the service answers 400)."""

from __future__ import annotations

from pixlearn._core.errors import ConfigError, PixlearnError

__all__ = ["FaceError", "NoFaceError", "GalleryError", "GalleryNotFoundError"]


class FaceError(PixlearnError, ValueError):
    """An image cannot be used for what was asked: no face, or several where one was needed."""


class NoFaceError(FaceError):
    """No face was found where one was needed (verify, enroll)."""


class GalleryError(ConfigError):
    """A gallery file or store is unusable: not a gallery, another embedding model, an empty gallery, a bad name."""


class GalleryNotFoundError(GalleryError, FileNotFoundError):
    """The gallery file does not exist (``enroll`` creates one; the other commands need one)."""
