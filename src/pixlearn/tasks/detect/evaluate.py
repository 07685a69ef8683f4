"""Score a detector on annotated images with COCO's metrics, and ``pixlearn eval RUN --data DIR`` for a detection run.

:func:`evaluate_detector` runs any :class:`~pixlearn.tasks.detect.detections.Detector` over ``(name, image, truth)``
samples and scores it with :class:`~pixlearn.tasks.detect.metrics.DetectionEvaluator` (pycocotools' numbers), keeping
a few images for the report: the first ones, those with the most missed objects and those holding the
highest-scoring false positives. :func:`evaluate_detect_run` picks the split of a COCO / YOLO / VOC dataset, loads the
run's detector (:func:`pixlearn.tasks.detect.predict.load_detector`) and writes ``metrics.json``, ``plots/`` and
``report.html`` (:mod:`pixlearn.tasks.detect.report`).
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.detect.detections import Detections, Detector, GroundTruth
from pixlearn.tasks.detect.metrics import DetectionEvaluator, GroundTruthWithAreas

__all__ = ["DetectEvaluation", "evaluate_detector", "evaluate_detect_run", "dataset_samples", "ground_truth",
           "EVAL_SCORE", "DETECT_SPLITS"]

#: The score threshold detections are asked for when scoring: COCO's mAP sweeps every score, so keep (nearly) all.
EVAL_SCORE = 0.001
#: What ``--split`` may be for a detection run.
DETECT_SPLITS = ("auto", "test", "val", "train", "holdout", "all")
#: The longest side of the images kept for the report (they are drawn, not scored, at this size).
_KEEP_SIDE = 800


@dataclass
class DetectEvaluation:
    """A detector's scores on one split, the per-image records and a few images for the report.

    Attributes
    ----------
    split : str
        The split every number was measured on (``test``, ``val``, ``all``...).
    metrics : dict
        :meth:`DetectionEvaluator.compute` plus ``split``, ``source``, ``detector``, ``masks`` and ``skipped``.
    records : list of dict
        One per image (:attr:`DetectionEvaluator.records`): misses and false positives at ``score_threshold``.
    confusion : dict
        ``metrics["confusion_matrix"]``: rows true, columns predicted, background last.
    counts : dict
        ``images``, ``objects``, ``detections`` (all scores), ``skipped`` (unreadable images).
    examples, worst_misses, false_positives : list of dict
        Images kept for the report: ``{"name", "image", "truth", "detections", "caption", "highlight_truth",
        "miss_boxes", "fp_boxes", "score_threshold"}`` (the image shrunk to 800 px at most, boxes and masks with it;
        detections at or above ``score_threshold``; ``miss_boxes`` and ``fp_boxes`` are (box, caption) pairs on the
        kept image).
    errors : dict
        Image name -> why it could not be scored.
    """

    split: str
    metrics: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    confusion: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    worst_misses: list[dict[str, Any]] = field(default_factory=list)
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    source: str = ""
    masks: bool = False
    score_threshold: float = 0.25
    seconds: float = 0.0


def ground_truth(sample: Any, class_names: Sequence[str]) -> GroundTruth:
    """The :class:`GroundTruth` of a loaded detection :class:`~pixlearn._core.types.Sample` (crowd flags from a COCO
    reader's ``meta["iscrowd"]``; instance masks when the sample has them; a :class:`GroundTruthWithAreas` when the
    annotation file states object areas, ``meta["area"]``, so that small / medium / large are pycocotools' own).

    Examples
    --------
    >>> from pixlearn._core.types import Boxes, BoxFormat, Sample
    >>> s = Sample(image=np.zeros((8, 8, 3), np.uint8), boxes=Boxes(np.array([[1, 1, 4, 4]]), BoxFormat.XYXY, (8, 8)),
    ...            box_labels=np.array([0]), meta={"iscrowd": [1]})
    >>> t = ground_truth(s, ["cat"])
    >>> t.boxes.tolist(), t.iscrowd.tolist(), t.image_size
    ([[1.0, 1.0, 4.0, 4.0]], [True], (8, 8))
    """
    h, w = sample.image.shape[:2]
    boxes = np.zeros((0, 4), np.float32) if sample.boxes is None else sample.boxes.to("xyxy").data
    labels = np.zeros(len(boxes), np.int64) if sample.box_labels is None else np.asarray(sample.box_labels, np.int64)
    crowd = (sample.meta or {}).get("iscrowd")
    crowd = np.asarray(crowd, bool) if crowd is not None and len(crowd) == len(boxes) else None
    masks = sample.masks if sample.masks is not None and len(sample.masks) == len(boxes) else None
    areas = (sample.meta or {}).get("area")
    if areas is not None and len(areas) == len(boxes) and any(a is not None for a in areas):
        return GroundTruthWithAreas(boxes, labels, tuple(class_names), (h, w), masks=masks, iscrowd=crowd, areas=areas)
    return GroundTruth(boxes, labels, tuple(class_names), (h, w), masks=masks, iscrowd=crowd)


def dataset_samples(index: Any, indices: Sequence[int], *, errors: dict[str, str] | None = None) -> Iterator[tuple[str, np.ndarray, GroundTruth]]:
    """``(name, image, truth)`` of each record of ``index`` at ``indices``; a record that cannot be read is left out
    and described in ``errors`` (its name -> the reason) instead of stopping the evaluation."""
    from pixlearn._core.errors import PixlearnError

    root = Path(index.root)
    for i in indices:
        rec = index.records[i]
        try:
            name = str(Path(rec.path).relative_to(root if root.is_dir() else root.parent))
        except ValueError:
            name = Path(rec.path).name
        try:
            sample = index.load(i)
        except (PixlearnError, OSError) as exc:
            if errors is not None:
                errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        yield name, sample.image, ground_truth(sample, index.classes)


def _shrink(image: np.ndarray, truth: GroundTruth, det: Detections) -> tuple[np.ndarray, GroundTruth, Detections]:
    """The image at most :data:`_KEEP_SIDE` px on its longer side, with its boxes and masks (bounded memory)."""
    h, w = image.shape[:2]
    f = min(1.0, _KEEP_SIDE / max(h, w))
    if f >= 1.0:
        return image, truth, det
    import cv2

    nh, nw = max(1, round(h * f)), max(1, round(w * f))

    def masks(m: np.ndarray | None) -> np.ndarray | None:
        if m is None:
            return None
        if not len(m):
            return np.zeros((0, nh, nw), bool)
        return np.stack([cv2.resize(x.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0 for x in m])

    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    t = GroundTruth(truth.boxes * f, truth.labels, truth.class_names, (nh, nw), masks=masks(truth.masks), iscrowd=truth.iscrowd)
    d = Detections(det.boxes * f, det.scores, det.labels, det.class_names, masks(det.masks), dict(det.meta))
    return small, t, d


class _Keeper:
    """The ``k`` items with the largest keys seen so far (a bounded heap; ties keep the earlier image)."""

    def __init__(self, k: int) -> None:
        self.k, self.heap, self.count = k, [], 0

    def wants(self, key: tuple) -> bool:
        return self.k > 0 and (len(self.heap) < self.k or key > self.heap[0][0])

    def push(self, key: tuple, item: dict[str, Any]) -> None:
        self.count += 1
        entry = (key, -self.count, item)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        else:
            heapq.heappushpop(self.heap, entry)

    def items(self) -> list[dict[str, Any]]:
        return [e[2] for e in sorted(self.heap, key=lambda e: (e[0], e[1]), reverse=True)]


def _caption(rec: dict[str, Any]) -> str:
    parts = [f"{rec['true_positives']}/{rec['truths']} found"]
    if rec["misses"]:
        parts.append("missed: " + ", ".join(
            f"{m['class_name']}" + (f" (taken for {m['predicted_as']})" if m["predicted_as"] else "")
            + (f" (best score {m['best_score']:.2f})" if m.get("best_score") is not None else "") for m in rec["misses"][:4])
            + (" ..." if len(rec["misses"]) > 4 else ""))
    if rec["false_positives"]:
        fps = sorted(rec["false_positives"], key=lambda f: -f["score"])
        parts.append("false positives: " + ", ".join(f"{f['class_name']} {f['score']:.2f}" for f in fps[:4])
                     + (" ..." if len(fps) > 4 else ""))
    return "; ".join(parts)


def evaluate_detector(
    detector: Detector,
    samples: Iterable[tuple[str, np.ndarray, GroundTruth]],
    *,
    split: str,
    masks: bool = False,
    class_names: Sequence[str] | None = None,
    score: float = EVAL_SCORE,
    iou: float = 0.5,
    max_detections: int = 100,
    score_threshold: float = 0.25,
    batch: int = 4,
    keep: int = 4,
    total: int | None = None,
    progress: bool | None = None,
    source: str = "",
    errors: dict[str, str] | None = None,
) -> DetectEvaluation:
    """Detect objects in every sample and score them against its truth (pycocotools' COCO metrics).

    Parameters
    ----------
    detector : Detector
        Anything with ``predict(images, *, score, iou, max_detections)``; its classes are matched to the truth's by name.
    samples : iterable of (str, ndarray, GroundTruth)
        Image name, RGB uint8 (H, W, 3) image and its truth (e.g. :func:`dataset_samples`).
    split : str
        The name the scores are recorded under.
    masks : bool, default False
        Also score instance masks (the detector must return them and the truth must have them).
    class_names : sequence of str, optional
        The classes scored (default: the first truth's).
    score, iou, max_detections
        What the detector is asked for: a low ``score`` (0.001) so that COCO's AP sees the whole precision-recall
        curve; ``iou`` its NMS threshold; at most 100 detections per image, as COCO counts.
    score_threshold : float, default 0.25
        The score above which a detection counts in the confusion matrix, the misses and the false positives.
    batch : int, default 4
        Images per ``predict`` call.
    keep : int, default 4
        Images kept for the report in each group (first, worst misses, highest-scoring false positives).
    total : int, optional
        The number of samples, for the progress bar (default: ``len(samples)`` when it has one).
    progress : bool, optional
        A progress bar over images on stderr (default: when stderr is a terminal).
    errors : dict, optional
        Filled by the samples' producer with images it could not read (reported as ``skipped``).

    Returns
    -------
    DetectEvaluation

    Raises
    ------
    ConfigError
        No sample at all, or classes that cannot be matched (see :class:`DetectionEvaluator`).
    """
    from pixlearn.engine.progress import progress_bar

    if total is None and hasattr(samples, "__len__"):
        total = len(samples)  # type: ignore[arg-type]
    errors = {} if errors is None else errors
    evaluator: DetectionEvaluator | None = None
    first, worst, fps = _Keeper(keep), _Keeper(keep), _Keeper(keep)
    t0 = time.perf_counter()
    bar, task = progress_bar(progress, total or 0, f"scoring {split}")

    def flush(chunk: list[tuple[str, np.ndarray, GroundTruth]]) -> None:
        nonlocal evaluator
        if not chunk:
            return
        if evaluator is None:
            evaluator = DetectionEvaluator(class_names or chunk[0][2].class_names, masks=masks, score_threshold=score_threshold)
        preds = detector.predict([im for _, im, _ in chunk], score=score, iou=iou, max_detections=max_detections)
        if len(preds) != len(chunk):
            raise ConfigError(f"detector {getattr(detector, 'name', '?')!r} returned {len(preds)} results for {len(chunk)} images; "
                              "a Detector returns one Detections per image")
        evaluator.update(preds, [t for _, _, t in chunk], names=[n for n, _, _ in chunk])
        for (name, image, truth), pred, rec in zip(chunk, preds, evaluator.records[-len(chunk):], strict=True):
            keys = ((-rec["index"],), (len(rec["misses"]), -rec["true_positives"]),
                    (max((f["score"] for f in rec["false_positives"]), default=-1.0),))
            wanted = [k.wants(key) for k, key in zip((first, worst, fps), keys, strict=True)]
            wanted[1] = wanted[1] and bool(rec["misses"])
            wanted[2] = wanted[2] and bool(rec["false_positives"])
            if not any(wanted):
                continue
            shown = pred.filter(min_score=score_threshold)
            im, t, d = _shrink(image, truth, shown)
            f = im.shape[1] / image.shape[1]
            item = {"name": name, "image": im, "truth": t, "detections": d, "caption": _caption(rec),
                    "score_threshold": score_threshold, "highlight_truth": [m["truth_index"] for m in rec["misses"]],
                    "miss_boxes": [(np.asarray(m["box"]) * f, f"{m['class_name']}: " + (
                        f"taken for {m['predicted_as']}" if m["predicted_as"] else "missed"
                        + (f" (best score {m['best_score']:.2f})" if m.get("best_score") is not None else ""))) for m in rec["misses"]],
                    "fp_boxes": [(np.asarray(fp["box"]) * f, f"{fp['class_name']} {fp['score']:.2f}: "
                                  + ("background" if fp["kind"] == "background" else f"a {fp['true_class']}"))
                                 for fp in sorted(rec["false_positives"], key=lambda x: -x["score"])]}
            for keeper, key, want in zip((first, worst, fps), keys, wanted, strict=True):
                if want:
                    keeper.push(key, item)
        bar.advance(task, len(chunk))

    chunk: list[tuple[str, np.ndarray, GroundTruth]] = []
    with bar:
        for sample in samples:
            chunk.append(sample)
            if len(chunk) >= max(1, int(batch)):
                flush(chunk)
                chunk = []
        flush(chunk)
    if evaluator is None:
        why = f"; {len(errors)} could not be read, e.g. {next(iter(errors.items()))}" if errors else ""
        raise ConfigError(f"no image to score in split {split!r}{why}")
    metrics = evaluator.compute()
    seconds = time.perf_counter() - t0
    metrics.update(split=split, source=source, detector=str(getattr(detector, "name", type(detector).__name__)),
                   masks=bool(masks), skipped=len(errors), seconds=round(seconds, 2),
                   score=score, nms_iou=iou, max_detections=max_detections)
    return DetectEvaluation(
        split=split, metrics=metrics, records=evaluator.records, confusion=metrics["confusion_matrix"],
        counts={"images": metrics["n"], "objects": metrics["objects"], "detections": metrics["detections"], "skipped": len(errors)},
        examples=first.items(), worst_misses=worst.items(), false_positives=fps.items(), errors=dict(errors),
        source=source, masks=bool(masks), score_threshold=score_threshold, seconds=seconds,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _choose_split(index: Any, split: str, manifest: dict[str, Any]) -> tuple[str, list[int], str]:
    """(split name, record indices, where they come from) -- as ``pixlearn eval`` does it for every task."""
    from pixlearn._core.names import check_name

    split = check_name(str(split), DETECT_SPLITS, what="split")
    paths = [str(Path(r.path).resolve()) for r in index.records]
    by_split: dict[Any, list[int]] = {}
    for i, r in enumerate(index.records):
        by_split.setdefault(r.split, []).append(i)
    data = manifest.get("data") or {}
    same_data = bool(data) and data.get("fingerprint") == index.fingerprint()
    files = ((data.get("splits") or {}).get("files") or {}) if isinstance(data.get("splits"), dict) else {}
    root = index.root
    held = [k for k in files if k != "val" and files.get(k)] + (["val"] if files.get("val") else [])

    def own() -> tuple[str, list[int], str] | None:
        """The run's own held-out images (its test, else val), as its manifest lists them."""
        if not (same_data and held):
            return None
        wanted = set()
        for p in files[held[0]]:  # recorded as the run read them: absolute, or relative to where it ran
            wanted.add(str(Path(p).resolve()))
            if not Path(p).is_absolute():
                wanted.add(str((Path(root) / p).resolve()))
        idx = [i for i, p in enumerate(paths) if p in wanted]
        return (held[0], idx, f"{root}: the run's own {held[0]} images (from its manifest; never trained on)") if idx else None

    if split == "auto":
        if by_split.get("test"):
            return "test", by_split["test"], f"{root}: its test split"
        mine = own()
        if mine is not None:
            return mine
        if by_split.get("val"):
            return "val", by_split["val"], f"{root}: its val split"
        return "all", list(range(len(paths))), f"{root}: every image"
    if split == "holdout":
        mine = own()
        if mine is None:
            raise ConfigError(f"split 'holdout' is the run's own held-out images of its training data, but {root} is not that data "
                              "(or the run's manifest lists none); choose --split test, val, train or all")
        return mine
    if split == "all":
        return "all", list(range(len(paths))), f"{root}: every image"
    if not by_split.get(split):
        have = ", ".join(sorted(str(s) for s in by_split if s)) or "none (no split folders)"
        raise ConfigError(f"{root}: has no {split!r} split (splits present: {have}); use --split all to score every image")
    return split, by_split[split], f"{root}: its {split} split"


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


def evaluate_detect_run(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    split: str = "auto",
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    progress: bool | None = None,
    score_threshold: float = 0.25,
    batch: int = 4,
    tile: int | None = None,
    overlap: float = 0.2,
) -> dict[str, Any]:
    """Score a detection run (or a detector ``.onnx``) on a COCO, YOLO or VOC dataset (``pixlearn eval RUN --data DIR``).

    Parameters
    ----------
    run : path
        A detection run folder (or anything :func:`pixlearn.tasks.detect.predict.load_detector` opens).
    data : path
        An annotated dataset; its classes are matched to the detector's by name.
    split : {"auto", "test", "val", "train", "holdout", "all"}, default "auto"
        auto: DIR's test split if it has one; else, when DIR is the data the run was trained on, the run's own
        held-out images (``holdout``: its test, else val images, from its manifest); else DIR's val split; else
        every image.
    out : path, optional
        Write ``metrics.json``, ``plots/`` and ``report.html`` here.
    score_threshold : float, default 0.25
        For the confusion matrix, the misses and the false positives (the AP sweeps every score).
    tile, overlap
        Detect on ``tile`` px windows merged with the whole image (:class:`~pixlearn.tasks.detect.tiles.TiledDetector`),
        as ``pixlearn predict`` does; default: the run's own training tile, if it was trained on tiles; 0: never.

    Returns
    -------
    dict
        :meth:`DetectionEvaluator.compute` with ``split``, ``source``, ``task``, ``run``, ``data`` and, when the data
        has instance masks and the detector returns them, the ``mask_`` scores.

    Raises
    ------
    ConfigError
        Data that is not a detection dataset, a split it lacks, or classes the detector does not know.
    """
    from pixlearn._core.types import Task
    from pixlearn.data.readers import read_dataset
    from pixlearn.tasks.detect.predict import load_detector

    data_path = Path(data)
    if not data_path.exists():
        raise ConfigError(f"{data_path}: no such folder or file; --data must be a COCO, YOLO or VOC dataset")
    index = read_dataset(data_path.resolve())
    if Task(index.task) not in (Task.DETECT, Task.INSTANCE):
        raise ConfigError(f"{index.root}: holds a {Task(index.task).value} dataset ({index.format} format), not boxes; "
                          "a detection run is scored on a COCO, YOLO or VOC dataset")
    run_dir = Path(run)
    detector: Any = load_detector(run_dir, device=device)
    manifest = _read_json(run_dir / "manifest.json") if run_dir.is_dir() else {}
    name, idx, source = _choose_split(index, split, manifest)
    if not idx:
        raise ConfigError(f"{index.root}: no images to score in split {name!r}")
    masks = Task(index.task) is Task.INSTANCE and bool(getattr(detector, "masks", False))
    run_tile = getattr(detector, "run_tile", None)
    if tile is None and run_tile:
        tile, overlap = run_tile
    if tile:
        from pixlearn.tasks.detect.tiles import TiledDetector

        detector = TiledDetector(detector, tile=int(tile), overlap=float(overlap))
    errors: dict[str, str] = {}
    ev = evaluate_detector(detector, dataset_samples(index, idx, errors=errors), split=name, masks=masks,
                           class_names=index.classes, total=len(idx), progress=progress, source=source, errors=errors,
                           score_threshold=score_threshold, batch=batch)
    result = {"task": "detect", **ev.metrics, "run": str(run_dir), "data": str(index.root), "tile": int(tile) if tile else None}
    if out is not None:
        from pixlearn.tasks.detect.report import write_detect_report

        out_dir = Path(out)
        _write_text(out_dir / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
        write_detect_report(
            out_dir, ev, title=f"pixlearn eval: {run_dir.name} on {Path(index.root).name} ({name})",
            details={"run": str(run_dir.resolve()), "detector": result["detector"], "data": str(Path(index.root).resolve()),
                     "format": index.format, "tiles": f"{tile} px, overlap {overlap:g}" if tile else "no (whole images)",
                     "seconds": round(ev.seconds, 2)},
            splits=[{"split": name, "images": ev.counts["images"], "source": source, "used_for": "these scores only"}],
        )
    return result

