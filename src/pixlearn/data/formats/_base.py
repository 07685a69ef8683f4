"""What every dataset reader shares: the annotation error, split names, image lookup, problem notes, and the
guard that keeps every path a dataset names inside the dataset's folder."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pixlearn._core.errors import AnnotationError, ConfigError, PixlearnError
from pixlearn._core.paths import Containment
from pixlearn.data.index import SPLITS, DatasetIndex, Record

__all__ = [
    "AnnotationError",
    "SPLIT_ALIASES",
    "normalize_split",
    "split_from_name",
    "add_problem",
    "check_boxes",
    "image_size",
    "list_images",
    "is_image_name",
    "stem_key",
    "find_dir",
    "parse_xml",
    "empty_boxes",
    "split_dirs",
    "check_image_exists",
    "hinted",
    "outside_root_allowed",
    "allow_outside_root_default",
    "PathGuard",
    "OUTSIDE_HINT_PYTHON",
    "OUTSIDE_HINT_CLI",
]

log = logging.getLogger("pixlearn.data")

#: Folder/file/column names accepted for each split (lower case).
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}

#: Boxes may stick out of the image by this many pixels (rounding, VOC's 1-based edges) before
#: a problem is noted.
BOX_TOLERANCE = 1.0

#: The fix an outside-path error offers, per caller: Python (``str(exc)``) and the command line
#: (``exc.cli_message``); the service offers neither (``exc.plain_message``).
OUTSIDE_HINT_PYTHON = "or pass allow_outside_root=True to read them anyway (for local use)"
OUTSIDE_HINT_CLI = "or add --allow-outside-root to read them anyway (for local use)"

_E = TypeVar("_E", bound=PixlearnError)


def hinted(error: type[_E], message: str, *, python: str, cli: str, sep: str = "; ") -> _E:
    """An error whose fix is said in the words of the caller.

    ``str(exc)`` is ``message`` plus the Python fix (a parameter); ``exc.cli_message`` is
    ``message`` plus the command-line fix (an option), which the ``pixlearn`` command prints;
    ``exc.plain_message`` is ``message`` alone, for callers (the service) that offer neither.
    ``sep`` joins the message and the fix.

    Examples
    --------
    >>> exc = hinted(ConfigError, "x: cannot tell", python="pass format=", cli="add --from FORMAT")
    >>> str(exc), exc.cli_message, exc.plain_message
    ('x: cannot tell; pass format=', 'x: cannot tell; add --from FORMAT', 'x: cannot tell')
    """
    exc = error(f"{message}{sep}{python}" if python else message)
    exc.cli_message = f"{message}{sep}{cli}" if cli else message  # type: ignore[attr-defined]
    exc.plain_message = message  # type: ignore[attr-defined]
    return exc


_ALLOW_OUTSIDE: ContextVar[bool] = ContextVar("pixlearn_allow_outside_root", default=False)


@contextlib.contextmanager
def outside_root_allowed(allowed: bool = True) -> Iterator[None]:
    """Within the block, readers called without ``allow_outside_root`` use ``allowed``.

    The command line wraps a command in it for ``--allow-outside-root`` so that readers deep in a
    training call see the choice; an explicit ``allow_outside_root=`` argument always wins. The
    setting is a context variable: other threads and the service never see it.

    Examples
    --------
    >>> with outside_root_allowed():
    ...     allow_outside_root_default(None)
    True
    >>> allow_outside_root_default(None), allow_outside_root_default(True)
    (False, True)
    """
    token = _ALLOW_OUTSIDE.set(bool(allowed))
    try:
        yield
    finally:
        _ALLOW_OUTSIDE.reset(token)


def allow_outside_root_default(value: bool | None) -> bool:
    """``value``, or when it is None what the enclosing :func:`outside_root_allowed` says (default False)."""
    return _ALLOW_OUTSIDE.get() if value is None else bool(value)


class PathGuard:
    """Keeps a reader inside its dataset folder: every path a dataset file names must resolve inside ``root``.

    Paths are resolved with every symlink followed (:class:`~pixlearn._core.paths.Containment`), so
    an absolute path, ``..`` and a link that points out are all outside. A record with an outside
    path is refused: it is left out of the index, counted, and described by a message that names
    where it came from (``labels.csv: line 3``), never the outside path itself (reading it, or
    even saying whether it exists, would leak the machine's files). A dataset file found by
    listing the folder that itself resolves outside is an error (:meth:`file`).
    :meth:`finish` stores the counts in ``index.meta["refused"]`` and fails when every record
    was refused. With ``allow_outside_root=True`` nothing is checked.
    """

    def __init__(self, root: str | os.PathLike[str], *, allow_outside_root: bool | None = False) -> None:
        self.root = Path(root)
        self.allow = allow_outside_root_default(allow_outside_root)
        self._inside = None if self.allow else Containment(self.root)
        self.refused: list[str] = []

    def inside(self, path: str | os.PathLike[str] | None) -> bool:
        """True when ``path`` resolves inside the root (always True when outside paths are allowed)."""
        return self._inside is None or path is None or path in self._inside

    def keep(self, path: str | os.PathLike[str] | None, where: str, what: str = "the image path") -> bool:
        """True when ``path`` may be read; otherwise the refusal is noted (``where: what leads outside ...``)."""
        if self.inside(path):
            return True
        self.refused.append(f"{where}: {what} leads outside the dataset folder")
        return False

    def keep_record(self, record: Record, where: str) -> bool:
        """:meth:`keep` for the image, mask and target paths of ``record``."""
        return (
            self.keep(record.path, where)
            and self.keep(record.mask_path, where, "the mask path")
            and self.keep(record.target_path, where, "the target path")
        )

    def folder(self, path: Path) -> bool:
        """True when the folder ``path`` may be listed; otherwise the refusal is noted (``images/: the folder
        leads outside ...``) and the folder must not be listed (the names in it are not the dataset's)."""
        if self.inside(path):
            return True
        self.refused.append(f"{self.shown(path)}/: the folder leads outside the dataset folder")
        return False

    def shown(self, path: Path, what: str | None = None) -> str:
        """How to name ``path`` in a message: its part below the root up to the first link that leads out
        (a name inside the dataset, never one of the outside folder), else ``what`` or its file name."""
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return what or Path(path).name
        for i in range(1, len(parts) + 1):
            if not self.inside(self.root.joinpath(*parts[:i])):
                return "/".join(parts[:i])
        return "/".join(parts)

    def file(self, path: Path, what: str | None = None) -> Path:
        """``path`` when it resolves inside the root, else an :class:`AnnotationError` (for dataset files
        such as a CSV, a JSON, a class list: without them the dataset cannot be read)."""
        if self.inside(path):
            return path
        shown = self.shown(path, what)
        raise hinted(
            AnnotationError,
            f"{self.root}: {shown} leads outside the dataset folder (a link or a path that points out of it); "
            "keep the dataset's files inside its folder",
            python=OUTSIDE_HINT_PYTHON,
            cli=OUTSIDE_HINT_CLI,
            sep=", ",
        )

    def summary(self) -> dict[str, Any] | None:
        """``{"outside_root": n, "examples": [first messages]}``, or None when nothing was refused."""
        return {"outside_root": len(self.refused), "examples": self.refused[:5]} if self.refused else None

    def check(self, kept: int) -> None:
        """Raise a :class:`ConfigError` when paths were refused and no record is left (``kept == 0``);
        log a warning on ``pixlearn.data`` when some were refused and records are left."""
        if not self.refused:
            return
        n = len(self.refused)
        if not kept:
            raise hinted(
                ConfigError,
                f"{self.root}: nothing to read: every path it names leads outside the dataset folder "
                f"({n} refused, e.g. {self.refused[0]}); use paths relative to the dataset folder",
                python=OUTSIDE_HINT_PYTHON,
                cli=OUTSIDE_HINT_CLI,
                sep=", ",
            )
        log.warning(  # the folder's name only: a service's log must not show its storage paths
            "%s: %d path(s) refused because they lead outside the dataset folder (e.g. %s); %d record(s) read. "
            "To read them, allow outside paths (--allow-outside-root, or allow_outside_root=True in Python)",
            self.root.name or self.root, n, self.refused[0], kept,
        )

    def finish(self, index: DatasetIndex) -> DatasetIndex:
        """Store :meth:`summary` in ``index.meta["refused"]`` and :meth:`check` what is left; returns ``index``."""
        if self.refused:
            index.meta["refused"] = self.summary()
        self.check(len(index.records))
        return index


def normalize_split(name: str | None) -> str | None:
    """``"valid"``/``"validation"`` -> ``"val"`` etc.; ``None`` for names that are not a split."""
    if name is None:
        return None
    return SPLIT_ALIASES.get(name.strip().lower())


def split_from_name(name: str) -> str | None:
    """The split a file or folder name states: ``instances_train2017.json`` -> ``"train"``.

    Examples
    --------
    >>> split_from_name("instances_val2017.json"), split_from_name("annotations.json")
    ('val', None)
    """
    stem = name.split(".")[0]
    for token in re.split(r"[_\-\s.]+", stem.lower()):
        split = SPLIT_ALIASES.get(token.rstrip("0123456789"))
        if split:
            return split
    return None


def add_problem(record: Record, code: str, message: str, *, severity: str = "error") -> None:
    """Note a problem that ``data check`` should report, without failing the read.

    Problems are dicts ``{"code", "severity", "message"}`` appended to ``record.meta["problems"]``;
    codes: ``missing_image``, ``box_outside``, ``box_degenerate``, ``bad_polygon``, ``missing_mask``,
    ``missing_target``, ``labels_dropped``.
    """
    record.meta.setdefault("problems", []).append({"code": code, "severity": severity, "message": message})


def empty_boxes() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def check_boxes(record: Record, where: str, ids: Iterable[Any] | None = None) -> None:
    """Note degenerate boxes and boxes outside ``record.size`` in ``record.meta["problems"]``."""
    if record.boxes is None or not len(record.boxes):
        return
    ids = list(ids) if ids is not None else list(range(len(record.boxes)))
    h, w = record.size if record.size is not None else (None, None)
    for (x1, y1, x2, y2), ident in zip(record.boxes.tolist(), ids):
        box = f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
        if not (x2 > x1 and y2 > y1):
            add_problem(record, "box_degenerate", f"{where}: {ident}: degenerate box {box} (xyxy) has no area")
        elif h is not None and (
            x1 < -BOX_TOLERANCE or y1 < -BOX_TOLERANCE or x2 > w + BOX_TOLERANCE or y2 > h + BOX_TOLERANCE
        ):
            add_problem(record, "box_outside", f"{where}: {ident}: box {box} (xyxy) lies outside the {w}x{h} image")


def check_image_exists(record: Record, where: str) -> bool:
    """Note ``missing_image`` when ``record.path`` is not a file; True when it is."""
    if record.path.is_file():
        return True
    add_problem(record, "missing_image", f"{where}: image file {record.path} does not exist")
    return False


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image as decoded (EXIF rotation applied), read from its header."""
    from pixlearn.io import image_info

    info = image_info(path)
    if info.orientation in (5, 6, 7, 8):
        return info.width, info.height
    return info.height, info.width


def is_image_name(path: Path | str) -> bool:
    from pixlearn.io import IMAGE_EXTENSIONS

    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` by extension, sorted, hidden files and folders skipped."""
    out = []
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_name(name):
                out.append(Path(dirpath) / name)
    return sorted(out)


def stem_key(path: Path, base: Path) -> str:
    """Path relative to ``base`` without its extension, for matching image and label files."""
    return path.relative_to(base).with_suffix("").as_posix()


def find_dir(parent: Path, names: Iterable[str]) -> Path | None:
    """The first sub-folder of ``parent`` whose name matches one of ``names`` (case-insensitive)."""
    if not parent.is_dir():
        return None
    children = {p.name.lower(): p for p in parent.iterdir() if p.is_dir()}
    for name in names:
        if name.lower() in children:
            return children[name.lower()]
    return None


def split_dirs(root: Path) -> dict[str, Path]:
    """Split folders directly under ``root`` (``valid``/``validation`` count as ``val``).

    Raises :class:`ConfigError` when two folders name the same split.
    """
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for child in sorted(root.iterdir()):
        split = normalize_split(child.name) if child.is_dir() else None
        if split is None:
            continue
        if split in out:
            raise ConfigError(f"{root}: both {out[split].name}/ and {child.name}/ are the '{split}' split; keep one")
        out[split] = child
    return {s: out[s] for s in SPLITS if s in out}


def parse_xml(path: Path):
    """Parse an XML annotation safely: documents with a DTD or entities are refused.

    Uses ``defusedxml`` when it is installed; otherwise the raw text is checked for
    ``<!DOCTYPE``/``<!ENTITY`` before the standard library parses it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lowered = data[:1_000_000].lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise AnnotationError(
            f"{path}: XML with a DOCTYPE or ENTITY declaration is refused (entity expansion is unsafe); "
            "remove the declaration"
        )
    try:
        import defusedxml.ElementTree as ET  # type: ignore[import-not-found]
    except ImportError:
        import xml.etree.ElementTree as ET
    try:
        return ET.fromstring(data)
    except PixlearnError:
        raise
    except Exception as exc:  # ParseError, defusedxml's DTD/entity errors
        raise AnnotationError(f"{path}: not well-formed XML ({exc})") from None
