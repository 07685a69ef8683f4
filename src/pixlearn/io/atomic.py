"""Atomic file writes that honour the user's umask: ``atomic_write_bytes``, ``atomic_write_text``.

A file is written to a temporary name in its destination folder and moved into place with
``os.replace``, so readers see the old file or the new one, never half of one. The temporary
file is created with ``os.open(..., O_CREAT | O_EXCL, 0o666)``, so the kernel applies the
process umask exactly as it does for ``open(path, "w")``: with the usual umask 022 the result is
``rw-r--r--`` (0644). (``tempfile.mkstemp`` creates 0600 files, which other users and services
then cannot read -- the reason this module exists.) The umask itself is never read or changed,
so nothing here races with other threads.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "create_temp_beside"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def create_temp_beside(path: str | os.PathLike[str], *, mode: int = 0o666) -> tuple[int, Path]:
    """Create a new, empty temporary file next to ``path``; return ``(fd, temp_path)``.

    The file gets ``mode & ~umask`` (0644 under umask 022), like any file the user creates.
    The caller writes through ``fd``, then ``os.replace(temp_path, path)`` (or unlinks it).

    Examples
    --------
    >>> import os, tempfile
    >>> fd, tmp = create_temp_beside(os.path.join(tempfile.mkdtemp(), "a.txt"))
    >>> os.close(fd); tmp.name.startswith(".a.txt.") and tmp.name.endswith(".tmp")
    True
    """
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a unique temporary file for {path.name}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically, with the permissions of an ordinary new file.

    The parent folder must exist (callers decide whether to create it).

    Examples
    --------
    >>> import os, stat, tempfile
    >>> p = atomic_write_bytes(os.path.join(tempfile.mkdtemp(), "a.bin"), b"xy")
    >>> p.read_bytes()
    b'xy'
    """
    path = Path(path)
    fd, tmp = create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    ``newline`` as for :func:`open`: ``None`` translates ``\\n`` to the platform's line end,
    ``""`` or ``"\\n"`` writes it unchanged.
    """
    path = Path(path)
    fd, tmp = create_temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
