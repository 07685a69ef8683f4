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
import stat
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pixlearn._core.errors import ImageDecodeError, PixlearnError
from pixlearn.serve.errors import ApiError

__all__ = ["Decoded", "decode_bytes", "decode_b64", "check_path_text", "read_allowed_path", "iter_zip_images",
           "IMAGE_SUFFIXES"]

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


#: Longest path (bytes) and path component (bytes) a path input may have (Linux's PATH_MAX and NAME_MAX).
PATH_MAX = 4096
NAME_MAX = 255


def check_path_text(path: object, *, what: str = "image.path") -> str:
    """A path sent by a client, checked before any file-system call: text, no NUL byte, within PATH_MAX/NAME_MAX.

    Examples
    --------
    >>> check_path_text("cats/1.jpg")
    'cats/1.jpg'
    >>> check_path_text("a\\x00.jpg")
    Traceback (most recent call last):
    ...
    pixlearn.serve.errors.ApiError: image.path 'a\\x00.jpg' holds a NUL byte; send the path of a file under an allowed root
    """
    if not isinstance(path, str) or not path:
        raise ApiError(f"{what} must be a non-empty string (a file under an allowed root), got {path!r}", status=400)
    if "\x00" in path:
        raise ApiError(f"{what} {path[:200]!r} holds a NUL byte; send the path of a file under an allowed root",
                       status=400)
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        raise ApiError(f"{what} {path[:200]!r} cannot be encoded as a file name on this server", status=400) from None
    if len(encoded) > PATH_MAX:
        raise ApiError(f"{what} is {len(encoded)} bytes long, over the limit of {PATH_MAX} (PATH_MAX); send a "
                       "shorter path", status=400)
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > NAME_MAX:
        raise ApiError(f"{what} has a file or folder name of {longest} bytes, over the limit of {NAME_MAX} "
                       "(NAME_MAX); send a path with shorter names", status=400)
    return path


def _read_regular_file(path: Path, shown: str, *, max_bytes: int | None) -> bytes:
    """The bytes of ``path`` if it is a regular file: a FIFO, device or socket is refused without blocking on it."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO with no writer returns at once
    except FileNotFoundError:
        raise ApiError(f"image.path {shown!r}: no such file under the allowed roots; check the path", status=404) from None
    except OSError as exc:  # a link swapped in (ELOOP), a folder, a name too long, no permission
        raise ApiError(f"image.path {shown!r} cannot be read ({exc.strerror or exc}); send the path of an image file",
                       status=400) from None
    try:
        st = os.fstat(fd)  # the file actually opened: no race with the path changing after a check
        if not stat.S_ISREG(st.st_mode):
            kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise ApiError(f"image.path {shown!r} is {kind}, not a regular file; send the path of an image file",
                           status=400)
        if max_bytes is not None and st.st_size > max_bytes:
            raise ApiError(f"image.path {shown!r} is {st.st_size / 2**20:.1f} MB, over the limit of "
                           f"{max_bytes / 2**20:.3g} MB per image", status=413)
        chunks, size = [], 0
        limit = max_bytes if max_bytes is not None else st.st_size
        while True:  # bounded even if the file grows while it is read
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if max_bytes is not None:
                    raise ApiError(f"image.path {shown!r} is over the limit of {max_bytes / 2**20:.3g} MB per image",
                                   status=413)
                break
        return b"".join(chunks)
    except OSError as exc:
        raise ApiError(f"image.path {shown!r} cannot be read ({exc.strerror or exc})", status=400) from None
    finally:
        os.close(fd)


def read_allowed_path(path: str, roots: Sequence[Path], *, max_pixels: int | None = None,
                      max_bytes: int | None = None) -> np.ndarray:
    """Read an image file on the server, only from under one of ``roots`` (symlinks resolved first).

    The path is checked as text first (:func:`check_path_text`: no NUL byte, within PATH_MAX); only a
    regular file is opened (a FIFO or device under a root would block or never end), at most
    ``max_bytes`` of it.
    """
    path = check_path_text(path)
    if not roots:
        raise ApiError(f"image.path {path!r}: reading server paths is disabled; upload the file instead, or start the "
                       "server with --allow-root DIR", status=403)
    try:
        resolved = Path(os.path.realpath(path if os.path.isabs(path) else Path(roots[0]) / path))
    except (OSError, ValueError) as exc:
        raise ApiError(f"image.path {path!r} cannot be resolved ({exc}); send a plain path under an allowed root",
                       status=400) from None
    for root in roots:
        base = Path(os.path.realpath(root))
        if resolved == base or resolved.is_relative_to(base):
            data = _read_regular_file(resolved, path, max_bytes=max_bytes)
            return decode_bytes(data, name=path, max_pixels=max_pixels)
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
