"""Seeded train/val/test splits and k-folds: stratified by class, grouped so near-duplicates stay together.

Splits are lists of record indices; :func:`write_split_manifest` saves them as a CSV manifest
(``path,label,split``, paths relative to the manifest's folder -- the dataset root by default --
as the CSV reader expects) and :func:`apply_split_manifest`
reads one back onto an index. The user's files are never moved or changed.

What is stratified on (:func:`stratify_labels`): the class for classification; for detection
the most frequent box class of each image (images without boxes form one more stratum); for
segmentation and restoration data every record is in one stratum, which makes the split a
seeded random split with the exact ratios.
"""

from __future__ import annotations

import csv
import os
import tempfile
import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.data.index import SPLITS, DatasetIndex

__all__ = [
    "stratified_split",
    "kfold",
    "stratify_labels",
    "group_ids_from_hashes",
    "write_split_manifest",
    "apply_split_manifest",
    "MANIFEST_COLUMNS",
]

#: The header of a classification split manifest (other tasks: ``path,split``; ``group`` may follow).
MANIFEST_COLUMNS = ("path", "label", "split")


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    r = tuple(float(v) for v in ratios)
    if not 2 <= len(r) <= len(SPLITS):
        raise ConfigError(f"ratios must give 2 or 3 numbers (train, val[, test]), got {len(r)}: {list(r)}")
    if any(not np.isfinite(v) or v < 0 for v in r) or r[0] <= 0:
        raise ConfigError(f"ratios must be >= 0 with a positive train share, got {list(r)}")
    if abs(sum(r) - 1.0) > 1e-6:
        raise ConfigError(f"ratios must sum to 1, got {list(r)} (sum {sum(r):g}); e.g. 0.8,0.1,0.1")
    return r


def _strata(labels: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    out: dict[Hashable, list[int]] = defaultdict(list)
    for i, v in enumerate(labels):
        out[v].append(i)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, type(kv[0]).__name__, str(kv[0]))))


def _largest_remainder(n: int, ratios: Sequence[float]) -> list[int]:
    exact = [n * r for r in ratios]
    base = [int(np.floor(e)) for e in exact]
    order = sorted(range(len(ratios)), key=lambda s: (-(exact[s] - base[s]), s))
    for s in order[: n - sum(base)]:
        base[s] += 1
    return base


def stratified_split(
    labels: Sequence[Hashable],
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> dict[str, list[int]]:
    """Split item indices into train / val (/ test), keeping each class's proportions.

    Without ``groups``, every class is cut in the given ratios: each split gets
    ``floor(n_c * ratio)`` or one more item of a class with ``n_c`` items (so per-class
    proportions are exact to within one item), and the extra items go where the split totals
    are furthest below their targets. A class always puts its first item into train, so a
    class with one item is never only in val/test; classes too small for every split are
    missing from val/test (``pixlearn data check`` reports that as ``class_missing``).

    With ``groups``, whole groups go to one split (nothing of a group straddles two splits):
    groups are placed largest first, each into the split where it brings the per-class and
    total counts closest to their targets (a greedy stratified-group assignment). Proportions
    are then as close as the group sizes allow; with very few groups a split may be empty.

    Parameters
    ----------
    labels : sequence of hashable
        One stratum per item (class index, name, or ``None``).
    ratios : sequence of 2 or 3 floats, default (0.8, 0.1, 0.1)
        Shares of train, val and (optionally) test; non-negative, summing to 1.
    seed : int, default 0
        Same seed, same split.
    groups : sequence of hashable, optional
        Group id per item (e.g. from :func:`group_ids_from_hashes`).

    Returns
    -------
    dict of str -> list of int
        ``{"train": [...], "val": [...], "test": [...]}`` (one key per ratio), indices sorted.

    Raises
    ------
    ConfigError
        Bad ratios, or ``groups`` of another length than ``labels``.

    Examples
    --------
    >>> labels = ["cat"] * 10 + ["dog"] * 20
    >>> split = stratified_split(labels, ratios=(0.8, 0.1, 0.1), seed=0)
    >>> {k: len(v) for k, v in split.items()}
    {'train': 24, 'val': 3, 'test': 3}
    >>> sum(labels[i] == "cat" for i in split["train"])
    8
    >>> groups = [i // 3 for i in range(30)]  # items 0-2 together, 3-5 together, ...
    >>> g = stratified_split(labels, ratios=(0.8, 0.2), seed=0, groups=groups)
    >>> all(len({s for s, idx in g.items() if i in idx}) == 1 for i in range(30))
    True
    """
    r = _check_ratios(ratios)
    names = SPLITS[: len(r)]
    labels = list(labels)
    if groups is not None:
        groups = list(groups)
        if len(groups) != len(labels):
            raise ConfigError(
                f"groups has {len(groups)} entries but labels has {len(labels)}; give one group per item"
            )
        assignment = _grouped(labels, groups, r, seed)
    else:
        assignment = _ungrouped(labels, r, seed)
    return {name: sorted(assignment[s]) for s, name in enumerate(names)}


def _ungrouped(labels: list[Hashable], r: tuple[float, ...], seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    k = len(r)
    strata = _strata(labels)
    targets = _largest_remainder(len(labels), r)
    totals = [0] * k
    alloc: dict[Hashable, list[int]] = {}
    frac: dict[Hashable, list[float]] = {}
    for c, items in strata.items():
        n = len(items)
        exact = [n * x for x in r]
        base = [int(np.floor(e)) for e in exact]
        f = [e - b for e, b in zip(exact, base)]
        if n and base[0] == 0:  # the first item of a class goes to train
            base[0], f[0] = 1, 0.0
        alloc[c], frac[c] = base, f
        totals = [t + b for t, b in zip(totals, base)]
    keys = list(strata)
    for j in rng.permutation(len(keys)):
        c = keys[j]
        left = len(strata[c]) - sum(alloc[c])
        # only splits with a fractional share: each stays within one item of n_c * ratio
        cands = sorted(
            (s for s in range(k) if frac[c][s] > 1e-9 and r[s] > 0),
            key=lambda s: (-(targets[s] - totals[s]), -frac[c][s], s),
        )
        for s in cands[:left]:
            alloc[c][s] += 1
            totals[s] += 1
    out: list[list[int]] = [[] for _ in range(k)]
    for c, items in strata.items():
        order = [items[i] for i in rng.permutation(len(items))]
        start = 0
        for s, m in enumerate(alloc[c]):
            out[s].extend(order[start : start + m])
            start += m
    return out


def _grouped(
    labels: list[Hashable], groups: list[Hashable], r: tuple[float, ...], seed: int
) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    k = len(r)
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    strata = _strata(labels)
    cls = {c: j for j, c in enumerate(strata)}
    n_c = np.array([len(v) for v in strata.values()], np.float64)
    n = float(len(labels))
    target = n_c[:, None] * np.array(r)[None, :]  # (C, k)
    total_target = n * np.array(r)
    weight = 1.0 / np.maximum(n_c, 1.0)
    w_total = len(strata) / max(n, 1.0)
    counts = np.zeros_like(target)
    totals = np.zeros(k)
    usable = [s for s in range(k) if r[s] > 0]
    keys = list(members)
    keys = [keys[j] for j in rng.permutation(len(keys))]
    keys.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the seeded order
    out: list[list[int]] = [[] for _ in range(k)]
    for g in keys:
        vec = Counter(cls[labels[i]] for i in members[g])
        idx = np.fromiter(vec.keys(), np.int64)
        gc = np.fromiter(vec.values(), np.float64)
        size = float(len(members[g]))
        best, best_cost = usable[0], np.inf
        for s in usable:
            # growth of the weighted squared deviation from the targets if g goes to s
            cost = float(np.sum(weight[idx] * gc * (2 * (counts[idx, s] - target[idx, s]) + gc)))
            cost += w_total * size * (2 * (totals[s] - total_target[s]) + size)
            if cost < best_cost - 1e-12:
                best, best_cost = s, cost
        counts[idx, best] += gc
        totals[best] += size
        out[best].extend(members[g])
    return out


def kfold(
    labels: Sequence[Hashable],
    *,
    k: int = 5,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> list[tuple[list[int], list[int]]]:
    """Stratified k-fold cross-validation indices (grouped when ``groups`` is given).

    Uses scikit-learn's ``StratifiedKFold`` (``StratifiedGroupKFold`` with groups), shuffled
    with ``seed``. Every item is in exactly one fold's validation part. A class with fewer than
    ``k`` items is in only some folds' validation parts; when every class is smaller than
    ``k`` stratification is impossible and a shuffled ``KFold`` (``GroupKFold``) is used.

    Parameters
    ----------
    labels : sequence of hashable
        One stratum per item.
    k : int, default 5
        Number of folds, ``2 <= k <=`` the number of items (of groups, with ``groups``).
    seed : int, default 0
    groups : sequence of hashable, optional
        Items of one group are always on the same side of every fold.

    Returns
    -------
    list of (train_indices, val_indices)
        ``k`` pairs of sorted index lists.

    Examples
    --------
    >>> folds = kfold(["a"] * 6 + ["b"] * 9, k=3, seed=0)
    >>> [len(val) for _, val in folds]
    [5, 5, 5]
    >>> sorted(i for _, val in folds for i in val) == list(range(15))
    True
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    labels = list(labels)
    n = len(labels)
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2 folds, got {k}")
    code_of = {v: j for j, v in enumerate(_strata(labels))}
    codes = np.array([code_of[v] for v in labels], np.int64)
    stratifiable = bool(n) and int(np.bincount(codes).max()) >= k
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*", category=UserWarning)
        if groups is None:
            if k > n:
                raise ConfigError(f"k-fold with k={k} needs at least {k} items, got {n}")
            splitter = (
                StratifiedKFold(k, shuffle=True, random_state=seed)
                if stratifiable
                else KFold(k, shuffle=True, random_state=seed)
            )
            folds = list(splitter.split(np.zeros(n), codes))
        else:
            groups = list(groups)
            if len(groups) != n:
                raise ConfigError(
                    f"groups has {len(groups)} entries but labels has {n}; give one group per item"
                )
            gcode = {g: j for j, g in enumerate(dict.fromkeys(groups))}
            gids = np.array([gcode[g] for g in groups], np.int64)
            if k > len(gcode):
                raise ConfigError(f"k-fold with k={k} needs at least {k} groups, got {len(gcode)}")
            if stratifiable:
                splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            else:
                splitter = GroupKFold(k)
                rng = np.random.default_rng(seed)  # GroupKFold is not shuffled: relabel groups randomly
                gids = rng.permutation(len(gcode))[gids]
            folds = list(splitter.split(np.zeros(n), codes, gids))
    return [(sorted(map(int, tr)), sorted(map(int, va))) for tr, va in folds]


def stratify_labels(index: DatasetIndex) -> list[int | None]:
    """The stratum of each record: what :func:`stratified_split` should keep in proportion.

    Classification: the label. Detection / instance segmentation: the most frequent box class
    of the image (ties go to the lower class index; ``None`` for images without boxes).
    Segmentation and restoration: ``None`` for every record (one stratum: a seeded random split).

    Examples
    --------
    >>> from pixlearn.data.index import Record
    >>> recs = [Record(Path("a.jpg"), boxes=np.zeros((3, 4)), box_labels=np.array([2, 1, 2])),
    ...         Record(Path("b.jpg"), boxes=np.zeros((0, 4)), box_labels=np.zeros(0))]
    >>> stratify_labels(DatasetIndex(Path("."), "coco", Task.DETECT, ["a", "b", "c"], recs))
    [2, None]
    """
    task = Task(index.task)
    if task is Task.CLASSIFY:
        return [None if r.label is None else int(r.label) for r in index.records]
    if task in (Task.DETECT, Task.INSTANCE):
        out: list[int | None] = []
        for r in index.records:
            labels = [] if r.box_labels is None else [int(v) for v in np.asarray(r.box_labels).reshape(-1)]
            if not labels:
                out.append(None)
            else:
                c = Counter(labels)
                out.append(min(c, key=lambda v: (-c[v], v)))
        return out
    return [None] * len(index.records)


def group_ids_from_hashes(
    index: DatasetIndex,
    distance: int = 4,
    *,
    workers: int = 1,
    progress: bool = False,
) -> list[str]:
    """Group ids that keep near-identical images together (for ``groups=`` when splitting).

    Each image is decoded and perceptually hashed (``imagehash.phash``, 64 bits); images within
    Hamming ``distance`` of each other -- transitively -- share a group, and so do records that
    already carry the same ``record.group``. Unreadable images get a group of their own.

    Parameters
    ----------
    index : DatasetIndex
    distance : int, default 4
        Largest phash Hamming distance that counts as near-identical (0..64).
    workers : int, default 1
        Processes decoding in parallel.
    progress : bool, default False
        Show a progress bar on stderr.

    Returns
    -------
    list of str
        One id per record (``"g0"``, ``"g1"``, ... in order of first appearance).

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.io import write_image
    >>> from pixlearn.data.index import Record
    >>> root = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> a, b = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    >>> paths = [write_image(root / "a.png", a), write_image(root / "b.png", b),
    ...          write_image(root / "a2.jpg", a, quality=90)]
    >>> idx = DatasetIndex(root, "imagefolder", Task.CLASSIFY, ["x"], [Record(p, label=0) for p in paths])
    >>> group_ids_from_hashes(idx, 4)
    ['g0', 'g1', 'g0']
    """
    from pixlearn.data.check import hash_clusters, scan_files

    scans = scan_files(index, workers=workers, progress=progress, description="hashing images")
    clusters = hash_clusters([s.phash for s in scans], distance)
    # union the hash clusters with the groups the records already carry
    parent = list(range(len(clusters)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[tuple[str, Hashable], int] = {}
    for i, (c, rec) in enumerate(zip(clusters, index.records)):
        for key in [("c", c)] + ([("g", rec.group)] if rec.group is not None else []):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    names: dict[int, str] = {}
    return [names.setdefault(find(i), f"g{len(names)}") for i in range(len(clusters))]


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to the folder ``base`` (``../`` where needed); absolute when impossible."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base))).as_posix()
    except ValueError:  # another drive
        return str(path)


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.normpath(os.path.abspath(path)))


def _label_name(index: DatasetIndex, label: int | None) -> str:
    if label is None:
        return ""
    return index.classes[label] if 0 <= label < len(index.classes) else str(label)


def write_split_manifest(
    index: DatasetIndex,
    assignment: Mapping[str, Sequence[int]],
    path: str | os.PathLike[str],
    *,
    groups: Sequence[Hashable] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a split as a CSV manifest ``path,label,split``; the dataset's files are untouched.

    Rows follow the split order (train, val, test, then others) and record order within a
    split; records in no split are left out. ``path`` is relative to the manifest's folder --
    the CSV reader's convention -- so with the manifest in the dataset root (the usual place)
    paths are relative to the root; ``label`` is the class name. With ``groups`` a ``group`` column
    keeps the group ids. Placed in the dataset root, a classification manifest is itself a CSV
    dataset: the CSV reader reads it back (and ``read_dataset`` then detects the folder as
    ``csv``). Other tasks have no label a CSV row can hold, so their manifests are
    ``path,split[,group]`` -- not a CSV dataset, so they never make the folder's own format
    ambiguous; :func:`apply_split_manifest` puts any manifest's splits back on an index.
    Written atomically.

    Parameters
    ----------
    index : DatasetIndex
    assignment : mapping of split name -> sequence of record indices
        E.g. the result of :func:`stratified_split`.
    path : path
        The CSV file to write (parent folders are created).
    groups : sequence of hashable, optional
        One group id per record, written as a ``group`` column.
    overwrite : bool, default False
        Replace an existing file; by default an existing file is never replaced, so a
        manifest can never clobber a file of the dataset.

    Returns
    -------
    Path

    Raises
    ------
    ConfigError
        An index out of range or in two splits, or ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.data.index import Record
    >>> root = Path(tempfile.mkdtemp())
    >>> recs = [Record(root / "cat" / f"{i}.png", label=0) for i in range(3)]
    >>> idx = DatasetIndex(root, "imagefolder", Task.CLASSIFY, ["cat"], recs)
    >>> out = write_split_manifest(idx, {"train": [0, 2], "val": [1]}, root / "splits.csv")
    >>> print(out.read_text().strip())
    path,label,split
    cat/0.png,cat,train
    cat/2.png,cat,train
    cat/1.png,cat,val
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; choose another file or allow overwriting it (--overwrite)")
    n = len(index.records)
    seen: dict[int, str] = {}
    order = sorted(assignment, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
    for split in order:
        for i in assignment[split]:
            i = int(i)
            if not 0 <= i < n:
                raise ConfigError(f"split '{split}' holds index {i}, outside 0..{n - 1}")
            if i in seen:
                raise ConfigError(
                    f"index {i} is in both '{seen[i]}' and '{split}'; a record belongs to one split"
                )
            seen[i] = split
    if groups is not None and len(groups) != n:
        raise ConfigError(f"groups has {len(groups)} entries but the dataset has {n} records")
    classify = Task(index.task) is Task.CLASSIFY
    base = path.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    from pixlearn.io.atomic import create_temp_beside

    fd, tmp = create_temp_beside(path)  # 0o666 less the umask, not mkstemp's 0600
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            columns = MANIFEST_COLUMNS if classify else ("path", "split")
            writer.writerow(columns + (("group",) if groups is not None else ()))
            for split in order:
                for i in sorted(int(v) for v in assignment[split]):
                    rec = index.records[i]
                    rel = _rel(rec.path, base)
                    row = [rel, _label_name(index, rec.label), split] if classify else [rel, split]
                    writer.writerow(row + ([str(groups[i])] if groups is not None else []))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def apply_split_manifest(index: DatasetIndex, path: str | os.PathLike[str]) -> DatasetIndex:
    """A copy of ``index`` whose records carry the splits of a manifest (files untouched).

    Manifest paths are relative to the manifest's folder. Records the manifest does not list
    keep their split.

    Raises
    ------
    ConfigError
        The file lacks ``path`` / ``split`` columns, or lists paths the index does not have.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.data.index import Record
    >>> root = Path(tempfile.mkdtemp())
    >>> idx = DatasetIndex(root, "imagefolder", Task.CLASSIFY, ["cat"], [Record(root / "a.png", label=0)])
    >>> _ = (root / "splits.csv").write_text("path,label,split\\na.png,cat,val\\n")
    >>> apply_split_manifest(idx, root / "splits.csv").records[0].split
    'val'
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "split"} <= set(reader.fieldnames):
            raise ConfigError(
                f"{path}: a split manifest needs the columns path,split (got {reader.fieldnames})"
            )
        wanted = {row["path"]: row["split"] for row in reader}
    where = {_key(r.path): i for i, r in enumerate(index.records)}
    resolved = {p: _key(path.parent / p) for p in wanted}
    unknown = [p for p, k in resolved.items() if k not in where]
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise ConfigError(
            f"{path}: {len(unknown)} paths (relative to the manifest's folder) are not in the dataset "
            f"{index.root}: {', '.join(unknown[:3])}{more}"
        )
    return index.with_splits({where[resolved[p]]: s for p, s in wanted.items()})
