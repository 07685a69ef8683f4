"""Typed configuration of a segmentation run: data, model, optim, schedule and train sections, YAML in and out.

The ``optim`` and ``schedule`` sections are classification's own (:mod:`pixlearn.engine.config`);
``data``, ``model`` and ``train`` hold what segmentation needs. Unknown keys are rejected with a
did-you-mean suggestion, and flat names (``epochs``, ``lr``, ``batch``, ``img_size``, ``arch``,
``encoder``, ``loss``...) map onto fields, which is how CLI flags and
:func:`~pixlearn.tasks.segment.train.train_segmenter` keywords reach the config.

Examples
--------
>>> cfg = SegmentConfig.from_overrides(arch="fpn", encoder="tu-resnet18", loss="focal+dice", epochs=3)
>>> cfg.model.arch, cfg.train.loss, cfg.train.epochs
('fpn', 'focal+dice', 3)
>>> SegmentConfig.from_overrides(encodr="tu-resnet18")
Traceback (most recent call last):
...
pixlearn._core.errors.UnknownNameError: unknown segmentation option 'encodr'; did you mean 'encoder'? ...
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from pixlearn.engine.config import MINUTES_HELP, OptimConfig, RunConfig, ScheduleConfig, _Section, flat_keys

__all__ = ["SegmentConfig", "SegmentDataConfig", "SegmentModelConfig", "SegmentTrainConfig", "SEGMENT_FLAT_KEYS", "load_segment_config"]


class SegmentDataConfig(_Section):
    """Where the images and masks are, how they are split, cropped and batched."""

    path: str | None = Field(None, description="Mask dataset (images/ + masks/, or train/image/ + train/label/); the CLI's --data.")
    img_size: int = Field(256, ge=16, le=4096, description="Training crop size (square; a multiple of the encoder's output stride, 32).")
    augment: str | list[Any] = Field("flips", description="flips (random crop + flips), none (crop only), or a preset / YAML / list applied after them.")
    batch_size: int = Field(8, ge=1, description="Crops per batch (per device).")
    val_batch_size: int = Field(1, ge=1, description="Whole validation images per batch (they must share a size when > 1).")
    workers: int = Field(0, ge=0, description="Data-loading worker processes (0: load in the training process).")
    crops_per_image: int = Field(1, ge=1, description="Random crops drawn from each training image per epoch.")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of train/ held out for validation when there is no val/ split.")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Share of train/ held out for the test score when there is no test/ split.")
    class_weights: list[float] | None = Field(None, description="Cross-entropy weight per class (class order).")
    ignore_index: int | None = Field(255, ge=0, le=65535, description="Mask value left out of the loss and metrics (None: none).")

    @model_validator(mode="after")
    def _fractions(self) -> SegmentDataConfig:  # noqa: D102
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(f"val_fraction + test_fraction must leave at least 10% for training, got {self.val_fraction} + {self.test_fraction}")
        if self.class_weights is not None and any(w < 0 for w in self.class_weights):
            raise ValueError("class_weights must be >= 0")
        return self


class SegmentModelConfig(_Section):
    """Which network on which encoder, from which weights."""

    arch: str = Field("unet", description="unet, unetplusplus, fpn or deeplabv3plus.")
    encoder: str = Field("tu-resnet18", description="tu-<timm name> (any timm model) or an smp encoder name.")
    encoder_depth: int = Field(5, ge=3, le=5, description="Encoder stages (inputs must be divisible by 2**depth).")
    decoder_channels: int | list[int] | None = Field(None, description="smp decoder widths (default: smp's).")
    encoder_weights: str | None = Field(None, description="Local weights file for the encoder (nothing downloads).")
    pretrained: bool = Field(False, description="Start a tu-<timm name> encoder from the local weights folders ($PIXLEARN_WEIGHTS, then the cache; see pixlearn weights add); nothing downloads.")
    weights: str | None = Field(None, description="Start from a whole network's weights (e.g. a run's best.safetensors).")
    binary: bool | None = Field(None, description="One sigmoid output for 2-class masks (default: yes when there are 2 classes).")
    freeze_epochs: int = Field(0, ge=0, description="Train only the decoder for this many epochs, then unfreeze the encoder.")
    backbone_lr_mult: float | None = Field(None, gt=0.0, le=1.0, description="Encoder LR = lr x this; default 0.1 with encoder weights, else 1.")


class SegmentTrainConfig(_Section):
    """The loop: epochs, loss, early stopping, tiling, hardware and reproducibility."""

    epochs: int = Field(30, ge=1, description="Maximum epochs.")
    seed: int = Field(0, ge=0, description="Seeds the split, the initialisation, the data order and the crops.")
    loss: str = Field("ce+dice", description="ce, dice, focal or a weighted sum such as ce+dice or 0.5*focal+dice.")
    monitor: Literal["val_miou", "val_dice", "val_pixel_accuracy", "val_loss"] = Field("val_miou", description="Metric for early stopping and the best weights.")
    keep: Literal["best", "last"] = Field("best", description="Weights to keep: the best epoch by monitor, or the last epoch (val scores then unbiased by selection).")
    patience: int = Field(10, ge=0, description="Early stopping: epochs without improvement of monitor (0: never stop early).")
    min_delta: float = Field(0.0, ge=0.0, description="Early stopping: smallest change that counts as an improvement.")
    minutes: float | None = Field(None, gt=0.0, le=525600.0, description=MINUTES_HELP)
    find_lr: bool = Field(False, description="Run Lightning's LR finder first and train with its suggestion.")
    folds: int = Field(0, ge=0, description="k-fold cross-validation on the non-test images (0 or 1: off).")
    fold: int = Field(0, ge=0, description="Set by k-fold runs in each fold's config: which fold (1..folds) this run trains; 0 for the whole cross-validation.")
    overlap: float = Field(0.25, ge=0.0, lt=1.0, description="Tile overlap (fraction of the crop) for images larger than the crop.")
    val_every: int = Field(1, ge=1, description="Validate every this many epochs (whole images are costly; the final scores are always measured).")
    deterministic: bool = Field(False, description="Deterministic algorithms (slower on GPU).")
    precision: Literal["auto", "32", "bf16", "16"] = Field("auto", description="auto: bf16 autocast on a GPU that supports it, fp32 on CPU.")
    channels_last: bool | None = Field(None, description="channels_last memory format; default on for GPU, off on CPU.")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = Field("auto", description="Where to train.")
    devices: int = Field(1, ge=1, description="Devices (processes) per node.")
    strategy: Literal["auto", "ddp"] = Field("auto", description="Multi-device strategy.")
    num_nodes: int = Field(1, ge=1, description="Nodes (multi-node DDP).")
    accumulate: int = Field(1, ge=1, description="Accumulate gradients over this many batches.")


_SECTIONS: dict[str, type[BaseModel]] = {
    "data": SegmentDataConfig,
    "model": SegmentModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": SegmentTrainConfig,
}
_ALIASES = {
    "data": ("data", "path"),
    "schedule": ("schedule", "name"),
    "batch": ("data", "batch_size"),
    "model": ("model", "arch"),
    "backbone": ("model", "encoder"),
}


#: Flat names (CLI flags, keyword arguments) -> (section, field).
SEGMENT_FLAT_KEYS: dict[str, tuple[str, str]] = flat_keys(_SECTIONS, _ALIASES)


class SegmentConfig(RunConfig):
    """The whole configuration of a segmentation run (build it with :meth:`from_dict` / :meth:`from_overrides`)."""

    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = _SECTIONS
    FLAT: ClassVar[dict[str, tuple[str, str]]] = SEGMENT_FLAT_KEYS
    WHAT: ClassVar[str] = "segmentation"
    TASK: ClassVar[str] = "segment"

    task: Literal["segment"] = "segment"
    data: SegmentDataConfig = Field(default_factory=SegmentDataConfig)
    model: SegmentModelConfig = Field(default_factory=SegmentModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: SegmentTrainConfig = Field(default_factory=SegmentTrainConfig)


def load_segment_config(path: str | os.PathLike[str]) -> SegmentConfig:
    """Read and validate a YAML segmentation config (any subset of the sections)."""
    return SegmentConfig.load(path)
