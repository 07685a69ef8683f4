"""Turn what a client sent (an upload, base64 text, a path under an allowed root, a zip) into RGB arrays.

Every image goes through :func:`pixlearn.io.read_image` (format allowlist, pixel limit read from
the header, typed errors), so a hostile or broken image becomes a 4xx naming the file and the
reason, never a 5xx. Zips are read in memory with an image-count cap, a decompressed-size cap
and a compression-ratio cap; nothing is written to disk.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pixlearn._core.errors import ImageDecodeError, PixlearnError
from pixlearn.serve.errors import ApiError

__all__ = ["Decoded", "decode_bytes", "decode_b64", "read_allowed_path", "iter_zip_images", "IMAGE_SUFFIXES"]

#: File names a zip entry must end with to count as an image (the content is still checked).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


@dataclass
class Decoded:
    """One input: its name and either the RGB array or the reason it could not be read."""

    name: str
    image: np.ndarray | None = None
    error: str | None = None


class _Named(io.BytesIO):
    """Bytes with a ``name``, so read_image's messages name the upload, not ``<N bytes>``."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def decode_bytes(data: bytes, *, name: str, max_pixels: int | None = None) -> np.ndarray:
    """Decode an uploaded image to (H, W, 3) uint8 RGB; raises pixlearn's typed errors naming ``name``.

    Examples
    --------
    >>> decode_bytes(b"", name="empty.jpg")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ImageDecodeError: empty.jpg: empty input (0 bytes); the file is not an image
    """
    from pixlearn.io import read_image

    return read_image(_Named(bytes(data), name or "upload"), mode="RGB", max_pixels=max_pixels)


def decode_b64(text: str, *, name: str = "image.b64", max_pixels: int | None = None) -> np.ndarray:
    """Decode base64 text (a ``data:image/...;base64,`` prefix is allowed) to an RGB array."""
    if not isinstance(text, str):
        raise ImageDecodeError(f"{name}: expected base64 text, got {type(text).__name__}")
    if text.startswith("data:") and "," in text[:200]:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageDecodeError(f"{name}: not valid base64; encode the file's bytes with standard base64 "
                               "(e.g. `base64 -w0 photo.jpg`)") from None
    return decode_bytes(data, name=name, max_pixels=max_pixels)


def read_allowed_path(path: str, roots: Sequence[Path], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file on the server, only from under one of ``roots`` (symlinks resolved first)."""
    if not roots:
        raise ApiError(f"image.path {path!r}: reading server paths is disabled; upload the file instead, or start the "
                       "server with --allow-root DIR", status=403)
    resolved = Path(os.path.realpath(path if os.path.isabs(path) else Path(roots[0]) / path))
    for root in roots:
        base = Path(os.path.realpath(root))
        if resolved == base or resolved.is_relative_to(base):
            from pixlearn.io import read_image

            return read_image(resolved, mode="RGB", max_pixels=max_pixels)
    raise ApiError(f"image.path {path!r} is outside the allowed roots (the {len(roots)} folder(s) set with "
                   "--allow-root; the server does not show their paths); pass a path under one of them", status=403)


def iter_zip_images(data: bytes, *, name: str, max_images: int, max_total_bytes: int, max_ratio: float,
                    max_pixels: int | None = None) -> Iterator[Decoded]:
    """Decode the images of a zip held in memory, in name order; a bad entry yields its error.

    The whole request fails (400/413) when the data is not a zip, holds more than ``max_images``
    images, or declares more than ``max_total_bytes`` decompressed or a compression ratio over
    ``max_ratio`` (a zip bomb). Folders, hidden files and ``__MACOSX/`` are skipped.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ApiError(f"{name}: not a zip archive; send a .zip of images in the 'archive' field", status=400) from None
    with zf:
        entries = []
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                continue
            if not info.filename.lower().endswith(IMAGE_SUFFIXES):
                continue
            entries.append(info)
        entries.sort(key=lambda i: i.filename)
        if len(entries) > max_images:
            raise ApiError(f"{name}: holds {len(entries)} images, over the limit of {max_images} per request; split it "
                           "into smaller zips", status=413)
        total = sum(i.file_size for i in entries)
        if total > max_total_bytes:
            raise ApiError(f"{name}: its images decompress to {total / 1e6:.1f} MB, over the limit of "
                           f"{max_total_bytes / 1e6:.0f} MB; send fewer or smaller images", status=413)
        for info in entries:
            if info.compress_size and info.file_size / info.compress_size > max_ratio:
                raise ApiError(f"{name}: entry {info.filename!r} expands {info.file_size / info.compress_size:.0f}x "
                               f"(limit {max_ratio:g}x), which looks like a zip bomb; refused", status=400)
        for info in entries:
            label = f"{name}/{info.filename}"
            try:
                with zf.open(info) as fh:
                    raw = fh.read(info.file_size + 1)
                if len(raw) > info.file_size:
                    raise ImageDecodeError(f"{label}: decompresses to more than its declared size")
                yield Decoded(info.filename, decode_bytes(raw, name=label, max_pixels=max_pixels))
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
                yield Decoded(info.filename, error=f"{label}: cannot be extracted ({exc})")
            except PixlearnError as exc:  # undecodable, refused format, too many pixels: this entry's error
                yield Decoded(info.filename, error=str(exc))
