"""The pixlearn exception hierarchy.

Every error pixlearn raises on purpose derives from :class:`PixlearnError`, so a
caller can catch one type. Messages say what was received, what was expected
and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "PixlearnError",
    "ImageDecodeError",
    "ImageNotFoundError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "ImageWriteError",
    "ShapeError",
    "ConfigError",
    "WeightsNotFoundError",
    "UnknownNameError",
    "AnnotationError",
    "ExportError",
    "ParityError",
]


class PixlearnError(Exception):
    """Base class of every error pixlearn raises on purpose."""


class ImageDecodeError(PixlearnError, ValueError):
    """The input is empty, truncated, corrupt or not an image at all."""


class ImageNotFoundError(ImageDecodeError, FileNotFoundError):
    """The image path does not exist."""


class UnsupportedFormatError(PixlearnError, ValueError):
    """The input is an image format outside pixlearn's allowlist."""


class ImageTooLargeError(PixlearnError, ValueError):
    """The image declares more pixels than the configured limit."""


class ImageWriteError(PixlearnError, OSError):
    """An image could not be written (bad path, unsupported extension, bad array)."""


class ShapeError(PixlearnError, ValueError):
    """An array has the wrong shape or dtype for the operation."""


class ConfigError(PixlearnError, ValueError):
    """A configuration value or option is invalid."""


class WeightsNotFoundError(ConfigError, FileNotFoundError):
    """Weights were asked for but are not on this machine (and could not be downloaded)."""


class AnnotationError(PixlearnError, ValueError):
    """An annotation file is malformed; the message names the file, the line or annotation id, and what is wrong."""


class UnknownNameError(ConfigError, KeyError):
    """A user-facing name (op, model, format, feature) is not one of the known names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ExportError(PixlearnError, RuntimeError):
    """A model could not be exported (the message names the run, the format and why)."""


class ParityError(ExportError):
    """An exported model's outputs differ from the torch predictor's beyond the tolerance (the numbers are in the message)."""
