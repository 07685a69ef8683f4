"""Typed configuration of a detection run: data, model, optim, schedule and train sections, YAML in and out.

The ``optim`` and ``schedule`` sections are the engine's shared ones (:mod:`pixlearn.engine.config`); ``data``,
``model`` and ``train`` hold what detection needs. Unknown keys are rejected with a did-you-mean suggestion, and flat
names (``epochs``, ``lr``, ``batch``, ``img_size``, ``arch``, ``backbone``, ``tile``...) map onto fields, which is how
CLI flags and :func:`~pixlearn.tasks.detect.train.train_detector` keywords reach the config.

Examples
--------
>>> cfg = DetectConfig.from_overrides(arch="fcos", backbone="resnet18", epochs=3, tile=256)
>>> cfg.model.arch, cfg.model.backbone, cfg.train.epochs, cfg.data.tile
('fcos', 'resnet18', 3, 256)
>>> DetectConfig.from_overrides(arhc="fcos")
Traceback (most recent call last):
...
pixlearn._core.errors.UnknownNameError: unknown detection option 'arhc'; did you mean 'arch'? ...
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pixlearn.engine.config import EngineTrainConfig, OptimConfig, RunConfig, ScheduleConfig, _Section, flat_keys

__all__ = ["ARCH_CHOICES", "DEFAULT_ARCH", "MIN_TILE", "SMALL_BATCH", "DetectConfig", "DetectDataConfig", "DetectModelConfig",
           "DetectTrainConfig", "DETECT_FLAT_KEYS", "load_detect_config"]

#: What ``arch`` may be: ``auto`` is Mask R-CNN for data with instance masks (polygons), else :data:`DEFAULT_ARCH`.
ARCH_CHOICES = ("auto", "fcos", "retinanet", "ssdlite", "faster_rcnn", "mask_rcnn")
#: The architecture ``auto`` picks for box-only data (the fastest to converge on small data sets on a CPU, measured).
DEFAULT_ARCH = "faster_rcnn"
#: The smallest tile side (pixels) tiled training and inference accept.
MIN_TILE = 64
#: Below this many images per batch a pretrained backbone's BatchNorm statistics are kept as loaded.
SMALL_BATCH = 16


class DetectDataConfig(_Section):
    """Where the images and boxes are, how they are split, augmented, tiled and batched."""

    path: str | None = Field(None, description="A COCO, YOLO or Pascal VOC dataset folder; the CLI's --data.")
    img_size: int | None = Field(None, ge=64, le=2048, description="Network input side: images are letterboxed to img_size x img_size (longer side resized); default 512, or planned for --minutes.")
    augment: str | list[Any] = Field("detect", description="detect (zoom crop keeping boxes, horizontal flip, colour jitter), none, or a pixlearn.data.augment preset / YAML / list.")
    batch_size: int | None = Field(None, ge=1, le=256, description="Images per batch (per device); default 4, or planned for --minutes.")
    workers: int = Field(0, ge=0, le=64, description="Data-loading worker processes (0: load in the training process).")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of train/ held out for validation when there is no val/ split.")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Share of train/ held out for the final scores when there is no test/ split.")
    tile: int | None = Field(None, ge=0, le=8192, description=f"Train (and predict) on tiles of this side in pixels, at least {MIN_TILE} (0: never; "
                                                           "default: on when the median box is small against large images).")
    tile_overlap: float = Field(0.2, ge=0.0, lt=0.9, description="Tile overlap (fraction of the tile).")
    repeat_threshold: float | None = Field(None, ge=0.0, le=1.0, description="Repeat-factor sampling threshold t (LVIS): images with a class seen in a "
                                                                          "share f < t of the training images repeat sqrt(t / f) times per epoch; "
                                                                          "default: a quarter of the commonest class's share when the rarest is 4x rarer, else off (0).")

    @model_validator(mode="after")
    def _check(self) -> DetectDataConfig:  # noqa: D102
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(f"val_fraction + test_fraction must leave at least 10% for training, got {self.val_fraction} + {self.test_fraction}")
        if self.tile is not None and 0 < self.tile < MIN_TILE:
            raise ValueError(f"tile must be 0 (off) or at least {MIN_TILE} pixels, got {self.tile}; use --tile {MIN_TILE} or larger")
        return self


class DetectModelConfig(_Section):
    """Which detector on which backbone, from which weights."""

    arch: str = Field("auto", description="auto (mask_rcnn for data with instance masks, else faster_rcnn), fcos, retinanet, ssdlite, faster_rcnn or mask_rcnn.")
    backbone: str | None = Field(None, description="A timm model name (its last 3 stages under an FPN) or resnet18/34/50, mobilenet_v3_large "
                                                   "(torchvision); default tf_efficientnet_lite0.")
    pretrained: bool | None = Field(None, description="Start the backbone from its ImageNet weights in the local weights folders ($PIXLEARN_WEIGHTS, "
                                                      "then the cache; nothing downloads). Default: yes when they are there.")
    weights: str | None = Field(None, description="A backbone classifier's .safetensors (loaded strictly into the feature extractor), or a "
                                                  "detection run's best.safetensors (the whole network).")
    anchors: Literal["fit", "default"] = Field("fit", description="fit: anchor sizes and aspect ratios from the training boxes; default: torchvision's, scaled to img_size.")
    fpn_channels: int = Field(128, ge=64, le=512, multiple_of=32, description="Channels of the FPN levels and heads (a multiple of 32).")
    backbone_lr_mult: float | None = Field(None, gt=0.0, le=1.0, description="Backbone LR = lr x this; default 0.1 from pretrained/weights, else 1.")
    freeze_bn: bool | None = Field(None, description=f"Keep the backbone's BatchNorm statistics as loaded; default: yes from weights at batches below {SMALL_BATCH}.")
    freeze_epochs: int = Field(0, ge=0, description="Train only the FPN and heads for this many epochs, then the backbone too.")

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str) -> str:  # noqa: D102
        from pixlearn._core.names import check_name

        return check_name(str(v).lower().replace("-", "_"), ARCH_CHOICES, what="detector architecture")


class DetectTrainConfig(EngineTrainConfig):
    """The loop (the engine's fields, :class:`~pixlearn.engine.config.EngineTrainConfig`) and the validation thresholds."""

    monitor: Literal["val_map50", "val_map"] = Field("val_map50", description="Metric for early stopping and the best weights (COCO mAP at IoU 0.5, or 0.5:0.95).")
    keep: Literal["best", "last"] = Field("best", description="Weights to keep: the best epoch by monitor, or the last epoch.")
    score: float = Field(0.05, ge=0.0, le=1.0, description="Score threshold of the detections scored on val (low: mAP wants the whole ranking).")
    iou: float = Field(0.5, gt=0.0, le=1.0, description="Class-wise NMS IoU of the detections scored on val.")
    val_every: int = Field(1, ge=1, description="Validate every this many epochs.")
    precision: Literal["auto", "32", "bf16", "16"] = Field("auto", description="auto: bf16 autocast on a GPU that supports it, fp32 on CPU (box regression in bf16 is not measured there).")
    channels_last: bool | None = Field(None, description="channels_last memory format; default off (detection models take image lists).")


_SECTIONS: dict[str, type[BaseModel]] = {
    "data": DetectDataConfig,
    "model": DetectModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": DetectTrainConfig,
}
_ALIASES = {
    "data": ("data", "path"),
    "schedule": ("schedule", "name"),
    "batch": ("data", "batch_size"),
    "model": ("model", "arch"),
}

#: Flat names (CLI flags, keyword arguments) -> (section, field).
DETECT_FLAT_KEYS: dict[str, tuple[str, str]] = flat_keys(_SECTIONS, _ALIASES)


class DetectConfig(RunConfig):
    """The whole configuration of a detection run (build it with :meth:`from_dict` / :meth:`from_overrides`)."""

    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = _SECTIONS
    FLAT: ClassVar[dict[str, tuple[str, str]]] = DETECT_FLAT_KEYS
    WHAT: ClassVar[str] = "detection"
    TASK: ClassVar[str] = "detect"

    task: Literal["detect"] = "detect"
    data: DetectDataConfig = Field(default_factory=DetectDataConfig)
    model: DetectModelConfig = Field(default_factory=DetectModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: DetectTrainConfig = Field(default_factory=DetectTrainConfig)


def load_detect_config(path: str | os.PathLike[str]) -> DetectConfig:
    """Read and validate a YAML detection config (any subset of the sections)."""
    return DetectConfig.load(path)
