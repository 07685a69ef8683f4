"""Train a classic classifier on a labelled folder and write its run folder."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.classic.features import (
    FEATURE_PARAMS,
    _relative,
    check_feature_set,
    check_img_size,
    featurize_files,
)
from pixlearn.classic.models import build_model, model_scores, resolve_model_name, save_model, score_kind
from pixlearn.classic.predictor import ClassicModel

__all__ = ["ClassicResult", "train_classic", "classic_verdict", "HOLDOUT_FRACTION", "CLASSIC_ADVICE"]

#: Share of the images held out for the test score when the folder has no val/test split.
HOLDOUT_FRACTION = 0.2

#: What a classic model's warning suggests trying (it has no time budget or pretrained weights).
CLASSIC_ADVICE = "other --features (hog+color) or --model, a larger --img-size, more data, or a network (pixlearn train classify)"

_FEATURE_PARTS = {"hog": ("hog",), "lbp": ("lbp",), "color_hist": ("color_hist",), "hog+color": ("hog", "color_hist")}


@dataclass
class ClassicResult:
    """What :func:`train_classic` produced: the run folder, its metrics and manifest, and the model."""

    run_dir: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    model: ClassicModel
    skipped: list[dict[str, str]] = field(default_factory=list)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _default_run_dir(features: str, model: str) -> Path:
    base = Path("runs") / "classic"
    name = f"{features.replace('+', '-')}-{model}"
    run = base / name
    k = 2
    while run.exists():
        run = base / f"{name}-{k}"
        k += 1
    return run


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_int(value: Any, *, name: str, low: int) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if out < low:
        raise ConfigError(f"{name} must be >= {low}, got {value!r}")
    return out


def train_classic(
    data: str | os.PathLike[str],
    *,
    features: str = "hog",
    model: str = "svm",
    img_size: int = 64,
    folds: int = 5,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: bool | None = None,
) -> ClassicResult:
    """Train HOG / LBP / colour-histogram features + SVM, random forest or k-NN on a labelled folder.

    The folder holds one sub-folder per class, optionally under ``train/ val/
    test/`` (see :func:`pixlearn.data.folder.scan_image_folder`). With splits,
    the model is fitted on ``train`` and scored on ``val`` (else ``test``);
    without, a seeded stratified 20% hold-out is set aside first. The held-out
    images are never used for fitting or cross-validation, so the reported
    score is a test score. Stratified k-fold cross-validation runs on the
    training part only. Unreadable images are skipped and listed in
    ``manifest.json``.

    Parameters
    ----------
    data : path
        The labelled folder.
    features : {"hog", "lbp", "color_hist", "hog+color"}, default "hog"
        Feature set (see :func:`pixlearn.classic.image_features`).
    model : {"svm", "random_forest", "rf", "knn"}, default "svm"
        Classifier (see :func:`pixlearn.classic.build_model`).
    img_size : int, default 64
        Every image is resized to ``img_size`` x ``img_size`` before features.
    folds : int, default 5
        Cross-validation folds on the training part; 0 skips cross-validation.
    seed : int, default 0
        Seeds the hold-out split, the folds and the random forest.
    out : path, optional
        Run folder; default ``runs/classic/<features>-<model>[-N]`` under the
        current folder.
    workers : int, default 1
        Processes for feature extraction, cross-validation and the forest.
    progress : bool or None, default None
        Progress bar on stderr; ``None`` shows it only when stderr is a terminal.

    Returns
    -------
    ClassicResult
        ``run_dir`` holds ``config.yaml``, ``manifest.json``, ``metrics.json``,
        ``model.skops``, ``plots/*.png`` and ``report.html``.

    Raises
    ------
    UnknownNameError
        For an unknown feature set or model, naming the closest valid one.
    ConfigError
        For a folder that does not fit the layout, a class without training
        images, or too few images per class for the hold-out or the folds.
    """
    t_start = time.perf_counter()
    features = check_feature_set(features)
    model_name = resolve_model_name(model)
    img_size = check_img_size(img_size)
    folds = _check_int(folds, name="folds", low=0)
    if folds == 1:
        raise ConfigError("folds must be 0 (no cross-validation) or at least 2, got 1")
    seed = _check_int(seed, name="seed", low=0)
    workers = _check_int(workers, name="workers", low=1)

    from pixlearn.data.folder import scan_image_folder

    index = scan_image_folder(data)
    root = index.root
    classes = list(index.classes)
    class_idx = {c: i for i, c in enumerate(classes)}
    if index.has_splits:
        if "train" not in index.splits:
            raise ConfigError(f"{root}: has split folders {list(index.splits)} but no train/ to fit on")
        held_split = "val" if "val" in index.splits else ("test" if "test" in index.splits else None)
    else:
        held_split = None
    fit_entries = [e for e in index.entries if e.split in ("train", None)]
    held_entries = [e for e in index.entries if held_split is not None and e.split == held_split]

    # ---- features (training part and held-out part in one pass)
    t0 = time.perf_counter()
    entries = fit_entries + held_entries
    X_all, ok, errors = featurize_files(
        [e.path for e in entries], features=features, img_size=img_size, workers=workers, progress=progress
    )
    features_seconds = time.perf_counter() - t0
    skipped = [{"path": _relative(p, root), "error": msg} for p, msg in errors]
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {root}, e.g. {skipped[0]['path']}: {skipped[0]['error']}",
            UserWarning,
            stacklevel=2,
        )
    ok_arr = np.asarray(ok, dtype=np.int64)
    y_all = np.array([class_idx[entries[i].label] for i in ok], dtype=np.int64)
    is_fit = ok_arr < len(fit_entries)
    X_fit, y_fit = X_all[is_fit], y_all[is_fit]
    X_held, y_held = X_all[~is_fit], y_all[~is_fit]
    if len(y_fit) == 0:
        raise ConfigError(f"{root}: none of the {len(fit_entries)} training images could be read; e.g. {skipped[:1]}")

    if held_split is None:
        from sklearn.model_selection import train_test_split

        split_name = "holdout"
        counts = Counter(y_fit.tolist())
        rare = [classes[c] for c in range(len(classes)) if counts.get(c, 0) < 2]
        n_test = int(np.ceil(HOLDOUT_FRACTION * len(y_fit)))
        if rare or n_test < len(classes):
            raise ConfigError(
                f"{root}: the stratified {HOLDOUT_FRACTION:.0%} hold-out needs at least 2 readable images per class "
                f"and {len(classes)} held-out images in all"
                + (f"; too few in class(es) {rare}" if rare else f"; only {len(y_fit)} images")
                + "; add images or provide train/ and val/ split folders"
            )
        X_fit, X_held, y_fit, y_held = train_test_split(
            X_fit, y_fit, test_size=HOLDOUT_FRACTION, stratify=y_fit, random_state=seed
        )
    else:
        split_name = held_split
        if len(y_held) == 0:
            raise ConfigError(f"{root}: none of the images in {held_split}/ could be read; nothing to score on")
    missing = sorted(set(range(len(classes))) - set(y_fit.tolist()))
    if missing:
        raise ConfigError(
            f"{root}: class(es) {[classes[c] for c in missing]} have no readable training images; "
            "every class needs training images"
        )

    # ---- cross-validation on the training part only
    cv: dict[str, Any] = {"folds": folds, "accuracy_mean": None, "accuracy_std": None, "macro_f1_mean": None, "macro_f1_std": None}
    t0 = time.perf_counter()
    if folds:
        from sklearn.model_selection import StratifiedKFold, cross_validate

        counts = Counter(y_fit.tolist())
        smallest = min(counts.values())
        if smallest < folds:
            least = classes[min(counts, key=counts.get)]  # type: ignore[arg-type]
            raise ConfigError(
                f"folds={folds} but class {least!r} has only {smallest} training image(s); "
                f"use folds={max(2, smallest)} or fewer (--folds), or 0 to skip cross-validation"
            )
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        cv_jobs = 1 if model_name == "random_forest" else min(workers, folds)
        scores = cross_validate(
            build_model(model_name, seed=seed, workers=workers), X_fit, y_fit, cv=splitter,
            scoring={"accuracy": "accuracy", "macro_f1": "f1_macro"}, n_jobs=cv_jobs,
        )
        for key in ("accuracy", "macro_f1"):
            vals = np.asarray(scores[f"test_{key}"], dtype=np.float64)
            cv[f"{key}_mean"] = float(vals.mean())
            cv[f"{key}_std"] = float(vals.std())
    cv_seconds = time.perf_counter() - t0

    # ---- fit on the training part, score on the held-out part
    estimator = build_model(model_name, seed=seed, workers=workers)
    t0 = time.perf_counter()
    estimator.fit(X_fit, y_fit)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = estimator.predict(X_held)
    scores_held = model_scores(estimator, X_held)
    from pixlearn.tasks.classify.metrics import (
        classification_metrics,
        plot_confusion_matrix,
        plot_roc_curves,
    )
    from pixlearn.tasks.classify.report import write_classification_report

    metrics_core = classification_metrics(y_held, pred, classes=classes, scores=scores_held)
    eval_seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {"task": "classify", "split": split_name, **metrics_core, "cv": cv,
                               "fit_seconds": round(fit_seconds, 4)}
    metrics["verdict"] = classic_verdict(metrics, y_held, classes)

    # ---- the run folder
    run_dir = Path(out) if out is not None else _default_run_dir(features, model_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    import yaml

    config = {
        "task": "classify",
        "method": "classic",
        "data": str(root.resolve()),
        "features": features,
        "feature_params": {k: FEATURE_PARAMS[k] for k in _FEATURE_PARTS[features]},
        "model": model_name,
        "model_params": {k: v for k, v in estimator.named_steps["clf"].get_params().items()
                         if isinstance(v, (int, float, str, bool, type(None))) and v != "deprecated"},
        "score_kind": score_kind(estimator),
        "img_size": img_size,
        "folds": folds,
        "seed": seed,
        "workers": workers,
        "fit_split": "train" if index.has_splits else "all",
        "eval_split": split_name,
        "holdout_fraction": HOLDOUT_FRACTION if split_name == "holdout" else None,
        "classes": classes,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    save_model(estimator, run_dir / "model.skops")
    _write_json(run_dir / "metrics.json", metrics)

    plots = run_dir / "plots"
    plot_paths = [
        plot_confusion_matrix(metrics["confusion_matrix"], classes, plots / "confusion_matrix.png"),
        plot_confusion_matrix(metrics["confusion_matrix"], classes, plots / "confusion_matrix_normalized.png", normalize=True),
    ]
    plot_paths.append(plot_roc_curves(y_held, scores_held, classes, plots / "roc.png"))

    found = {s: c for s, c in Counter((e.split or "all") for e in index.entries).items()}
    manifest: dict[str, Any] = {
        "pixlearn": _pixlearn_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {d: _version(d) for d in ("numpy", "scikit-learn", "scikit-image", "opencv-python-headless", "skops")},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "data": {
            "root": str(root.resolve()),
            "fingerprint": index.fingerprint(),
            "classes": classes,
            "images_found": found,
            "images_used": {"train": int(len(y_fit)), split_name: int(len(y_held))},
            "skipped": len(skipped),
        },
        "skipped": skipped,
        "timings": {
            "features_seconds": round(features_seconds, 4),
            "cv_seconds": round(cv_seconds, 4),
            "fit_seconds": round(fit_seconds, 4),
            "eval_seconds": round(eval_seconds, 4),
        },
    }
    details = {
        "model": model_name,
        "features": features,
        "img_size": img_size,
        "data": str(root.resolve()),
        "fitted on": f"{len(y_fit)} images ({config['fit_split']})",
        "scored on": f"{len(y_held)} images ({split_name})",
        "skipped unreadable": len(skipped),
        "score": config["score_kind"],
    }
    write_classification_report(
        run_dir / "report.html", metrics, title=f"pixlearn classic: {features} + {model_name}",
        details=details, plots=plot_paths, verdict=metrics["verdict"],
    )
    manifest["verdict"] = metrics["verdict"]
    manifest["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    _write_json(run_dir / "manifest.json", manifest)

    clf = ClassicModel(estimator=estimator, classes=classes, features=features, img_size=img_size,
                       model=model_name, run_dir=run_dir)
    return ClassicResult(run_dir=run_dir, metrics=metrics, manifest=manifest, model=clf, skipped=skipped)


def classic_verdict(metrics: dict[str, Any], y_held: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The held-out accuracy against chance and the held-out split's majority class, as classification judges it.

    The same :func:`pixlearn.tasks.classify.evaluate.classification_verdict` (baselines, margin, words), with advice a
    classic model can follow. Returns :meth:`~pixlearn.engine.verdict.Verdict.to_dict` (``metrics.json["verdict"]``).

    Examples
    --------
    >>> v = classic_verdict({"split": "holdout", "accuracy": 0.5, "n": 4}, np.array([0, 0, 0, 1]), ["a", "b"])
    >>> v["beats"], [b["name"] for b in v["baselines"]]
    (False, ["the majority class 'a'", 'chance'])
    >>> "--features" in v["sentence"]
    True
    """
    import dataclasses

    from pixlearn.tasks.classify.evaluate import SplitEvaluation, classification_verdict

    ev = SplitEvaluation(str(metrics["split"]), "", {"accuracy": metrics.get("accuracy"), "n": metrics.get("n", int(len(y_held)))},
                         np.asarray(y_held, np.int64), np.zeros((len(y_held), len(classes))), [])
    return dataclasses.replace(classification_verdict(ev, classes), advice=CLASSIC_ADVICE).to_dict()


def _pixlearn_version() -> str:
    from pixlearn import __version__

    return __version__
