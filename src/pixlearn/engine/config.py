"""The run configuration base every task shares: pydantic sections, YAML in and out, flat CLI-style overrides.

A task's configuration (e.g. :class:`~pixlearn.tasks.classify.config.ClassifyConfig`) subclasses
:class:`RunConfig` and declares its sections -- ``data``, ``model``, ``optim``, ``schedule``, ``train`` -- each a
pydantic model that rejects unknown keys with a did-you-mean suggestion (also when the key belongs to another
section). Flat names (``epochs``, ``lr``, ``batch``, ``img_size``...) map onto fields (:func:`flat_keys`), which is
how CLI flags and the train functions' keywords reach the config. :class:`OptimConfig` and
:class:`ScheduleConfig` are shared sections; :class:`EngineTrainConfig` holds the fields of the ``train`` section
that the engine reads (budget, early stopping, k-fold, LR finder, hardware, reproducibility), which each task's
``train`` section extends with its own (loss, monitor, tiling...) and whose defaults it may change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.names import closest

__all__ = ["RunConfig", "OptimConfig", "ScheduleConfig", "EngineTrainConfig", "MINUTES_HELP", "PRECISION_HELP", "flat_keys"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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

#: The one description of ``train.precision`` of the tasks whose ``auto`` is :func:`pixlearn.engine.trainer.auto_precision`'s.
PRECISION_HELP = ("auto: bf16 autocast on a GPU or a CPU that computes bf16 natively (AVX-512 BF16, AMX; PIXLEARN_CPU_BF16=0 keeps "
                  "fp32), else fp16 on a GPU, fp32 on a CPU.")


class EngineTrainConfig(_Section):
    """The ``train`` fields the engine reads in every task: epochs and budget, early stopping, k-fold, the LR
    finder, hardware and reproducibility. A task's ``train`` section subclasses it, adds its own fields and may
    redeclare one of these with another default (restoration: 20 epochs, no early stopping, channels_last on)."""

    epochs: int = Field(30, ge=1, le=100000, description="Maximum epochs.")
    minutes: float | None = Field(None, gt=0.0, le=525600.0, description=MINUTES_HELP)
    seed: int = Field(0, ge=0, description="Seeds the split, the initialisation, the data order and the augmentation.")
    patience: int = Field(10, ge=0, description="Early stopping: epochs without improvement of monitor (0: never stop early).")
    min_delta: float = Field(0.0, ge=0.0, description="Early stopping: smallest change that counts as an improvement.")
    find_lr: bool = Field(False, description="Run Lightning's LR finder first and train with its suggestion.")
    folds: int = Field(0, ge=0, description="k-fold cross-validation on the non-test images (0 or 1: off).")
    fold: int = Field(0, ge=0, description="Set by k-fold runs in each fold's config: which fold (1..folds) this run trains; 0 for the whole cross-validation.")
    deterministic: bool = Field(False, description="Deterministic algorithms (slower on GPU).")
    precision: Literal["auto", "32", "bf16", "16"] = Field("auto", description=PRECISION_HELP)
    channels_last: bool | None = Field(None, description="channels_last memory format; default on for GPU, off on CPU.")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = Field("auto", description="Where to train.")
    devices: int = Field(1, ge=1, description="Devices (processes) per node.")
    strategy: Literal["auto", "ddp"] = Field("auto", description="Multi-device strategy: Lightning's DDP (one process per device).")
    num_nodes: int = Field(1, ge=1, description="Nodes (multi-node DDP under torchrun/SLURM).")
    accumulate: int = Field(1, ge=1, description="Accumulate gradients over this many batches.")



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


