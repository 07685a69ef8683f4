"""Built-in sample images that need no network (scikit-image ships these photos inside its package)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SKIMAGE_PHOTOS", "write_skimage_samples"]

#: scikit-image sample photos bundled in its wheel (no download), with the format each is written as.
SKIMAGE_PHOTOS = {
    "astronaut": "jpg",
    "coffee": "jpg",
    "chelsea": "jpg",
    "rocket": "jpg",
    "camera": "png",
    "coins": "png",
    "page": "png",
    "moon": "png",
}


def write_skimage_samples(out: str | os.PathLike[str]) -> list[Path]:
    """Write scikit-image's bundled sample photos into ``out`` and return their paths.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_skimage_samples(tempfile.mkdtemp())
    >>> sorted(p.name for p in paths)[:2]
    ['astronaut.jpg', 'camera.png']
    """
    from skimage import data

    from pixlearn.io import write_image

    out = Path(out)
    paths = []
    for name, ext in SKIMAGE_PHOTOS.items():
        image = getattr(data, name)()
        paths.append(write_image(out / f"{name}.{ext}", image, quality=92))
    return paths
