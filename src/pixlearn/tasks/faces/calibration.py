"""Calibrating the match threshold on labelled pairs: ROC AUC, equal error rate, and the threshold that makes the
fewest mistakes.

Input is pairs of embeddings labelled same person / different people, or embeddings grouped by person (every pair
among them is used). The threshold chosen is the one that minimises FAR + FRR on those pairs (FAR: different
people accepted; FRR: the same person refused), the middle of the best interval when several tie. With few
people this is a rough estimate: the :class:`Calibration` records how many pairs it rests on.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError

__all__ = ["Calibration", "calibrate", "pairs_from_groups", "roc_auc", "MAX_PAIRS"]

#: Most pairs a calibration uses (all pairs of 3,000 faces); past it, pairs are sampled with a fixed seed.
MAX_PAIRS = 4_500_000
#: Pairs whose distances are computed at once (about 64 MiB of differences for 128-d vectors).
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and how well it separates the pairs it was computed on.

    Attributes
    ----------
    threshold : float
        Euclidean distance: at or below it, two faces are the same person.
    auc : float
        ROC AUC of ``-distance`` as a same-person score (1.0: every same pair closer than every different pair).
    eer : float
        Equal error rate: where FAR and FRR cross.
    far, frr : float
        False accept rate and false reject rate at ``threshold``.
    n_pairs, n_same, n_different : int
        Pairs used, of the same person and of different people.
    source : str
        What it was calibrated on (a folder, "pairs", "groups").
    people, faces : int
        People and faces behind the pairs (0 when calibrated on bare pairs).
    created : str
        ISO time of the calibration (UTC).
    """

    threshold: float
    auc: float
    eer: float
    far: float
    frr: float
    n_pairs: int
    n_same: int
    n_different: int
    source: str = "pairs"
    people: int = 0
    faces: int = 0
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def roc_auc(same_d: np.ndarray, diff_d: np.ndarray) -> float:
    """ROC AUC of "smaller distance means the same person" (the Mann-Whitney statistic, ties count half).

    >>> roc_auc(np.array([0.1, 0.2]), np.array([0.5, 0.9]))
    1.0
    >>> roc_auc(np.array([0.5]), np.array([0.5]))
    0.5
    """
    scores = np.concatenate([-np.asarray(same_d, np.float64), -np.asarray(diff_d, np.float64)])
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n1, n0 = len(same_d), len(diff_d)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _rates(same_d: np.ndarray, diff_d: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, d = np.sort(same_d), np.sort(diff_d)
    far = np.searchsorted(d, t, side="right") / len(d)  # different people at or below t: accepted
    frr = 1.0 - np.searchsorted(s, t, side="right") / len(s)  # same person above t: refused
    return far, frr


def _from_distances(same_d: np.ndarray, diff_d: np.ndarray, **info: Any) -> Calibration:
    same_d = np.asarray(same_d, np.float64)
    diff_d = np.asarray(diff_d, np.float64)
    if len(same_d) == 0 or len(diff_d) == 0:
        raise ConfigError(f"calibration needs pairs of the same person and of different people; got {len(same_d)} "
                          f"same and {len(diff_d)} different (give at least two people, one with two faces or more)")
    if not (np.isfinite(same_d).all() and np.isfinite(diff_d).all()):
        raise ConfigError("calibration distances must be finite numbers")
    values = np.unique(np.concatenate([same_d, diff_d]))
    cands = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    far, frr = _rates(same_d, diff_d, cands)
    total = far + frr
    best = np.flatnonzero(np.isclose(total, total.min(), rtol=0, atol=1e-12))
    # several equally good thresholds: the middle of the first run of them
    end = 0
    while end + 1 < len(best) and best[end + 1] == best[end] + 1:
        end += 1
    threshold = float((cands[best[0]] + cands[best[end]]) / 2)
    t_far, t_frr = _rates(same_d, diff_d, np.array([threshold]))
    k = int(np.argmin(np.abs(far - frr)))
    eer = float((far[k] + frr[k]) / 2)
    return Calibration(threshold=round(threshold, 6), auc=roc_auc(same_d, diff_d), eer=eer, far=float(t_far[0]),
                       frr=float(t_frr[0]), n_pairs=int(len(same_d) + len(diff_d)), n_same=int(len(same_d)),
                       n_different=int(len(diff_d)), **info)


def pairs_from_groups(groups: Mapping[str, Sequence[np.ndarray] | np.ndarray], *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The distances of every same-person pair and every different-people pair among ``groups`` (name -> vectors).

    At most :data:`MAX_PAIRS` pairs: past it, a seeded sample of them.

    >>> same, diff = pairs_from_groups({"a": [np.zeros(2), np.ones(2)], "b": [np.full(2, 3.0)]})
    >>> len(same), len(diff)
    (1, 2)
    """
    names: list[int] = []
    vecs: list[np.ndarray] = []
    for k, (name, group) in enumerate(groups.items()):
        arr = np.asarray(group, np.float64)
        if arr.size == 0:
            continue
        arr = arr.reshape(len(arr), -1)
        vecs.append(arr)
        names.extend([k] * len(arr))
    if not vecs:
        raise ConfigError("calibration needs faces; the groups are empty")
    if len({v.shape[1] for v in vecs}) != 1:
        raise ConfigError("calibration vectors must all have the same length")
    x = np.concatenate(vecs)
    label = np.asarray(names)
    n = len(x)
    i, j = np.triu_indices(n, k=1)
    if len(i) > MAX_PAIRS:
        pick = np.random.default_rng(seed).choice(len(i), MAX_PAIRS, replace=False)
        i, j = i[pick], j[pick]
    d = np.empty(len(i), np.float64)
    for s in range(0, len(i), _CHUNK):  # in chunks: all 4.5 million differences at once would take gigabytes
        d[s:s + _CHUNK] = np.sqrt(((x[i[s:s + _CHUNK]] - x[j[s:s + _CHUNK]]) ** 2).sum(axis=1))
    same = label[i] == label[j]
    return d[same], d[~same]


def calibrate(data: Any, *, source: str | None = None, detector: str = "hog", upsample: int = 1,
              progress: bool | None = None) -> Calibration:
    """Choose the match threshold from labelled data and report how well it separates.

    Parameters
    ----------
    data : path, sequence of (vector_a, vector_b, same) or of (distance, same), or mapping of name to vectors
        A folder with one subfolder of photos per person (each photo with one face is embedded with ``detector`` and
        ``upsample``; every pair of faces is used), labelled pairs of 128-d embeddings (``same``: the same person),
        pairs already reduced to their distance, or embeddings grouped by person (every pair among them is used; see
        :func:`pairs_from_groups`). To store the result in a gallery, use
        :meth:`pixlearn.tasks.faces.gallery.Gallery.calibrate`.
    source : str, optional
        What the data is, recorded in the result (default: the folder and its counts, ``"pairs"`` or ``"groups"``).
    detector, upsample, progress
        For a folder: the face detector, its upsampling (see :func:`~pixlearn.ops.faces.detect_faces`), and a
        progress bar on stderr.

    Returns
    -------
    Calibration

    Raises
    ------
    ConfigError
        No same pair, no different pair, vectors of unequal length, or malformed pairs.

    Examples
    --------
    >>> cal = calibrate([(0.3, True), (0.4, True), (0.8, False), (0.9, False)])
    >>> cal.threshold, cal.auc, cal.eer, cal.far, cal.frr
    (0.6, 1.0, 0.0, 0.0, 0.0)
    """
    if isinstance(data, (str, os.PathLike)):
        from pixlearn.tasks.faces.gallery import Gallery, MemoryGalleryStore

        return Gallery(MemoryGalleryStore(), detector=detector, upsample=upsample).calibrate(data, progress=progress)
    if isinstance(data, Mapping):
        groups = {str(k): v for k, v in data.items()}
        same_d, diff_d = pairs_from_groups(groups)
        faces = sum(len(np.asarray(v).reshape(-1, np.asarray(v).shape[-1])) for v in groups.values() if np.asarray(v).size)
        return _from_distances(same_d, diff_d, source=source or "groups", people=sum(1 for v in groups.values() if np.asarray(v).size),
                               faces=int(faces))
    pairs = list(data)
    if len(pairs) > MAX_PAIRS:
        raise ConfigError(f"calibration takes at most {MAX_PAIRS:,} pairs, got {len(pairs):,}")
    same_d: list[float] = []
    diff_d: list[float] = []
    for k, pair in enumerate(pairs):
        try:
            if len(pair) == 3:
                a, b, same = pair
                va, vb = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
                if va.shape != vb.shape or va.size == 0:
                    raise ValueError("vectors of different lengths")
                dist = float(np.sqrt(((va - vb) ** 2).sum()))
            elif len(pair) == 2:
                dist, same = float(pair[0]), pair[1]
            else:
                raise ValueError(f"{len(pair)} items")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"calibration pair {k} must be (vector_a, vector_b, same) or (distance, same): {exc}") from None
        if not math.isfinite(dist) or dist < 0:
            raise ConfigError(f"calibration pair {k}: distance {dist} is not a finite number >= 0")
        (same_d if bool(same) else diff_d).append(dist)
    return _from_distances(np.array(same_d), np.array(diff_d), source=source or "pairs")
