"""Score a trained classifier on a split of a dataset, and write its plots, metrics and report.

Used at the end of training (on the test and val splits) and by ``pixlearn eval RUN --data DIR``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.data.index import DatasetIndex

__all__ = ["SplitEvaluation", "evaluate_split", "write_evaluation", "evaluate_run", "classification_verdict", "EVAL_SPLITS",
           "ACCURACY_MARGIN"]

#: What ``evaluate_run(split=...)`` accepts.
EVAL_SPLITS = ("auto", "test", "val", "train", "holdout", "all")

#: A classifier within half an accuracy point of a baseline does not clearly beat it.
ACCURACY_MARGIN = 0.005


@dataclass
class SplitEvaluation:
    """Predictions and metrics of one split. ``metrics`` follows :func:`classification_metrics` plus ``split``."""

    split: str
    source: str
    metrics: dict[str, Any]
    y_true: np.ndarray
    probs: np.ndarray
    paths: list[str]
    errors: dict[str, str] = field(default_factory=dict)


def _label_map(index: DatasetIndex, classes: Sequence[str]) -> np.ndarray:
    lookup = {str(c): i for i, c in enumerate(classes)}
    return np.array([lookup.get(str(c), -1) for c in index.classes], np.int64)


def evaluate_split(
    clf: Any,
    index: DatasetIndex,
    indices: Sequence[int],
    *,
    split: str,
    source: str = "",
    batch_size: int = 64,
    workers: int = 0,
    progress: bool | None = None,
) -> SplitEvaluation:
    """Predict the records ``indices`` of ``index`` with ``clf`` and score them.

    Dataset classes are matched to the model's by name. Unreadable images are left out of the
    scores and listed in ``errors`` (``metrics["skipped"]`` counts them).

    Raises
    ------
    ConfigError
        The split is empty, holds classes the model does not know, or nothing in it could be read.
    """
    from pixlearn.tasks.classify.metrics import classification_metrics
    from pixlearn.tasks.classify.predict import predict_dataset

    indices = list(indices)
    if not indices:
        raise ConfigError(f"the {split} split is empty; nothing to score")
    mapping = _label_map(index, clf.classes)
    sub = index.subset(indices=indices)
    unknown = sorted({index.classes[r.label] for r in sub.records if r.label is not None and mapping[r.label] < 0})
    if unknown:
        raise ConfigError(
            f"the {split} split has class(es) {unknown} that the model was not trained on; it knows {list(clf.classes)}"
        )
    preds = predict_dataset(clf, sub, batch_size=batch_size, workers=workers, progress=progress, description=f"scoring {split}")
    y = np.array([-1 if r.label is None else int(mapping[r.label]) for r in sub.records], np.int64)
    ok = preds.ok & (y >= 0)
    if not ok.any():
        raise ConfigError(f"none of the {len(indices)} images of the {split} split could be read and scored")
    probs = preds.probs[ok].astype(np.float64)
    metrics = classification_metrics(y[ok], probs.argmax(axis=1), classes=clf.classes, scores=probs)
    errors = {preds.paths[i]: msg for i, msg in preds.errors.items()}
    out = {"split": split, **metrics}
    if errors:
        out["skipped"] = len(errors)
    paths = [p for p, good in zip(preds.paths, ok) if good]
    return SplitEvaluation(split, source, out, y[ok], probs, paths, errors)


def classification_verdict(ev: SplitEvaluation, classes: Sequence[str]) -> Any:
    """The model's accuracy on a scored split against chance (1/K) and the majority class of that same split.

    The majority class baseline always answers the class most frequent among ``ev``'s own images, so its
    accuracy is that class's share of the split; chance is a uniform guess over the model's K classes.

    Returns
    -------
    pixlearn.engine.verdict.Verdict
        accuracy, higher is better, margin :data:`ACCURACY_MARGIN`.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1])
    >>> probs = np.array([[0.2, 0.8]] * 4)  # always answers class "b"
    >>> ev = SplitEvaluation("test", "", {"accuracy": 0.25, "n": 4}, y, probs, [])
    >>> print(classification_verdict(ev, ["a", "b"]).sentence())  # doctest: +NORMALIZE_WHITESPACE
    Warning: on the test split (n=4), accuracy 0.250 does not beat the majority class 'a' (0.750), worse by 0.500 and
    chance (0.500), worse by 0.250. The model is not useful as trained -- try a longer --minutes budget, more data
    or --pretrained.
    """
    from pixlearn.engine.verdict import Verdict

    classes = [str(c) for c in classes]
    y = np.asarray(ev.y_true, np.int64)
    counts = np.bincount(y, minlength=len(classes)) if y.size else np.zeros(len(classes), np.int64)
    top = int(np.argmax(counts))
    baselines = {
        f"the majority class '{classes[top]}'": float(counts[top] / y.size) if y.size else None,
        "chance": 1.0 / max(len(classes), 1),
    }
    return Verdict("accuracy", ev.split, ev.metrics.get("accuracy"), baselines, higher_is_better=True, margin=ACCURACY_MARGIN,
                   n=ev.metrics.get("n", int(y.size)), digits=3, key="accuracy")


def _mistake_tiles(ev: SplitEvaluation, classes: Sequence[str], k: int) -> tuple[list[np.ndarray], list[str]]:
    from pixlearn.tasks.classify.plots import worst_mistakes
    from pixlearn.io import read_image

    images, captions = [], []
    for i in worst_mistakes(ev.y_true, ev.probs, k=k):
        try:
            img = read_image(ev.paths[i])
        except Exception:  # noqa: BLE001 - a file removed since scoring: skip its tile
            continue
        pred = int(ev.probs[i].argmax())
        images.append(img)
        captions.append(f"{Path(ev.paths[i]).name}\ntrue {classes[ev.y_true[i]]} / pred {classes[pred]} {ev.probs[i, pred]:.2f}")
    return images, captions


def write_evaluation(
    out_dir: str | os.PathLike[str],
    evaluations: Sequence[SplitEvaluation],
    *,
    classes: Sequence[str],
    title: str,
    details: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    splits: Sequence[Mapping[str, Any]] = (),
    extra_plots: Sequence[tuple[Path, str]] = (),
    cv: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    mistakes: int = 16,
    verdict: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``plots/*.png`` and ``report.html`` into ``out_dir``; the first evaluation is the headline.

    Plots: ``training_curves.png`` (with ``history``), then for the headline split
    ``confusion_matrix.png``, ``confusion_matrix_normalized.png``, ``roc.png``, ``pr.png``,
    ``per_class.png`` and ``mistakes.png``. ``verdict`` (:meth:`~pixlearn.engine.verdict.Verdict.to_dict`) opens the
    report. Returns the plot paths.
    """
    from pixlearn.tasks.classify.metrics import plot_confusion_matrix, plot_roc_curves
    from pixlearn.tasks.classify.plots import plot_mistakes, plot_per_class, plot_pr_curves, plot_training_curves
    from pixlearn.engine.report import write_run_report
    from pixlearn.tasks.classify.report import HEADLINE_METRICS

    out = Path(out_dir)
    plots_dir = out / "plots"
    classes = list(classes)
    shown: list[tuple[Path, str]] = []
    if history:
        shown.append((plot_training_curves(history, plots_dir / "training_curves.png",
                                           title="training curves: loss on train (training mode) and val; scores on val"),
                       "Training curves per epoch: train loss on the train split; val loss and scores on the val split."))
    if evaluations:
        head = evaluations[0]
        s = head.split
        cm = head.metrics["confusion_matrix"]
        shown += [
            (plot_confusion_matrix(cm, classes, plots_dir / "confusion_matrix.png"), f"Confusion matrix, counts ({s} split)."),
            (plot_confusion_matrix(cm, classes, plots_dir / "confusion_matrix_normalized.png", normalize=True),
             f"Confusion matrix, rows normalised: the diagonal is per-class recall ({s} split)."),
            (plot_roc_curves(head.y_true, head.probs, classes, plots_dir / "roc.png"), f"ROC curves, one-vs-rest, with AUC per class ({s} split)."),
            (plot_pr_curves(head.y_true, head.probs, classes, plots_dir / "pr.png", split=s), f"Precision-recall curves with average precision ({s} split)."),
            (plot_per_class(head.metrics, plots_dir / "per_class.png", split=s), f"Per-class precision, recall and F1 ({s} split)."),
        ]
        images, captions = _mistake_tiles(head, classes, mistakes)
        shown.append((plot_mistakes(images, captions, plots_dir / "mistakes.png", title=f"most confident mistakes ({s} split)"),
                      f"The {len(images)} most confident wrong predictions on the {s} split (true / predicted class and its probability)."))
    shown += list(extra_plots)
    write_run_report(
        out / "report.html", title=title, scores=[e.metrics for e in evaluations], splits=splits,
        details=details, plots=shown, cv=cv, notes=notes, headline=HEADLINE_METRICS, verdict=verdict,
    )
    return [p for p, _ in shown]


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def evaluate_run(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    split: str = "auto",
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: str | None = "cpu",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score a run folder's model on a labelled dataset.

    Parameters
    ----------
    run : path
        A classification run folder (rebuilt from its files alone).
    data : path
        A labelled dataset (classes matched to the model's by name).
    split : {"auto", "test", "val", "train", "holdout", "all"}, default "auto"
        ``auto``: the dataset's ``test`` split if it has one; else, when ``data`` is the data the
        run was trained on (same fingerprint), the run's own held-out split (``holdout``),
        recomputed from its seed; else every image (a new data set the model never saw).
        ``holdout`` requires the run's training data.
    out : path, optional
        Folder for ``metrics.json``, ``plots/`` and ``report.html``; nothing is written without it.

    Returns
    -------
    dict
        :func:`classification_metrics` fields plus ``split``, ``source`` and ``run``.

    Raises
    ------
    ConfigError
        Not a run folder, a split the dataset lacks, classes the model does not know, or a
        ``holdout`` request on other data than the run's.
    """
    from pixlearn._core.names import check_name
    from pixlearn.tasks.classify.data import plan_splits, read_classify_dataset
    from pixlearn.tasks.classify.predict import load_classifier

    split = check_name(str(split), EVAL_SPLITS, what="split")
    run_dir = Path(run)
    clf = load_classifier(run_dir, device=device)
    from pixlearn.data.readers import read_dataset

    data_path = Path(data)
    if not data_path.exists():
        raise ConfigError(f"{data_path}: no such folder or file; --data must be a labelled dataset")
    index = read_classify_dataset(read_dataset(data_path))
    cfg = _read_yaml(run_dir / "config.yaml")
    manifest: dict[str, Any] = {}
    if (run_dir / "manifest.json").is_file():
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        except ValueError:
            manifest = {}
    same_data = bool(manifest) and manifest.get("data", {}).get("fingerprint") == index.fingerprint()
    present = {r.split for r in index.records}
    if split == "auto":
        split = "test" if "test" in present else ("holdout" if same_data and "holdout" in manifest.get("data", {}).get("splits", {}).get("counts", {}) else "all")
    if split == "all":
        indices, source = list(range(len(index))), f"every image of {data_path}"
    elif split == "holdout":
        if not same_data:
            raise ConfigError(
                f"split 'holdout' is the run's own held-out part of its training data, but {data_path} is not that data "
                "(its fingerprint differs from manifest.json); choose --split test, val, train or all"
            )
        d, t = cfg.get("data", {}), cfg.get("train", {})
        plan = plan_splits(index, val_fraction=float(d.get("val_fraction", 0.1)), test_fraction=float(d.get("test_fraction", 0.1)), seed=int(t.get("seed", 0)))
        indices, source = plan.test, plan.sources.get(plan.test_name, "held out")
    else:
        if split not in present:
            have = ", ".join(sorted(str(s) for s in present if s)) or "none (no split folders)"
            raise ConfigError(f"{data_path}: has no {split!r} split (splits present: {have}); use --split all to score every image")
        indices = [i for i, r in enumerate(index.records) if r.split == split]
        source = f"the {split} split of {data_path}"
    ev = evaluate_split(clf, index, indices, split=split, source=source, batch_size=batch_size, workers=workers, progress=progress)
    result = {**ev.metrics, "source": source, "run": str(run_dir), "verdict": classification_verdict(ev, clf.classes).to_dict()}
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / ".metrics.json.tmp"
        tmp.write_text(json.dumps({"task": "classify", **result}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir / "metrics.json")
        write_evaluation(
            out_dir, [ev], classes=clf.classes, title=f"pixlearn eval: {run_dir.name} on {data_path.name} ({split})",
            details={"run": str(run_dir), "model": clf.model.pixlearn_spec.name, "data": str(data_path.resolve()),
                     "same data as training": same_data},
            splits=[{"split": split, "images": ev.metrics["n"], "source": source, "used_for": "these scores only"}],
            verdict=result["verdict"],
        )
    return result
