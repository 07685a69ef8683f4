"""From a task's resolved :class:`~pixlearn.engine.config.RunConfig` to Lightning's settings, shared by every task.

:func:`resolve_hardware` (accelerator, precision, strategy), :func:`engine_options` (the optimiser and schedule of
:class:`~pixlearn.engine.module.EngineModule`), :func:`trainer_kwargs` (the Lightning ``Trainer``), :func:`device_info`
(the manifest's device block), :func:`resolve_device` (predictors) and :class:`TrainResult` (what a run produced).
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixlearn._core.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from pixlearn.engine.config import RunConfig

__all__ = [
    "TrainResult", "auto_precision", "cpu_has_bf16", "cpuinfo_has_bf16", "probe_autocast", "resolve_hardware", "engine_options",
    "trainer_kwargs", "device_info", "resolve_device",
]


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    run_dir : Path
    config : RunConfig
        The resolved configuration (as saved in ``config.yaml``).
    metrics : dict or None
        ``metrics.json``'s content (None in DDP processes other than rank 0).
    history : list of dict
        The rows of ``metrics.csv``.
    best_epoch, epochs_run : int
    stopped_early : bool
    stop_reason : {"budget", "early_stopping", "last_epoch"}
        Why training stopped (also in ``metrics.json`` and the report).
    lr_find : dict, optional
        ``{"suggestion", "lrs", "losses"}`` when the LR finder ran.
    folds : list of TrainResult
        One per fold of a k-fold run.
    """

    run_dir: Path
    config: RunConfig
    metrics: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    lr_find: dict[str, Any] | None = None
    folds: list[TrainResult] = field(default_factory=list)
    stop_reason: str = "last_epoch"


#: CPU flags (Linux ``/proc/cpuinfo``) of native bfloat16 arithmetic: AVX-512 BF16 (Intel Cooper Lake and later, AMD
#: Zen 4 and later) and AMX. Without them bf16 is emulated and no faster than fp32.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: ``PIXLEARN_CPU_BF16=0`` keeps CPU training in fp32 where "auto" would choose bf16; ``=1`` forces bf16.
CPU_BF16_ENV = "PIXLEARN_CPU_BF16"


def cpuinfo_has_bf16(text: str) -> bool:
    """Whether the first ``flags`` line of a ``/proc/cpuinfo`` text names one of :data:`CPU_BF16_FLAGS`.

    >>> cpuinfo_has_bf16("flags : fpu avx2 avx512f avx512_bf16"), cpuinfo_has_bf16("flags : fpu avx2 avx512f")
    (True, False)
    """
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(set(line.split(":", 1)[-1].split()) & set(CPU_BF16_FLAGS))
    return False


@functools.cache
def _this_cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return cpuinfo_has_bf16(f.read(1 << 20))
    except OSError:  # not Linux: fp32 unless PIXLEARN_CPU_BF16=1
        return False


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (:data:`CPU_BF16_FLAGS`); :data:`CPU_BF16_ENV` overrides.

    Measured on 2 cores of an AMD EPYC with AVX-512 BF16 (``benchmarks/bench_cpu_bf16.py``), bf16 autocast made a
    training step 1.8x as fast as fp32 for the U-Net restorer, 1.65x for a U-Net on tf_efficientnet_lite0 at 192 px
    and 1.2-1.5x for tf_efficientnet_lite0 at 128-160 px.
    """
    env = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    return _this_cpu_has_bf16()


def auto_precision(accelerator: str, *, cpu_bf16: bool = True, gpu_fp16: bool = True) -> str:
    """What ``precision: auto`` trains with on ``accelerator``: bf16 autocast where the hardware computes it natively
    (a GPU that supports it, or -- with ``cpu_bf16`` -- a CPU with :func:`cpu_has_bf16`), else fp16 on an older GPU
    (``gpu_fp16``) and fp32 everywhere else."""
    import torch

    if accelerator in ("gpu", "cuda"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
        return "16" if gpu_fp16 else "32"
    if accelerator == "cpu" and cpu_bf16 and cpu_has_bf16():
        return "bf16"
    return "32"


def probe_autocast(precision: str, accelerator: str = "auto") -> Any:
    """The autocast a budget probe's CPU steps run under, so that they cost what the run's steps will: bf16 when the
    run trains in bf16 on the CPU, else none."""
    import torch

    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = auto_precision(accelerator)
    if accelerator == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_hardware(cfg: RunConfig, *, cpu_bf16: bool = True) -> dict[str, Any]:
    """Accelerator, precision (:func:`auto_precision`), channels_last and strategy of ``cfg`` with "auto" resolved."""
    import torch

    t = cfg.train
    acc = t.accelerator
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    gpu = acc in ("gpu", "cuda")
    precision = t.precision
    if precision == "auto":
        precision = auto_precision(acc, cpu_bf16=cpu_bf16)
    channels_last = gpu if t.channels_last is None else t.channels_last
    strategy = t.strategy
    if strategy == "auto" and t.devices * t.num_nodes > 1:
        strategy = "ddp"
    return {"accelerator": acc, "precision": precision, "channels_last": channels_last, "strategy": strategy}


def _strategy(name: str, *, accelerator: str, find_unused: bool) -> Any:
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        kwargs: dict[str, Any] = {"find_unused_parameters": find_unused}
        if accelerator == "cpu":
            kwargs["process_group_backend"] = "gloo"
        return DDPStrategy(**kwargs)
    return "auto"


_PRECISION = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def engine_options(cfg: RunConfig, *, has_val: bool, run_dir: Path) -> Any:
    """The :class:`~pixlearn.engine.module.EngineOptions` of ``cfg``; sections a task does not have (no backbone to
    freeze, no ``accumulate``...) take the engine's neutral defaults."""
    from pixlearn.engine.module import EngineOptions

    from pixlearn.engine.budget import clock_schedule

    o, s, t, m = cfg.optim, cfg.schedule, cfg.train, cfg.model
    clock = clock_schedule(s.name, t.minutes)  # the budget callback drives the LR by the clock
    return EngineOptions(
        optimizer=o.optimizer, lr=float(o.lr), momentum=o.momentum, nesterov=o.nesterov, weight_decay=float(o.weight_decay),
        l1=o.l1, schedule="constant" if clock else s.name, warmup_epochs=0.0 if clock else s.warmup_epochs, min_lr_ratio=s.min_lr_ratio, step_epochs=s.step_epochs,
        gamma=s.gamma, plateau_patience=s.plateau_patience, pct_start=s.pct_start, freeze_epochs=getattr(m, "freeze_epochs", 0),
        backbone_lr_mult=float(_or(getattr(m, "backbone_lr_mult", None), 1.0)),
        freeze_fraction=float(_or(getattr(m, "freeze_fraction", None), 0.0)), layer_decay=float(_or(getattr(m, "layer_decay", None), 1.0)),
        bn_eval=bool(getattr(m, "bn_eval", False)), seed=t.seed, channels_last=bool(t.channels_last), monitor=t.monitor,
        monitor_mode="min" if t.monitor == "val_loss" else "max", has_val=has_val,
        checkpoint_hint=str(run_dir / "checkpoints" / "last.ckpt"),
    )


def trainer_kwargs(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Any]:
    """Lightning ``Trainer`` keywords of ``cfg`` (its ``train`` section's engine fields, :class:`~pixlearn.engine.config.EngineTrainConfig`)."""
    from pixlearn.engine.callbacks import AtomicCheckpointIO

    t = cfg.train
    return {
        "max_epochs": t.epochs,
        "accelerator": t.accelerator,
        "devices": t.devices,
        "num_nodes": t.num_nodes,
        "strategy": _strategy(t.strategy, accelerator=t.accelerator, find_unused=getattr(cfg.model, "freeze_epochs", 0) > 0),
        "precision": _PRECISION[t.precision],
        "deterministic": t.deterministic,
        "gradient_clip_val": cfg.optim.grad_clip,
        "accumulate_grad_batches": t.accumulate,
        "logger": False,
        "enable_checkpointing": True,
        "enable_model_summary": False,
        "enable_progress_bar": False,  # pixlearn.engine's TrainProgress shows progress
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
        "default_root_dir": str(run_dir),
        "plugins": [AtomicCheckpointIO()],
        "log_every_n_steps": 50,
    }


def device_info(cfg: RunConfig) -> dict[str, Any]:
    import torch

    t = cfg.train
    info: dict[str, Any] = {
        "accelerator": t.accelerator, "devices": t.devices, "num_nodes": t.num_nodes, "strategy": t.strategy,
        "precision": t.precision, "channels_last": t.channels_last, "cpu_threads": torch.get_num_threads(),
    }
    if t.accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None: the first CUDA GPU when there is one, else the CPU."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
