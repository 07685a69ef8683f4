"""Typed configuration of a restoration run: data (and its degradation), model, optim, schedule, train.

Flat names (``sigma``, ``patch``, ``depth``, ``epochs``, ``lr``, ``batch``...) map onto fields, the
way CLI flags and :func:`~pixlearn.tasks.restore.train.train_restorer` keywords reach the config; unknown
keys are refused with the closest valid one.

Examples
--------
>>> cfg = RestoreConfig.from_overrides(task="denoise", sigma=25, depth=10, epochs=3)
>>> cfg.data.sigma, cfg.model.depth, cfg.train.epochs
(25.0, 10, 3)
>>> RestoreConfig.from_overrides(sigmaa=25)
Traceback (most recent call last):
...
pixlearn._core.errors.UnknownNameError: unknown restoration training option 'sigmaa'; did you mean 'sigma'? Options: ...
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pixlearn.engine.config import EngineTrainConfig, OptimConfig, RunConfig, ScheduleConfig, _Section, flat_keys

__all__ = [
    "RestoreConfig",
    "RestoreDataConfig",
    "RestoreModelConfig",
    "RestoreScheduleConfig",
    "RestoreTrainConfig",
    "RESTORE_FLAT_KEYS",
    "load_restore_config",
]

RestoreTaskName = Literal["denoise", "super-resolution", "enhance"]


class RestoreDataConfig(_Section):
    """The images, the degradation that makes training pairs, and the patches cut from them."""

    path: str | None = Field(None, description="Clean images (optionally train/ val/ test/), or degraded/ + clean/ pairs; the CLI's --data.")
    task: RestoreTaskName = Field("denoise", description="denoise, super-resolution or enhance (picks the default degradation).")
    degrade: str | list[Any] | None = Field(None, description="A degradation pipeline ('blur:sigma=1..2+jpeg:quality=30' or a list); replaces the task's default.")
    sigma: float | tuple[float, float] | None = Field(None, description="Gaussian noise sigma in grey levels (denoise; enhance: the low-light noise), or a [low, high] range drawn per patch. Default 25.")
    noise: Literal["gaussian", "poisson", "salt_pepper"] = Field("gaussian", description="Noise kind for denoise.")
    scale: int = Field(2, ge=2, le=8, description="Super-resolution factor.")
    clip: bool = Field(True, description="Clip degraded images to [0, 1]; off keeps unclipped gaussian noise (the benchmark protocol).")
    mode: Literal["auto", "L", "RGB"] = Field("auto", description="Grey (L) or colour (RGB); auto: grey when the images are.")
    patch: int = Field(48, ge=8, le=1024, description="Side of the clean training patches in pixels.")
    patches_per_image: int = Field(16, ge=1, description="Random patches cut from every training image per epoch.")
    val_crop: int = Field(96, ge=8, description="Side of the fixed centre crops scored each epoch.")
    batch_size: int = Field(32, ge=1, description="Patches per batch.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the images held out for validation when there is no val/ split.")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Share held out for the final score when there is no test/ split (0: score on val).")
    workers: int = Field(0, ge=0, description="Data-loading worker processes.")
    cache_mb: float = Field(1024.0, ge=0.0, description="Decoded training images kept in memory up to this many MB.")
    augment: bool = Field(True, description="Random flips and 90-degree rotations of the patches.")

    @field_validator("sigma", mode="before")
    @classmethod
    def _sigma(cls, v: Any) -> Any:
        if isinstance(v, str):
            text = v.strip()
            if ".." in text:
                a, _, b = text.partition("..")
                return (float(a), float(b))
            return float(text)
        if isinstance(v, list):
            return tuple(v)
        return v

    @model_validator(mode="after")
    def _fractions(self) -> RestoreDataConfig:  # noqa: D102
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        if isinstance(self.sigma, tuple) and not 0 <= self.sigma[0] <= self.sigma[1]:
            raise ValueError(f"sigma range must be 0 <= low <= high, got {self.sigma}")
        if isinstance(self.sigma, float) and self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        return self


class RestoreModelConfig(_Section):
    """Which restorer and its size (options a model does not take must stay unset)."""

    name: str = Field("dncnn", description="dncnn, unet (same size; the default of a --minutes run without --epochs) or espcn, edsr (super-resolution).")
    weights: str | None = Field(None, description="Start from a restorer's weights (a .safetensors file, e.g. a run's weights/best.safetensors).")
    depth: int | None = Field(None, ge=2, description="dncnn: convolution layers (default 17).")
    width: int | None = Field(None, ge=2, description="Feature channels: dncnn, espcn, edsr (default 64); unet: of the first level (default 32).")
    bn: bool | None = Field(None, description="dncnn, unet: batch normalisation (default on).")
    down: int | None = Field(None, ge=1, le=4, description="dncnn: pixel-unshuffle factor; the layers run at 1/down of the resolution (FFDNet's trick; default 1).")
    levels: int | None = Field(None, ge=1, description="unet: down-sampling steps (default 3).")
    blocks: int | None = Field(None, ge=0, description="edsr: residual blocks (default 8).")
    res_scale: float | None = Field(None, gt=0.0, description="edsr: residual scaling (default 1.0).")
    residual: bool | None = Field(None, description="espcn, edsr: add the bicubic upsampling of the input (default on).")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from pixlearn.models.restoration import check_restorer_name

        return check_restorer_name(v)

    def options(self) -> dict[str, Any]:
        """The size options that are set."""
        return {k: v for k, v in self.model_dump().items() if k not in ("name", "weights") and v is not None}


class RestoreScheduleConfig(ScheduleConfig):
    """Learning-rate schedule; restoration runs warm up for a fifth of an epoch by default."""

    warmup_epochs: float = Field(0.2, ge=0.0, description="Linear warmup from lr/100 (not for onecycle).")


class RestoreTrainConfig(EngineTrainConfig):
    """The loop (the engine's fields, :class:`~pixlearn.engine.config.EngineTrainConfig`, with restoration's
    defaults: 20 epochs, no early stopping, channels_last), the loss and the final evaluation."""

    epochs: int = Field(20, ge=1, le=100000, description="Maximum epochs.")
    loss: Literal["l1", "l2", "charbonnier"] | None = Field(None, description="Training loss; default l2 for denoise, l1 otherwise.")
    monitor: Literal["val_psnr", "val_ssim", "val_loss"] = Field("val_psnr", description="Metric choosing the best epoch (and early stopping).")
    patience: int = Field(0, ge=0, description="Early stopping: epochs without improvement (0: never stop early).")
    precision: Literal["auto", "32", "bf16", "16"] = Field("auto", description="auto: bf16 autocast on a GPU or a CPU that computes bf16 natively (AVX-512 BF16, AMX; PIXLEARN_CPU_BF16=0 keeps fp32), else fp32.")
    channels_last: bool = Field(True, description="channels_last memory format (measured faster for these conv stacks, CPU and GPU).")
    tile: int = Field(256, ge=16, description="Tile side for whole-image inference in the final evaluation.")
    overlap: int | None = Field(None, ge=0, description="Tile overlap in pixels (default: from the model's receptive field).")
    eval_methods: list[str] | None = Field(None, description="Classical methods scored beside the model (default: the task's).")
    eval_max_images: int | None = Field(None, ge=1, description="Score at most this many images in the final evaluation.")


_SECTIONS: dict[str, type[BaseModel]] = {
    "data": RestoreDataConfig,
    "model": RestoreModelConfig,
    "optim": OptimConfig,
    "schedule": RestoreScheduleConfig,
    "train": RestoreTrainConfig,
}

#: Flat names (CLI flags, keyword arguments) -> (section, field).
RESTORE_FLAT_KEYS: dict[str, tuple[str, str]] = flat_keys(
    _SECTIONS, {"data": ("data", "path"), "model": ("model", "name"), "schedule": ("schedule", "name"), "batch": ("data", "batch_size"),
               "img_size": ("data", "patch")},
)


class RestoreConfig(RunConfig):
    """The whole configuration of a restoration run (build it with :meth:`from_dict` / :meth:`from_overrides` / :meth:`load`)."""

    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = _SECTIONS
    FLAT: ClassVar[dict[str, tuple[str, str]]] = RESTORE_FLAT_KEYS
    WHAT: ClassVar[str] = "restoration training"
    TASK: ClassVar[str] = "restore"

    task: Literal["restore"] = "restore"
    data: RestoreDataConfig = Field(default_factory=RestoreDataConfig)
    model: RestoreModelConfig = Field(default_factory=RestoreModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: RestoreScheduleConfig = Field(default_factory=RestoreScheduleConfig)
    train: RestoreTrainConfig = Field(default_factory=RestoreTrainConfig)


def load_restore_config(path: str | os.PathLike[str]) -> RestoreConfig:
    """Read and validate a YAML restoration config (any subset of the sections)."""
    return RestoreConfig.load(path)
