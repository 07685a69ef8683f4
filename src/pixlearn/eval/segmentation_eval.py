"""Score a trained segmenter on a mask dataset; overlay figures, training curves and the run's HTML report.

:func:`evaluate_split` runs a :class:`~pixlearn.tasks.segment_predict.Segmenter` over whole images
(tiled beyond the training size) and fills one confusion matrix (:mod:`pixlearn.eval.segmentation`);
:func:`plot_overlays` draws image / true mask / predicted mask rows; :func:`write_segment_report`
writes ``report.html`` naming the split of every number; :func:`evaluate_segment_run` is
``pixlearn eval RUN --data DIR`` for a segmentation run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.eval.segmentation import HEADLINE_SEGMENTATION, IGNORE_INDEX, SegmentationScorer, confusion_matrix, scores_from_confusion

__all__ = ["SegmentEvaluation", "evaluate_split", "plot_overlays", "plot_segment_curves", "write_segment_report", "evaluate_segment_run"]


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
    from pixlearn._core.errors import PixlearnError
    from pixlearn.tasks.segment_predict import _progress

    classes = list(seg.classes)
    lut = _class_map(index, classes)
    ignore = index.meta.get("ignore_index", IGNORE_INDEX)
    scorer = SegmentationScorer(num_classes=len(classes), classes=classes, ignore_index=IGNORE_INDEX if ignore is None else ignore)
    ev = SegmentEvaluation(split=split, metrics={})
    t0 = time.perf_counter()
    bar, task = _progress(progress, len(indices), f"scoring {split}")
    with bar:
        for i in indices:
            rec = index.records[i]
            try:
                sample = index.load(i)
            except (PixlearnError, OSError) as exc:
                ev.errors[str(rec.path)] = f"{type(exc).__name__}: {exc}"
                bar.advance(task)
                continue
            true = np.asarray(sample.mask).astype(np.int64)
            if lut is not None:
                true = np.where(true == scorer.ignore_index, true, lut[np.clip(true, 0, 255)])
            pred = seg.predict(sample.image)
            cm = confusion_matrix(pred, true, num_classes=len(classes), ignore_index=scorer.ignore_index)
            scorer.cm += cm
            scorer.images += 1
            if len(ev.examples) < examples:
                ev.examples.append((str(rec.path), sample.image, true, pred, scores_from_confusion(cm)["mean_iou"]))
            bar.advance(task)
    ev.seconds = time.perf_counter() - t0
    ev.metrics = {"split": split, "source": source, **scorer.scores()}
    if ev.errors:
        ev.metrics["skipped"] = len(ev.errors)
    return ev


def _thumb(image: np.ndarray, longest: int = 320) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(1.0, longest / max(h, w))
    if scale >= 1.0:
        return image
    import cv2

    interp = cv2.INTER_AREA if image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3 else cv2.INTER_NEAREST
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)


def plot_overlays(
    examples: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, float | None]],
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str],
    split: str = "val",
) -> Path:
    """One row per image: the image, its true mask and the predicted mask tinted over it (fixed class colours).

    Examples
    --------
    >>> import tempfile
    >>> img = np.zeros((16, 16, 3), np.uint8); m = np.zeros((16, 16), int); m[4:12, 4:12] = 1
    >>> plot_overlays([("a.png", img, m, m, 1.0)], Path(tempfile.mkdtemp()) / "o.png", classes=["bg", "fg"]).suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pixlearn.tasks.segment_predict import PALETTE, overlay_mask

    rows = max(len(examples), 1)
    fig = Figure(figsize=(9.6, 3.2 * rows + 0.6), dpi=100)
    axes = fig.subplots(rows, 3, squeeze=False)
    for r, (name, image, true, pred, miou) in enumerate(examples):
        shown_true = np.where(true == IGNORE_INDEX, 0, true)
        panels = (image, overlay_mask(image, shown_true), overlay_mask(image, pred))
        titles = (Path(name).name, "true mask", "predicted" + (f" (IoU {miou:.3f})" if miou is not None else ""))
        for c in range(3):
            ax = axes[r][c]
            ax.imshow(_thumb(np.asarray(panels[c])), cmap="gray" if np.asarray(panels[c]).ndim == 2 else None)
            ax.set_title(titles[c], fontsize=8)
            ax.axis("off")
    handles = [Patch(color=PALETTE[(k - 1) % len(PALETTE)] / 255.0, label=str(classes[k])) for k in range(1, len(classes))]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(f"{split} images: true and predicted masks (background untinted)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_segment_curves(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str = "training curves") -> Path:
    """Train / val loss and val mean IoU, Dice and pixel accuracy per epoch (rows of ``metrics.csv``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    def col(key: str) -> np.ndarray:
        out = []
        for r in rows:
            v = r.get(key)
            try:
                out.append(float(v) if v not in (None, "") else np.nan)
            except (TypeError, ValueError):
                out.append(np.nan)
        return np.asarray(out, np.float64)

    epoch = col("epoch")
    fig = Figure(figsize=(10, 3.6), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for key, label in (("train_loss", "train loss (train crops)"), ("val_loss", "val loss (whole val images)")):
        y = col(key)
        if np.isfinite(y).any():
            ax1.plot(epoch, y, marker="o", markersize=3, label=label)
    ax1.set_xlabel("epoch")
    ax1.set_title("loss")
    ax1.legend(fontsize=7)
    for key, label in (("val_miou", "val mean IoU"), ("val_dice", "val mean Dice"), ("val_pixel_accuracy", "val pixel accuracy")):
        y = col(key)
        if np.isfinite(y).any():
            ax2.plot(epoch, y, marker="o", markersize=3, label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1.01)
    ax2.set_title("validation scores (val split)")
    if ax2.lines:
        ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def write_segment_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    scores: Sequence[Mapping[str, Any]],
    splits: Sequence[Mapping[str, Any]] = (),
    details: Mapping[str, Any] | None = None,
    plots: Sequence[tuple[str | os.PathLike[str], str]] = (),
    baselines: Sequence[Mapping[str, Any]] = (),
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.html``: details, the provenance of every split, scores per split, per-class IoU/Dice, plots.

    ``scores`` are :func:`~pixlearn.eval.segmentation.scores_from_confusion` dicts with a
    ``"split"`` key; the first gets the per-class table. ``baselines`` are classical segmenters'
    results (:func:`~pixlearn.eval.segmentation_classic.evaluate_classic_segmentation`) on the same split.
    """
    from pixlearn.eval.classification import _fmt
    from pixlearn.engine.report import _esc, _table, report_finish, report_head

    parts = report_head(title, notes=notes, details=details, splits=splits)
    if scores:
        parts.append("<h2>Scores</h2><p>Each column is measured on the split named in its header; IoU and Dice from one confusion matrix over all its pixels.</p>")
        header = ["metric"] + [f"{s.get('split', '?')} ({_fmt(s.get('n'))} images)" for s in scores]
        rows = [[k] + [s.get(k) for s in scores] for k in HEADLINE_SEGMENTATION if any(s.get(k) is not None for s in scores)]
        parts.append(_table(header, rows))
        head = scores[0]
        parts.append("<p class='muted'>" + "; ".join(f"{k} ({_esc(head.get('split'))}) = {_fmt(head.get(k))}" for k in HEADLINE_SEGMENTATION if head.get(k) is not None) + "</p>")
        per = head.get("per_class") or {}
        if per:
            parts.append(f"<h2>Per class ({_esc(head.get('split'))} split)</h2>")
            parts.append(_table(["class", "IoU", "Dice", "precision", "recall", "true pixels", "predicted pixels"],
                                [(str(c), r.get("iou"), r.get("dice"), r.get("precision"), r.get("recall"), r.get("true_pixels"), r.get("predicted_pixels"))
                                 for c, r in per.items()]))
    if baselines:
        parts.append("<h2>Classical baselines on the same images</h2><p>Each is fitted on the train split (category -> class map, options) and scored on the split named.</p>")
        parts.append(_table(["method", "split", "mean IoU", "mean Dice", "pixel accuracy", "fit seconds", "options"],
                            [(str(b.get("method")), str(b.get("split")), b.get("mean_iou"), b.get("mean_dice"), b.get("pixel_accuracy"),
                              b.get("fit_seconds"), str(b.get("params"))) for b in baselines]))
    return report_finish(path, parts, plots)


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


def evaluate_segment_run(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    split: str = "auto",
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score a segmentation run folder's network on a mask dataset (``pixlearn eval RUN --data DIR``).

    Parameters
    ----------
    split : {"auto", "test", "val", "train", "all"}, default "auto"
        auto: DIR's test split if it has one, else its val split, else every image of DIR. When
        DIR is the data the run was trained on, auto scores the run's own held-out images (its
        test, else val split) as recorded in its manifest.
    out : path, optional
        Write ``metrics.json``, ``plots/overlays.png`` and ``report.html`` here.

    Returns
    -------
    dict
        The scores with ``split``, ``n`` and ``source``.
    """
    import json

    from pixlearn.tasks.segment_data import read_segment_dataset
    from pixlearn.tasks.segment_predict import load_segmenter

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
    if out is not None:
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
        )
    return result
