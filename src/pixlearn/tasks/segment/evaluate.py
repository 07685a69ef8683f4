"""Score a trained segmenter on a mask dataset, and ``pixlearn eval`` of a segmentation run.

:func:`evaluate_split` runs a :class:`~pixlearn.tasks.segment.predict.Segmenter` over whole images
(tiled beyond the training size) and fills one confusion matrix (:mod:`pixlearn.tasks.segment.metrics`);
figures are in :mod:`pixlearn.tasks.segment.plots`, the report in :mod:`pixlearn.tasks.segment.report`;
:func:`evaluate_segment_run` is
``pixlearn eval RUN --data DIR`` for a segmentation run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.segment.metrics import IGNORE_INDEX, SegmentationScorer, confusion_matrix, scores_from_confusion

__all__ = ["SegmentEvaluation", "evaluate_split", "evaluate_segment_run", "classic_baselines", "segmentation_verdict",
           "IOU_MARGIN", "BASELINE_METHODS", "THRESHOLDS", "ThresholdChoice", "choose_threshold", "TTA_CHOICES", "TtaChoice",
           "choose_tta"]

#: A segmenter within half an IoU point of a baseline's mean IoU does not clearly beat it.
IOU_MARGIN = 0.005
#: The classical segmenters a trained network is compared with (see :mod:`pixlearn.tasks.segment.classic`).
BASELINE_METHODS = ("otsu", "adaptive_threshold", "kmeans", "watershed")


#: The decision thresholds of a binary segmenter that :func:`choose_threshold` tries (0.5 is the sigmoid's own).
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
#: The test-time augmentations ``train.tta: auto`` chooses from on val (:func:`choose_tta`), the cheapest first.
TTA_CHOICES = ("none", "transpose")
#: The score a monitored metric is (val_loss: mean IoU, the headline score).
_MONITOR_SCORE = {"val_miou": "mean_iou", "val_dice": "mean_dice", "val_pixel_accuracy": "pixel_accuracy", "val_loss": "mean_iou"}
_SCORE_NAMES = {"mean_iou": "mean IoU", "mean_dice": "mean Dice", "pixel_accuracy": "pixel accuracy"}


@dataclass
class SegmentEvaluation:
    """Scores of one split, a few examples for the overlay figure, and the files that could not be read."""

    split: str
    metrics: dict[str, Any]
    examples: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float | None]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _class_map(index: Any, classes: Sequence[str]) -> np.ndarray | None:
    """Dataset class id -> model class id when the names differ in order (None when they agree)."""
    names = [str(c) for c in index.classes]
    if names == list(classes):
        return None
    if len(names) == len(classes) and all(n.isdigit() for n in names):
        return None  # unnamed classes ("0", "1"...): ids are taken as they are
    missing = [n for n in names if n not in classes]
    if missing:
        raise ConfigError(f"{index.root}: classes {missing} are unknown to the model (it knows {list(classes)}); score it on data with its classes")
    lut = np.arange(256, dtype=np.int64)
    for k, n in enumerate(names):
        lut[k] = list(classes).index(n)
    return lut


def _ignore_index(index: Any) -> int:
    """The dataset's ignore label (255 unless its metadata names another)."""
    ignore = index.meta.get("ignore_index", IGNORE_INDEX)
    return IGNORE_INDEX if ignore is None else int(ignore)


def _truths(index: Any, indices: Sequence[int], classes: Sequence[str], *, bar: tuple[Any, Any],
            errors: dict[str, str]) -> Iterator[tuple[int, Any, np.ndarray]]:
    """``(i, sample, true mask)`` of each readable image of ``indices``, the mask in the model's class ids (the ignore
    label kept); an unreadable image goes to ``errors`` (path -> reason) and is passed over. Advances ``bar``."""
    from pixlearn._core.errors import PixlearnError

    lut = _class_map(index, classes)
    ignore = _ignore_index(index)
    progress, task = bar
    for i in indices:
        try:
            sample = index.load(i)
        except (PixlearnError, OSError) as exc:
            errors[str(index.records[i].path)] = f"{type(exc).__name__}: {exc}"
            progress.advance(task)
            continue
        true = np.asarray(sample.mask).astype(np.int64)
        if lut is not None:
            true = np.where(true == ignore, true, lut[np.clip(true, 0, 255)])
        yield i, sample, true
        progress.advance(task)


def evaluate_split(
    seg: Any,
    index: Any,
    indices: Sequence[int],
    *,
    split: str,
    source: str = "",
    examples: int = 4,
    progress: bool | None = None,
) -> SegmentEvaluation:
    """Segment every image of ``indices`` whole and score the masks (one confusion matrix over all pixels).

    Parameters
    ----------
    seg : Segmenter
    index : DatasetIndex
        A mask dataset; its class names are matched to the model's by name.
    split : str
        The name recorded with the scores (``val``, ``test``...).
    examples : int, default 4
        How many (image, truth, prediction) triples to keep for :func:`plot_overlays`.
    """
    from pixlearn.tasks.segment.predict import _progress

    classes = list(seg.classes)
    scorer = SegmentationScorer(num_classes=len(classes), classes=classes, ignore_index=_ignore_index(index))
    ev = SegmentEvaluation(split=split, metrics={})
    t0 = time.perf_counter()
    bar, task = _progress(progress, len(indices), f"scoring {split}")
    with bar:
        for i, sample, true in _truths(index, indices, classes, bar=(bar, task), errors=ev.errors):
            pred = seg.predict(sample.image)
            cm = confusion_matrix(pred, true, num_classes=len(classes), ignore_index=scorer.ignore_index)
            scorer.cm += cm
            scorer.images += 1
            if len(ev.examples) < examples:
                ev.examples.append((str(index.records[i].path), sample.image, true, pred, scores_from_confusion(cm)["mean_iou"]))
    ev.seconds = time.perf_counter() - t0
    ev.metrics = {"split": split, "source": source, **scorer.scores()}
    if ev.errors:
        ev.metrics["skipped"] = len(ev.errors)
    return ev


@dataclass
class ThresholdChoice:
    """The decision threshold a binary segmenter keeps, and the validation scores it was chosen by."""

    value: float
    score: str
    scores: dict[float, float]
    images: int

    def to_dict(self) -> dict[str, Any]:
        at_half = self.scores.get(0.5)
        return {"value": self.value, "chosen_on": "val", "score": self.score, "images": self.images,
                "at_0.5": at_half, "at_value": self.scores.get(self.value), "scores": {f"{t:g}": v for t, v in self.scores.items()}}

    def sentence(self) -> str:
        at_half, at_value = self.scores.get(0.5), self.scores.get(self.value)
        if self.value == 0.5 or at_half is None or at_value is None:
            return f"decision threshold 0.5 (the sigmoid's own; no other of {THRESHOLDS[0]:g}..{THRESHOLDS[-1]:g} scored higher on val)"
        return (f"decision threshold {self.value:g}, chosen on val ({self.images} images): {_SCORE_NAMES.get(self.score, self.score)} "
                f"{at_value:.4f} against {at_half:.4f} at 0.5")


def choose_threshold(seg: Any, index: Any, indices: Sequence[int], *, monitor: str = "val_miou",
                     candidates: Sequence[float] = THRESHOLDS, progress: bool | None = None) -> ThresholdChoice | None:
    """The foreground-probability threshold of a binary segmenter that scores best on ``indices`` (the val split).

    A sigmoid output's 0.5 is right for pixel accuracy on balanced classes; mean IoU and Dice over a thin or
    rare class (membranes, vessels, defects) are often higher with another cut. As scikit-learn's
    ``TunedThresholdClassifierCV`` does for classifiers, the cut is chosen on held-out data -- the run's val
    images, never its test images -- by the monitored score (``val_loss``: mean IoU); a tie keeps the
    candidate nearest 0.5. The probabilities are the segmenter's own (its tiling and test-time augmentation).

    Returns
    -------
    ThresholdChoice or None
        None for a multi-class segmenter or when no val image could be read.

    Examples
    --------
    >>> class Seg:  # probability 0.7 on the true foreground, 0.57 on the background: a cut at 0.5 calls it all foreground
    ...     classes, binary = ["bg", "fg"], True
    ...     def predict_proba(self, image):
    ...         p = np.where(image[..., 0] > 0, 0.7, 0.57).astype(np.float32)
    ...         return np.stack([1 - p, p])
    >>> class Index:
    ...     classes, meta = ["bg", "fg"], {}
    ...     def load(self, i):
    ...         mask = np.tile(np.array([0, 1], np.uint8), (4, 2))
    ...         return type("S", (), {"image": np.repeat(mask[..., None] * 255, 3, axis=2), "mask": mask})()
    >>> c = choose_threshold(Seg(), Index(), [0, 1])
    >>> c.value, c.scores[0.5], c.scores[c.value]  # the nearest cut to 0.5 of those that separate them
    (0.6, 0.25, 1.0)
    """
    from pixlearn.tasks.segment.predict import _progress

    if not getattr(seg, "binary", False) or not indices:
        return None
    ignore = _ignore_index(index)
    cuts = sorted({round(float(t), 4) for t in candidates})
    cms = {t: np.zeros((2, 2), np.int64) for t in cuts}
    images = 0
    bar, task = _progress(progress, len(indices), "choosing the threshold on val")
    with bar:
        for _, sample, true in _truths(index, indices, list(seg.classes), bar=(bar, task), errors={}):
            keep = true != ignore
            fg = np.asarray(seg.predict_proba(sample.image))[1][keep]
            t_fg = (true[keep] == 1).astype(np.int64) * 2
            for t in cuts:
                cms[t] += np.bincount(t_fg + (fg > t), minlength=4).reshape(2, 2)
            images += 1
    if not images:
        return None
    score = _MONITOR_SCORE.get(monitor, "mean_iou")
    scores = {t: float(scores_from_confusion(cms[t])[score]) for t in cuts}
    best = max(scores.values())
    value = min((t for t in cuts if scores[t] >= best - 1e-12), key=lambda t: (abs(t - 0.5), t))
    return ThresholdChoice(value=value, score=score, scores=scores, images=images)


@dataclass
class TtaChoice:
    """The test-time augmentation a segmenter keeps, and the validation score of each candidate it was chosen from."""

    value: str
    score: str
    scores: dict[str, float]
    images: int
    #: A binary segmenter's decision threshold under each candidate (chosen with it, or the fixed one).
    thresholds: dict[str, ThresholdChoice] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "chosen_on": "val", "score": self.score, "images": self.images, "scores": dict(self.scores)}

    def sentence(self) -> str:
        from pixlearn._core.tta import tta_views

        def passes(mode: str) -> str:
            n = len(tta_views(mode))
            return f"{n} pass{'es' if n > 1 else ''} per tile"

        name = _SCORE_NAMES.get(self.score, self.score)
        others = ", ".join(f"{m} {v:.4f} ({passes(m)})" for m, v in self.scores.items() if m != self.value)
        if self.value == "none":
            return f"no test-time augmentation, chosen on val ({self.images} images): {name} {self.scores['none']:.4f} against {others}"
        return f"test-time augmentation {self.value} ({passes(self.value)}), chosen on val ({self.images} images): {name} {self.scores[self.value]:.4f} against {others}"


def choose_tta(seg: Any, index: Any, indices: Sequence[int], *, monitor: str = "val_miou", candidates: Sequence[str] = TTA_CHOICES,
               threshold: float | None = None, progress: bool | None = None) -> TtaChoice | None:
    """The test-time augmentation (:func:`pixlearn._core.tta.tta_views`) of ``candidates`` that scores best on ``indices`` (val).

    Each candidate segments the val images whole; a binary segmenter's decision threshold is chosen with each
    (:func:`choose_threshold`; ``threshold`` fixes it instead), so the two choices are made together. The best
    monitored score wins and a tie keeps the cheaper candidate (the earlier in ``candidates``). On ISBI 2012 the
    transposed view of a network trained on mirrored crops raised held-out mean IoU by 0.003-0.007 (val: 0.001-0.006)
    in each of 12 ten-minute runs, for twice the prediction time. ``seg.tta`` is left at the chosen value.

    Returns
    -------
    TtaChoice or None
        None when no val image could be read (``seg.tta`` is then as it was).

    Examples
    --------
    >>> class Seg:  # a "network" that sees only rows: the transposed view adds what it misses
    ...     classes, binary, tta = ["bg", "fg"], True, "none"
    ...     def predict_proba(self, image):
    ...         x = image[..., 0] > 0
    ...         p = x.mean(axis=1, keepdims=True) * np.ones_like(x, float)
    ...         if self.tta == "transpose":
    ...             p = (p + x.mean(axis=0, keepdims=True)) / 2
    ...         return np.stack([1 - p, p])
    >>> class Index:
    ...     classes, meta = ["bg", "fg"], {}
    ...     def load(self, i):
    ...         mask = np.zeros((4, 4), np.uint8); mask[1:3, 1:3] = 1
    ...         return type("S", (), {"image": np.repeat(mask[..., None] * 255, 3, axis=2), "mask": mask})()
    >>> seg = Seg()
    >>> c = choose_tta(seg, Index(), [0])
    >>> c.value, seg.tta, c.scores["transpose"] > c.scores["none"]
    ('transpose', 'transpose', True)
    """
    score = _MONITOR_SCORE.get(monitor, "mean_iou")
    before = seg.tta
    scores: dict[str, float] = {}
    thresholds: dict[str, ThresholdChoice] = {}
    images = 0
    for mode in candidates:
        seg.tta = mode
        if getattr(seg, "binary", False):
            cuts = THRESHOLDS if threshold is None else (float(threshold),)
            ch = choose_threshold(seg, index, indices, monitor=monitor, candidates=cuts, progress=progress)
            if ch is None:
                break
            scores[mode], thresholds[mode], images = ch.scores[ch.value], ch, ch.images
        else:
            ev = evaluate_split(seg, index, indices, split=f"val, tta {mode}", examples=0, progress=progress)
            if not ev.metrics.get("n"):
                break
            scores[mode], images = float(ev.metrics[score]), int(ev.metrics["n"])
    if len(scores) < len(candidates) or not scores:
        seg.tta = before
        return None
    best = max(scores.values())
    seg.tta = next(m for m in candidates if scores[m] >= best - 1e-12)
    return TtaChoice(value=seg.tta, score=score, scores=scores, images=images, thresholds=thresholds)


def _spread(indices: Sequence[int], k: int) -> list[int]:
    """At most ``k`` of ``indices``, evenly spaced (all of them when there are few)."""
    indices = list(indices)
    if len(indices) <= k:
        return indices
    return [indices[round(j * (len(indices) - 1) / (k - 1))] for j in range(k)] if k > 1 else indices[:1]


def classic_baselines(
    index: Any,
    train: Sequence[int],
    held_out: Sequence[int],
    *,
    split: str,
    classes: Sequence[str],
    methods: Sequence[str] = BASELINE_METHODS,
    max_train_images: int = 4,
    max_pixels: int = 512 * 512,
) -> list[dict[str, Any]]:
    """Fit each classical segmenter on training images and score it on the held-out images a network is scored on.

    Each method learns its category -> class map and options on at most ``max_train_images`` training images
    (evenly spaced; :func:`~pixlearn.tasks.segment.classic.fit_classic_segmenter`), then segments every image of
    ``held_out`` and is scored like the network: one confusion matrix over all their pixels, with the model's
    class list and ignore label. Images larger than ``max_pixels`` are fitted and scored on a nearest-neighbour
    downscale (the masks too), which keeps the comparison cheap on large images.

    Returns
    -------
    list of dict
        One entry per method, best mean IoU first: the scores plus ``method``, ``params``, ``split``, ``n``,
        ``train_images``, ``fit_seconds``, ``predict_seconds`` and ``description``.
    """
    from pixlearn._core.errors import PixlearnError
    from pixlearn.tasks.segment.classic import CLASSIC_SEGMENTERS, fit_classic_segmenter

    classes = [str(c) for c in classes]
    lut = _class_map(index, classes)
    ignore = _ignore_index(index)

    def load(i: int) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            sample = index.load(i)
        except (PixlearnError, OSError):
            return None  # evaluate_split reports unreadable files
        image, true = np.asarray(sample.image), np.asarray(sample.mask).astype(np.int64)
        if lut is not None:
            true = np.where(true == ignore, true, lut[np.clip(true, 0, 255)])
        h, w = true.shape[:2]
        if h * w > max_pixels:
            f = (max_pixels / (h * w)) ** 0.5
            rows = (np.arange(max(1, int(h * f))) / f).astype(np.int64)
            cols = (np.arange(max(1, int(w * f))) / f).astype(np.int64)
            image, true = image[rows][:, cols], true[rows][:, cols]
        return np.ascontiguousarray(image), np.ascontiguousarray(true)

    fit_on = [p for p in (load(i) for i in _spread(train, max_train_images)) if p is not None]
    scored = [p for p in (load(i) for i in held_out) if p is not None]
    if not fit_on or not scored:
        return []
    out = []
    for method in methods:
        seg = fit_classic_segmenter(method, fit_on, num_classes=len(classes), ignore_index=ignore)
        scorer = SegmentationScorer(num_classes=len(classes), classes=classes, ignore_index=ignore)
        t0 = time.perf_counter()
        for image, true in scored:
            scorer.update(seg.predict(image), true)
        out.append({
            "method": method, **scorer.scores(), "params": seg.params, "split": split, "n": len(scored), "train_images": len(fit_on),
            "fit_seconds": round(seg.fit_seconds, 3), "predict_seconds": round(time.perf_counter() - t0, 3),
            "description": CLASSIC_SEGMENTERS[method].doc,
        })
    out.sort(key=lambda r: -(r.get("mean_iou") if r.get("mean_iou") is not None else -1.0))
    return out


def segmentation_verdict(metrics: dict[str, Any], baselines: Sequence[dict[str, Any]]) -> Any:
    """The network's mean IoU against the best classical segmenter on the same images (None without a scored baseline).

    Examples
    --------
    >>> m = {"split": "test", "n": 6, "mean_iou": 0.62}
    >>> v = segmentation_verdict(m, [{"method": "otsu", "mean_iou": 0.70}])
    >>> v.beats, v.sentence().split(";")[0]
    (False, 'Warning: on the test split (n=6), mean IoU 0.620 does not beat the best classical segmenter, otsu (0.700), worse by 0.080. The model is not useful as trained -- try a longer --minutes budget, more data or --pretrained.')
    """
    from pixlearn.engine.verdict import Verdict

    scored = [b for b in baselines if isinstance(b.get("mean_iou"), (int, float))]
    if not scored:
        return None
    best = max(scored, key=lambda b: b["mean_iou"])
    return Verdict("mean IoU", str(metrics.get("split", "?")), metrics.get("mean_iou"),
                   {f"the best classical segmenter, {best['method'].replace('_', ' ')}": best["mean_iou"]},
                   higher_is_better=True, margin=IOU_MARGIN, n=metrics.get("n"), digits=3, key="mean_iou")


def _write_text(path: Path, text: str) -> Path:
    """Write through a temporary file in the same folder and ``os.replace`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _baseline_train(index: Any, by_split: dict[str | None, list[int]], paths: list[str], *, name: str, scored: Sequence[int],
                    held: dict[str, Any]) -> tuple[list[int], str]:
    """The images the classical baselines are fitted on when a run is scored on ``scored``, and where they come from."""
    if name != "train" and by_split.get("train"):
        return list(by_split["train"]), f"{index.root}: its train split"
    files = held.get("files") or {}
    if any(files.values()):
        out = {str(p) for group in files.values() for p in group or ()}
        train = [i for i, p in enumerate(paths) if p not in out]
        if train:
            return train, f"{index.root}: the run's own training images (not held out in its manifest)"
    return list(scored), f"{index.root}: the scored images (no training images to fit them on)"


def evaluate_segment_run(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    split: str = "auto",
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    progress: bool | None = None,
    baselines: bool = True,
) -> dict[str, Any]:
    """Score a segmentation run folder's network on a mask dataset (``pixlearn eval RUN --data DIR``), beside the
    classical segmenters on the same images.

    Parameters
    ----------
    split : {"auto", "test", "val", "train", "all"}, default "auto"
        auto: DIR's test split if it has one, else its val split, else every image of DIR. When
        DIR is the data the run was trained on, auto scores the run's own held-out images (its
        test, else val split) as recorded in its manifest.
    out : path, optional
        Write ``metrics.json``, ``plots/overlays.png`` and ``report.html`` here.
    baselines : bool, default True
        Fit the classical segmenters (:func:`classic_baselines`) and score them on the same images, and judge the
        network against the best of them (``verdict``, :func:`segmentation_verdict`). They are fitted on DIR's
        train split, else, when DIR is the run's own data, on the images the run did not hold out, else on the
        scored images themselves (said in ``fitted_on`` and a report note: a strict verdict).

    Returns
    -------
    dict
        The scores with ``split``, ``n`` and ``source``; ``classic_baselines`` and ``verdict`` with ``baselines``.
    """
    import json

    from pixlearn.tasks.segment.data import read_segment_dataset
    from pixlearn.tasks.segment.predict import load_segmenter

    seg = load_segmenter(run, device=device)
    index = read_segment_dataset(Path(data).resolve())  # absolute paths, as the run recorded them
    run_dir = Path(run)
    manifest = {}
    if (run_dir / "manifest.json").is_file():
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    held = (manifest.get("data") or {}).get("splits") or {}
    same_data = (manifest.get("data") or {}).get("fingerprint") == index.fingerprint()
    paths = [str(r.path) for r in index.records]
    by_split: dict[str | None, list[int]] = {}
    for i, r in enumerate(index.records):
        by_split.setdefault(r.split, []).append(i)
    if split == "auto":
        if by_split.get("test"):
            name, idx, source = "test", by_split["test"], f"{index.root}: its test split"
        elif same_data and any((held.get("files") or {}).values()):
            files = held["files"]
            name = next(k for k in [k for k in files if k != "val"] + ["val"] if files.get(k))
            wanted = set(files[name])
            idx = [i for i, p in enumerate(paths) if p in wanted]
            source = f"{index.root}: the run's own {name} images (from its manifest; never trained on)"
        elif by_split.get("val"):
            name, idx, source = "val", by_split["val"], f"{index.root}: its val split"
        else:
            name, idx, source = "all", list(range(len(paths))), f"{index.root}: every image"
    elif split == "all":
        name, idx, source = "all", list(range(len(paths))), f"{index.root}: every image"
    elif split in ("train", "val", "test"):
        if not by_split.get(split):
            raise ConfigError(f"{index.root}: no {split}/ split; it has {', '.join(sorted(str(s) for s in by_split))}")
        name, idx, source = split, by_split[split], f"{index.root}: its {split} split"
    else:
        raise ConfigError(f"split must be auto, test, val, train or all, got {split!r}")
    if not idx:
        raise ConfigError(f"{index.root}: no images to score in split {name!r}")
    ev = evaluate_split(seg, index, idx, split=name, source=source, progress=progress)
    result = dict(ev.metrics)
    result.update(task="segment", run=str(run_dir), data=str(index.root))
    notes: list[str] = []
    if baselines:  # the classical segmenters on the same images, and the network's verdict against the best of them
        fit_idx, fitted_on = _baseline_train(index, by_split, paths, name=name, scored=idx, held=held if same_data else {})
        rows = classic_baselines(index, fit_idx, idx, split=name, classes=seg.classes)
        for row in rows:
            row["fitted_on"] = fitted_on
        verdict = segmentation_verdict(ev.metrics, rows)
        result["classic_baselines"] = rows
        if verdict is not None:
            result["verdict"] = verdict.to_dict()
        if fit_idx == list(idx):
            notes.append(f"The classical baselines were fitted on the scored images themselves ({fitted_on}): "
                         "optimistic for them, so the verdict is a strict one.")
    if out is not None:
        from pixlearn.tasks.segment.plots import plot_overlays
        from pixlearn.tasks.segment.report import write_segment_report

        out_dir = Path(out)
        plots = []
        if ev.examples:
            plots.append((plot_overlays(ev.examples, out_dir / "plots" / "overlays.png", classes=seg.classes, split=name),
                          f"{name} images: true (middle) and predicted (right) masks"))
        _write_text(out_dir / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
        write_segment_report(
            out_dir / "report.html", title=f"pixlearn eval: {run_dir.name} on {Path(index.root).name}", scores=[ev.metrics],
            splits=[{"split": name, "images": len(idx), "source": source, "used_for": "these scores"}],
            details={"run": str(run_dir.resolve()), "data": str(Path(index.root).resolve()), "seconds": round(ev.seconds, 2)}, plots=plots,
            baselines=result.get("classic_baselines") or (), verdict=result.get("verdict"), notes=notes,
        )
    return result
