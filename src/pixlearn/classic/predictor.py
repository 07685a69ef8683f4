"""A fitted classic model with its preprocessing, loaded from a run folder, and prediction over files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn.classic.features import check_feature_set, check_img_size, extract_features
from pixlearn.classic.models import load_model, model_scores, resolve_model_name, score_kind

__all__ = ["ClassicModel", "load_classic", "predict_classic"]

_BATCH = 256


@dataclass
class ClassicModel:
    """A fitted scikit-learn pipeline plus everything needed to feed it: feature set, size, classes.

    ``predict`` takes uint8 (H, W) or (H, W, 3) RGB images and returns one
    ``(label, score)`` per image. The score is the predicted class's probability
    for random_forest and knn, and its one-vs-rest decision value for svm
    (larger is more confident; not a probability): see :attr:`score_kind`.
    """

    estimator: Any
    classes: list[str]
    features: str
    img_size: int
    model: str
    run_dir: Path | None = field(default=None)

    @property
    def score_kind(self) -> str:
        return score_kind(self.estimator)

    def featurize(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """(N, D) float32 features of in-memory images."""
        return extract_features(images, features=self.features, img_size=self.img_size)

    def predict_features(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class indices (N,) and per-class scores (N, C) for a feature matrix."""
        pred = np.asarray(self.estimator.predict(X), dtype=np.int64)
        return pred, model_scores(self.estimator, X)

    def predict(self, images: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """``(label, score)`` for each image."""
        pred, scores = self.predict_features(self.featurize(images))
        return [(self.classes[p], float(scores[i, p])) for i, p in enumerate(pred)]


def load_classic(run_dir: str | os.PathLike[str]) -> ClassicModel:
    """Rebuild a classic model from its run folder (``config.yaml`` + ``model.skops``).

    The model file is loaded with skops, trusting only scikit-learn's own types;
    any other type makes it refuse.

    Raises
    ------
    ConfigError
        When the folder is not a classic run folder or the model file is refused.
    """
    import yaml

    run = Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run}: not a classic run folder (no config.yaml); pass the folder train_classic wrote")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    try:
        classes = [str(c) for c in cfg["classes"]]
        features = check_feature_set(cfg["features"])
        img_size = check_img_size(cfg["img_size"])
        model = resolve_model_name(cfg["model"])
    except KeyError as exc:
        raise ConfigError(f"{cfg_path}: missing key {exc.args[0]!r}; the run folder is incomplete") from None
    estimator = load_model(run / "model.skops")
    n_model = len(getattr(estimator, "classes_", []))
    if n_model != len(classes):
        raise ConfigError(f"{run}: model.skops knows {n_model} classes but config.yaml lists {len(classes)}")
    return ClassicModel(estimator=estimator, classes=classes, features=features, img_size=img_size, model=model, run_dir=run)


def predict_classic(
    model: ClassicModel | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[dict[str, Any]]:
    """Classify image files, folders and globs with a classic model or its run folder.

    Parameters
    ----------
    model : ClassicModel or path
        A model, or the run folder :func:`~pixlearn.classic.train_classic` wrote.
    images : path, glob, or a list of them
        Files, folders (searched recursively) and glob patterns.

    Returns
    -------
    list of dict
        One row per file, in order: ``{"path", "label", "score", "error"}``. A
        file that cannot be read gets ``label`` and ``score`` None and the reason
        in ``error``; it never stops the batch.
    """
    from pixlearn.io import iter_images

    clf = model if isinstance(model, ClassicModel) else load_classic(model)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            X = clf.featurize(img for _, img in pending)
        except PixlearnError:  # fall back to one at a time so one odd image does not sink the batch
            for i, img in pending:
                try:
                    (label, score), = clf.predict([img])
                    rows[i].update(label=label, score=score)
                except PixlearnError as exc:
                    rows[i]["error"] = f"{type(exc).__name__}: {exc}"
        else:
            pred, scores = clf.predict_features(X)
            for (i, _), p, s in zip(pending, pred, scores):
                rows[i].update(label=clf.classes[int(p)], score=float(s[int(p)]))
        pending.clear()

    for path, result in iter_images(images, mode="RGB"):
        row: dict[str, Any] = {"path": str(path), "label": None, "score": None, "error": None}
        rows.append(row)
        if isinstance(result, np.ndarray):
            pending.append((len(rows) - 1, result))
            if len(pending) >= _BATCH:
                flush()
        else:
            row["error"] = f"{type(result).__name__}: {result}"
    flush()
    return rows
