"""pixlearn: machine-learning image processing, from raw pictures to deployable models.

``import pixlearn`` is cheap: it loads the error types and nothing heavy. The
public functions below are imported lazily on first use.

>>> import pixlearn
>>> issubclass(pixlearn.ImageDecodeError, pixlearn.PixlearnError)
True
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pixlearn._core.errors import (
    AnnotationError,
    ConfigError,
    ImageDecodeError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImageWriteError,
    PixlearnError,
    ShapeError,
    UnknownNameError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

_LAZY = {
    "read_image": "pixlearn.io",
    "write_image": "pixlearn.io",
    "iter_images": "pixlearn.io",
    "image_info": "pixlearn.io",
}

__all__ = [
    "__version__",
    "PixlearnError",
    "ImageDecodeError",
    "ImageNotFoundError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "ImageWriteError",
    "ShapeError",
    "ConfigError",
    "UnknownNameError",
    "AnnotationError",
    *_LAZY,
]

if TYPE_CHECKING:  # pragma: no cover
    from pixlearn.io import image_info, iter_images, read_image, write_image


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pixlearn' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
