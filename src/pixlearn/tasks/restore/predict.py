"""A trained restorer rebuilt from its run folder alone, applied to images of any size by overlapping tiles.

A restoration run's ``weights/model.json`` holds the restorer's spec (no code, no pickles), the
task, grey or colour, the scale and the degradation it was trained on; ``weights/best.safetensors``
holds the tensors (and the same description in its header).

Images larger than a tile are cut into overlapping tiles (:func:`pixlearn.engine.tiling.tiled_apply`)
whose outputs are blended, so memory stays bounded whatever the image size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.restore.degrade import to_float, to_uint8
from pixlearn.engine.run_card import card_task, read_model_card
from pixlearn.engine.trainer import resolve_device

__all__ = [
    "MODEL_FORMAT",
    "Restorer",
    "is_restore_run",
    "load_restorer",
    "model_card",
    "restore_files",
]

#: The ``format`` tag of a restoration run's ``weights/model.json``.
MODEL_FORMAT = "pixlearn.restore/1"



def model_card(model: Any, *, restore_task: str, mode: str, degradation: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ``weights/model.json`` of a restoration run holds."""
    spec = model.pixlearn_spec
    return {
        "format": MODEL_FORMAT,
        "task": "restore",
        "restore_task": restore_task,
        "mode": mode,
        "scale": spec.scale,
        "degradation": dict(degradation) if degradation is not None else None,
        "model": spec.to_dict(),
    }


@dataclass
class Restorer:
    """A restoration model in eval mode, applied tile by tile.

    Parameters
    ----------
    model : nn.Module
        From :func:`~pixlearn.models.create_restorer` (carries ``pixlearn_spec`` and ``halo``).
    mode : {"L", "RGB"}
        What the model takes: grey (1 channel) or colour (3).
    tile : int, default 256
        Tile side in input pixels; images up to this size go through in one piece.
    overlap : int, optional
        Pixels shared by neighbouring tiles; default ``max(2 * halo, 16)`` (twice the model's
        receptive radius), which makes tiled output match whole-image output closely.
    batch : int, default 4
        Tiles per forward pass.

    Examples
    --------
    >>> from pixlearn.models import create_restorer
    >>> r = Restorer(create_restorer("dncnn", depth=3, width=4), mode="L", tile=16)
    >>> r.restore(np.zeros((20, 30), np.uint8)).shape
    (20, 30)
    """

    model: torch.nn.Module
    mode: str = "L"
    tile: int = 256
    overlap: int | None = None
    batch: int = 4
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    restore_task: str = "denoise"
    degradation: dict[str, Any] | None = None
    run_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("L", "RGB"):
            raise ConfigError(f"mode must be L or RGB, got {self.mode!r}")
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 8:
            raise ConfigError(f"tile must be an integer >= 8, got {self.tile!r}")
        self.channels = 1 if self.mode == "L" else 3
        spec = getattr(self.model, "pixlearn_spec", None)
        self.scale = int(getattr(spec, "scale", 1))
        halo = int(getattr(self.model, "halo", 16))
        if self.overlap is None:
            self.overlap = max(2 * halo, 16)
        self.overlap = min(int(self.overlap), self.tile // 2)
        self.model.eval().to(self.device)

    @torch.no_grad()
    def restore_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Restore an (N, C, h, w) float batch in [0, 1]; returns (N, C, scale*h, scale*w), not clamped."""
        from pixlearn.engine.tiling import tiled_apply

        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ShapeError(f"the restorer takes (N, {self.channels}, H, W) batches, got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        if max(x.shape[-2:]) <= self.tile:
            return self.model(x).float()
        return tiled_apply(self.model, x, tile=self.tile, overlap=int(self.overlap), batch=self.batch, scale=self.scale)

    def restore_float(self, image: np.ndarray) -> np.ndarray:
        """Restore a float (H, W, C) image in [0, 1] (C = the model's channels); float32 (sH, sW, C), not clamped."""
        a = np.asarray(image, dtype=np.float32)
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] != self.channels:
            raise ShapeError(f"restore_float takes (H, W, {self.channels}) float images, got {a.shape}")
        x = torch.from_numpy(np.array(a.transpose(2, 0, 1), dtype=np.float32, copy=True))[None]
        return self.restore_tensor(x)[0].cpu().numpy().transpose(1, 2, 0)

    def restore(self, image: np.ndarray) -> np.ndarray:
        """Restore a uint8 (H, W) or (H, W, 3) image; returns uint8 in the same layout, ``scale`` times larger.

        A grey model restores a colour image channel by channel; a colour model takes a grey image
        as three equal channels and returns their mean. The float result is clipped and rounded
        (``round(255 x)``).
        """
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
            raise ShapeError(f"restore takes uint8 (H, W) or (H, W, 3) images, got {a.dtype} {a.shape}")
        x = to_float(a)  # (H, W, C)
        if x.shape[2] == self.channels:
            out = self.restore_float(x)
        elif self.channels == 1:  # colour image, grey model: channel by channel
            t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[:, None]
            out = self.restore_tensor(t)[:, 0].cpu().numpy().transpose(1, 2, 0)
        else:  # grey image, colour model
            out = self.restore_float(np.repeat(x, 3, axis=2)).mean(axis=2, keepdims=True)
        res = to_uint8(out)
        return res if a.ndim == 2 or res.ndim == 3 else res[..., None]


def is_restore_run(run: str | os.PathLike[str]) -> bool:
    """Whether ``run`` (a run folder, its weights/ folder or a weights file) holds a restoration model."""
    return card_task(run) == "restore"


def _card(path: Path) -> tuple[dict[str, Any], Path]:
    return read_model_card(path, what="restoration", command="pixlearn train restore")


def load_restorer(
    run: str | os.PathLike[str], *, device: str | torch.device | None = "cpu", tile: int = 256, overlap: int | None = None,
) -> Restorer:
    """Rebuild a trained restorer from its run folder (or its ``best.safetensors``) alone.

    Raises
    ------
    ConfigError
        Not a restoration run (the message says what it is instead).
    """
    from pixlearn.models import build_restorer, load_weights

    path = Path(run)
    card, weights = _card(path)
    if card.get("task") != "restore" or card.get("format") != MODEL_FORMAT:
        raise ConfigError(
            f"{path}: holds a {card.get('task', 'unknown')!r} model (format {card.get('format')!r}), not a restorer; "
            f"pixlearn train restore writes format {MODEL_FORMAT!r}"
        )
    model = build_restorer(card["model"])
    load_weights(model, weights, strict=True)
    return Restorer(
        model, mode=str(card.get("mode", "L")), tile=tile, overlap=overlap, device=resolve_device(device),
        restore_task=str(card.get("restore_task", "denoise")), degradation=card.get("degradation"),
        run_dir=path if path.is_dir() else None,
    )


def restore_files(
    run: Restorer | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    device: str | None = "cpu",
    tile: int = 256,
    overlap: int | None = None,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Restore image files, folders and globs with a run folder's model and write the results.

    ``out`` is a file (``.png``, ``.jpg``...) for one image, else a folder that mirrors the inputs'
    sub-folders with ``<name>.png`` files.

    Returns
    -------
    list of dict
        ``{"path", "output", "width", "height", "out_width", "out_height", "seconds", "error"}`` per
        input; an unreadable file is reported in ``error`` and does not stop the others.
    """
    from pixlearn.io import expand_sources
    from pixlearn.tasks.restore.files import output_paths, restore_rows

    restorer = run if isinstance(run, Restorer) else load_restorer(run, device=device, tile=tile, overlap=overlap)
    found = expand_sources(images)
    return restore_rows(restorer, [p for p, _ in found], output_paths(found, out), progress=progress)
