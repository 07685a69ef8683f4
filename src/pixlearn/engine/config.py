"""Typed training configuration: one pydantic model per concern, YAML in and out, flat CLI-style overrides.

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.names import closest

__all__ = [
    "ClassifyConfig",
    "RunConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "FLAT_KEYS",
    "flat_keys",
    "load_config",
    "save_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
    backbone_lr_mult: float | None = Field(None, gt=0.0, le=1.0, description="Backbone LR = lr x this; default 0.1 from pretrained/weights, else 1.")


class OptimConfig(_Section):
    """Optimiser and regularisation of the weights."""

    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="adamw, or sgd with (Nesterov) momentum.")
    lr: float | None = Field(None, gt=0.0, description="Peak learning rate; default 2e-3 (adamw) or 0.05 (sgd) at batch 64, scaled linearly with batch.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(True, description="Nesterov momentum (SGD).")
    weight_decay: float | None = Field(None, ge=0.0, description="L2 weight decay (decoupled for AdamW); default 0.05 (adamw) or 5e-4 (sgd). Not applied to biases and norms.")
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on the weights, added to the loss.")
    grad_clip: float | None = Field(None, gt=0.0, description="Clip the gradient norm to this value.")


class ScheduleConfig(_Section):
    """Learning-rate schedule (per step) with a linear warmup."""

    name: Literal["cosine", "onecycle", "step", "plateau", "constant"] = Field("cosine", description="LR schedule.")
    warmup_epochs: float = Field(1.0, ge=0.0, description="Linear warmup from lr/100 (not for onecycle, which has its own).")
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0, description="cosine: final lr = lr x this.")
    step_epochs: int = Field(10, ge=1, description="step: multiply the lr by gamma every this many epochs.")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step / plateau factor.")
    plateau_patience: int = Field(3, ge=0, description="plateau: epochs without improvement before lowering the lr.")
    pct_start: float = Field(0.25, gt=0.0, lt=1.0, description="onecycle: share of steps rising to the peak.")


#: The one description of ``train.minutes`` (``--minutes``) in every task's config.
MINUTES_HELP = (
    "Wall-clock budget of the fit in minutes, checked after every step: training stops when one more step and the "
    "validation at the stop would not fit; cosine / one-cycle schedules follow the clock. Without --epochs, epochs is "
    "then only an upper bound of 10000."
)


class TrainConfig(_Section):
    """The loop: epochs, loss options, early stopping, hardware and reproducibility."""

    epochs: int = Field(30, ge=1, description="Maximum epochs.")
    minutes: float | None = Field(None, gt=0.0, le=525600.0, description=MINUTES_HELP)
    seed: int = Field(0, ge=0, description="Seeds the split, the initialisation, the data order and augmentation.")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="Label smoothing of the cross-entropy.")
    mixup_alpha: float = Field(0.0, ge=0.0, description="Mixup Beta(alpha, alpha); 0 turns it off.")
    cutmix_alpha: float = Field(0.0, ge=0.0, description="CutMix Beta(alpha, alpha); 0 turns it off.")
    mix_prob: float = Field(1.0, ge=0.0, le=1.0, description="Share of batches mixed when mixup/cutmix is on.")
    monitor: Literal["val_accuracy", "val_loss", "val_macro_f1"] = Field("val_accuracy", description="Metric for early stopping and the best weights.")
    patience: int = Field(10, ge=0, description="Early stopping: epochs without improvement of monitor (0: never stop early).")
    min_delta: float = Field(0.0, ge=0.0, description="Early stopping: smallest change that counts as an improvement.")
    deterministic: bool = Field(False, description="Deterministic algorithms (slower on GPU).")
    precision: Literal["auto", "32", "bf16", "16"] = Field("auto", description="auto: bf16 autocast on a GPU that supports it, fp32 on CPU.")
    channels_last: bool | None = Field(None, description="channels_last memory format; default on for GPU, off on CPU.")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = Field("auto", description="Where to train.")
    devices: int = Field(1, ge=1, description="Devices (processes) per node.")
    strategy: Literal["auto", "ddp"] = Field("auto", description="Multi-device strategy: Lightning's DDP (one process per device).")
    num_nodes: int = Field(1, ge=1, description="Nodes (multi-node DDP under torchrun/SLURM).")
    accumulate: int = Field(1, ge=1, description="Accumulate gradients over this many batches.")
    folds: int = Field(0, ge=0, description="k-fold cross-validation on the non-test images (0 or 1: off).")
    fold: int = Field(0, ge=0, description="Set by k-fold runs in each fold's config: which fold (1..folds) this run trains; 0 for the whole cross-validation.")
    find_lr: bool = Field(False, description="Run Lightning's LR finder first and train with its suggestion.")


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


def flat_keys(sections: Mapping[str, type[BaseModel]], aliases: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Flat option names -> (section, field) for a run config's sections (every field but name/path, plus aliases)."""
    out: dict[str, tuple[str, str]] = {}
    for section, cls in sections.items():
        for field in cls.model_fields:
            if field in ("name", "path"):
                continue
            if field in out:  # pragma: no cover - guarded by a test
                raise RuntimeError(f"config field {field!r} is in two sections")
            out[field] = (section, field)
    out.update(aliases)
    return out


#: Flat names (CLI flags, keyword arguments) -> (section, field).
FLAT_KEYS: dict[str, tuple[str, str]] = flat_keys(_SECTIONS, _ALIASES)


def _format_validation(exc: ValidationError, *, sections: Mapping[str, type[BaseModel]], what: str, where: str) -> ConfigError:
    paths = [f"{s}.{f}" for s, cls in sections.items() for f in cls.model_fields]
    problems: list[str] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            hits = [p for p in paths if p.split(".")[1] == key]
            if not hits:
                names = closest(key, [p.split(".")[1] for p in paths] + list(sections), n=1)
                hits = [p for p in paths if names and p.split(".")[1] == names[0]] or [n for n in names if n in sections]
            hint = f"; did you mean '{hits[0]}'?" if hits else f"; known sections: {', '.join(sections)}"
            problems.append(f"unknown key '{loc}'{hint}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, Mapping) else f" (got {got!r})"
            problems.append(f"{loc}: {err['msg']}{shown}")
    return ConfigError(f"invalid {what} config{where}: " + "; ".join(problems))


class RunConfig(_Section):
    """What every task's run configuration shares: validation, flat overrides, ``--set``, YAML.

    A subclass declares its sections as fields and sets ``SECTIONS`` (name -> section model),
    ``FLAT`` (flat option name -> (section, field)), ``WHAT`` (the word used in messages) and
    ``TASK`` (the ``task`` tag its YAML carries).
    """

    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = {}
    FLAT: ClassVar[dict[str, tuple[str, str]]] = {}
    WHAT: ClassVar[str] = "training"
    TASK: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, where: str = "") -> Self:
        """Validate a nested mapping; every problem goes into one :class:`~pixlearn.ConfigError`."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise _format_validation(exc, sections=cls.SECTIONS, what=cls.WHAT, where=where) from None

    @classmethod
    def coerce(cls, config: RunConfig | Mapping[str, Any] | str | os.PathLike[str] | None) -> Self:
        """A config from what a caller may pass: None (the defaults), a config, a mapping or a YAML path."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, Mapping):
            return cls.from_dict(config)
        return cls.load(config)

    @classmethod
    def from_overrides(cls, base: RunConfig | Mapping[str, Any] | None = None, **overrides: Any) -> Self:
        """``base`` (default: the defaults) with flat overrides applied; ``None`` values are ignored."""
        cfg = base.to_dict() if isinstance(base, RunConfig) else dict(base or {})
        cfg = {k: dict(v) if isinstance(v, Mapping) else v for k, v in cfg.items()}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in cls.FLAT:
                hint = closest(key, cls.FLAT, n=1)
                raise UnknownNameError(
                    f"unknown {cls.WHAT} option {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" Options: {', '.join(sorted(cls.FLAT))}"
                )
            section, field = cls.FLAT[key]
            cfg.setdefault(section, {})[field] = os.fspath(value) if isinstance(value, os.PathLike) else value
        return cls.from_dict(cfg)

    def with_set(self, assignments: Iterable[str]) -> Self:
        """Apply ``section.key=value`` strings (values parsed as YAML), e.g. ``train.label_smoothing=0``."""
        from pixlearn._core.safe_yaml import load_yaml

        cfg = self.to_dict()
        sections = type(self).SECTIONS
        for text in assignments:
            key, sep, raw = str(text).partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"--set needs KEY=VALUE, got {text!r}")
            if "." not in key:
                if key not in self.FLAT:
                    hint = closest(key, self.FLAT, n=1)
                    raise UnknownNameError(f"unknown config key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
                section, field = self.FLAT[key]
            else:
                section, _, field = key.partition(".")
            if section not in sections:
                hint = closest(section, sections, n=1)
                raise UnknownNameError(f"unknown config section {section!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" Sections: {', '.join(sections)}")
            value = load_yaml(raw, what=f"--set {key}", max_bytes=64 * 1024, max_depth=16) if raw.strip() else None
            cfg[section][field] = value
        return type(self).from_dict(cfg, where=" (--set)")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read and validate a YAML config (any subset of the sections; the rest keeps its defaults).

        Raises
        ------
        ConfigError
            Missing file, invalid YAML, another task's config, unknown keys (with suggestions) or
            invalid values.
        """
        from pixlearn._core.safe_yaml import load_yaml_file

        path = Path(path)
        try:  # bounded size, depth and values; anchors allowed, their expansion counted
            data = load_yaml_file(path, max_bytes=1 << 20, max_depth=32, max_nodes=100_000, allow_aliases=True)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the YAML config ({exc})") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: a config must be a mapping with sections {', '.join(cls.SECTIONS)}; got {type(data).__name__}")
        if cls.TASK and data.get("task", cls.TASK) != cls.TASK:
            raise ConfigError(f"{path}: is a {data.get('task')!r} config; this run needs task: {cls.TASK}")
        return cls.from_dict(data, where=f" in {path}")


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
