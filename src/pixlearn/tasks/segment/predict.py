"""A trained segmenter rebuilt from its run folder alone; masks for images of any size; mask overlays.

A segmentation run's ``weights/model.json`` holds the network's spec (``source: smp``), the class
names, whether the network is binary, and how to tile large images (the training size and the
overlap); ``weights/best.safetensors`` the tensors (with the same description in its header).
Images larger than the training size are segmented tile by tile with blended overlaps
(:func:`~pixlearn.engine.tiling.tiled_apply`), so any size works.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixlearn._core.checks import probability_logit
from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.engine.run_card import card_task, read_model_card
from pixlearn.tasks.segment.render import PALETTE, class_fractions, mask_file_array, mask_palette, mask_targets, overlay_mask, write_mask_files

__all__ = [
    "MODEL_FORMAT",
    "PALETTE",
    "Segmenter",
    "load_segmenter",
    "segment_model_card",
    "overlay_mask",
    "predict_segment_files",
    "is_segment_run",
    "mask_file_array",
    "mask_palette",
]

#: The ``format`` tag of a segmentation run's ``weights/model.json``.
MODEL_FORMAT = "pixlearn.segmenter/1"


def segment_model_card(
    model: Any, classes: Sequence[str], *, binary: bool, tile: tuple[int, int], overlap: float, multiple: int,
    ignore_index: int | None = 255, mask_coding: str = "index", tta: str = "none", threshold: float = 0.5,
) -> dict[str, Any]:
    """What ``weights/model.json`` of a segmentation run holds.

    ``mask_coding`` is the training set's value coding (:class:`pixlearn.data.masks.MaskCoding`:
    ``"binary255"`` or ``"index"``); predicted masks are written back in it. ``threshold`` is a binary
    segmenter's decision threshold on the foreground probability (chosen on val at the end of training).
    """
    from pixlearn.models import model_spec

    return {
        "format": MODEL_FORMAT,
        "task": "segment",
        "classes": [str(c) for c in classes],
        "binary": bool(binary),
        "ignore_index": ignore_index,
        "mask_coding": str(mask_coding),
        "inference": {"tile": [int(tile[0]), int(tile[1])], "overlap": float(overlap), "multiple": int(multiple), "tta": str(tta),
                      "threshold": float(threshold)},
        "model": model_spec(model).to_dict(),
    }

@dataclass
class Segmenter:
    """A segmentation network in eval mode with its classes, preprocessing and tiling.

    ``predict`` takes uint8 (H, W, 3) RGB (or (H, W) grey) arrays of any size, like every pixlearn
    API, and returns (H, W) class-id masks.
    """

    model: torch.nn.Module
    classes: list[str]
    binary: bool
    tile: tuple[int, int]
    overlap: float = 0.25
    multiple: int = 32
    run_dir: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch: int = 4
    #: The training set's mask value coding ("binary255": 0/255 files; "index": class ids, palette PNG files).
    mask_coding: str = "index"
    #: Test-time augmentation (:func:`~pixlearn.engine.tiling.with_tta`): "none", "transpose" (2 passes), "flip" (4) or "d4" (8).
    tta: str = "none"
    #: A binary segmenter's decision threshold: a pixel is foreground when its probability is above it.
    threshold: float = 0.5

    def __post_init__(self) -> None:
        from pixlearn.models import get_preprocess

        from pixlearn._core.tta import tta_views

        tta_views(self.tta)  # a clear error for an unknown mode, before any work
        probability_logit(self.threshold)  # and for a threshold outside (0, 1)
        self.preprocess = get_preprocess(self.model)
        self.model.eval().to(self.device)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """A uint8 image -> the network's normalised (1, C, H, W) float input (no resizing)."""
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ShapeError(f"images must be uint8 (H, W, 3) or (H, W) arrays, got {arr.dtype} {arr.shape}")
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        chans = self.preprocess.input_size[0]
        if arr.shape[2] != chans:
            arr = np.repeat(arr[..., :1], chans, axis=2) if arr.shape[2] == 1 else arr.mean(axis=2, keepdims=True).round().astype(np.uint8)
        x = torch.from_numpy(np.array(arr, dtype=np.float32)).permute(2, 0, 1).div_(255)
        mean = torch.tensor(self.preprocess.mean).view(-1, 1, 1)
        std = torch.tensor(self.preprocess.std).view(-1, 1, 1)
        return ((x - mean) / std).unsqueeze(0)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) logits of a normalised (N, C, H, W) batch of any size (tiled beyond the training size)."""
        from pixlearn.engine.tiling import tiled_apply, with_tta

        return tiled_apply(with_tta(self.model, self.tta), x.to(self.device), tile=self.tile, overlap=self.overlap, batch=self.batch, multiple=self.multiple).cpu()

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """(num_classes, H, W) float32 class probabilities of one image."""
        z = self.logits(self.to_tensor(image))[0]
        if self.binary:
            p = torch.sigmoid(z[0])
            return torch.stack([1 - p, p]).numpy()
        return torch.softmax(z, dim=0).numpy()

    def predict(self, image: np.ndarray) -> np.ndarray:
        """The (H, W) uint8 class-id mask of one image (any size).

        Examples
        --------
        >>> from pixlearn.models import create_segmentation_model
        >>> net = create_segmentation_model("unet", encoder="tu-resnet18", num_classes=1, img_size=32)
        >>> seg = Segmenter(net, ["background", "cell"], binary=True, tile=(32, 32))
        >>> mask = seg.predict(np.zeros((40, 70, 3), np.uint8))
        >>> mask.shape, mask.dtype.name, set(np.unique(mask).tolist()) <= {0, 1}
        ((40, 70), 'uint8', True)
        """
        z = self.logits(self.to_tensor(image))
        from pixlearn.tasks.segment.module import logits_to_mask

        return logits_to_mask(z, binary=self.binary, threshold=self.threshold)[0].numpy().astype(np.uint8)


def is_segment_run(run: str | os.PathLike[str]) -> bool:
    """Whether ``run`` is a segmentation run folder (its ``weights/model.json`` says task: segment)."""
    return card_task(run) == "segment"


def _card_and_weights(path: Path) -> tuple[dict[str, Any], Path]:
    return read_model_card(path, what="segmentation", command="pixlearn train segment")


def load_segmenter(
    run: str | os.PathLike[str], *, device: str | torch.device | None = "cpu", overlap: float | None = None, tta: str | None = None,
    threshold: float | None = None,
) -> Segmenter:
    """Rebuild a trained segmenter from its run folder (or its ``best.safetensors``) alone.

    Parameters
    ----------
    run : path
        ``runs/segment/<name>``, its ``weights/`` folder, or a ``best.safetensors`` written by pixlearn.
    device : str, default "cpu"
        ``"auto"`` picks a GPU when there is one.
    overlap : float, optional
        Tile overlap for large images (default: the run's).
    tta : {"none", "transpose", "flip", "d4"}, optional
        Test-time augmentation (default: the run's, ``inference.tta`` of its model card, chosen on val at the
        end of training unless ``train.tta`` fixed it; "none" for runs that do not record one).
    threshold : float, optional
        A binary segmenter's decision threshold on the foreground probability (default: the run's,
        ``inference.threshold``, chosen on val at the end of training; 0.5 for runs that do not record one).

    Raises
    ------
    ConfigError
        Not a segmentation run (the message says what is wrong).
    """
    from pixlearn.models import build_from_spec, load_weights
    from pixlearn.engine.trainer import resolve_device

    path = Path(run)
    card, weights = _card_and_weights(path)
    if card.get("format") != MODEL_FORMAT or card.get("task") != "segment":
        raise ConfigError(
            f"{path}: model description has format {card.get('format')!r} (task {card.get('task')!r}), expected {MODEL_FORMAT!r}; "
            "is this a segmentation run?"
        )
    model = build_from_spec(card["model"])
    load_weights(model, weights, strict=True)
    classes = [str(c) for c in card["classes"]]
    inf = card.get("inference") or {}
    tile = tuple(int(v) for v in inf.get("tile") or model.pixlearn_spec.preprocess.img_size)
    return Segmenter(
        model, classes, binary=bool(card.get("binary")), tile=(tile[0], tile[1]),
        overlap=float(inf.get("overlap", 0.25) if overlap is None else overlap), multiple=int(inf.get("multiple", 32)),
        run_dir=path if path.is_dir() else None, device=resolve_device(device),
        mask_coding=str(card.get("mask_coding") or "index"),  # runs from before the coding was recorded: class ids
        tta=str(inf.get("tta") or "none") if tta is None else tta,
        threshold=float(inf.get("threshold", 0.5) if threshold is None else threshold),
    )


def _progress(enabled: bool | None, total: int, description: str) -> Any:
    from pixlearn.engine.progress import progress_bar

    return progress_bar(enabled, total, description)


def iter_predictions(seg: Segmenter, paths: Sequence[Path], *, progress: bool | None = None) -> Iterator[tuple[Path, np.ndarray | None, np.ndarray | None, str | None]]:
    """``(path, image, mask, error)`` for each file; an unreadable file has ``None`` arrays and its error."""
    from pixlearn._core.errors import PixlearnError
    from pixlearn.io import read_image

    bar, task = _progress(progress, len(paths), "segmenting")
    with bar:
        for p in paths:
            try:
                image = read_image(p)
            except (PixlearnError, OSError) as exc:
                yield p, None, None, f"{type(exc).__name__}: {exc}"
            else:
                yield p, image, seg.predict(image), None
            bar.advance(task)


def predict_segment_files(
    run: Segmenter | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    overlay: bool = False,
    device: str | None = "cpu",
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Segment image files, folders (recursively) and globs with a run folder's network.

    Parameters
    ----------
    out : path, optional
        Write ``<stem>.png`` masks here (a single input may name a ``.png`` file instead of a
        folder), in the training set's value coding (:func:`mask_file_array`): a binary 0/255 set
        gets grey 0/255 masks; any other set a palette PNG whose pixel values are the class ids,
        shown in the overlay colours. Without it nothing is written.
    overlay : bool, default False
        Also write ``<stem>_overlay.png``: the image with the predicted classes tinted.

    Returns
    -------
    list of dict
        One row per file: ``{"path", "width", "height", "mask", "overlay", "classes", "error"}`` --
        ``classes`` maps each predicted class to its share of the pixels; an unreadable file has
        its reason in ``error`` and never stops the batch.

    Examples
    --------
    >>> from pixlearn.models import create_segmentation_model
    >>> seg = Segmenter(create_segmentation_model("unet", num_classes=1, img_size=32), ["bg", "fg"], binary=True, tile=(32, 32))
    >>> [(r["mask"], r["error"][:18]) for r in predict_segment_files(seg, ["missing.png"])]
    [(None, 'ImageNotFoundError')]
    """
    from pixlearn.io import expand_sources

    seg = run if isinstance(run, Segmenter) else load_segmenter(run, device=device)
    paths = [Path(p) for p, _ in expand_sources(images)]
    target = Path(out) if out is not None else None
    mask_paths = mask_targets(paths, target)
    rows: list[dict[str, Any]] = []
    for (p, image, mask, error), mask_path in zip(iter_predictions(seg, paths, progress=progress), mask_paths):
        row: dict[str, Any] = {"path": str(p), "width": None, "height": None, "mask": None, "overlay": None, "classes": {}, "error": error}
        if mask is not None and image is not None:
            row.update(height=int(mask.shape[0]), width=int(mask.shape[1]), classes=class_fractions(mask, seg.classes))
            if mask_path is not None:
                row["mask"], row["overlay"] = write_mask_files(mask_path, image, mask, seg.mask_coding, overlay=overlay)
        rows.append(row)
    return rows
