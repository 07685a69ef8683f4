"""Check an uploaded zip of labelled images, then extract it safely into a job folder.

A training upload is hostile until proven otherwise. :func:`check_archive` reads only the zip's
headers and lists *every* reason to refuse it: not a zip, member paths that climb out (``..``),
absolute paths or drive letters, symbolic links, device files and other non-regular members,
encrypted members, too many members, a declared size over the cap, a compression ratio over the
cap (a zip bomb), and -- for a folder-per-class layout -- no images, fewer than two classes or
too few images in a class. :func:`extract_archive` runs the same checks, then streams each member
itself (never ``ZipFile.extract``), counting the bytes that really come out: a member that
inflates past its declared size, past the size cap or past the ratio cap stops the extraction,
whatever its header said. Files are created exclusively under a fresh folder, so nothing is ever
written outside it, and a refused archive leaves nothing behind.

What the extracted folder holds is then read by pixlearn's dataset readers
(:func:`pixlearn.tasks.classify.data.read_classify_dataset`): a folder per class, optionally under
``train/ val/ test/``, or any labelled format the readers take (a CSV ``path,label``). A single
top-level folder that wraps everything is unwrapped; ``__MACOSX/`` and dotfiles are skipped.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from pixlearn._core.errors import PixlearnError

__all__ = ["ArchiveError", "ArchiveLimits", "ArchivePlan", "ExtractedDataset", "check_archive", "extract_archive"]

#: Folder names that mark a split at the top of a folder-per-class dataset (as pixlearn.data.folder reads them).
_SPLIT_NAMES = frozenset({"train", "val", "test", "valid", "validation"})
#: Extensions of the images pixlearn reads (pixlearn.io.IMAGE_EXTENSIONS).
_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
#: Files at the dataset root that make its layout something other than a plain folder per class (CSV, COCO, YOLO).
_ANNOTATION_SUFFIXES = frozenset({".csv", ".json", ".yaml", ".yml"})
#: Annotation files of the detection formats (COCO .json, VOC .xml, YOLO .txt and .yaml).
_DETECT_SUFFIXES = frozenset({".json", ".xml", ".txt", ".yaml", ".yml"})
#: What a training archive may hold: a classification dataset, a detection dataset, or either (told by its content).
ARCHIVE_TASKS = ("auto", "classify", "detect")
#: Members smaller than this are not judged by their own compression ratio (a few KiB of text can
#: legitimately shrink 500x; a bomb needs volume). The archive's overall ratio is always judged.
_RATIO_MIN_BYTES = 1 << 20
_CHUNK = 1 << 16
_EXAMPLES = 5
_DRIVE = re.compile(r"^[A-Za-z]:")
#: Longest file or folder name in a member path (bytes, Linux's NAME_MAX), and longest member path (bytes): the
#: job folder's own path comes in front of it, and the whole must stay under PATH_MAX (4096).
_NAME_MAX = 255
_MEMBER_PATH_MAX = 1024
#: Errors zipfile raises for a member whose headers are corrupt or forged.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError)
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


class ArchiveError(PixlearnError, ValueError):
    """An uploaded archive was refused; ``reasons`` lists every problem found, one readable sentence each.

    Examples
    --------
    >>> err = ArchiveError("data.zip", ["it is not a zip file", "it holds no images"])
    >>> err.reasons
    ['it is not a zip file', 'it holds no images']
    >>> str(err)
    'data.zip: archive refused: it is not a zip file; it holds no images'
    """

    def __init__(self, archive: str, reasons: Iterable[str]) -> None:
        self.archive = str(archive)
        self.reasons = list(reasons)
        super().__init__(f"{self.archive}: archive refused: " + "; ".join(self.reasons))


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied to an uploaded archive.

    Parameters
    ----------
    max_bytes : int
        Largest total decompressed size.
    max_ratio : float
        Largest decompressed / compressed ratio (of the archive, and of any member over 1 MiB).
    max_members : int
        Most entries (files and folders) in the archive.
    min_images_per_class : int
        Fewest images a class may have.

    Examples
    --------
    >>> ArchiveLimits.from_settings(None).max_ratio
    200.0
    """

    max_bytes: int = 512 * 2**20
    max_ratio: float = 200.0
    max_members: int = 20_000
    min_images_per_class: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> ArchiveLimits:
        """Limits from a :class:`~pixlearn.serve.settings.ServeSettings` (defaults for missing fields)."""
        d = cls()
        return cls(
            max_bytes=int(float(getattr(settings, "max_archive_mb", d.max_bytes / 2**20)) * 2**20),
            max_ratio=float(getattr(settings, "max_archive_ratio", d.max_ratio)),
            max_members=int(getattr(settings, "max_archive_members", d.max_members)),
            min_images_per_class=int(getattr(settings, "min_images_per_class", d.min_images_per_class)),
        )


@dataclass
class ArchivePlan:
    """What the headers say: the members to extract, the folder that wraps them, the classes seen.

    ``prefix`` is the wrapping folder (``()`` when none); ``per_class`` counts images per class
    for a folder-per-class layout (empty when the archive holds annotation files instead, whose
    layout only the dataset readers can judge after extraction).
    """

    members: list[tuple[zipfile.ZipInfo, PurePosixPath]]
    prefix: tuple[str, ...] = ()
    per_class: dict[str, int] = field(default_factory=dict)
    images: int = 0
    declared_bytes: int = 0
    skipped: int = 0
    folder_layout: bool = True


@dataclass
class ExtractedDataset:
    """An extracted, readable training set.

    Attributes
    ----------
    root : Path
        The dataset folder to train on (inside the destination; the wrapping folder unwrapped).
    format : str
        The dataset format the readers detected (``imagefolder``, ``csv``, ...).
    classes : list of str
    per_class : dict
        Images per class, all splits together.
    images : int
    bytes : int
        Bytes written.
    """

    root: Path
    format: str
    classes: list[str]
    per_class: dict[str, int]
    images: int
    bytes: int
    task: str = "classify"

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "task": self.task, "classes": list(self.classes),
                "per_class": dict(self.per_class), "images": self.images, "bytes": self.bytes}


# ---------------------------------------------------------------- helpers
def _some(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_EXAMPLES])
    return shown + (f" and {len(names) - _EXAMPLES} more" if len(names) > _EXAMPLES else "")


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def _is_ignored(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _open_zip(source: str | os.PathLike[str] | IO[bytes], label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(label, [f"it is not a zip file, or the zip is corrupt ({exc}); upload a .zip archive"]) from None
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(label, [f"it could not be read as a zip ({exc}); upload a .zip archive"]) from None


def _label(source: Any, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return "archive"


def _unwrap(files: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The single top-level folder(s) that wrap everything, when they are not a split or a class folder."""
    prefix: tuple[str, ...] = ()
    while files:
        n = len(prefix)
        if any(len(p) <= n + 1 for p in files):  # a file at this level: this is the dataset's root
            break
        tops = {p[n] for p in files}
        if len(tops) != 1:
            break
        top = next(iter(tops))
        if top in _SPLIT_NAMES:
            break
        if any(len(p) == n + 2 and PurePosixPath(p[-1]).suffix.lower() in _IMAGE_SUFFIXES for p in files):
            break  # images right inside it: a class folder, not a wrapper
        prefix += (top,)
    return prefix


def _classes_from_names(files: list[tuple[str, ...]]) -> dict[str, int]:
    """Images per class of a folder-per-class layout (relative paths below the dataset root)."""
    images = [p for p in files if PurePosixPath(p[-1]).suffix.lower() in _IMAGE_SUFFIXES]
    tops = {p[0] for p in images if len(p) > 1}
    split = bool(tops) and tops <= _SPLIT_NAMES
    counts: Counter[str] = Counter()
    for p in images:
        if split and len(p) >= 3:
            counts[p[1]] += 1
        elif not split and len(p) >= 2:
            counts[p[0]] += 1
    return dict(sorted(counts.items()))


def _content_reasons(per_class: dict[str, int], images: int, min_per_class: int) -> list[str]:
    reasons = []
    if images == 0:
        reasons.append(
            "it holds no images (extensions " + " ".join(sorted(_IMAGE_SUFFIXES)) + "); put one folder of images per class in the zip"
        )
        return reasons
    if len(per_class) < 2:
        found = f"only one class ({_some(list(per_class))})" if per_class else "no class folders (images must sit in one folder per class)"
        reasons.append(f"it has {found}; a classifier needs at least 2 classes: add one folder of images per class")
    few = [f"{c} ({n})" for c, n in per_class.items() if n < min_per_class]
    if few:
        reasons.append(
            f"too few images in class(es) {', '.join(few[:_EXAMPLES])}{' and more' if len(few) > _EXAMPLES else ''}; "
            f"each class needs at least {min_per_class} images"
        )
    return reasons


# ---------------------------------------------------------------- checks on the headers
def _plan(zf: zipfile.ZipFile, limits: ArchiveLimits, *, task: str = "classify") -> tuple[ArchivePlan, list[str]]:
    infos = zf.infolist()
    bad: dict[str, list[str]] = {k: [] for k in ("nul", "absolute", "drive", "traversal", "long", "link", "device",
                                                 "special", "encrypted", "method", "duplicate", "header")}
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    seen: set[str] = set()
    declared = compressed = 0
    ratio_members: list[str] = []
    skipped = 0
    for info in infos:
        raw = info.orig_filename
        shown = raw.replace("\x00", "\\x00")
        if "\x00" in raw:
            bad["nul"].append(shown)
            continue
        name = raw.replace("\\", "/")
        if name.startswith("/"):
            bad["absolute"].append(shown)
            continue
        if _DRIVE.match(name):
            bad["drive"].append(shown)
            continue
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            bad["traversal"].append(shown)
            continue
        encoded = [p.encode("utf-8", "surrogateescape") for p in parts]
        if any(len(p) > _NAME_MAX for p in encoded) or sum(len(p) + 1 for p in encoded) > _MEMBER_PATH_MAX:
            bad["long"].append(shown if len(shown) <= 60 else f"{shown[:57]}...")
            continue
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            if stat.S_ISLNK(mode):
                bad["link"].append(shown)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                bad["device"].append(shown)
            else:
                bad["special"].append(shown)
            continue
        if info.flag_bits & 0x1:
            bad["encrypted"].append(shown)
            continue
        if info.compress_type not in _METHODS:
            bad["method"].append(f"{shown} (method {info.compress_type})")
            continue
        is_dir = info.is_dir() or stat.S_ISDIR(mode)
        if not parts:
            continue
        key = "/".join(parts)
        if not is_dir:
            if key in seen:
                bad["duplicate"].append(shown)
                continue
            seen.add(key)
            try:  # reads the member's local header: its name must be the central directory's
                zf.open(info).close()
            except _ZIP_ERRORS:
                bad["header"].append(shown)
                continue
            declared += info.file_size
            compressed += info.compress_size
            if info.file_size >= _RATIO_MIN_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                ratio_members.append(f"{shown} ({info.file_size / max(info.compress_size, 1):.0f}:1)")
        if _is_ignored(parts):
            skipped += 1
            continue
        if not is_dir:
            members.append((info, PurePosixPath(*parts)))

    reasons: list[str] = []
    texts = {
        "nul": "member names with a NUL character",
        "absolute": "members with an absolute path",
        "drive": "members with a drive letter",
        "traversal": "members whose path climbs out of the archive with '..' (path traversal)",
        "long": f"members whose path is too long (a name over {_NAME_MAX} bytes, or a path over {_MEMBER_PATH_MAX} "
                "bytes); use shorter file and folder names",
        "link": "symbolic-link members (links are never extracted)",
        "device": "device-file members",
        "special": "members that are not regular files (FIFO, socket, hard link or unknown type)",
        "encrypted": "encrypted members",
        "method": "members with an unsupported compression method",
        "duplicate": "members that appear more than once",
        "header": "members whose local header does not match the zip's central directory (a forged or corrupt zip: "
                  "another name, or an unreadable header); zip the images again",
    }
    for k, names in bad.items():
        if names:
            reasons.append(f"{texts[k]}: {_some(names)}")
    if len(infos) > limits.max_members:
        reasons.append(f"it has {len(infos)} members, more than the limit of {limits.max_members}; split the data or raise max_archive_members")
    if declared > limits.max_bytes:
        reasons.append(
            f"it decompresses to {_mb(declared)}, over the {_mb(limits.max_bytes)} cap; send fewer or smaller images "
            "(or raise max_archive_mb)"
        )
    if ratio_members:
        reasons.append(
            f"members compressed more than {limits.max_ratio:g}:1 (a zip bomb?): {_some(ratio_members)}; "
            "send already-compressed images (PNG/JPEG) or raise max_archive_ratio"
        )
    elif declared >= _RATIO_MIN_BYTES and declared > limits.max_ratio * max(compressed, 1):
        reasons.append(
            f"the archive expands {declared / max(compressed, 1):.0f}:1, over the {limits.max_ratio:g}:1 cap (a zip bomb?); "
            "send already-compressed images (PNG/JPEG) or raise max_archive_ratio"
        )

    files = [tuple(p.parts) for _, p in members]
    prefix = _unwrap(files)
    below = [p[len(prefix):] for p in files]
    folder_layout = not any(len(p) == 1 and PurePosixPath(p[0]).suffix.lower() in _ANNOTATION_SUFFIXES for p in below)
    per_class = _classes_from_names(below) if folder_layout else {}
    images = sum(1 for p in below if PurePosixPath(p[-1]).suffix.lower() in _IMAGE_SUFFIXES)
    # A detection dataset (COCO / YOLO / VOC) is judged by the readers after extraction; "auto" takes a zip holding
    # annotation files (.json .xml .txt .yaml) for one.
    annotated = any(PurePosixPath(p[-1]).suffix.lower() in _DETECT_SUFFIXES for p in below)
    if task == "classify" or (task == "auto" and not annotated):
        if folder_layout or images == 0:
            reasons.extend(_content_reasons(per_class, images, limits.min_images_per_class))
    elif images == 0:
        reasons.append("it holds no images (extensions " + " ".join(sorted(_IMAGE_SUFFIXES)) + ")")
    plan = ArchivePlan(members=members, prefix=prefix, per_class=per_class, images=images, declared_bytes=declared,
                       skipped=skipped, folder_layout=folder_layout)
    return plan, reasons


def check_archive(
    source: str | os.PathLike[str] | IO[bytes], *, limits: ArchiveLimits | None = None, name: str | None = None,
    task: str = "classify",
) -> ArchivePlan:
    """Check a zip from its headers alone and list every reason to refuse it.

    Parameters
    ----------
    source : path or binary file object
        The zip (a seekable file object, e.g. an upload's spooled file, is read in place).
    limits : ArchiveLimits, optional
        Caps; defaults to :class:`ArchiveLimits`'s.
    name : str, optional
        How to name the archive in messages (default: the file's name).
    task : str, default "classify"
        ``classify``: also a folder per class (two classes or more, enough images in each); ``detect``: only that it
        holds images (the safety checks and caps apply to every task; the faces calibration uses this one).

    Returns
    -------
    ArchivePlan
        The members to extract and the wrapping folder to unwrap.

    Raises
    ------
    ArchiveError
        With ``reasons``: one sentence per problem found, all of them.

    Examples
    --------
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("../escape.png", b"x")
    ...     zf.writestr("cats/1.png", b"x")
    >>> try:
    ...     check_archive(buf, name="upload.zip")
    ... except ArchiveError as err:
    ...     print(*err.reasons, sep="\\n")
    members whose path climbs out of the archive with '..' (path traversal): '../escape.png'
    it has only one class ('cats'); a classifier needs at least 2 classes: add one folder of images per class
    too few images in class(es) cats (1); each class needs at least 2 images
    """
    limits = limits or ArchiveLimits()
    label = _label(source, name)
    with _open_zip(source, label) as zf:
        plan, reasons = _plan(zf, limits, task=task)
    if reasons:
        raise ArchiveError(label, reasons)
    return plan


# ---------------------------------------------------------------- extraction
class _Refused(Exception):
    def __init__(self, *reasons: str) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, limits: ArchiveLimits, total: int) -> int:
    """Stream one member into ``target`` (created exclusively); returns the bytes written. Raises _Refused."""
    written = 0
    shown = info.orig_filename
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        try:  # opening reads the local header (checked against the central directory by _plan already)
            src = zf.open(info)
        except _ZIP_ERRORS as exc:
            raise _Refused(f"member {shown!r} is corrupt or its header is forged ({exc}); zip the images again") from None
        with src:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except _ZIP_ERRORS as exc:
                    raise _Refused(f"member {shown!r} is corrupt or its header is forged ({exc}); zip the images again") from None
                if not chunk:
                    break
                written += len(chunk)
                if written > info.file_size:
                    raise _Refused(f"member {shown!r} inflates past its declared size of {info.file_size} bytes (a forged header)")
                if total + written > limits.max_bytes:
                    raise _Refused(
                        f"it decompresses to more than the {_mb(limits.max_bytes)} cap (while extracting {shown!r}); "
                        "send fewer or smaller images (or raise max_archive_mb)"
                    )
                if written >= _RATIO_MIN_BYTES and written > limits.max_ratio * max(info.compress_size, 1):
                    raise _Refused(
                        f"member {shown!r} expands more than {limits.max_ratio:g}:1 while extracting (a zip bomb?); "
                        "send already-compressed images (PNG/JPEG) or raise max_archive_ratio"
                    )
                out.write(chunk)
    return written


def _inside(base: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return False
    return True


def extract_archive(
    source: str | os.PathLike[str] | IO[bytes],
    dest: str | os.PathLike[str],
    *,
    limits: ArchiveLimits | None = None,
    name: str | None = None,
    task: str = "classify",
) -> ExtractedDataset:
    """Check a zip, extract it into the new folder ``dest`` and check that it is a readable classification dataset
    (``task="classify"``), detection dataset (``"detect"``: COCO, YOLO or Pascal VOC boxes, with or without
    polygons), or either (``"auto"``: the readers tell which; ``ExtractedDataset.task`` says).

    Parameters
    ----------
    source : path or binary file object
        The zip.
    dest : path
        A folder that must not exist yet (its parent must); everything is written below it.
    limits : ArchiveLimits, optional
    name : str, optional
        How to name the archive in messages.

    Returns
    -------
    ExtractedDataset
        ``root`` is the folder to train on.

    Raises
    ------
    ArchiveError
        With every reason found; ``dest`` is then removed (nothing is left behind).
    FileExistsError
        ``dest`` already exists.

    Examples
    --------
    >>> import io, tempfile, zipfile, numpy as np
    >>> from pixlearn.io import encode_image
    >>> png = encode_image(np.zeros((8, 8, 3), np.uint8), ".png")
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     for i in range(4):
    ...         zf.writestr(f"shapes/{'ab'[i % 2]}/{i}.png", png)
    >>> ds = extract_archive(buf, Path(tempfile.mkdtemp()) / "data")
    >>> ds.root.name, ds.format, ds.per_class
    ('shapes', 'imagefolder', {'a': 2, 'b': 2})
    """
    limits = limits or ArchiveLimits()
    label = _label(source, name)
    dest = Path(dest)
    if task not in ARCHIVE_TASKS:
        raise ValueError(f"task must be one of {', '.join(ARCHIVE_TASKS)}, got {task!r}")
    if dest.exists():
        raise FileExistsError(f"{dest}: already exists; extract_archive writes into a new folder")
    with _open_zip(source, label) as zf:
        plan, reasons = _plan(zf, limits, task=task)
        if reasons:
            raise ArchiveError(label, reasons)
        dest.mkdir()
        base = dest.resolve()
        total = 0
        try:
            for info, rel in plan.members:
                target = base.joinpath(*rel.parts)
                if not _inside(base, target.parent):
                    raise _Refused(f"member {info.orig_filename!r} would be written outside the job folder")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if not _inside(base, target.parent):  # a link in the way (cannot happen in a fresh folder)
                        raise _Refused(f"member {info.orig_filename!r} would be written outside the job folder")
                    total += _copy_member(zf, info, target, limits=limits, total=total)
                except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
                    raise _Refused(f"member {info.orig_filename!r} clashes with another member ({exc.strerror})") from None
                except OSError as exc:  # a path too long for this server (ENAMETOOLONG), a full disk
                    hint = "use shorter file and folder names" if exc.errno == errno.ENAMETOOLONG else "retry later"
                    raise _Refused(f"member {info.orig_filename!r} cannot be written on the server ({exc.strerror}); "
                                   f"{hint}") from None
            root = base.joinpath(*plan.prefix) if plan.prefix else base
            if task != "classify":
                found = _read_detection(root, label, total, required=task == "detect")
                if found is not None:
                    return found
            return _read_extracted(root, plan, limits, label, total)
        except _Refused as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise ArchiveError(label, exc.reasons) from None
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise


def _read_detection(root: Path, label: str, total: int, *, required: bool) -> ExtractedDataset | None:
    """The extracted folder as a detection dataset; None when it is another kind and not ``required``."""
    from pixlearn._core.types import Task
    from pixlearn.data.readers import outside_root_allowed, read_dataset

    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():  # one folder wraps the dataset (images beside a COCO JSON in it)
        root = entries[0]
    try:
        with outside_root_allowed(False):  # an upload never reads outside itself
            index = read_dataset(root)
    except PixlearnError as exc:
        if not required:
            return None
        msg = (getattr(exc, "plain_message", None) or str(exc)).replace(str(root), "the archive")
        raise _Refused(f"pixlearn cannot read it as a detection dataset (COCO, YOLO or Pascal VOC): {msg}") from None
    if Task(index.task) not in (Task.DETECT, Task.INSTANCE):
        if not required:
            return None
        raise _Refused(f"it holds a {index.format} dataset of task {Task(index.task).value}, not detection boxes; send "
                       "a COCO (annotations JSON), YOLO (images/ + labels/ + data.yaml) or Pascal VOC (images + XML) zip")
    refused = (index.meta.get("refused") or {}).get("outside_root")
    if refused:
        example = index.meta["refused"]["examples"][0]
        raise _Refused(f"{refused} path(s) in the dataset lead outside the archive's dataset folder (e.g. {example}); "
                       "use paths relative to the folder, inside the archive")
    counts: Counter[int] = Counter()
    for r in index.records:
        if r.boxes is not None and len(r.boxes):
            labels = r.box_labels if r.box_labels is not None else np.zeros(len(r.boxes), np.int64)
            counts.update(int(v) for v in np.asarray(labels).reshape(-1))
    if not sum(counts.values()):
        raise _Refused(f"no image has a box ({len(index)} images read); a detector needs annotated objects: check that "
                       "the annotation files sit where the reader looks (VOC *.xml, YOLO labels/*.txt, COCO json)")
    per_class = {name: int(counts.get(i, 0)) for i, name in enumerate(index.classes)}
    return ExtractedDataset(root=root, format=index.format, classes=list(index.classes), per_class=per_class,
                            images=len(index), bytes=total, task="detect")


def _read_extracted(root: Path, plan: ArchivePlan, limits: ArchiveLimits, label: str, total: int) -> ExtractedDataset:
    """The dataset readers' verdict on the extracted folder; raises _Refused (the caller cleans up)."""
    from pixlearn.data.readers import outside_root_allowed
    from pixlearn.tasks.registry import task as get_task

    read_classify_dataset = get_task("classify").load("read_dataset")

    try:
        with outside_root_allowed(False):  # an upload never reads outside itself
            index = read_classify_dataset(root)
    except PixlearnError as exc:  # plain_message: without a fix that names a Python parameter or a CLI option
        msg = (getattr(exc, "plain_message", None) or str(exc)).replace(str(root), "the archive")
        raise _Refused(f"pixlearn cannot read it as a classification dataset: {msg}") from None
    refused = (index.meta.get("refused") or {}).get("outside_root")
    if refused:  # never train on the rest of a dataset that tried to reach out
        example = index.meta["refused"]["examples"][0]
        raise _Refused(
            f"{refused} path(s) in the dataset lead outside the archive's dataset folder (e.g. {example}); "
            "use paths relative to the folder, inside the archive"
        )
    counts = Counter(r.label for r in index.records if r.label is not None)
    per_class = {name: int(counts.get(i, 0)) for i, name in enumerate(index.classes)}
    reasons = _content_reasons(per_class, sum(per_class.values()), limits.min_images_per_class)
    if reasons:
        raise _Refused(*reasons)
    return ExtractedDataset(root=root, format=index.format, classes=list(index.classes), per_class=per_class,
                            images=sum(per_class.values()), bytes=total)
