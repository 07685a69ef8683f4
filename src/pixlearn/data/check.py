"""Check a dataset before training: counts, sizes, unreadable files, duplicates, leaks and label problems.

:func:`check_dataset` reads every image of a :class:`~pixlearn.data.index.DatasetIndex` once (a
full decode by the safe reader, which checks the header first), hashes it (sha256 of the bytes
and a 64-bit perceptual hash), and reports :class:`Finding` s with a severity, a code, the files
concerned and a message:

========================  ========  ==========================================================
code                      severity  meaning
========================  ========  ==========================================================
``unreadable``            error     the image (or its mask / target) cannot be decoded; the
                                    reason is the typed error of :func:`pixlearn.io.read_image`
``split_leak``            error     the same or a near-identical image is in two splits
``bad_label``             error     a label / box label is not a valid class index
``empty_class``           error     a class has no image at all
``box_outside``           error     a box reaches beyond the image by more than 1 px
``box_degenerate``        error     a box has zero or negative width or height (or NaN)
``mask_size``             error     a segmentation mask's size differs from its image
``outside_root``          error     records the reader refused because their paths lead outside
                                    the dataset folder (``index.meta["refused"]``; counted, no path)
``duplicate``             warning   files with identical bytes inside one split
``near_duplicate``        warning   near-identical images (perceptual hash) inside one split
``label_conflict``        warning   identical files carry different labels
``tiny_class``            warning   a class has fewer than ``min_per_class`` images
``imbalance``             warning   largest / smallest class count exceeds ``imbalance_ratio``
``class_missing``         warning   a class is present in some splits but not in another
``size_mismatch``         warning   the annotations state another image size than the file has
``mask_values``           warning   a mask holds values that are not class ids
``unsplit``               info      the dataset has no train/val/test splits yet
(reader codes)            (given)   problems the dataset reader left in ``record.meta["problems"]``
                                    (``missing_image``, ``bad_polygon``, ...; ``reader`` for
                                    plain strings); box problems are recomputed, not repeated
========================  ========  ==========================================================

Near-duplicate search uses multi-index hashing (the pigeonhole principle): two 64-bit hashes
within Hamming distance ``d`` agree exactly on at least one of ``d + 1`` disjoint bit chunks,
so candidates are found by sorting on each chunk and comparing neighbours inside equal-chunk
runs. The cost is ``O((d + 1) * (n log n + C))`` where ``C`` is the number of hash pairs that
share a chunk -- about ``n**2 / 2**(64 / (d + 1))`` for unrelated images, i.e. close to
``O(n log n)`` for the default ``d = 4`` (50,000 images: well under a second), never all pairs.
Near-duplicate groups are connected components of the "within ``d``" relation, so a chain of
small edits can join images further apart than ``d``.
"""

from __future__ import annotations

import enum
import hashlib
import io
import multiprocessing
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn._core.types import Task
from pixlearn.data.index import SPLITS, DatasetIndex, Record
from pixlearn.data.masks import MaskCoding

__all__ = [
    "Severity",
    "Finding",
    "CheckReport",
    "FileScan",
    "check_dataset",
    "scan_files",
    "near_duplicate_pairs",
    "hash_clusters",
    "BOX_TOLERANCE",
]

#: How far (pixels) a box may reach beyond the image before it counts as ``box_outside``.
BOX_TOLERANCE = 1.0
#: Bits of the perceptual hash (imagehash.phash with hash_size=8).
HASH_BITS = 64
#: Key used for records that carry no split.
UNSPLIT = "unsplit"


class Severity(str, enum.Enum):
    """How bad a finding is: errors break training or evaluation, warnings deserve a look."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
#: Findings about a group of files (shown as "message: files"; others as "file: message").
_GROUP_CODES = {"duplicate", "near_duplicate", "split_leak", "label_conflict"}


@dataclass(frozen=True)
class Finding:
    """One problem: ``files`` are relative to the dataset root; ``details`` is machine-readable extra."""

    severity: Severity
    code: str
    message: str
    files: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "files": list(self.files),
            "details": self.details,
        }


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes
    ----------
    root, format, task
        Where the dataset lives and how it was read.
    num_images : int
        Records checked.
    classes : list of str
    splits : list of str
        Split names in order (``"unsplit"`` for records without a split).
    images_per_split : dict of split -> int
    counts : dict of split -> dict of class -> int
        Images per class and split (detection: images holding at least one box of the class;
        segmentation: images whose mask contains the class id).
    instances : dict of split -> dict of class -> int
        Boxes per class and split (detection only, else empty).
    sizes : dict
        Width / height / aspect-ratio statistics of the readable images.
    findings : list of Finding
        Sorted by severity, then code.
    settings : dict
        The thresholds used.
    seconds : float
    """

    root: str
    format: str
    task: str
    num_images: int
    classes: list[str]
    splits: list[str]
    images_per_split: dict[str, int]
    counts: dict[str, dict[str, int]]
    instances: dict[str, dict[str, int]]
    sizes: dict[str, Any]
    findings: list[Finding]
    settings: dict[str, Any]
    seconds: float = 0.0

    # ------------------------------------------------------------ queries
    def by_severity(self, severity: Severity | str) -> list[Finding]:
        severity = Severity(severity)
        return [f for f in self.findings if f.severity is severity]

    def by_code(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.code == code]

    @property
    def errors(self) -> list[Finding]:
        return self.by_severity(Severity.ERROR)

    @property
    def warnings(self) -> list[Finding]:
        return self.by_severity(Severity.WARNING)

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    def totals(self) -> dict[str, int]:
        c = Counter(f.severity.value for f in self.findings)
        return {s.value: c.get(s.value, 0) for s in Severity}

    # ------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able types."""
        return {
            "root": self.root,
            "format": self.format,
            "task": self.task,
            "num_images": self.num_images,
            "classes": list(self.classes),
            "splits": list(self.splits),
            "images_per_split": self.images_per_split,
            "counts": self.counts,
            "instances": self.instances,
            "sizes": self.sizes,
            "totals": self.totals(),
            "findings": [f.to_dict() for f in self.findings],
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
        }

    def summary(self, *, max_items: int = 10, max_files: int = 4) -> str:
        """A human summary: totals, a class x split table, sizes, then findings by severity.

        ``max_items`` findings are shown per code and ``max_files`` files per finding; the
        rest are counted (``to_dict()`` has them all).
        """
        lines: list[str] = []
        t = self.totals()
        split_part = ", ".join(f"{s} {self.images_per_split.get(s, 0)}" for s in self.splits)
        lines.append(f"dataset {self.root} ({self.format}, {self.task})")
        lines.append(
            f"{self.num_images} images, {len(self.classes)} classes"
            + (f", splits: {split_part}" if self.splits else "")
            + f"; {t['error']} errors, {t['warning']} warnings, {t['info']} info"
        )
        table = self._table()
        if table:
            lines.append("")
            lines.extend(table)
        if self.sizes.get("count"):
            s = self.sizes
            common = ", ".join(f"{k} ({v})" for k, v in s["common"][:3])
            lines.append("")
            lines.append(
                f"sizes: width {s['width']['min']}..{s['width']['max']} (median {s['width']['median']:g}), "
                f"height {s['height']['min']}..{s['height']['max']} (median {s['height']['median']:g}), "
                f"aspect w/h {s['aspect']['min']:.2f}..{s['aspect']['max']:.2f}; "
                f"{s['distinct']} distinct size{'s' if s['distinct'] != 1 else ''}: {common}"
            )
        for sev in Severity:
            found = self.by_severity(sev)
            if not found:
                continue
            lines.append("")
            lines.append(
                f"{sev.value.upper()}S ({len(found)})" if sev is not Severity.INFO else f"INFO ({len(found)})"
            )
            by_code: dict[str, list[Finding]] = defaultdict(list)
            for f in found:
                by_code[f.code].append(f)
            for code, items in by_code.items():
                lines.append(f"  {code} ({len(items)})")
                for f in items[:max_items]:
                    shown = ", ".join(f.files[:max_files])
                    shown += f" (+{len(f.files) - max_files} more)" if len(f.files) > max_files else ""
                    if not f.files:
                        lines.append(f"    - {f.message}")
                    elif code in _GROUP_CODES:
                        lines.append(f"    - {f.message}: {shown}")
                    else:
                        lines.append(f"    - {shown}: {f.message}")
                if len(items) > max_items:
                    lines.append(
                        f"    ... and {len(items) - max_items} more {code} findings (see --format json)"
                    )
        if not self.findings:
            lines.append("")
            lines.append("no problems found")
        return "\n".join(lines)

    def _table(self) -> list[str]:
        if not self.classes:
            return []
        splits = list(self.splits)
        header = ["class", *splits] + (["total"] if len(splits) > 1 else [])
        has_boxes = bool(self.instances)
        if has_boxes:
            header.append("boxes")
        rows = []
        for name in self.classes:
            vals = [self.counts.get(s, {}).get(name, 0) for s in splits]
            row = [name, *map(str, vals)] + ([str(sum(vals))] if len(splits) > 1 else [])
            if has_boxes:
                row.append(str(sum(self.instances.get(s, {}).get(name, 0) for s in splits)))
            rows.append(row)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def fmt(r: list[str]) -> str:
            return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))

        return [fmt(header), *(fmt(r) for r in rows)]


# ---------------------------------------------------------------- per-file scan (runs in workers)
@dataclass
class FileScan:
    """What reading one record's files gave: hashes and sizes, or the reason it failed."""

    sha256: str | None = None
    phash: int | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    mask_size: tuple[int, int] | None = None  # (width, height)
    mask_values: list[int] | None = None
    mask_error: str | None = None
    target_error: str | None = None


def _reason(exc: BaseException, path: str) -> str:
    msg = str(exc)
    for prefix in (f"{path}: ", f"{path}:"):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
            break
    return f"{type(exc).__name__}: {msg}"


def _named_bytes(data: bytes, name: str) -> io.BytesIO:
    buf = io.BytesIO(data)
    buf.name = name  # errors from pixlearn.io then name the file, not "<N bytes>"
    return buf


def _phash(rgb: np.ndarray) -> int:
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(rgb)).hash.reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _scan_one(path: str, mask_path: str | None, target_path: str | None, mask_values: bool) -> FileScan:
    from pixlearn.io import image_info, read_image

    out = FileScan()
    try:
        try:
            data = Path(path).read_bytes()
        except OSError:
            image_info(path)  # raises the typed error (not found, is a folder, ...)
            raise
        out.sha256 = hashlib.sha256(data).hexdigest()
        # the safe reader checks the header (allowlist, pixel limit) before it decodes anything; a
        # separate image_info() call first would only add time (Pillow loads a PNG to find its EXIF)
        rgb = read_image(_named_bytes(data, path))  # full decode, EXIF orientation applied
        out.height, out.width = (int(v) for v in rgb.shape[:2])
        out.phash = _phash(rgb)
    except PixlearnError as exc:
        out.error = _reason(exc, path)
    except Exception as exc:  # one bad file never stops a check
        out.error = f"{type(exc).__name__}: {exc}"
    if mask_path is not None:
        try:
            info = image_info(mask_path)
            out.mask_size = (info.width, info.height)
            if mask_values:
                from pixlearn.io import read_mask

                mask = read_mask(mask_path)  # stored values: palette indices, not colours
                out.mask_size = (int(mask.shape[1]), int(mask.shape[0]))
                out.mask_values = [int(v) for v in np.unique(mask)[:4096]]
        except PixlearnError as exc:
            out.mask_error = _reason(exc, mask_path)
        except Exception as exc:
            out.mask_error = f"{type(exc).__name__}: {exc}"
    if target_path is not None:
        try:
            read_image(target_path)
        except PixlearnError as exc:
            out.target_error = _reason(exc, target_path)
        except Exception as exc:
            out.target_error = f"{type(exc).__name__}: {exc}"
    return out


_Job = tuple[str, "str | None", "str | None", bool]


def _scan_chunk(jobs: list[_Job]) -> list[FileScan]:
    return [_scan_one(*job) for job in jobs]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one thread per process: the processes are the parallelism


def _progress_bar(enabled: bool, total: int, description: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        disable=not enabled,
        transient=True,
    )
    return bar, bar.add_task(description, total=total)


def scan_files(
    index: DatasetIndex,
    *,
    workers: int = 1,
    progress: bool = False,
    mask_values: bool = False,
    description: str = "reading images",
) -> list[FileScan]:
    """Read and hash every record's image (and mask / target), in ``workers`` processes.

    Parameters
    ----------
    index : DatasetIndex
    workers : int, default 1
        Processes (``forkserver`` start method, so workers never inherit threads); 1 runs here.
    progress : bool, default False
        Show a progress bar on stderr.
    mask_values : bool, default False
        Also decode masks and list the values they hold (slower; used for segmentation checks).

    Returns
    -------
    list of FileScan
        One per record, in record order; unreadable files carry ``error`` instead of hashes.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.io import write_image
    >>> root = Path(tempfile.mkdtemp())
    >>> p = write_image(root / "a.png", np.zeros((4, 6, 3), np.uint8))
    >>> _ = (root / "bad.png").write_bytes(b"not an image")
    >>> recs = [Record(p, label=0), Record(root / "bad.png", label=0)]
    >>> idx = DatasetIndex(root, "imagefolder", Task.CLASSIFY, ["x"], recs)
    >>> ok, bad = scan_files(idx)
    >>> (ok.width, ok.height, ok.error is None), bad.error.split(":")[0]
    ((6, 4, True), 'ImageDecodeError')
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    jobs: list[_Job] = [
        (
            str(r.path),
            None if r.mask_path is None else str(r.mask_path),
            None if r.target_path is None else str(r.target_path),
            mask_values,
        )
        for r in index.records
    ]
    results: list[FileScan] = []
    bar, task = _progress_bar(progress, len(jobs), description)
    with bar:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                results.append(_scan_one(*job))
                bar.advance(task)
        else:
            size = max(1, min(64, len(jobs) // (workers * 8)))
            chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
            # forkserver: workers never inherit this process's threads (the progress bar's among them)
            ctx = multiprocessing.get_context("forkserver")
            with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, mp_context=ctx) as pool:
                for part in pool.map(_scan_chunk, chunks):
                    results.extend(part)
                    bar.advance(task, len(part))
    return results


# ---------------------------------------------------------------- near-duplicate search
def _popcount64(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], np.int64)  # numpy < 2
    return table[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)


def _check_distance(distance: int, bits: int) -> int:
    if not 0 <= int(distance) <= bits:
        raise ConfigError(f"near-duplicate distance must be between 0 and {bits} bits, got {distance}")
    return int(distance)


def _as_uint64(hashes: Sequence[int] | np.ndarray) -> np.ndarray:
    if isinstance(hashes, np.ndarray):
        return hashes.astype(np.uint64).reshape(-1)
    return np.array([int(v) for v in hashes], dtype=np.uint64)


def _unique_pairs(uniq: np.ndarray, distance: int, bits: int) -> np.ndarray:
    """Pairs (a, b), a < b, of distinct sorted hashes ``uniq`` within ``distance`` (multi-index hashing)."""
    u = uniq.size
    keys: list[np.ndarray] = []
    if u < 2:
        return np.zeros((0, 2), np.int64)
    cuts = np.linspace(0, bits, min(distance + 1, bits) + 1).round().astype(int)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        key = (uniq >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        ks, hs = key[order], uniq[order]
        active = np.arange(u - 1)
        step = 1
        # runs of equal keys are contiguous: once key[i] != key[i + step] it differs for larger steps too,
        # so the work is the number of pairs sharing this chunk, not all pairs
        while active.size:
            active = active[active + step < u]
            active = active[ks[active] == ks[active + step]]
            if not active.size:
                break
            close = active[_popcount64(hs[active] ^ hs[active + step]) <= distance]
            a, b = order[close], order[close + step]
            keys.append(np.minimum(a, b).astype(np.int64) * u + np.maximum(a, b))
            step += 1
    if not keys:
        return np.zeros((0, 2), np.int64)
    flat = np.unique(np.concatenate(keys))
    return np.stack([flat // u, flat % u], axis=1)


def near_duplicate_pairs(
    hashes: Sequence[int] | np.ndarray, distance: int, *, bits: int = HASH_BITS
) -> np.ndarray:
    """All pairs ``(i, j)``, ``i < j``, of hashes within Hamming ``distance`` of each other.

    Multi-index hashing: the ``bits``-bit hashes are cut into ``distance + 1`` chunks; by the
    pigeonhole principle a pair within ``distance`` matches exactly on at least one chunk, so
    for each chunk the hashes are sorted by that chunk and only neighbours inside runs of
    equal chunks are compared (vectorised). Cost ``O((distance + 1) * (n log n + C))`` with
    ``C`` the pairs sharing a chunk, plus the size of the output. Use :func:`hash_clusters`
    for groups: it never lists the pairs of a large group of identical hashes.

    Parameters
    ----------
    hashes : sequence of int, or ndarray of uint64
        Perceptual hashes (at most 64 bits).
    distance : int
        Largest Hamming distance that counts as near-identical, ``0 <= distance <= bits``.

    Returns
    -------
    ndarray of shape (P, 2), int64
        Index pairs into ``hashes``, sorted.

    Examples
    --------
    >>> near_duplicate_pairs([0b1111, 0b1110, 0b0000_1111_0000, 0b1111], 1).tolist()
    [[0, 1], [0, 3], [1, 3]]
    """
    distance = _check_distance(distance, bits)
    h = _as_uint64(hashes)
    uniq, inverse = np.unique(h, return_inverse=True)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(inverse.reshape(-1).tolist()):
        members[g].append(i)
    out: set[tuple[int, int]] = set()
    for idx in members.values():
        out.update((idx[x], idx[y]) for x in range(len(idx)) for y in range(x + 1, len(idx)))
    for a, b in _unique_pairs(uniq, distance, bits).tolist():
        out.update((min(i, j), max(i, j)) for i in members[a] for j in members[b])
    return np.array(sorted(out), np.int64).reshape(-1, 2)


def hash_clusters(hashes: Sequence[int | None], distance: int, *, bits: int = HASH_BITS) -> list[int]:
    """Cluster id per item: connected components of "within ``distance``"; ``None`` hashes stay alone.

    Ids are numbered in order of first appearance.

    Examples
    --------
    >>> hash_clusters([0b1111, 0b1110, 0xFF00, None, 0b1100], 1)
    [0, 0, 1, 2, 0]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    distance = _check_distance(distance, bits)
    known = [i for i, h in enumerate(hashes) if h is not None]
    uniq, inverse = np.unique(_as_uint64([hashes[i] for i in known]), return_inverse=True)
    pairs = _unique_pairs(uniq, distance, bits)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(uniq.size, uniq.size))
    _, comp = connected_components(graph, directed=False)
    by_item: dict[int, int] = {i: int(comp[g]) for i, g in zip(known, inverse.reshape(-1).tolist())}
    seen: dict[tuple[str, int], int] = {}
    return [
        seen.setdefault(("c", by_item[i]) if i in by_item else ("n", i), len(seen))
        for i in range(len(hashes))
    ]


# ---------------------------------------------------------------- the check
def _rel(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _split_key(split: str | None) -> str:
    return UNSPLIT if split is None else str(split)


def _ordered_splits(records: Iterable[Record]) -> list[str]:
    present = {_split_key(r.split) for r in records}
    known = [s for s in SPLITS if s in present]
    return known + sorted(present - set(known) - {UNSPLIT}) + ([UNSPLIT] if UNSPLIT in present else [])


#: Reader problem codes that the check computes itself from the decoded image (not repeated).
_RECOMPUTED = {"box_outside", "box_degenerate"}
#: Reader problem codes that replace the check's own "not found" error for the same file.
_SUPERSEDES = {"missing_image": "image", "missing_mask": "mask", "missing_target": "target"}


def _problems(rec: Record, rel: str) -> list[Finding]:
    out = []
    for p in rec.meta.get("problems", ()) or ():
        if isinstance(p, Mapping) and p.get("code") in _RECOMPUTED:
            continue
        if isinstance(p, Mapping):
            sev = str(p.get("severity", "warning"))
            severity = Severity(sev) if sev in {s.value for s in Severity} else Severity.WARNING
            code = str(p.get("code", "reader"))
            message = str(p.get("message", p))
        else:
            severity, code, message = Severity.WARNING, "reader", str(p)
        out.append(Finding(severity, code, message, (rel,), {"source": "reader"}))
    return out


def _size_stats(scans: Sequence[FileScan]) -> dict[str, Any]:
    ok = [(s.width, s.height) for s in scans if s.width is not None and s.height is not None]
    if not ok:
        return {"count": 0}
    ws = [w for w, _ in ok]
    hs = [h for _, h in ok]
    aspects = [w / h for w, h in ok if h]
    common = Counter(f"{w}x{h}" for w, h in ok).most_common()

    def stats(v: list[float]) -> dict[str, float]:
        return {"min": min(v), "median": float(statistics.median(v)), "max": max(v)}

    return {
        "count": len(ok),
        "width": stats(ws),
        "height": stats(hs),
        "aspect": {k: round(float(x), 4) for k, x in stats(aspects).items()},
        "distinct": len(common),
        "common": [[k, v] for k, v in common[:10]],
    }


def check_dataset(
    index: DatasetIndex,
    *,
    near_duplicate_distance: int = 4,
    min_per_class: int = 10,
    imbalance_ratio: float = 10.0,
    workers: int = 1,
    progress: bool = True,
) -> CheckReport:
    """Check a dataset for problems that spoil training or evaluation.

    Every image is read once and fully decoded by the safe reader
    (:func:`pixlearn.io.read_image`, which refuses bad headers before decoding); unreadable
    files are reported with the typed error's reason. Masks are read to their header
    (:func:`pixlearn.io.image_info`) and, for segmentation, decoded to list their class ids.
    Files are hashed (sha256 of the bytes; 64-bit ``imagehash.phash`` of the pixels) to find
    exact and near duplicates, and duplicates across splits (leaks). Labels, boxes and masks
    are checked against the classes and the decoded image size. Nothing is written and no
    file is changed. About 1 ms per small image per worker.

    Parameters
    ----------
    index : DatasetIndex
        What a reader produced (see :func:`pixlearn.data.readers.read_dataset`).
    near_duplicate_distance : int, default 4
        Largest perceptual-hash Hamming distance (of 64 bits) that counts as near-identical;
        0 finds only images with identical hashes. See the module docstring for the cost.
    min_per_class : int, default 10
        Classes with fewer images (all splits together) are reported as ``tiny_class``.
    imbalance_ratio : float, default 10.0
        Warn (``imbalance``) when the largest class has more than this many times the images
        of the smallest non-empty class.
    workers : int, default 1
        Processes decoding in parallel (``forkserver`` start method).
    progress : bool, default True
        Show a progress bar on stderr.

    Returns
    -------
    CheckReport
        Counts, size statistics and findings; ``report.has_errors`` for a pass/fail answer.

    Raises
    ------
    ConfigError
        For a negative threshold or fewer than one worker.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.io import write_image
    >>> root = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> recs = []
    >>> for i, (split, label) in enumerate([("train", 0), ("train", 1), ("val", 0), ("val", 1)]):
    ...     p = write_image(root / split / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    ...     recs.append(Record(p, split=split, label=label))
    >>> _ = (root / "val" / "2.png").write_bytes((root / "train" / "0.png").read_bytes())  # a leak
    >>> idx = DatasetIndex(root, "imagefolder", Task.CLASSIFY, ["cat", "dog"], recs)
    >>> report = check_dataset(idx, min_per_class=1, progress=False)
    >>> [(f.code, f.files) for f in report.errors]
    [('split_leak', ('train/0.png', 'val/2.png'))]
    >>> report.counts
    {'train': {'cat': 1, 'dog': 1}, 'val': {'cat': 1, 'dog': 1}}
    """
    if near_duplicate_distance < 0:
        raise ConfigError(f"near_duplicate_distance must be >= 0, got {near_duplicate_distance}")
    if min_per_class < 0:
        raise ConfigError(f"min_per_class must be >= 0, got {min_per_class}")
    if imbalance_ratio < 1:
        raise ConfigError(f"imbalance_ratio must be >= 1 (largest / smallest class), got {imbalance_ratio}")
    t0 = time.perf_counter()
    task = Task(index.task)
    root = Path(index.root)
    records = index.records
    classes = list(index.classes)
    rels = [_rel(r.path, root) for r in records]
    scans = scan_files(
        index,
        workers=workers,
        progress=progress,
        mask_values=task is Task.SEGMENT,
        description="checking images",
    )
    findings: list[Finding] = []
    split_names = _ordered_splits(records)
    # what mask values mean: the one rule of pixlearn.data.masks, as the reader decided it
    coding = MaskCoding.from_meta(index.meta)
    coding_map = coding.values or {}
    coding_values = {coding.ignore_index} - {None}
    coding_hint = ("a binary 0/255 set: 0 = background, 255 = foreground" if coding.kind == "binary255"
                   else f"0..{len(classes) - 1}, 255 = ignore")

    # ---------------- per-record: readability, labels, boxes, masks, reader problems
    for rec, rel, scan in zip(records, rels, scans):
        noted = _problems(rec, rel)
        findings.extend(noted)
        missing = {_SUPERSEDES[f.code] for f in noted if f.code in _SUPERSEDES}
        not_found = "ImageNotFoundError"
        if scan.error is not None and not ("image" in missing and scan.error.startswith(not_found)):
            findings.append(Finding(Severity.ERROR, "unreadable", scan.error, (rel,)))
        if scan.mask_error is not None and not ("mask" in missing and scan.mask_error.startswith(not_found)):
            mrel = _rel(rec.mask_path, root)
            findings.append(Finding(Severity.ERROR, "unreadable", f"mask: {scan.mask_error}", (mrel, rel)))
        if scan.target_error is not None and not (
            "target" in missing and scan.target_error.startswith(not_found)
        ):
            trel = _rel(rec.target_path, root)
            findings.append(
                Finding(Severity.ERROR, "unreadable", f"target: {scan.target_error}", (trel, rel))
            )
        if rec.label is not None and classes and not 0 <= rec.label < len(classes):
            findings.append(
                Finding(
                    Severity.ERROR,
                    "bad_label",
                    f"label {rec.label} is not a class index (0..{len(classes) - 1})",
                    (rel,),
                )
            )
        h, w = scan.height, scan.width
        if rec.size is not None and h is not None and tuple(rec.size) != (h, w):
            findings.append(
                Finding(
                    Severity.WARNING,
                    "size_mismatch",
                    f"annotations say {rec.size[1]}x{rec.size[0]} but the image is {w}x{h}",
                    (rel,),
                    {"stated": [int(rec.size[1]), int(rec.size[0])], "actual": [w, h]},
                )
            )
        if rec.boxes is not None and len(rec.boxes):
            findings.extend(_box_findings(rec, rel, h, w, classes))
        if (
            rec.mask_path is not None
            and scan.mask_size is not None
            and h is not None
            and scan.mask_size != (w, h)
        ):
            mw, mh = scan.mask_size
            findings.append(
                Finding(
                    Severity.ERROR,
                    "mask_size",
                    f"mask is {mw}x{mh} but its image is {w}x{h}",
                    (_rel(rec.mask_path, root), rel),
                    {"mask": [mw, mh], "image": [w, h]},
                )
            )
        if scan.mask_values is not None and classes:
            bad = [v for v in scan.mask_values if v not in coding_values and not 0 <= coding_map.get(v, v) < len(classes)]
            if bad:
                findings.append(
                    Finding(
                        Severity.WARNING,
                        "mask_values",
                        f"mask holds values {bad[:8]} that are not class ids "
                        f"({coding_hint}; see 'pixlearn data check --help')",
                        (_rel(rec.mask_path, root),),
                        {"values": bad[:64]},
                    )
                )

    # ---------------- exact duplicates (sha256)
    by_sha: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(scans):
        if s.sha256 is not None:
            by_sha[s.sha256].append(i)
    for members in by_sha.values():
        if len(members) < 2:
            continue
        files = tuple(rels[i] for i in members)
        splits = sorted({records[i].split for i in members if records[i].split is not None}, key=_split_rank)
        if len(splits) > 1:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "split_leak",
                    f"identical files in {' and '.join(splits)}",
                    files,
                    {"kind": "exact", "splits": splits},
                )
            )
        else:
            findings.append(
                Finding(
                    Severity.WARNING, "duplicate", f"{len(files)} identical files", files, {"kind": "exact"}
                )
            )
        labels = sorted({records[i].label for i in members if records[i].label is not None})
        if len(labels) > 1 and task is Task.CLASSIFY:
            names = [classes[v] if 0 <= v < len(classes) else str(v) for v in labels]
            findings.append(
                Finding(
                    Severity.WARNING,
                    "label_conflict",
                    f"identical files labelled {', '.join(names)}",
                    files,
                    {"labels": names},
                )
            )

    # ---------------- near duplicates (perceptual hash), grouped into connected components
    phashes = [s.phash for s in scans]
    if sum(p is not None for p in phashes) > 1:
        cluster = hash_clusters(phashes, near_duplicate_distance)
        comps: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(cluster):
            if phashes[i] is not None:
                comps[c].append(i)
        for members in comps.values():
            shas = {scans[i].sha256 for i in members}
            if len(members) < 2 or len(shas) < 2:
                continue  # single images, or only identical files (reported above)
            files = tuple(rels[i] for i in members)
            splits = sorted(
                {records[i].split for i in members if records[i].split is not None}, key=_split_rank
            )
            if len(splits) > 1:
                findings.append(
                    Finding(
                        Severity.ERROR,
                        "split_leak",
                        f"near-identical images (phash distance <= {near_duplicate_distance}) "
                        f"in {' and '.join(splits)}",
                        files,
                        {"kind": "near", "splits": splits, "distance": near_duplicate_distance},
                    )
                )
            else:
                findings.append(
                    Finding(
                        Severity.WARNING,
                        "near_duplicate",
                        f"{len(files)} near-identical images (phash distance <= {near_duplicate_distance})",
                        files,
                        {"kind": "near", "distance": near_duplicate_distance},
                    )
                )

    # ---------------- class counts and class-level findings
    counts, instances = _class_counts(records, scans, classes, task, split_names, coding)
    if classes and task is not Task.RESTORE:
        findings.extend(_class_findings(counts, classes, split_names, min_per_class, imbalance_ratio, task))
    findings.extend(_empty_class_folders(index, rels))
    refused = index.meta.get("refused") or {}
    if refused.get("outside_root"):
        n, examples = int(refused["outside_root"]), list(refused.get("examples") or [])
        findings.append(
            Finding(
                Severity.ERROR,
                "outside_root",
                f"{n} record(s) refused and left out: their paths lead outside the dataset folder"
                + (f" (e.g. {examples[0]})" if examples else ""),
                (),
                {"count": n, "examples": examples},
            )
        )
    if split_names == [UNSPLIT] and records:
        findings.append(
            Finding(
                Severity.INFO,
                "unsplit",
                "the dataset has no train/val/test splits; make them with 'pixlearn data split'",
            )
        )

    findings.sort(key=lambda f: (_SEVERITY_ORDER[f.severity], f.code, f.files))
    return CheckReport(
        root=str(root),
        format=str(index.format),
        task=task.value,
        num_images=len(records),
        classes=classes,
        splits=split_names,
        counts=counts,
        instances=instances,
        images_per_split={s: n for s, n in Counter(_split_key(r.split) for r in records).items()},
        sizes=_size_stats(scans),
        findings=findings,
        settings={
            "near_duplicate_distance": near_duplicate_distance,
            "min_per_class": min_per_class,
            "imbalance_ratio": imbalance_ratio,
            "box_tolerance": BOX_TOLERANCE,
        },
        seconds=time.perf_counter() - t0,
    )


def _empty_class_folders(index: DatasetIndex, rels: Sequence[str]) -> list[Finding]:
    """ImageFolder only: class folders without images (the reader leaves them out of ``classes``)."""
    if index.format != "imagefolder" or not index.records:
        return []
    from pixlearn.io import IMAGE_EXTENSIONS

    root = Path(index.root)
    split_folders = {
        rel.split("/")[0] for rel, r in zip(rels, index.records) if r.split is not None and "/" in rel
    }
    parents = [root / name for name in sorted(split_folders)] or [root]
    known = set(index.classes)
    out = []
    for parent in parents:
        try:
            subdirs = sorted(d for d in parent.iterdir() if d.is_dir() and not d.name.startswith("."))
        except OSError:
            continue
        for d in subdirs:
            if d.name in known:
                continue  # the class has images elsewhere; "class_missing" covers this split
            if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in d.rglob("*")):
                continue
            rel = d.relative_to(root).as_posix() + "/"
            out.append(
                Finding(
                    Severity.ERROR,
                    "empty_class",
                    "class folder without images (so the reader leaves the class out)",
                    (rel,),
                    {"class": d.name},
                )
            )
    return out


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


def _box_findings(rec: Record, rel: str, h: int | None, w: int | None, classes: list[str]) -> list[Finding]:
    out: list[Finding] = []
    boxes = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    degenerate = ~((bw > 0) & (bh > 0))  # NaN counts as degenerate
    if degenerate.any():
        idx = np.flatnonzero(degenerate).tolist()
        out.append(
            Finding(
                Severity.ERROR,
                "box_degenerate",
                f"{len(idx)} box{'es' if len(idx) > 1 else ''} with zero or negative width/height "
                f"(box {idx[0]}: {_fmt_box(boxes[idx[0]])})",
                (rel,),
                {"boxes": idx},
            )
        )
    if h is None and rec.size is not None:
        h, w = rec.size
    if h is not None and w is not None:
        t = BOX_TOLERANCE
        outside = (boxes[:, 0] < -t) | (boxes[:, 1] < -t) | (boxes[:, 2] > w + t) | (boxes[:, 3] > h + t)
        if outside.any():
            idx = np.flatnonzero(outside).tolist()
            out.append(
                Finding(
                    Severity.ERROR,
                    "box_outside",
                    f"{len(idx)} box{'es' if len(idx) > 1 else ''} beyond the {w}x{h} image "
                    f"(box {idx[0]}: {_fmt_box(boxes[idx[0]])})",
                    (rel,),
                    {"boxes": idx, "image": [int(w), int(h)]},
                )
            )
    if rec.box_labels is not None and classes:
        labels = np.asarray(rec.box_labels).reshape(-1)
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes))).tolist()
        if bad:
            out.append(
                Finding(
                    Severity.ERROR,
                    "bad_label",
                    f"box labels {sorted({int(labels[i]) for i in bad})} are not class indices "
                    f"(0..{len(classes) - 1})",
                    (rel,),
                    {"boxes": bad},
                )
            )
    return out


def _fmt_box(box: np.ndarray) -> str:
    return "xyxy [" + ", ".join(f"{v:g}" for v in box.tolist()) + "]"


def _class_counts(
    records: Sequence[Record],
    scans: Sequence[FileScan],
    classes: list[str],
    task: Task,
    split_names: list[str],
    coding: MaskCoding,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    counts = {s: dict.fromkeys(classes, 0) for s in split_names}
    instances: dict[str, dict[str, int]] = {}
    if task in (Task.DETECT, Task.INSTANCE):
        instances = {s: dict.fromkeys(classes, 0) for s in split_names}
    n = len(classes)
    for rec, scan in zip(records, scans):
        s = _split_key(rec.split)
        present: set[int] = set()
        if rec.label is not None:
            present.add(int(rec.label))
        if rec.box_labels is not None:
            labels = [int(v) for v in np.asarray(rec.box_labels).reshape(-1)]
            present.update(labels)
            if instances:
                for v in labels:
                    if 0 <= v < n:
                        instances[s][classes[v]] += 1
        if scan.mask_values is not None:
            present.update(coding.classes_present(scan.mask_values))
        for v in present:
            if 0 <= v < n:
                counts[s][classes[v]] += 1
    return counts, instances


def _class_findings(
    counts: dict[str, dict[str, int]],
    classes: list[str],
    split_names: list[str],
    min_per_class: int,
    imbalance_ratio: float,
    task: Task,
) -> list[Finding]:
    out: list[Finding] = []
    total = {c: sum(counts[s][c] for s in split_names) for c in classes}
    skip = {"background"} if task is Task.SEGMENT else set()
    for c in classes:
        if c in skip:
            continue
        if total[c] == 0:
            out.append(Finding(Severity.ERROR, "empty_class", f"class '{c}' has no images", (), {"class": c}))
        elif total[c] < min_per_class:
            out.append(
                Finding(
                    Severity.WARNING,
                    "tiny_class",
                    f"class '{c}' has only {total[c]} image{'s' if total[c] != 1 else ''} "
                    f"(fewer than {min_per_class})",
                    (),
                    {"class": c, "count": total[c]},
                )
            )
    real = [s for s in split_names if s != UNSPLIT]
    if len(real) > 1:
        for c in classes:
            if c in skip or total[c] == 0:
                continue
            missing = [s for s in real if counts[s][c] == 0]
            if missing:
                out.append(
                    Finding(
                        Severity.WARNING,
                        "class_missing",
                        f"class '{c}' has no images in {', '.join(missing)}",
                        (),
                        {"class": c, "splits": missing},
                    )
                )
    nonempty = {c: v for c, v in total.items() if v > 0 and c not in skip}
    if len(nonempty) > 1:
        big = max(nonempty, key=lambda c: (nonempty[c], c))
        small = min(nonempty, key=lambda c: (nonempty[c], c))
        ratio = nonempty[big] / nonempty[small]
        if ratio > imbalance_ratio:
            out.append(
                Finding(
                    Severity.WARNING,
                    "imbalance",
                    f"largest class '{big}' ({nonempty[big]}) has {ratio:.1f}x the images of the smallest "
                    f"'{small}' ({nonempty[small]}); consider class weights or a weighted sampler",
                    (),
                    {"largest": big, "smallest": small, "ratio": round(ratio, 3)},
                )
            )
    return out
