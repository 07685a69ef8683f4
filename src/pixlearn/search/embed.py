"""Embedders: images -> vectors for the search index.

- :class:`TorchEmbedder`: a classifier's pooled features (``forward_features`` then ``forward_head(pre_logits=True)``),
  L2-normalised float32, so that inner product is cosine similarity. Built from a pretrained timm name (its weights
  found locally, never downloaded), a classification run folder, or a model given in Python.
- :class:`PHashEmbedder`: 64-bit perceptual hashes (imagehash's ``phash``) packed into 8 bytes, compared by Hamming
  distance: near-duplicates.

Each embedder describes itself (:meth:`Embedder.describe`: kind, name, weights sha256, dimension, metric,
preprocessing); an index stores that record and refuses a query embedder whose record differs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError, WeightsNotFoundError

__all__ = ["Embedder", "TorchEmbedder", "PHashEmbedder", "load_embedder", "file_sha256", "embed_files"]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Embedder:
    """Images -> vectors. ``binary`` embedders give uint8 (N, dim // 8) codes; the others float32 (N, dim)."""

    kind: str = ""
    name: str = ""
    dim: int = 0
    binary: bool = False
    metric: str = "cosine"

    def describe(self) -> dict[str, Any]:
        """The record an index keeps to refuse queries embedded differently."""
        raise NotImplementedError

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB (H, W, 3) arrays -> vectors (one row per image)."""
        raise NotImplementedError


class PHashEmbedder(Embedder):
    """64-bit DCT perceptual hash (imagehash.phash, hash_size 8) packed into 8 bytes; Hamming distance."""

    kind = "phash"
    name = "phash"
    binary = True
    metric = "hamming"

    def __init__(self, hash_size: int = 8) -> None:
        if hash_size != 8:
            raise ConfigError(f"phash hash_size must be 8 (64-bit hashes), got {hash_size!r}")
        self.hash_size = hash_size
        self.dim = hash_size * hash_size

    def describe(self) -> dict[str, Any]:
        return {"kind": "phash", "name": "phash", "weights_sha256": None, "dim": self.dim, "metric": "hamming",
                "preprocessing": {"hash": "phash", "hash_size": self.hash_size, "colour": "L (ITU-R 601-2)", "highfreq_factor": 4}}

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import imagehash
        from PIL import Image

        out = np.zeros((len(images), self.dim // 8), np.uint8)
        for i, img in enumerate(images):
            bits = imagehash.phash(Image.fromarray(np.asarray(img)), hash_size=self.hash_size).hash.flatten()
            out[i] = np.packbits(bits.astype(np.uint8))
        return out


def _state_sha256(model: Any) -> str:
    """sha256 over a module's tensors (names, shapes and bytes, in order): identifies in-memory weights."""
    h = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class TorchEmbedder(Embedder):
    """A classifier's pooled, L2-normalised features on CPU, in batches.

    Parameters
    ----------
    model : torch.nn.Module
        A timm or pixlearn model (``forward_features`` and ``forward_head(pre_logits=True)``); its preprocessing
        is read with :func:`pixlearn.models.get_preprocess`.
    kind, name : str
        ``"timm"`` / ``"run"`` / ``"model"`` and the model name or run path, recorded in the manifest.
    weights_sha256 : str, optional
        The weights file's sha256 (default: a digest of the model's tensors).
    """

    metric = "cosine"

    def __init__(self, model: Any, *, kind: str = "model", name: str = "", weights_sha256: str | None = None,
                 batch_size: int = 32) -> None:
        import torch

        from pixlearn.models import get_preprocess

        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise ConfigError(f"model {name or type(model).__name__} has no forward_features/forward_head; "
                              "use a timm or pixlearn classifier")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 1024:
            raise ConfigError(f"batch_size must be an integer in 1..1024, got {batch_size!r}")
        self.model = model.eval().to(torch.device("cpu"))
        self.kind, self.name = kind, name or type(model).__name__
        self.batch_size = batch_size
        self.preprocess = get_preprocess(model)
        self.weights_sha256 = weights_sha256 or _state_sha256(model)
        size = self.preprocess.img_size
        with torch.no_grad():
            self.dim = int(self._features(torch.zeros((1, 3, *size))).shape[1])

    def _features(self, x: Any) -> Any:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True).flatten(1)

    def describe(self) -> dict[str, Any]:
        pre = self.preprocess
        return {"kind": self.kind, "name": self.name, "weights_sha256": self.weights_sha256, "dim": self.dim,
                "metric": "cosine",
                "preprocessing": {"img_size": list(pre.img_size), "mean": [float(v) for v in pre.mean],
                                  "std": [float(v) for v in pre.std], "resize": "bilinear, antialiased, to img_size",
                                  "features": "forward_head(pre_logits=True), L2-normalised"}}

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        from pixlearn.tasks.classify.predict import preprocess_images

        pre = self.preprocess
        out = np.zeros((len(images), self.dim), np.float32)
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                x = preprocess_images(chunk, img_size=pre.img_size, mean=pre.mean, std=pre.std)
                f = torch.nn.functional.normalize(self._features(x).float(), dim=1)
                out[start:start + len(chunk)] = f.numpy()
        return out


def _from_run(path: Path, batch_size: int) -> TorchEmbedder:
    from pixlearn.engine.run_card import read_model_card
    from pixlearn.tasks.registry import task

    load = task("classify").load("load")
    clf = load(path, device="cpu")
    _, weights = read_model_card(path, what="classification", command="pixlearn train classify")
    return TorchEmbedder(clf.model, kind="run", name=str(path.resolve()), weights_sha256=file_sha256(weights),
                         batch_size=batch_size)


def _from_timm(name: str, batch_size: int) -> TorchEmbedder:
    from pixlearn.models import create_model
    from pixlearn.models.registry import _looked_for, check_model_name, find_pretrained

    check_model_name(name.partition(".")[0])
    found = find_pretrained(name)
    if found is None:
        raise WeightsNotFoundError(
            f"--model {name}: no local weights file ({_looked_for(name)}); the index never downloads. "
            f"Add one with: pixlearn weights add FILE --model {name}")
    model = create_model(name, num_classes=1000, weights=found)
    return TorchEmbedder(model, kind="timm", name=name, weights_sha256=file_sha256(found), batch_size=batch_size)


def load_embedder(spec: str | os.PathLike[str] | dict[str, Any], *, batch_size: int = 32) -> Embedder:
    """``"phash"``, a classification run folder, or a pretrained timm name (local weights only); or a manifest's
    model record (what :meth:`Embedder.describe` gave)."""
    if isinstance(spec, dict):
        kind, name = spec.get("kind"), str(spec.get("name"))
        if kind == "phash":
            return PHashEmbedder()
        if kind == "run":
            return _from_run(Path(name), batch_size)
        if kind == "timm":
            return _from_timm(name, batch_size)
        raise ConfigError(f"the index was built with an in-memory model ({name!r}); pass the same model as embedder=")
    text = str(spec)
    if text == "phash":
        return PHashEmbedder()
    path = Path(text)
    if path.exists():
        if not path.is_dir() and path.suffix != ".safetensors":
            raise ConfigError(f"--model {text}: is a file, not a classification run folder; pass a run folder, "
                              "a pretrained model name (tf_efficientnet_lite0) or phash")
        return _from_run(path, batch_size)
    if os.sep in text or text.startswith("."):
        raise ConfigError(f"--model {text}: no such run folder; pass a run folder, a pretrained model name or phash")
    return _from_timm(text, batch_size)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode one file safely into uint8 RGB."""
    from pixlearn.io.image import read_image

    return read_image(path, mode="RGB")


def embed_files(embedder: Embedder, paths: Sequence[Path], *, progress: bool | None = None,
                batch_size: int = 32) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Embed ``paths`` in batches: (vectors of the readable files, their positions in ``paths``, errors by position).

    A file that cannot be read is reported in ``errors`` and skipped; it never stops the run.
    """
    from pixlearn.engine.progress import progress_bar

    rows: list[np.ndarray] = []
    ok: list[int] = []
    errors: dict[int, str] = {}
    bar, task = progress_bar(progress, len(paths), f"embedding ({embedder.name})")
    with bar:
        for start in range(0, len(paths), batch_size):
            images, where = [], []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    images.append(read_rgb(paths[i]))
                    where.append(i)
                except (PixlearnError, OSError, ValueError) as exc:
                    errors[i] = f"{type(exc).__name__}: {exc}"
            if images:
                rows.append(embedder.embed(images))
                ok.extend(where)
            bar.advance(task, min(batch_size, len(paths) - start))
    width = embedder.dim // 8 if embedder.binary else embedder.dim
    dtype = np.uint8 if embedder.binary else np.float32
    vectors = np.concatenate(rows) if rows else np.zeros((0, width), dtype)
    return vectors, ok, errors
