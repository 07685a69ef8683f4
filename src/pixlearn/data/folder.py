"""Index a labelled image folder: one sub-folder per class, optionally under train/ val/ test/."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pixlearn._core.errors import ConfigError
from pixlearn.io import expand_sources

__all__ = ["SPLITS", "ImageEntry", "ImageFolderIndex", "scan_image_folder"]

#: Split folder names recognised at the top of a labelled folder, in this order.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Other folder names accepted for a split.
SPLIT_ALIASES: dict[str, str] = {"valid": "val", "validation": "val"}

_LAYOUT = (
    "expected one folder per class, optionally under split folders:\n"
    "  {root}/<class>/<image>.jpg                  (no splits)\n"
    "  {root}/train/<class>/<image>.jpg, {root}/val/<class>/..., {root}/test/<class>/...\n"
    "  (valid/ or validation/ may stand for val/)\n"
    "image extensions: {exts}"
)


@dataclass(frozen=True)
class ImageEntry:
    """One image: its path, its class label and its split (``None`` when the folder has no splits)."""

    path: Path
    label: str
    split: str | None


@dataclass(frozen=True)
class ImageFolderIndex:
    """What :func:`scan_image_folder` found: sorted classes and every image with its label and split."""

    root: Path
    classes: tuple[str, ...]
    entries: tuple[ImageEntry, ...]
    splits: tuple[str, ...] = ()
    #: Why images were left out because they lead outside the folder (links pointing out); no outside path is named.
    refused: tuple[str, ...] = ()

    @property
    def has_splits(self) -> bool:
        return bool(self.splits)

    def select(self, split: str | None = None) -> list[ImageEntry]:
        """Entries of one split (all entries when ``split`` is None)."""
        if split is not None and split not in self.splits:
            have = ", ".join(self.splits) or "none (the folder has no split folders)"
            raise ConfigError(f"split {split!r} is not in {self.root}; splits present: {have}")
        return [e for e in self.entries if split is None or e.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class, per split (key ``"all"`` when the folder has no splits)."""
        out: dict[str, dict[str, int]] = {}
        for split in self.splits or ("all",):
            c = Counter(e.label for e in self.entries if (e.split == split or not self.splits))
            out[split] = {cls: c.get(cls, 0) for cls in self.classes}
        return out

    def fingerprint(self) -> str:
        """sha256 over the sorted relative paths and byte sizes of every image (content is not read)."""
        h = hashlib.sha256()
        rows = sorted((e.path.relative_to(self.root).as_posix(), e.path.stat().st_size) for e in self.entries)
        for rel, size in rows:
            h.update(f"{rel}\t{size}\n".encode())
        return h.hexdigest()


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_name(name: str) -> str | None:
    return name if name in SPLITS else SPLIT_ALIASES.get(name)


def _layout_error(root: Path, problem: str) -> ConfigError:
    from pixlearn.io import IMAGE_EXTENSIONS

    exts = " ".join(sorted(IMAGE_EXTENSIONS))
    return ConfigError(f"{root}: {problem}; " + _LAYOUT.format(root=root, exts=exts))


def scan_image_folder(root: str | os.PathLike[str], *, allow_outside_root: bool | None = None) -> ImageFolderIndex:
    """Index a labelled image folder laid out as one sub-folder per class.

    Two layouts are recognised: ``root/<class>/*.jpg``, or the same under split
    folders ``root/train/``, ``root/val/``, ``root/test/`` (any of them; ``valid/`` or
    ``validation/`` are read as ``val``). Images
    are found recursively inside each class folder by extension (see
    :data:`pixlearn.io.IMAGE_EXTENSIONS`); hidden files and folders are skipped
    and nothing is decoded. Class folders without any image are left out. An image that
    leads outside ``root`` (a link pointing out, or inside a linked folder) is left out and
    described in ``refused`` (without its target), unless outside paths are allowed.

    Parameters
    ----------
    root : path
        The labelled folder.
    allow_outside_root : bool, optional
        Read images that lead outside ``root``; default False, or what an enclosing
        :func:`~pixlearn.data.readers.outside_root_allowed` says.

    Returns
    -------
    ImageFolderIndex
        ``classes`` sorted, ``entries`` sorted by split then class then path.

    Raises
    ------
    ConfigError
        When ``root`` is not a folder, mixes split and class folders, or holds no
        class folder with images (or every image leads outside it); the message shows the
        expected layout.

    Examples
    --------
    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for name in ("train/cat/1.png", "train/dog/2.png", "val/cat/3.png"):
    ...     (tmp / name).parent.mkdir(parents=True, exist_ok=True); (tmp / name).touch()
    >>> idx = scan_image_folder(tmp)
    >>> idx.classes, idx.splits, [(e.label, e.split) for e in idx.entries]
    (('cat', 'dog'), ('train', 'val'), [('cat', 'train'), ('dog', 'train'), ('cat', 'val')])
    """
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise _layout_error(root, f"the data folder {what}")
    top = _subdirs(root)
    split_dirs = [d for d in top if _split_name(d.name) is not None]
    if split_dirs:
        others = [d.name for d in top if _split_name(d.name) is None]
        if others:
            raise _layout_error(
                root,
                f"it mixes split folders ({', '.join(d.name for d in split_dirs)}) with other folders "
                f"({', '.join(others)}); move class folders into a split or remove the split folders",
            )
        by_split: dict[str, Path] = {}
        for d in split_dirs:
            split = _split_name(d.name)
            if split in by_split:
                raise _layout_error(root, f"both {by_split[split].name}/ and {d.name}/ are the '{split}' split; keep one")
            by_split[split] = d
        groups: list[tuple[str | None, Path]] = [(s, by_split[s]) for s in SPLITS if s in by_split]
    else:
        groups = [(None, root)]

    from pixlearn.data.formats._base import PathGuard

    guard = PathGuard(root, allow_outside_root=allow_outside_root)
    entries: list[ImageEntry] = []
    for split, folder in groups:
        if not guard.folder(folder):
            continue
        for class_dir in _subdirs(folder):
            if not guard.folder(class_dir):  # a class folder that links out is not listed
                continue
            for path, _ in expand_sources(class_dir):
                if any(part.startswith(".") for part in path.relative_to(class_dir).parts):
                    continue
                if guard.keep(path, path.relative_to(root).as_posix()):
                    entries.append(ImageEntry(path=path, label=class_dir.name, split=split))
    guard.check(len(entries))  # every image refused: say so, not "no images"
    if not entries:
        where = " and ".join(str(f) for _, f in groups)
        problem = "no class folders" if not any(_subdirs(f) for _, f in groups) else "no images in the class folders"
        raise _layout_error(root, f"{problem} under {where}")
    classes = tuple(sorted({e.label for e in entries}))
    splits = tuple(s for s, _ in groups if s is not None and any(e.split == s for e in entries))
    return ImageFolderIndex(root=root, classes=classes, entries=tuple(entries), splits=splits, refused=tuple(guard.refused))
