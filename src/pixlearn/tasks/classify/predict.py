"""A trained classifier rebuilt from its run folder alone, and prediction over arrays, datasets and files.

A run folder's ``weights/model.json`` names the architecture (a :class:`~pixlearn.models.ModelSpec`:
no code, no pickles), the classes and the preprocessing; ``weights/best.safetensors`` holds the
tensors (and the same description in its header, so the file alone is enough too).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.types import Task
from pixlearn.data.index import DatasetIndex, Record
from pixlearn.engine.run_card import read_model_card
from pixlearn.engine.trainer import resolve_device

__all__ = [
    "preprocess_images",
    "MODEL_FORMAT",
    "Classifier",
    "DatasetPredictions",
    "load_classifier",
    "model_card",
    "predict_dataset",
    "predict_files",
    "resolve_device",
]

#: The ``format`` tag of ``weights/model.json``.
MODEL_FORMAT = "pixlearn.classifier/1"


def model_card(model: Any, classes: Sequence[str]) -> dict[str, Any]:
    """What ``weights/model.json`` holds: the format tag, the task, the classes and the model spec."""
    from pixlearn.models import model_spec

    return {"format": MODEL_FORMAT, "task": "classify", "classes": [str(c) for c in classes], "model": model_spec(model).to_dict()}


@dataclass
class Classifier:
    """A model in eval mode with its classes and preprocessing.

    ``predict`` takes uint8 (H, W, 3) RGB (or (H, W) grey) arrays, like every pixlearn API.
    """

    model: torch.nn.Module
    classes: list[str]
    run_dir: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        from pixlearn.models import get_preprocess

        self.preprocess = get_preprocess(self.model)
        self.model.eval().to(self.device)

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, C) of a preprocessed float batch (N, C, H, W)."""
        logits = self.model(images.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu()

    def to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 images -> the model's preprocessed (N, C, H, W) float batch (see :func:`preprocess_images`)."""
        return preprocess_images(images, img_size=self.preprocess.img_size, mean=self.preprocess.mean, std=self.preprocess.std)

    def predict(self, images: Sequence[np.ndarray], *, top_k: int = 1) -> list[dict[str, Any]]:
        """``{"label", "score", "top_k"}`` per image (``top_k``: the k best ``(label, probability)`` pairs).

        Examples
        --------
        >>> from pixlearn.models import create_model
        >>> clf = Classifier(create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=8), ["cat", "dog"])
        >>> row = clf.predict([np.zeros((10, 12, 3), np.uint8)], top_k=2)[0]
        >>> row["label"] in ("cat", "dog"), len(row["top_k"])
        (True, 2)
        """
        if not images:
            return []
        probs = self.predict_proba(self.to_tensor(images)).numpy()
        return [self._row(p, top_k) for p in probs]

    def _row(self, p: np.ndarray, top_k: int) -> dict[str, Any]:
        k = max(1, min(int(top_k), len(self.classes)))
        order = np.argsort(-p, kind="stable")[:k]
        return {
            "label": self.classes[int(order[0])],
            "score": float(p[order[0]]),
            "top_k": [{"label": self.classes[int(j)], "score": float(p[j])} for j in order],
        }


def _resize_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of a uint8 (1, C, H, W) tensor -- the same arithmetic as
    torchvision's ``v2.Resize(size, antialias=True)`` that training and evaluation use (native uint8
    where torchvision uses it, else float with rounding), without importing torchvision: its import
    costs about two seconds (it loads torch._dynamo), more than a small model's whole prediction.
    """
    import platform

    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    native = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")
    if x.device.type == "cpu" and native:
        return F.interpolate(x, size=list(size), mode="bilinear", align_corners=False, antialias=True)
    y = F.interpolate(x.to(torch.float32), size=list(size), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().to(torch.uint8)


def preprocess_images(
    images: Sequence[np.ndarray], *, img_size: int | Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 (H, W, 3) or (H, W) images -> a float32 (N, 3, H', W') batch: resized to ``img_size``
    (bilinear, antialiased), then ``(x / 255 - mean) / std`` -- what training's validation loader
    gives the model, computed with torch alone (no torchvision import on the prediction path).

    Examples
    --------
    >>> preprocess_images([np.full((4, 6, 3), 255, np.uint8)], img_size=8, mean=(0, 0, 0), std=(1, 1, 1)).shape
    torch.Size([1, 3, 8, 8])
    """
    size = (int(img_size), int(img_size)) if isinstance(img_size, (int, np.integer)) else (int(img_size[0]), int(img_size[1]))
    if mean is None or std is None:
        scale, shift = torch.full((3, 1, 1), 1 / 255), torch.zeros((3, 1, 1))
    else:
        m = torch.as_tensor(mean, dtype=torch.float32).flatten().expand(3).reshape(3, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32).flatten().expand(3).reshape(3, 1, 1)
        scale, shift = 1 / (255 * s), -m / s
    out = torch.empty((len(images), 3, *size), dtype=torch.float32)
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ShapeError(f"images must be uint8 (H, W, 3) or (H, W) arrays, got {arr.dtype} {arr.shape}")
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        arr = np.ascontiguousarray(arr[..., :3])
        if not arr.flags.writeable:  # torch warns on read-only arrays (decoded images can be)
            arr = arr.copy()
        x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
        out[i].copy_(_resize_uint8(x, size)[0])
    return out.mul_(scale.unsqueeze(0)).add_(shift.unsqueeze(0))


def _explain_missing(path: Path) -> None:
    folds = sorted(p.name for p in path.glob("fold_*") if (p / "weights" / "model.json").is_file())
    if folds:
        raise ConfigError(
            f"{path}: is a k-fold cross-validation run; its models are in the fold folders: "
            f"{', '.join(str(path / f) for f in folds[:5])}. Pass one of them"
        )
    cfg = path / "config.yaml"
    if cfg.is_file() and "method: classic" in cfg.read_text(encoding="utf-8", errors="replace"):
        raise ConfigError(f"{path}: is a classic (HOG/SVM) run; load it with pixlearn.classic.load_classic (pixlearn predict RUN handles both kinds)")


def _card_from(path: Path) -> tuple[dict[str, Any], Path]:
    """(model card, weights file) of a run folder, its weights/ folder or a .safetensors file."""
    return read_model_card(path, what="classification", command="pixlearn train classify", explain_missing=_explain_missing)


def load_classifier(run: str | os.PathLike[str], *, device: str | torch.device | None = "cpu") -> Classifier:
    """Rebuild a trained classifier from its run folder (or its ``.safetensors`` file) alone.

    Parameters
    ----------
    run : path
        ``runs/classify/<name>`` (or one ``fold_k`` of a k-fold run), its ``weights/`` folder, or
        a ``best.safetensors`` file written by pixlearn.
    device : str, default "cpu"
        ``"auto"`` picks a GPU when there is one.

    Raises
    ------
    ConfigError
        Not a pixlearn classification run folder (the message says what it is instead).
    """
    from pixlearn.models import build_from_spec, load_weights

    path = Path(run)
    card, weights = _card_from(path)
    if card.get("format") != MODEL_FORMAT or card.get("task") != "classify":
        raise ConfigError(f"{path}: model description has format {card.get('format')!r}, expected {MODEL_FORMAT!r}")
    model = build_from_spec(card["model"])
    load_weights(model, weights, strict=True)  # every tensor must fit: the file was written for this spec
    classes = [str(c) for c in card["classes"]]
    if card["model"]["num_classes"] != len(classes):
        raise ConfigError(f"{path}: the model has {card['model']['num_classes']} outputs but lists {len(classes)} classes")
    return Classifier(model, classes, run_dir=path if path.is_dir() else None, device=resolve_device(device))


# ---------------------------------------------------------------- datasets and files
@dataclass
class DatasetPredictions:
    """Probabilities for the records of an index; unreadable records have a NaN row and an error."""

    probs: np.ndarray
    labels: np.ndarray
    paths: list[str]
    errors: dict[int, str]

    @property
    def ok(self) -> np.ndarray:
        return ~np.isnan(self.probs).any(axis=1)


def _progress(enabled: bool | None, total: int, description: str) -> Any:
    from pixlearn.engine.progress import progress_bar

    return progress_bar(enabled, total, description)


def predict_dataset(
    clf: Classifier,
    index: DatasetIndex,
    *,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool | None = None,
    description: str = "predicting",
) -> DatasetPredictions:
    """Run ``clf`` over every record of ``index`` (decoded with the safe reader, in ``workers`` processes).

    Labels are -1 where a record has none. A file that cannot be read gets a NaN row and its
    error in ``errors``; it never stops the run.
    """
    from pixlearn.data.loader import ImageDataset, make_loader

    pre = clf.preprocess
    n = len(index)
    probs = np.full((n, len(clf.classes)), np.nan, np.float32)
    labels = np.array([-1 if r.label is None else int(r.label) for r in index.records], np.int64)
    errors: dict[int, str] = {}
    if n:
        dataset = ImageDataset(index, img_size=pre.img_size, mean=pre.mean, std=pre.std, task=Task.CLASSIFY)
        loader = make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers, seed=0)
        bar, task = _progress(progress, n, description)
        with bar:
            for batch in loader:
                for s in batch.skipped:
                    errors[s.index] = s.error
                if len(batch):
                    probs[batch.indices.numpy()] = clf.predict_proba(batch.images).numpy()
                bar.advance(task, len(batch) + len(batch.skipped))
    return DatasetPredictions(probs, labels, [str(r.path) for r in index.records], errors)


def _predict_paths(clf: Classifier, paths: Sequence[Path], *, batch_size: int, progress: bool | None) -> DatasetPredictions:
    """:func:`predict_dataset` for plain files in this process: the same decoding, errors and probabilities."""
    from pixlearn._core.errors import PixlearnError
    from pixlearn.io import read_image

    n = len(paths)
    probs = np.full((n, len(clf.classes)), np.nan, np.float32)
    errors: dict[int, str] = {}
    if n:
        bar, task = _progress(progress, n, "predicting")
        with bar:
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                good, images = [], []
                for i in range(start, stop):
                    try:
                        images.append(read_image(paths[i]))
                    except (PixlearnError, OSError) as exc:
                        errors[i] = f"{type(exc).__name__}: {exc}"
                    else:
                        good.append(i)
                if images:
                    probs[good] = clf.predict_proba(clf.to_tensor(images)).numpy()
                bar.advance(task, stop - start)
    return DatasetPredictions(probs, np.full(n, -1, np.int64), [str(p) for p in paths], errors)


def predict_files(
    run: Classifier | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    top_k: int = 1,
    batch_size: int = 64,
    workers: int = 0,
    device: str | None = "cpu",
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Classify image files, folders (recursively) and glob patterns with a run folder's model.

    Returns
    -------
    list of dict
        One row per file, in order: ``{"path", "label", "score", "top_k", "error"}``; a file that
        cannot be read has ``label``/``score`` None and the reason in ``error`` -- it never stops the batch.

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> clf = Classifier(create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=8), ["a", "b"])
    >>> [(r["label"], r["error"][:18]) for r in predict_files(clf, ["missing.png"])]
    [(None, 'ImageNotFoundError')]
    """
    from pixlearn.io import expand_sources

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    clf = run if isinstance(run, Classifier) else load_classifier(run, device=device)
    paths = [p for p, _ in expand_sources(images)]
    if workers == 0:  # decode here: no DataLoader, no torchvision (see preprocess_images)
        preds = _predict_paths(clf, paths, batch_size=batch_size, progress=progress)
    else:
        records = [Record(path=p) for p in paths]
        index = DatasetIndex(root=Path("."), format="files", task=Task.CLASSIFY, classes=list(clf.classes), records=records)
        preds = predict_dataset(clf, index, batch_size=batch_size, workers=workers, progress=progress)
    rows: list[dict[str, Any]] = []
    for i, path in enumerate(paths):
        row: dict[str, Any] = {"path": str(path), "label": None, "score": None, "top_k": [], "error": None}
        if i in preds.errors or np.isnan(preds.probs[i]).any():
            row["error"] = preds.errors.get(i, "not predicted")
        else:
            row.update(clf._row(preds.probs[i], top_k))
        rows.append(row)
    return rows
