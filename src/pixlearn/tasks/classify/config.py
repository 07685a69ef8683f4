"""The configuration of a classification run: its sections on the engine's :class:`~pixlearn.engine.config.RunConfig`.

A configuration has five sections -- ``data``, ``model``, ``optim``, ``schedule``, ``train`` --
each a pydantic model that rejects unknown keys with a did-you-mean suggestion (also when the
key belongs to another section). Flat names (``epochs``, ``lr``, ``batch``, ``img_size``...)
map onto fields, which is how CLI flags and :func:`~pixlearn.train.train_classifier` keywords
reach the config.

Examples
--------
>>> cfg = ClassifyConfig.from_overrides(epochs=3, lr=0.01, model="pixlearn_smallcnn_tiny")
>>> cfg.train.epochs, cfg.optim.lr, cfg.model.name
(3, 0.01, 'pixlearn_smallcnn_tiny')
>>> ClassifyConfig.from_dict({"train": {"epocs": 3}})
Traceback (most recent call last):
...
pixlearn._core.errors.ConfigError: invalid training config: unknown key 'train.epocs'; did you mean 'train.epochs'?
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from pixlearn.engine.config import EngineTrainConfig, OptimConfig, RunConfig, ScheduleConfig, _Section, flat_keys

__all__ = [
    "ClassifyConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "FLAT_KEYS",
    "load_config",
    "save_config",
]


class DataConfig(_Section):
    """Where the images are and how they are split, augmented and batched."""

    path: str | None = Field(None, description="Labelled folder (ImageFolder) or CSV; the CLI's --data.")
    img_size: int | None = Field(None, ge=4, le=4096, description="Square training size; default: the model's input size.")
    augment: str | list[Any] = Field("standard", description="Augmentation preset (none, light, standard, strong), YAML file or list of steps.")
    batch_size: int = Field(64, ge=1, description="Images per batch (per device).")
    workers: int = Field(0, ge=0, description="Data-loading worker processes (0: load in the training process).")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of train/ held out for validation when there is no val/ split.")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of train/ held out for the test score when there is no test/ split.")
    balance: Literal["none", "loss", "sampler"] = Field("none", description="Imbalance: inverse-frequency class weights in the loss, or a weighted sampler.")
    class_weights: list[float] | None = Field(None, description="Explicit per-class loss weights (class order); overrides balance=loss.")

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:  # noqa: D102
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(f"val_fraction + test_fraction must leave at least 10% for training, got {self.val_fraction} + {self.test_fraction}")
        if self.class_weights is not None and any(w < 0 for w in self.class_weights):
            raise ValueError("class_weights must be >= 0")
        return self


class ModelConfig(_Section):
    """Which network, from which weights, and how transfer learning treats its backbone."""

    name: str = Field("pixlearn_smallcnn", description="Model name: pixlearn_smallcnn, alexnet, inception_v3 or any timm name.")
    pretrained: bool = Field(False, description="Start from published weights (timm / torchvision loading path).")
    weights: str | None = Field(None, description="Start from a local .safetensors / .pt file.")
    drop_rate: float | None = Field(None, ge=0.0, lt=1.0, description="Dropout before the classifier (default: the model's own).")
    drop_path_rate: float | None = Field(None, ge=0.0, lt=1.0, description="Stochastic depth.")
    freeze_epochs: int = Field(0, ge=0, description="Train only the head for this many epochs, then unfreeze the backbone.")
    backbone_lr_mult: float | None = Field(None, gt=0.0, le=1.0, description="Backbone LR = lr x this; default 0.3 from pretrained/weights, else 1.")
    freeze_fraction: float | None = Field(None, ge=0.0, lt=1.0, description="Train only the head for this share of the run (of the time budget under --minutes, else of the steps), then unfreeze; default 0.1 from pretrained/weights (when freeze_epochs is 0), else 0.")
    layer_decay: float | None = Field(None, gt=0.0, le=1.0, description="Layer-wise LR decay down the backbone (each block lower gets x this); default 0.8 from pretrained/weights, else 1 (off).")
    head_init: Literal["auto", "zero", "model"] = Field("auto", description="The new head's weights: zero (every prediction starts uniform: loss ln(classes)), the model's own draw, or auto: zero from pretrained/weights.")
    bn_eval: bool | None = Field(None, description="Keep the backbone's BatchNorm statistics frozen all run; default: on from pretrained/weights when the batch is below 16.")


class TrainConfig(EngineTrainConfig):
    """The loop (the engine's fields, :class:`~pixlearn.engine.config.EngineTrainConfig`) and the loss options."""

    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="Label smoothing of the cross-entropy.")
    mixup_alpha: float = Field(0.0, ge=0.0, description="Mixup Beta(alpha, alpha); 0 turns it off.")
    cutmix_alpha: float = Field(0.0, ge=0.0, description="CutMix Beta(alpha, alpha); 0 turns it off.")
    mix_prob: float = Field(1.0, ge=0.0, le=1.0, description="Share of batches mixed when mixup/cutmix is on.")
    monitor: Literal["val_accuracy", "val_loss", "val_macro_f1"] = Field("val_accuracy", description="Metric for early stopping and the best weights.")


_SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
}


_ALIASES = {
    "data": ("data", "path"),
    "model": ("model", "name"),
    "schedule": ("schedule", "name"),
    "batch": ("data", "batch_size"),
    "mixup": ("train", "mixup_alpha"),
    "cutmix": ("train", "cutmix_alpha"),
}


#: Flat names (CLI flags, keyword arguments) -> (section, field).
FLAT_KEYS: dict[str, tuple[str, str]] = flat_keys(_SECTIONS, _ALIASES)


class ClassifyConfig(RunConfig):
    """The whole configuration of a classification run.

    Build it with :meth:`from_dict`, :meth:`from_overrides` or :func:`load_config`; every
    constructor validates and turns problems into one :class:`~pixlearn.ConfigError`.
    """

    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = _SECTIONS
    FLAT: ClassVar[dict[str, tuple[str, str]]] = FLAT_KEYS
    WHAT: ClassVar[str] = "training"
    TASK: ClassVar[str] = "classify"

    task: Literal["classify"] = "classify"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


def load_config(path: str | os.PathLike[str]) -> ClassifyConfig:
    """Read and validate a YAML classification config (see :meth:`RunConfig.load`)."""
    return ClassifyConfig.load(path)


def save_config(config: ClassifyConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML, atomically."""
    from pixlearn.engine.runs import atomic_write_text

    return atomic_write_text(Path(path), config.to_yaml())
