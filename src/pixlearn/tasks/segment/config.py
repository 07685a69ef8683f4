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

from pixlearn.engine.config import EngineTrainConfig, OptimConfig, RunConfig, ScheduleConfig, _Section, flat_keys

__all__ = ["PRETRAINED_ENCODERS", "DEFAULT_ENCODER", "SMALL_BATCH", "choose_encoder", "SegmentConfig", "SegmentDataConfig", "SegmentModelConfig", "SegmentTrainConfig", "SEGMENT_FLAT_KEYS", "load_segment_config"]

#: Encoders the defaults start from when their ImageNet weights are in the local weights folders (first found wins):
#: light ones first, since the defaults must train well within a CPU budget.
PRETRAINED_ENCODERS: tuple[str, ...] = ("tu-tf_efficientnet_lite0", "tu-resnet18", "tu-mobilenetv3_large_100", "tu-efficientnet_b0", "tu-resnet34")
#: The encoder when none is named and none of :data:`PRETRAINED_ENCODERS` has local weights (random initialisation).
DEFAULT_ENCODER = "tu-resnet18"
#: Below this many crops per batch a pretrained encoder's BatchNorm statistics are kept as loaded (``freeze_bn``).
SMALL_BATCH = 16


class SegmentDataConfig(_Section):
    """Where the images and masks are, how they are split, cropped and batched."""

    path: str | None = Field(None, description="Mask dataset (images/ + masks/, or train/image/ + train/label/); the CLI's --data.")
    img_size: int | None = Field(None, ge=16, le=4096, description="Training crop size (square; a multiple of the encoder's output stride, 32); default 256, or planned for --minutes.")
    augment: str | list[Any] = Field("flips", description="flips (random crop + flips), none (crop only), or a preset / YAML / list applied after them.")
    batch_size: int | None = Field(None, ge=1, description="Crops per batch (per device); default 8, or planned for --minutes.")
    val_batch_size: int = Field(1, ge=1, description="Whole validation images per batch (they must share a size when > 1).")
    workers: int = Field(0, ge=0, description="Data-loading worker processes (0: load in the training process).")
    crops_per_image: int | None = Field(None, ge=1, le=4096, description="Random crops drawn from each training image per epoch; default 1, or planned for --minutes.")
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
    encoder: str | None = Field(None, description="tu-<timm name> (any timm model) or an smp encoder name; default: the first of "
                                                 "PRETRAINED_ENCODERS whose weights are in the local weights folders (pretrained), else tu-resnet18.")
    encoder_depth: int = Field(5, ge=3, le=5, description="Encoder stages (inputs must be divisible by 2**depth).")
    decoder_channels: int | list[int] | None = Field(None, description="smp decoder widths (default: smp's).")
    full_res: bool = Field(False, description="unet: a full-resolution path from the input to the decoder's output (smp's U-Net has none).")
    encoder_weights: str | None = Field(None, description="Local weights file for the encoder (nothing downloads).")
    pretrained: bool | None = Field(None, description="Start a tu-<timm name> encoder from the local weights folders ($PIXLEARN_WEIGHTS, then the cache; "
                                                      "see pixlearn weights add); nothing downloads. Default: yes when no encoder was named "
                                                      "and a PRETRAINED_ENCODERS file is there.")
    weights: str | None = Field(None, description="Start from a whole network's weights (e.g. a run's best.safetensors).")
    binary: bool | None = Field(None, description="One sigmoid output for 2-class masks (default: yes when there are 2 classes).")
    freeze_epochs: int = Field(0, ge=0, description="Train only the decoder for this many epochs, then unfreeze the encoder.")
    backbone_lr_mult: float | None = Field(None, gt=0.0, le=1.0, description="Encoder LR = lr x this; default 0.1 with encoder weights, else 1.")
    freeze_bn: bool | None = Field(None, description="Keep the encoder's BatchNorm statistics as loaded (eval mode; scales and shifts still learn); "
                                                     f"default: yes for a pretrained encoder at batches below {SMALL_BATCH}.")


class SegmentTrainConfig(EngineTrainConfig):
    """The loop (the engine's fields, :class:`~pixlearn.engine.config.EngineTrainConfig`), the loss, tiling and the decision threshold."""

    loss: str = Field("ce+dice", description="ce, dice, focal, lovasz or a weighted sum such as ce+dice or 0.5*focal+dice.")
    monitor: Literal["val_miou", "val_dice", "val_pixel_accuracy", "val_loss"] = Field("val_miou", description="Metric for early stopping and the best weights.")
    keep: Literal["best", "last"] = Field("best", description="Weights to keep: the best epoch by monitor, or the last epoch (val scores then unbiased by selection).")
    overlap: float = Field(0.25, ge=0.0, lt=1.0, description="Tile overlap (fraction of the crop) for images larger than the crop.")
    tta: Literal["auto", "none", "transpose", "flip", "d4"] = Field("auto", description="Test-time augmentation of the run's predictions: none, transpose (2 passes: as is and transposed), flip (4 mirrored passes, as nnU-Net) or d4 (8); auto: none or transpose, whichever scores higher on the val images at the end of training (a tie keeps none; none without val); recorded with the weights.")
    threshold: float | None = Field(None, gt=0.0, lt=1.0, description="Binary models: a pixel is foreground when its probability is above this; default: chosen on the val images at the end of training (0.3..0.7, the one with the best monitored score), 0.5 without val; recorded with the weights.")
    val_every: int = Field(1, ge=1, description="Validate every this many epochs (whole images are costly; the final scores are always measured).")


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


def _is_whole_network_file(path: str) -> bool:
    """True for a segmentation network's weights (decoder and head inside), False for a bare encoder / timm classifier
    file; files other than ``.safetensors`` count as whole networks (as before)."""
    if not str(path).lower().endswith(".safetensors"):
        return True
    from safetensors import safe_open

    from pixlearn._core.errors import ConfigError

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except FileNotFoundError:
        from pixlearn.models.weights import WeightsNotFoundError

        raise WeightsNotFoundError(f"--weights {path}: no such file") from None
    except Exception as exc:  # a broken or foreign file: say which
        raise ConfigError(f"--weights {path}: not a readable .safetensors weights file ({exc})") from None
    return any(k.startswith(("decoder.", "segmentation_head.", "encoder.")) for k in keys)


def _encoder_from_file_name(path: str) -> str | None:
    """``.../tf_efficientnet_lite0.in1k.safetensors`` -> ``"tu-tf_efficientnet_lite0"`` when timm knows the name."""
    from pathlib import Path

    from pixlearn.models.registry import _timm_knows

    stem = Path(path).name.split(".")[0]
    return f"tu-{stem}" if stem and _timm_knows(stem) else None


def choose_encoder(model: SegmentModelConfig) -> tuple[dict[str, Any], str | None]:
    """Resolve ``encoder``, ``pretrained`` and the file behind them; return the model fields to set and a line saying why.

    * ``weights`` naming a bare encoder file (a timm classifier's ``.safetensors``, no decoder inside)
      becomes ``encoder_weights``; without an ``encoder`` the encoder comes from the file name.
    * No ``encoder`` named and ``pretrained`` not False: the first of :data:`PRETRAINED_ENCODERS` whose
      weights are in the local weights folders, pretrained; when none is there, ``pretrained=True``
      raises :class:`~pixlearn.models.weights.WeightsNotFoundError` and the default is
      :data:`DEFAULT_ENCODER` from random weights, said in the line (with ``pixlearn weights add``).
    * An ``encoder`` named: ``pretrained`` defaults to False, as before (the line says when its local
      weights are there).

    The line is ``None`` when the user chose everything.
    """
    from pixlearn._core.errors import ConfigError
    from pixlearn._core.paths import weights_dirs
    from pixlearn.models.registry import _add_hint, _looked_for, find_pretrained
    from pixlearn.models.weights import WeightsNotFoundError

    upd: dict[str, Any] = {}
    enc, pre = model.encoder, model.pretrained
    if model.weights and not _is_whole_network_file(model.weights):
        if model.encoder_weights or pre:
            raise ConfigError(f"--weights {model.weights} is an encoder's weights file; give it alone, without "
                              "--encoder-weights or --pretrained")
        enc = enc or _encoder_from_file_name(model.weights)
        if enc is None:
            raise ConfigError(f"--weights {model.weights} holds an encoder's weights, and its file name names no timm model; "
                              "name the encoder with --backbone tu-<timm name>")
        upd.update(encoder=enc, encoder_weights=model.weights, weights=None, pretrained=False)
        return upd, f"backbone: {enc}, from the encoder weights in {model.weights} (--weights)"
    if model.weights or model.encoder_weights:
        upd.update(encoder=enc or DEFAULT_ENCODER, pretrained=bool(pre))
        return upd, None
    if enc is not None:
        upd["pretrained"] = bool(pre)
        if pre is None and enc.startswith("tu-"):
            found = find_pretrained(enc[3:])
            if found is not None:
                return upd, (f"backbone: {enc} from random weights; its pretrained weights are in {found}: "
                             "add --pretrained to start from them")
        return upd, None
    if pre is False:
        upd.update(encoder=DEFAULT_ENCODER, pretrained=False)
        return upd, f"backbone: {DEFAULT_ENCODER} from random weights (--no-pretrained)"
    for cand in PRETRAINED_ENCODERS:
        found = find_pretrained(cand[3:])
        if found is not None:
            upd.update(encoder=cand, pretrained=True)
            return upd, (f"backbone: {cand}, pretrained: its weights are in {found} (the first of {len(PRETRAINED_ENCODERS)} light "
                         "encoders with local weights); --backbone NAME picks another, --no-pretrained starts from random weights")
    first = PRETRAINED_ENCODERS[0][3:]
    folders = ", ".join(str(d) for d in weights_dirs())
    if pre:
        raise WeightsNotFoundError(
            f"--pretrained: no local weights for any of the default encoders ({', '.join(PRETRAINED_ENCODERS)}); pixlearn looked "
            f"for {_looked_for(first)} and the others' files. Add one with `{_add_hint(first)}`, or name an encoder "
            "with --backbone and its file with --weights FILE"
        )
    upd.update(encoder=DEFAULT_ENCODER, pretrained=False)
    return upd, (f"backbone: {DEFAULT_ENCODER} from random weights: no local pretrained weights for {PRETRAINED_ENCODERS[0]} or "
                 f"the other default encoders in {folders}; add them with `{_add_hint(first)}` to fine-tune a pretrained encoder")
