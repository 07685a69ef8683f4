"""The classic models by name (scikit-learn pipelines), their scores, and safe skops persistence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name

__all__ = [
    "MODELS",
    "MODEL_ALIASES",
    "TRUSTED_TYPES",
    "resolve_model_name",
    "build_model",
    "model_scores",
    "score_kind",
    "save_model",
    "load_model",
]

#: Model names accepted by ``model=``.
MODELS: tuple[str, ...] = ("svm", "random_forest", "knn")
#: Other names for the same models.
MODEL_ALIASES: dict[str, str] = {"rf": "random_forest"}

#: Types outside skops' default trust list that our pipelines contain; nothing else is loaded.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
)


def resolve_model_name(name: str) -> str:
    """The canonical model name (aliases resolved); unknown names raise with the closest match.

    >>> resolve_model_name("rf")
    'random_forest'
    """
    name = str(name)
    check_name(name, [*MODELS, *MODEL_ALIASES], what="classic model")
    return MODEL_ALIASES.get(name, name)


def build_model(name: str, *, seed: int = 0, workers: int = 1) -> Any:
    """An unfitted scikit-learn pipeline for ``name``.

    - ``svm``: StandardScaler + RBF ``SVC(C=10, gamma="scale")``; scores are
      one-vs-rest decision values.
    - ``random_forest`` (``rf``): 300 trees, ``n_jobs=workers``; scores are
      class probabilities.
    - ``knn``: StandardScaler + 5 nearest neighbours (Euclidean); scores are
      neighbour-vote probabilities.

    >>> build_model("svn")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown classic model 'svn'; did you mean 'svm'? Valid: 'knn', 'random_forest', 'rf', 'svm'
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    name = resolve_model_name(name)
    if name == "svm":
        from sklearn.svm import SVC

        return Pipeline([("scale", StandardScaler()), ("clf", SVC(C=10.0, kernel="rbf", gamma="scale"))])
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        rf = RandomForestClassifier(n_estimators=300, n_jobs=max(1, int(workers)), random_state=int(seed))
        return Pipeline([("clf", rf)])
    from sklearn.neighbors import KNeighborsClassifier

    return Pipeline([("scale", StandardScaler()), ("clf", KNeighborsClassifier(n_neighbors=5))])


def score_kind(estimator: Any) -> str:
    """``"probability"`` when the model gives class probabilities, else ``"decision"``."""
    return "probability" if hasattr(estimator, "predict_proba") else "decision"


def model_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """(N, C) per-class scores, columns in ``estimator.classes_`` order (larger = more likely)."""
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(X), dtype=np.float64)
    s = np.asarray(estimator.decision_function(X), dtype=np.float64)
    if s.ndim == 1:  # binary: the score of classes_[1]
        s = np.stack([-s, s], axis=1)
    return s


def save_model(estimator: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted pipeline with skops (no pickle)."""
    import skops.io as sio

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    sio.dump(estimator, tmp)
    os.replace(tmp, out)
    return out


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a skops model file, trusting only scikit-learn's defaults and :data:`TRUSTED_TYPES`.

    Raises
    ------
    ConfigError
        When the file holds any other type (it is refused, not loaded) or is not a skops file.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no model file; a classic run folder holds model.skops")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable skops model file ({type(exc).__name__}: {exc})") from None
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise ConfigError(
            f"{path}: refusing to load a model that contains untrusted types {unexpected}; "
            "a pixlearn classic model holds only scikit-learn pipelines"
        )
    return sio.load(path, trusted=list(untrusted))
